"""Tile-level ground truth from per-image segmentations (MSRC v2 ``newsegmentations_mats``).

``load_dataset(path, tile=64, tile_truth=True)`` (or ``extract_tile_truth`` on a tile-bag
dataset) reads each image's segmentation file (``<image stem>_GT.mat``; format and parsing
in ``mimlkit.datasets.regions``: ``newseg`` segment ids, ``newlabels`` the 1-based class of
each segment, numbered in the order of the label columns of ``labels.csv``) and gives
every tile the labels that cover at least ``share`` (default 0.25) of its *labelled*
pixels:

- the share of class ``k`` in a tile = (pixels of class ``k`` in the tile's window) /
  (pixels of the window with any class); void pixels (segments without a class: MSRC v2's
  trailing unlabelled segment, class 0) count in neither, and neither do the padded pixels
  of ``border="pad"`` tiles (outside the image);
- a tile whose labelled share is zero (all void) has no label; a tile straddling two
  regions may have two labels (e.g. 50 % grass / 50 % cow with ``share=0.25``);
- the window of a tile is its ``coords`` corner plus the tile size in original-image pixels
  (``TileBagger.windows``; under ``border="fit"`` mapped back through the resize), so the
  truth works for any ``tile`` / ``stride`` / border and after the foreground filter.

The result is ``dataset.instance_labels`` (n_tiles x K int8, row ``i`` = tile ``i`` of
``bags``, aligned with ``bags.instance_meta["coords"]``), the same field as the instance
truth of ``make_miml_images``; ``meta["tile_truth"]`` records the folder, the share and how
many tile labels are missing from their bag's label row (a warning names the count; 0 on
MSRC v2). Class ids index the dataset's label columns, so the CSV's label columns must all
be loaded, in file order (``load_dataset`` refuses ``labels=`` with ``tile_truth``).
Counting uses one integral image per class present in the image (no pixel loops).
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from mimlkit.datasets.base import MIMLDataset
from mimlkit.datasets.regions import (
    image_paths_and_segmentation_dir,
    read_segmentation,
    segmentation_file,
)
from mimlkit.datasets.tiling import TileBagger

__all__ = ["extract_tile_truth", "tile_label_shares", "DEFAULT_TILE_TRUTH_SHARE"]

DEFAULT_TILE_TRUTH_SHARE = 0.25


def tile_label_shares(seg: np.ndarray, classes: np.ndarray, windows: np.ndarray,
                      n_labels: int) -> np.ndarray:
    """Share of each label among the labelled pixels of each window.

    ``seg`` / ``classes`` as returned by ``regions.read_segmentation`` (class ``c`` >= 1 is
    label column ``c - 1``; 0 = void); ``windows`` N x 4 ``(y0, x0, y1, x1)``. Returns
    N x ``n_labels`` float64 shares (rows sum to 1, or 0 for an all-void window). A class
    id above ``n_labels`` raises ``ValueError``.
    """
    lab = np.asarray(classes, dtype=np.int64)[np.asarray(seg)] - 1  # -1 = void
    top = int(lab.max(initial=-1))
    if top >= n_labels:
        raise ValueError(f"class id {top + 1} in the segmentation, but the dataset has "
                         f"{n_labels} label columns")
    present = np.unique(lab[lab >= 0])
    w = np.asarray(windows, dtype=np.int64).reshape(-1, 4)
    y0, x0, y1, x1 = w.T

    def window_sums(masks: np.ndarray) -> np.ndarray:  # (C, H, W) bool -> (N, C)
        ii = np.zeros((masks.shape[0], masks.shape[1] + 1, masks.shape[2] + 1), np.int64)
        np.cumsum(np.cumsum(masks, axis=1), axis=2, out=ii[:, 1:, 1:])
        return (ii[:, y1, x1] - ii[:, y0, x1] - ii[:, y1, x0] + ii[:, y0, x0]).T

    counts = window_sums(lab[None] == present[:, None, None])
    total = counts.sum(axis=1, keepdims=True)
    out = np.zeros((len(w), int(n_labels)), dtype=np.float64)
    out[:, present] = counts / np.maximum(total, 1)
    return out


def _image_shape(images: Any, i: int) -> tuple[int, int]:
    """H, W of image ``i`` without decoding its pixels (EXIF rotation applied)."""
    item = images.raw(i)
    if isinstance(item, np.ndarray):
        return int(item.shape[0]), int(item.shape[1])
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(item) as im:
            w, h = im.size
            orient = im.getexif().get(0x0112, 1)
    except (OSError, UnidentifiedImageError) as exc:
        raise ValueError(f"{item}: cannot read image ({exc})") from None
    return (w, h) if orient in (5, 6, 7, 8) else (h, w)


def _check_share(share: Any) -> float:
    if isinstance(share, bool) or not isinstance(share, (int, float, np.number)) \
            or not 0 < float(share) <= 1:
        raise ValueError(f"tile_truth_share must be a number in (0, 1], got {share!r}")
    return float(share)


def extract_tile_truth(
    dataset: MIMLDataset,
    segmentation_dir: str | Path | None = None,
    *,
    share: float = DEFAULT_TILE_TRUTH_SHARE,
) -> MIMLDataset:
    """Tile-bag dataset (``extract_tile_features`` / ``load_dataset(..., tile=)``) -> the same
    dataset with ``instance_labels`` from the segmentations (module docstring).

    The tile geometry comes from ``meta["tiler"]`` and ``bags.instance_meta["coords"]``;
    ``segmentation_dir`` defaults to ``newsegmentations_mats`` / ``segmentations`` next to
    the label CSV (``meta["source"]``). Errors name the file at fault.
    """
    share = _check_share(share)
    bags, cfg = dataset.bags, dataset.meta.get("tiler")
    if bags is None or cfg is None or "coords" not in bags.instance_meta:
        raise ValueError(f"dataset {dataset.name!r}: tile truth needs tile bags (load with "
                         "tile=N)")
    images, paths, seg_dir = image_paths_and_segmentation_dir(dataset, segmentation_dir,
                                                       "tile truth needs")
    tiler = TileBagger(int(cfg["tile_size"]), cfg.get("stride"), cfg.get("border", "drop"))
    K = dataset.Y.shape[1]
    coords = bags.instance_meta["coords"]
    out = np.zeros((bags.n_instances, K), dtype=np.int8)
    for i, path in enumerate(paths):
        assert path is not None
        f = segmentation_file(path, seg_dir)
        seg, classes = read_segmentation(f)
        h, w = _image_shape(images, i)
        if (h, w) != seg.shape:
            raise ValueError(f"{f}: segmentation is {seg.shape[0]} x {seg.shape[1]}, image "
                             f"{path} is {h} x {w}")
        lo, hi = int(bags.offsets[i]), int(bags.offsets[i + 1])
        try:
            shares = tile_label_shares(seg, classes, tiler.windows(h, w, coords[lo:hi]), K)
        except ValueError as exc:
            raise ValueError(f"{f}: {exc}") from None
        out[lo:hi] = shares >= share - 1e-12
    bag = np.repeat(np.arange(len(bags)), bags.sizes)
    outside = int(((out > 0) & (dataset.Y[bag] != 1)).sum())
    if outside:
        warnings.warn(f"{seg_dir}: {outside} tile label(s) not in their image's label row "
                      "(segmentation and label CSV disagree)", stacklevel=2)
    meta = dict(dataset.meta)
    meta["tile_truth"] = {"segmentation_dir": str(seg_dir), "share": share,
                          "labels_outside_bag": outside}
    return replace(dataset, instance_labels=out, meta=meta)
