"""Running ``evaluate`` for the CLI and the suites: protocol strings to splitters, a fixed
split, the Dask client, and ``run_evaluation`` (what ``mimlkit evaluate`` runs)."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

import numpy as np

from mimlkit.evaluation.results_io import _Table, dataset_name_from_path, environment

__all__ = ["FixedSplit", "dask_client", "make_splitter", "check_splitter", "suite_metrics",
           "run_evaluation"]


class FixedSplit:
    """One predefined (train, test) split (e.g. Mulan's official train/test files)."""

    def __init__(self, train_idx: np.ndarray, test_idx: np.ndarray) -> None:
        self.train_idx = np.asarray(train_idx)
        self.test_idx = np.asarray(test_idx)

    def split(self, X: Any = None, Y: Any = None, groups: Any = None):
        yield self.train_idx, self.test_idx

    def get_n_splits(self, X: Any = None, Y: Any = None, groups: Any = None) -> int:
        return 1

    def __repr__(self) -> str:
        return f"FixedSplit(n_train={len(self.train_idx)}, n_test={len(self.test_idx)})"



@contextmanager
def dask_client(scheduler: str | None, n_workers: int):
    """A dask.distributed Client: to ``scheduler`` when given, else a LocalCluster with
    ``n_workers`` single-threaded worker processes (closed on exit)."""
    from dask.distributed import Client, LocalCluster

    if scheduler:
        client = Client(scheduler)
        try:
            yield client
        finally:
            client.close()
        return
    cluster = LocalCluster(n_workers=max(int(n_workers), 1), threads_per_worker=1,
                           processes=True, dashboard_address=None)
    client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def make_splitter(protocol: str, train_size: float | None = None, seed: int = 0):
    """Splitter from a protocol string (``mimlkit.evaluation.parse_protocol``); a
    ``train_size`` (fraction < 1, or a number of bags >= 1 for ``repeat``) is folded into
    the protocol string unless that already gives one."""
    from mimlkit.evaluation import parse_protocol

    parts = [p.strip() for p in str(protocol).strip().lower().split(":")]
    name = parts[0]
    train_n = None
    if train_size is not None:
        ts = float(train_size)
        if ts <= 0:
            raise ValueError(f"--train-size must be positive, got {train_size}")
        if name in ("holdout", "group-holdout") and len(parts) == 1:
            if ts >= 1:
                raise ValueError("holdout takes a training fraction < 1 (or use repeat:N "
                                 "with a number of training bags)")
            parts.append(repr(1.0 - ts))
        elif name in ("repeat", "group-repeat"):
            if len(parts) == 1:
                parts.append("30")
            if ts >= 1 and name == "repeat":
                train_n = int(ts)
            elif len(parts) == 2:
                parts.append(repr(ts))
        else:
            raise ValueError(f"--train-size does not apply to protocol {protocol!r}")
    return parse_protocol(":".join(parts), random_state=seed, train_n=train_n)


def check_splitter(splitter: Any, dataset: Any, source: str | None = None) -> None:
    """Fail early, naming the dataset, when the protocol cannot split it (e.g. fewer bags
    than folds), before any progress output or work."""
    try:
        for _ in splitter.split(dataset, dataset.Y, dataset.groups):
            break
    except ValueError as exc:
        src = source or dataset.name
        raise ValueError(f"{src}: {exc}") from None


def suite_metrics(metrics: list[str] | None) -> list[str]:
    """The suite's metrics: given, or the runner's defaults + per-label AP."""
    if metrics:
        return list(metrics)
    from mimlkit.metrics import DEFAULT_METRICS

    return [*DEFAULT_METRICS, "per_label_ap"]


def _evaluate(estimators: dict[str, Any], dataset: Any, splitter: Any,
              metrics: list[str] | None, jobs: int, backend: str, inputs: dict[str, str],
              scheduler: Any = None, progress: bool = False, keep_scores: bool = False,
              **kwargs: Any):
    """Call ``mimlkit.evaluation.evaluate``; returns its tidy pandas table (and, with
    ``keep_scores``, the runner's ``{learner: {split: {"test_idx", "scores", ...}}}``).

    The runner reads an estimator's input kind from an ``input_kind`` attribute (default
    "bags"), so image learners are tagged here from the registry."""
    from mimlkit.evaluation import evaluate

    for name, est in estimators.items():
        kind = inputs.get(name, "bags")
        if kind != "bags" and getattr(est, "input_kind", "bags") != kind:
            est.input_kind = kind
    res = evaluate(estimators, dataset, splitter, metrics=metrics, n_jobs=jobs,
                   backend=backend, scheduler=scheduler, progress=progress,
                   keep_scores=keep_scores, **kwargs)
    table = res.table if hasattr(res, "table") else res
    return (table, getattr(res, "scores", None) or {}) if keep_scores else table


def run_evaluation(dataset: Any, learners: list[str], params: dict[str, dict[str, Any]], *,
                   protocol: str = "holdout", train_size: float | None = None,
                   metrics: list[str] | None = None, seed: int = 0, jobs: int = 1,
                   backend: str = "loky", scheduler: str | None = None, console: Any = None,
                   command: str | None = None, source: str | None = None,
                   preset: str | None = None, tune: bool = False, test: Any = None,
                   checkpoint: Any = None):
    """What ``mimlkit evaluate`` runs: returns (EvaluationLike with ``.table``, environment).
    ``source`` (the dataset path) names the data in early errors; ``preset`` is a
    ``mimlkit.registry.PRESETS`` name; ``tune`` wraps each learner with a search space in
    a ``TunedLearner`` (choices on inner folds of each training part only); ``test`` (a
    dataset) scores on it after training on all of ``dataset`` (an official split);
    ``checkpoint`` (a path) records finished jobs and skips them on a rerun."""
    from mimlkit.registry import create, learner_spec

    if not str(getattr(dataset, "name", "") or "").strip() and source:
        try:  # a loader that gave no name (e.g. labels.csv in the working folder)
            dataset.name = dataset_name_from_path(source)
        except AttributeError:
            pass
    estimators = {name: create(name, preset=preset, **params.get(name, {})) for name in learners}
    if tune:
        from mimlkit.evaluation.tuning import tuned

        estimators = {name: tuned(est, random_state=seed) for name, est in estimators.items()}
    inputs = {name: learner_spec(name).input for name in learners}
    for kind in set(inputs.values()):
        dataset.inputs(kind)  # clear error now if the dataset lacks this input kind
    splitter = None if test is not None else make_splitter(protocol, train_size, seed)
    if splitter is not None:
        check_splitter(splitter, dataset, source)
    if console is not None:
        console.print(f"evaluating {', '.join(learners)} on {dataset.name} "
                      f"({len(dataset)} bags, {protocol}, backend {backend}) ...")
    extra: dict[str, Any] = {}
    if test is not None:
        extra["test"] = test
    if checkpoint is not None:
        extra["checkpoint"] = checkpoint
    table = _evaluate(estimators, dataset, splitter, metrics, jobs, backend, inputs,
                      scheduler=scheduler if backend == "dask" else None,
                      progress=console is not None, **extra)
    errors = table[table["metric"] == "error"] if "metric" in table else table.iloc[0:0]
    if len(errors) and len(errors) == table["split"].nunique() * len(learners):
        first = errors.iloc[0]
        raise ValueError(f"{source or dataset.name}: every run failed; {first['learner']}: "
                         f"{first['error']}")
    if console is not None:
        for name, grp in errors.groupby("learner"):
            console.print(f"[red]{_esc(name)} failed on {len(grp)} split(s)[/]: "
                          f"{_esc(' '.join(str(grp['error'].iloc[0]).split())[:300])}")
    env = environment(seeds={"split": seed}, command=command)
    env["protocol"] = protocol
    env["preset"] = preset or "default"
    if test is not None:
        env["protocol"] = "given test set"
    env["tuned"] = bool(tune)
    return _Table(table), env



def _esc(text: Any) -> str:
    from rich.markup import escape

    return escape(str(text))
