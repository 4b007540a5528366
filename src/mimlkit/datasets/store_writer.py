"""Write side of the bag store (:mod:`mimlkit.datasets.store`, which re-exports
:class:`BagStoreWriter`): chunked, append-only, resumable.

:class:`BagStoreWriter` buffers appended bags and writes whole chunks; it writes a bag's
instances, metadata, label row and name before its entry in ``offsets`` (the commit), so an
interrupted write leaves a valid prefix that a reopened writer continues after.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mimlkit.bags import Bags
from mimlkit.datasets.store_format import (
    _FEATURE_DTYPE,
    _INDEX_CHUNK,
    FORMAT,
    FORMAT_VERSION,
    StoreError,
    _committed,
    _default_chunk_rows,
    _meta_spec,
    _open_group,
    _zarr,
)

__all__ = ["BagStoreWriter"]


class BagStoreWriter:
    """Append bags to an on-disk store (created, or resumed if ``path`` already holds one).

    Parameters
    ----------
    path : directory of the zarr store.
    n_features : instance width d. Required for a new store; checked against an existing one.
    label_names : names of the K label columns (a new store then stores labels and every
        bag needs a ``label_row``). Without it, the first bag's ``label_row`` (if any) fixes
        K. Checked against an existing store.
    chunk_rows : instance rows per chunk (default: about 4 MiB of float32 rows). Writes and
        reads happen in whole chunks, so this also bounds the writer's buffer.
    overwrite : delete an existing store at ``path`` instead of resuming it.

    Use as a context manager or call :meth:`close`. Fields are fixed by the first bag: if
    it has a label row, metadata keys or a name, every later bag needs the same.
    """

    def __init__(self, path: str | os.PathLike, n_features: int | None = None,
                 label_names: Sequence[str] | None = None, *, chunk_rows: int | None = None,
                 overwrite: bool = False) -> None:
        zarr = _zarr("the bag store")
        self.path = Path(path)
        self._closed = False
        if overwrite and self.path.exists():
            import shutil

            shutil.rmtree(self.path)
        if self.path.exists() and not self.path.is_dir():
            raise StoreError(f"{self.path} is a file, not a bag store folder", self.path)
        if self.path.exists() and any(self.path.iterdir()):
            self._group = _open_group(self.path, "r+", "the bag store")
            self._resume(n_features, label_names)
        else:
            if n_features is None or int(n_features) < 1:
                raise ValueError(f"creating bag store {self.path}: n_features must be a "
                                 f"positive int, got {n_features!r}")
            self._create(zarr, int(n_features), label_names, chunk_rows)
        self._group.attrs["complete"] = False
        self._buf: list[np.ndarray] = []
        self._meta_buf: dict[str, list[np.ndarray]] = {k: [] for k in self._meta}
        self._buf_rows = 0
        # bags appended but not committed: (end row, label row or None, name or None)
        self._pending: list[tuple[int, np.ndarray | None, str | None]] = []
        self._rows_appended = self._rows_written

    # -------------------------------------------------------------- create / resume
    def _create(self, zarr: Any, d: int, label_names: Sequence[str] | None,
                chunk_rows: int | None) -> None:
        self.n_features = d
        self.chunk_rows = int(chunk_rows) if chunk_rows else _default_chunk_rows(d)
        if self.chunk_rows < 1:
            raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows!r}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        g = zarr.open_group(str(self.path), mode="w")
        g.attrs.update({"format": FORMAT, "format_version": FORMAT_VERSION, "n_features": d,
                        "label_names": None, "n_labels": None, "meta": {}, "bag_names": False,
                        "chunk_rows": self.chunk_rows, "complete": False})
        g.create_array("instances", shape=(0, d), chunks=(self.chunk_rows, d),
                       dtype=_FEATURE_DTYPE, fill_value=0.0)
        off = g.create_array("offsets", shape=(1,), chunks=(_INDEX_CHUNK,), dtype="int64",
                             fill_value=-1)
        off[0] = 0
        self._group = g
        self._meta: dict[str, dict[str, Any]] = {}
        self._labels_k: int | None = None
        self._label_names: list[str] | None = None
        self._has_names: bool | None = None  # decided by the first bag
        self._n_bags = 0
        self._rows_written = 0
        if label_names is not None:
            self._init_labels([str(x) for x in label_names], len(label_names))

    def _init_labels(self, names: list[str] | None, k: int) -> None:
        if k < 1:
            raise ValueError("label_names must name at least one label")
        if names is not None and len(set(names)) != len(names):
            raise ValueError(f"label names must be unique, got {names}")
        self._group.create_array("labels", shape=(0, k), chunks=(_INDEX_CHUNK, k),
                                 dtype="int8", fill_value=-1)
        self._group.attrs.update({"label_names": names, "n_labels": k})
        self._labels_k, self._label_names = k, names

    def _resume(self, n_features: int | None, label_names: Sequence[str] | None) -> None:
        g, a = self._group, dict(self._group.attrs)
        self.n_features = int(a["n_features"])
        self.chunk_rows = int(a["chunk_rows"])
        if n_features is not None and int(n_features) != self.n_features:
            raise StoreError(f"bag store {self.path} holds {self.n_features} features per "
                             f"instance, not {n_features}", self.path)
        self._labels_k = a.get("n_labels")
        self._label_names = a.get("label_names")
        if label_names is not None:
            given = [str(x) for x in label_names]
            if self._labels_k is not None and self._label_names not in (None, given):
                raise StoreError(f"bag store {self.path} has labels {self._label_names}, "
                                 f"not {given}", self.path)
        self._meta = dict(a.get("meta") or {})
        inst, off = g["instances"], g["offsets"]
        n = _committed(off[:], inst.shape[0], self.path)
        self._n_bags = n
        self._rows_written = int(off[n]) if n else 0
        # bag names exist if their array does; with no bag committed the next bag decides
        self._has_names = True if "bag_names" in g else (False if n else None)
        if self._labels_k is None and label_names is not None and n == 0:
            self._init_labels([str(x) for x in label_names], len(label_names))
        # drop whatever an interrupted session wrote past the last complete bag
        off.resize((n + 1,))
        inst.resize((self._rows_written, self.n_features))
        for key in self._meta:
            m = g[f"meta/{key}"]
            m.resize((self._rows_written, *m.shape[1:]))
        if "labels" in g:
            g["labels"].resize((n, g["labels"].shape[1]))
        if "bag_names" in g:
            g["bag_names"].resize((n,))

    # -------------------------------------------------------------- appending
    @property
    def n_bags(self) -> int:
        """Bags appended so far (committed or still buffered)."""
        return self._n_bags + len(self._pending)

    @property
    def n_committed(self) -> int:
        """Bags whose offsets are on disk (what a reader or a resumed writer sees)."""
        return self._n_bags

    def append(self, instances: Any, label_row: Any = None,
               meta: Mapping[str, Any] | None = None, name: Any = None) -> None:
        """Append one bag (an (n, d) array), or a batch of bags (a :class:`Bags`).

        For one bag: ``label_row`` is its K labels (1 / 0 / -1), ``meta`` per-instance arrays
        with n rows, ``name`` a string. For a ``Bags``: ``label_row`` is the (n_bags, K)
        label matrix, ``meta`` defaults to ``bags.instance_meta`` and ``name`` is a sequence
        of n_bags names.
        """
        if self._closed:
            raise ValueError(f"bag store writer for {self.path} is closed")
        if isinstance(instances, Bags):
            bags = instances
            X, sizes = bags.instances, bags.sizes
            meta = bags.instance_meta if meta is None else meta
            labels = None if label_row is None else np.asarray(label_row)
            if labels is not None and (labels.ndim != 2 or labels.shape[0] != bags.n_bags):
                raise ValueError(f"labels for a batch of {bags.n_bags} bags must be a "
                                 f"({bags.n_bags}, K) matrix, got shape {labels.shape}")
            names = None if name is None else [str(x) for x in name]
            if names is not None and len(names) != bags.n_bags:
                raise ValueError(f"{len(names)} names for {bags.n_bags} bags")
        else:
            X = np.asarray(instances)
            if X.ndim == 1:
                X = X[None, :]
            sizes = np.array([X.shape[0]], dtype=np.int64)
            labels = None if label_row is None else np.asarray(label_row).reshape(1, -1)
            names = None if name is None else [str(name)]
        self._add(X, sizes, labels, dict(meta or {}), names)

    def _add(self, X: np.ndarray, sizes: np.ndarray, labels: np.ndarray | None,
             meta: dict[str, Any], names: list[str] | None) -> None:
        first = self.n_bags
        where = f"bag {first}" if len(sizes) == 1 else f"bags {first}..{first + len(sizes) - 1}"
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"{where}: expected an (n, {self.n_features}) array of instances, "
                             f"got shape {X.shape} (store {self.path})")
        if np.any(sizes == 0):
            raise ValueError(f"bag {first + int(np.flatnonzero(sizes == 0)[0])} is empty "
                             "(0 instances)")
        X = np.asarray(X, dtype=_FEATURE_DTYPE)
        finite = np.isfinite(X).all(axis=1)
        if not finite.all():
            row = int(np.flatnonzero(~finite)[0])
            bag = first + int(np.searchsorted(np.cumsum(sizes), row, side="right"))
            raise ValueError(f"bag {bag} contains NaN or inf")
        self._check_fields(where, X.shape[0], labels, meta, names)
        if labels is not None:
            labels = labels.astype(np.int8)
        # buffer
        self._buf.append(X)
        for k in self._meta:
            self._meta_buf[k].append(np.asarray(meta[k], dtype=np.dtype(self._meta[k]["dtype"])))
        ends = self._rows_appended + np.cumsum(sizes)
        for j, end in enumerate(ends):
            self._pending.append((int(end), None if labels is None else labels[j],
                                  None if names is None else names[j]))
        self._rows_appended = int(ends[-1])
        self._buf_rows += X.shape[0]
        if self._rows_appended - self._rows_written >= self.chunk_rows:
            self._write(final=False)

    def _check_fields(self, where: str, n_rows: int, labels: np.ndarray | None,
                      meta: dict[str, Any], names: list[str] | None) -> None:
        fresh = self.n_bags == 0
        # labels
        if labels is not None:
            if self._labels_k is None:
                if not fresh:
                    raise ValueError(f"{where}: this store was started without labels "
                                     f"({self.path}); give label_row for every bag or none")
                self._init_labels(None, labels.shape[1])
            if labels.shape[1] != self._labels_k:
                raise ValueError(f"{where}: {labels.shape[1]} labels, the store has "
                                 f"{self._labels_k}")
            ok = np.isin(labels, (-1, 0, 1))
            if not ok.all():
                raise ValueError(f"{where}: labels must be 1, 0 or -1 (unobserved), got "
                                 f"{labels[~ok][0]!r}")
        elif self._labels_k is not None:
            raise ValueError(f"{where}: the store {self.path} has labels; give label_row")
        # metadata
        if fresh and not self._meta and meta:
            spec = _meta_spec(meta)
            for key, s in spec.items():
                if "/" in key or not key:
                    raise ValueError(f"metadata key {key!r} is not a valid array name")
                self._group.create_array(
                    f"meta/{key}", shape=(0, *s["shape"]),
                    chunks=(self.chunk_rows, *s["shape"]), dtype=np.dtype(s["dtype"]),
                    fill_value=0)
            self._meta = spec
            self._meta_buf = {k: [] for k in spec}
            self._group.attrs["meta"] = spec
        if set(meta) != set(self._meta):
            raise ValueError(f"{where}: metadata keys {sorted(meta)} differ from the store's "
                             f"{sorted(self._meta)} ({self.path})")
        for key, s in self._meta.items():
            v = np.asarray(meta[key])
            if v.shape != (n_rows, *s["shape"]):
                raise ValueError(f"{where}: meta[{key!r}] has shape {v.shape}, expected "
                                 f"{(n_rows, *s['shape'])}")
        # names
        if self._has_names is None:
            self._has_names = names is not None
            if self._has_names:
                self._group.create_array("bag_names", shape=(0,), chunks=(_INDEX_CHUNK,),
                                         dtype=str)
            self._group.attrs["bag_names"] = self._has_names
        if (names is not None) != self._has_names:
            raise ValueError(f"{where}: " + ("give a name for every bag (the store has "
                                              "bag names)" if self._has_names else
                                              "the store was started without bag names"))

    def _write(self, *, final: bool) -> None:
        """Write buffered rows (whole chunks, or everything when ``final``), then commit the
        bags whose rows are all on disk: labels and names first, offsets last."""
        end = self._rows_appended if final else (
            self._rows_appended // self.chunk_rows) * self.chunk_rows
        g = self._group
        if end > self._rows_written:
            n_new = end - self._rows_written
            block = np.concatenate(self._buf) if len(self._buf) > 1 else self._buf[0]
            inst = g["instances"]
            inst.resize((end, self.n_features))
            inst[self._rows_written:end] = block[:n_new]
            rest = block[n_new:]
            self._buf = [rest] if rest.shape[0] else []
            for key, parts in self._meta_buf.items():
                mb = np.concatenate(parts) if len(parts) > 1 else parts[0]
                arr = g[f"meta/{key}"]
                arr.resize((end, *arr.shape[1:]))
                arr[self._rows_written:end] = mb[:n_new]
                self._meta_buf[key] = [mb[n_new:]] if mb.shape[0] > n_new else []
            self._rows_written = end
            self._buf_rows = rest.shape[0]
        k = 0
        while k < len(self._pending) and self._pending[k][0] <= self._rows_written:
            k += 1
        if k == 0:
            return
        done, self._pending = self._pending[:k], self._pending[k:]
        n0, n1 = self._n_bags, self._n_bags + k
        if self._labels_k is not None:
            lab = g["labels"]
            lab.resize((n1, self._labels_k))
            lab[n0:n1] = np.stack([d[1] for d in done])
        if self._has_names:
            nm = g["bag_names"]
            nm.resize((n1,))
            nm[n0:n1] = np.array([d[2] for d in done], dtype=str)
        off = g["offsets"]
        off.resize((n1 + 1,))
        off[n0 + 1:n1 + 1] = np.array([d[0] for d in done], dtype=np.int64)  # the commit
        self._n_bags = n1

    def flush(self) -> None:
        """Write every buffered bag and commit it (may write a partial chunk)."""
        if not self._closed and self._pending:
            self._write(final=True)

    def close(self) -> None:
        """Commit every appended bag and mark the store complete."""
        if self._closed:
            return
        self.flush()
        self._group.attrs["complete"] = True
        self._closed = True

    def __enter__(self) -> BagStoreWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()  # bags appended before an exception are whole: keep them

    def __repr__(self) -> str:
        return (f"BagStoreWriter({str(self.path)!r}, n_bags={self.n_bags}, "
                f"n_committed={self.n_committed}, n_features={self.n_features})")
