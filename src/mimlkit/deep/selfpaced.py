"""Self-paced deep MIML on image tiles (Jiang et al., "Self-Paced Learning for Images of
Antinuclear Antibodies", IEEE TMI; ``specs/self_paced_miml.md``).

Each image is cut into tiles (a bag of instances); every tile inherits the image's labels
``t``. A CNN scores tiles; learnable confidence weights α (one per tile and class at
``granularity="label"``, one per tile at ``"instance"``) drive three things:

* the **instance sampler** (Eq. 5): tiles are drawn with probability ∝ ``max_k ReLU(α)·t``;
* the **pseudo-label dispatcher** (Eq. 8): ``ξ = ReLU(α)·t``, min-max normalised over the K
  classes; the target is ξ̄ (``pseudo_label="soft"``) or a Bernoulli draw of it
  (``"bernoulli"``, the authors' best setting), or just ``t`` (``"bag"``);
* the **self-paced loss** (Eq. 10): ``-Σ_k [ReLU(α)·ξ̄·log p + (1-ξ̄)·log(1-p)]`` (row-weighted by
  ``ReLU(α_j)`` at instance granularity), summed over the batch.

α is an ordinary parameter trained by the same Adam step as the network (the paper omits this;
the authors' code does it), with the **label-aware learning-rate coefficient**
``λ_g = ln(m_g)/ln(C)`` for the label-combination group g of a tile (m_g = its number of
positive labels, C = the data maximum or a fixed integer). Groups are rebuilt from the stored
pseudo-labels after every epoch and the optimizer is reset then (as in the code). Images are
scored by the class-wise max over their tiles (Eq. 7) and thresholded at τ.

Components are separate: :class:`SelfPacedNet` (model), :func:`self_paced_bce` (pure loss),
:class:`AlphaStore` (curriculum state: α, groups, coefficients, stored pseudo-labels),
:func:`sampler_weights` / :func:`dispatch_targets` (sampler and dispatcher),
:class:`SelfPacedAdam` (row-wise learning rates) and :class:`SelfPacedTask` (the loop's task;
the loop itself is :class:`mimlkit.deep.trainer.Trainer`). α, groups and the sampler state are
in the trainer's checkpoints, so ``resume=True`` continues exactly.

Table III of the paper, one row = one parameter set (see :data:`TABLE_III`)::

    Gran.  ×: granularity="none" (no α: plain BCE)   •: "instance"   ○: "label"
    Init   ▲: alpha_init="data" (Eq. 11a; Eq. 12 at instance granularity)
           △: alpha_init="sample" (Eq. 11b)
    Sampling      ✓: sampling="weighted"      ×: "uniform"
    Pseudo-label  ✓: pseudo_label="bernoulli" ×: "bag"   (literal Eq. 8/10: "soft")
    Coefficients  ✓: coefficient="label_aware" ×: "none"
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from torch import nn

from mimlkit.bags import check_labels
from mimlkit.deep.trainer import TrainingTask
from mimlkit.learners.base import MIMLClassifierMixin

__all__ = [
    "SelfPacedMIML",
    "SelfPacedNet",
    "SelfPacedTask",
    "SelfPacedAdam",
    "AlphaStore",
    "init_alpha",
    "label_aware_coefficients",
    "group_rows",
    "sampler_weights",
    "dispatch_targets",
    "self_paced_bce",
    "select_threshold",
    "TABLE_III",
    "table3_params",
]

GRANULARITIES = ("label", "instance", "none")
INITS = ("ones", "data", "sample", "instance", "data_softmax", "sample_softmax")
SAMPLINGS = ("weighted", "uniform")
PSEUDO_LABELS = ("soft", "bernoulli", "bag")
COEFFICIENTS = ("label_aware", "none")


# ============================================================================ Table III
def _row(g: str, i: str, s: str, p: str, c: str) -> dict[str, str]:
    return {"granularity": g, "alpha_init": i, "sampling": s, "pseudo_label": p,
            "coefficient": c}


#: Paper Table III rows -> parameters (row 1 = plain BCE baseline, row 21 = the full method).
TABLE_III: dict[int, dict[str, str]] = {1: _row("none", "ones", "uniform", "bag", "none")}
_r = 2
for _s in ("uniform", "weighted"):
    for _c in ("none", "label_aware"):
        TABLE_III[_r] = _row("instance", "data", _s, "bag", _c)
        _r += 1
for _init in ("data", "sample"):
    for _s in ("uniform", "weighted"):
        for _p in ("bag", "bernoulli"):
            for _c in ("none", "label_aware"):
                TABLE_III[_r] = _row("label", _init, _s, _p, _c)
                _r += 1
del _r, _s, _c, _init, _p


def table3_params(row: int) -> dict[str, str]:
    """The switch settings of Table III row ``row`` (1..21)."""
    if row not in TABLE_III:
        raise ValueError(f"Table III has rows 1..21, got {row!r}")
    return dict(TABLE_III[row])


# ============================================================================ pure pieces
def group_rows(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label-combination groups: ``(group id per row, positives per group m_g)``."""
    L = (np.asarray(labels) > 0).astype(np.int8)
    uniq, inv = np.unique(L, axis=0, return_inverse=True)
    return inv.reshape(-1).astype(np.int64), uniq.sum(axis=1).astype(np.int64)


