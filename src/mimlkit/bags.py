"""``Bags``: the one ragged container every learner uses.

CSR-like layout: ``instances`` (n_instances x d) stacked bag after bag, and ``offsets``
(n_bags + 1, int64) so that bag ``i`` is ``instances[offsets[i]:offsets[i + 1]]``.
Optional per-instance metadata (e.g. tile coordinates) travels with the instances.

A ``Bags`` is list-like (``len`` = number of bags, integer-array indexing returns a new
``Bags``), so scikit-learn's ``_safe_indexing`` and CV helpers split it by bag.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["Bags", "as_bags", "check_labels"]

_POOLS = ("mean", "max", "min", "sum")


class Bags:
    """Ragged collection of bags of instances.

    Parameters
    ----------
    instances : array (n_instances, d)
    offsets : int array (n_bags + 1,), non-decreasing, starts at 0, ends at n_instances.
    instance_meta : mapping name -> array with first dimension n_instances (optional).
    validate : check shapes, empty bags and non-finite values (raises ``ValueError``
        naming the offending bag).
    """

    __slots__ = ("instances", "offsets", "instance_meta")

    def __init__(
        self,
        instances: np.ndarray,
        offsets: np.ndarray,
        instance_meta: Mapping[str, np.ndarray] | None = None,
        *,
        validate: bool = True,
    ) -> None:
        instances = np.asarray(instances)
        offsets = np.asarray(offsets, dtype=np.int64)
        if validate:
            _validate(instances, offsets)
        self.instances = instances
        self.offsets = offsets
        meta = {k: np.asarray(v) for k, v in (instance_meta or {}).items()}
        for k, v in meta.items():
            if v.shape[:1] != (instances.shape[0],):
                raise ValueError(
                    f"instance_meta[{k!r}] has {v.shape[0] if v.ndim else 0} rows, "
                    f"expected one per instance ({instances.shape[0]})"
                )
        self.instance_meta = meta

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_list(
        cls,
        bags: Sequence[np.ndarray],
        dtype: Any = np.float32,
        instance_meta: Mapping[str, Sequence[np.ndarray]] | None = None,
    ) -> Bags:
        """Build from a list of 2-D arrays (1-D arrays are read as one-instance bags)."""
        if len(bags) == 0:
            raise ValueError("no bags given: need at least one bag")
        arrays = []
        width = None
        for i, b in enumerate(bags):
            try:
                a = np.asarray(b, dtype=dtype)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"bag {i}: cannot convert to a numeric array ({exc})") from None
            if a.ndim == 1:
                a = a[None, :]
            if a.ndim != 2:
                raise ValueError(f"bag {i}: expected a 2-D array (instances x features), "
                                 f"got {a.ndim}-D")
            if a.shape[0] == 0:
                raise ValueError(f"bag {i} is empty (0 instances)")
            if width is None:
                width = a.shape[1]
            elif a.shape[1] != width:
                raise ValueError(
                    f"bag {i} has {a.shape[1]} features, bag 0 has {width}: widths must agree"
                )
            arrays.append(a)
        sizes = np.fromiter((a.shape[0] for a in arrays), dtype=np.int64, count=len(arrays))
        offsets = np.zeros(len(arrays) + 1, dtype=np.int64)
        np.cumsum(sizes, out=offsets[1:])
        instances = np.concatenate(arrays, axis=0)
        meta = None
        if instance_meta:
            meta = {k: np.concatenate([np.asarray(m) for m in v]) for k, v in instance_meta.items()}
        return cls(instances, offsets, meta)

    @classmethod
    def from_instances(
        cls,
        instances: np.ndarray,
        bag_ids: np.ndarray,
        instance_meta: Mapping[str, np.ndarray] | None = None,
    ) -> Bags:
        """Build from flat instances and a bag id per instance (ids 0..n-1, any order)."""
        instances = np.asarray(instances)
        bag_ids = np.asarray(bag_ids)
        if bag_ids.shape != (instances.shape[0],):
            raise ValueError("bag_ids must hold one id per instance")
        if bag_ids.size and bag_ids.min() < 0:
            k = int(np.argmin(bag_ids))
            raise ValueError(f"bag_ids must be >= 0; instance {k} has {bag_ids[k]}")
        order = np.argsort(bag_ids, kind="stable")
        ids = bag_ids[order]
        n_bags = int(ids[-1]) + 1 if ids.size else 0
        counts = np.bincount(ids, minlength=n_bags)
        if np.any(counts == 0):
            raise ValueError(f"bag {int(np.flatnonzero(counts == 0)[0])} is empty (0 instances)")
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        meta = {k: np.asarray(v)[order] for k, v in (instance_meta or {}).items()}
        return cls(instances[order], offsets, meta)

    @classmethod
    def from_array(cls, X: np.ndarray) -> Bags:
        """Each row of a 2-D array becomes a one-instance bag (plain multi-label data)."""
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"expected a 2-D array, got {X.ndim}-D")
        return cls(X, np.arange(X.shape[0] + 1, dtype=np.int64))

    # ------------------------------------------------------------------ properties
    @property
    def n_bags(self) -> int:
        return int(self.offsets.shape[0] - 1)

    @property
    def n_instances(self) -> int:
        return int(self.instances.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.instances.shape[1])

    @property
    def sizes(self) -> np.ndarray:
        """Number of instances per bag (int64, n_bags)."""
        return np.diff(self.offsets)

    @property
    def bag_index(self) -> np.ndarray:
        """Bag id of every instance (int64, n_instances)."""
        return np.repeat(np.arange(self.n_bags, dtype=np.int64), self.sizes)

    @property
    def dtype(self) -> np.dtype:
        return self.instances.dtype

    @property
    def shape(self) -> tuple[int, int]:
        """(n_bags, n_features), so ``bags.shape[0]`` works like an array's."""
        return (self.n_bags, self.n_features)

    # ------------------------------------------------------------------ list-like
    def __len__(self) -> int:
        return self.n_bags

    def __iter__(self) -> Iterator[np.ndarray]:
        for i in range(self.n_bags):
            yield self.instances[self.offsets[i] : self.offsets[i + 1]]

    def __getitem__(self, key: Any) -> np.ndarray | Bags:
        if isinstance(key, (int, np.integer)):
            i = int(key)
            n = self.n_bags
            if i < -n or i >= n:
                raise IndexError(f"bag index {i} out of range for {n} bags")
            i %= n
            return self.instances[self.offsets[i] : self.offsets[i + 1]]
        if isinstance(key, tuple) and len(key) == 2 and key[1] is Ellipsis:
            key = key[0]  # scikit-learn's _safe_indexing calls X[idx, ...] on objects with .shape
        if isinstance(key, slice):
            key = np.arange(self.n_bags)[key]
        idx = np.asarray(key)
        if idx.dtype == bool:
            if idx.shape != (self.n_bags,):
                raise IndexError(f"boolean mask of length {idx.shape} for {self.n_bags} bags")
            idx = np.flatnonzero(idx)
        if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
            raise IndexError("bags can be indexed by an int, a slice, an int array or a bool mask")
        return self.take(idx)

    def take(self, idx: np.ndarray) -> Bags:
        """New ``Bags`` with the bags ``idx`` (vectorised gather, no Python loop)."""
        idx = np.asarray(idx, dtype=np.int64)
        n = self.n_bags
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"bag index out of range for {n} bags")
        idx = idx % n if idx.size else idx
        starts = self.offsets[idx]
        sizes = self.offsets[idx + 1] - starts
        new_off = np.zeros(idx.size + 1, dtype=np.int64)
        np.cumsum(sizes, out=new_off[1:])
        # instance positions: start of each bag + 0..size-1
        rel = np.arange(new_off[-1], dtype=np.int64) - np.repeat(new_off[:-1], sizes)
        pos = np.repeat(starts, sizes) + rel
        meta = {k: v[pos] for k, v in self.instance_meta.items()}
        return Bags(self.instances[pos], new_off, meta, validate=False)

    def to_list(self) -> list[np.ndarray]:
        return list(iter(self))

    # ------------------------------------------------------------------ views
    def pool(self, how: str = "mean") -> np.ndarray:
        """Bag-level vectors (n_bags x d) by a vectorised segment reduction."""
        if how not in _POOLS:
            raise ValueError(f"pool must be one of {_POOLS}, got {how!r}")
        starts = self.offsets[:-1]
        X = self.instances
        if how == "max":
            return np.maximum.reduceat(X, starts, axis=0)
        if how == "min":
            return np.minimum.reduceat(X, starts, axis=0)
        acc = np.add.reduceat(X.astype(np.float64, copy=False), starts, axis=0)
        if how == "mean":
            acc /= self.sizes[:, None]
        return acc.astype(X.dtype if X.dtype.kind == "f" else np.float64, copy=False)

    def padded(
        self, max_len: int | None = None, fill: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """(array n_bags x L x d, bool mask n_bags x L); L = longest bag unless given.

        Bags longer than ``max_len`` are truncated (their first ``max_len`` instances).
        """
        sizes = self.sizes
        L = int(sizes.max()) if max_len is None else int(max_len)
        out = np.full((self.n_bags, L, self.n_features), fill, dtype=self.instances.dtype)
        starts = np.repeat(self.offsets[:-1], sizes)
        pos_in_bag = np.arange(self.n_instances, dtype=np.int64) - starts
        keep = pos_in_bag < L
        out[self.bag_index[keep], pos_in_bag[keep]] = self.instances[keep]
        mask = np.arange(L)[None, :] < np.minimum(sizes, L)[:, None]
        return out, mask

    def astype(self, dtype: Any) -> Bags:
        return Bags(self.instances.astype(dtype, copy=False), self.offsets, self.instance_meta,
                    validate=False)

    def with_instances(self, instances: np.ndarray) -> Bags:
        """Same bag structure and metadata, new instance matrix (e.g. transformed features)."""
        instances = np.asarray(instances)
        if instances.shape[0] != self.n_instances:
            raise ValueError(f"expected {self.n_instances} instance rows, got {instances.shape[0]}")
        return Bags(instances, self.offsets, self.instance_meta, validate=False)

    def __repr__(self) -> str:
        meta = f", meta={sorted(self.instance_meta)}" if self.instance_meta else ""
        return (f"Bags(n_bags={self.n_bags}, n_instances={self.n_instances}, "
                f"n_features={self.n_features}, dtype={self.dtype}{meta})")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Bags):
            return NotImplemented
        return (np.array_equal(self.offsets, other.offsets)
                and np.array_equal(self.instances, other.instances))

    __hash__ = None  # type: ignore[assignment]

    def __getstate__(self) -> dict:
        return {"instances": self.instances, "offsets": self.offsets, "meta": self.instance_meta}

    def __setstate__(self, state: dict) -> None:
        self.instances = state["instances"]
        self.offsets = state["offsets"]
        self.instance_meta = state["meta"]


