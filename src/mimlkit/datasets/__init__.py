"""Datasets: ``MIMLDataset`` and the readers, tiler and synthetic generators.

``load_dataset(path, **options)`` picks the reader from the path:

- ``"synthetic"`` / ``"synthetic-images"`` -> ``make_miml_images(random_state=0)``;
  ``"synthetic-bags"`` -> ``make_miml_bags(random_state=0)`` (built-in, no files);
- ``*.arff`` -> relational (multi-instance) ARFF: ``load_miml_arff``; otherwise Mulan
  single-instance ARFF: ``load_mulan_arff`` (label XML next to it, or ``labels_xml=``);
- ``*.npz`` -> ``load_npz``;
- a bag store folder (``*.zarr``, e.g. from ``mimlkit features --out feats.zarr``) ->
  ``load_store_dataset`` (the whole store in memory; stream big ones with ``open_store``);
- ``*.csv`` -> ``load_image_csv`` with an image folder (``image_dir=`` or ``images`` /
  ``images_png`` next to the CSV);
- a directory holding ``labels.csv`` -> the same, image folder inside that directory.

With ``tile=`` an image dataset is cut into tiles (``TileBagger``) and described with the
hand-crafted colour/texture features, so bag learners can run on it. With ``regions=True``
each image's ground-truth segmentation (MSRC v2 ``newsegmentations_mats``) gives the
instances instead: one per connected segment region, with the same descriptor computed over
the region's pixels (``mimlkit.datasets.regions``). With ``tile=`` and ``tile_truth=True``
the same segmentations give tile-level truth: each tile gets the labels covering at least
``tile_truth_share`` of its labelled pixels, in ``instance_labels``
(``mimlkit.datasets.tile_truth``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mimlkit.datasets.arff_miml import is_relational_arff, load_miml_arff
from mimlkit.datasets.arff_mulan import load_mulan_arff
from mimlkit.datasets.base import ImageSet, MIMLDataset, take
from mimlkit.datasets.images import load_image_csv
from mimlkit.datasets.npz import load_npz, save_npz
from mimlkit.datasets.regions import extract_region_features
from mimlkit.datasets.store import (
    BagStoreWriter,
    StoredBags,
    StoreError,
    fit_from_store,
    import_clam,
    open_store,
)
from mimlkit.datasets.synthetic import make_dense_miml_images, make_miml_bags, make_miml_images
from mimlkit.datasets.tile_truth import DEFAULT_TILE_TRUTH_SHARE, extract_tile_truth
from mimlkit.datasets.tiling import TileBagger

__all__ = [
    "MIMLDataset",
    "ImageSet",
    "take",
    "load_dataset",
    "load_miml_arff",
    "load_mulan_arff",
    "load_image_csv",
    "save_npz",
    "load_npz",
    "make_miml_bags",
    "make_miml_images",
    "make_dense_miml_images",
    "TileBagger",
    "extract_tile_features",
    "extract_region_features",
    "extract_tile_truth",
    "BagStoreWriter",
    "StoredBags",
    "StoreError",
    "open_store",
    "fit_from_store",
    "import_clam",
    "BUILTIN_DATASETS",
]

BUILTIN_DATASETS = ("synthetic", "synthetic-images", "synthetic-bags")


def extract_tile_features(
    dataset: MIMLDataset,
    tiler: TileBagger,
    featurize: Any = None,
) -> MIMLDataset:
    """Image dataset -> same dataset with ``bags`` of tile descriptors (coords kept).

    ``featurize`` defaults to ``colour_texture_features`` (numpy, no torch).
    """
    from dataclasses import replace

    from mimlkit.features.handcrafted import colour_texture_features, images_to_bags

    images = dataset.inputs("images")
    bags = images_to_bags(images, tiler, featurize or colour_texture_features)  # type: ignore[arg-type]
    meta = dict(dataset.meta)
    meta["tiler"] = tiler.get_config()
    meta["features"] = getattr(featurize, "__name__", "colour_texture_features")
    return replace(dataset, bags=bags, instance_labels=None, meta=meta)


def load_dataset(
    path: str | Path,
    *,
    labels_xml: str | Path | None = None,
    labels: int | Sequence[str] | None = None,
    image_dir: str | Path | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    separator: str = "|",
    no_finding: str | None = None,
    group_column: str | None = None,
    tile: int | None = None,
    stride: int | None = None,
    border: str = "drop",
    foreground: float | None = None,
    min_foreground: float = 0.5,
    regions: bool = False,
    min_region_pixels: int = 100,
    segmentation_dir: str | Path | None = None,
    tile_truth: bool = False,
    tile_truth_share: float = DEFAULT_TILE_TRUTH_SHARE,
    level: int | None = None,
    mpp: float | None = None,
    random_state: int = 0,
    missing: str = "error",
    keep_ids: bool = False,
) -> MIMLDataset:
    """Load any supported dataset (see the module docstring for the dispatch rules).

    ``labels_xml`` / ``labels`` apply to ARFF (``labels`` may be a count of trailing label
    attributes or names) and ``labels`` to CSV (label names); ``image_dir``,
    ``image_column``, ``label_column``, ``separator``, ``no_finding`` (default
    ``"No Finding"``) and ``group_column`` to image CSVs. ``tile`` (+ ``stride``, ``border``,
    ``foreground``, ``min_foreground``) turns an image dataset into tile bags with
    hand-crafted features. ``regions=True`` instead makes one instance per ground-truth
    region of each image: the connected (8-neighbour) regions of the labelled segments in
    the image's segmentation file (``<image stem>_GT.mat``, MSRC v2 ``newseg`` /
    ``newlabels``) under ``segmentation_dir`` (default: ``newsegmentations_mats`` or
    ``segmentations`` next to the label CSV); void (unlabelled) pixels are excluded, regions
    under ``min_region_pixels`` pixels dropped, and each region is described by the same
    colour/texture descriptor as a tile, over its pixels; ``bags.instance_meta`` holds each
    region's ``bbox``, ``centroid``, ``area``, ``segment_id`` and ``class_id``
    (``mimlkit.datasets.regions``). ``tile`` and ``regions`` exclude each other.
    ``tile_truth=True`` (with ``tile``; opt-in, default off: reading the segmentations costs
    time and the truth changes what explain/evaluate report) gives each tile the labels
    that cover at least ``tile_truth_share`` (default 0.25, in (0, 1]) of its labelled
    pixels in the same segmentation files (void pixels and padding excluded from the
    share; a tile may get 0, 1 or several labels), as ``instance_labels`` (n_tiles x K
    int8, aligned with ``bags.instance_meta["coords"]``, as in ``make_miml_images``);
    any ``tile`` / ``stride`` / ``border`` works; the CSV's label columns must all be
    loaded (no ``labels=``), since segment classes index them
    (``mimlkit.datasets.tile_truth``). The built-in synthetic images carry tile truth
    already at their own tile size.
    A folder holding ``labels.csv`` and slide files (``.svs``, ``.ndpi``, tiled ``.tif``,
    ...; no image folder) is read with ``mimlkit.datasets.wsi.load_slides`` (extra
    ``wsi``): tissue tiles of ``tile`` (default 256) level pixels at ``level=`` or the level
    closest to ``mpp=`` microns per pixel, ``stride``, ``min_foreground`` as the minimum
    tissue share; coords (y, x) in level-0 pixels.
    ``random_state`` seeds the built-in synthetic datasets.
    ``missing`` (``"error"`` | ``"mean"`` | ``"zero"``) and ``keep_ids`` apply to ARFF: what
    a ``?`` feature value does, and whether string/date and id-like nominal attributes are
    kept (default: dropped with a warning naming them).
    """
    key = str(path).strip().lower()
    if regions and tile is not None:
        raise ValueError("tile= and regions=True exclude each other: instances are either "
                         "tiles or segmentation regions")
    if tile_truth and tile is None and key not in ("synthetic", "synthetic-images"):
        raise ValueError("tile_truth=True needs tile= (truth per tile of the grid); for one "
                         "instance per segment region use regions=True")
    if tile_truth and labels is not None:
        raise ValueError("tile_truth=True needs all label columns of the CSV in file order "
                         "(segment class ids index them); drop labels=")
    if tile_truth and key == "synthetic-bags":
        raise ValueError(f"{path}: tile_truth=True applies to image datasets (tile bags)")
    if regions and key in BUILTIN_DATASETS:
        raise ValueError(f"{path}: regions=True needs image files with segmentation files; "
                         "the built-in datasets have none")
    if key in ("synthetic", "synthetic-images"):
        ds = make_miml_images(random_state=random_state)
        if tile is not None and tile != ds.meta["tile_size"]:
            if tile_truth:
                raise ValueError(f"{path}: tile_truth=True needs segmentation files; the "
                                 "built-in synthetic images carry tile truth only at their "
                                 f"own tile={ds.meta['tile_size']}")
            ds = extract_tile_features(ds, TileBagger(tile, stride, border, foreground,
                                                      min_foreground))
        return ds
    if key == "synthetic-bags":
        return make_miml_bags(random_state=random_state)
    p = Path(path)
    if not p.exists():
        raise ValueError(f"{p}: no such file or directory (built-in datasets: "
                         f"{', '.join(BUILTIN_DATASETS)})")
    suffix = p.suffix.lower()
    if p.is_dir() and (suffix == ".zarr" or (p / "zarr.json").is_file()):
        if tile is not None or regions or tile_truth:
            raise ValueError(f"{p}: tile= / regions= / tile_truth= apply to image datasets, "
                             "not to a bag store of features")
        from mimlkit.datasets.store_dataset import load_store_dataset

        return load_store_dataset(p)
    if p.is_dir():
        csv_path = p / "labels.csv"
        if not csv_path.is_file():
            raise ValueError(f"{p}: directory without a labels.csv; give the CSV, ARFF or NPZ "
                             "file itself")
        if image_dir is None:
            from mimlkit.datasets.images import default_image_dir

            image_dir = default_image_dir(csv_path)
            if image_dir is None and not regions and not tile_truth:
                from mimlkit.datasets.wsi import find_slides, load_slides

                if find_slides(p):
                    if isinstance(labels, int):
                        raise ValueError("labels= must be a list of label names for slides")
                    return load_slides(
                        p, csv_path, tile_size=256 if tile is None else tile, level=level,
                        mpp=mpp, stride=stride, min_tissue=min_foreground,
                        labels=labels, image_column=image_column, label_column=label_column,
                        separator=separator, group_column=group_column,
                        no_finding="No Finding" if no_finding is None else no_finding)
        p, suffix = csv_path, ".csv"
    if suffix == ".arff":
        lab = labels if labels is None or isinstance(labels, int) else list(labels)
        if is_relational_arff(p):
            ds = load_miml_arff(p, labels_xml=labels_xml, labels=lab, missing=missing,
                                keep_ids=keep_ids)
        else:
            ds = load_mulan_arff(p, labels_xml=labels_xml, labels=lab, missing=missing,
                                 keep_ids=keep_ids)
    elif suffix == ".npz":
        ds = load_npz(p)
    elif suffix in (".csv", ".tsv"):
        if isinstance(labels, int):
            raise ValueError("labels= must be a list of label names for an image CSV")
        ds = load_image_csv(
            p, image_dir, labels=labels, image_column=image_column, label_column=label_column,
            separator=separator, no_finding="No Finding" if no_finding is None else no_finding,
            group_column=group_column,
        )
    else:
        raise ValueError(f"{p}: unknown dataset format {suffix or '(no extension)'!r}; "
                         "expected .arff, .npz, .csv or a folder with labels.csv")
    if tile is not None:
        if ds.images is None:
            raise ValueError(f"{p}: tile= applies to image datasets only")
        ds = extract_tile_features(ds, TileBagger(tile, stride, border, foreground,
                                                  min_foreground))
        if tile_truth:
            ds = extract_tile_truth(ds, segmentation_dir, share=tile_truth_share)
    if regions:
        if ds.images is None:
            raise ValueError(f"{p}: regions=True applies to image datasets only")
        ds = extract_region_features(ds, segmentation_dir, min_pixels=min_region_pixels)
    return ds
