"""Per-bag heatmaps of instance scores (matplotlib from the ``report`` extra, Agg backend).

- :func:`bag_heatmap`: one figure for one bag: (the image, when given, then) one panel per
  shown label with that label's instance scores, on one colour scale shared by the panels.
  Instances are placed by their tile coordinates (top-left (y, x) pixels; tile size given or
  inferred as the smallest positive coordinate step) as a grid, over the image when given;
  region instances with centroids only are drawn as dots at their centroids; bags without
  coordinates fall back to instance order on a square grid (the figure title says so).
- :func:`write_heatmaps`: one PNG per bag (first ``max_bags``), written atomically.
- :func:`explain_figures`: the heatmaps of an explain CSV (``mimlkit predict --explain``),
  e.g. for the HTML report.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["infer_tile_size", "tile_grid", "bag_heatmap", "write_heatmaps", "explain_figures",
           "top_labels"]

_NO_COORDS = "no coordinates: instances in bag order on a square grid"


def _plt(what: str = "instance heatmaps"):
    from mimlkit._extras import require

    matplotlib = require("report", "matplotlib", what)
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def infer_tile_size(coords: Any) -> float | None:
    """Smallest positive step between the distinct y or x tile coordinates (None for one
    tile / no step)."""
    c = np.asarray(coords, dtype=float).reshape(-1, 2)
    steps = []
    for a in (c[:, 0], c[:, 1]):
        d = np.diff(np.unique(a))
        d = d[d > 0]
        if d.size:
            steps.append(float(d.min()))
    return min(steps) if steps else None


def tile_grid(values: Any, coords: Any, tile_size: float | None = None
              ) -> tuple[np.ndarray, tuple[float, float], float]:
    """Instance values on a tile grid: ``(grid, origin (y, x), cell)``. The cell is the
    smallest coordinate step (or the tile size, if smaller or the only one known); a tile
    larger than the cell (overlapping tiles) covers ``round(tile / cell)`` cells each way;
    where tiles overlap the grid keeps the maximum; cells without a tile are NaN."""
    v = np.asarray(values, dtype=float).ravel()
    c = np.asarray(coords, dtype=float).reshape(-1, 2)
    if len(v) != len(c):
        raise ValueError(f"{len(v)} values but {len(c)} coordinates")
    step = infer_tile_size(c)
    ts = float(tile_size) if tile_size is not None and tile_size > 0 else None
    cands = [x for x in (step, ts) if x is not None]
    cell = min(cands) if cands else 1.0
    span = max(1, int(round((ts or cell) / cell)))
    origin = (float(c[:, 0].min()), float(c[:, 1].min())) if len(c) else (0.0, 0.0)
    r = np.rint((c[:, 0] - origin[0]) / cell).astype(int)
    q = np.rint((c[:, 1] - origin[1]) / cell).astype(int)
    nr = int(r.max()) + span if len(r) else span
    nc = int(q.max()) + span if len(q) else span
    grid = np.full((nr, nc), np.nan)
    for dy in range(span):
        for dx in range(span):
            np.fmax.at(grid, (r + dy, q + dx), v)
    return grid, origin, cell


def top_labels(scores: np.ndarray, bag_scores: Any = None, k: int = 3) -> list[int]:
    """The ``k`` labels with the highest bag score (given, else the instance maximum)."""
    s = np.asarray(scores, dtype=float)
    b = np.asarray(bag_scores, dtype=float).ravel() if bag_scores is not None else \
        (np.nanmax(s, axis=0) if len(s) else np.zeros(s.shape[1]))
    b = np.where(np.isfinite(b), b, -np.inf)
    return [int(i) for i in np.argsort(-b, kind="stable")[:max(1, int(k))]]


def _as_image(image: Any) -> np.ndarray | None:
    if image is None:
        return None
    if isinstance(image, (str, Path)):
        from mimlkit.datasets.base import ImageSet

        return ImageSet([image])[0]
    return np.asarray(image)


def bag_heatmap(scores: Any, label_names: Sequence[str] | None = None, *,
                coords: Any = None, tile_size: float | None = None, centroids: Any = None,
                image: Any = None, labels: Sequence[int] | None = None, top_k: int = 3,
                bag_scores: Any = None, title: str | None = None):
    """Figure of one bag's instance scores (``scores``: (n_instances, n_labels)) for
    ``labels`` (indices; default: the ``top_k`` labels by ``bag_scores`` or else by the
    instance maximum). ``coords``: (n, 2) top-left (y, x) tile pixels -> grid heatmap;
    else ``centroids`` (n, 2) (y, x) -> dots; else instance order on a square grid.
    ``image``: an array or an image path, drawn under tile grids and dots (grey)."""
    plt = _plt()
    S = np.asarray(scores, dtype=float)
    if S.ndim == 1:
        S = S[:, None]
    K = S.shape[1]
    names = list(label_names) if label_names is not None else [f"label {k}" for k in range(K)]
    if len(names) != K:
        raise ValueError(f"{len(names)} label names for {K} score columns")
    labs = list(labels) if labels is not None else top_labels(S, bag_scores, top_k)
    img = _as_image(image)
    mode = "grid" if coords is not None and len(S) else \
        "dots" if centroids is not None and len(S) else "order"
    if mode == "order":
        img = None  # instance order has no pixel frame
    shown = S[:, labs] if len(S) else np.zeros((0, len(labs)))
    fin = shown[np.isfinite(shown)]
    vmin, vmax = (float(fin.min()), float(fin.max())) if fin.size else (0.0, 1.0)
    if vmax <= vmin:
        vmax = vmin + 1e-9
    npan = len(labs) + int(img is not None)
    fig, axes = plt.subplots(1, npan, figsize=(3.0 * npan + 0.4, 3.3), squeeze=False)
    axes = list(axes[0])
    grey = None
    if img is not None:
        h, w = img.shape[:2]
        axes[0].imshow(img, extent=(0, w, h, 0), interpolation="nearest")
        axes[0].set_title(f"image ({h}x{w} px)", fontsize=8)
        axes[0].set_xticks([])
        axes[0].set_yticks([])
        grey = img.mean(axis=2) if img.ndim == 3 else img
        axes = axes[1:]
    for ax, k in zip(axes, labs):
        v = S[:, k]
        alpha = 0.65 if grey is not None else 1.0
        if grey is not None:
            ax.imshow(grey, cmap="gray", extent=(0, grey.shape[1], grey.shape[0], 0),
                      interpolation="nearest")
        if mode == "grid":
            grid, (oy, ox), cell = tile_grid(v, coords, tile_size)
            ext = (ox, ox + grid.shape[1] * cell, oy + grid.shape[0] * cell, oy)
            im = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", vmin=vmin, vmax=vmax,
                           extent=ext, interpolation="nearest", alpha=alpha)
            if grey is not None:
                ax.set_xlim(min(0, ext[0]), max(grey.shape[1], ext[1]))
                ax.set_ylim(max(grey.shape[0], ext[2]), min(0, ext[3]))
        elif mode == "dots":
            c = np.asarray(centroids, dtype=float).reshape(-1, 2)
            im = ax.scatter(c[:, 1], c[:, 0], c=v, cmap="viridis", vmin=vmin, vmax=vmax,
                            s=60, edgecolors="white", linewidths=0.6)
            if grey is None:
                ax.invert_yaxis()
                ax.set_aspect("equal", adjustable="datalim")
        else:
            side = max(1, math.ceil(math.sqrt(len(v))))
            grid = np.full(side * side, np.nan)
            grid[:len(v)] = v
            im = ax.imshow(np.ma.masked_invalid(grid.reshape(side, side)), cmap="viridis",
                           vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"{names[k]} (max {np.nanmax(v):.3g})" if len(v) else names[k],
                     fontsize=8)
        cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
        cb.ax.tick_params(labelsize=6)
    head = title or "instance scores"
    if mode == "order":
        head += f" ({_NO_COORDS})"
    elif mode == "dots":
        head += " (dots at region centroids)"
    fig.suptitle(head, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def _png(fig, dpi: int = 90) -> bytes:
    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def _safe(name: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", str(name)).strip("._")
    return s[:80] or "bag"


def write_heatmaps(out_dir: str | Path, ids: Sequence[str], scores: Sequence[np.ndarray],
                   label_names: Sequence[str] | None = None, *,
                   coords: Sequence[np.ndarray] | None = None,
                   tile_sizes: Sequence[float | None] | float | None = None,
                   centroids: Sequence[np.ndarray] | None = None,
                   image: Callable[[int], Any] | None = None,
                   bag_scores: Any = None, max_bags: int = 20, top_k: int = 3,
                   what: str = "instance scores", dpi: int = 90) -> list[Path]:
    """One PNG per bag, for the first ``max_bags`` bags: ``<index>_<bag id>.png`` in
    ``out_dir`` (atomic writes). ``coords`` / ``centroids``: per-bag arrays or None;
    ``tile_sizes``: one number or one per bag (None: inferred); ``image(i)``: the image of
    bag ``i`` (array or path) or None; ``bag_scores`` (n_bags, K) choose the top labels."""
    from mimlkit._io import atomic_write

    _plt()  # the one-line missing-extra error before any file is written
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(min(len(ids), max(0, int(max_bags)))):
        ts = tile_sizes[i] if isinstance(tile_sizes, (list, tuple)) else tile_sizes
        fig = bag_heatmap(scores[i], label_names,
                          coords=None if coords is None else coords[i], tile_size=ts,
                          centroids=None if centroids is None else centroids[i],
                          image=None if image is None else image(i), top_k=top_k,
                          bag_scores=None if bag_scores is None else bag_scores[i],
                          title=f"bag {ids[i]}: {what}")
        p = out / f"{i:04d}_{_safe(ids[i])}.png"
        atomic_write(p, _png(fig, dpi))
        paths.append(p)
    return paths


def explain_figures(path: str | Path, max_bags: int = 6, top_k: int = 3
                    ) -> list[tuple[str, bytes]]:
    """``(bag id, PNG bytes)`` heatmaps of the first ``max_bags`` bags of an explain CSV
    (tile coordinates, else region centroids / bbox centres, else instance order)."""
    from mimlkit.explain import read_explain_csv

    data = read_explain_csv(path)
    figs = []
    for b in data["bags"][:max(0, int(max_bags))]:
        cen = b["centroid"]
        if cen is None and b["bbox"] is not None:
            bb = b["bbox"]
            cen = np.stack([(bb[:, 0] + bb[:, 2]) / 2, (bb[:, 1] + bb[:, 3]) / 2], axis=1)
        fig = bag_heatmap(b["scores"], data["label_names"], coords=b["coords"],
                          tile_size=b["tile_size"], centroids=cen, top_k=top_k,
                          title=f"bag {b['bag_id']}: instance scores")
        figs.append((b["bag_id"], _png(fig)))
    return figs
