"""``benchmarks/select_calibration_clones.py``: the two variants really differ in the clones.

Uses generated bags (no ``../shared`` needed) and never writes results."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def script(load_benchmark):
    return load_benchmark("select_calibration_clones")


def test_variants_set_the_switch_and_the_clones_follow(script, monkeypatch):
    from mimlkit.learners.broad.smipr import SMIPR

    ks = []
    orig = SMIPR._find_medoids

    def spy(self, bags, k):
        ks.append((bags.n_bags, k))
        return orig(self, bags, k)

    monkeypatch.setattr(SMIPR, "_find_medoids", spy)
    g = np.random.default_rng(0)
    bags = [g.normal(size=(3, 4)).astype(np.float32) for _ in range(60)]
    Y = (g.random((60, 2)) < 0.4).astype(np.int8)
    plain = script._fit("smipr", "plain", bags, Y)
    clone_ks_plain = {k for n, k in ks if n == 40}
    ks.clear()
    matched = script._fit("smipr", "matched", bags, Y)
    clone_ks_matched = {k for n, k in ks if n == 40}
    assert plain.match_calibration_clones is False and matched.match_calibration_clones
    assert clone_ks_plain == {8} and clone_ks_matched == {12}  # 20 % of 40 vs of 60
    assert set(script.VARIANTS) == {"plain", "matched", "crossfit", "ratecap", "folds5"}
    ks.clear()
    cross = script._fit("smipr", "crossfit", bags, Y)
    assert cross.crossfit_final and len(cross.calibration_models_) == 3
    assert {k for n, k in ks if n == 40} == {8}  # crossfit clones are plain clones
    capped = script._fit("smipr", "ratecap", bags, Y)
    assert capped.rate_cap_final and not capped.crossfit_final
    assert "rate_cap" in capped.calibration_ and not plain.rate_cap_final
    ks.clear()
    five = script._fit("smipr", "folds5", bags, Y)
    assert five.calibration_["n_folds"] == 5 and plain.calibration_["n_folds"] == 3
    assert {k for n, k in ks if n == 48} == {10}  # 5 folds of 60 bags: 48 each, 20 % -> 10


def test_transfer_lr_matched_clones_keep_the_penalty_per_row():
    from mimlkit.learners.transfer.transfer_lr import TransferLR

    est = TransferLR(C=2.0)
    assert est._calibration_clone_params(300, 200) == {}  # off by default (inner splits)
    est.match_calibration_clones = True
    assert est._calibration_clone_params(300, 200) == {"C": pytest.approx(3.0)}
    est.lam = 0.01  # lam is already per row: nothing to match
    assert est._calibration_clone_params(300, 200) == {}
