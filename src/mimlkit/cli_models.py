"""``mimlkit fit`` / ``mimlkit predict`` and the CLI's reader-option helpers.

Registered on ``mimlkit.cli.app`` by ``mimlkit.cli``. Only typer and the standard library are
imported at module level (fast startup); ``mimlkit.cli`` helpers are imported inside the
commands.

A model carries its input pipeline (``mimlkit.features.input_pipeline``): ``fit`` stores
the tiling, the feature extractor (name, config, weights id), the feature width and the
label names in the checksummed ``config.json``; ``predict`` refuses data made another way
and, with ``--images DIR``, redoes the same tiling and extraction on raw images.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

__all__ = ["fit_cmd", "predict_cmd", "parse_data_options", "data_option_keys",
           "check_unique_bag_ids", "check_device", "check_scheduler_reachable",
           "decision_rule", "seed_everything", "apply_memory_budget", "MEMORY_BUDGET_OPT"]

_LABELS_XML = typer.Option(None, "--labels-xml", help="Mulan XML label header (default: next "
                           "to the ARFF, found by dataset stem).")
_DATA_OPTS = typer.Option(None, "--option", "-o", help="Extra reader option KEY=VALUE "
                          "(e.g. label_column=Finding Labels, sep=|, tile=32, stride=16, "
                          "image_dir=DIR, no_finding=None); repeatable. With MSRC v2-style "
                          "segmentations: regions=true makes one instance per ground-truth "
                          "region, with min_region_pixels=N and segmentation_dir=DIR; "
                          "tile_truth=true with tile=N gives each tile the labels covering at "
                          "least tile_truth_share=0.25 of its labelled pixels. Whole-slide "
                          "folders: tile=N with level=N or mpp=X.")
MEMORY_BUDGET_OPT = typer.Option(
    None, "--memory-budget-mb", metavar="MB",
    help="Working-memory budget in MB (a number > 0) of the learner's distance engine and "
         "row-blocked steps: sets its memory_budget_mb parameter (the Hausdorff learners "
         "mimlknn, mimlsvm, mimlnn, mimlrbf, and others that have one, e.g. smipr); a "
         "learner without that parameter is refused.")

#: ``-o`` aliases (what the help and the docs show) -> ``load_dataset`` keyword
_OPTION_ALIASES = {"sep": "separator", "label-column": "label_column",
                   "image-column": "image_column", "group-column": "group_column",
                   "image-dir": "image_dir", "no-finding": "no_finding",
                   "segmentation-dir": "segmentation_dir"}
_TEXT_OPTIONS = ("label_column", "image_column", "group_column", "separator", "no_finding",
                 "image_dir", "segmentation_dir")


# ----------------------------------------------------------------------------- reader options
def data_option_keys() -> list[str]:
    """Keys ``-o KEY=VALUE`` accepts: ``load_dataset``'s keywords and the aliases."""
    import inspect

    from mimlkit.datasets import load_dataset

    names = [p.name for p in inspect.signature(load_dataset).parameters.values()
             if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "labels_xml"]
    return sorted(names + list(_OPTION_ALIASES))


def parse_data_options(options: list[str] | None) -> dict[str, Any]:
    """``-o KEY=VALUE`` items -> ``load_dataset`` keywords (aliases resolved, text options
    kept as typed, unknown keys refused with the list of accepted ones)."""
    from mimlkit.cli import parse_param

    known = set(data_option_keys())
    out: dict[str, Any] = {}
    for item in options or []:
        key, value = parse_param(item)
        if key not in known:
            raise ValueError(f"--option {item!r}: unknown reader option {key!r}; accepted: "
                             f"{', '.join(sorted(known))}")
        key = _OPTION_ALIASES.get(key, key)
        if key == "no_finding" and value is None:
            value = ""  # no_finding=None: no "no finding" token (load_dataset's None = default)
        elif key in _TEXT_OPTIONS and value is not None:
            value = item.partition("=")[2].strip()
        out[key] = value
    return out


