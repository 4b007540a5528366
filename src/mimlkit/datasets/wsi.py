"""Whole-slide (very large, pyramidal) images: tissue tiles and slide bags (extra ``wsi``).

A slide (SVS, NDPI, generic tiled pyramidal TIFF, ... -- whatever ``tiffslide`` opens) is
far too large to decode whole, so it is tiled in three steps:

1. **level**: ``level=`` (an index into ``level_dimensions``), or ``mpp=`` (microns per
   pixel wanted: the level whose ``tiffslide.mpp-x x downsample`` is closest on a log
   scale; a slide without mpp metadata is an error naming the file), default level 0;
2. **tissue mask** on a thumbnail (at most ``thumbnail_size`` px a side, at least ~8
   thumbnail pixels per tile where that fits): HSV saturation above an Otsu threshold
   (``tissue_threshold="otsu"``, numpy only, never below 0.05 so a blank slide stays
   blank), a fixed saturation threshold (float in [0, 1)), or a callable
   ``thumbnail (h x w x 3 uint8) -> h x w bool``. Each grid tile's tissue share is the
   mean of the mask over the tile's footprint (one summed-area table, vectorised);
   tiles under ``min_tissue`` are skipped, and if none passes the best one is kept (bags
   are never empty, as with ``TileBagger``);
3. **reading** the kept tiles in batches of ``batch_size`` (``read_region``), so memory is
   bounded by one batch (``iter_slide_tiles``); ``tile_slide`` collects them all.

Grid: tiles of ``tile_size`` level pixels every ``stride`` (default ``tile_size``) level
pixels, full tiles only (``border="drop"``); a level smaller than one tile gives one tile
padded with white. Coordinates are the tiles' top-left corners **(y, x) in level-0
pixels** (the row-major convention of ``TileBagger``), so tiles cut at different levels
share one frame; the tile's level-0 extent is ``tile_size x downsample``.

``load_slides(folder_or_list, labels_csv)`` makes a ``MIMLDataset``: one bag per slide,
one instance per tissue tile described by ``colour_texture_features`` (40-d, numpy), with
``bags.instance_meta["coords"]`` (y, x, level 0) and ``["level"]``; labels come from a
CSV in the ``load_image_csv`` layouts (slide file names in the image column).
``load_dataset(folder)`` uses it for a folder holding ``labels.csv`` and slide files
(``.svs``, ``.ndpi``, tiled ``.tif``/``.tiff``, ...) but no image folder.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mimlkit._extras import require
from mimlkit.datasets.base import MIMLDataset
from mimlkit.datasets.tiling import as_rgb_uint8

__all__ = ["SLIDE_SUFFIXES", "TilePlan", "SlideTiles", "open_slide", "select_level",
           "otsu_threshold", "tissue_mask", "plan_tiles", "iter_slide_tiles", "tile_slide",
           "load_slides", "find_slides"]

#: file suffixes treated as slides (``.tif``/``.tiff`` only when the file is tiled)
SLIDE_SUFFIXES = (".svs", ".ndpi", ".scn", ".bif", ".qptiff", ".tif", ".tiff")
_MIN_SATURATION = 0.05
_MPP_KEY = "tiffslide.mpp-x"

ThresholdT = str | float | Callable[[np.ndarray], np.ndarray]


@dataclass
class TilePlan:
    """Where the tiles of one slide are (no pixels read yet)."""

    path: str
    level: int
    downsample: float
    mpp: float | None  # microns per pixel at ``level`` (None: no metadata)
    tile_size: int
    stride: int
    level_size: tuple[int, int]  # (width, height) of ``level``
    coords: np.ndarray  # (N, 2) int64, top-left (y, x) in level-0 pixels
    tissue: np.ndarray  # (N,) float32 tissue share of each kept tile

    def __len__(self) -> int:
        return int(self.coords.shape[0])

    @property
    def extent(self) -> float:
        """Side of a tile in level-0 pixels."""
        return float(self.tile_size * self.downsample)


@dataclass
class SlideTiles:
    """Pixels of some tiles of one slide: ``tiles`` (N, t, t, 3) uint8 with their
    level-0 ``coords`` (N, 2) (y, x), ``level`` and ``tissue`` share."""

    path: str
    level: int
    downsample: float
    tiles: np.ndarray
    coords: np.ndarray
    tissue: np.ndarray
    mpp: float | None = None  # microns per pixel at ``level`` (None: no metadata)

    def __len__(self) -> int:
        return int(self.tiles.shape[0])


# ----------------------------------------------------------------------------- opening
def _tiffslide():
    return require("wsi", "tiffslide", "whole-slide reading")


def open_slide(path: str | Path) -> Any:
    """Open ``path`` with ``tiffslide.TiffSlide``; errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such slide file")
    ts = _tiffslide()
    try:
        return ts.TiffSlide(str(p))
    except Exception as exc:  # tifffile/tiffslide raise many kinds on a bad file
        raise ValueError(f"{p}: cannot open as a slide ({type(exc).__name__}: {exc})") from None


