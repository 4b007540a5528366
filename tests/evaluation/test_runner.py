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


# ============================================================== issue 14: splitters, test set,
# resumable runs, Dask fault handling
class CountingRidge(ToyPooledRidge):
    """ToyPooledRidge that counts its fits (class-wide, sequential backend) and can stop the
    run at a given fit with KeyboardInterrupt, like a user's Ctrl-C."""

    n_fits = 0
    interrupt_at: int | None = None

    def fit(self, X, Y):
        type(self).n_fits += 1
        if type(self).interrupt_at is not None and type(self).n_fits == type(self).interrupt_at:
            raise KeyboardInterrupt
        return super().fit(X, Y)


def _by_hand(ds, tr, te, **params):
    est = ToyPooledRidge(**params).fit(ds.bags[tr], ds.Y[tr])
    return compute_metrics(ds.Y[te], est.decision_function(ds.bags[te]),
                           est.predict(ds.bags[te]), metrics=["ranking_loss", "hamming_loss"])


@pytest.mark.parametrize("kind", ["kfold", "shuffle", "group", "int", "pairs"])
def test_sklearn_splitters_and_index_pairs(kind):
    from sklearn import model_selection as skms

    ds = _dataset(n=48)
    groups = np.arange(48) % 6
    sp = {"kfold": skms.KFold(3, shuffle=True, random_state=1),
          "shuffle": skms.ShuffleSplit(n_splits=2, test_size=0.25, random_state=0),
          "group": skms.GroupKFold(n_splits=3), "int": 4,
          "pairs": [(np.arange(0, 30), np.arange(30, 48)), (np.arange(18, 48), np.arange(18))]
          }[kind]
    res = evaluate({"r": ToyPooledRidge()}, ds, sp, metrics=["ranking_loss", "hamming_loss"],
                   backend="sequential", progress=False,
                   groups=groups if kind == "group" else None)
    assert res.errors.empty
    if kind == "int":
        expect_splits = list(KFold(n_splits=4, random_state=0).split(ds))
    elif kind == "pairs":
        expect_splits = sp
    else:
        expect_splits = list(sp.split(np.zeros((48, 1)), ds.Y,
                                      groups if kind == "group" else None))
    assert res.meta["n_splits"] == len(expect_splits)
    if kind == "group":  # no group on both sides
        for tr, te in expect_splits:
            assert not set(groups[tr]) & set(groups[te])
    t = res.table
    for s, (tr, te) in enumerate(expect_splits):
        for m, v in _by_hand(ds, tr, te).items():
            got = t[(t.split == s) & (t.metric == m)]["value"].item()
            assert got == pytest.approx(v, abs=1e-12)


def test_bad_splits_are_refused_with_the_split_named():
    ds = _dataset(n=20)
    with pytest.raises(ValueError, match="split 1: empty test part"):
        evaluate({"r": ToyPooledRidge()}, ds, [(np.arange(10), np.arange(10, 20)),
                                               (np.arange(20), np.arange(0))],
                 backend="sequential", progress=False)
    with pytest.raises(ValueError, match="split 0: train index out of range for 20 bags"):
        evaluate({"r": ToyPooledRidge()}, ds, [(np.arange(25), np.arange(3))],
                 backend="sequential", progress=False)
    with pytest.raises(TypeError, match="cannot split with float"):
        evaluate({"r": ToyPooledRidge()}, ds, 0.5, backend="sequential", progress=False)


