"""Instance attributions: per-instance, per-label scores of learners with ``instance_scores``.

Used by ``mimlkit predict --explain OUT`` (and ``--heatmaps DIR``). Learners expose
``instance_scores(X)`` with different return shapes: MIMLfast, MIML-miSVM and DeepMIML a list
of per-bag ``(n_i, K)`` arrays, the attention models (abmil, transmil, dsmil, meanmil, maxmil)
the same for their default score kind, the self-paced trainer per-tile probabilities (and,
with ``return_coords=True``, the tiles' (y, x) coordinates). :func:`collect_instance_scores`
normalises them to a list of float ``(n_i, K)`` arrays.

The explain CSV (:func:`explain_csv`) has one row per instance::

    bag_id, instance, [tile_y, tile_x, [tile_size]], [bbox_y0, bbox_x0, bbox_y1, bbox_x1],
    [centroid_y, centroid_x], <one column per label>

``instance`` is the 0-based index within the bag; the coordinate columns are present only when
the instances carry them (``coords`` = top-left (y, x) pixel of a tile; region ``bbox`` and
``centroid`` from ``load_dataset(..., regions=True)``). Only numpy and the standard library
are imported here.
"""

from __future__ import annotations

import csv
import inspect
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["supports_instance_scores", "instance_score_learners", "collect_instance_scores",
           "instance_coordinates", "explain_columns", "explain_csv", "read_explain_csv",
           "COORD_COLUMNS"]

#: coordinate columns of the explain CSV, per ``instance_meta`` key
COORD_COLUMNS = {"coords": ("tile_y", "tile_x"),
                 "bbox": ("bbox_y0", "bbox_x0", "bbox_y1", "bbox_x1"),
                 "centroid": ("centroid_y", "centroid_x")}
_FIXED = ("bag_id", "instance", "tile_size", *[c for v in COORD_COLUMNS.values() for c in v])


def supports_instance_scores(est: Any) -> bool:
    """True when ``est`` has a callable ``instance_scores``."""
    return callable(getattr(est, "instance_scores", None))


def instance_score_learners() -> tuple[list[str], list[str]]:
    """(registered learners whose class defines ``instance_scores``, learners that could not
    be checked here because their module does not import, e.g. a missing extra)."""
    from mimlkit.registry import get_learner_class, list_learners

    yes, unknown = [], []
    for name in list_learners():
        try:
            cls = get_learner_class(name)
        except (ImportError, AttributeError):
            unknown.append(name)
            continue
        if callable(getattr(cls, "instance_scores", None)):
            yes.append(name)
    return yes, unknown


def _accepts(fn: Any, name: str) -> bool:
    try:
        return name in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def collect_instance_scores(est: Any, X: Any, n_labels: int | None = None
                            ) -> tuple[list[np.ndarray], list[np.ndarray] | None]:
    """``est.instance_scores(X)`` (the learner's default score kind) as a list of float
    ``(n_i, K)`` arrays, one per bag, and the tiles' (y, x) coordinates when the learner
    returns them itself (``return_coords=True``: tiling learners on raw images), else None.

    Accepts a list of per-bag arrays (1-D ones taken as one label), or one
    ``(n_instances, K)`` array split by ``X.offsets``."""
    fn = est.instance_scores
    coords = None
    if _accepts(fn, "return_coords"):
        out, coords = fn(X, return_coords=True)
        coords = [np.asarray(c) for c in coords]
    else:
        out = fn(X)
    if isinstance(out, np.ndarray) and out.dtype != object:
        offsets = getattr(X, "offsets", None)
        if offsets is None:
            raise ValueError(f"{type(est).__name__}.instance_scores returned one array but the "
                             "input has no bag offsets to split it by")
        out = np.split(np.asarray(out), np.asarray(offsets)[1:-1])
    scores = []
    for i, s in enumerate(out):
        a = np.asarray(s, dtype=np.float64)
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2:
            raise ValueError(f"{type(est).__name__}.instance_scores: bag {i} has a "
                             f"{a.ndim}-d score array; expected (n_instances, n_labels)")
        if n_labels is not None and a.shape[1] != n_labels:
            raise ValueError(f"{type(est).__name__}.instance_scores: bag {i} has "
                             f"{a.shape[1]} label columns, the model {n_labels}")
        scores.append(a)
    return scores, coords