def _slide_mpp(slide: Any) -> float | None:
    v = slide.properties.get(_MPP_KEY)
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) and v > 0 else None


def select_level(slide: Any, level: int | None = None, mpp: float | None = None,
                 where: str = "slide") -> int:
    """Level index: ``level`` as given (checked), else the level whose microns per pixel is
    closest to ``mpp`` (log scale; ties -> the finer level), else 0."""
    n = int(slide.level_count)
    if level is not None and mpp is not None:
        raise ValueError(f"{where}: give level= or mpp=, not both")
    if level is not None:
        if not isinstance(level, (int, np.integer)) or isinstance(level, bool) \
                or not 0 <= int(level) < n:
            raise ValueError(f"{where}: level={level!r} out of range; the slide has {n} "
                             f"level(s) 0..{n - 1}")
        return int(level)
    if mpp is None:
        return 0
    try:
        want = float(mpp)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: mpp must be a positive number, got {mpp!r}") from None
    if not np.isfinite(want) or want <= 0:
        raise ValueError(f"{where}: mpp must be a positive number, got {mpp!r}")
    base = _slide_mpp(slide)
    if base is None:
        raise ValueError(f"{where}: mpp={mpp} requested but the slide has no microns-per-pixel "
                         f"metadata ({_MPP_KEY}); pass level= instead")
    level_mpp = base * np.asarray(slide.level_downsamples, dtype=np.float64)
    return int(np.argmin(np.abs(np.log(level_mpp / want))))


# ----------------------------------------------------------------------------- tissue
def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of values in [0, 1] (numpy; the value itself when constant)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return 0.0
    lo, hi = float(v.min()), float(v.max())
    if hi - lo < 1e-12:
        return lo
    hist, edges = np.histogram(v, bins=bins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist).astype(np.float64)
    w1 = w0[-1] - w0
    m = np.cumsum(hist * centres)
    mu0 = m / np.maximum(w0, 1)
    mu1 = (m[-1] - m) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(edges[int(np.argmax(between[:-1])) + 1])


def _saturation(rgb: np.ndarray) -> np.ndarray:
    a = rgb.astype(np.float32)
    mx, mn = a.max(axis=2), a.min(axis=2)
    return (mx - mn) / np.maximum(mx, 1.0)


def tissue_mask(thumbnail: np.ndarray, threshold: ThresholdT = "otsu") -> np.ndarray:
    """H x W bool tissue mask of an RGB thumbnail (see the module docstring)."""
    img = as_rgb_uint8(thumbnail, "thumbnail")
    if callable(threshold):
        m = np.asarray(threshold(img))
        if m.shape != img.shape[:2]:
            raise ValueError(f"tissue_threshold callable returned shape {m.shape}, expected "
                             f"the thumbnail's {img.shape[:2]}")
        return m.astype(bool)
    sat = _saturation(img)
    if isinstance(threshold, str):
        if threshold != "otsu":
            raise ValueError(f"tissue_threshold must be 'otsu', a number in [0, 1) or a "
                             f"callable, got {threshold!r}")
        t = max(otsu_threshold(sat), _MIN_SATURATION)
    else:
        t = float(threshold)
        if not 0 <= t < 1:
            raise ValueError(f"tissue_threshold must be in [0, 1), got {threshold!r}")
    return sat > t


