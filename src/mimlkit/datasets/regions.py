"""Region bags: one instance per ground-truth segment region of each image.

``load_dataset(path, regions=True)`` (or ``extract_region_features``) turns an image dataset
with per-image segmentations (MSRC v2 ``newsegmentations_mats``) into feature bags: every
connected region (8-connectivity) of one labelled segment is an instance, described by the
same 40-d hand-crafted colour + texture descriptor as tiles
(``region_colour_texture_features``: the tile descriptor computed over the region's
pixels), so region bags and tile bags are comparable.

Segmentation files: ``<image stem>_GT.mat`` (or ``<image stem>.mat``) in the segmentation
folder (default: ``newsegmentations_mats`` / ``segmentations`` next to the label CSV), read
with ``scipy.io.loadmat``. They hold the cleaned-up MSRC v2 format (Malisiewicz & Efros,
BMVC 2007):

- ``newseg``: H x W integer map of segment ids ``1..S`` (same size as the image);
- ``newlabels``: 1 x L class ids (1-based, MSRC order = the label columns of
  ``labels.csv``), ``newlabels[s - 1]`` the class of segment ``s``.

Segments without a class (id 0, ids above L -- MSRC v2 has one such trailing segment per
image with unlabelled pixels -- or class 0) are void: excluded, never an instance, and
pixels next to a region are not seen by its descriptor. Regions smaller than
``min_pixels`` are dropped; when that drops every region of an image, its largest region
is kept (bags are never empty). An image whose pixels are all void is an error.

Per-instance metadata (``bags.instance_meta``): ``bbox`` (y0, x0, y1, x1; end exclusive),
``centroid`` (y, x, float), ``area`` (pixels), ``segment_id`` (id in ``newseg``) and
``class_id`` (the segment's 1-based class). When every region's class, read as a 1-based
label-column position, is a label its bag does not lack (MSRC v2 with all 23 columns: it
always is), ``instance_labels`` holds the one-hot region classes. No ``coords`` key: the
regions form no tile grid.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mimlkit.bags import Bags
from mimlkit.datasets.base import MIMLDataset

__all__ = ["extract_region_features", "image_regions", "read_segmentation",
           "segmentation_file", "default_segmentation_dir", "SEGMENTATION_DIRS"]

SEGMENTATION_DIRS = ("newsegmentations_mats", "segmentations", "segmentation")
_FORMAT = ("expected the MSRC v2 format: newseg (H x W segment ids) and newlabels "
           "(class id per segment)")


def default_segmentation_dir(csv_path: str | Path) -> Path | None:
    """``newsegmentations_mats`` / ``segmentations`` folder next to the CSV, if one exists."""
    parent = Path(csv_path).parent
    for name in SEGMENTATION_DIRS:
        if (parent / name).is_dir():
            return parent / name
    return None


def segmentation_file(image_path: str | Path, segmentation_dir: str | Path) -> Path:
    """Segmentation file of an image: ``<stem>_GT.mat`` or ``<stem>.mat`` in the folder
    (``ValueError`` naming the expected file when neither exists)."""
    stem = Path(image_path).stem
    d = Path(segmentation_dir)
    for name in (f"{stem}_GT.mat", f"{stem}.mat"):
        if (d / name).is_file():
            return d / name
    raise ValueError(f"{d / f'{stem}_GT.mat'}: segmentation file not found for image "
                     f"{image_path} (looked for {stem}_GT.mat and {stem}.mat in {d})")


def read_segmentation(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one segmentation ``.mat`` -> (H x W int64 segment ids, int64 class per segment
    id: ``classes[s]``, 0 = void). Errors name the file."""
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: segmentation file not found")
    try:
        mat = loadmat(path)
    except NotImplementedError as exc:  # MATLAB v7.3 (HDF5) files
        raise ValueError(f"{path}: cannot read segmentation file ({exc}); save it with "
                         "MATLAB -v7 or older") from None
    except Exception as exc:  # noqa: BLE001 - scipy raises many types on corrupt input
        raise ValueError(f"{path}: cannot read segmentation file "
                         f"({type(exc).__name__}: {exc})") from None
    names = sorted(k for k in mat if not k.startswith("__"))
    for key in ("newseg", "newlabels"):
        if key not in mat:
            raise ValueError(f"{path}: no {key!r} variable (variables: "
                             f"{', '.join(names) or 'none'}); {_FORMAT}")
    seg, lab = np.asarray(mat["newseg"]), np.asarray(mat["newlabels"])
    if seg.ndim != 2 or seg.size == 0 or seg.dtype.kind not in "iuf":
        raise ValueError(f"{path}: newseg must be a non-empty 2-D numeric array, got shape "
                         f"{seg.shape} {seg.dtype}")
    if lab.dtype.kind not in "iuf" or (lab.size and lab.ndim > 1 and min(lab.shape) > 1):
        raise ValueError(f"{path}: newlabels must be a numeric vector, got shape "
                         f"{lab.shape} {lab.dtype}")
    for key, a in (("newseg", seg), ("newlabels", lab)):
        if a.size and (not np.isfinite(a).all() or (a != np.round(a)).any() or a.min() < 0):
            raise ValueError(f"{path}: {key} must hold non-negative integers")
    seg = seg.astype(np.int64)
    lab = lab.astype(np.int64).ravel()
    classes = np.zeros(max(int(seg.max()), lab.size) + 1, dtype=np.int64)
    classes[1 : lab.size + 1] = lab
    return seg, classes


