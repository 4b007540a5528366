"""The evaluation runner: backends give identical values, tidy table, JSON/CSV round trip,
markdown rendering, error rows; GridSearchCV / cross_validate with bag-level splitters."""

from __future__ import annotations

import json
import sys

import cloudpickle
import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator
from sklearn.model_selection import GridSearchCV, cross_validate

from mimlkit import registry
from mimlkit.bags import Bags
from mimlkit.datasets.base import MIMLDataset
from mimlkit.evaluation import (
    TABLE_COLUMNS,
    EvaluationResult,
    GroupKFold,
    HoldOut,
    KFold,
    RepeatedRandomSplit,
    evaluate,
)
from mimlkit.learners.base import MIMLClassifierMixin
from mimlkit.metrics import DEFAULT_METRICS, compute_metrics

# worker processes cannot import this test module by name: ship its classes by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])


class ToyPooledRidge(MIMLClassifierMixin, BaseEstimator):
    """Mean-pooled bags + ridge regression onto +-1 targets (test learner). ``noise`` adds
    seeded jitter to the features so that ``random_state`` matters; ``fail_if_label``
    raises on a training set where that label has fewer than 5 positives."""

    def __init__(self, alpha=1.0, noise=0.0, random_state=None, fail=False):
        self.alpha = alpha
        self.noise = noise
        self.random_state = random_state
        self.fail = fail

    def fit(self, X, Y):
        bags, Y = self._validate_fit(X, Y)
        if self.fail:
            raise RuntimeError("toy learner failed on purpose")
        Z = np.hstack([bags.pool("mean"), np.ones((bags.n_bags, 1))]).astype(float)
        rng = np.random.default_rng(self.random_state)
        Z = Z + self.noise * rng.normal(size=Z.shape)
        T = 2.0 * Y - 1.0
        self.coef_ = np.linalg.solve(Z.T @ Z + self.alpha * np.eye(Z.shape[1]), Z.T @ T)
        return self

    def decision_function(self, X):
        bags = self._validate_bags(X, reset=False)
        Z = np.hstack([bags.pool("mean"), np.ones((bags.n_bags, 1))])
        return Z @ self.coef_


