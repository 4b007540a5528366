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

import os
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mimlkit.evaluation.explain import _explain, _instance_scorer, _tile_maps  # noqa: F401
from mimlkit.evaluation.results_io import (  # noqa: F401
    RESULTS_FORMAT,
    _atomic_json,
    _json_default,
    _jsonable,
    _rows,
    _Table,
    dataset_name_from_path,
    environment,
    split_scores_payload,
    write_results,
)
from mimlkit.evaluation.runs import (  # noqa: F401
    FixedSplit,
    _esc,
    _evaluate,
    check_splitter,
    dask_client,
    make_splitter,
    run_evaluation,
    suite_metrics,
)
from mimlkit.evaluation.single_positive import (  # noqa: F401
    SinglePositiveTraining,
    _single_positive,
)
from mimlkit.evaluation.suites import (  # noqa: F401
    _SYNTHETIC_DEMO_OVERRIDES,
    _SYNTHETIC_FAST,
    _SYNTHETIC_OVERRIDES,
    SPMLL_LOSSES,
    SUITES,
    LearnerEntry,
    SuiteConfig,
    _build,
    _config_dict,
    _select_learners,
    get_suite,
    load_suite_config,
)

__all__ = ["SUITES", "SuiteConfig", "LearnerEntry", "BenchResult", "load_suite_config",
           "get_suite", "run_suite", "run_evaluation", "write_results", "environment",
           "SinglePositiveTraining", "FixedSplit", "make_splitter", "check_splitter",
           "dask_client", "suite_metrics", "skipped_of"]


@dataclass
class BenchResult:
    result: Any  # has .table
    results_path: Path
    report_html: Path
    skipped: dict[str, str]
    seconds: float



def _load_suite_dataset(cfg: SuiteConfig, data: str | os.PathLike | None):
    from mimlkit.datasets import load_dataset

    path = data if data is not None else cfg.dataset
    if path is None:
        raise ValueError(f"suite {cfg.name!r} needs a dataset: pass --data PATH")
    opts = dict(cfg.dataset_options)
    if str(path).strip().lower() in ("synthetic", "synthetic-images", "synthetic-bags"):
        opts.setdefault("random_state", cfg.seed)
    ds = load_dataset(path, **opts)
    if not str(ds.name or "").strip():  # e.g. labels.csv in the working folder
        ds.name = dataset_name_from_path(path)
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
        scores: dict[str, Any] | None = {} if cfg.store_scores else None
        table = _run_all(built, ds, splitter, cfg, jobs, backend, skipped, log, client,
                         scores_out=scores)
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
    if scores:
        payload = split_scores_payload(scores, ds.Y, list(ds.label_names))
        if payload is not None:
            extra["test_scores"] = payload
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
    title = (f"mimlkit bench: {cfg.name} suite ({extra['dataset']['name']}, "
             f"{env['protocol']})")
    results_path, _ = write_results(table, out / "results.json", environment=env, title=title,
                                    extra=extra)
    html = build_report(results_path, out / "report") if report else out / "report"
    return BenchResult(_Table(table), results_path, html, skipped,
                       time.perf_counter() - t_start)


class _Log:
    def __init__(self, console: Any) -> None:
        self.console = console

    def __call__(self, msg: str) -> None:
        if self.console is not None:
            self.console.print(msg)

    def status(self, msg: str):
        return self.console.status(msg) if self.console is not None else nullcontext()


def _run_all(built, ds, splitter, cfg, jobs, backend, skipped, log, client=None,
             scores_out: dict[str, Any] | None = None):
    """Evaluate all learners in one parallel batch (the runner turns a learner's exception
    into error rows); learners that failed are listed in ``skipped`` with the reason.
    With a dict ``scores_out``, the runner's per-split test scores are put in it."""
    estimators = {k: v[0] for k, v in built.items()}
    inputs = {k: v[1] for k, v in built.items()}
    log(f"evaluating {len(estimators)} learners on {_esc(ds.name)} ({len(ds)} bags; "
        f"{_esc(', '.join(estimators))}) ...")
    table = _evaluate(estimators, ds, splitter, suite_metrics(cfg.metrics), jobs, backend,
                      inputs, scheduler=client, progress=log.console is not None,
                      keep_scores=scores_out is not None)
    if scores_out is not None:
        table, kept = table
        scores_out.update(kept)
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
    if not str(info.get("name") or "").strip():  # e.g. labels.csv in the working folder
        info["name"] = dataset_name_from_path(path)
    return info