def check_unique_bag_ids(ds: Any, source: Any) -> None:
    """Refuse a dataset whose bag ids (``meta["bag_ids"]``) repeat, naming file and ids."""
    ids = ds.meta.get("bag_ids") if isinstance(ds.meta, dict) else None
    if ids is None:
        return
    seen: set[str] = set()
    dup: list[str] = []
    for x in (str(v) for v in ids):
        if x in seen and x not in dup:
            dup.append(x)
        seen.add(x)
    if dup:
        more = f" and {len(dup) - 5} more" if len(dup) > 5 else ""
        raise ValueError(f"{source}: duplicate bag ids {', '.join(repr(d) for d in dup[:5])}"
                         f"{more}; every bag id must be unique")


def check_device(device: Any, what: str = "--device") -> None:
    """Refuse a CUDA device this torch build / machine cannot use (one line, not torch's
    ``AssertionError: Torch not compiled with CUDA enabled``)."""
    if not isinstance(device, str) or not device.lower().startswith("cuda"):
        return
    import torch

    if torch.version.cuda is None:
        raise ValueError(f"{what} {device}: this torch {torch.__version__} is a CPU-only "
                         "build; use --device cpu (or auto), or install a CUDA build of torch")
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    idx = int(device.split(":", 1)[1]) if ":" in device and device.split(":", 1)[1].isdigit() \
        else 0
    if idx >= n:
        raise ValueError(f"{what} {device}: {n} CUDA device(s) visible here; use --device cpu "
                         "(or auto)")


def check_scheduler_reachable(address: str, timeout: float = 5.0) -> None:
    """Open (and close) a TCP connection to a Dask scheduler ``[tcp://]host:port``; raise a
    one-line ``ConnectionError`` naming it when nothing answers within ``timeout`` seconds.
    Other protocols (tls://, ucx://, inproc://) are left to Dask."""
    import socket

    addr = address.strip()
    scheme, sep, rest = addr.partition("://")
    if not sep:
        scheme, rest = "tcp", addr
    if scheme != "tcp":
        return
    host, _, port = rest.rpartition(":")
    host = host.strip("[]") or "localhost"
    if not port.isdigit():
        raise ValueError(f"--scheduler {address!r}: expected tcp://HOST:PORT")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        raise ConnectionError(f"Dask scheduler {address} is unreachable ({reason}); start it "
                              "with `dask scheduler` or leave --scheduler out for a local "
                              "cluster") from None


# ----------------------------------------------------------------------------- memory budget
def apply_memory_budget(params: dict[str, dict[str, Any]], budget: float | None) -> None:
    """``--memory-budget-mb MB``: set ``memory_budget_mb=MB`` in each learner's parameter
    dict (``{name: params}``, updated in place). Refused (``ValueError``, one line) when
    ``MB`` is not > 0, when a learner has no ``memory_budget_mb`` parameter (naming it) or
    when ``--param memory_budget_mb=...`` gives another value."""
    if budget is None:
        return
    import math

    from mimlkit.registry import create

    if not (math.isfinite(budget) and budget > 0):
        raise ValueError(f"--memory-budget-mb must be a number of MB > 0, got {budget:g}")
    for name, kw in params.items():
        if "memory_budget_mb" not in create(name).get_params(deep=False):
            raise ValueError(f"--memory-budget-mb: learner {name} has no memory_budget_mb "
                             "parameter (its memory is not budgeted); leave the option out "
                             "for it")
        given = kw.get("memory_budget_mb")
        if given is not None and given != budget:
            raise ValueError(f"--memory-budget-mb {budget:g} and --param "
                             f"memory_budget_mb={given} disagree for {name}; give one")
        kw["memory_budget_mb"] = budget


# ----------------------------------------------------------------------------- seeds / rules
def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global generator and torch (when imported)."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)


