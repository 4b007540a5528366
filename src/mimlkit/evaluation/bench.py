"""Benchmark suites (``mimlkit bench`` / ``mimlkit demo``) on top of ``evaluate``.

A suite is a dataset + protocol + metrics + learners (+ optional dataset sizes for a
time-vs-size plot). Built-in suites:

- ``synthetic`` — the built-in synthetic images (``make_miml_images(random_state=0)``):
  every registered, importable learner flagged ``quick`` (bag learners on the hand-crafted
  tile-feature bags, image learners on the images), 3 random 2/3–1/3 splits, with per-suite
  parameter overrides that keep the whole run to a few minutes on 2 cores. Driven by the
  registry, so later learners appear without changes here.
- ``scene`` — MIML Scene (``--data miml_03_data.arff``), the literature's 2/3–1/3 × 30
  protocol, every quick bag learner; also times holdout fits on 250 / 500 / 1000 bags.
- ``spmll`` — single-positive protocol on a Mulan dataset (``--data x-train.arff``; the
  sibling ``x-test.arff`` is the test set when present, else a 2/3–1/3 split): training
  labels keep one random positive per row, all else unobserved (-1); test labels are full.
  Learners: every quick bag learner as an "assume negative" (AN) baseline (unobserved
  entries trained as 0), plus ``multilabel-head`` with several single-positive losses that
  see the unobserved entries as -1 (EPR / ROLE get the dataset's label cardinality as
  ``expected_num_pos``).

Config files (YAML or TOML) use the same keys as the built-in suites::

    name: my-suite
    dataset: ../shared/data/miml_scene/miml_03_data.arff   # or "synthetic"
    dataset_options: {}          # passed to load_dataset
    protocol: repeat:10          # holdout | repeat:N | kfold:K
    train_size: 0.6667
    metrics: [hamming_loss, ranking_loss, average_precision, per_label_ap]
    learners:                    # or "registry" (every quick, available learner)
      - pooled-linear
      - {name: mimlknn, params: {k: 10}, label: mimlknn-k10}
    overrides: {deepmiml: {max_epochs: 20}}
    sizes: [250, 500, 1000]
    single_positive: false
    seed: 0

Results: ``results.json`` (schema ``mimlkit-results`` v1: tidy rows + environment, seeds,
command, dataset summary, learners and their parameters, skipped learners with reasons,
training histories and tile-score maps) and a report folder (``mimlkit.reporting``).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone

from mimlkit.learners.base import MIMLClassifierMixin

__all__ = ["SUITES", "SuiteConfig", "BenchResult", "load_suite_config", "run_suite",
           "run_evaluation", "write_results", "environment", "SinglePositiveTraining",
           "FixedSplit"]

RESULTS_FORMAT = "mimlkit-results"

# Parameter overrides applied (only where the learner has the parameter) in the synthetic
# suite so that every quick learner fits in seconds on 2 cores.
_SYNTHETIC_FAST: dict[str, Any] = {
    "max_epochs": 30, "n_epochs": 30, "epochs": 30, "n_jobs": 1,
}
# learner-specific overrides for the synthetic suite (name -> params)
_SYNTHETIC_OVERRIDES: dict[str, dict[str, Any]] = {
    "transfer-lr": {"standardize": True},  # unscaled colour/texture features: L1 kills all
}
# Learners not flagged quick that the demo still shows, with settings that make them fit the
# synthetic images (96 px, 16 px tiles) in seconds: tiny inputs, few rounds/epochs. These
# runs show that every method works end to end; they are not tuned accuracy figures.
_SYNTHETIC_DEMO_OVERRIDES: dict[str, dict[str, Any]] = {
    "mimlboost": {},  # library defaults (25 rounds, 2000-instance resamples): seconds here
    "mimlmisvm": {"max_iter": 3},  # ~40 s per Scene fit: not quick, cheap on the demo set
    "vgg-l1lr": {"image_size": 64, "standardize": True},
    "vgg-lr": {"image_size": 64, "standardize": True},
    "multilabel-cnn": {"backbone": "tiny", "image_size": 64, "max_epochs": 15},
    "selfpaced-miml": {"backbone": "tiny", "tile_size": 16, "image_size": 32,
                       "max_epochs": 10, "batch_size": 64, "lr": 3e-3},
}

SPMLL_LOSSES = ("an", "wan", "ls", "epr", "role", "opml")


# ----------------------------------------------------------------------------- config
@dataclass
class LearnerEntry:
    name: str  # registry name
    params: dict[str, Any] = field(default_factory=dict)
    label: str | None = None  # display name in results (unique)

    @property
    def key(self) -> str:
        return self.label or self.name


@dataclass
class SuiteConfig:
    name: str
    dataset: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    protocol: str = "holdout"
    train_size: float | None = None
    metrics: list[str] | None = None
    learners: list[LearnerEntry] | str = "registry"
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    fast_params: dict[str, Any] = field(default_factory=dict)
    # learners not flagged quick that run anyway, with these parameters (name -> params)
    demo_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    sizes: list[int] | None = None
    single_positive: bool = False
    spmll_losses: list[str] | None = None
    seed: int = 0
    explain: bool = True
    input_kinds: tuple[str, ...] = ("bags", "images")

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> SuiteConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"{source}: unknown key(s) {sorted(unknown)}; known: "
                             f"{sorted(known)}")
        d = dict(d)
        if "name" not in d:
            d["name"] = Path(source).stem if source != "config" else "custom"
        learners = d.get("learners", "registry")
        if isinstance(learners, str):
            if learners != "registry":
                raise ValueError(f"{source}: learners must be a list or 'registry'")
        else:
            entries = []
            for i, item in enumerate(learners):
                if isinstance(item, str):
                    entries.append(LearnerEntry(item.lower()))
                elif isinstance(item, dict) and "name" in item:
                    extra = set(item) - {"name", "params", "label"}
                    if extra:
                        raise ValueError(f"{source}: learners[{i}] has unknown keys "
                                         f"{sorted(extra)}")
                    entries.append(LearnerEntry(str(item["name"]).lower(),
                                                dict(item.get("params") or {}),
                                                item.get("label")))
                else:
                    raise ValueError(f"{source}: learners[{i}] must be a name or "
                                     "{name:, params:, label:}")
            keys = [e.key for e in entries]
            dup = {k for k in keys if keys.count(k) > 1}
            if dup:
                raise ValueError(f"{source}: learner labels must be unique; repeated: "
                                 f"{sorted(dup)} (give each a `label`)")
            d["learners"] = entries
        if "input_kinds" in d:
            d["input_kinds"] = tuple(d["input_kinds"])
        if d.get("protocol") is not None:
            d["protocol"] = str(d["protocol"])
        return cls(**d)


SUITES: dict[str, dict[str, Any]] = {
    "synthetic": dict(name="synthetic", dataset="synthetic", protocol="repeat:3",
                      train_size=2 / 3, learners="registry", fast_params=_SYNTHETIC_FAST,
                      overrides=_SYNTHETIC_OVERRIDES, demo_overrides=_SYNTHETIC_DEMO_OVERRIDES,
                      explain=True),
    "scene": dict(name="scene", dataset=None, protocol="repeat:30", train_size=2 / 3,
                  learners="registry", sizes=[250, 500, 1000], input_kinds=("bags",),
                  explain=False),
    "spmll": dict(name="spmll", dataset=None, protocol="holdout", train_size=2 / 3,
                  learners="registry", single_positive=True, input_kinds=("bags",),
                  explain=False,
                  metrics=["mean_average_precision", "average_precision", "ranking_loss",
                           "one_error", "macro_auc", "per_label_ap"]),
}


def load_suite_config(path: str | os.PathLike) -> SuiteConfig:
    """Read a suite from YAML (.yaml/.yml) or TOML (.toml)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such config file")
    text = p.read_text(encoding="utf-8")
    suffix = p.suffix.lower()
    if suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{p}: invalid YAML ({' '.join(str(exc).split())})") from None
    elif suffix == ".toml":
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{p}: invalid TOML ({exc})") from None
    else:
        raise ValueError(f"{p}: config must be .yaml, .yml or .toml")
    if not isinstance(data, dict):
        raise ValueError(f"{p}: the config must be a mapping of keys to values")
    return SuiteConfig.from_dict(data, source=str(p))