def _dataset(n=60, q=3, d=4, seed=0):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 5, n)
    centers = rng.normal(size=(q, d)) * 2
    Y = (rng.random((n, q)) < 0.4).astype(np.int8)
    Y[Y.sum(1) == 0, 0] = 1
    inst = []
    for i in range(n):
        x = rng.normal(size=(sizes[i], d))
        for k in np.flatnonzero(Y[i]):
            x[rng.integers(sizes[i])] += centers[k]
        inst.append(x)
    bags = Bags.from_list(inst)
    return MIMLDataset(Y=Y, label_names=["sky", "sea", "tree"][:q], bags=bags,
                       groups=np.arange(n) // 4, name="toy")


LEARNERS = {"ridge": ToyPooledRidge(alpha=1.0),
            "noisy": ToyPooledRidge(alpha=10.0, noise=0.5)}  # random_state=None -> job seed


def _values(res: EvaluationResult) -> pd.DataFrame:
    cols = ["learner", "split", "metric", "label", "value"]
    return res.table[cols].sort_values(cols[:4], na_position="first").reset_index(drop=True)


def test_sequential_result_table_and_values():
    ds = _dataset()
    sp = RepeatedRandomSplit(n_repeats=3, random_state=0)
    res = evaluate(LEARNERS, ds, sp, backend="sequential", progress=False)
    t = res.table
    assert list(t.columns) == TABLE_COLUMNS
    assert set(t["learner"]) == {"ridge", "noisy"}
    assert set(t["metric"]) == set(DEFAULT_METRICS)
    assert len(t) == 2 * 3 * len(DEFAULT_METRICS)
    assert t["label"].isna().all() and t["error"].isna().all()
    assert (t["fit_seconds"] >= 0).all() and (t["predict_seconds"] >= 0).all()
    # recompute split 1 of "ridge" by hand
    tr, te = list(sp.split(ds))[1]
    est = ToyPooledRidge(alpha=1.0).fit(ds.bags[tr], ds.Y[tr])
    expect = compute_metrics(ds.Y[te], est.decision_function(ds.bags[te]),
                             est.predict(ds.bags[te]))
    got = t[(t.learner == "ridge") & (t.split == 1)].set_index("metric")["value"]
    for m, v in expect.items():
        assert got[m] == pytest.approx(v, abs=1e-12)
    assert res.meta["n_splits"] == 3 and res.meta["dataset"]["n_bags"] == 60
    assert res.meta["learners"]["noisy"]["params"]["alpha"] == 10.0
    assert len(res.meta["seeds"]["noisy"]) == 3
    summ = res.summary()
    assert set(summ.columns) == {"learner", "metric", "mean", "std", "n_splits"}
    assert (summ["n_splits"] == 3).all()


def test_backends_give_identical_values():
    pytest.importorskip("dask.distributed")
    from dask.distributed import Client, LocalCluster

    ds = _dataset()
    sp = KFold(n_splits=4, random_state=0)
    ref = _values(evaluate(LEARNERS, ds, sp, backend="sequential", progress=False))
    loky = _values(evaluate(LEARNERS, ds, sp, backend="loky", n_jobs=2, progress=False))
    thr = _values(evaluate(LEARNERS, ds, sp, backend="threading", n_jobs=2, progress=False))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, host="127.0.0.1",
                      protocol="tcp://",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        dask = _values(evaluate(LEARNERS, ds, sp, backend="dask", scheduler=client,
                                progress=False))
    for other in (loky, thr, dask):
        pd.testing.assert_frame_equal(ref, other, check_exact=True)
    # the noisy learner really used its (job) seed: values differ from the noiseless one
    assert not np.allclose(ref[ref.learner == "noisy"]["value"].to_numpy(),
                           ref[ref.learner == "ridge"]["value"].to_numpy())


def test_error_rows_do_not_stop_the_run():
    ds = _dataset()
    name = "h2-test-broken"
    registry.register_learner(name, "mimlkit.no_such_module:Nope", family="user",
                              overwrite=True)
    learners = {"ok": ToyPooledRidge(), "bad": ToyPooledRidge(fail=True)}
    res = evaluate(learners, ds, HoldOut(), backend="sequential", progress=False)
    err = res.errors
    assert list(err["learner"]) == ["bad"]
    assert "failed on purpose" in err["error"].iloc[0]
    assert res.table[res.table.learner == "ok"]["error"].isna().all()
    res2 = evaluate([name, ToyPooledRidge()], ds, HoldOut(), backend="sequential",
                    progress=False)
    assert "no_such_module" in res2.errors["error"].iloc[0]
    assert "ToyPooledRidge" in set(res2.table["learner"])
    md = res.to_markdown()
    assert "bad [1]" in md and "1/1 splits failed" in md
    with pytest.raises(KeyError, match="unknown learner"):
        evaluate(["definitely-not-a-learner"], ds, HoldOut(), progress=False)


def test_json_csv_roundtrip_and_scores(tmp_path):
    ds = _dataset()
    res = evaluate({"ridge": ToyPooledRidge()}, ds, RepeatedRandomSplit(n_repeats=2),
                   metrics=["ranking_loss", "per_label_ap", "macro_auc", "overall"],
                   backend="sequential", progress=False, keep_scores=True)
    per = res.table[res.table.metric == "per_label_ap"]
    assert sorted(set(per["label"])) == ["sea", "sky", "tree"]
    assert res.summary()["metric"].tolist() == ["ranking_loss", "macro_auc", "overall"]
    assert set(res.summary(per_label=True).columns) >= {"label"}
    sc = res.scores["ridge"][0]
    assert sc["scores"].shape == (sc["test_idx"].size, 3)
    p = res.to_json(tmp_path / "sub" / "res.json")
    assert json.loads(p.read_text())["format"] == "mimlkit-evaluation"
    back = EvaluationResult.from_json(p)
    pd.testing.assert_frame_equal(back.table, res.table)
    assert back.meta == json.loads(json.dumps(back.meta))
    np.testing.assert_allclose(back.scores["ridge"][1]["scores"], res.scores["ridge"][1]["scores"])
    assert back.to_markdown() == res.to_markdown()
    c = res.to_csv(tmp_path / "res.csv")
    assert pd.read_csv(c).shape == res.table.shape
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="bad.json"):
        EvaluationResult.from_json(bad)


