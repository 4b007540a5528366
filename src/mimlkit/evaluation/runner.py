"""Evaluation runner: learners x splits in parallel, tidy results.

``evaluate(learners, dataset, splitter)`` fits a fresh clone of every learner on every
training part, scores the test part with ``mimlkit.metrics`` and returns an
``EvaluationResult`` whose ``.table`` has one row per (learner, split, metric[, label]).

Execution (``backend``):

- ``"loky"`` (default): joblib process pool; large arrays are memory-mapped, not copied.
- ``"threading"``: joblib threads (fine for learners that release the GIL).
- ``"sequential"``: a plain loop in this process (debugging, profiling).
- ``"dask"``: joblib's Dask backend on ``dask.distributed``: ``scheduler`` is an address
  (``"tcp://host:8786"``), a ``distributed.Client``, or ``None`` (a ``LocalCluster`` with
  ``n_jobs`` single-threaded worker processes is started and closed afterwards).

Every job is seeded from ``(random_state, learner name, split index)``: a learner whose
``random_state`` parameter is ``None`` gets that seed, and NumPy's / Python's global
generators (and torch's, when loaded) are seeded with it, so the metric values are the
same whatever the backend and the number of workers. Inner BLAS / OpenMP / torch threads
are capped to ``cpu_count // n_workers`` per job to avoid oversubscription.

A learner that raises on a split produces an ``error`` row (``metric == "error"``,
``value`` NaN, the exception text in ``error``) instead of stopping the run.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import random
import sys
import time
import traceback
import warnings
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mimlkit.metrics import DEFAULT_METRICS, METRICS, compute_metrics, resolve_metric

__all__ = ["evaluate", "evaluate_train_test", "EvaluationResult", "TABLE_COLUMNS"]

TABLE_COLUMNS = ["learner", "split", "metric", "label", "value", "fit_seconds",
                 "predict_seconds", "n_excluded", "error"]
_BACKENDS = ("loky", "threading", "sequential", "dask")
_FORMAT = "mimlkit-evaluation"
_FORMAT_VERSION = 1


# ============================================================================ helpers
def _jsonable(obj: Any) -> Any:
    """Plain JSON types (NaN/inf -> None); anything exotic becomes its repr."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.ndarray):
        return [_jsonable(x) for x in obj.tolist()]
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [_jsonable(x) for x in obj]
    if isinstance(obj, Path):
        return str(obj)
    return repr(obj)


def _atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    from mimlkit._io import atomic_write

    return atomic_write(path, text)


def _versions() -> dict[str, str]:
    import joblib
    import scipy
    import sklearn

    import mimlkit

    out = {"mimlkit": mimlkit.__version__, "python": platform.python_version(),
           "numpy": np.__version__, "scipy": scipy.__version__, "scikit-learn": sklearn.__version__,
           "pandas": pd.__version__, "joblib": joblib.__version__}
    if "torch" in sys.modules:
        out["torch"] = getattr(sys.modules["torch"], "__version__", "?")
    return out


def _job_seed(random_state: int, learner: str, split: int) -> int:
    ss = np.random.SeedSequence([int(random_state), zlib.crc32(learner.encode()), int(split)])
    return int(ss.generate_state(1)[0])


def _scores_of(est: Any, X: Any) -> np.ndarray:
    """Real-valued scores (n x q): decision_function, else predict_proba, else predict."""
    if hasattr(est, "decision_function"):
        return np.asarray(est.decision_function(X), dtype=float)
    if hasattr(est, "predict_proba"):
        proba = est.predict_proba(X)
        if isinstance(proba, list):  # scikit-learn multi-output: one (n x 2) per label
            return np.column_stack([np.asarray(p)[:, -1] for p in proba]).astype(float)
        return np.asarray(proba, dtype=float)
    return np.asarray(est.predict(X), dtype=float)


def _predict_from_scores(est: Any, X: Any, scores: np.ndarray) -> np.ndarray:
    """0/1 predictions, reusing the scores when the learner uses the shared mixin rule."""
    from mimlkit.learners.base import MIMLClassifierMixin, t_criterion_predict

    if isinstance(est, MIMLClassifierMixin) and type(est).predict is MIMLClassifierMixin.predict:
        return t_criterion_predict(scores, est._threshold(), est._use_t_criterion())
    return np.asarray(est.predict(X))


