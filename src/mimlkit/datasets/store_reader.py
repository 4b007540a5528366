"""Read side of the bag store (:mod:`mimlkit.datasets.store`, which re-exports these names):
:func:`open_store` and :class:`StoredBags`, which read the committed bags lazily, only the
rows asked for (one bag, a run of bags, a block).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mimlkit.bags import Bags
from mimlkit.datasets.store_format import (
    _FEATURE_DTYPE,
    BagShape,
    StoreError,
    _committed,
    _open_group,
)

__all__ = ["StoredBags", "open_store"]


class StoredBags(BagShape):
    """Read side of a bag store (from :func:`open_store`); instances stay on disk.

    ``offsets``, ``sizes``, ``labels`` and ``bag_names`` are small and held in memory;
    ``bag(i)``, ``take(idx)`` and ``iter_blocks(block_bags)`` read only the rows they need;
    ``subset(idx)`` is a lazy view of some bags (:class:`~mimlkit.datasets.store_view.
    StoreSubset`). Learners that read stores lazily (``abmil`` and the other attention MIL
    learners, ``deepmiml``, ``mimlfast``, ``pooled-linear``, ``multilabel-head``) take a
    ``StoredBags`` (or a subset) as ``X`` in ``fit`` / ``predict``; the labels default to
    the store's.
    """

    #: marks a lazy bag source (``mimlkit.datasets.store_view.is_bag_source``)
    lazy_bags = True

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        g = _open_group(self.path, "r", "the bag store")
        self._group = g
        a = dict(g.attrs)
        self._inst = g["instances"]
        n = _committed(g["offsets"][:], self._inst.shape[0], self.path)
        self.offsets: np.ndarray = np.asarray(g["offsets"][: n + 1], dtype=np.int64)
        self.offsets.setflags(write=False)
        if n == 0:
            raise StoreError(f"bag store {self.path} holds no complete bag", self.path)
        self.n_features = int(a.get("n_features", self._inst.shape[1]))
        if self._inst.shape[1] != self.n_features:
            raise StoreError(f"bag store {self.path} is corrupt: 'instances' has "
                             f"{self._inst.shape[1]} columns, attributes say {self.n_features}",
                             self.path)
        self.complete = bool(a.get("complete", False))
        self.format_version = int(a["format_version"])
        self.label_names: list[str] | None = a.get("label_names")
        self.labels: np.ndarray | None = None
        if a.get("n_labels") is not None:
            if "labels" not in g or g["labels"].shape[0] < n:
                raise StoreError(f"bag store {self.path} is corrupt: fewer label rows than "
                                 f"its {n} bags", self.path)
            self.labels = np.asarray(g["labels"][:n], dtype=np.int8)
        self.bag_names: list[str] | None = None
        if a.get("bag_names"):
            if "bag_names" not in g or g["bag_names"].shape[0] < n:
                raise StoreError(f"bag store {self.path} is corrupt: fewer bag names than "
                                 f"its {n} bags", self.path)
            self.bag_names = [str(x) for x in g["bag_names"][:n]]
        self.meta_names: list[str] = sorted(a.get("meta") or {})
        self._meta = {}
        for k in self.meta_names:
            if f"meta/{k}" not in g:
                raise StoreError(f"bag store {self.path} is corrupt: metadata array {k!r} "
                                 "is missing", self.path)
            self._meta[k] = g[f"meta/{k}"]

    # -------------------------------------------------------------- shape
    @property
    def n_bags(self) -> int:
        return int(self.offsets.shape[0] - 1)


    def __len__(self) -> int:
        return self.n_bags

    def __repr__(self) -> str:
        lab = "" if self.labels is None else f", n_labels={self.n_labels}"
        meta = f", meta={self.meta_names}" if self.meta_names else ""
        return (f"StoredBags({str(self.path)!r}, n_bags={self.n_bags}, n_instances="
                f"{self.n_instances}, n_features={self.n_features}{lab}{meta})")

    # -------------------------------------------------------------- reading
    def _rows(self, arr: Any, a: int, b: int) -> np.ndarray:
        try:
            return np.asarray(arr[a:b])
        except Exception as exc:
            raise StoreError(f"bag store {self.path}: cannot read rows {a}..{b} of "
                             f"{arr.name!r} ({type(exc).__name__}: {exc})", self.path) from exc

    def _index(self, i: int) -> int:
        n = self.n_bags
        if not -n <= i < n:
            raise IndexError(f"bag index {i} out of range for {n} bags ({self.path})")
        return int(i) % n

    def bag(self, i: int) -> np.ndarray:
        """Instances of bag ``i`` (read from disk)."""
        i = self._index(i)
        return self._rows(self._inst, int(self.offsets[i]), int(self.offsets[i + 1]))

    def bag_meta(self, i: int) -> dict[str, np.ndarray]:
        """Per-instance metadata of bag ``i``."""
        i = self._index(i)
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return {k: self._rows(v, a, b) for k, v in self._meta.items()}

    def slice(self, start: int, stop: int) -> Bags:
        """Bags ``start..stop-1`` as an in-memory :class:`Bags` (one contiguous read)."""
        start, stop, _ = slice(start, stop).indices(self.n_bags)
        if stop <= start:
            raise ValueError(f"empty bag range {start}..{stop} ({self.path})")
        a, b = int(self.offsets[start]), int(self.offsets[stop])
        meta = {k: self._rows(v, a, b) for k, v in self._meta.items()}
        return Bags(self._rows(self._inst, a, b), self.offsets[start:stop + 1] - a, meta,
                    validate=False)

    def take(self, idx: Any) -> Bags:
        """The bags ``idx`` (any order) as an in-memory :class:`Bags`; contiguous runs of
        indices are read in one piece each."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        if idx.size == 0:
            raise ValueError("take: no bag indices given")
        n = self.n_bags
        if idx.min() < -n or idx.max() >= n:
            raise IndexError(f"bag index out of range for {n} bags ({self.path})")
        idx = idx % n
        breaks = np.flatnonzero(np.diff(idx) != 1) + 1
        runs = np.split(idx, breaks)
        if len(runs) == 1:
            return self.slice(int(idx[0]), int(idx[-1]) + 1)
        sizes = self.sizes[idx]
        offsets = np.zeros(sizes.size + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        # filled run by run: the result plus one run in memory, never two copies
        X = np.empty((int(offsets[-1]), self.n_features), dtype=_FEATURE_DTYPE)
        meta = {k: np.empty((int(offsets[-1]),) + v.shape[1:], dtype=v.dtype)
                for k, v in self._meta.items()}
        pos = 0
        for r in runs:
            a, b = int(self.offsets[r[0]]), int(self.offsets[r[-1] + 1])
            X[pos:pos + b - a] = self._rows(self._inst, a, b)
            for k, v in self._meta.items():
                meta[k][pos:pos + b - a] = self._rows(v, a, b)
            pos += b - a
        return Bags(X, offsets, meta, validate=False)

    def slice_meta(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Per-instance metadata of bags ``start..stop-1`` (no instance rows are read)."""
        start, stop, _ = slice(start, stop).indices(self.n_bags)
        a, b = int(self.offsets[start]), int(self.offsets[max(start, stop)])
        return {k: self._rows(v, a, b) for k, v in self._meta.items()}

    def subset(self, idx: Any) -> Any:
        """A lazy view of the bags ``idx`` (any order; nothing is read until asked)."""
        from mimlkit.datasets.store_view import StoreSubset

        return StoreSubset(self, idx)

    def iter_blocks(self, block_bags: int = 256, *, start: int = 0,
                    stop: int | None = None) -> Iterator[tuple[Bags, np.ndarray | None]]:
        """Yield ``(Bags, Y)`` for consecutive runs of ``block_bags`` bags; ``Y`` is the
        block's (n, K) int8 label rows, or None for an unlabelled store. Only one block
        (plus the zarr chunks it touches) is in memory at a time."""
        block_bags = int(block_bags)
        if block_bags < 1:
            raise ValueError(f"block_bags must be >= 1, got {block_bags}")
        stop = self.n_bags if stop is None else min(int(stop), self.n_bags)
        for s in range(int(start), stop, block_bags):
            e = min(s + block_bags, stop)
            yield self.slice(s, e), (None if self.labels is None else self.labels[s:e])

    def to_bags(self) -> Bags:
        """The whole store in memory (for stores that fit: see ``nbytes``)."""
        return self.slice(0, self.n_bags)

    def to_dataset(self, name: str | None = None) -> Any:
        """The whole store as an in-memory ``MIMLDataset`` (needs labels)."""
        from mimlkit.datasets.base import MIMLDataset

        if self.labels is None:
            raise StoreError(f"bag store {self.path} has no labels", self.path)
        names = self.label_names or [f"label_{j}" for j in range(self.labels.shape[1])]
        meta: dict[str, Any] = {"source": str(self.path)}
        if self.bag_names is not None:
            meta["bag_names"] = list(self.bag_names)
        return MIMLDataset(Y=self.labels, label_names=names, bags=self.to_bags(),
                           name=name or self.path.stem, meta=meta)


def open_store(path: str | os.PathLike) -> StoredBags:
    """Open a bag store for reading. Raises ``FileNotFoundError`` for a missing path and
    :class:`StoreError` (a ``ValueError``) for anything that is not a complete, consistent
    store; both name the path."""
    return StoredBags(path)
