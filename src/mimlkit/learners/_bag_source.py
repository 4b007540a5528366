"""Learner-side helpers for lazy bag sources (a bag store or a subset of one,
:mod:`mimlkit.datasets.store_view`): labels from the store, instance scaling statistics
streamed block by block, per-block maps (pooling, scores) and in-place scaling.

Every helper reads at most one block (``STORE_READ_BYTES`` of instances) at a time, so a
learner using them needs memory for its model and one block, not for the store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mimlkit.datasets.store_view import block_rows, is_bag_source, iter_bag_blocks

__all__ = ["is_bag_source", "store_labels", "stream_scaling", "scale_inplace", "map_blocks"]

_STAT_ROWS_BYTES = 1 << 20  # float64 bytes converted at once for the statistics


def store_labels(X: Any, Y: Any) -> Any:
    """``Y`` as given, or the labels of the store ``X`` when ``Y`` is None; raises
    ``StoreError`` naming the store when it has none."""
    if Y is not None or not is_bag_source(X):
        return Y
    if X.labels is None:
        from mimlkit.datasets.store_format import StoreError

        raise StoreError(f"bag store {X.path} has no labels to train on: give Y to fit, "
                         "or write the store with label_names and label rows",
                         str(X.path))
    return X.labels


def _chunks(X: np.ndarray) -> list[np.ndarray]:
    step = max(1, _STAT_ROWS_BYTES // (8 * max(1, X.shape[1])))
    return [X[s:s + step] for s in range(0, X.shape[0], step)]


def stream_scaling(source: Any, how: str | None) -> tuple[np.ndarray, np.ndarray]:
    """``fit_scaling(all instances of source, how)`` computed one block at a time.

    "standard" (mean, std: Chan's pairwise update in float64) and "minmax" stream every
    instance and equal the in-memory statistics up to float rounding; "auto" / "robust"
    read the same fixed sample of at most 200,000 instances as the in-memory rule (so they
    equal it exactly); None / "none" read nothing.
    """
    from mimlkit.learners.classic import _instance_scaling as sc

    if how not in sc._SCALES:
        return sc.fit_scaling(np.zeros((1, 1)), how)  # raises the usual ValueError
    d = int(source.n_features)
    if how is None or how == "none":
        return np.zeros(d), np.ones(d)
    if how in ("auto", "robust"):
        N = int(source.n_instances)
        rows = None
        if N > sc._ROBUST_SAMPLE:
            rows = np.sort(np.random.default_rng(0).choice(N, sc._ROBUST_SAMPLE, replace=False))
        parts = []
        for s, e, blk in iter_bag_blocks(source):
            a, b = int(source.offsets[s]), int(source.offsets[e])
            if rows is None:
                parts.append(np.asarray(blk.instances, dtype=np.float64))
            else:
                r = rows[np.searchsorted(rows, a):np.searchsorted(rows, b)] - a
                parts.append(np.asarray(blk.instances[r], dtype=np.float64))
            del blk  # free this block before the next one is read
        Xq = np.concatenate(parts)
        off, spread = sc._auto(Xq) if how == "auto" else sc._robust(Xq)
    elif how == "standard":
        n, mean, m2 = 0, np.zeros(d), np.zeros(d)
        for _, _, blk in iter_bag_blocks(source):
            for c in _chunks(blk.instances):
                c = np.asarray(c, dtype=np.float64)
                nb = c.shape[0]
                mb = c.mean(axis=0)
                m2b = ((c - mb) ** 2).sum(axis=0)
                delta = mb - mean
                tot = n + nb
                mean = mean + delta * (nb / tot)
                m2 = m2 + m2b + delta**2 * (n * nb / tot)
                n = tot
            del blk, c
        off, spread = mean, np.sqrt(m2 / max(n, 1))
    else:  # minmax
        lo, hi = np.full(d, np.inf), np.full(d, -np.inf)
        for _, _, blk in iter_bag_blocks(source):
            lo = np.minimum(lo, blk.instances.min(axis=0))
            hi = np.maximum(hi, blk.instances.max(axis=0))
            del blk
        off = lo.astype(np.float64)
        spread = hi.astype(np.float64) - off
    factor = np.where(spread > 1e-12, 1.0 / np.where(spread > 1e-12, spread, 1.0), 1.0)
    return off, factor


def scale_inplace(X: np.ndarray, offset: np.ndarray, factor: np.ndarray,
                  dtype: Any = np.float32) -> np.ndarray:
    """``apply_scaling(X, offset, factor, dtype)`` (the same roundings), written into ``X``
    when it already has ``dtype`` and is writeable (a freshly read block), else a copy."""
    X = np.asarray(X)
    if X.dtype != dtype or not X.flags.writeable:
        X = X.astype(dtype)
    np.subtract(X, offset.astype(dtype), out=X)
    np.multiply(X, factor.astype(dtype), out=X)
    return X


def map_blocks(source: Any, fn: Callable[[Any], np.ndarray],
               max_rows: int | None = None) -> np.ndarray:
    """``fn`` applied to consecutive runs of bags (in-memory ``Bags``), results stacked
    along axis 0 (one row per bag or per instance, as ``fn`` returns)."""
    rows = block_rows(source.n_features) if max_rows is None else max_rows
    out = []
    for _, _, blk in iter_bag_blocks(source, rows):
        out.append(np.asarray(fn(blk)))
        del blk  # free this block before the next one is read
    return np.concatenate(out, axis=0)