class _ThreadCap:
    """Cap BLAS/OpenMP (threadpoolctl) and torch intra-op threads inside one job."""

    def __init__(self, n: int | None) -> None:
        self.n = n
        self._ctl = None
        self._torch = None

    def __enter__(self):
        if self.n is None:
            return self
        try:
            from threadpoolctl import threadpool_limits

            self._ctl = threadpool_limits(limits=self.n)
        except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
            self._ctl = None
        torch = sys.modules.get("torch")
        if torch is not None:
            self._torch = torch.get_num_threads()
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        if self._ctl is not None:
            self._ctl.restore_original_limits()
        if self._torch is not None:
            sys.modules["torch"].set_num_threads(self._torch)
        return False


def _run_job(name: str, estimator: Any, X: Any, Y: np.ndarray, split: int,
             train: np.ndarray, test: np.ndarray, metrics: list[str],
             label_names: list[str], convention: str, seed: int, inner_threads: int | None,
             keep_scores: bool) -> dict[str, Any]:
    """Fit a clone on ``train``, score ``test``; never raises (errors become a record)."""
    from sklearn.base import clone

    from mimlkit.datasets.base import take

    out: dict[str, Any] = {"learner": name, "split": split, "seed": seed, "values": None,
                           "details": None, "fit_seconds": math.nan,
                           "predict_seconds": math.nan, "error": None, "scores": None}
    torch = sys.modules.get("torch")
    saved = (np.random.get_state(), random.getstate(),
             torch.random.get_rng_state() if torch is not None else None)
    try:
        with _ThreadCap(inner_threads):
            np.random.seed(seed % (2**32))
            random.seed(seed)
            if torch is not None:
                torch.manual_seed(seed)
            est = clone(estimator)
            params = est.get_params(deep=False) if hasattr(est, "get_params") else {}
            if "random_state" in params and params["random_state"] is None:
                est.set_params(random_state=seed % (2**31))
            X_train, X_test = take(X, train), take(X, test)
            t0 = time.perf_counter()
            est.fit(X_train, Y[train])
            out["fit_seconds"] = time.perf_counter() - t0
            if hasattr(est, "best_params_"):  # nested tuning: what the inner folds chose
                out["tuned_params"] = _jsonable(est.best_params_)
            t0 = time.perf_counter()
            scores = _scores_of(est, X_test)
            y_pred = _predict_from_scores(est, X_test, scores)
            out["predict_seconds"] = time.perf_counter() - t0
            values, details = compute_metrics(Y[test], scores, y_pred, metrics=metrics,
                                              label_names=label_names, convention=convention,
                                              return_details=True)
            out["values"], out["details"] = values, details
            if keep_scores:
                out["scores"] = {"test_idx": np.asarray(test), "scores": scores,
                                 "y_pred": np.asarray(y_pred, dtype=np.int8)}
    except Exception as exc:  # noqa: BLE001 - recorded as an error row
        tb = traceback.format_exception_only(type(exc), exc)
        out["error"] = "".join(tb).strip()
    finally:  # leave the caller's global generators as they were (sequential backend)
        np.random.set_state(saved[0])
        random.setstate(saved[1])
        if saved[2] is not None:
            torch.random.set_rng_state(saved[2])
    return out


def _records(job: dict[str, Any]) -> list[dict[str, Any]]:
    base = {"learner": job["learner"], "split": int(job["split"]),
            "fit_seconds": job["fit_seconds"], "predict_seconds": job["predict_seconds"]}
    if job["error"] is not None:
        return [{**base, "metric": "error", "label": None, "value": math.nan,
                 "n_excluded": 0, "error": job["error"]}]
    rows = []
    details = job["details"] or {}
    for metric, value in job["values"].items():
        if isinstance(value, Mapping):
            for label, v in value.items():
                rows.append({**base, "metric": metric, "label": str(label), "value": float(v),
                             "n_excluded": 0, "error": None})
        else:
            rows.append({**base, "metric": metric, "label": None, "value": float(value),
                         "n_excluded": int(details.get(metric, {}).get("n_excluded", 0)),
                         "error": None})
    return rows


