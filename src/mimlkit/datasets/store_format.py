"""Bag store format (:mod:`mimlkit.datasets.store`): the format constants, :class:`StoreError`
and the low-level helpers shared by the writer (:mod:`mimlkit.datasets.store_writer`) and the
reader (:mod:`mimlkit.datasets.store_reader`).

* ``FORMAT`` / ``FORMAT_VERSION``: the store's ``format`` / ``format_version`` attributes;
  default chunking (``_CHUNK_BYTES``, ``_INDEX_CHUNK``) and the instance dtype (float32);
* :func:`_zarr`: zarr, from the ``store`` extra;
* :func:`_committed`: the number of committed bags (the valid prefix of ``offsets``, the commit
  rule of the store);
* :func:`_open_group`: open a store's zarr group and check its format attributes;
* :func:`_meta_spec`: dtype and trailing shape of each per-instance metadata array.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mimlkit._extras import require

__all__ = ["StoreError", "FORMAT", "FORMAT_VERSION"]

FORMAT = "mimlkit-bag-store"
FORMAT_VERSION = 1
_CHUNK_BYTES = 4 << 20  # default instance chunk: about 4 MiB
_INDEX_CHUNK = 16384  # entries per chunk of offsets / labels / bag_names
_FEATURE_DTYPE = np.dtype(np.float32)


class BagShape:
    """Shape properties shared by a store and a lazy subset of one (both hold ``offsets``,
    ``labels`` and ``n_features``)."""

    offsets: np.ndarray
    labels: np.ndarray | None
    n_features: int

    @property
    def n_instances(self) -> int:
        return int(self.offsets[-1])

    @property
    def n_labels(self) -> int | None:
        return None if self.labels is None else int(self.labels.shape[1])

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def nbytes(self) -> int:
        """Bytes of the instance matrix once in memory (float32)."""
        return self.n_instances * int(self.n_features) * _FEATURE_DTYPE.itemsize


class StoreError(ValueError):
    """A bag store is missing pieces, is inconsistent, or does not match the writer's
    arguments. ``path`` names the store."""

    def __init__(self, message: str, path: str | os.PathLike | None = None) -> None:
        super().__init__(message)
        self.path = None if path is None else str(path)


def _zarr(what: str) -> Any:
    return require("store", "zarr", what)


def _default_chunk_rows(n_features: int) -> int:
    return int(max(256, _CHUNK_BYTES // (_FEATURE_DTYPE.itemsize * max(1, n_features))))


def _committed(offsets: np.ndarray, n_rows: int, path: Path) -> int:
    """Number of committed bags: the valid prefix of ``offsets`` (fill value -1 ends it)."""
    off = np.asarray(offsets, dtype=np.int64)
    if off.size == 0 or off[0] != 0:
        raise StoreError(f"bag store {path} is corrupt: offsets must start with 0", path)
    neg = np.flatnonzero(off < 0)
    n = int(neg[0]) - 1 if neg.size else off.size - 1
    head = off[: n + 1]
    if np.any(np.diff(head) <= 0):
        bad = int(np.flatnonzero(np.diff(head) <= 0)[0])
        raise StoreError(f"bag store {path} is corrupt: offsets do not increase at bag {bad}",
                         path)
    if head[-1] > n_rows:
        raise StoreError(f"bag store {path} is corrupt: offsets end at row {int(head[-1])} but "
                         f"'instances' holds {n_rows} rows", path)
    return n


def _open_group(path: Path, mode: str, what: str) -> Any:
    """Open the zarr group of a store and check its format attributes."""
    zarr = _zarr(what)
    if not path.exists():
        raise FileNotFoundError(f"no bag store at {path} (the path does not exist)")
    try:
        group = zarr.open_group(str(path), mode=mode)
        attrs = dict(group.attrs)
    except Exception as exc:  # zarr raises several types for "not a group"
        raise StoreError(f"{path} is not a readable bag store ({type(exc).__name__}: {exc})",
                         path) from None
    if attrs.get("format") != FORMAT:
        raise StoreError(f"{path} is not a mimlkit bag store (zarr group without "
                         f"format={FORMAT!r} in its attributes)", path)
    version = attrs.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise StoreError(f"bag store {path} has format version {version!r}; this mimlkit reads "
                         f"versions up to {FORMAT_VERSION}", path)
    for key in ("instances", "offsets"):
        if key not in group:
            raise StoreError(f"bag store {path} is corrupt: the {key!r} array is missing", path)
    return group


def _meta_spec(meta: Mapping[str, np.ndarray]) -> dict[str, dict[str, Any]]:
    return {k: {"dtype": np.asarray(v).dtype.str, "shape": list(np.asarray(v).shape[1:])}
            for k, v in sorted(meta.items())}