def test_given_test_set_and_evaluate_train_test():
    from mimlkit.evaluation import evaluate_train_test

    ds = _dataset(n=60)
    train, test = ds.subset(np.arange(40)), ds.subset(np.arange(40, 60))
    perm = [2, 0, 1]  # the test file lists the labels in another order
    test_perm = MIMLDataset(Y=test.Y[:, perm], label_names=[test.label_names[i] for i in perm],
                            bags=test.bags, name="toy-test")
    res = evaluate_train_test({"r": ToyPooledRidge()}, train, test_perm,
                              metrics=["ranking_loss", "hamming_loss"], backend="sequential",
                              progress=False)
    assert res.meta["n_splits"] == 1 and res.meta["split_sizes"] == [[40, 20]]
    assert res.meta["splitter"]["splitter"] == "TrainTest"
    for m, v in _by_hand(ds, np.arange(40), np.arange(40, 60)).items():
        assert res.table.set_index("metric")["value"][m] == pytest.approx(v, abs=1e-12)
    same = evaluate({"r": ToyPooledRidge()}, train, test=test_perm,
                    metrics=["ranking_loss", "hamming_loss"], backend="sequential",
                    progress=False)
    pd.testing.assert_frame_equal(_values(res), _values(same))
    other = MIMLDataset(Y=test.Y, label_names=["sky", "sea", "cat"], bags=test.bags)
    with pytest.raises(ValueError, match="other labels than training set"):
        evaluate_train_test({"r": ToyPooledRidge()}, train, other, progress=False)
    narrow = MIMLDataset(Y=test.Y, label_names=test.label_names,
                         bags=Bags(test.bags.instances[:, :2], test.bags.offsets))
    with pytest.raises(ValueError, match="2 features per instance"):
        evaluate_train_test({"r": ToyPooledRidge()}, train, narrow, progress=False)
    with pytest.raises(ValueError, match="either a splitter or a test set"):
        evaluate({"r": ToyPooledRidge()}, train, "kfold:3", test=test, progress=False)


def test_checkpoint_resumes_after_an_interrupt(tmp_path):
    ds = _dataset(n=48)
    sp = KFold(n_splits=4, random_state=0)
    learners = {"a": CountingRidge(alpha=1.0), "b": CountingRidge(alpha=5.0)}
    kw = dict(metrics=["ranking_loss", "per_label_ap"], backend="sequential", progress=False,
              keep_scores=True)
    ref = evaluate(learners, ds, sp, **kw)
    ck = tmp_path / "sub" / "run.jsonl"
    CountingRidge.n_fits, CountingRidge.interrupt_at = 0, 6
    try:
        with pytest.raises(KeyboardInterrupt):
            evaluate(learners, ds, sp, checkpoint=ck, **kw)
    finally:
        CountingRidge.interrupt_at = None
    lines = ck.read_text().splitlines()
    assert len(lines) == 1 + 5  # header + the five jobs finished before the interrupt
    CountingRidge.n_fits = 0
    res = evaluate(learners, ds, sp, checkpoint=ck, **kw)
    assert CountingRidge.n_fits == 3 and res.meta["resumed_jobs"] == 5
    pd.testing.assert_frame_equal(_values(ref), _values(res), check_exact=True)
    for ln in ("a", "b"):
        for s in range(4):
            for k in ("test_idx", "scores", "y_pred"):
                np.testing.assert_array_equal(ref.scores[ln][s][k], res.scores[ln][s][k])
    # a third run fits nothing; a torn last line (crash mid-write) is dropped
    with open(ck, "ab") as fh:
        fh.write(b'{"key": "abc", "job": {"lear')
    CountingRidge.n_fits = 0
    again = evaluate(learners, ds, sp, checkpoint=ck, **kw)
    assert CountingRidge.n_fits == 0 and again.meta["resumed_jobs"] == 8
    assert ck.read_bytes().endswith(b"\n")
    # other parameters -> other jobs: run again
    evaluate({"a": CountingRidge(alpha=2.0)}, ds, sp, checkpoint=ck, **kw)
    assert CountingRidge.n_fits == 4
    # another dataset is refused, naming the file
    with pytest.raises(ValueError, match="run.jsonl: checkpoint of another dataset"):
        evaluate(learners, _dataset(n=48, seed=1), sp, checkpoint=ck, **kw)