def image_regions(seg: np.ndarray, classes: np.ndarray, min_pixels: int = 100,
                  connectivity: int = 8) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Connected regions of the labelled segments of one segmentation.

    Returns a region map (H x W int64: region id ``0..R-1``, -1 for void pixels and dropped
    regions) and per-region metadata (``bbox``, ``centroid``, ``area``, ``segment_id``,
    ``class_id``; module docstring). Regions are ordered by segment id, then by the raster
    position of their first pixel.
    """
    from scipy import ndimage

    if connectivity not in (4, 8):
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}")
    structure = np.ones((3, 3), bool) if connectivity == 8 else None
    seg = np.asarray(seg)
    labelled = np.asarray(classes)[seg] > 0
    comp = np.zeros(seg.shape, dtype=np.int64)  # 1-based component ids, 0 = void
    seg_of: list[int] = []
    for s in np.unique(seg[labelled]):  # loop over segments (a handful), not pixels
        lab, k = ndimage.label(seg == s, structure=structure)
        hit = lab > 0
        comp[hit] = lab[hit] + len(seg_of)
        seg_of += [int(s)] * k
    if not seg_of:
        raise ValueError("no labelled pixel (every segment is void)")
    area = np.bincount(comp.ravel(), minlength=len(seg_of) + 1)[1:]
    keep = area >= int(min_pixels)
    if not keep.any():
        keep[int(np.argmax(area))] = True
    new_id = np.full(len(seg_of) + 1, -1, dtype=np.int64)
    new_id[1:][keep] = np.arange(int(keep.sum()))
    regions = new_id[comp]
    n = int(keep.sum())
    flat = regions.ravel()
    inside = flat >= 0
    yy, xx = np.divmod(np.flatnonzero(inside), seg.shape[1])
    ids = flat[inside]
    a = np.bincount(ids, minlength=n).astype(np.float64)
    centroid = np.stack([np.bincount(ids, yy, n) / a, np.bincount(ids, xx, n) / a], axis=1)
    boxes = ndimage.find_objects(regions + 1, max_label=n)
    bbox = np.array([[sl[0].start, sl[1].start, sl[0].stop, sl[1].stop] for sl in boxes],
                    dtype=np.int32).reshape(n, 4)
    seg_ids = np.asarray(seg_of, dtype=np.int32)[keep]
    meta = {"bbox": bbox, "centroid": centroid.astype(np.float32),
            "area": a.astype(np.int32), "segment_id": seg_ids,
            "class_id": np.asarray(classes)[seg_ids].astype(np.int32)}
    return regions, meta


def image_paths_and_segmentation_dir(dataset: Any, segmentation_dir: Any,
                                     purpose: str) -> tuple[Any, list, Path]:
    """The dataset's images, their paths and its segmentation folder (given, or found next to the
    label CSV); errors name the dataset / folder and say what ``purpose`` needs them."""
    images = dataset.inputs("images")
    paths = images.paths
    if any(p is None for p in paths):
        raise ValueError(f"dataset {dataset.name!r}: {purpose} image files (their "
                         "segmentation files are found by image name)")
    if segmentation_dir is None:
        src = dataset.meta.get("source")
        segmentation_dir = default_segmentation_dir(src) if src else None
        if segmentation_dir is None:
            raise ValueError(f"{src or dataset.name}: no segmentation folder given and none of "
                             f"{', '.join(SEGMENTATION_DIRS)} exists next to it; pass "
                             "segmentation_dir=")
    seg_dir = Path(segmentation_dir)
    if not seg_dir.is_dir():
        raise ValueError(f"{seg_dir}: segmentation folder not found")
    return images, paths, seg_dir


def extract_region_features(
    dataset: MIMLDataset,
    segmentation_dir: str | Path | None = None,
    *,
    min_pixels: int = 100,
    connectivity: int = 8,
) -> MIMLDataset:
    """Image dataset -> same dataset with ``bags`` of region descriptors (module docstring).

    ``segmentation_dir`` defaults to a ``newsegmentations_mats`` / ``segmentations`` folder
    next to the dataset's label CSV (``meta["source"]``). Errors name the file at fault.
    """
    from mimlkit.datasets.tiling import as_rgb_uint8
    from mimlkit.features.handcrafted import region_colour_texture_features

    if isinstance(min_pixels, bool) or not isinstance(min_pixels, (int, np.integer)) \
            or min_pixels < 1:
        raise ValueError(f"min_region_pixels must be a positive integer, got {min_pixels!r}")
    images, paths, seg_dir = image_paths_and_segmentation_dir(dataset, segmentation_dir,
                                                       "region bags need")
    feats: list[np.ndarray] = []
    metas: dict[str, list[np.ndarray]] = {}
    for i, path in enumerate(paths):
        assert path is not None
        f = segmentation_file(path, seg_dir)
        seg, classes = read_segmentation(f)
        img = as_rgb_uint8(images[i], str(path))
        if img.shape[:2] != seg.shape:
            raise ValueError(f"{f}: segmentation is {seg.shape[0]} x {seg.shape[1]}, image "
                             f"{path} is {img.shape[0]} x {img.shape[1]}")
        try:
            regions, meta = image_regions(seg, classes, min_pixels, connectivity)
        except ValueError as exc:
            raise ValueError(f"{f}: {exc}") from None
        feats.append(region_colour_texture_features(img, regions, len(meta["area"])))
        for k, v in meta.items():
            metas.setdefault(k, []).append(v)
    bags = Bags.from_list(feats, dtype=np.float32, instance_meta=metas)
    out_meta: dict[str, Any] = dict(dataset.meta)
    out_meta["regions"] = {"segmentation_dir": str(seg_dir), "min_pixels": int(min_pixels),
                           "connectivity": int(connectivity)}
    out_meta["features"] = "colour_texture_features"
    return replace(dataset, bags=bags, instance_labels=_region_labels(dataset.Y, bags),
                   meta=out_meta)


def _region_labels(Y: np.ndarray, bags: Bags) -> np.ndarray | None:
    """One-hot region classes when class ids agree with the bag labels, else ``None``."""
    cls = bags.instance_meta["class_id"].astype(np.int64) - 1
    k = Y.shape[1]
    if cls.min() < 0 or cls.max() >= k:
        return None
    bag = np.repeat(np.arange(len(bags)), bags.sizes)
    if (Y[bag, cls] == 0).any():
        return None
    out = np.zeros((len(cls), k), dtype=np.int8)
    out[np.arange(len(cls)), cls] = 1
    return out