def _validate(instances: np.ndarray, offsets: np.ndarray) -> None:
    if instances.ndim != 2:
        raise ValueError(f"instances must be 2-D (n_instances x d), got shape {instances.shape}")
    if instances.dtype.kind not in "fiub":
        raise ValueError(f"instances must be numeric, got dtype {instances.dtype}")
    if offsets.ndim == 1 and offsets.size == 1:
        raise ValueError("no bags given: need at least one bag")
    if offsets.ndim != 1 or offsets.size < 2:
        raise ValueError("offsets must be 1-D with n_bags + 1 >= 2 entries")
    if instances.shape[1] == 0:
        raise ValueError(f"instances have 0 feature(s) (shape={instances.shape}) while a "
                         "minimum of 1 is required.")
    if offsets[0] != 0 or offsets[-1] != instances.shape[0]:
        raise ValueError(
            f"offsets must start at 0 and end at n_instances={instances.shape[0]}, "
            f"got {offsets[0]}..{offsets[-1]}"
        )
    sizes = np.diff(offsets)
    if np.any(sizes < 0):
        raise ValueError(f"offsets decrease at bag {int(np.flatnonzero(sizes < 0)[0])}")
    if np.any(sizes == 0):
        raise ValueError(f"bag {int(np.flatnonzero(sizes == 0)[0])} is empty (0 instances)")
    if instances.dtype.kind == "f":
        finite_rows = np.isfinite(instances).all(axis=1)
        if not finite_rows.all():
            row = int(np.flatnonzero(~finite_rows)[0])
            bag = int(np.searchsorted(offsets, row, side="right") - 1)
            raise ValueError(
                f"bag {bag} contains NaN or inf (instance {row - int(offsets[bag])} of that bag)"
            )