def test_failed_jobs_are_rerun_on_resume(tmp_path):
    ds = _dataset(n=30)
    ck = tmp_path / "run.jsonl"
    first = evaluate({"f": ToyPooledRidge(fail=True)}, ds, KFold(n_splits=3), checkpoint=ck,
                     backend="sequential", progress=False, metrics=["ranking_loss"])
    assert len(first.errors) == 3
    again = evaluate({"f": ToyPooledRidge(fail=True)}, ds, KFold(n_splits=3), checkpoint=ck,
                     backend="sequential", progress=False, metrics=["ranking_loss"])
    assert again.meta["resumed_jobs"] == 0 and len(again.errors) == 3


def test_scheduler_needs_dask_and_unreachable_scheduler_fails_fast():
    import socket
    import time

    ds = _dataset(n=20)
    with pytest.raises(ValueError, match="scheduler= needs backend='dask'"):
        evaluate({"r": ToyPooledRidge()}, ds, "kfold:2", scheduler="tcp://127.0.0.1:1",
                 progress=False)
    pytest.importorskip("dask.distributed")
    with socket.socket() as s:  # a free port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    with pytest.raises(ConnectionError) as err:
        evaluate({"r": ToyPooledRidge()}, ds, "kfold:2", backend="dask",
                 scheduler=f"tcp://127.0.0.1:{port}", connect_timeout=1.0, progress=False)
    assert time.perf_counter() - t0 < 15
    msg = str(err.value)
    assert "\n" not in msg and f"127.0.0.1:{port} is unreachable within 1 s" in msg


class KillerRidge(ToyPooledRidge):
    """Kills its own (Dask worker) process on its first fit anywhere (marker file)."""

    def __init__(self, alpha=1.0, noise=0.0, random_state=None, fail=False, marker=""):
        super().__init__(alpha=alpha, noise=noise, random_state=random_state, fail=fail)
        self.marker = marker

    def fit(self, X, Y):
        import os
        import signal
        from pathlib import Path

        if self.marker and not Path(self.marker).exists():
            Path(self.marker).touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return super().fit(X, Y)


@pytest.mark.slow
def test_dask_job_survives_a_killed_worker(tmp_path):
    pytest.importorskip("dask.distributed")
    from dask.distributed import Client, LocalCluster

    ds = _dataset(n=48)
    sp = KFold(n_splits=4, random_state=0)
    kw = dict(metrics=["ranking_loss", "hamming_loss"], progress=False)
    ref = evaluate({"k": KillerRidge()}, ds, sp, backend="sequential", **kw)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        res = evaluate({"k": KillerRidge(marker=str(tmp_path / "killed"))}, ds, sp,
                       backend="dask", scheduler=client, checkpoint=tmp_path / "ck.jsonl", **kw)
    assert (tmp_path / "killed").exists()  # a worker really died
    assert res.errors.empty
    pd.testing.assert_frame_equal(_values(ref), _values(res), check_exact=True)


@pytest.mark.slow
def test_dask_tasks_lost_with_a_worker_become_error_rows(tmp_path):
    pytest.importorskip("dask.distributed")
    import dask
    from dask.distributed import Client, LocalCluster

    ds = _dataset(n=48)
    learners = {"ok": ToyPooledRidge(), "k": KillerRidge(marker=str(tmp_path / "killed"))}
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                         dashboard_address=None) as cluster, Client(cluster) as client:
        res = evaluate(learners, ds, KFold(n_splits=3, random_state=0), backend="dask",
                       scheduler=client, retries=0, metrics=["ranking_loss"], progress=False)
    # the tasks on the dead worker (the killer's and any queued behind it) become error
    # rows; the rest of the run goes on and every job has a row
    errs = res.errors
    assert "k" in set(errs["learner"])
    assert errs["error"].str.startswith("KilledWorker").all()
    ok = res.table[res.table.metric == "ranking_loss"]
    assert len(ok) + len(errs) == 6 and np.isfinite(ok["value"]).all()
