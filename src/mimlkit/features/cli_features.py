"""``mimlkit features``: images + labels CSV -> dataset ``.npz`` (or bag store) of feature bags.

Registered by ``mimlkit.cli`` (``app.command("features")(features)``) when this module exists.
torch is imported only when the command runs.

    mimlkit features --images DIR --labels CSV --backbone vgg16-multilevel \\
        [--weights FILE] [--tile SIZE --stride S] [--cache DIR] --out features.npz
    mimlkit features --images DIR --labels Data_Entry.csv --label-column "Finding Labels" \\
        --backbone colour-texture --tile 32 --out features.npz

The label CSV is read as the datasets layer reads it (``load_image_csv``): 0/1 columns or a
column of ``--sep``-joined label names where ``--no-finding`` (``No Finding``) is an empty
label set. ``--backbone colour-texture`` writes the hand-crafted tile descriptors
(``mimlkit.features.handcrafted``; numpy only).

``--out NAME.zarr`` (or an existing store folder) writes a bag store instead, incrementally
and resumably, optionally on a Dask cluster (``--scheduler tcp://HOST:8786`` or ``--jobs N``
local worker processes): ``mimlkit.features.to_store``.

    mimlkit features --images DIR --backbone colour-texture --tile 32 --out feats.zarr
    mimlkit features --images /shared/imgs --backbone vgg16-multilevel \\
        --weights /shared/vgg16.pth --scheduler tcp://head:8786 --out /shared/feats.zarr
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer

__all__ = ["features", "features_command"]


def features(
    images: Path = typer.Option(..., "--images", help="Image folder (or a folder holding "
                                "labels.csv and its images)."),
    labels: Path | None = typer.Option(None, "--labels", help="Label CSV: image column + one "
                                       "0/1 column per label, or one column of label names "
                                       "(--label-column, e.g. NIH 'Finding Labels'). "
                                       "Default: IMAGES/labels.csv."),
    label_column: str | None = typer.Option(None, "--label-column", help="Column holding "
                                            "label names joined by --sep (e.g. 'Finding "
                                            "Labels'); default: one 0/1 column per label."),
    sep: str = typer.Option("|", "--sep", help="Separator of --label-column names."),
    no_finding: str = typer.Option("No Finding", "--no-finding", help="Label-column value "
                                   "meaning an empty label set ('' disables it)."),
    image_column: str | None = typer.Option(None, "--image-column", help="Image file column "
                                            "(default: image / Image Index / path / file / "
                                            "filename, else the first)."),
    group_column: str | None = typer.Option(None, "--group-column", help="Group id column "
                                            "(e.g. 'Patient ID') for group-aware splits."),
    backbone: str = typer.Option("vgg16-multilevel", "--backbone", help="Extractor: "
                                 "colour-texture (hand-crafted 40-d tile descriptors, no "
                                 "torch), <arch>-multilevel (vgg16-multilevel = the seed's "
                                 "9984-d features) or <arch> (last level only); arch in "
                                 "vgg16, resnet18, resnet50, ..., tiny."),
    weights: str | None = typer.Option(None, "--weights", help="State-dict file (.pth / "
                                       ".safetensors) or a torchvision weights name "
                                       "(needs the file in $TORCH_HOME or internet). "
                                       "Default: random init (--seed)."),
    tile: int | None = typer.Option(None, "--tile", help="Cut images into SIZE x SIZE tiles "
                                    "(instances); default: the whole image is one instance."),
    stride: int | None = typer.Option(None, "--stride", help="Tile stride (default: --tile)."),
    image_size: int | None = typer.Option(None, "--image-size", help="Network input side "
                                          "(default 224; 64 for tiny)."),
    resize: str = typer.Option("full", "--resize", help="full | shorter+crop (full: the "
                               "whole image resized, no crop)."),
    cache: Path | None = typer.Option(None, "--cache", help="Feature cache folder (re-runs "
                                      "and interrupted runs skip finished images)."),
    batch_size: int = typer.Option(16, "--batch-size", help="Pictures per forward pass."),
    memory_budget_mb: float | None = typer.Option(
        None, "--memory-budget-mb", help="Cap the forward batch so one batch of pictures and "
        "activations fits this many MiB (lowers --batch-size when needed)."),
    workers: int | None = typer.Option(None, "--workers", help="Decoding processes "
                                       "(default: 0 on <= 2 CPUs)."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N"),
    seed: int = typer.Option(0, "--seed", help="Seed of random-init weights."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    scheduler: str | None = typer.Option(None, "--scheduler", help="Dask scheduler address "
                                         "tcp://HOST:PORT: one task per --chunk-images "
                                         "images, each writing a part store next to --out "
                                         "(needs a .zarr --out; images, weights and output "
                                         "on paths every worker sees)."),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Extract on a local Dask cluster of N "
                             "worker processes (needs a .zarr --out; 1: in this process)."),
    chunk_images: int = typer.Option(64, "--chunk-images", help="Images per committed write "
                                     "(and per Dask task) of a .zarr --out; bounds memory."),
    out: Path = typer.Option(..., "--out", help="Output: a dataset .npz, or a bag store "
                             "NAME.zarr written incrementally (a rerun resumes it)."),
) -> None:
    """Extract features (CNN or hand-crafted; whole images or tiles) into a dataset .npz or
    a resumable bag store (.zarr), optionally on a Dask cluster."""
    from mimlkit.cli import writing
    from mimlkit.cli_models import check_device
    from mimlkit.datasets import load_image_csv, save_npz
    from mimlkit.datasets.images import default_image_dir
    from mimlkit.datasets.store_dataset import is_store_path
    from mimlkit.datasets.tiling import TileBagger
    from mimlkit.features.input_pipeline import _HANDCRAFTED_ALIASES, HANDCRAFTED_NAME

    to_store = is_store_path(out)
    if jobs < 1 or chunk_images < 1:
        raise ValueError(f"--jobs and --chunk-images must be >= 1, got {jobs} and "
                         f"{chunk_images}")
    if (scheduler is not None or jobs != 1) and not to_store:
        raise ValueError("--scheduler and --jobs write a bag store: give --out NAME.zarr")
    if to_store:
        from mimlkit._extras import require

        require("store", "zarr", "mimlkit features --out NAME.zarr")
        if scheduler is not None or jobs > 1:
            require("dask", "dask.distributed", "mimlkit features --scheduler / --jobs")
        if scheduler is not None:
            from mimlkit.cli_models import check_scheduler_reachable

            check_scheduler_reachable(scheduler)

    if labels is None:
        labels = images / "labels.csv"
        if not labels.is_file():
            raise ValueError(f"{images}: no labels.csv inside; pass --labels CSV")
        image_dir = default_image_dir(labels) or images
    else:
        image_dir = images
    ds = load_image_csv(labels, image_dir, label_column=label_column, separator=sep,
                        no_finding=no_finding or None, image_column=image_column,
                        group_column=group_column)
    if stride is not None and tile is None:
        raise ValueError("--stride needs --tile")
    if resize not in ("full", "shorter+crop"):
        raise ValueError(f"--resize must be full or shorter+crop, got {resize!r}")
    tiler = TileBagger(int(tile), stride=stride) if tile is not None else None
    meta = dict(ds.meta)
    if to_store:
        _features_to_store(ds, meta, out, backbone=backbone, weights=weights, seed=seed,
                           image_size=image_size, resize=resize, tiler=tiler,
                           batch_size=batch_size, memory_budget_mb=memory_budget_mb,
                           workers=workers, device=device, cache=cache, progress=progress,
                           scheduler=scheduler, jobs=jobs, chunk_images=chunk_images)
        return
    if backbone.lower() in _HANDCRAFTED_ALIASES:
        from mimlkit.features.input_pipeline import handcrafted_bags

        if weights is not None:
            raise ValueError(f"--weights does not apply to --backbone {HANDCRAFTED_NAME}")
        bags = handcrafted_bags(ds.inputs("images"), tiler)
        meta["features"] = {"extractor": HANDCRAFTED_NAME, "n_features": bags.n_features}
        described = f"{HANDCRAFTED_NAME}, no weights"
    else:
        from mimlkit._extras import require

        require("deep", "torch", "mimlkit features")
        require("deep", "torchvision", "mimlkit features")
        check_device(device)
        from mimlkit.features.extract import extract_features
        from mimlkit.features.multilevel import make_extractor

        extractor = make_extractor(backbone, weights, seed=seed, image_size=image_size,
                                   resize=resize)
        bags = extract_features(ds.inputs("images"), extractor, tiler=tiler,
                                batch_size=batch_size, num_workers=workers, cache_dir=cache,
                                device=device, progress=progress,
                                memory_budget_mb=memory_budget_mb)
        meta["features"] = extractor.config()
        if weights is not None and Path(weights).expanduser().is_file():
            meta["weights_path"] = str(Path(weights).expanduser().resolve())
        described = f"{backbone}, weights={extractor.weights_id}"
    if tiler is not None:
        meta["tiler"] = tiler.get_config()
    result = replace(ds, bags=bags, meta=meta)
    with writing(out):
        path = save_npz(result, out)
    typer.echo(f"{path}: {len(bags)} bags, {bags.n_instances} instances x {bags.n_features} "
               f"features ({described})")


def _features_to_store(ds, meta: dict, out: Path, *, backbone: str, weights: str | None,
                       seed: int, image_size: int | None, resize: str, tiler,
                       batch_size: int, memory_budget_mb: float | None, workers: int | None,
                       device: str, cache: Path | None, progress: bool,
                       scheduler: str | None, jobs: int, chunk_images: int) -> None:
    """The ``--out NAME.zarr`` path (``mimlkit.features.to_store``)."""
    from mimlkit.cli import writing
    from mimlkit.features.to_store import ExtractSettings, features_to_store

    settings = ExtractSettings(
        backbone=backbone, weights=weights, seed=seed, image_size=image_size, resize=resize,
        tiler=None if tiler is None else tiler.get_config(), batch_size=batch_size,
        memory_budget_mb=memory_budget_mb, workers=workers, device=device,
        cache=None if cache is None else str(cache.expanduser().absolute()))
    if settings.handcrafted:
        if weights is not None:
            raise ValueError(f"--weights does not apply to --backbone {backbone}")
        described = f"{backbone}, no weights"
    else:
        from mimlkit._extras import require
        from mimlkit.cli_models import check_device

        require("deep", "torch", "mimlkit features")
        require("deep", "torchvision", "mimlkit features")
        check_device(device)
        if weights is not None and Path(weights).expanduser().is_file():
            weights = str(Path(weights).expanduser().resolve())  # the same file on workers
            settings = replace(settings, weights=weights)
        described = f"{backbone}, weights={settings.extractor().weights_id}"
    meta["features"] = settings.features_meta()
    if weights is not None and Path(weights).is_file():
        meta["weights_path"] = weights
    if tiler is not None:
        meta["tiler"] = tiler.get_config()
    with writing(out, only_disk=True):
        store, n_new = features_to_store(ds, settings, out, meta=meta,
                                         chunk_images=chunk_images, scheduler=scheduler,
                                         jobs=jobs, progress=progress)
    where = f"Dask scheduler {scheduler}" if scheduler else (
        f"{jobs} local Dask workers" if jobs > 1 else "this process")
    typer.echo(f"{store.path}: {store.n_bags} bags, {store.n_instances} instances x "
               f"{store.n_features} features ({described}); {n_new} images added now "
               f"({where}), {store.n_bags - n_new} were already in the store")


features_command = features