def instance_coordinates(X: Any, coords: list[np.ndarray] | None = None,
                         tile_size: Any = None) -> dict[str, np.ndarray]:
    """Coordinate arrays (all instances, bag after bag) for the explain CSV: ``coords``
    (n, 2) (y, x), ``bbox`` (n, 4), ``centroid`` (n, 2), ``tile_size`` (n,) where known.
    ``coords`` (per-bag list from the learner) wins over ``X.instance_meta``; ``tile_size``
    (a number) is used when the instance metadata has no ``tile_size`` of its own."""
    meta = dict(getattr(X, "instance_meta", None) or {})
    out: dict[str, np.ndarray] = {}
    if coords is not None:
        out["coords"] = (np.concatenate(coords) if coords else np.zeros((0, 2))).reshape(-1, 2)
    for key, width in (("coords", 2), ("bbox", 4), ("centroid", 2)):
        if key in out or key not in meta:
            continue
        a = np.asarray(meta[key])
        if a.ndim == 2 and a.shape[1] == width and np.issubdtype(a.dtype, np.number):
            out[key] = a
    if "coords" in out:
        ts = meta.get("tile_size")
        if ts is not None and np.asarray(ts).ndim == 1:
            out["tile_size"] = np.asarray(ts)
        elif tile_size is not None:
            out["tile_size"] = np.full(len(out["coords"]), tile_size)
    return out


def explain_columns(label_names: Sequence[str], coords: dict[str, np.ndarray]) -> list[str]:
    """Header of the explain CSV (label names clashing with a fixed column get ``score_``)."""
    cols = ["bag_id", "instance"]
    if "coords" in coords:
        cols += list(COORD_COLUMNS["coords"])
        if "tile_size" in coords:
            cols.append("tile_size")
    for key in ("bbox", "centroid"):
        if key in coords:
            cols += list(COORD_COLUMNS[key])
    return cols + [f"score_{n}" if n in _FIXED else str(n) for n in label_names]


def _num(v: Any) -> str:
    f = float(v)
    return str(int(f)) if f.is_integer() and abs(f) < 2**53 else f"{f:.6g}"


def explain_csv(ids: Sequence[str], scores: Sequence[np.ndarray], label_names: Sequence[str],
                coords: dict[str, np.ndarray] | None = None) -> str:
    """The explain CSV text: one row per instance (see the module docstring)."""
    coords = coords or {}
    n_inst = sum(len(s) for s in scores)
    for k, v in coords.items():
        if len(v) != n_inst:
            raise ValueError(f"instance {k} has {len(v)} rows, the scores {n_inst}")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(explain_columns(label_names, coords))
    keys = [k for k in ("coords", "tile_size", "bbox", "centroid") if k in coords]
    row = 0
    for bid, S in zip(ids, scores):
        for j, srow in enumerate(S):
            extra: list[str] = []
            for k in keys:
                v = np.atleast_1d(coords[k][row])
                extra += [_num(x) for x in v]
            w.writerow([bid, j, *extra, *[f"{x:.6g}" for x in srow]])
            row += 1
    return buf.getvalue()


def read_explain_csv(path: Any) -> dict[str, Any]:
    """Read an explain CSV back: ``{"label_names", "bags": [{"bag_id", "scores" (n_i, K),
    "coords" (n_i, 2) or None, "tile_size" or None, "bbox" (n_i, 4) or None, "centroid"
    (n_i, 2) or None}]}`` in file
    order."""
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    if not rows or rows[0][:2] != ["bag_id", "instance"]:
        raise ValueError(f"{path}: not an explain CSV (expected columns bag_id, instance, ...)")
    head = rows[0]
    n_fixed = next((i for i, c in enumerate(head) if i >= 2 and c not in _FIXED), len(head))
    labels = [c[6:] if c.startswith("score_") and c[6:] in _FIXED else c
              for c in head[n_fixed:]]
    pos = {c: i for i, c in enumerate(head[:n_fixed])}
    bags: dict[str, list[list[str]]] = {}
    for r in rows[1:]:
        if r:
            bags.setdefault(r[0], []).append(r)
    out = []
    for bid, rs in bags.items():
        def col(*names: str, rs: list[list[str]] = rs) -> np.ndarray | None:
            if not all(n in pos for n in names):
                return None
            return np.array([[float(r[pos[n]]) for n in names] for r in rs])

        ts = col("tile_size")
        out.append({"bag_id": bid,
                    "scores": np.array([[float(x) for x in r[n_fixed:]] for r in rs]),
                    "coords": col("tile_y", "tile_x"),
                    "tile_size": None if ts is None else float(ts[0, 0]),
                    "bbox": col("bbox_y0", "bbox_x0", "bbox_y1", "bbox_x1"),
                    "centroid": col("centroid_y", "centroid_x")})
    return {"label_names": labels, "bags": out}
