"""Deep learners on a bag store (:mod:`mimlkit.datasets.store`), read lazily.

* :class:`StoreBagBatches`: the map-style dataset of the attention-MIL learners
  (:class:`~mimlkit.deep.mil_base._BagBatches`: each item is one padded batch of bags of
  similar length) whose item reads just that batch's bags from the store, scales them and
  pads them. The batching, instance subsampling and dropout draws are the in-memory ones,
  so a store holding the same bags trains the same model (up to float rounding of the
  streamed scaling statistics). Memory: one batch of bags, never the store.
* :func:`store_batch_maker`: such datasets for one source, with the tile stride of
  TransMIL's grid positions computed once over the whole source (metadata only).
* :func:`iter_scaled_blocks`: consecutive runs of bags, scaled, for per-instance networks
  (DeepMIML's prediction).

Prediction batches hold at most ``STORE_READ_BYTES`` of instances
(:mod:`mimlkit.datasets.store_view`; the in-memory path allows 65,536 padded instances).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from mimlkit.bags import Bags
from mimlkit.datasets.store_view import block_bounds, block_rows
from mimlkit.deep.mil_base import _PREDICT_INSTANCES, _BagBatches, grid_positions, tile_step
from mimlkit.learners._bag_source import scale_inplace

__all__ = ["StoreBagBatches", "store_batch_maker", "source_tile_step", "iter_scaled_blocks",
           "padded_scaled"]


class StoreBagBatches(_BagBatches):
    """``_BagBatches`` over a lazy bag source: ``__getitem__`` reads the batch's bags."""

    def __init__(self, source: Any, offset: np.ndarray, factor: np.ndarray,
                 step: np.ndarray | None, use_positions: bool, batch_size: int, seed: int,
                 *, train: bool, max_instances: int | None = None,
                 instance_dropout: float = 0.0) -> None:
        self.source = source
        self.offset, self.factor = offset, factor
        self.step, self.use_positions = step, bool(use_positions)
        cap = min(_PREDICT_INSTANCES, block_rows(source.n_features))
        super().__init__(None, source.offsets, None, batch_size, seed, train=train,
                         max_instances=max_instances, instance_dropout=instance_dropout,
                         predict_instances=cap)

    def _inputs(self, b: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None, np.ndarray]:
        blk = self.source.take(b)  # the bags b, in that order
        x = scale_inplace(blk.instances, self.offset, self.factor, np.float32)
        pos = torch.from_numpy(grid_positions(blk, self.step)) if self.use_positions \
            else None
        return torch.from_numpy(np.ascontiguousarray(x)), pos, blk.offsets[:-1]


def source_tile_step(source: Any) -> np.ndarray | None:
    """The tile stride of all bags of ``source`` (``grid_positions``' ``step``), read from
    the ``coords`` metadata block by block (no instances); None without coordinates."""
    if "coords" not in (getattr(source, "meta_names", None) or []):
        return None
    step = None
    rows = max(1, block_rows(2))
    for s, e in block_bounds(source.sizes, rows):
        meta = source.slice_meta(s, e)
        sizes = source.sizes[s:e]
        off = np.zeros(sizes.size + 1, dtype=np.int64)
        np.cumsum(sizes, out=off[1:])
        blk = Bags(np.empty((int(off[-1]), 0), np.float32), off, {"coords": meta["coords"]},
                   validate=False)
        st = tile_step(blk)
        if st is None:  # unusable coordinates somewhere: row-major layout, as in memory
            return None
        step = st if step is None else np.minimum(step, st)
    return step


def store_batch_maker(est: Any, source: Any):
    """``make(batch_size, seed, *, train, **kw)`` building :class:`StoreBagBatches` over
    ``source`` for the fitted scaling of ``est`` (a ``BagMILBase``)."""
    use_pos = bool(est._uses_positions)
    step = source_tile_step(source) if use_pos else None

    def make(batch_size: int, seed: int, *, train: bool, **kw: Any) -> StoreBagBatches:
        return StoreBagBatches(source, est.scale_offset_, est.scale_factor_, step, use_pos,
                               batch_size, seed, train=train, **kw)

    return make


def padded_scaled(bags: Bags, offset: np.ndarray, factor: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``bags`` scaled (in place) and padded: the ``Bags.padded()`` of the scaled bags,
    without its intermediate copy of every instance."""
    X = scale_inplace(bags.instances, offset, factor, np.float32)
    sizes = bags.sizes
    L = int(sizes.max())
    out = np.zeros((sizes.size, L, X.shape[1]), dtype=X.dtype)
    for i, (a, b) in enumerate(zip(bags.offsets[:-1], bags.offsets[1:], strict=True)):
        out[i, :b - a] = X[a:b]
    return out, np.arange(L)[None, :] < sizes[:, None]


def iter_scaled_blocks(source: Any, offset: np.ndarray, factor: np.ndarray,
                       dtype: Any = np.float32) -> Iterator[tuple[int, int, Bags]]:
    """``(start, stop, Bags)`` runs of at most ``STORE_READ_BYTES`` of instances, scaled."""
    for s, e in block_bounds(source.sizes, block_rows(source.n_features)):
        blk = source.slice(s, e)
        blk = blk.with_instances(scale_inplace(blk.instances, offset, factor, dtype))
        yield s, e, blk
        del blk