def decision_rule(scores: Any, threshold: Any, top_k: int | None, t_criterion: bool) -> Any:
    """{0,1} predictions from scores: ``score > threshold`` (scalar or per label) with the
    T-criterion (top label kept when none passes) if ``t_criterion``; ``top_k`` keeps at most
    the K highest-scoring of those; ``threshold=None`` with ``top_k`` gives exactly K."""
    import numpy as np

    from mimlkit.learners.base import t_criterion_predict

    scores = np.asarray(scores, dtype=float)
    if top_k is not None and top_k < 1:
        raise ValueError(f"--top-k must be >= 1, got {top_k}")
    if threshold is None:
        pred = np.ones(scores.shape, dtype=np.int8)
    else:
        pred = t_criterion_predict(scores, threshold, t_criterion)
    if top_k is not None and top_k < scores.shape[1]:
        top = np.argpartition(-scores, top_k - 1, axis=1)[:, :top_k]
        keep = np.zeros(scores.shape, dtype=bool)
        np.put_along_axis(keep, top, True, axis=1)
        pred = pred * keep
    return pred.astype(np.int8)


def _bag_ids(ds: Any) -> list[str]:
    ids = ds.meta.get("bag_ids") if isinstance(ds.meta, dict) else None
    if ids is not None and len(ids) == len(ds):
        return [str(x) for x in ids]
    if ds.images is not None:
        return [Path(s).name if not s.startswith("<") else str(i)
                for i, s in enumerate(ds.images.sources)]
    return [str(i) for i in range(len(ds))]


# ----------------------------------------------------------------------------- fit
def fit_cmd(
    data: Path = typer.Option(..., "--data", help="Training dataset (ARFF, .npz, .zarr bag "
                              "store, image folder)."),
    learner: str = typer.Option(..., "--learner", "-l", help="Registered learner name."),
    param: list[str] | None = typer.Option(None, "--param", "-p", help="KEY=VALUE; repeatable."),
    labels_xml: Path | None = _LABELS_XML,
    option: list[str] | None = _DATA_OPTS,
    seed: int | None = typer.Option(None, "--seed", help="Seed: sets the learner's "
                                    "random_state (unless --param gives it) and seeds "
                                    "numpy/torch; same seed -> same model and predictions."),
    out: Path = typer.Option(..., "--out", help="Model folder to write."),
    preset: str = typer.Option("default", "--preset", help="Learner settings: default "
                               "(data-chosen scaling and thresholds) | paper (the paper's "
                               "literal settings)."),
    memory_budget_mb: float | None = MEMORY_BUDGET_OPT,
) -> None:
    """Fit a learner on a whole dataset and save it with its input pipeline."""
    import time

    from mimlkit import persistence
    from mimlkit.cli import (
        _check_preset,
        _command_line,
        _console,
        _naming,
        parse_params,
    )
    from mimlkit.cli_store import fit_streamed, streamed_metadata, training_data
    from mimlkit.features.input_pipeline import describe_pipeline
    from mimlkit.registry import create, learner_spec

    name = learner.lower()
    spec = learner_spec(name)
    params = parse_params(param, [name])[name]
    apply_memory_budget({name: params}, memory_budget_mb)  # refused before the data load
    check_device(params.get("device"), "--param device=")
    est = create(name, preset=_check_preset(preset), **params)
    # a bag store the learner can stream stays on disk (mimlkit.cli_store); else in memory
    ds, streamed = training_data(data, labels_xml, option, est, spec.input, name)
    if seed is not None:
        if "random_state" in est.get_params(deep=False) and "random_state" not in params:
            est.set_params(random_state=int(seed))
        seed_everything(int(seed))
    X = ds.inputs(spec.input)
    con = _console(stderr=True)
    t0 = time.perf_counter()
    with con.status(f"fitting {name} on {len(ds)} bags ..."), _naming(f"fitting {name} on "
                                                                      f"{data}", data):
        if streamed is None:
            est.fit(X, ds.Y)
        else:
            fit_streamed(est, ds)
    seconds = time.perf_counter() - t0
    shown = est.get_params(deep=False)
    persistence.save(est, out, label_names=ds.label_names, metadata={
        "learner": name, "input": spec.input, "params": {k: repr(v) for k, v in params.items()},
        "seed": seed, "random_state": repr(shown.get("random_state")),
        "data": str(data), "dataset": ds.name, "n_bags": len(ds),
        "pipeline": describe_pipeline(ds, spec.input),
        "fit_seconds": round(seconds, 3), "command": _command_line(),
        **streamed_metadata(streamed),
    })
    _console().print(f"fitted [bold]{name}[/] on {len(ds)} bags in {seconds:.2f} s; "
                     f"model saved to [bold]{out}[/]")


