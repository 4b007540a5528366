"""Diagnostics for the report: training histories and tile-score maps (instance scores
laid out on the tiles of the dataset's images)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from sklearn.base import clone

from mimlkit.evaluation.results_io import _json_default
from mimlkit.evaluation.runs import _esc


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
    coords = tile_coords(ds)
    shown, shown_labels = _shown_bags(ds, np.asarray(test), n_images)
    for key, (est, kind, _, name) in built.items():
        if key in skipped:
            continue
        is_deep = learner_spec(name).family == "deep"
        has_inst = _instance_scorer(est) is not None and coords is not None
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
            if scorer is not None and coords is not None:
                maps[key] = _tile_maps(scorer, ds, shown, kind, images, shown_labels)
        except Exception as exc:  # noqa: BLE001 - diagnostics must never fail the suite
            log(f"[yellow]  diagnostics for {_esc(key)} skipped: {_esc(str(exc))}[/]")
    for panels in maps.values():
        for p in panels:
            p["image"] = images.get(p.pop("image_key"))
    return {"histories": histories, "instance_maps": maps}


def tile_coords(ds) -> np.ndarray | None:
    """Per-instance tile corners ``(y, x)`` in image pixels when the dataset's bags carry
    them (``instance_meta["coords"]``: the synthetic generator, ``TileBagger`` /
    ``extract_tile_features`` / ``load_dataset(..., tile=)`` on the user's images, NPZ files
    saved from those), else ``None``."""
    if ds.bags is None:
        return None
    c = (ds.bags.instance_meta or {}).get("coords")
    if c is None:
        return None
    c = np.asarray(c)
    if c.ndim != 2 or c.shape[1] < 2 or len(c) != ds.bags.instances.shape[0]:
        return None
    return c[:, :2]


def tile_extent(ds) -> tuple[int, int] | None:
    """Tile side in pixels from the dataset's provenance (synthetic ``meta["tile_size"]``,
    ``meta["tiler"]["tile_size"]`` from ``TileBagger``), ``None`` when not recorded."""
    meta = ds.meta if isinstance(ds.meta, dict) else {}
    t = meta.get("tile_size") or (meta.get("tiler") or {}).get("tile_size")
    try:
        t = int(t)
    except (TypeError, ValueError):
        return None
    return (t, t) if t > 0 else None


def _shown_bags(ds, test: np.ndarray, n: int) -> tuple[np.ndarray, list[int]]:
    """Up to ``n`` test bags and the label to show on each: bags with several present
    labels first, each new bag showing its rarest present label not shown yet (so the
    panels cover different, object-like labels), then the first test bags."""
    counts = (np.asarray(ds.Y) == 1).sum(axis=0)
    Y = np.asarray(ds.Y)[test] == 1
    order = np.argsort(-Y.sum(axis=1), kind="stable")  # most labels first, split order kept
    picked: list[int] = []
    labels: list[int] = []
    for j in order[Y[order].any(axis=1)]:
        new = [k for k in np.flatnonzero(Y[j]) if k not in labels]
        if new:
            picked.append(int(test[j]))
            labels.append(int(min(new, key=lambda k: (counts[k], k))))
        if len(picked) == n:
            break
    for j in range(len(test)):  # fewer labels than panels: fill with the first bags
        if len(picked) == n:
            break
        if int(test[j]) not in picked:
            pos = np.flatnonzero(Y[j])
            picked.append(int(test[j]))
            labels.append(int(pos[0]) if pos.size else 0)
    return np.asarray(picked, dtype=np.int64), labels


def _axis_step(values: np.ndarray, fallback: int | None) -> int:
    """Grid step along one axis: the smallest positive gap between tile corners."""
    d = np.diff(np.unique(values))
    d = d[d > 0]
    return int(d.min()) if d.size else int(fallback or 1)


def _grid_index(c: np.ndarray, extent: tuple[int, int] | None):
    """Tile corners (m x 2, y/x pixels) -> grid cells, grid shape, origin and cell size."""
    step = np.array([_axis_step(c[:, 0], extent[0] if extent else None),
                     _axis_step(c[:, 1], extent[1] if extent else None)])
    origin = c.min(axis=0)
    cell = np.rint((c - origin) / step).astype(np.int64)
    return cell, (int(cell[:, 0].max()) + 1, int(cell[:, 1].max()) + 1), origin, step


def _thumbnail(img: np.ndarray, max_side: int = 192) -> np.ndarray:
    """Strided down-sampling so results.json stays small for large photographs."""
    f = int(np.ceil(max(img.shape[:2]) / max_side))
    return img[::f, ::f] if f > 1 else img


def _tile_maps(scorer, ds, idx, kind, images,
               labels: list[int] | None = None) -> list[dict[str, Any]]:
    """One panel per bag in ``idx``: the learner's per-tile score for one present label
    (``labels[j]`` when given; else the present label with most object tiles),
    laid out on the tile grid given by the bags' tile coordinates (any tiler, any image
    size), with the image's pixel frame (``origin``, ``cell``, ``image_shape``) so the
    report can draw it over the image."""
    from mimlkit.datasets.base import take

    idx = np.asarray(idx)
    out = []
    sub_bags = ds.bags[idx]
    X = take(ds.inputs(kind), idx)
    S = scorer(X)
    S = np.vstack(S) if isinstance(S, list) else np.asarray(S)
    coords = np.asarray(sub_bags.instance_meta["coords"])[:, :2]
    extent = tile_extent(ds)
    truth = None
    if ds.instance_labels is not None:
        truth = ds.subset(idx).instance_labels
    for j, i in enumerate(idx):
        lo, hi = sub_bags.offsets[j], sub_bags.offsets[j + 1]
        cell, (g0, g1), origin, step = _grid_index(coords[lo:hi], extent)
        pos = np.flatnonzero(ds.Y[i] == 1)
        if labels is not None:
            k = int(labels[j])
        elif pos.size and truth is not None:  # the present label with most object tiles
            k = int(pos[np.argmax(truth[lo:hi, pos].sum(axis=0))])
        else:
            k = int(pos[0]) if pos.size else 0
        grid = np.full((g0, g1), np.nan)
        grid[cell[:, 0], cell[:, 1]] = S[lo:hi, k]
        tgrid = None
        if truth is not None:
            tgrid = np.zeros((g0, g1), dtype=int)
            tgrid[cell[:, 0], cell[:, 1]] = truth[lo:hi, k]
        key = str(int(i))
        shape = None
        if ds.images is not None:
            img = np.asarray(ds.images[int(i)])
            shape = [int(img.shape[0]), int(img.shape[1])]
            if key not in images:
                images[key] = _thumbnail(img).tolist()
        out.append({"bag": int(i), "label": ds.label_names[k], "grid": grid.tolist(),
                    "truth": tgrid.tolist() if tgrid is not None else None,
                    "origin": [int(v) for v in origin], "cell": [int(v) for v in step],
                    "image_shape": shape,
                    "title": f"bag {int(i)}: {ds.label_names[k]}", "image_key": key})
    return out
