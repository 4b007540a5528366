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
    coords = None
    if ds.bags is not None and ds.images is not None:
        coords = ds.bags.instance_meta.get("coords")
    tile = int(ds.meta.get("tile_size", 0) or 0) if isinstance(ds.meta, dict) else 0
    for key, (est, kind, _, name) in built.items():
        if key in skipped:
            continue
        is_deep = learner_spec(name).family == "deep"
        has_inst = _instance_scorer(est) is not None and coords is not None and tile > 0
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
            if scorer is not None and coords is not None and tile > 0:
                maps[key] = _tile_maps(scorer, ds, test[:n_images], kind, tile, images)
        except Exception as exc:  # noqa: BLE001 - diagnostics must never fail the suite
            log(f"[yellow]  diagnostics for {_esc(key)} skipped: {_esc(str(exc))}[/]")
    for panels in maps.values():
        for p in panels:
            p["image"] = images.get(p.pop("image_key"))
    return {"histories": histories, "instance_maps": maps}


def _tile_maps(scorer, ds, idx, kind, tile, images) -> list[dict[str, Any]]:
    from mimlkit.datasets.base import take

    out = []
    sub_bags = ds.bags[np.asarray(idx)]
    X = take(ds.inputs(kind), np.asarray(idx))
    S = scorer(X)
    S = np.vstack(S) if isinstance(S, list) else np.asarray(S)
    coords = sub_bags.instance_meta["coords"]
    truth = None
    if ds.instance_labels is not None:
        truth = ds.subset(np.asarray(idx)).instance_labels
    for j, i in enumerate(np.asarray(idx)):
        lo, hi = sub_bags.offsets[j], sub_bags.offsets[j + 1]
        c = coords[lo:hi] // tile
        g0, g1 = int(c[:, 0].max()) + 1, int(c[:, 1].max()) + 1
        pos = np.flatnonzero(ds.Y[i] == 1)
        if pos.size and truth is not None:  # the present label with most object tiles
            k = int(pos[np.argmax(truth[lo:hi, pos].sum(axis=0))])
        else:
            k = int(pos[0]) if pos.size else 0
        grid = np.full((g0, g1), np.nan)
        grid[c[:, 0], c[:, 1]] = S[lo:hi, k]
        tgrid = None
        if truth is not None:
            tgrid = np.zeros((g0, g1), dtype=int)
            tgrid[c[:, 0], c[:, 1]] = truth[lo:hi, k]
        key = str(int(i))
        if key not in images and ds.images is not None:
            images[key] = np.asarray(ds.images[int(i)]).tolist()
        out.append({"bag": int(i), "label": ds.label_names[k], "grid": grid.tolist(),
                    "truth": tgrid.tolist() if tgrid is not None else None,
                    "title": f"bag {int(i)}: {ds.label_names[k]}", "image_key": key})
    return out