def label_aware_coefficients(m: np.ndarray, C: int | None = None) -> np.ndarray:
    """λ = ln(m)/ln(C) per group (§2.5 of the spec; the paper gives no formula).

    ``C=None``: the maximum of ``m``. Guards as in the authors' code: m = 0 or C <= 1 give 0
    (±inf / NaN -> 0). For C = 6: m = 1 -> 0, 2 -> 0.387, ..., 6 -> 1.

    Warning — paper and code disagree: paper 002 says a larger C gives *higher* coefficients,
    but this formula (recovered from the authors' code, which we follow) gives
    ``ln m / ln C``, which *falls* as C grows (m = 2: C = 4 -> 0.5, C = 8 -> 0.33).
    """
    m = np.asarray(m, dtype=np.float64)
    c = float(m.max()) if C is None and m.size else float(C or 0)
    if c <= 1:
        return np.zeros_like(m)
    with np.errstate(divide="ignore", invalid="ignore"):
        lam = np.log(m) / math.log(c)
    return np.nan_to_num(lam, nan=0.0, posinf=0.0, neginf=0.0)


def _group_softmax(T: np.ndarray) -> np.ndarray:
    """Eq. 12: α of every row = softmax over label-combination groups q of n_q / N."""
    gid, _ = group_rows(T)
    n_q = np.bincount(gid).astype(np.float64)
    z = n_q / max(len(gid), 1)
    e = np.exp(z - z.max())
    return (e / e.sum())[gid]


def init_alpha(T: np.ndarray, init: str = "ones", granularity: str = "label") -> np.ndarray:
    """Initial α for tiles with inherited labels ``T`` (N x K, 0/1).

    label granularity (N x K):

    * ``"ones"``: α = t;
    * ``"data"`` (Eq. 11a, code magnitudes): f_k = share of training tiles with label k, then a
      softmax masked to the tile's own positives, ``α_jk = t_jk e^{f_k} / Σ_{k': t=1} e^{f_k'}``;
    * ``"sample"`` (Eq. 11b): per-image label frequencies = ``t / m`` (tiles share the image's
      labels; no softmax, as in the code);
    * ``"instance"`` (Eq. 12): ``t ×`` the tile's group softmax value;
    * ``"data_softmax"`` / ``"sample_softmax"``: the literal paper softmax over all K classes
      of f (resp. t/m), masked by t.

    instance granularity (N,): ``"ones"`` -> 1; ``"data"`` and ``"instance"`` -> Eq. 12
    (softmax over label-combination groups of n_q/N, as the code does for ``iw-data``);
    ``"sample"`` is not defined (paper: not applicable) and raises ``ValueError``.
    """
    T = (np.asarray(T) > 0).astype(np.float64)
    m = T.sum(axis=1, keepdims=True)
    if granularity == "instance":
        if init == "ones":
            return np.ones(T.shape[0])
        if init in ("data", "instance", "data_softmax"):
            return _group_softmax(T)
        raise ValueError(f"alpha_init={init!r} is not defined at instance granularity "
                         "(use 'ones', 'data' or 'instance')")
    if granularity != "label":
        raise ValueError(f"granularity must be 'label' or 'instance', got {granularity!r}")
    if init == "ones":
        return T.copy()
    if init == "data":
        f = T.sum(axis=0) / max(T.sum(), 1.0)
        e = np.exp(f)[None, :] * T
        s = e.sum(axis=1, keepdims=True)
        return np.divide(e, s, out=np.zeros_like(e), where=s > 0)
    if init == "sample":
        return np.divide(T, m, out=np.zeros_like(T), where=m > 0)
    if init == "instance":
        return T * _group_softmax(T)[:, None]
    if init == "data_softmax":
        f = T.sum(axis=0) / max(T.sum(), 1.0)
        return T * (np.exp(f) / np.exp(f).sum())[None, :]
    if init == "sample_softmax":
        q = np.divide(T, m, out=np.zeros_like(T), where=m > 0)
        e = np.exp(q - q.max(axis=1, keepdims=True))
        return T * e / e.sum(axis=1, keepdims=True)
    raise ValueError(f"alpha_init must be one of {INITS}, got {init!r}")


def sampler_weights(alpha: torch.Tensor | None, T: torch.Tensor) -> torch.Tensor:
    """Eq. 5: ``s_j = max_k ReLU(α_jk)·t_jk`` (label), ``ReLU(α_j)`` (instance), or
    ``max_k t_jk`` without α. The mask is the real (inherited) label."""
    if alpha is None:
        return T.amax(dim=1).double()
    a = torch.relu(torch.nan_to_num(alpha.detach().double()))
    if a.dim() == 1:
        return a
    return (a * T.double()).amax(dim=1)