def _grid(length: int, t: int, s: int) -> np.ndarray:
    if length <= t:
        return np.zeros(1, dtype=np.int64)
    return np.arange((length - t) // s + 1, dtype=np.int64) * s


def _tile_shares(mask: np.ndarray, y0: np.ndarray, x0: np.ndarray, ext: float,
                 size0: tuple[int, int]) -> np.ndarray:
    """Mean of ``mask`` over each level-0 box [y0, y0+ext) x [x0, x0+ext)."""
    h, w = mask.shape
    H0, W0 = size0
    sy, sx = h / H0, w / W0
    sat = np.zeros((h + 1, w + 1), dtype=np.float64)
    sat[1:, 1:] = mask.astype(np.float64).cumsum(0).cumsum(1)
    a = np.clip(np.floor(y0 * sy), 0, h - 1).astype(np.int64)
    b = np.clip(np.floor(x0 * sx), 0, w - 1).astype(np.int64)
    c = np.clip(np.ceil(np.minimum(y0 + ext, H0) * sy), a + 1, h).astype(np.int64)
    d = np.clip(np.ceil(np.minimum(x0 + ext, W0) * sx), b + 1, w).astype(np.int64)
    total = sat[c, d] - sat[a, d] - sat[c, b] + sat[a, b]
    return (total / ((c - a) * (d - b))).astype(np.float32)


def _check_tiling(tile_size: Any, stride: Any, min_tissue: Any, where: str) -> None:
    for name, v, none_ok in (("tile_size", tile_size, False), ("stride", stride, True)):
        if v is None and none_ok:
            continue
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{where}: {name} must be a positive integer, got {v!r}")
    if not isinstance(min_tissue, (int, float)) or not 0 <= float(min_tissue) <= 1:
        raise ValueError(f"{where}: min_tissue must be in [0, 1], got {min_tissue!r}")


def _plan(slide: Any, path: str, tile_size: int, level: int | None, mpp: float | None,
          tissue_threshold: ThresholdT, min_tissue: float, stride: int | None,
          thumbnail_size: int) -> TilePlan:
    _check_tiling(tile_size, stride, min_tissue, path)
    lv = select_level(slide, level, mpp, path)
    ds = float(slide.level_downsamples[lv])
    lw, lh = (int(v) for v in slide.level_dimensions[lv])
    W0, H0 = (int(v) for v in slide.level_dimensions[0])
    t, s = int(tile_size), int(stride or tile_size)
    gy, gx = np.meshgrid(_grid(lh, t, s), _grid(lw, t, s), indexing="ij")
    # level-0 corners; ceil so that tiffslide's int(x0 / ds) gives back the level position
    y0 = np.ceil(gy.ravel() * ds - 1e-6).astype(np.int64)
    x0 = np.ceil(gx.ravel() * ds - 1e-6).astype(np.int64)
    side = max(H0, W0)
    want = int(np.ceil(8 * side / (t * ds)))
    tsize = int(min(side, max(min(int(thumbnail_size), want), 256)))
    try:
        thumb = np.asarray(slide.get_thumbnail((tsize, tsize)))
    except Exception as exc:
        raise ValueError(f"{path}: cannot read a thumbnail ({type(exc).__name__}: {exc})"
                         ) from None
    try:
        mask = tissue_mask(thumb, tissue_threshold)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    share = _tile_shares(mask, y0.astype(np.float64), x0.astype(np.float64), t * ds, (H0, W0))
    keep = share >= float(min_tissue)
    if not keep.any():
        keep[int(np.argmax(share))] = True
    base = _slide_mpp(slide)
    return TilePlan(path=path, level=lv, downsample=ds,
                    mpp=None if base is None else base * ds, tile_size=t, stride=s,
                    level_size=(lw, lh), coords=np.stack([y0[keep], x0[keep]], axis=1),
                    tissue=share[keep])


def plan_tiles(path: str | Path, tile_size: int = 256, level: int | None = None,
               mpp: float | None = None, tissue_threshold: ThresholdT = "otsu",
               min_tissue: float = 0.5, stride: int | None = None,
               thumbnail_size: int = 2048) -> TilePlan:
    """The tissue tiles of a slide (level, level-0 coords, tissue shares), no pixels read."""
    slide = open_slide(path)
    try:
        return _plan(slide, str(path), tile_size, level, mpp, tissue_threshold, min_tissue,
                     stride, thumbnail_size)
    finally:
        slide.close()


def _read_tiles(slide: Any, plan: TilePlan, idx: np.ndarray) -> np.ndarray:
    t = plan.tile_size
    out = np.full((len(idx), t, t, 3), 255, dtype=np.uint8)
    for j, i in enumerate(idx):
        y0, x0 = (int(v) for v in plan.coords[i])
        try:
            a = slide.read_region((x0, y0), plan.level, (t, t), as_array=True, padding=False)
        except Exception as exc:
            raise ValueError(f"{plan.path}: cannot read the tile at level-0 (y, x) = "
                             f"({y0}, {x0}), level {plan.level} ({type(exc).__name__}: {exc})"
                             ) from None
        a = as_rgb_uint8(np.asarray(a), plan.path)
        out[j, : a.shape[0], : a.shape[1]] = a[:t, :t]
    return out


def iter_slide_tiles(path: str | Path, tile_size: int = 256, level: int | None = None,
                     mpp: float | None = None, tissue_threshold: ThresholdT = "otsu",
                     min_tissue: float = 0.5, stride: int | None = None,
                     batch_size: int = 64, thumbnail_size: int = 2048
                     ) -> Iterator[SlideTiles]:
    """Tissue tiles of a slide in batches of ``batch_size`` (memory: one batch)."""
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"{path}: batch_size must be a positive integer, got {batch_size!r}")
    slide = open_slide(path)
    try:
        plan = _plan(slide, str(path), tile_size, level, mpp, tissue_threshold, min_tissue,
                     stride, thumbnail_size)
        for a in range(0, len(plan), int(batch_size)):
            idx = np.arange(a, min(a + int(batch_size), len(plan)))
            yield SlideTiles(path=plan.path, level=plan.level, downsample=plan.downsample,
                             tiles=_read_tiles(slide, plan, idx), coords=plan.coords[idx],
                             tissue=plan.tissue[idx], mpp=plan.mpp)
    finally:
        slide.close()


