"""Feature path of the self-paced MIML learner (``SelfPacedMIML(backbone="mlp")``;
:mod:`mimlkit.deep.selfpaced`, which re-exports :class:`SelfPacedMLP`).

The framework is backbone-agnostic: the same machinery as on image tiles (α store, instance
sampler of Eq. 5, pseudo-label dispatcher of Eq. 8, self-paced loss of Eq. 10, label-aware
coefficients) trains :class:`SelfPacedMLP`, an MLP instance head on precomputed instance
features (one instance = one "tile"). Its batches are tiny, so training and inference run
single-threaded (:func:`_torch_threads`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

__all__ = ["SelfPacedMLP"]


class SelfPacedMLP(nn.Module):
    """Instance feature vectors (B, d) -> per-class logits: standardisation (training-instance
    mean/std, buffers) + ``Linear-ReLU`` per hidden width (the ``trunk``) + linear ``head``.
    ``hidden=()`` gives a linear instance model."""

    def __init__(self, n_features: int, hidden: Sequence[int], n_labels: int,
                 mean: Any = None, std: Any = None) -> None:
        super().__init__()
        d = int(n_features)
        layers: list[nn.Module] = []
        for h in hidden:
            layers += [nn.Linear(d, int(h)), nn.ReLU()]
            d = int(h)
        self.trunk = nn.Sequential(*layers)
        self.head = nn.Linear(d, int(n_labels))
        mu = torch.zeros(int(n_features)) if mean is None else torch.as_tensor(mean)
        sd = torch.ones(int(n_features)) if std is None else torch.as_tensor(std)
        self.register_buffer("mean", mu.float().reshape(1, -1).clone())
        self.register_buffer("std", sd.float().reshape(1, -1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk((x.float() - self.mean) / self.std))


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Run with ``n`` torch intra-op threads (restored afterwards); ``None``: unchanged.

    The feature path's batches are tiny (B x d): intra-op parallelism there is pure
    synchronisation overhead (measured 14x slower with 2 threads on busy cores), so it runs
    single-threaded; use processes (seeds, folds) to fill the cores."""
    if n is None:
        yield
        return
    prev = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(prev)