# ----------------------------------------------------------------------------- predict
def _model_pipeline(config: dict[str, Any], est: Any) -> dict[str, Any]:
    pipe = dict((config.get("metadata") or {}).get("pipeline") or {})
    if not pipe:  # models saved before pipelines were recorded: what the config knows
        pipe = {"input": (config.get("metadata") or {}).get("input", "bags"),
                "tiler": None, "features": None,
                "n_features": getattr(est, "n_features_in_", None)}
    pipe["label_names"] = config.get("label_names")  # the checksummed copy
    return pipe


def _images_pipeline(pipe: dict[str, Any], opts: dict[str, Any]) -> dict[str, Any]:
    """The model's pipeline, with the tiling asked for by ``-o tile=...`` (if any)."""
    asked = dict(pipe)
    if "tile" in opts:
        from mimlkit.datasets.tiling import TileBagger

        asked["tiler"] = TileBagger(int(opts["tile"]), opts.get("stride"),
                                    opts.get("border", "drop"), opts.get("foreground"),
                                    opts.get("min_foreground", 0.5)).get_config()
    extra = sorted(set(opts) - {"tile", "stride", "border", "foreground", "min_foreground"})
    if extra:
        raise ValueError(f"--images: reader option(s) {', '.join(extra)} apply to --data only")
    return asked


