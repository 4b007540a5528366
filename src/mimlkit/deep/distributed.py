"""Distribution for the training loop (``mimlkit.deep.trainer``): the ``torchrun`` process
group (:class:`DistContext`) and the shared-seed, per-rank sharded :class:`EpochSampler`."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

__all__ = ["DistContext", "EpochSampler"]


# ----------------------------------------------------------------------------- distribution
class DistContext:
    """Process-group facts read from the ``torchrun`` environment variables."""

    def __init__(self, rank: int = 0, world_size: int = 1, local_rank: int = 0,
                 initialized_here: bool = False) -> None:
        self.rank = rank
        self.world_size = world_size
        self.local_rank = local_rank
        self.initialized_here = initialized_here

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls, mode: str | bool = "auto", device_type: str = "cpu") -> DistContext:
        """Initialise ``torch.distributed`` when launched by ``torchrun`` (``WORLD_SIZE`` > 1).

        ``mode``: ``"auto"`` (env detection), ``False``/``"off"`` (never), ``True`` (require).
        Backend: nccl on CUDA, gloo otherwise.
        """
        import torch.distributed as dist

        if mode in (False, "off", "none"):
            return cls()
        if dist.is_available() and dist.is_initialized():
            return cls(dist.get_rank(), dist.get_world_size(),
                       int(os.environ.get("LOCAL_RANK", dist.get_rank())))
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            if mode is True:
                raise ValueError("distributed=True but WORLD_SIZE is not > 1 "
                                 "(launch with torchrun --nproc-per-node N)")
            return cls()
        if not dist.is_available():
            raise RuntimeError("WORLD_SIZE > 1 but torch.distributed is not available")
        rank = int(os.environ["RANK"])
        local_rank = int(os.environ.get("LOCAL_RANK", rank))
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
        return cls(rank, world, local_rank, initialized_here=True)

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def all_gather_object(self, obj: Any) -> list[Any]:
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def mean(self, value: float) -> float:
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        if torch.distributed.get_backend() == "nccl":
            t = t.cuda()
        torch.distributed.all_reduce(t)
        return float(t.item()) / self.world_size

    def shutdown(self) -> None:
        if self.initialized_here and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
            self.initialized_here = False


# ----------------------------------------------------------------------------- sampler
class EpochSampler:
    """Rank-aware index sampler: one global schedule drawn from ``(seed, epoch)``, sharded.

    Every rank draws the same global index list (a permutation, the identity, or a weighted
    draw set by :meth:`set_weights`), pads it to a multiple of ``world_size`` by wrapping
    around (or truncates with ``drop_last``), and keeps ``global[rank::world_size]``.
    The state (weights, epoch) is part of the trainer's checkpoint.
    """

    def __init__(self, n: int, *, shuffle: bool = True, seed: int = 0, rank: int = 0,
                 world_size: int = 1, drop_last: bool = False) -> None:
        if n <= 0:
            raise ValueError("EpochSampler needs at least one sample")
        self.n = int(n)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        self.weights: np.ndarray | None = None
        self.num_samples: int | None = None
        self.replacement = True

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def set_weights(self, weights: Any | None, num_samples: int | None = None,
                    replacement: bool = True) -> None:
        """Weighted draws (e.g. the self-paced instance sampler); ``None`` restores plain
        shuffling. Weights must be non-negative with a positive sum."""
        if weights is None:
            self.weights, self.num_samples = None, None
            return
        w = np.asarray(weights.detach().cpu() if isinstance(weights, torch.Tensor) else weights,
                       dtype=np.float64).ravel()
        if w.shape[0] != self.n:
            raise ValueError(f"sampler weights have {w.shape[0]} entries, expected {self.n}")
        if not np.all(np.isfinite(w)) or (w < 0).any() or w.sum() <= 0:
            raise ValueError("sampler weights must be finite, non-negative, with a positive sum")
        self.weights = w
        self.num_samples = int(num_samples) if num_samples is not None else self.n
        self.replacement = bool(replacement)

    def global_indices(self, epoch: int | None = None) -> np.ndarray:
        epoch = self.epoch if epoch is None else int(epoch)
        rng = np.random.default_rng([self.seed % (2**32), epoch])
        if self.weights is not None:
            p = self.weights / self.weights.sum()
            idx = rng.choice(self.n, size=self.num_samples, replace=self.replacement, p=p)
        elif self.shuffle:
            idx = rng.permutation(self.n)
        else:
            idx = np.arange(self.n)
        return idx.astype(np.int64)

    def indices(self, epoch: int | None = None) -> np.ndarray:
        """This rank's shard of the epoch's global index list."""
        idx = self.global_indices(epoch)
        ws = self.world_size
        if ws > 1:
            if self.drop_last:
                idx = idx[: (len(idx) // ws) * ws]
            elif len(idx) % ws:
                pad = ws - len(idx) % ws
                idx = np.concatenate([idx, np.resize(idx, pad)])
            idx = idx[self.rank::ws]
        return idx

    def batches(self, batch_size: int, epoch: int | None = None,
                drop_last: bool = False) -> list[np.ndarray]:
        idx = self.indices(epoch)
        nb = len(idx) // batch_size if drop_last else math.ceil(len(idx) / batch_size)
        return [idx[i * batch_size:(i + 1) * batch_size] for i in range(nb)]

    def __len__(self) -> int:
        return len(self.indices())

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "seed": self.seed, "weights": self.weights,
                "num_samples": self.num_samples, "replacement": self.replacement,
                "shuffle": self.shuffle}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.epoch = int(state["epoch"])
        self.seed = int(state["seed"])
        self.weights = state["weights"]
        self.num_samples = state["num_samples"]
        self.replacement = bool(state["replacement"])
        self.shuffle = bool(state["shuffle"])
