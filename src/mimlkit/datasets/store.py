"""On-disk bag store: chunked, append-only, resumable; read lazily block by block.

A store holds the same CSR-like layout as :class:`mimlkit.bags.Bags`, on disk, so feature
sets larger than memory (e.g. CNN features of every tile of thousands of whole-slide images)
can be written once and streamed into learners (``fit_from_store``) without ever being
loaded whole.

Why zarr and not HDF5: zarr is a pure-Python wheel (``pip install zarr``; no h5py / libhdf5 C
dependency to build or match), arrays grow by chunked appends with no file-level rewrite,
every chunk is a separate, atomically written file, so concurrent writers can fill separate
chunks (the format allows it; :class:`BagStoreWriter` itself is one writer per store) and a
crash can never leave a half-written chunk behind; a reader sees whole chunks or none.
HDF5 (h5py) is only used to *import* CLAM-style feature files (``import_clam``).

Layout (a zarr v3 group; ``attrs`` hold ``format`` = ``"mimlkit-bag-store"``,
``format_version``, ``n_features``, ``label_names``, ``meta`` (name -> dtype, trailing shape),
``chunk_rows`` and ``complete`` = the writer was closed)::

    instances   float32 (n_instances, d), chunked by ``chunk_rows`` rows
    offsets     int64 (n_bags + 1,); bag i = instances[offsets[i]:offsets[i + 1]]
    labels      int8 (n_bags, K), 1 / 0 / -1 = unobserved           (optional)
    bag_names   str (n_bags,)                                         (optional)
    meta/<key>  per-instance metadata, e.g. coords int64 (n, 2), level (optional)

Commit rule: a bag exists only once its entry in ``offsets`` is written, and the writer
writes a bag's instances, metadata, label row and name *before* its offset. Offsets beyond
the committed ones hold the fill value -1, so an interrupted write leaves a valid prefix:
reopening with :class:`BagStoreWriter` continues after the last complete bag (rows written
after it are overwritten), and :func:`open_store` reads exactly the committed bags.

The writer buffers rows in memory and writes whole chunks (a bag may straddle two chunks);
bags are committed whenever a chunk fills, on :meth:`BagStoreWriter.flush` and on
:meth:`BagStoreWriter.close`. A process killed without ``close`` loses at most the bags
appended since the last chunk was written. One writer per store at a time.

Example::

    with BagStoreWriter("feats.zarr", n_features=1024, label_names=["tumour", "normal"]) as w:
        for slide in slides:
            w.append(features(slide), label_row=labels(slide), meta={"coords": coords(slide)},
                     name=slide.id)
    store = open_store("feats.zarr")
    for bags, Y in store.iter_blocks(256):
        ...
    fit_from_store(BroadLearningSystem(), store, block_bags=256)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mimlkit._extras import require
from mimlkit.bags import Bags

__all__ = ["BagStoreWriter", "StoredBags", "StoreError", "open_store", "fit_from_store",
           "import_clam", "FORMAT", "FORMAT_VERSION"]

FORMAT = "mimlkit-bag-store"
FORMAT_VERSION = 1
_CHUNK_BYTES = 4 << 20  # default instance chunk: about 4 MiB
_INDEX_CHUNK = 16384  # entries per chunk of offsets / labels / bag_names
_FEATURE_DTYPE = np.dtype(np.float32)


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


# ----------------------------------------------------------------------------- writer
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


# ----------------------------------------------------------------------------- reader
class StoredBags:
    """Read side of a bag store (from :func:`open_store`); instances stay on disk.

    ``offsets``, ``sizes``, ``labels`` and ``bag_names`` are small and held in memory;
    ``bag(i)``, ``take(idx)`` and ``iter_blocks(block_bags)`` read only the rows they need.
    """

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
        return self.n_instances * self.n_features * _FEATURE_DTYPE.itemsize

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
        parts = [self.slice(int(r[0]), int(r[-1]) + 1) for r in np.split(idx, breaks)]
        if len(parts) == 1:
            return parts[0]
        sizes = np.concatenate([p.sizes for p in parts])
        offsets = np.zeros(sizes.size + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        meta = {k: np.concatenate([p.instance_meta[k] for p in parts]) for k in self._meta}
        return Bags(np.concatenate([p.instances for p in parts]), offsets, meta, validate=False)

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


# ----------------------------------------------------------------------------- training
def fit_from_store(estimator: Any, store: StoredBags | str | os.PathLike, block_bags: int = 256,
                   *, calibrate_bags: int | None = None) -> Any:
    """Train ``estimator`` on a labelled store block by block, never loading it whole.

    Needs an estimator with ``partial_fit(X, Y)``. If it also has ``calibrate(X, Y)`` (the
    broad learners: BLS freezes its random node maps and scalers there), it is first
    calibrated on ``calibrate_bags`` bags (default ``block_bags``) spread evenly over the
    store, which also resets any earlier fit; then every block of ``block_bags`` bags goes
    through ``partial_fit``. For BLS the result equals the in-memory
    ``calibrate(sample) + partial_fit(all bags)``, and with ``calibrate_bags >= n_bags`` it
    equals ``fit(..., solver='primal')`` with ``threshold_mode='fixed'`` (up to float
    rounding): the data-chosen thresholds of ``fit`` need held-out refits, which streaming
    skips; the learner's own threshold is kept.

    Returns the estimator.
    """
    if not isinstance(store, StoredBags):
        store = open_store(store)
    name = type(estimator).__name__
    if not callable(getattr(estimator, "partial_fit", None)):
        gb = store.nbytes / 2**30
        raise TypeError(
            f"{name} has no partial_fit, so it cannot be trained from a store block by block. "
            f"For a store that fits in memory ({store.path}: {gb:.2f} GiB of instances) load "
            "it whole: estimator.fit(store.to_bags(), store.labels)")
    if store.labels is None:
        raise StoreError(f"bag store {store.path} has no labels to train on", store.path)
    block_bags = int(block_bags)
    if block_bags < 1:
        raise ValueError(f"block_bags must be >= 1, got {block_bags}")
    if callable(getattr(estimator, "calibrate", None)):
        n_cal = min(store.n_bags, int(calibrate_bags or block_bags))
        idx = np.unique(np.linspace(0, store.n_bags - 1, n_cal).round().astype(np.int64))
        estimator.calibrate(store.take(idx), store.labels[idx])
    for bags, Y in store.iter_blocks(block_bags):
        estimator.partial_fit(bags, Y)
        del bags, Y  # free this block before the next one is read
    # the T-criterion rule of a fixed-threshold fit (on unless a bag has no label)
    tc = getattr(estimator, "t_criterion", None)
    if tc is not None and callable(getattr(estimator, "_set_fixed_t_criterion", None)):
        estimator._set_fixed_t_criterion(store.labels, tc)
    return estimator


# ----------------------------------------------------------------------------- CLAM import
_SLIDE_EXTS = (".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".vms", ".vmu", ".bif",
               ".h5", ".pt")


def _clam_labels(labels_csv: str | os.PathLike, slide_column: str,
                 label_columns: Sequence[str] | None) -> tuple[list[str], np.ndarray, list[str]]:
    """(slide ids, Y int8, label names) from a CSV with a slide id column and either 0/1
    label columns (multi-label; empty = -1 unobserved) or one categorical ``label`` column
    (CLAM's format: one-hot over the sorted class names)."""
    import pandas as pd

    df = pd.read_csv(labels_csv, dtype={slide_column: str})
    if slide_column not in df.columns:
        raise ValueError(f"{labels_csv}: no {slide_column!r} column (columns: "
                         f"{', '.join(map(str, df.columns))})")
    ids = [str(s).strip() for s in df[slide_column]]
    if len(set(ids)) != len(ids):
        dup = next(s for s in ids if ids.count(s) > 1)
        raise ValueError(f"{labels_csv}: slide {dup!r} is listed more than once")
    cols = list(label_columns) if label_columns is not None else [
        c for c in df.columns if c not in (slide_column, "case_id")]
    missing = [c for c in cols if c not in df.columns]
    if missing or not cols:
        raise ValueError(f"{labels_csv}: label columns {missing or '(none)'} not found")
    block = df[cols]
    numeric = all(pd.api.types.is_numeric_dtype(block[c]) for c in cols)
    if numeric and np.isin(block.fillna(-1).to_numpy(), (-1, 0, 1)).all():
        Y = block.fillna(-1).to_numpy().astype(np.int8)
        return ids, Y, [str(c) for c in cols]
    if len(cols) == 1:
        values = block[cols[0]]
        if values.isna().any():
            bad = ids[int(np.flatnonzero(values.isna().to_numpy())[0])]
            raise ValueError(f"{labels_csv}: slide {bad!r} has no {cols[0]!r}")
        classes = sorted({str(v) for v in values})
        Y = (np.array([str(v) for v in values])[:, None] == np.array(classes)[None, :])
        return ids, Y.astype(np.int8), classes
    raise ValueError(f"{labels_csv}: label columns must hold 1 / 0 (empty = unobserved), or "
                     "give one categorical label column")


def _clam_files(folder_or_files: str | os.PathLike | Iterable[str | os.PathLike]
                ) -> dict[str, Path]:
    if isinstance(folder_or_files, (str, os.PathLike)):
        root = Path(folder_or_files)
        if not root.is_dir():
            raise FileNotFoundError(f"no feature folder at {root}")
        if (root / "h5_files").is_dir():  # CLAM's extract_features output layout
            root = root / "h5_files"
        files = sorted(root.glob("*.h5"))
        if not files:
            raise FileNotFoundError(f"no .h5 feature files in {root}")
    else:
        files = [Path(p) for p in folder_or_files]
    by_id: dict[str, Path] = {}
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"feature file {f} does not exist")
        by_id[f.stem] = f
    return by_id


