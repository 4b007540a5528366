"""Attention-based deep MIL for multi-label bags (Ilse, Tomczak & Welling, ICML 2018), and the
mean / max pooling baselines.

ABMIL, multi-label form. Instances are embedded, ``h_i = ReLU(W_e x_i)`` (with dropout);
attention logits per branch ``k`` are

* plain (Eq. 8 of the paper):  ``e_ik = w_k^T tanh(V h_i)``
* gated (Eq. 9):               ``e_ik = w_k^T (tanh(V h_i) * sigmoid(U h_i))``

and ``a_ik = softmax_i(e_ik)`` over the bag's (unpadded) instances. With
``attention="per_label"`` there is one branch per label (label-specific instance weights;
``V``, ``U`` are shared, ``w_k`` is per label); with ``"shared"`` one branch serves every
label. The bag embedding of label ``k`` is ``z_k = sum_i a_ik h_i`` (Eq. 7) and its logit
``c_k^T z_k + b_k``. Because the classifier is linear,
``logit_k = sum_i a_ik (c_k^T h_i) + b_k``: the instance term ``a_ik (c_k^T h_i)`` is the
instance's exact share of the bag logit (``instance_scores(kind="contribution")``, the
additive-MIL attribution); ``"attention"`` gives ``a_ik`` and ``"logit"`` gives
``c_k^T h_i``.

``meanmil`` / ``maxmil``: the same instance encoder and a per-instance linear classifier,
bag logit = mean / max of the instance logits over the bag (padding masked).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mimlkit.deep.mil_base import (
    _COMMON_DOC,
    BagMILBase,
    InstanceEncoder,
    masked_softmax,
    set_common,
)

__all__ = ["ABMIL", "ABMILNet", "PoolMIL", "PoolMILNet"]


class ABMILNet(nn.Module):
    """Instance encoder -> (gated) attention per label or shared -> per-label linear logits."""

    def __init__(self, n_features: int, n_labels: int, hidden: int = 128, att_dim: int = 64,
                 dropout: float = 0.1, gated: bool = True, per_label: bool = True) -> None:
        super().__init__()
        self.n_labels = int(n_labels)
        self.encoder = InstanceEncoder(n_features, hidden, dropout)
        self.V = nn.Linear(hidden, att_dim)
        self.U = nn.Linear(hidden, att_dim) if gated else None
        self.w = nn.Linear(att_dim, self.n_labels if per_label else 1)
        self.classifier = nn.Linear(hidden, self.n_labels)

    def _parts(self, x: torch.Tensor, mask: torch.Tensor):
        h = self.encoder(x)  # (B, n, H)
        g = torch.tanh(self.V(h))
        if self.U is not None:
            g = g * torch.sigmoid(self.U(h))
        a = masked_softmax(self.w(g), mask[..., None], dim=1)  # (B, n, K or 1)
        s = h @ self.classifier.weight.T  # instance logits without bias (B, n, K)
        return a.to(s.dtype), s

    def output_biases(self) -> list[torch.Tensor]:
        return [self.classifier.bias]

    def forward(self, x: torch.Tensor, mask: torch.Tensor, pos: Any = None) -> torch.Tensor:
        a, s = self._parts(x, mask)
        return (a * s).sum(1) + self.classifier.bias

    def explain(self, x: torch.Tensor, mask: torch.Tensor, pos: Any = None) -> dict:
        a, s = self._parts(x, mask)
        a = a.expand_as(s)
        return {"logits": (a * s).sum(1) + self.classifier.bias, "attention": a,
                "logit": s + self.classifier.bias, "contribution": a * s}


class PoolMILNet(nn.Module):
    """Instance encoder -> instance logits -> mean or max over the bag."""

    def __init__(self, n_features: int, n_labels: int, hidden: int = 128,
                 dropout: float = 0.1, pool: str = "mean") -> None:
        super().__init__()
        self.pool = pool
        self.encoder = InstanceEncoder(n_features, hidden, dropout)
        self.classifier = nn.Linear(hidden, int(n_labels))

    def _weights(self, s: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask[..., None].to(s.dtype)
        if self.pool == "mean":
            return m / m.sum(1, keepdim=True).clamp_min(1.0)
        idx = s.masked_fill(~mask[..., None], float("-inf")).argmax(1, keepdim=True)
        return torch.zeros_like(s).scatter_(1, idx, 1.0)

    def output_biases(self) -> list[torch.Tensor]:
        return [self.classifier.bias]

    def forward(self, x: torch.Tensor, mask: torch.Tensor, pos: Any = None) -> torch.Tensor:
        s = self.classifier(self.encoder(x))
        if self.pool == "mean":
            m = mask[..., None].to(s.dtype)
            return (s * m).sum(1) / m.sum(1).clamp_min(1.0)
        return s.masked_fill(~mask[..., None], float("-inf")).amax(1)

    def explain(self, x: torch.Tensor, mask: torch.Tensor, pos: Any = None) -> dict:
        s = self.classifier(self.encoder(x))
        a = self._weights(s, mask)
        return {"logits": self.forward(x, mask), "attention": a, "logit": s,
                "contribution": a * s}


class ABMIL(BagMILBase):
    """Multi-label attention-based deep MIL (Ilse et al. 2018) on feature bags.

    Parameters
    ----------
    attention : "per_label" (one attention branch per label) or "shared".
    gated : gated attention (Eq. 9) instead of the plain tanh form (Eq. 8).
    att_dim : width of the attention network (V, U).
    """

    def __init__(self, attention: str = "per_label", gated: bool = True, att_dim: int = 64,
                 loss: str = "bce", loss_params: dict | None = None, hidden: int = 128,
                 dropout: float = 0.5, scale: str | None = "standard",
                 max_instances: int | None = None, instance_dropout: float = 0.0,
                 max_epochs: int = 30, lr: float = 1e-2, batch_size: int = 32,
                 weight_decay: float = 1e-4, optimizer: str = "adamw",
                 grad_clip: float | None = None, label_correction: Any = None,
                 loss_schedules: dict | None = None,
                 early_stopping_patience: int | None = None, threshold: float | None = None,
                 t_criterion: bool | str = "auto", threshold_mode: str = "hamming",
                 random_state: int | None = 0,
                 device: str = "auto", amp: str | bool = "auto", n_threads: int | None = 1,
                 checkpoint_dir: str | None = None, resume: bool = False,
                 verbose: bool = False) -> None:
        self.attention = attention
        self.gated = gated
        self.att_dim = att_dim
        set_common(self, locals())

    def _net(self) -> ABMILNet:
        if self.attention not in ("per_label", "shared"):
            raise ValueError(f"attention must be 'per_label' or 'shared', got "
                             f"{self.attention!r}")
        return ABMILNet(int(self.n_features_in_), int(self.n_labels_), int(self.hidden),
                        int(self.att_dim), float(self.dropout), bool(self.gated),
                        self.attention == "per_label")


class PoolMIL(BagMILBase):
    """Deep MIL baseline: instance MLP + linear instance classifier, mean or max pooling of
    the instance logits (``meanmil`` / ``maxmil``).

    Parameters
    ----------
    pool : "mean" or "max".
    min_steps : at least this many optimizer steps: on few bags ``max_epochs`` is raised to
        ``ceil(min_steps / batches per epoch)`` (``n_epochs_`` holds the epochs trained);
        None = exactly ``max_epochs``.
    """

    _default_kind = "logit"

    def __init__(self, pool: str = "mean", loss: str = "bce", loss_params: dict | None = None,
                 hidden: int = 128, dropout: float = 0.3, scale: str | None = "standard",
                 max_instances: int | None = None, instance_dropout: float = 0.0,
                 max_epochs: int = 30, lr: float = 3e-3, batch_size: int = 32,
                 weight_decay: float = 1e-4, optimizer: str = "adamw",
                 grad_clip: float | None = None, label_correction: Any = None,
                 loss_schedules: dict | None = None,
                 early_stopping_patience: int | None = None, threshold: float | None = None,
                 t_criterion: bool | str = "auto", threshold_mode: str = "hamming",
                 random_state: int | None = 0,
                 device: str = "auto", amp: str | bool = "auto", n_threads: int | None = 1,
                 checkpoint_dir: str | None = None, resume: bool = False,
                 verbose: bool = False, min_steps: int | None = None) -> None:
        self.pool = pool
        self.min_steps = min_steps
        set_common(self, locals())

    def _net(self) -> PoolMILNet:
        if self.pool not in ("mean", "max"):
            raise ValueError(f"pool must be 'mean' or 'max', got {self.pool!r}")
        return PoolMILNet(int(self.n_features_in_), int(self.n_labels_), int(self.hidden),
                          float(self.dropout), self.pool)


for _cls in (ABMIL, PoolMIL):
    _cls.__doc__ = (_cls.__doc__ or "") + _COMMON_DOC