def tile_slide(path: str | Path, tile_size: int = 256, level: int | None = None,
               mpp: float | None = None, tissue_threshold: ThresholdT = "otsu",
               min_tissue: float = 0.5, stride: int | None = None,
               batch_size: int = 64, thumbnail_size: int = 2048) -> SlideTiles:
    """All tissue tiles of a slide at one level (see the module docstring)::

        st = tile_slide("a.svs", tile_size=256, mpp=0.5)
        st.tiles   # (N, 256, 256, 3) uint8
        st.coords  # (N, 2) int64 (y, x) in level-0 pixels; st.level, st.tissue
    """
    parts = list(iter_slide_tiles(path, tile_size, level, mpp, tissue_threshold, min_tissue,
                                  stride, batch_size, thumbnail_size))
    first = parts[0]
    return SlideTiles(path=first.path, level=first.level, downsample=first.downsample,
                      tiles=np.concatenate([p.tiles for p in parts]),
                      coords=np.concatenate([p.coords for p in parts]),
                      tissue=np.concatenate([p.tissue for p in parts]), mpp=first.mpp)


# ----------------------------------------------------------------------------- datasets
def _is_slide_file(p: Path) -> bool:
    suf = p.suffix.lower()
    if not p.is_file() or suf not in SLIDE_SUFFIXES:
        return False
    if suf not in (".tif", ".tiff"):
        return True
    try:  # a plain (striped) TIFF picture is an image, not a slide
        tifffile = require("wsi", "tifffile", "whole-slide reading")
        with tifffile.TiffFile(str(p)) as tf:
            return bool(tf.pages[0].is_tiled)
    except (OSError, ValueError, IndexError, TypeError):
        return False


def find_slides(folder: str | Path) -> list[Path]:
    """Slide files directly inside ``folder`` (sorted): ``.svs``, ``.ndpi``, ... and tiled
    ``.tif``/``.tiff``."""
    return sorted(p for p in Path(folder).iterdir() if _is_slide_file(p))