def get_suite(name: str) -> SuiteConfig:
    key = name.lower()
    if key not in SUITES:
        raise ValueError(f"unknown suite {name!r}; known: {', '.join(SUITES)} (or use "
                         "--config FILE)")
    return SuiteConfig.from_dict(dict(SUITES[key]), source=key)


# ----------------------------------------------------------------------------- environment
def environment(seeds: Any = None, command: str | None = None) -> dict[str, Any]:
    """Library versions, CPU/GPU, seeds and command (no heavy imports)."""
    from importlib import metadata

    versions: dict[str, str] = {"python": platform.python_version()}
    for dist in ("mimlkit", "numpy", "scipy", "scikit-learn", "pandas", "joblib", "torch",
                 "torchvision", "dask", "distributed", "skops", "matplotlib"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    mach: dict[str, Any] = {"platform": platform.platform(),
                            "cpu": platform.processor() or platform.machine(),
                            "n_cpus": os.cpu_count()}
    try:
        import psutil

        mach["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            mach["cuda"] = bool(torch.cuda.is_available())
            if mach["cuda"]:
                mach["gpu"] = torch.cuda.get_device_name(0)
        except Exception:  # pragma: no cover - broken CUDA set-ups
            mach["cuda"] = False
    else:
        mach["cuda"] = None  # torch not loaded in this run
    return {"versions": versions, "machine": mach, "seeds": seeds, "command": command,
            "date": _dt.datetime.now().isoformat(timespec="seconds"),
            "threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                       "OPENBLAS_NUM_THREADS")
                        if os.environ.get(k)}}


# ----------------------------------------------------------------------------- wrappers
class SinglePositiveTraining(MIMLClassifierMixin, BaseEstimator):
    """Meta-estimator: fit ``estimator`` on single-positive labels (one random positive
    kept per training row, every other entry -1), predict with it unchanged. The test-time
    labels stay full, so any runner evaluates the single-positive protocol."""

    supports_unobserved = True

    def __init__(self, estimator: Any = None, *, unobserved: str = "negative",
                 random_state: int = 1200) -> None:
        self.estimator = estimator
        self.unobserved = unobserved
        self.random_state = random_state

    def fit(self, X: Any, Y: Any) -> SinglePositiveTraining:
        """``unobserved="negative"``: the "assume negative" (AN) baseline, unobserved entries
        become 0 (any learner); ``"keep"``: they stay -1 for learners whose loss handles them
        (``supports_unobserved``)."""
        from mimlkit.bags import check_labels

        if self.unobserved not in ("negative", "keep"):
            raise ValueError(f"unobserved must be 'negative' or 'keep', got {self.unobserved!r}")
        Y = check_labels(Y, allow_unobserved=True)
        Ysp = Y if (Y == -1).any() else _single_positive(Y, self.random_state)
        if self.unobserved == "negative":
            Ysp = np.where(Ysp == 1, 1, 0).astype(np.int8)
        self.estimator_ = clone(self.estimator).fit(X, Ysp)
        self.n_labels_ = Y.shape[1]
        self.n_features_in_ = getattr(self.estimator_, "n_features_in_", None)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "estimator_")
        return self.estimator_.decision_function(X)

    def predict(self, X: Any) -> np.ndarray:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "estimator_")
        return self.estimator_.predict(X)

    @property
    def history_(self):  # noqa: D401 - pass-through for training curves
        return self.estimator_.history_