def predict_cmd(
    model: Path = typer.Option(..., "--model", help="Model folder written by `mimlkit fit`."),
    data: Path | None = typer.Option(None, "--data", help="Dataset to score (feature bags, "
                                     "or an image CSV/folder: then the model's tiling and "
                                     "extraction are redone)."),
    images: Path | None = typer.Option(None, "--images", help="Folder of raw images (no "
                                       "labels needed): the model's tiling and feature "
                                       "extraction are redone on them."),
    labels_xml: Path | None = _LABELS_XML,
    option: list[str] | None = _DATA_OPTS,
    threshold: float | None = typer.Option(None, "--threshold", help="Predict a label when "
                                           "its score (the CSV's score columns = "
                                           "decision_function) is > X; overrides the model's "
                                           "stored thresholds."),
    top_k: int | None = typer.Option(None, "--top-k", help="At most the K highest-scoring "
                                     "labels per bag (alone: exactly K)."),
    t_criterion: bool | None = typer.Option(None, "--t-criterion/--no-t-criterion",
                                            help="Force the T-criterion (every bag keeps its "
                                            "top label) on or off; default: the model's."),
    weights: Path | None = typer.Option(None, "--weights", help="CNN weights file for "
                                        "--images when it moved since `mimlkit features`."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N "
                               "(feature extraction for --images)."),
    out: Path = typer.Option(Path("predictions.csv"), "--out", help="Predictions CSV."),
    sep: str = typer.Option("|", help="Separator between predicted label names."),
    explain: Path | None = typer.Option(
        None, "--explain", metavar="OUT",
        help="Also write instance attributions to the CSV OUT: one row per instance, columns "
             "bag_id (as in the predictions), instance (0-based index within the bag), then "
             "when the instances carry them tile_y, tile_x (top-left pixel of the tile) and "
             "tile_size (when known), bbox_y0, bbox_x0, bbox_y1, bbox_x1 and centroid_y, "
             "centroid_x (regions), then one column per label: the learner's "
             "instance_scores (default kind; e.g. mimlfast/mimlmisvm/deepmiml: instance "
             "score, bag score = max; meanmil/maxmil: instance logit; abmil/transmil/dsmil: "
             "attention x logit). Only learners with instance scores (mimlfast, mimlmisvm, "
             "deepmiml, selfpaced-miml, abmil, transmil, dsmil, meanmil, maxmil); any other "
             "is refused (exit 2) before anything is written."),
    heatmaps: Path | None = typer.Option(
        None, "--heatmaps", metavar="DIR",
        help="Write one PNG per bag (the first --max-heatmaps bags) to DIR, named "
             "NNNN_<bag id>.png: the instance scores of the --heatmap-labels top-scored "
             "labels, as a grid at the tiles' coordinates (over the image when the data has "
             "it), as dots at region centroids, or (no coordinates) in instance order on a "
             "square grid. Needs matplotlib (the 'report' extra) and a learner with "
             "instance scores."),
    max_heatmaps: int = typer.Option(20, "--max-heatmaps", min=0,
                                     help="Heatmap PNGs for at most the first N bags."),
    heatmap_labels: int = typer.Option(3, "--heatmap-labels", min=1,
                                       help="Labels per heatmap: the K highest bag scores."),
) -> None:
    """Predict label sets and per-label scores; write a CSV (bag id, labels, scores); with
    --explain / --heatmaps also per-instance scores (CSV) and per-bag heatmaps (PNG)."""
    import csv
    import io

    import numpy as np

    from mimlkit import persistence
    from mimlkit.cli import _console, _load_dataset, _naming, atomic_write_text
    from mimlkit.cli_store import score_input, scoring_store
    from mimlkit.features.input_pipeline import (
        check_pipeline,
        describe_pipeline,
        featurize_images,
        list_images,
    )

    if (data is None) == (images is None):
        raise ValueError("give exactly one of --data DATASET or --images DIR")
    check_device(device)
    config = persistence.read_config(model)
    est = persistence.load(model)
    explaining = explain is not None or heatmaps is not None
    if explaining:
        _check_explainable(est, config)
    if heatmaps is not None:
        from mimlkit._extras import require

        require("report", "matplotlib", "mimlkit predict --heatmaps")
    pipe = _model_pipeline(config, est)
    kind = pipe.get("input", "bags")
    source = images if images is not None else data
    lazy = None if data is None else scoring_store(data, option, est, kind, explaining,
                                                   _learner_name(config, est))
    streamed = None
    if images is not None:
        imgs = list_images(images)
        asked = _images_pipeline(pipe, parse_data_options(option))
        check_pipeline(pipe, asked, model_name=model, data_name=images, check_labels=False)
        X = imgs if kind == "images" else featurize_images(imgs, pipe, weights=weights,
                                                           device=device)
        ids = [Path(s).name for s in imgs.sources]
        image_set, ds_meta = imgs, {}
        if "tiler" in asked and asked["tiler"] is not None:
            ds_meta = {"tiler": asked["tiler"]}
    elif lazy is not None and lazy[1] is not None:  # a bag store scored lazily (cli_store)
        ds, streamed = lazy
        check_pipeline(pipe, describe_pipeline(ds, kind), model_name=model, data_name=data)
        X, ids, image_set, ds_meta = ds.store, _bag_ids(ds), ds.images, ds.meta
    else:
        ds = lazy[0].load() if lazy is not None else \
            _load_dataset(data, labels_xml, option)  # type: ignore[arg-type]
        if kind == "bags" and ds.bags is None and ds.images is not None:
            check_pipeline(pipe, {**pipe, "label_names": ds.label_names}, model_name=model,
                           data_name=data)
            X = featurize_images(ds.images, pipe, weights=weights, device=device)
        else:
            check_pipeline(pipe, describe_pipeline(ds, kind), model_name=model, data_name=data)
            X = ds.inputs(kind)
        ids = _bag_ids(ds)
        image_set = ds.images
        ds_meta = ds.meta if isinstance(ds.meta, dict) else {}
    with _console(stderr=True).status(f"scoring {len(ids)} bags ..."), \
            _naming(f"scoring {source} with {model}", source):
        scores, pred = score_input(est, X, streamed, threshold, top_k, t_criterion)
    names = config.get("label_names") or [f"label_{k}" for k in range(scores.shape[1])]
    if len(names) != scores.shape[1]:
        raise ValueError(f"{model}: the model has {scores.shape[1]} labels but its config "
                         f"names {len(names)}")
    if explaining:
        from mimlkit.explain import collect_instance_scores, instance_coordinates

        with _console(stderr=True).status(f"instance scores of {len(ids)} bags ..."), \
                _naming(f"instance scores of {source} with {model}", source):
            inst, tile_coords = collect_instance_scores(est, X, n_labels=len(names))
        if len(inst) != len(ids):
            raise ValueError(f"{model}: instance_scores gave {len(inst)} bags for "
                             f"{len(ids)} bags")
        where = instance_coordinates(X, tile_coords, _tile_size(ds_meta, pipe, est))
    cols = [n if n not in ("bag_id", "predicted") else f"score_{n}" for n in names]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["bag_id", "predicted", *cols])
    for bid, prow, srow in zip(ids, pred, scores):
        w.writerow([bid, sep.join(n for n, p in zip(names, prow) if p),
                    *[f"{v:.6g}" for v in srow]])
    atomic_write_text(out, buf.getvalue())
    _console().print(f"wrote predictions for {len(ids)} bags ({len(names)} labels) to "
                     f"[bold]{out}[/]")
    if not explaining:
        return
    kind = _score_kind(est)
    if explain is not None:
        from mimlkit.explain import explain_csv

        atomic_write_text(explain, explain_csv(ids, inst, names, where))
        _console().print(f"wrote instance scores{kind} of {sum(len(a) for a in inst)} "
                         f"instances in {len(ids)} bags to [bold]{explain}[/]")
    if heatmaps is not None:
        from mimlkit.cli import writing
        from mimlkit.reporting.heatmaps import write_heatmaps

        cuts = np.cumsum([len(a) for a in inst])[:-1]

        def per_bag(key: str) -> list[Any] | None:
            return None if key not in where else np.split(where[key], cuts)

        cen = per_bag("centroid")
        if cen is None and "bbox" in where:
            bb = np.asarray(where["bbox"], dtype=float)
            cen = np.split(np.stack([(bb[:, 0] + bb[:, 2]) / 2, (bb[:, 1] + bb[:, 3]) / 2],
                                    axis=1), cuts)
        ts = per_bag("tile_size")
        with writing(heatmaps, only_disk=True):
            paths = write_heatmaps(
                heatmaps, ids, inst, names, coords=per_bag("coords"),
                tile_sizes=None if ts is None else [float(t[0]) if len(t) else None
                                                    for t in ts],
                centroids=cen, image=_image_getter(image_set, len(ids)), bag_scores=scores,
                max_bags=max_heatmaps, top_k=heatmap_labels,
                what=f"instance scores{kind}")
        _console().print(f"wrote {len(paths)} heatmap(s) to [bold]{heatmaps}[/]")


