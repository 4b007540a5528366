"""Nested tuning (inner folds of the training part only) and the zoo suite."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import BaseEstimator

from mimlkit.datasets import make_miml_bags
from mimlkit.evaluation import evaluate
from mimlkit.evaluation.runs import FixedSplit
from mimlkit.evaluation.tuning import SEARCH_SPACES, TunedLearner, search_space, tuned
from mimlkit.evaluation.zoo import run_zoo, zoo_checks
from mimlkit.learners.base import MIMLClassifierMixin
from mimlkit.registry import create, list_learners


class _Spy(MIMLClassifierMixin, BaseEstimator):
    """Scores = training label frequency scaled by ``w``; records every bag it sees."""

    seen: list = []

    def __init__(self, w: float = 1.0) -> None:
        self.w = w

    def fit(self, X, Y):
        bags, Y = self._validate_fit(X, Y)
        _Spy.seen.append(np.round(bags.instances[:, 0], 6))
        self.p_ = Y.mean(axis=0) * self.w
        return self

    def decision_function(self, X):
        bags = self._validate_bags(X, reset=False)
        return np.tile(self.p_, (bags.n_bags, 1))


def test_tuning_never_sees_the_test_part():
    ds = make_miml_bags(n_bags=60, n_labels=3, random_state=0)
    # make instance ids recoverable: feature 0 = bag index
    inst = ds.bags.instances.copy()
    inst[:, 0] = np.repeat(np.arange(60), ds.bags.sizes)
    bags = ds.bags.with_instances(inst)
    tr, te = np.arange(40), np.arange(40, 60)
    _Spy.seen = []
    res = evaluate({"spy": TunedLearner(_Spy(), {"w": [0.5, 1.0, 2.0]}, cv=3)},
                   (bags, ds.Y), FixedSplit(tr, te), metrics=["average_precision"],
                   progress=False, tune=False)
    assert res.errors.empty
    seen = np.concatenate(_Spy.seen) if _Spy.seen else np.array([])
    assert seen.size and seen.max() < 40  # only training bags were ever fitted on


def test_evaluate_tune_records_choices_per_split():
    ds = make_miml_bags(n_bags=90, n_labels=3, random_state=1)
    res = evaluate(["pooled-linear"], ds, "repeat:2", metrics=["average_precision"],
                   progress=False, tune=True, tune_cv=2)
    chosen = res.meta["tuned"]["params"]["pooled-linear"]
    assert set(chosen) == {0, 1}
    for params in chosen.values():
        assert params["C"] in SEARCH_SPACES["pooled-linear"]["C"]


def test_search_spaces_name_real_parameters():
    for name, space in SEARCH_SPACES.items():
        if name not in list_learners():
            continue
        try:
            est = create(name)
        except ImportError:
            continue
        params = est.get_params()
        for key in space:
            assert key in params, f"{name}: search space names unknown parameter {key!r}"
        assert search_space(est) == space
    assert isinstance(tuned(create("pooled-linear")), TunedLearner)


def _tiny_root(tmp_path):
    """A data root with a small MIML ARFF in the Scene location."""
    from mimlkit.datasets import save_npz  # noqa: F401  (import check only)

    ds = make_miml_bags(n_bags=60, n_labels=3, n_features=4, random_state=2)
    d = tmp_path / "miml_scene"
    d.mkdir()
    lines = ["@relation tiny", "@attribute id {" + ",".join(str(i) for i in range(60)) + "}",
             "@attribute bag relational"]
    lines += [f"  @attribute f{j} numeric" for j in range(4)]
    lines += ["@end bag"] + [f"@attribute l{k} {{0,1}}" for k in range(3)] + ["@data"]
    for i, bag in enumerate(ds.bags):
        inst = "\\n".join(",".join(f"{v:.5f}" for v in row) for row in bag)
        lines.append(f'{i},"{inst}",' + ",".join(str(int(v)) for v in ds.Y[i]))
    (d / "miml_03_data.arff").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_zoo_runs_and_checks(tmp_path):
    root = _tiny_root(tmp_path)
    out = tmp_path / "zoo"
    payload = run_zoo(root, learners=["prior", "empty", "pooled-linear"], out_dir=out,
                      stress=False, report=False, log=lambda m: None)
    assert (out / "results.json").is_file() and (out / "results.md").is_file()
    md = (out / "results.md").read_text()
    assert "scene" in md and "pooled-linear" in md and "wins / ties / losses" in md
    per = payload["checks"]["per_dataset"]["scene"]
    assert per["empty"]["ap"] == pytest.approx(per["prior"]["ap"])  # same scores
    assert per["empty"]["ok_hl"]  # the empty learner is its own hamming reference
    assert {r["dataset"] for r in payload["rows"]} == {"scene"}
    assert payload["datasets"]["emotions"]["skipped"].startswith("absent")


def test_zoo_checks_flag_failures_and_refusals():
    rows = []
    for lrn, ap, hl in [("prior", 0.5, 0.3), ("empty", 0.5, 0.2), ("pooled-linear", 0.7, 0.15),
                        ("bad", 0.51, 0.25)]:
        rows += [{"dataset": "d", "learner": lrn, "split": 0, "metric": "average_precision",
                  "label": None, "value": ap},
                 {"dataset": "d", "learner": lrn, "split": 0, "metric": "hamming_loss",
                  "label": None, "value": hl}]
    rows.append({"dataset": "d", "learner": "shy", "split": 0, "metric": "error",
                 "label": None, "value": None,
                 "error": "mimlkit.learners.base.RefusedData: too many labels"})
    c = zoo_checks(rows)["per_dataset"]["d"]
    assert c["bad"]["status"] == "fail" and not c["bad"]["ok_ap"] and not c["bad"]["ok_hl"]
    assert c["pooled-linear"]["status"] == "pass"
    assert c["shy"]["status"] == "refused" and c["shy"]["reason"] == "too many labels"


@pytest.mark.parametrize("how", ["auto", "robust", "standard", "minmax", None])
def test_instance_scaling_modes(how):
    from mimlkit.learners.classic._instance_scaling import apply_scaling, fit_scaling

    rng = np.random.default_rng(0)
    X = np.hstack([rng.normal(size=(500, 2)) * [1e-5, 3e3],
                   (rng.random((500, 2)) < 0.05).astype(float)])
    off, fac = fit_scaling(X, how)
    Z = apply_scaling(X, off, fac)
    if how in ("auto", "robust", "standard"):
        assert 0.3 < Z[:, 0].std() < 3 and 0.3 < Z[:, 1].std() < 3
    if how == "auto":
        assert np.array_equal(Z[:, 2:], X[:, 2:])  # 0/1 columns untouched


def test_auto_scaling_keeps_commensurate_features_relative():
    from mimlkit.learners.classic._instance_scaling import fit_scaling

    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 3)) * [10.0, 20.0, 40.0]
    _, fac = fit_scaling(X, "auto")
    assert np.allclose(fac, fac[0])  # one common scale: relative geometry kept
    _, fac2 = fit_scaling(X * [1, 1, 1e4], "auto")
    assert not np.allclose(fac2, fac2[0])  # orders of magnitude apart: per feature
