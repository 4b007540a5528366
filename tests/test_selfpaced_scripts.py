"""``benchmarks/selfpaced_regimes.py`` and ``selfpaced_tables.py``: the statistics and
instance-AUC helpers against hand-computed values, and one tiny end-to-end run of the
regimes script on generated data (no ``../shared`` needed; results go to a temp folder)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def regimes(load_benchmark):
    return load_benchmark("selfpaced_regimes")


def test_paired_t_test_matches_hand_computation(regimes):
    a = [0.70, 0.72, 0.69, 0.75, 0.71]
    b = [0.66, 0.70, 0.68, 0.70, 0.69]
    rows = ([{"regime": "r", "config": "A", "seed": s, "m": v} for s, v in enumerate(a)]
            + [{"regime": "r", "config": "B", "seed": s, "m": v} for s, v in enumerate(b)])
    d, p = regimes.paired(rows, "r", "A", "B", "m")
    diff = np.subtract(a, b)
    t = diff.mean() / (diff.std(ddof=1) / np.sqrt(diff.size))
    from scipy.stats import t as student

    assert d == pytest.approx(diff.mean())
    assert p == pytest.approx(2 * student.sf(abs(t), diff.size - 1))
    # identical columns: no test (p = nan), difference 0
    d0, p0 = regimes.paired(rows, "r", "A", "A", "m")
    assert d0 == 0 and np.isnan(p0)


def test_tile_aucs_all_tiles_and_within_positive_bags(regimes):
    # two bags of 3 tiles, one label; bag 0 positive (tile 0 is the evidence), bag 1 negative
    scores = [np.array([[0.9], [0.2], [0.1]]), np.array([[0.95], [0.3], [0.0]])]
    truth = np.array([[1], [0], [0], [0], [0], [0]])
    Y = np.array([[1], [0]])
    out = regimes.tile_aucs(scores, truth, Y)
    assert out["tile_auc"] == pytest.approx(4 / 5)  # 0.9 beats 4 of the 5 negatives
    assert out["tile_auc_in_pos"] == pytest.approx(1.0)


def test_regimes_script_runs_end_to_end(regimes, tmp_path, monkeypatch):
    monkeypatch.setattr(regimes, "write_results",
                        lambda name, data, body, **kw: (tmp_path / "out.md").write_text(body))
    monkeypatch.setattr(regimes, "CONFIGS", regimes.CONFIGS[:1] + regimes.CONFIGS[5:6])
    monkeypatch.setattr(sys, "argv", ["x", "--only", "sparse", "--seeds", "2", "--epochs",
                                      "1", "--patience", "1"])
    regimes.main()
    md = (tmp_path / "out.md").read_text()
    assert "### sparse (2 seeds)" in md and "OHEM sampler" in md
    assert "Δ f1_macro (p)" in md and "Full method (row 21) beats row 1" in md


def test_tables_script_knows_the_published_values(load_benchmark):
    tables = load_benchmark("selfpaced_tables")
    assert sorted(tables.PUB_V) == tables.C_VALUES == [2, 3, 4, 5, 6, 7]
    assert [t[0] for t in tables.TILES][-1] == "unpatched"


def test_split_is_disjoint_and_carries_the_test_truth(regimes):
    from mimlkit.bags import Bags

    sizes = np.arange(1, 31) % 4 + 1
    bags = Bags(np.zeros((sizes.sum(), 2)), np.concatenate([[0], np.cumsum(sizes)]))
    truth = np.repeat(np.arange(30), sizes)[:, None]  # instance truth = its bag's index
    tr, va, te, te_truth = regimes.split(bags, truth, seed=3)
    assert len(te) == 10 and len(va) == 4 and len(tr) == 16
    assert not (set(tr) & set(va) or set(tr) & set(te) or set(va) & set(te))
    np.testing.assert_array_equal(te_truth[:, 0], np.repeat(te, sizes[te]))