def load_slides(
    folder_or_list: str | Path | Sequence[str | Path],
    labels_csv: str | Path | None = None,
    *,
    tile_size: int = 256,
    level: int | None = None,
    mpp: float | None = None,
    stride: int | None = None,
    tissue_threshold: ThresholdT = "otsu",
    min_tissue: float = 0.5,
    features: str | Callable[[np.ndarray], np.ndarray] = "colour-texture",
    batch_size: int = 64,
    thumbnail_size: int = 2048,
    labels: Sequence[str] | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    separator: str = "|",
    no_finding: str | None = "No Finding",
    group_column: str | None = None,
) -> MIMLDataset:
    """Slides + label CSV -> ``MIMLDataset`` of tile bags (one bag per slide).

    ``folder_or_list``: a folder (slides named in the CSV's image column, relative to it;
    ``labels_csv`` defaults to ``<folder>/labels.csv``) or a list of slide paths (then
    ``labels_csv`` is required and its image column holds the slides' file names; bags
    follow the list's order). The CSV layouts and ``labels`` / ``image_column`` /
    ``label_column`` / ``separator`` / ``no_finding`` / ``group_column`` are those of
    ``load_image_csv``. ``features``: ``"colour-texture"`` (40-d, numpy) or a callable
    ``tiles (N, t, t, 3) uint8 -> (N, d)``. ``bags.instance_meta``: ``coords`` (y, x)
    level-0 top-left corners and ``level``; ``meta["bag_ids"]`` the slide file names,
    ``meta["slides"]`` per slide: path, level, downsample, mpp, tiles kept; when all
    slides share one downsample ``meta["tile_size"]`` is the tiles' level-0 side (heatmaps).
    """
    from mimlkit.bags import Bags
    from mimlkit.datasets.images import load_image_csv
    from mimlkit.features.handcrafted import colour_texture_features

    if features == "colour-texture":
        featurize: Callable[[np.ndarray], np.ndarray] = colour_texture_features
    elif callable(features):
        featurize = features
    else:
        raise ValueError(f"features must be 'colour-texture' or a callable, got {features!r}")
    opts = dict(labels=labels, image_column=image_column, label_column=label_column,
                separator=separator, no_finding=no_finding, group_column=group_column)
    if isinstance(folder_or_list, (str, Path)):
        folder = Path(folder_or_list)
        if not folder.is_dir():
            raise ValueError(f"{folder}: not a folder of slides (give a folder or a list of "
                             "slide paths)")
        csv_path = Path(labels_csv) if labels_csv is not None else folder / "labels.csv"
        if not csv_path.is_file():
            raise ValueError(f"{csv_path}: no such label CSV (one row per slide)")
        ds = load_image_csv(csv_path, folder, **opts)  # type: ignore[arg-type]
        paths = [Path(p) for p in ds.images.paths]  # type: ignore[union-attr]
        Y, groups = ds.Y, ds.groups
    else:
        paths = [Path(p) for p in folder_or_list]
        if not paths:
            raise ValueError("load_slides: empty list of slides")
        if labels_csv is None:
            raise ValueError("load_slides: a list of slides needs labels_csv= (one row per "
                             "slide, file names in the image column)")
        csv_path = Path(labels_csv)
        ds = load_image_csv(csv_path, csv_path.parent, check_files=False,
                            **opts)  # type: ignore[arg-type]
        row = {p.name: i for i, p in enumerate(ds.images.paths)}  # type: ignore[union-attr]
        miss = [p for p in paths if p.name not in row]
        if miss:
            raise ValueError(f"{miss[0]}: slide not listed in {csv_path}"
                             + (f" ({len(miss) - 1} more)" if len(miss) > 1 else ""))
        idx = np.array([row[p.name] for p in paths])
        Y = ds.Y[idx]
        groups = ds.groups[idx] if ds.groups is not None else None
    feats: list[np.ndarray] = []
    coords: list[np.ndarray] = []
    levels: list[np.ndarray] = []
    slides: list[dict[str, Any]] = []
    for p in paths:
        where = str(p)
        parts_f, parts_c, info = [], [], None
        for batch in iter_slide_tiles(p, tile_size, level, mpp, tissue_threshold, min_tissue,
                                      stride, batch_size, thumbnail_size):
            f = np.asarray(featurize(batch.tiles), dtype=np.float32)
            if f.ndim != 2 or f.shape[0] != len(batch):
                raise ValueError(f"{where}: features returned shape {f.shape} for "
                                 f"{len(batch)} tiles (expected one row per tile)")
            parts_f.append(f)
            parts_c.append(batch.coords)
            info = batch
        assert info is not None  # a plan always keeps at least one tile
        c = np.concatenate(parts_c).astype(np.int64)
        feats.append(np.concatenate(parts_f))
        coords.append(c)
        levels.append(np.full(len(c), info.level, dtype=np.int16))
        slides.append({"path": where, "level": int(info.level),
                       "downsample": float(info.downsample),
                       "mpp": None if info.mpp is None else float(info.mpp),
                       "n_tiles": int(len(c))})
    bags = Bags.from_list(feats, dtype=np.float32,
                          instance_meta={"coords": coords, "level": levels})
    meta: dict[str, Any] = {
        "source": str(folder_or_list) if isinstance(folder_or_list, (str, Path))
        else str(csv_path),
        "format": "wsi",
        "labels_from": str(csv_path),
        "bag_ids": [p.name for p in paths],
        "slides": slides,
        "wsi": {"tile_size": int(tile_size), "stride": stride, "level": level, "mpp": mpp,
                "min_tissue": float(min_tissue),
                "tissue_threshold": getattr(tissue_threshold, "__qualname__", tissue_threshold),
                "coords": "level-0 (y, x)"},
        "features": getattr(featurize, "__name__", "colour_texture_features"),
    }
    downs = {s["downsample"] for s in slides}
    if len(downs) == 1:
        meta["tile_size"] = float(int(tile_size) * downs.pop())
    name = (Path(folder_or_list).name if isinstance(folder_or_list, (str, Path))
            else csv_path.stem)
    return MIMLDataset(Y=Y, label_names=list(ds.label_names), bags=bags, groups=groups,
                       name=name, meta=meta)
