"""Lazy bag sources: a bag store (:class:`~mimlkit.datasets.store_reader.StoredBags`) or a
subset of its bags (:class:`StoreSubset`), read only in the pieces a learner asks for.

A *bag source* has ``lazy_bags = True`` and the read API of ``StoredBags``: ``n_bags``,
``n_features``, ``n_instances``, ``sizes``, ``offsets`` (of the bags in the source's order,
as if they were loaded), ``labels`` (or None), ``path``, ``bag(i)``, ``slice(start, stop)``
and ``take(idx)`` (in-memory :class:`~mimlkit.bags.Bags`), ``slice_meta(start, stop)``,
``subset(idx)`` (another lazy source) and ``iter_blocks(block_bags)``.

:func:`iter_bag_blocks` walks a source in consecutive runs of bags of at most
``STORE_READ_BYTES`` of instances (at least one bag), the unit in which learners stream
statistics, pooled features and predictions. Threshold calibration
(``MIMLClassifierMixin._fit_and_calibrate``) holds bags out with ``subset``, so its clones
read lazily too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mimlkit.bags import Bags
from mimlkit.datasets.store_format import BagShape

__all__ = ["StoreSubset", "is_bag_source", "iter_bag_blocks", "STORE_READ_BYTES"]

#: instance bytes (float32) read at once when a learner streams a source block by block
STORE_READ_BYTES = 4 << 20


def is_bag_source(X: Any) -> bool:
    """Whether ``X`` is a lazy bag source (a store or a subset of one)."""
    return getattr(type(X), "lazy_bags", False) is True


class StoreSubset(BagShape):
    """The bags ``index`` of a store, in that order, read lazily (from ``store.subset``)."""

    lazy_bags = True

    def __init__(self, store: Any, index: Any) -> None:
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        n = store.n_bags
        if index.size == 0:
            raise ValueError(f"subset: no bag indices given ({store.path})")
        if index.min() < -n or index.max() >= n:
            raise IndexError(f"bag index out of range for {n} bags ({store.path})")
        self.store = store
        self.index = index % n
        self.index.setflags(write=False)
        sizes = store.sizes[self.index]
        self.offsets = np.zeros(sizes.size + 1, dtype=np.int64)
        np.cumsum(sizes, out=self.offsets[1:])
        self.offsets.setflags(write=False)
        self.labels = None if store.labels is None else store.labels[self.index]

    # -------------------------------------------------------------- shape
    path = property(lambda self: Path(self.store.path))
    n_features = property(lambda self: int(self.store.n_features))
    label_names = property(lambda self: self.store.label_names)
    meta_names = property(lambda self: self.store.meta_names)

    @property
    def n_bags(self) -> int:
        return int(self.index.size)


    def __len__(self) -> int:
        return self.n_bags

    def __repr__(self) -> str:
        return (f"StoreSubset({str(self.path)!r}, n_bags={self.n_bags}, "
                f"n_instances={self.n_instances})")

    # -------------------------------------------------------------- reading
    def _positions(self, idx: Any) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        n = self.n_bags
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"bag index out of range for {n} bags ({self.path})")
        return self.index[idx % n]

    def bag(self, i: int) -> np.ndarray:
        return self.store.bag(int(self._positions([i])[0]))

    def take(self, idx: Any) -> Bags:
        """The bags ``idx`` (positions in this subset) as an in-memory ``Bags``."""
        return self.store.take(self._positions(idx))

    def slice(self, start: int, stop: int) -> Bags:
        start, stop, _ = slice(start, stop).indices(self.n_bags)
        if stop <= start:
            raise ValueError(f"empty bag range {start}..{stop} ({self.path})")
        return self.store.take(self.index[start:stop])

    def slice_meta(self, start: int, stop: int) -> dict[str, np.ndarray]:
        start, stop, _ = slice(start, stop).indices(self.n_bags)
        idx = self.index[start:stop]
        breaks = np.flatnonzero(np.diff(idx) != 1) + 1
        parts = [self.store.slice_meta(int(r[0]), int(r[-1]) + 1)
                 for r in np.split(idx, breaks) if r.size]
        return {k: np.concatenate([p[k] for p in parts]) for k in self.meta_names} if parts \
            else {}

    def subset(self, idx: Any) -> StoreSubset:
        return StoreSubset(self.store, self._positions(idx))

    def iter_blocks(self, block_bags: int = 256) -> Iterator[tuple[Bags, np.ndarray | None]]:
        block_bags = int(block_bags)
        if block_bags < 1:
            raise ValueError(f"block_bags must be >= 1, got {block_bags}")
        for s in range(0, self.n_bags, block_bags):
            e = min(s + block_bags, self.n_bags)
            yield self.slice(s, e), (None if self.labels is None else self.labels[s:e])

    def to_bags(self) -> Bags:
        return self.slice(0, self.n_bags)


def block_bounds(sizes: np.ndarray, max_rows: int) -> list[tuple[int, int]]:
    """Consecutive ``(start, stop)`` bag runs of at most ``max_rows`` instances each (a
    larger bag is a run of its own)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    out: list[tuple[int, int]] = []
    s, n = 0, sizes.size
    cum = np.concatenate([[0], np.cumsum(sizes)])
    while s < n:
        e = int(np.searchsorted(cum, cum[s] + max(1, int(max_rows)), side="right")) - 1
        e = min(max(e, s + 1), n)
        out.append((s, e))
        s = e
    return out


def block_rows(n_features: int, max_bytes: int | None = None) -> int:
    """Instance rows per streamed block (float32 rows of ``n_features``)."""
    b = STORE_READ_BYTES if max_bytes is None else int(max_bytes)
    return max(1, b // (4 * max(1, int(n_features))))


def iter_bag_blocks(source: Any, max_rows: int | None = None
                    ) -> Iterator[tuple[int, int, Bags]]:
    """Yield ``(start, stop, Bags)`` for consecutive runs of the source's bags holding at
    most ``max_rows`` instances (default: ``STORE_READ_BYTES`` of float32 rows); only one
    run is in memory at a time."""
    rows = block_rows(source.n_features) if max_rows is None else int(max_rows)
    for s, e in block_bounds(source.sizes, rows):
        yield s, e, source.slice(s, e)