def dispatch_targets(alpha: torch.Tensor | None, T: torch.Tensor, mode: str = "bernoulli",
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Pseudo-label dispatcher (Eq. 8): ``ξ = ReLU(α)·t``, ``ξ̄ = (ξ - min_k ξ)/(max_k ξ -
    min_k ξ)`` over all K classes (max = min -> all-zero target, the code's NaN -> 0).

    ``mode="soft"``: ξ̄; ``"bernoulli"``: a 0/1 draw per cell with P(1) = ξ̄ (authors' best
    setting); ``"bag"`` (or ``alpha=None``): the inherited bag labels t. α is detached.
    """
    T = T.float()
    if mode == "bag" or alpha is None:
        return T
    a = torch.relu(torch.nan_to_num(alpha.detach().float()))
    if a.dim() == 1:
        a = a[:, None]
    xi = T * a
    lo = xi.amin(dim=1, keepdim=True)
    hi = xi.amax(dim=1, keepdim=True)
    den = hi - lo
    xb = torch.where(den > 0, (xi - lo) / torch.where(den > 0, den, torch.ones_like(den)),
                     torch.zeros_like(xi))
    if mode == "soft":
        return xb
    if mode == "bernoulli":
        return torch.bernoulli(xb, generator=generator)
    raise ValueError(f"pseudo_label must be one of {PSEUDO_LABELS}, got {mode!r}")


def self_paced_bce(logits: torch.Tensor, targets: torch.Tensor,
                   alpha: torch.Tensor | None = None, reduction: str = "sum") -> torch.Tensor:
    """Self-paced loss (Eq. 10) on logits.

    * ``alpha`` (N x K, label granularity): ``-[ReLU(α)·z·log p + (1-z)·log(1-p)]`` — the
      positive term is weighted (with hard Bernoulli targets z this is exactly the authors'
      ``WeightedBCELoss``; with soft targets it is the literal Eq. 10);
    * ``alpha`` (N,), instance granularity: the whole row's BCE times ``ReLU(α_j)``;
    * ``alpha=None``: plain BCE (Table III row 1).

    ``reduction="sum"`` (the code) or ``"mean"``. Gradients reach α (it is not detached).
    """
    logits = logits.float()
    z = targets.float()
    logp = F.logsigmoid(logits)
    log1mp = F.logsigmoid(-logits)
    if alpha is None:
        el = -(z * logp + (1 - z) * log1mp)
    else:
        w = torch.relu(torch.nan_to_num(alpha.float()))
        if w.dim() == 1:
            el = -(z * logp + (1 - z) * log1mp) * w[:, None]
        else:
            el = -(w * z * logp + (1 - z) * log1mp)
    if reduction == "sum":
        return el.sum()
    if reduction == "mean":
        return el.mean()
    raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")


# ============================================================================ curriculum state
class AlphaStore(nn.Module):
    """α (a parameter), the real labels t, label-combination groups, per-row coefficients
    λ and the last pseudo-label of every training tile. Everything is in ``state_dict``.

    ``coefficient="label_aware"``: per-row learning-rate multiplier ``λ_g = ln m_g / ln C``
    (``C=None``: data maximum, re-measured at each regroup); ``"none"``: 1.
    """

    def __init__(self, T: np.ndarray, granularity: str = "label", init: str = "ones",
                 coefficient: str = "label_aware", C: int | None = None) -> None:
        super().__init__()
        T = (np.asarray(T) > 0).astype(np.float32)
        self.granularity = granularity
        self.coefficient = coefficient
        self.C = C
        a0 = init_alpha(T, init, granularity)
        self.alpha = nn.Parameter(torch.as_tensor(a0, dtype=torch.float32))
        self.register_buffer("T", torch.as_tensor(T))
        self.register_buffer("pseudo", torch.as_tensor(T > 0, dtype=torch.int8))
        n = T.shape[0]
        self.register_buffer("group", torch.zeros(n, dtype=torch.int64))
        self.register_buffer("lam", torch.ones(n, dtype=torch.float32))
        self.register_buffer("C_used", torch.zeros((), dtype=torch.float32))
        self._epoch_pseudo: torch.Tensor | None = None
        self._drawn: torch.Tensor | None = None
        self.regroup(from_labels=T)

    @torch.no_grad()
    def regroup(self, from_labels: Any = None) -> None:
        """Rebuild groups from ``from_labels`` (default: the stored pseudo-labels) and the
        per-row coefficients."""
        L = self.pseudo.cpu().numpy() if from_labels is None else np.asarray(from_labels)
        gid, m = group_rows(L)
        if self.coefficient == "label_aware":
            lam = label_aware_coefficients(m, self.C)
            c = float(m.max()) if self.C is None and m.size else float(self.C or 0)
        else:
            lam, c = np.ones(len(m)), float("nan")
        dev = self.group.device
        self.group.copy_(torch.as_tensor(gid, device=dev))
        self.lam.copy_(torch.as_tensor(lam[gid], dtype=torch.float32, device=dev))
        self.C_used.fill_(c)

    def row_info(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(group id per row, λ per row) for :class:`SelfPacedAdam`."""
        return self.group, self.lam

    @torch.no_grad()
    def record(self, idx: torch.Tensor, targets: torch.Tensor) -> None:
        """Remember the targets dispatched to tiles ``idx`` in this epoch (rank-local)."""
        if self._epoch_pseudo is None or self._epoch_pseudo.device != targets.device:
            self._epoch_pseudo = torch.zeros(self.T.shape, dtype=torch.float32,
                                             device=targets.device)
            self._drawn = torch.zeros(self.T.shape[0], dtype=torch.float32,
                                      device=targets.device)
        self._epoch_pseudo[idx] = (targets > 0).float()
        self._drawn[idx] = 1.0

    @torch.no_grad()
    def commit(self, dist: Any = None) -> None:
        """Merge this epoch's targets into ``pseudo`` (max over ranks under DDP)."""
        if self._epoch_pseudo is None:
            return
        ep, dr = self._epoch_pseudo, self._drawn
        if dist is not None and getattr(dist, "enabled", False):
            import torch.distributed as tdist

            tdist.all_reduce(ep, op=tdist.ReduceOp.MAX)
            tdist.all_reduce(dr, op=tdist.ReduceOp.MAX)
        drawn = dr.to(self.pseudo.device) > 0
        self.pseudo[drawn] = ep.to(self.pseudo.device)[drawn].to(torch.int8)
        self._epoch_pseudo, self._drawn = None, None

    @torch.no_grad()
    def stats(self) -> dict[str, float]:
        a = self.alpha.detach().float()
        if a.dim() == 2:
            pos = self.T > 0
            vals = a[pos]
        else:
            vals = a
        if vals.numel() == 0:
            return {}
        return {"alpha_mean": float(vals.mean()), "alpha_dead": float((vals <= 0).float().mean()),
                "coef_C": float(self.C_used), "n_groups": float(int(self.group.max()) + 1)}


class SelfPacedAdam(torch.optim.Adam):
    """Adam whose parameter groups flagged ``row_wise=True`` (α) get a per-row learning rate
    ``lr·λ_row`` and per-group skipping, emulating the authors' one-Adam-group-per-label-
    combination layout: a group's rows are updated (moments and step) only at steps where
    some row of the group has a non-zero gradient; bias correction counts per row.

    ``row_info()`` returns (group id per row, λ per row). Other groups: plain Adam.
    """

    def __init__(self, params: Any, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0,
                 row_info: Callable[[], tuple[torch.Tensor, torch.Tensor]] | None = None
                 ) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         foreach=False)
        self._row_info = row_info

    @torch.no_grad()
    def _row_step(self, p: torch.Tensor, group: dict) -> None:
        g = p.grad
        n = p.shape[0]
        state = self.state[p]
        if "exp_avg" not in state:
            state["exp_avg"] = torch.zeros_like(p)
            state["exp_avg_sq"] = torch.zeros_like(p)
            state["row_step"] = torch.zeros(n, dtype=p.dtype, device=p.device)
        if self._row_info is not None:
            gid, lam = self._row_info()
            gid, lam = gid.to(p.device), lam.to(device=p.device, dtype=p.dtype)
        else:
            gid = torch.zeros(n, dtype=torch.int64, device=p.device)
            lam = torch.ones(n, dtype=p.dtype, device=p.device)
        nz = (g != 0).reshape(n, -1).any(dim=1)
        n_groups = int(gid.max()) + 1 if n else 0
        present = torch.zeros(n_groups, dtype=p.dtype, device=p.device).index_add_(
            0, gid, nz.to(p.dtype)) > 0
        act = present[gid]
        if not bool(act.any()):
            return
        b1, b2 = group["betas"]
        shape = (n,) + (1,) * (p.dim() - 1)
        a = act.view(shape)
        if group.get("row_sgd"):  # plain SGD: the step follows the loss (-log p) per cell
            k = state["row_step"]
            k.add_(act.to(p.dtype))
            p.sub_((group["lr"] * lam).view(shape) * g)
            return
        m, v, k = state["exp_avg"], state["exp_avg_sq"], state["row_step"]
        k.add_(act.to(p.dtype))
        m.copy_(torch.where(a, m * b1 + g * (1 - b1), m))
        v.copy_(torch.where(a, v * b2 + g * g * (1 - b2), v))
        kk = k.clamp(min=1).view(shape)
        bc1 = 1 - b1 ** kk
        bc2 = 1 - b2 ** kk
        step = (group["lr"] * lam).view(shape) * (m / bc1) / ((v / bc2).sqrt() + group["eps"])
        p.sub_(torch.where(a, step, torch.zeros_like(step)))

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:  # noqa: D102
        held = []
        for group in self.param_groups:
            if not group.get("row_wise"):
                continue
            for p in group["params"]:
                if p.grad is None:
                    continue
                self._row_step(p, group)
                held.append((p, p.grad))
                p.grad = None
        try:
            return super().step(closure)
        finally:
            for p, g in held:
                p.grad = g


# ============================================================================ model
class SelfPacedNet(nn.Module):
    """uint8 tiles (B, 3, s, s) -> per-class logits: normalisation + backbone trunk + linear."""

    def __init__(self, trunk: nn.Module, feature_dim: int, n_labels: int,
                 mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = nn.Linear(int(feature_dim), int(n_labels))
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32)
                             .view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float().div(255.0)
        x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        return self.head(self.trunk(x))


# ============================================================================ task
class SelfPacedTask(TrainingTask):
    """The trainer's task: sampler (epoch start), dispatcher + loss (step), regrouping,
    coefficient update and optimizer reset (epoch end), bag-level validation (max over tiles).
    """

    def __init__(self, net: SelfPacedNet, store: AlphaStore | None, T: np.ndarray, *,
                 sampling: str = "weighted", pseudo_label: str = "bernoulli",
                 reduction: str = "sum", hflip: bool = True, reset_optimizer: bool = True,
                 threshold: float = 0.5, Y_val: np.ndarray | None = None) -> None:
        super().__init__()
        self.net = net
        self.store = store
        self.register_buffer("T", torch.as_tensor((np.asarray(T) > 0).astype(np.float32)))
        self.sampling = sampling
        self.pseudo_label = pseudo_label
        self.reduction = reduction
        self.hflip = hflip
        self.reset_opt = reset_optimizer
        self.threshold = threshold
        self.Y_val = Y_val

    def param_groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = [{"params": list(self.net.parameters())}]
        if self.store is not None:
            groups.append({"params": [self.store.alpha], "row_wise": True,
                           "row_sgd": self._alpha_optimizer == "sgd",
                           "lr": float(self._alpha_lr)})
        return groups

    _alpha_lr: float = 1e-3
    _alpha_optimizer: str = "adam"

    def on_epoch_start(self, epoch: int, trainer: Any) -> None:
        if self.sampling != "weighted":
            trainer.sampler.set_weights(None)
            return
        alpha = self.store.alpha if self.store is not None else None
        w = sampler_weights(alpha, self.T).cpu().numpy()
        if not np.isfinite(w).all() or w.sum() <= 0:
            warnings.warn("instance sampler: every tile has zero weight (all α <= 0); "
                          "falling back to uniform sampling for this epoch", stacklevel=2)
            trainer.sampler.set_weights(None)
            return
        trainer.sampler.set_weights(w, num_samples=len(w), replacement=True)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, idx = batch
        if self.hflip:
            flip = torch.rand(x.shape[0], device=x.device) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        logits = self.net(x)
        t = self.T[idx]
        if self.store is None:
            return self_paced_bce(logits, t, None, self.reduction)
        a = self.store.alpha[idx]
        targets = dispatch_targets(a, t, self.pseudo_label)
        self.store.record(idx, targets)
        return self_paced_bce(logits, targets, a, self.reduction)

    def on_epoch_end(self, epoch: int, trainer: Any, metrics: dict) -> dict | None:
        if self.store is None:
            return None
        self.store.commit(getattr(trainer, "dist", None))
        if self.store.coefficient == "label_aware":
            self.store.regroup()
        if self.reset_opt:
            trainer.reset_optimizer()
        return self.store.stats()

    def validation_step(self, batch: Any, batch_idx: int) -> dict[str, torch.Tensor]:
        x, bag = batch
        return {"p": torch.sigmoid(self.net(x).float()), "bag": bag}

    def validation_epoch_end(self, outputs: list[dict]) -> dict[str, float]:
        p = torch.cat([o["p"] for o in outputs]).cpu().numpy()
        bag = torch.cat([o["bag"] for o in outputs]).cpu().numpy()
        S = _bag_max(p, bag, len(self.Y_val))
        return {f"val_{k}": v for k, v in paper_metrics(self.Y_val, S, self.threshold).items()}


# ============================================================================ helpers
def _bag_max(p: np.ndarray, bag: np.ndarray, n_bags: int) -> np.ndarray:
    """Class-wise max over each bag's tiles (Eq. 7 before the threshold)."""
    S = np.full((n_bags, p.shape[1]), -np.inf)
    np.maximum.at(S, bag, p)
    return S


def paper_metrics(Y: np.ndarray, S: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Seed 002's metrics: F1 micro/macro, subset accuracy, mAP and their mean (overall)."""
    from mimlkit.metrics import (
        macro_f1,
        mean_average_precision,
        micro_f1,
        overall_score,
        subset_accuracy,
    )

    Yp = (S > threshold).astype(np.int8)
    return {"f1_micro": float(micro_f1(Y, Yp)), "f1_macro": float(macro_f1(Y, Yp)),
            "subset_accuracy": float(subset_accuracy(Y, Yp)),
            "map": float(mean_average_precision(Y, S)), "overall": float(overall_score(Y, S, Yp))}


#: τ grid searched by ``threshold="validation"`` (and the ablation benchmark).
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)


def select_threshold(Y: np.ndarray, S: np.ndarray, grid: Sequence[float] | None = None
                     ) -> float:
    """τ maximising F1 macro of ``S > τ`` on validation images (ties: the value closest to
    the paper's 0.5). An extension: the paper fixes τ = 0.5 (Eq. 7)."""
    from mimlkit.metrics import macro_f1

    taus = np.asarray(THRESHOLD_GRID if grid is None else grid, dtype=np.float64)
    f = np.array([macro_f1(Y, (S > t).astype(np.int8)) for t in taus])
    best = np.flatnonzero(f >= f.max() - 1e-12)
    return float(taus[best[np.argmin(np.abs(taus[best] - 0.5))]])


def _image_list(X: Any) -> Any:
    from mimlkit.datasets.base import ImageSet, MIMLDataset

    if isinstance(X, MIMLDataset):
        X = X.inputs("images")
    if isinstance(X, ImageSet):
        return X
    if isinstance(X, np.ndarray) and X.ndim == 4:
        return list(X)
    if isinstance(X, np.ndarray) and X.ndim == 3:
        return [X]
    if isinstance(X, (list, tuple)):
        return X
    raise ValueError(f"SelfPacedMIML expects images (ImageSet, list of H x W x 3 arrays or an "
                     f"N x H x W x 3 array), got {type(X).__name__}")


def _tile_images(images: Any, tiler: Any, size: int, chunk: int = 2048
                 ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Tile every image and resize tiles to ``size``: (uint8 N x 3 x s x s, bag index,
    coords N x 2 (y, x))."""
    from mimlkit.datasets.tiling import as_rgb_uint8

    tiles, bags, coords = [], [], []
    for i in range(len(images)):
        img = as_rgb_uint8(images[i], where=f"image {i}")
        t, c = tiler(img)
        tiles.append(t)
        coords.append(c)
        bags.append(np.full(len(t), i, dtype=np.int64))
    if not tiles:
        raise ValueError("no images given")
    arr = torch.from_numpy(np.concatenate(tiles)).permute(0, 3, 1, 2)
    if arr.shape[-1] != size:
        out = torch.empty((arr.shape[0], 3, size, size), dtype=torch.uint8)
        for s in range(0, arr.shape[0], chunk):
            x = arr[s:s + chunk].float()
            y = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                              antialias=True)
            out[s:s + chunk] = y.round_().clamp_(0, 255).to(torch.uint8)
        arr = out
    else:
        arr = arr.contiguous()
    return arr, np.concatenate(bags), np.concatenate(coords)


# ============================================================================ estimator
class SelfPacedMIML(MIMLClassifierMixin, BaseEstimator):
    """Self-paced deep MIML on image tiles (seed 002; ``docs/selfpaced.md``).

    Input: images (``ImageSet``, a list of H x W x 3 uint8 arrays or an N x H x W x 3 array).
    Defaults = the authors' best setting (Table III row 21 / README "full" command).

    Parameters
    ----------
    tile_size, stride, border : tiling (``TileBagger``; 448 px, no overlap, remainders dropped;
        an image smaller than a tile is padded to one tile).
    backbone, weights : any :func:`mimlkit.features.backbones.load_backbone` name ("resnet50",
        "resnet18", "vgg16", "tiny", ...); ``weights`` None (random init) or a local file.
    image_size : network input side; tiles are resized to it (None: the backbone's default,
        224 for ResNets, 64 for "tiny").
    granularity : "label" (α per tile and class, ○), "instance" (α per tile, •) or "none"
        (no α: plain BCE, Table III row 1).
    alpha_init : "ones", "data" (Eq. 11a, ▲), "sample" (Eq. 11b, △), "instance" (Eq. 12),
        "data_softmax" / "sample_softmax" (literal paper softmax over all K).
    sampling : "weighted" (Eq. 5 sampler, N_tiles draws with replacement per epoch) or
        "uniform" (a shuffled pass).
    pseudo_label : "bernoulli" (draws of Eq. 8's ξ̄), "soft" (ξ̄ itself, literal Eq. 10) or
        "bag" (every tile keeps the bag labels).
    coefficient : "label_aware" (α learning rate × ln(m)/ln(C), groups rebuilt every epoch)
        or "none".
    n_classes_for_coefficient : C; None = the data maximum of positives per tile.
    lr, alpha_lr : Adam learning rates of the network and of α (both 1e-3 as in the README).
    alpha_optimizer : "adam" (the authors' code: α in the same Adam; its per-use decrease is
        ≈ alpha_lr·λ whatever the loss) or "sgd" (extension: α -= alpha_lr·λ·∂L/∂α, so cells
        with a larger loss -log p lose weight faster — the classical self-paced reading).
    reset_optimizer : "auto" (rebuild Adam every epoch iff label-aware, as in the code),
        True or False.
    reduction : "sum" (code) or "mean" over batch and classes.
    hflip : random horizontal flips of training tiles.
    threshold : τ of Eq. 7 on the max tile probability (paper: 0.5), or ``"validation"``
        (extension): τ chosen on ``eval_set`` by :func:`select_threshold` after training
        (per-epoch validation metrics then use 0.5); ``t_criterion`` adds each image's top
        label when none passes (off: the paper thresholds only).
    max_epochs, batch_size, early_stopping_patience : training length (patience needs
        ``fit(..., eval_set=(X_val, Y_val))``; monitors the validation "overall").
    random_state, device, amp, checkpoint_dir, resume, verbose : see
        :class:`mimlkit.deep.trainer.Trainer`.

    Table III rows: ``SelfPacedMIML(**table3_params(row))`` (see :data:`TABLE_III`).

    Fitted: ``module_`` (the network), ``alpha_`` (final α, numpy), ``pseudo_labels_``,
    ``history_`` (per-epoch loss, α statistics, validation metrics), ``threshold_``.
    """

    _torch_modules = ("module_",)
    input_kind = "images"
    decision_threshold = 0.5

    def __init__(self, tile_size: int = 448, stride: int | None = None, border: str = "drop",
                 backbone: str = "resnet50", weights: str | None = None,
                 image_size: int | None = None, granularity: str = "label",
                 alpha_init: str = "sample", sampling: str = "weighted",
                 pseudo_label: str = "bernoulli", coefficient: str = "label_aware",
                 n_classes_for_coefficient: int | None = None, lr: float = 1e-3,
                 alpha_lr: float = 1e-3, alpha_optimizer: str = "adam",
                 reset_optimizer: str | bool = "auto",
                 reduction: str = "sum", hflip: bool = True,
                 threshold: float | str = 0.5,
                 t_criterion: bool = False, max_epochs: int = 10, batch_size: int = 32,
                 early_stopping_patience: int | None = None, random_state: int | None = 0,
                 device: str = "auto", amp: str | bool = "auto",
                 checkpoint_dir: str | None = None, resume: bool = False,
                 verbose: bool = False) -> None:
        self.tile_size = tile_size
        self.stride = stride
        self.border = border
        self.backbone = backbone
        self.weights = weights
        self.image_size = image_size
        self.granularity = granularity
        self.alpha_init = alpha_init
        self.sampling = sampling
        self.pseudo_label = pseudo_label
        self.coefficient = coefficient
        self.n_classes_for_coefficient = n_classes_for_coefficient
        self.lr = lr
        self.alpha_lr = alpha_lr
        self.alpha_optimizer = alpha_optimizer
        self.reset_optimizer = reset_optimizer
        self.reduction = reduction
        self.hflip = hflip
        self.threshold = threshold
        self.t_criterion = t_criterion
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.early_stopping_patience = early_stopping_patience
        self.random_state = random_state
        self.device = device
        self.amp = amp
        self.checkpoint_dir = checkpoint_dir
        self.resume = resume
        self.verbose = verbose

    # ------------------------------------------------------------------ checks / pieces
    def _check_params(self) -> None:
        for name, allowed in (("granularity", GRANULARITIES), ("alpha_init", INITS),
                              ("sampling", SAMPLINGS), ("pseudo_label", PSEUDO_LABELS),
                              ("coefficient", COEFFICIENTS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.granularity == "instance" and self.alpha_init in ("sample", "sample_softmax"):
            raise ValueError("alpha_init='sample' (Eq. 11b) is not defined at instance "
                             "granularity (paper: not applicable); use 'data' or 'ones'")
        C = self.n_classes_for_coefficient
        if C is not None and (not isinstance(C, (int, np.integer)) or C < 2):
            raise ValueError(f"n_classes_for_coefficient must be None or an int >= 2, got {C!r}")
        if self.alpha_optimizer not in ("adam", "sgd"):
            raise ValueError(f"alpha_optimizer must be 'adam' or 'sgd', "
                             f"got {self.alpha_optimizer!r}")
        if self.reduction not in ("sum", "mean"):
            raise ValueError(f"reduction must be 'sum' or 'mean', got {self.reduction!r}")
        if self.reset_optimizer not in ("auto", True, False):
            raise ValueError("reset_optimizer must be 'auto', True or False")
        if isinstance(self.threshold, str) and self.threshold != "validation":
            raise ValueError(f"threshold must be a float or 'validation', "
                             f"got {self.threshold!r}")
        if int(self.batch_size) < 1 or int(self.max_epochs) < 0:
            raise ValueError("batch_size must be >= 1 and max_epochs >= 0")

    def _tiler(self) -> Any:
        from mimlkit.datasets.tiling import TileBagger

        return TileBagger(int(self.tile_size), self.stride, border=self.border)

    def _load_backbone(self, weights: Any) -> Any:
        from mimlkit.features.backbones import load_backbone

        return load_backbone(self.backbone, weights, seed=int(self.random_state or 0),
                             image_size=self.image_size)

    def _build_torch_module(self, name: str = "module_") -> nn.Module:
        if name != "module_":
            raise ValueError(f"unknown torch module {name!r}")
        bb = self._load_backbone(None)
        return SelfPacedNet(bb.trunk(), bb.feature_dim, int(self.n_labels_),
                            self.norm_mean_, self.norm_std_)

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, Y: Any, eval_set: tuple[Any, Any] | None = None) -> SelfPacedMIML:
        """Train on images ``X`` with image-level labels ``Y`` (n x K, 0/1).

        ``eval_set=(X_val, Y_val)`` adds per-epoch validation metrics (image level) to
        ``history_`` and enables early stopping on the validation "overall".
        """
        from mimlkit.deep.trainer import Trainer, preserve_rng_state

        self._check_params()
        if self.threshold == "validation" and eval_set is None:
            raise ValueError("threshold='validation' needs fit(..., eval_set=(X_val, Y_val))")
        tau = 0.5 if self.threshold == "validation" else float(self.threshold)
        images = _image_list(X)
        Y = check_labels(Y, len(images), allow_unobserved=False)
        self.n_labels_ = int(Y.shape[1])
        seed = int(self.random_state or 0)
        bb = self._load_backbone(self.weights)
        size = int(bb.preprocess.size)
        self.input_size_ = size
        self.norm_mean_ = tuple(float(v) for v in bb.preprocess.mean)
        self.norm_std_ = tuple(float(v) for v in bb.preprocess.std)
        tiler = self._tiler()
        tiles, bag_index, _ = _tile_images(images, tiler, size)
        T = Y[bag_index].astype(np.float32)
        self.n_train_tiles_ = int(T.shape[0])
        net = SelfPacedNet(bb.trunk(), bb.feature_dim, self.n_labels_, self.norm_mean_,
                           self.norm_std_)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net.head.reset_parameters()
        store = None
        if self.granularity != "none":
            C = None if self.n_classes_for_coefficient is None \
                else int(self.n_classes_for_coefficient)
            store = AlphaStore(T, self.granularity, self.alpha_init, self.coefficient, C)
        reset = (self.coefficient == "label_aware" and store is not None) \
            if self.reset_optimizer == "auto" else bool(self.reset_optimizer)
        val = None
        Y_val = None
        if eval_set is not None:
            Xv, Yv = eval_set
            imv = _image_list(Xv)
            Y_val = check_labels(Yv, len(imv), allow_unobserved=False)
            vt, vb, _ = _tile_images(imv, tiler, size)
            val = (vt, torch.from_numpy(vb))
        task = SelfPacedTask(net, store, T, sampling=self.sampling,
                             pseudo_label=self.pseudo_label, reduction=self.reduction,
                             hflip=bool(self.hflip), reset_optimizer=reset,
                             threshold=tau, Y_val=Y_val)
        task._alpha_lr = float(self.alpha_lr)
        task._alpha_optimizer = self.alpha_optimizer
        row_info = store.row_info if store is not None else None

        def make_optimizer(groups: list[dict], lr: float) -> torch.optim.Optimizer:
            return SelfPacedAdam(groups, lr=lr, row_info=row_info)

        trainer = Trainer(
            max_epochs=int(self.max_epochs), optimizer=make_optimizer, lr=float(self.lr),
            batch_size=int(self.batch_size), shuffle=True, device=self.device, amp=self.amp,
            seed=seed, deterministic=True, progress=bool(self.verbose),
            checkpoint_dir=self.checkpoint_dir, resume=bool(self.resume),
            early_stopping_patience=self.early_stopping_patience if val is not None else None,
            monitor="val_overall" if val is not None else "train_loss",
            monitor_mode="max" if val is not None else "min",
            restore_best=val is not None and self.early_stopping_patience is not None)
        with preserve_rng_state():
            trainer.fit(task, (tiles, torch.arange(len(T))), val)
        self.module_ = net.cpu().eval()
        if store is not None:
            self.alpha_ = store.alpha.detach().cpu().numpy().copy()
            self.pseudo_labels_ = store.pseudo.cpu().numpy().copy()
            c = float(store.C_used)
            self.coefficient_C_ = None if math.isnan(c) else c
        else:
            self.alpha_ = None
            self.pseudo_labels_ = None
            self.coefficient_C_ = None
        self.history_ = [dict(h) for h in trainer.history]
        self.n_epochs_ = len(self.history_)
        self.threshold_ = tau
        if self.threshold == "validation":
            self.threshold_ = select_threshold(Y_val, self.decision_function(eval_set[0]))
        return self

    # ------------------------------------------------------------------ inference
    def _device(self) -> torch.device:
        from mimlkit.deep.trainer import resolve_device

        return resolve_device(self.device)

    def _tile_probabilities(self, X: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        check_is_fitted(self, "module_")
        images = _image_list(X)
        tiles, bag, coords = _tile_images(images, self._tiler(), int(self.input_size_))
        dev = self._device()
        net = self.module_.to(dev).eval()
        out = []
        bs = max(int(self.batch_size), 1) * 4
        with torch.no_grad():
            for s in range(0, tiles.shape[0], bs):
                out.append(torch.sigmoid(net(tiles[s:s + bs].to(dev)).float()).cpu().numpy())
        self.module_ = net.cpu()
        P = np.concatenate(out).astype(np.float64) if out else np.zeros((0, self.n_labels_))
        return P, bag, coords, len(images)

    def decision_function(self, X: Any) -> np.ndarray:
        """Image scores = class-wise max of tile probabilities (Eq. 7 before τ), n x K."""
        P, bag, _, n = self._tile_probabilities(X)
        return _bag_max(P, bag, n)

    def instance_scores(self, X: Any, return_coords: bool = False) -> Any:
        """Per-tile probabilities: a list of (n_tiles_i x K) arrays (with ``return_coords``,
        also the list of (n_tiles_i x 2) top-left (y, x) tile coordinates)."""
        P, bag, coords, n = self._tile_probabilities(X)
        cuts = np.searchsorted(bag, np.arange(1, n))
        scores = np.split(P, cuts)
        if return_coords:
            return scores, np.split(coords, cuts)
        return scores

    def tile_coords(self, X: Any) -> list[np.ndarray]:
        """Top-left (y, x) pixel coordinates of each image's tiles (same order as
        :meth:`instance_scores`)."""
        from mimlkit.datasets.tiling import as_rgb_uint8

        images = _image_list(X)
        tiler = self._tiler()
        return [tiler(as_rgb_uint8(images[i], where=f"image {i}"))[1]
                for i in range(len(images))]

    def save_heatmaps(self, X: Any, out_dir: str | Path, label_names: Sequence[str] | None = None,
                      max_labels: int = 6, dpi: int = 80) -> list[Path]:
        """One PNG per image: the image, then one panel per predicted label (the top label
        when none passes τ) with the tiles' scores for that label overlaid (max over
        overlapping tiles); tiles above τ are outlined. Returns the written paths."""
        from mimlkit._extras import require

        matplotlib = require("report", "matplotlib", "SelfPacedMIML.save_heatmaps")

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        from matplotlib.patches import Rectangle

        from mimlkit.datasets.tiling import as_rgb_uint8

        images = _image_list(X)
        scores, coords = self.instance_scores(images, return_coords=True)
        names = list(label_names) if label_names is not None else \
            [f"label {k}" for k in range(self.n_labels_)]
        if len(names) != self.n_labels_:
            raise ValueError(f"label_names has {len(names)} names, the model {self.n_labels_}")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        sources = images.sources if hasattr(images, "sources") else None
        ts, tau = int(self.tile_size), float(self.threshold_)
        paths = []
        for i in range(len(images)):
            img = as_rgb_uint8(images[i], where=f"image {i}")
            S, C = scores[i], coords[i]
            bag_s = S.max(axis=0)
            labs = np.flatnonzero(bag_s > tau)
            if labs.size == 0:
                labs = np.array([int(np.argmax(bag_s))])
            labs = labs[np.argsort(-bag_s[labs])][:max_labels]
            H, W = img.shape[:2]
            fig, axes = plt.subplots(1, 1 + len(labs), figsize=(3.0 * (1 + len(labs)), 3.2),
                                     squeeze=False)
            axes[0, 0].imshow(img)
            axes[0, 0].set_title("image", fontsize=9)
            for ax, k in zip(axes[0, 1:], labs):
                hm = np.full((H, W), np.nan)
                for (y, x), v in zip(C, S[:, k]):
                    sl = hm[y:y + ts, x:x + ts]
                    hm[y:y + ts, x:x + ts] = np.fmax(sl, v)
                ax.imshow(img)
                ax.imshow(hm, cmap="jet", alpha=0.45, vmin=0.0, vmax=1.0)
                for (y, x), v in zip(C, S[:, k]):
                    if v > tau:
                        ax.add_patch(Rectangle((x, y), min(ts, W - x) - 1, min(ts, H - y) - 1,
                                               fill=False, lw=1.2, ec="white"))
                ax.set_title(f"{names[k]} ({bag_s[k]:.2f})", fontsize=9)
            for ax in axes[0]:
                ax.axis("off")
            fig.tight_layout()
            stem = Path(sources[i]).stem if sources and not sources[i].startswith("<") \
                else "image"
            path = out / f"{i:05d}_{stem}.png"
            fig.savefig(path, dpi=dpi)
            plt.close(fig)
            paths.append(path)
        return paths