def as_bags(X: Any, dtype: Any = np.float32) -> Bags:
    """Coerce learner input to ``Bags``.

    Accepts a ``Bags`` (returned as is), a list/tuple of 2-D arrays (one per bag), a 3-D
    array (n_bags x n_instances x d, equal-size bags) or a 2-D array (each row a
    one-instance bag).
    """
    if isinstance(X, Bags):
        return X
    if hasattr(X, "bags") and isinstance(X.bags, Bags):  # an MIMLDataset
        return X.bags
    if isinstance(X, np.ndarray):
        if X.dtype == object:
            return Bags.from_list(list(X), dtype=dtype)
        if X.ndim == 3:
            n, m, d = X.shape
            if n and not m:
                raise ValueError("bag 0 is empty (0 instances)")
            return Bags(np.ascontiguousarray(X.reshape(n * m, d), dtype=dtype),
                        np.arange(0, n * m + 1, m, dtype=np.int64))
        if X.ndim == 2:
            return Bags.from_array(np.asarray(X, dtype=dtype))
        raise ValueError(f"cannot read a {X.ndim}-D array as bags")
    if isinstance(X, (list, tuple)):
        return Bags.from_list(X, dtype=dtype)
    if hasattr(X, "toarray"):  # scipy sparse: rows are one-instance bags
        return Bags.from_array(np.asarray(X.toarray(), dtype=dtype))
    raise TypeError(
        f"cannot use {type(X).__name__} as bags: give a Bags, a list of 2-D arrays, "
        "a 3-D array or a 2-D array"
    )