def _make_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    df["split"] = df["split"].astype("int64")
    df["n_excluded"] = df["n_excluded"].fillna(0).astype("int64")
    for c in ("value", "fit_seconds", "predict_seconds"):
        df[c] = df[c].astype(float)
    df["label"] = df["label"].astype(object).where(df["label"].notna(), None)
    df["error"] = df["error"].astype(object).where(df["error"].notna(), None)
    return df


# ============================================================================ result
@dataclass
class EvaluationResult:
    """Tidy evaluation result.

    ``table``: one row per (learner, split, metric[, label]) with columns ``TABLE_COLUMNS``
    (``label`` is None for whole-set metrics; ``metric == "error"`` rows carry the exception
    text). ``meta``: dataset summary, splitter, seeds, versions, timings. ``scores``: with
    ``keep_scores=True``, ``{learner: {split: {"test_idx", "scores", "y_pred"}}}``.
    """

    table: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, dict[int, dict[str, np.ndarray]]] | None = None

    # ------------------------------------------------------------------ views
    @property
    def errors(self) -> pd.DataFrame:
        """The error rows (learner, split, error text)."""
        t = self.table
        return t.loc[t["metric"] == "error", ["learner", "split", "error"]].reset_index(drop=True)

    @property
    def learners(self) -> list[str]:
        return list(dict.fromkeys(self.table["learner"]))

    def summary(self, metrics: Sequence[str] | None = None,
                per_label: bool = False) -> pd.DataFrame:
        """Mean / std (ddof=1) / count over splits per learner and metric (error rows and,
        unless ``per_label``, per-label rows left out). Columns: learner, metric, [label,]
        mean, std, n_splits."""
        t = self.table[self.table["metric"] != "error"]
        if not per_label:
            t = t[t["label"].isna()]
        if metrics is not None:
            names = [resolve_metric(m) if _is_metric(m) else m for m in metrics]
            t = t[t["metric"].isin(names)]
        keys = ["learner", "metric"] + (["label"] if per_label else [])
        if t.empty:
            return pd.DataFrame(columns=[*keys, "mean", "std", "n_splits"])
        g = t.groupby(keys, sort=False, dropna=False)["value"]
        out = g.agg(mean="mean", std="std", n_splits="count").reset_index()
        return out

    def timings(self) -> pd.DataFrame:
        """Mean fit / predict seconds per learner (over successful splits)."""
        t = self.table[self.table["metric"] != "error"]
        t = t.drop_duplicates(["learner", "split"])
        return t.groupby("learner", sort=False)[["fit_seconds", "predict_seconds"]].mean()

    def to_markdown(self, metrics: Sequence[str] | None = None, precision: int = 3,
                    timing: bool = True) -> str:
        """Learner x metric table of "mean ± std" over splits; column headers carry the
        metric direction (↓ lower is better, ↑ higher is better) and, when several learners
        are compared, the best mean per metric (at the shown precision) is in bold. Learners
        with failed splits and macro-AUC's dropped single-class labels are footnoted."""
        summ = self.summary()
        if metrics is None:
            present = list(dict.fromkeys(summ["metric"]))
            metrics = [m for m in present if m in METRICS] + \
                [m for m in present if m not in METRICS]
        else:
            metrics = [resolve_metric(m) if _is_metric(m) else m for m in metrics]
        learners = self.learners
        cell: dict[tuple[str, str], str] = {}
        means: dict[tuple[str, str], float] = {}
        for row in summ.itertuples(index=False):
            means[(row.learner, row.metric)] = row.mean
            m = f"{row.mean:.{precision}f}" if np.isfinite(row.mean) else "nan"
            if row.n_splits > 1 and np.isfinite(row.std):
                m += f" ± {row.std:.{precision}f}"
            cell[(row.learner, row.metric)] = m
        best: dict[str, float] = {}
        for metric in metrics:
            vals = [round(means[(ln, metric)], precision) for ln in learners
                    if (ln, metric) in means and np.isfinite(means[(ln, metric)])]
            if len(vals) > 1 and metric in METRICS:  # bold only when there is a contest
                best[metric] = max(vals) if METRICS[metric].greater_is_better else min(vals)
        head = ["learner"]
        for metric in metrics:
            spec = METRICS.get(metric)
            head.append(f"{spec.short} {spec.arrow}" if spec else metric)
        tim = self.timings() if timing else None
        if timing:
            head += ["fit (s)", "predict (s)"]
        lines = ["| " + " | ".join(head) + " |",
                 "|" + "---|" + "---:|" * (len(head) - 1)]
        errs = self.errors
        n_splits = self.meta.get("n_splits")
        notes = []
        for ln in learners:
            row = [ln]
            n_err = int((errs["learner"] == ln).sum())
            if n_err:
                total = n_splits or len(set(self.table.loc[self.table["learner"] == ln, "split"]))
                row[0] = f"{ln} [{len(notes) + 1}]"
                first = errs.loc[errs["learner"] == ln, "error"].iloc[0]
                notes.append(f"[{len(notes) + 1}] {ln}: {n_err}/{total} splits failed: "
                             f"{str(first).splitlines()[-1][:200]}")
            for metric in metrics:
                text = cell.get((ln, metric), "error" if n_err else "–")
                mu = means.get((ln, metric))
                if (metric in best and mu is not None and np.isfinite(mu)
                        and round(mu, precision) == best[metric]):
                    text = f"**{text}**"
                row.append(text)
            if timing:
                if tim is not None and ln in tim.index and np.isfinite(tim.loc[ln, "fit_seconds"]):
                    row += [f"{tim.loc[ln, 'fit_seconds']:.2f}",
                            f"{tim.loc[ln, 'predict_seconds']:.2f}"]
                else:
                    row += ["–", "–"]
            lines.append("| " + " | ".join(row) + " |")
        desc = self.meta.get("splitter", {})
        caption = []
        if desc:
            caption.append(f"Mean ± std over {n_splits} split(s) "
                           f"({desc.get('splitter', '?')}); convention "
                           f"'{self.meta.get('convention', 'zhang')}'. "
                           "↓ lower is better, ↑ higher is better; best in bold.")
        out = "\n".join(lines)
        if caption:
            out = caption[0] + "\n\n" + out
        t = self.table
        undefined = t[(t["n_excluded"] > 0) & t["metric"].isin(["macro_auc"])
                      & t["metric"].isin(metrics)]
        for ln, grp in undefined.groupby("learner", sort=False):
            notes.append(f"{ln}: macro-AUC left out {int(grp['n_excluded'].max())} "
                         f"single-class label(s) in {len(grp)} split(s)")
        if notes:
            out += "\n\n" + "\n".join(notes)
        return out + "\n"

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        t = self.table
        records = [
            {c: _jsonable(v) for c, v in zip(TABLE_COLUMNS, row)}
            for row in t[TABLE_COLUMNS].itertuples(index=False, name=None)
        ]
        out: dict[str, Any] = {"format": _FORMAT, "version": _FORMAT_VERSION,
                               "meta": _jsonable(self.meta), "table": records}
        if self.scores is not None:
            out["scores"] = {
                ln: {str(s): {k: _jsonable(v) for k, v in d.items()} for s, d in per.items()}
                for ln, per in self.scores.items()
            }
        return out

    def to_json(self, path: str | os.PathLike, indent: int | None = 1) -> Path:
        """Write the result as JSON (atomic: temporary file + rename)."""
        return _atomic_write_text(path, json.dumps(self.to_dict(), indent=indent) + "\n")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvaluationResult:
        if data.get("format") != _FORMAT:
            raise ValueError("not a mimlkit evaluation result (missing format marker)")
        if int(data.get("version", 0)) > _FORMAT_VERSION:
            raise ValueError(f"evaluation result version {data.get('version')} is newer than "
                             f"this mimlkit understands ({_FORMAT_VERSION})")
        rows = [{c: r.get(c) for c in TABLE_COLUMNS} for r in data.get("table", [])]
        for r in rows:
            for c in ("value", "fit_seconds", "predict_seconds"):
                if r[c] is None:
                    r[c] = math.nan
        scores = None
        if data.get("scores") is not None:
            scores = {
                ln: {int(s): {"test_idx": np.asarray(d["test_idx"], dtype=np.int64),
                              "scores": np.asarray(d["scores"], dtype=float),
                              "y_pred": np.asarray(d["y_pred"], dtype=np.int8)}
                     for s, d in per.items()}
                for ln, per in data["scores"].items()
            }
        return cls(_make_table(rows), dict(data.get("meta", {})), scores)

    @classmethod
    def from_json(cls, path: str | os.PathLike) -> EvaluationResult:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: not valid JSON ({exc})") from None
        try:
            return cls.from_dict(data)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write the tidy table as CSV (atomic)."""
        return _atomic_write_text(path, self.table.to_csv(index=False))

    def __repr__(self) -> str:
        return (f"EvaluationResult(learners={self.learners}, n_splits="
                f"{self.meta.get('n_splits')}, rows={len(self.table)}, "
                f"errors={len(self.errors)})")


def _is_metric(name: str) -> bool:
    try:
        resolve_metric(name)
        return True
    except ValueError:
        return False


# ============================================================================ evaluate
def _resolve_learners(learners: Any) -> list[tuple[str, Any, str, str | None]]:
    """-> [(name, estimator or None, input kind, creation error or None)]."""
    from mimlkit import registry

    items: list[tuple[str, Any]]
    if isinstance(learners, Mapping):
        items = [(str(k), v) for k, v in learners.items()]
    elif isinstance(learners, (str, bytes)) or hasattr(learners, "fit"):
        items = [(learners if isinstance(learners, str) else type(learners).__name__,
                  learners)]
    else:
        items = []
        for obj in learners:
            items.append((obj if isinstance(obj, str) else type(obj).__name__, obj))
    out = []
    seen: dict[str, int] = {}
    for name, obj in items:
        if name in seen:
            seen[name] += 1
            name = f"{name}-{seen[name]}"
        else:
            seen[name] = 1
        if isinstance(obj, str):
            spec = registry.learner_spec(obj)  # unknown name -> KeyError listing known ones
            try:
                est = registry.create(obj)
                out.append((name, est, spec.input, None))
            except Exception as exc:  # noqa: BLE001 - e.g. missing optional dependency
                out.append((name, None, spec.input, f"{type(exc).__name__}: {exc}"))
        else:
            if not hasattr(obj, "fit"):
                raise TypeError(f"learner {name!r} is not an estimator (no fit method)")
            out.append((name, obj, getattr(obj, "input_kind", "bags"), None))
    return out


def _as_dataset(dataset: Any):
    from mimlkit.datasets.base import MIMLDataset

    if isinstance(dataset, MIMLDataset):
        return dataset
    if isinstance(dataset, tuple) and len(dataset) == 2:
        from mimlkit.bags import as_bags

        X, Y = dataset
        Y = np.asarray(Y)
        if Y.ndim == 1:
            Y = Y[:, None]
        return MIMLDataset(Y=Y, label_names=[f"label{i}" for i in range(Y.shape[1])],
                           bags=as_bags(X), name="arrays")
    raise TypeError("dataset must be a MIMLDataset or an (X, Y) tuple")


def _n_workers(backend: str, n_jobs: int, client: Any = None) -> int:
    if backend == "sequential":
        return 1
    if backend == "dask" and client is not None:
        try:
            return max(1, sum(client.nthreads().values()))
        except Exception:  # noqa: BLE001
            return max(1, n_jobs)
    import joblib

    return max(1, joblib.effective_n_jobs(n_jobs))


def evaluate(learners: Any, dataset: Any, splitter: Any = None,
             metrics: Sequence[str] | None = None, n_jobs: int = 1, backend: str = "loky",
             scheduler: Any = None, label_names: Sequence[str] | None = None,
             progress: bool = True, keep_scores: bool = False, *,
             convention: str = "zhang", random_state: int = 0, tune: bool = False,
             tune_cv: int = 3, groups: Any = None, test: Any = None,
             checkpoint: str | os.PathLike | None = None, retries: int = 2,
             connect_timeout: float = 5.0) -> EvaluationResult:
    """Evaluate learners on the splits of a dataset.

    Parameters
    ----------
    learners : dict name -> estimator (cloned per job), a list of registry names and/or
        estimators, or one estimator. A registry name's input kind ("bags" / "images") comes
        from ``mimlkit.registry.learner_spec``; an estimator's from its ``input_kind``
        attribute (default "bags").
    dataset : ``MIMLDataset`` (or an ``(X, Y)`` tuple of bags and full 0/1 labels).
    splitter : a mimlkit splitter, any scikit-learn splitter (``KFold``, ``ShuffleSplit``,
        ``GroupKFold`` ...), a protocol string (``parse_protocol``), an int k (k-fold) or
        (train, test) index pairs (``splits.resolve_splits``); default
        ``RepeatedRandomSplit()``. Leave it out when ``test`` is given.
    metrics : metric names (``mimlkit.metrics.METRICS``); default ``DEFAULT_METRICS``.
    n_jobs, backend, scheduler : parallel execution (module docstring).
    label_names : names for per-label rows (default: the dataset's).
    keep_scores : keep per-split test indices, scores and predictions in ``.scores``.
    convention : metric convention ("zhang" or "sklearn").
    random_state : base seed of the per-job seeds.
    tune : nested tuning: every learner with a declared search space
        (``mimlkit.evaluation.tuning``) picks its hyper-parameters by ``tune_cv``-fold CV on
        each training part only; the choices are in ``meta["tuned"]``.
    groups : one group id per bag for group splitters (default: the dataset's groups).
    test : a second ``MIMLDataset`` (e.g. Mulan's ``-test`` file): one split that trains on
        all of ``dataset`` and scores ``test`` (same label names, any order; same feature
        width). ``evaluate_train_test`` is the same call.
    checkpoint : path of a JSON-lines file; every finished (learner, split) job is appended
        as it arrives and a rerun with the same path skips the successful ones
        (``evaluation/checkpoint.py``); ``meta["resumed_jobs"]`` counts them.
    retries, connect_timeout : Dask only: times a job is retried when its task fails (its
        worker died), and seconds to wait for a scheduler address before a
        ``ConnectionError``.
    """
    from mimlkit.datasets.base import MIMLDataset  # noqa: F401  (import check)
    from mimlkit.evaluation.checkpoint import resume_jobs
    from mimlkit.evaluation.splits import describe_splitter, resolve_splits, train_test_splits

    if backend not in _BACKENDS:
        raise ValueError(f"backend must be one of {_BACKENDS}, got {backend!r}")
    if scheduler is not None and backend != "dask":
        raise ValueError(f"scheduler= needs backend='dask' (got backend={backend!r})")
    ds = _as_dataset(dataset)
    if test is not None:
        if splitter is not None:
            raise ValueError("give either a splitter or a test set, not both")
        ds, splitter, splits = train_test_splits(ds, _as_dataset(test))
    else:
        splitter, splits = resolve_splits(splitter, ds, groups, random_state)
    metric_names = [resolve_metric(m) for m in (metrics or DEFAULT_METRICS)]
    names = list(label_names) if label_names is not None else list(ds.label_names)
    if len(names) != ds.n_labels:
        raise ValueError(f"{len(names)} label names for {ds.n_labels} labels")
    resolved = _resolve_learners(learners)
    if tune:  # choices on inner folds of each training part only (evaluation/tuning.py)
        from mimlkit.evaluation.tuning import tuned

        resolved = [(n, None if e is None else tuned(e, cv=tune_cv, random_state=random_state),
                     k, err) for n, e, k, err in resolved]
    t_start = time.perf_counter()

    rows: list[dict[str, Any]] = []
    seeds: dict[str, list[int]] = {}
    jobs = []
    inputs: dict[str, Any] = {}
    for name, est, kind, err in resolved:
        seeds[name] = [_job_seed(random_state, name, s) for s in range(len(splits))]
        if err is None:
            try:
                if kind not in inputs:
                    inputs[kind] = ds.inputs(kind)
            except ValueError as exc:
                err = str(exc)
        if err is not None:
            for s in range(len(splits)):
                rows += _records({"learner": name, "split": s, "fit_seconds": math.nan,
                                  "predict_seconds": math.nan, "error": err})
            continue
        for s, (tr, te) in enumerate(splits):
            jobs.append((name, est, kind, s, tr, te, seeds[name][s]))

    results, jobs, on_result, n_resumed = resume_jobs(checkpoint, ds, jobs, metric_names, names,
                                                  convention, keep_scores)
    client = None
    cleanup: list[Any] = []
    if backend == "dask" and jobs:
        client, cleanup = _dask_client(scheduler, n_jobs, connect_timeout)
    try:
        n_workers = _n_workers(backend, n_jobs, client)
        inner = None if n_workers <= 1 else max(1, (os.cpu_count() or 1) // n_workers)
        Y = ds.Y
        calls = [(name, est, inputs[kind], Y, s, tr, te, metric_names, names, convention, seed,
                  inner, keep_scores) for name, est, kind, s, tr, te, seed in jobs]
        results += _execute(calls, backend, n_jobs, client, progress, on_result, retries)
    finally:
        for obj in reversed(cleanup):
            try:
                obj.close()
            except Exception:  # noqa: BLE001
                pass

    kept: dict[str, dict[int, dict[str, np.ndarray]]] | None = {} if keep_scores else None
    for job in sorted(results, key=lambda j: ([n for n, *_ in resolved].index(j["learner"]),
                                              j["split"])):
        rows += _records(job)
        if kept is not None and job["scores"] is not None:
            kept.setdefault(job["learner"], {})[int(job["split"])] = job["scores"]
    order = {n: i for i, (n, *_) in enumerate(resolved)}
    rows.sort(key=lambda r: (order[r["learner"]], r["split"]))
    tuned_params: dict[str, dict[int, Any]] = {}
    for job in results:
        if job.get("tuned_params") is not None:
            tuned_params.setdefault(job["learner"], {})[int(job["split"])] = job["tuned_params"]
    table = _make_table(rows)

    meta = {
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "dataset": _jsonable(ds.summary()),
        "splitter": _jsonable(describe_splitter(splitter)),
        "n_splits": len(splits),
        "split_sizes": [[int(tr.size), int(te.size)] for tr, te in splits],
        "metrics": metric_names,
        "convention": convention,
        "learners": {name: {"class": (f"{type(est).__module__}.{type(est).__qualname__}"
                                      if est is not None else None),
                            "input": kind,
                            "params": _jsonable(est.get_params(deep=False))
                            if est is not None and hasattr(est, "get_params") else {}}
                     for name, est, kind, _ in resolved},
        "random_state": random_state,
        "seeds": seeds,
        "backend": backend,
        "n_jobs": n_jobs,
        "elapsed_seconds": time.perf_counter() - t_start,
        "versions": _versions(),
    }
    if checkpoint is not None:
        meta.update(checkpoint=str(checkpoint), resumed_jobs=n_resumed)
    if tune:
        meta["tuned"] = {"cv": tune_cv, "params": tuned_params}
    return EvaluationResult(table, meta, kept)


def _dask_client(scheduler: Any, n_jobs: int, connect_timeout: float = 5.0):
    from mimlkit.evaluation._dask import dask_client

    return dask_client(scheduler, n_jobs, connect_timeout)


def evaluate_train_test(learners: Any, train: Any, test: Any, **kwargs: Any) -> EvaluationResult:
    """Fit every learner on all of ``train`` and score it on ``test`` (an official split,
    e.g. Mulan's ``-train`` / ``-test`` files): ``evaluate(learners, train, test=test,
    **kwargs)``. The result has one split (index 0)."""
    return evaluate(learners, train, test=test, **kwargs)


def _execute(calls: list[tuple], backend: str, n_jobs: int, client: Any,
             progress: bool, on_result: Any = None, retries: int = 2) -> list[dict[str, Any]]:
    """Run the jobs; ``on_result`` (e.g. the checkpoint) sees each as it finishes."""
    from tqdm.auto import tqdm

    bar = tqdm(total=len(calls), desc="evaluate", unit="job", disable=not progress or not calls,
               leave=False)
    out: list[dict[str, Any]] = []

    def finished(res: dict[str, Any]) -> None:  # kept, recorded, counted as it arrives
        out.append(res)
        if on_result is not None:
            on_result(res)
        bar.update(1)

    try:
        if backend == "sequential" or not calls:
            for c in calls:
                finished(_run_job(*c))
            return out
        import joblib

        if backend == "dask":
            from mimlkit.evaluation._dask import run_jobs

            run_jobs(calls, client, retries, finished)
            return out
        par = joblib.Parallel(n_jobs=n_jobs, backend=backend, return_as="generator_unordered")
        with warnings.catch_warnings():
            # loky restarts a worker whose memory grew (torch jobs); the job is resubmitted
            # and the results are unaffected, so the warning only alarms users
            warnings.filterwarnings("ignore", message="A worker stopped while some jobs")
            for res in par(joblib.delayed(_run_job)(*c) for c in calls):
                finished(res)
        return out
    finally:
        bar.close()
