"""``mimlkit features``: images + labels CSV -> dataset ``.npz`` of CNN feature bags.

Registered by ``mimlkit.cli`` (``app.command("features")(features)``) when this module exists.
torch is imported only when the command runs.

    mimlkit features --images DIR --labels CSV --backbone vgg16-multilevel \\
        [--weights FILE] [--tile SIZE --stride S] [--cache DIR] --out features.npz
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import typer

__all__ = ["features", "features_command"]


def features(
    images: Path = typer.Option(..., "--images", help="Image folder (or a folder holding "
                                "labels.csv and its images)."),
    labels: Path | None = typer.Option(None, "--labels", help="Label CSV (image column + one "
                                       "0/1 column per label, or a '|'-separated label "
                                       "column). Default: IMAGES/labels.csv."),
    backbone: str = typer.Option("vgg16-multilevel", "--backbone", help="Extractor: "
                                 "<arch>-multilevel (vgg16-multilevel = the seed's 9984-d "
                                 "features) or <arch> (last level only); arch in vgg16, "
                                 "resnet18, resnet50, ..., tiny."),
    weights: str | None = typer.Option(None, "--weights", help="State-dict file (.pth / "
                                       ".safetensors) or a torchvision weights name "
                                       "(needs the file in $TORCH_HOME or internet). "
                                       "Default: random init (--seed)."),
    tile: int | None = typer.Option(None, "--tile", help="Cut images into SIZE x SIZE tiles "
                                    "(instances); default: the whole image is one instance."),
    stride: int | None = typer.Option(None, "--stride", help="Tile stride (default: --tile)."),
    image_size: int | None = typer.Option(None, "--image-size", help="Network input side "
                                          "(default 224; 64 for tiny)."),
    resize: str = typer.Option("full", "--resize", help="full (whole image, no crop) | "
                               "shorter+crop"),
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
    out: Path = typer.Option(..., "--out", help="Output dataset (.npz)."),
) -> None:
    """Extract CNN features (whole images or tiles) into a dataset .npz."""
    from mimlkit.datasets import load_image_csv, save_npz
    from mimlkit.datasets.tiling import TileBagger
    from mimlkit.features.extract import extract_features
    from mimlkit.features.multilevel import make_extractor

    if labels is None:
        labels = images / "labels.csv"
        if not labels.is_file():
            raise ValueError(f"{images}: no labels.csv inside; pass --labels CSV")
        ds = load_image_csv(labels)
    else:
        ds = load_image_csv(labels, images)
    if stride is not None and tile is None:
        raise ValueError("--stride needs --tile")
    tiler = TileBagger(int(tile), stride=stride) if tile is not None else None
    extractor = make_extractor(backbone, weights, seed=seed, image_size=image_size,
                               resize=resize)
    bags = extract_features(ds.inputs("images"), extractor, tiler=tiler, batch_size=batch_size,
                            num_workers=workers, cache_dir=cache, device=device,
                            progress=progress, memory_budget_mb=memory_budget_mb)
    meta = dict(ds.meta)
    meta["features"] = extractor.config()
    if tiler is not None:
        meta["tiler"] = tiler.get_config()
    result = replace(ds, bags=bags, meta=meta)
    path = save_npz(result, out)
    typer.echo(f"{path}: {len(bags)} bags, {bags.n_instances} instances x {bags.n_features} "
               f"features ({backbone}, weights={extractor.weights_id})")


features_command = features