def _check_explainable(est: Any, config: dict[str, Any]) -> None:
    """Refuse (one line) a model whose learner has no ``instance_scores``."""
    from mimlkit.explain import instance_score_learners, supports_instance_scores

    if supports_instance_scores(est):
        return
    name = _learner_name(config, est)
    yes, unknown = instance_score_learners()
    more = f"; not checked here (their extra is missing): {', '.join(unknown)}" \
        if unknown else ""
    raise ValueError(f"--explain/--heatmaps: learner {name} has no instance scores "
                     f"(instance_scores); learners that have them: {', '.join(yes)}{more}")


def _learner_name(config: dict[str, Any], est: Any) -> str:
    return str((config.get("metadata") or {}).get("learner") or type(est).__name__)


def _score_kind(est: Any) -> str:
    kind = getattr(est, "_default_kind", None)
    return f" ({kind})" if isinstance(kind, str) else ""


def _tile_size(meta: dict[str, Any], pipe: dict[str, Any], est: Any) -> float | None:
    """Tile side in pixels from the data's tiler, the model's tiler, the dataset's
    ``tile_size`` or the learner's ``tile_size`` (None: the heatmaps infer it)."""
    for tiler in (meta.get("tiler"), pipe.get("tiler")):
        if isinstance(tiler, dict) and tiler.get("tile_size"):
            return float(tiler["tile_size"])
    for v in (meta.get("tile_size"), getattr(est, "tile_size", None)):
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0:
            return float(v)
    return None


def _image_getter(images: Any, n: int) -> Any:
    """``i -> image array`` for heatmap backgrounds (None when there are no images)."""
    if images is None or len(images) != n:
        return None
    return lambda i: images[i]