def test_markdown_arrows_and_bold():
    rows = []
    for ln, rl, ap in [("a", [0.1, 0.2], [0.9, 0.8]), ("b", [0.3, 0.3], [0.5, 0.6])]:
        for s in range(2):
            rows += [
                {"learner": ln, "split": s, "metric": "ranking_loss", "label": None,
                 "value": rl[s], "fit_seconds": 1.0, "predict_seconds": 0.1, "n_excluded": 0,
                 "error": None},
                {"learner": ln, "split": s, "metric": "average_precision", "label": None,
                 "value": ap[s], "fit_seconds": 1.0, "predict_seconds": 0.1, "n_excluded": 0,
                 "error": None}]
    from mimlkit.evaluation.runner import _make_table

    res = EvaluationResult(_make_table(rows), {"n_splits": 2})
    md = res.to_markdown(precision=2)
    lines = md.strip().splitlines()
    assert lines[0] == "| learner | RL ↓ | AP ↑ | fit (s) | predict (s) |"
    assert "| a | **0.15 ± 0.07** | **0.85 ± 0.07** | 1.00 | 0.10 |" in lines
    assert "| b | 0.30 ± 0.00 | 0.55 ± 0.07 | 1.00 | 0.10 |" in lines
    md2 = res.to_markdown(metrics=["ap"], timing=False)
    assert md2.splitlines()[0] == "| learner | AP ↑ |"


def test_evaluate_accepts_protocol_string_and_arrays():
    ds = _dataset(n=40)
    res = evaluate({"r": ToyPooledRidge()}, (list(ds.bags), ds.Y), "kfold:4",
                   metrics=["hamming_loss"], backend="sequential", progress=False)
    assert len(res.table) == 4
    assert res.meta["splitter"]["splitter"] == "KFold"


def test_group_splitter_via_dataset_groups():
    ds = _dataset(n=48)
    res = evaluate({"r": ToyPooledRidge()}, ds, GroupKFold(n_splits=3),
                   metrics=["ranking_loss"], backend="sequential", progress=False)
    assert res.meta["n_splits"] == 3 and res.errors.empty


def test_gridsearch_and_cross_validate_with_bag_splitters():
    ds = _dataset(n=48)
    gs = GridSearchCV(ToyPooledRidge(), {"alpha": [0.1, 100.0]},
                      cv=KFold(n_splits=3, random_state=0))
    gs.fit(ds.bags, ds.Y)
    assert gs.best_params_["alpha"] in (0.1, 100.0)
    assert np.isfinite(gs.best_score_)
    assert gs.predict(ds.bags[:5]).shape == (5, 3)
    cv = cross_validate(ToyPooledRidge(), list(ds.bags), ds.Y, groups=ds.groups,
                        cv=GroupKFold(n_splits=4))
    assert len(cv["test_score"]) == 4 and np.all(np.isfinite(cv["test_score"]))


def test_global_rng_untouched_and_undefined_auc_note():
    ds = _dataset(n=30)
    Y = ds.Y.copy()
    Y[:, 2] = 0
    Y[0, 2] = 1  # label "tree": one positive bag -> single-class test parts
    ds2 = MIMLDataset(Y=Y, label_names=ds.label_names, bags=ds.bags)
    np.random.seed(123)
    expect = np.random.random()
    np.random.seed(123)
    res = evaluate({"r": ToyPooledRidge(noise=0.1)}, ds2, RepeatedRandomSplit(n_repeats=2),
                   metrics=["macro_auc"], backend="sequential", progress=True)
    assert np.random.random() == expect
    assert res.table["n_excluded"].max() == 1
    assert "single-class label(s)" in res.to_markdown()


@pytest.mark.slow
def test_dask_backend_starts_its_own_local_cluster():
    ds = _dataset()
    sp = KFold(n_splits=3)
    ref = _values(evaluate(LEARNERS, ds, sp, backend="sequential", progress=False))
    got = _values(evaluate(LEARNERS, ds, sp, backend="dask", n_jobs=2, progress=False))
    pd.testing.assert_frame_equal(ref, got, check_exact=True)