def check_labels(Y: Any, n_bags: int | None = None, *, allow_unobserved: bool = True) -> np.ndarray:
    """Validate a label matrix: int8 n x K with 1 = present, 0 = absent, -1 = unobserved.

    A 1-D 0/1 vector is read as one label (K = 1). Raises ``ValueError`` naming the first
    bad row.
    """
    if hasattr(Y, "toarray"):
        Y = Y.toarray()
    Y = np.asarray(Y)
    if Y.ndim == 1:
        Y = Y[:, None]
    if Y.ndim != 2:
        raise ValueError(f"labels must be a 2-D array (n_bags x n_labels), got {Y.ndim}-D")
    if n_bags is not None and Y.shape[0] != n_bags:
        raise ValueError(f"labels have {Y.shape[0]} rows but there are {n_bags} bags")
    if Y.shape[1] == 0:
        raise ValueError("labels have no label columns (n_bags x 0)")
    if Y.dtype.kind == "b":
        return Y.astype(np.int8)
    if Y.dtype.kind == "f":
        if not np.all(np.isfinite(Y)) or np.any(Y != np.round(Y)):
            bad = np.flatnonzero(~(np.isfinite(Y) & (Y == np.round(Y))).all(axis=1))[0]
            raise ValueError(f"labels of bag {bad} are not integers in {{-1, 0, 1}}")
    allowed = (-1, 0, 1) if allow_unobserved else (0, 1)
    ok = np.isin(Y, allowed)
    if not ok.all():
        bad = int(np.flatnonzero(~ok.all(axis=1))[0])
        raise ValueError(
            f"labels of bag {bad} hold {Y[bad][~ok[bad]][0].item()!r}; "
            f"allowed values are {allowed}"
            + ("" if allow_unobserved else " (-1 = unobserved is not allowed here)")
        )
    return Y.astype(np.int8)