def _single_positive(Y: np.ndarray, seed: int) -> np.ndarray:
    try:
        from mimlkit.deep.spmll import make_single_positive
    except ImportError:  # pragma: no cover - spmll module absent
        make_single_positive = None
    if make_single_positive is not None:
        return make_single_positive(Y, random_state=seed)
    rng = np.random.default_rng(seed)
    pos = Y == 1
    counts = pos.sum(1)
    pick = np.floor(rng.random(len(Y)) * np.maximum(counts, 1)).astype(np.int64)
    keep = pos & ((np.cumsum(pos, axis=1) - 1) == pick[:, None])
    out = np.full(Y.shape, -1, dtype=np.int8)
    out[keep] = 1
    return out


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


# ----------------------------------------------------------------------------- evaluate glue
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
              scheduler: Any = None, progress: bool = False):
    """Call ``mimlkit.evaluation.evaluate``; returns its tidy pandas table.

    The runner reads an estimator's input kind from an ``input_kind`` attribute (default
    "bags"), so image learners are tagged here from the registry."""
    from mimlkit.evaluation import evaluate

    for name, est in estimators.items():
        kind = inputs.get(name, "bags")
        if kind != "bags" and getattr(est, "input_kind", "bags") != kind:
            est.input_kind = kind
    res = evaluate(estimators, dataset, splitter, metrics=metrics, n_jobs=jobs,
                   backend=backend, scheduler=scheduler, progress=progress)
    return res.table if hasattr(res, "table") else res