def import_clam(folder_or_files: str | os.PathLike | Iterable[str | os.PathLike],
                labels_csv: str | os.PathLike, out_store: str | os.PathLike, *,
                slide_column: str = "slide_id", label_columns: Sequence[str] | None = None,
                missing: str = "error", chunk_rows: int | None = None) -> StoredBags:
    """Import CLAM-style features (one HDF5 per slide, datasets ``features`` (n x d) and
    ``coords`` (n x 2)) and a labels CSV into a bag store; one bag per CSV row, in CSV order.

    ``folder_or_files``: a folder of ``<slide_id>.h5`` files (its ``h5_files/`` subfolder if
    present, CLAM's layout) or a list of files. ``labels_csv``: a ``slide_id`` column plus
    either 0/1 label columns (empty cells = -1, unobserved) or CLAM's single categorical
    ``label`` column (one-hot over the sorted classes); ``case_id`` is ignored. Slide ids
    match file stems (a slide extension such as ``.svs`` in the CSV is dropped). ``missing``:
    ``"error"`` (default) or ``"skip"`` slides without a feature file. Bags get the slide ids
    as names and ``coords`` as per-instance metadata (when the files have it).

    An existing ``out_store`` is resumed: slides already committed (checked by name) are
    skipped, so an interrupted import continues where it stopped. Needs the ``store`` extra
    (zarr, h5py).
    """
    h5py = require("store", "h5py", "import_clam (reading CLAM HDF5 features)")
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', got {missing!r}")
    ids, Y, label_names = _clam_labels(labels_csv, slide_column, label_columns)
    files = _clam_files(folder_or_files)

    def find(sid: str) -> Path | None:
        if sid in files:
            return files[sid]
        stem, ext = os.path.splitext(sid)
        return files.get(stem) if ext.lower() in _SLIDE_EXTS else None

    todo, lost = [], []
    for j, sid in enumerate(ids):
        f = find(sid)
        if f is None:
            lost.append(sid)
        else:
            todo.append((j, sid, f))
    if lost and missing == "error":
        more = f" and {len(lost) - 5} more" if len(lost) > 5 else ""
        raise FileNotFoundError(f"no feature file for {len(lost)} slide(s) of {labels_csv}: "
                                f"{', '.join(lost[:5])}{more} (missing='skip' leaves them out)")
    if not todo:
        raise FileNotFoundError(f"none of the slides in {labels_csv} has a feature file")

    def read(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
        try:
            with h5py.File(path, "r") as h:
                if "features" not in h:
                    raise StoreError(f"{path}: no 'features' dataset", path)
                X = np.asarray(h["features"][()], dtype=np.float32)
                coords = np.asarray(h["coords"][()]) if "coords" in h else None
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot read CLAM features from {path} ({type(exc).__name__}: "
                             f"{exc})", path) from exc
        X = X.reshape(-1, X.shape[-1]) if X.ndim > 2 else X  # (1, n, d) -> (n, d)
        if X.ndim != 2 or X.shape[0] == 0:
            raise StoreError(f"{path}: 'features' must be a non-empty (n, d) array, got "
                             f"shape {X.shape}", path)
        if coords is not None:
            coords = coords.reshape(-1, coords.shape[-1]).astype(np.int64)
            if coords.shape[0] != X.shape[0]:
                raise StoreError(f"{path}: {coords.shape[0]} coords for {X.shape[0]} "
                                 "feature rows", path)
        return X, coords

    out = Path(out_store)
    X0, c0 = read(todo[0][2])
    writer = BagStoreWriter(out, X0.shape[1], label_names, chunk_rows=chunk_rows)
    with writer:
        done = writer.n_committed
        if done:
            have = open_store(out).bag_names or []
            want = [sid for _, sid, _ in todo[:done]]
            if have != want:
                raise StoreError(f"bag store {out} holds slides that are not the first "
                                 f"{done} of {labels_csv}; import into a new store", out)
        for k, (j, sid, f) in enumerate(todo[done:], start=done):
            X, coords = (X0, c0) if k == 0 else read(f)
            if (coords is None) != (c0 is None):
                raise StoreError(f"{f}: 'coords' is {'missing' if coords is None else 'present'}"
                                 f" but {'present' if coords is None else 'missing'} in "
                                 f"{todo[0][2]}", f)
            if X.shape[1] != writer.n_features:
                raise StoreError(f"{f}: {X.shape[1]} features per tile, the store has "
                                 f"{writer.n_features}", f)
            writer.append(X, label_row=Y[j], meta=None if coords is None else {"coords": coords},
                          name=sid)
    return open_store(out)