def run_evaluation(dataset: Any, learners: list[str], params: dict[str, dict[str, Any]], *,
                   protocol: str = "holdout", train_size: float | None = None,
                   metrics: list[str] | None = None, seed: int = 0, jobs: int = 1,
                   backend: str = "loky", scheduler: str | None = None, console: Any = None,
                   command: str | None = None, source: str | None = None):
    """What ``mimlkit evaluate`` runs: returns (EvaluationLike with ``.table``, environment).
    ``source`` (the dataset path) names the data in early errors."""
    from mimlkit.registry import create, learner_spec

    estimators = {name: create(name, **params.get(name, {})) for name in learners}
    inputs = {name: learner_spec(name).input for name in learners}
    for kind in set(inputs.values()):
        dataset.inputs(kind)  # clear error now if the dataset lacks this input kind
    splitter = make_splitter(protocol, train_size, seed)
    check_splitter(splitter, dataset, source)
    if console is not None:
        console.print(f"evaluating {', '.join(learners)} on {dataset.name} "
                      f"({len(dataset)} bags, {protocol}, backend {backend}) ...")
    table = _evaluate(estimators, dataset, splitter, metrics, jobs, backend, inputs,
                      scheduler=scheduler if backend == "dask" else None,
                      progress=console is not None)
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
    return _Table(table), env


@dataclass
class _Table:
    table: Any


def _rows(table) -> list[dict[str, Any]]:
    import pandas as pd

    t = table.copy()
    t = t.astype(object).where(pd.notna(t), None)
    out = []
    for rec in t.to_dict("records"):
        out.append({k: _jsonable(v) for k, v in rec.items()})
    return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v) if np.isfinite(v) else None
    if isinstance(v, float) and not np.isfinite(v):
        return None
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.bool_,)):
        return bool(v)
    return v


def _atomic_json(path: Path, payload: dict[str, Any]) -> None:
    from mimlkit.reporting.report import _atomic_write

    _atomic_write(path, json.dumps(payload, indent=1, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.integer, np.floating, np.bool_)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    return repr(o)


def write_results(result: Any, out: str | os.PathLike, *, environment: dict[str, Any],
                  title: str | None = None, extra: dict[str, Any] | None = None
                  ) -> tuple[Path, Path]:
    """Write ``out`` (results JSON, schema mimlkit-results v1) and ``out`` with ``.md``
    (mean ± std table, best marked). Returns both paths."""
    from mimlkit.reporting.report import _atomic_write
    from mimlkit.reporting.tables import summary_markdown

    out = Path(out)
    table = result.table if hasattr(result, "table") else result
    payload = {"format": RESULTS_FORMAT, "version": 1, "title": title,
               "command": environment.get("command"), "date": environment.get("date"),
               "seeds": environment.get("seeds"), "protocol": environment.get("protocol"),
               "environment": environment, **(extra or {}), "rows": _rows(table)}
    _atomic_json(out, payload)
    md_path = out.with_suffix(".md")
    head = f"# {title or out.stem}\n\n"
    if environment.get("command"):
        head += f"- command: `{environment['command']}`\n"
    head += f"- date: {environment.get('date')}\n"
    mach = environment.get("machine", {})
    head += (f"- machine: {mach.get('n_cpus')} CPUs ({mach.get('cpu')}), "
             f"{mach.get('memory_gib', '?')} GiB\n\n")
    _atomic_write(md_path, head + summary_markdown(table))
    return out, md_path


# ----------------------------------------------------------------------------- suites
@dataclass
class BenchResult:
    result: Any  # has .table
    results_path: Path
    report_html: Path
    skipped: dict[str, str]
    seconds: float


def _select_learners(cfg: SuiteConfig, only: list[str] | None) -> tuple[list[LearnerEntry],
                                                                         dict[str, str]]:
    """Learner entries of a suite + {name: reason} for registered ones left out."""
    from mimlkit.registry import get_learner_class, learner_spec, list_learners

    skipped: dict[str, str] = {}
    if isinstance(cfg.learners, str):  # "registry": every quick, available learner
        entries = []
        for name in list_learners():
            spec = learner_spec(name)
            if spec.input not in cfg.input_kinds:
                skipped[name] = f"needs {spec.input}; this suite has {'/'.join(cfg.input_kinds)}"
                continue
            if not spec.quick and name not in cfg.demo_overrides:
                skipped[name] = "not flagged quick (too slow for this suite)"
                continue
            entries.append(LearnerEntry(name))
    else:
        entries = list(cfg.learners)
    if only:
        unknown = [o for o in only if o not in {e.key for e in entries} | {e.name for e in
                                                                             entries}]
        if unknown:
            raise ValueError(f"--learner {unknown[0]!r} is not in this suite (available: "
                             f"{', '.join(e.key for e in entries)})")
        entries = [e for e in entries if e.key in only or e.name in only]
    kept = []
    for e in entries:
        try:
            cls = get_learner_class(e.name)
        except (ImportError, AttributeError, KeyError) as exc:
            if isinstance(cfg.learners, str):
                skipped[e.key] = f"not available ({' '.join(str(exc).split())[:160]})"
                continue
            raise
        kept.append(e)
        _ = cls
    if cfg.single_positive and isinstance(cfg.learners, str):
        kept = [e for e in kept if e.name != "multilabel-head"]
        try:
            cls = get_learner_class("multilabel-head")
            from mimlkit.deep.losses import list_losses

            have = set(list_losses())
            for loss in cfg.spmll_losses or SPMLL_LOSSES:
                if loss in have:
                    kept.append(LearnerEntry("multilabel-head", {"loss": loss},
                                             f"head-{loss}"))
        except (ImportError, AttributeError, KeyError) as exc:
            skipped["multilabel-head"] = f"not available ({str(exc)[:120]})"
    return kept, skipped


def _build(entry: LearnerEntry, cfg: SuiteConfig, dataset: Any = None):
    from mimlkit.registry import create, learner_spec

    spec = learner_spec(entry.name)
    est = create(entry.name)
    names = set(est.get_params(deep=False))
    params = {k: v for k, v in cfg.fast_params.items() if k in names}
    if "random_state" in names and est.get_params(deep=False).get("random_state") is None:
        params["random_state"] = cfg.seed
    if not spec.quick:
        params.update(cfg.demo_overrides.get(entry.name, {}))
    params.update(cfg.overrides.get(entry.name, {}))
    params.update(cfg.overrides.get(entry.key, {}))
    params.update(entry.params)
    bad = [k for k in params if k not in names and "__" not in k]
    if bad:
        raise ValueError(f"learner {entry.key}: unknown parameter(s) {bad}; it has "
                         f"{', '.join(sorted(names))}")
    if cfg.single_positive and "loss" in params and "loss_params" in names:
        # EPR / ROLE need the expected number of positives per sample; the SPMLL protocol
        # (Cole et al.) takes it from the dataset's label cardinality.
        lp = dict(params.get("loss_params") or {})
        if params["loss"] in ("epr", "role") and "expected_num_pos" not in lp \
                and dataset is not None:
            lp["expected_num_pos"] = float((dataset.Y == 1).sum(1).mean())
            params["loss_params"] = lp
    est = create(entry.name, **params)
    if cfg.single_positive:
        keep = "loss" in entry.params and getattr(type(est), "supports_unobserved", False)
        est = SinglePositiveTraining(est, unobserved="keep" if keep else "negative",
                                     random_state=1200 + cfg.seed)
    return est, spec.input, {k: _jsonable(v) if not isinstance(v, (dict, list)) else v
                             for k, v in params.items()}


def _load_suite_dataset(cfg: SuiteConfig, data: str | os.PathLike | None):
    from mimlkit.datasets import load_dataset

    path = data if data is not None else cfg.dataset
    if path is None:
        raise ValueError(f"suite {cfg.name!r} needs a dataset: pass --data PATH")
    opts = dict(cfg.dataset_options)
    if str(path).strip().lower() in ("synthetic", "synthetic-images", "synthetic-bags"):
        opts.setdefault("random_state", cfg.seed)
    ds = load_dataset(path, **opts)
    fixed = None
    p = Path(str(path))
    if cfg.single_positive and p.name.endswith("-train.arff"):
        test = p.with_name(p.name.replace("-train.arff", "-test.arff"))
        if test.is_file():
            from mimlkit.datasets import MIMLDataset

            tds = load_dataset(test, **opts)
            if tds.label_names != ds.label_names:
                raise ValueError(f"{test}: labels differ from {p}")
            from mimlkit.bags import Bags

            bags = Bags(np.vstack([ds.bags.instances, tds.bags.instances]),
                        np.concatenate([ds.bags.offsets, ds.bags.offsets[-1]
                                        + tds.bags.offsets[1:]]))
            n = len(ds)
            ds = MIMLDataset(Y=np.vstack([ds.Y, tds.Y]), label_names=ds.label_names,
                             bags=bags, name=p.name.replace("-train.arff", ""),
                             meta={"source": [str(p), str(test)], "official_split": True})
            fixed = FixedSplit(np.arange(n), np.arange(n, len(ds)))
    return ds, fixed


def run_suite(suite: str | SuiteConfig, *, data: str | os.PathLike | None = None,
              jobs: int = 1, backend: str = "loky", scheduler: str | None = None,
              learners: list[str] | None = None, out_dir: str | os.PathLike = "runs/bench",
              command: str | None = None, console: Any = None,
              protocol: str | None = None, report: bool = True) -> BenchResult:
    """Run a suite end to end: evaluate, extra diagnostics, results.json, report
    (``report=False`` skips the report folder; ``mimlkit report`` can build it later)."""
    from mimlkit.reporting import build_report

    t_start = time.perf_counter()
    cfg = get_suite(suite) if isinstance(suite, str) else suite
    if protocol is not None:
        cfg.protocol = protocol
    out = Path(out_dir)
    ds, fixed = _load_suite_dataset(cfg, data)
    entries, skipped = _select_learners(cfg, learners)
    if not entries:
        raise ValueError(f"suite {cfg.name!r}: no learner is available to run "
                         f"({'; '.join(f'{k}: {v}' for k, v in skipped.items())})")
    built = {}
    for e in entries:
        est, kind, params = _build(e, cfg, ds)
        try:
            ds.inputs(kind)
        except ValueError as exc:
            skipped[e.key] = str(exc)
            continue
        built[e.key] = (est, kind, params, e.name)
    splitter = fixed or make_splitter(cfg.protocol, cfg.train_size, cfg.seed)
    check_splitter(splitter, ds, str(data if data is not None else cfg.dataset))
    log = _Log(console)

    ctx = dask_client(scheduler, jobs) if backend == "dask" else nullcontext()
    with ctx as client:
        table = _run_all(built, ds, splitter, cfg, jobs, backend, skipped, log, client)
        sizes = _run_sizes(built, ds, cfg, table, jobs, backend, log, client) \
            if cfg.sizes else None
    if table is None or len(table) == 0:
        raise ValueError(f"suite {cfg.name!r}: every learner failed "
                         f"({'; '.join(f'{k}: {v}' for k, v in skipped.items())})")
    extra: dict[str, Any] = {
        "suite": cfg.name,
        "dataset": _dataset_info(ds, data if data is not None else cfg.dataset),
        "learners": {k: {"name": v[3], "input": v[1], "params": v[2]} for k, v in built.items()
                     if k not in skipped},
        "skipped": skipped, "sizes": sizes,
        "config": _config_dict(cfg),
    }
    if cfg.explain:
        fit_s = table[table["metric"] != "error"].groupby("learner")["fit_seconds"].mean()
        extra.update(_explain(built, ds, splitter, skipped, log, fit_seconds=fit_s.to_dict()))
    env = environment(seeds={"split": cfg.seed, "single_positive": 1200 + cfg.seed
                             if cfg.single_positive else None}, command=command)
    env["protocol"] = repr(splitter) if fixed else cfg.protocol
    env["backend"] = backend
    env["jobs"] = jobs
    env["seconds"] = round(time.perf_counter() - t_start, 2)
    out.mkdir(parents=True, exist_ok=True)
    title = f"mimlkit bench: {cfg.name} suite ({ds.name}, {env['protocol']})"
    results_path, _ = write_results(table, out / "results.json", environment=env, title=title,
                                    extra=extra)
    html = build_report(results_path, out / "report") if report else out / "report"
    return BenchResult(_Table(table), results_path, html, skipped,
                       time.perf_counter() - t_start)


def _esc(text: Any) -> str:
    from rich.markup import escape

    return escape(str(text))


class _Log:
    def __init__(self, console: Any) -> None:
        self.console = console

    def __call__(self, msg: str) -> None:
        if self.console is not None:
            self.console.print(msg)

    def status(self, msg: str):
        return self.console.status(msg) if self.console is not None else nullcontext()


def _run_all(built, ds, splitter, cfg, jobs, backend, skipped, log, client=None):
    """Evaluate all learners in one parallel batch (the runner turns a learner's exception
    into error rows); learners that failed are listed in ``skipped`` with the reason."""
    estimators = {k: v[0] for k, v in built.items()}
    inputs = {k: v[1] for k, v in built.items()}
    log(f"evaluating {len(estimators)} learners on {_esc(ds.name)} ({len(ds)} bags; "
        f"{_esc(', '.join(estimators))}) ...")
    table = _evaluate(estimators, ds, splitter, suite_metrics(cfg.metrics), jobs, backend,
                      inputs, scheduler=client, progress=log.console is not None)
    err = table[table["metric"] == "error"]
    n_splits = table["split"].nunique()
    for k, grp in err.groupby("learner", sort=False):
        msg = " ".join(str(grp["error"].iloc[0]).split())[:240]
        skipped[k] = (f"failed on {len(grp)}/{n_splits} split(s): {msg}")
        log(f"[red]  {_esc(k)} failed[/]: {_esc(skipped[k])}")
    return table


def _run_sizes(built, ds, cfg, table, jobs, backend, log, client=None):
    """Fit seconds on nested random subsets (holdout 2/3 train) for a time-vs-size plot."""
    rows = []
    rng = np.random.default_rng(cfg.seed)
    perm = rng.permutation(len(ds))
    sizes = sorted({int(s) for s in cfg.sizes or [] if 3 <= int(s) < len(ds)})
    for n in sizes:
        sub = ds.subset(np.sort(perm[:n]))
        n_train = int(round(n * (cfg.train_size or 2 / 3)))
        split = FixedSplit(np.arange(n_train), np.arange(n_train, n))
        ests = {k: v[0] for k, v in built.items() if k not in skipped_of(table)}
        with log.status(f"timing {len(ests)} learners on {n} bags ..."):
            t = _evaluate(ests, sub, split, ["hamming_loss"], jobs, backend,
                          {k: built[k][1] for k in ests}, scheduler=client)
        t = t[t["metric"] != "error"].drop_duplicates("learner")
        for _, r in t.iterrows():
            rows.append({"learner": r["learner"], "n_bags": n_train,
                         "fit_seconds": float(r["fit_seconds"]),
                         "predict_seconds": float(r["predict_seconds"])})
    # the full run's own timing as the largest point
    if table is not None and len(table):
        ok = table[table["metric"] != "error"]
        per = ok.groupby(["learner", "split"])[["fit_seconds", "predict_seconds"]].first()
        per = per.groupby("learner").mean()
        n_train = int(round(len(ds) * (cfg.train_size or 2 / 3)))
        for k, r in per.iterrows():
            rows.append({"learner": k, "n_bags": n_train, "fit_seconds": float(r.fit_seconds),
                         "predict_seconds": float(r.predict_seconds)})
    return rows


def skipped_of(table) -> set[str]:
    """Learners with error rows on every split of ``table``."""
    err = table[table["metric"] == "error"]
    n = table["split"].nunique()
    return {k for k, g in err.groupby("learner") if len(g) >= n}


def _dataset_info(ds, path) -> dict[str, Any]:
    s = ds.summary()
    keep = ("name", "n_bags", "n_instances", "n_features", "n_labels", "label_names",
            "label_counts", "cardinality", "n_images")
    info = {k: _jsonable(s[k]) for k in keep if k in s}
    info["path"] = str(path) if path is not None else None
    return info


def _config_dict(cfg: SuiteConfig) -> dict[str, Any]:
    d = {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}
    if not isinstance(cfg.learners, str):
        d["learners"] = [{"name": e.name, "params": e.params, "label": e.label}
                         for e in cfg.learners]
    d["input_kinds"] = list(cfg.input_kinds)
    return json.loads(json.dumps(d, default=_json_default))


# ----------------------------------------------------------------------------- diagnostics
def _instance_scorer(est):
    for meth in ("instance_scores", "decision_function_instances"):
        f = getattr(est, meth, None)
        if callable(f):
            return f
    return None


def _explain(built, ds, splitter, skipped, log, n_images: int = 3,
             fit_seconds: dict[str, float] | None = None,
             budget_seconds: float = 15.0) -> dict[str, Any]:
    """Refit on the first training split the learners that have something to show:
    ``history_`` (training curves) or instance scores (tile heatmaps, when the dataset has
    images and tile coordinates). Learners whose mean fit took more than
    ``budget_seconds`` in the evaluation are not refitted (keeps the demo short)."""
    from mimlkit.datasets.base import take
    from mimlkit.registry import learner_spec

    histories: dict[str, Any] = {}
    maps: dict[str, list[dict[str, Any]]] = {}
    images: dict[str, Any] = {}
    try:
        train, test = next(iter(splitter.split(ds.inputs("bags") if ds.bags is not None
                                               else ds.images, ds.Y)))
    except Exception:  # noqa: BLE001
        return {}
    coords = None
    if ds.bags is not None and ds.images is not None:
        coords = ds.bags.instance_meta.get("coords")
    tile = int(ds.meta.get("tile_size", 0) or 0) if isinstance(ds.meta, dict) else 0
    for key, (est, kind, _, name) in built.items():
        if key in skipped:
            continue
        is_deep = learner_spec(name).family == "deep"
        has_inst = _instance_scorer(est) is not None and coords is not None and tile > 0
        if not (is_deep or has_inst):
            continue
        if fit_seconds and fit_seconds.get(key, 0.0) > budget_seconds:
            log(f"  diagnostics for {key} skipped (fit took {fit_seconds[key]:.0f}s)")
            continue
        try:
            with log.status(f"refitting {key} for diagnostics ..."):
                X = ds.inputs(kind)
                fitted = clone(est).fit(take(X, train), ds.Y[train])
            hist = getattr(fitted, "history_", None)
            if not hist and getattr(fitted, "loss_curve_", None) is not None:
                hist = {"train_loss": [float(v) for v in fitted.loss_curve_]}
            if hist:
                histories[key] = json.loads(json.dumps(hist, default=_json_default))
            scorer = _instance_scorer(fitted)
            if scorer is not None and coords is not None and tile > 0:
                maps[key] = _tile_maps(scorer, ds, test[:n_images], kind, tile, images)
        except Exception as exc:  # noqa: BLE001 - diagnostics must never fail the suite
            log(f"[yellow]  diagnostics for {_esc(key)} skipped: {_esc(str(exc))}[/]")
    for panels in maps.values():
        for p in panels:
            p["image"] = images.get(p.pop("image_key"))
    return {"histories": histories, "instance_maps": maps}


def _tile_maps(scorer, ds, idx, kind, tile, images) -> list[dict[str, Any]]:
    from mimlkit.datasets.base import take

    out = []
    sub_bags = ds.bags[np.asarray(idx)]
    X = take(ds.inputs(kind), np.asarray(idx))
    S = scorer(X)
    S = np.vstack(S) if isinstance(S, list) else np.asarray(S)
    coords = sub_bags.instance_meta["coords"]
    truth = None
    if ds.instance_labels is not None:
        truth = ds.subset(np.asarray(idx)).instance_labels
    for j, i in enumerate(np.asarray(idx)):
        lo, hi = sub_bags.offsets[j], sub_bags.offsets[j + 1]
        c = coords[lo:hi] // tile
        g0, g1 = int(c[:, 0].max()) + 1, int(c[:, 1].max()) + 1
        pos = np.flatnonzero(ds.Y[i] == 1)
        if pos.size and truth is not None:  # the present label with most object tiles
            k = int(pos[np.argmax(truth[lo:hi, pos].sum(axis=0))])
        else:
            k = int(pos[0]) if pos.size else 0
        grid = np.full((g0, g1), np.nan)
        grid[c[:, 0], c[:, 1]] = S[lo:hi, k]
        tgrid = None
        if truth is not None:
            tgrid = np.zeros((g0, g1), dtype=int)
            tgrid[c[:, 0], c[:, 1]] = truth[lo:hi, k]
        key = str(int(i))
        if key not in images and ds.images is not None:
            images[key] = np.asarray(ds.images[int(i)]).tolist()
        out.append({"bag": int(i), "label": ds.label_names[k], "grid": grid.tolist(),
                    "truth": tgrid.tolist() if tgrid is not None else None,
                    "title": f"bag {int(i)}: {ds.label_names[k]}", "image_key": key})
    return out
