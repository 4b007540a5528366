"""Building blocks of the self-paced deep MIML learner (:mod:`mimlkit.deep.selfpaced`; Jiang
et al., "Self-Paced Learning for Images of Antinuclear Antibodies", IEEE TMI;
``specs/self_paced_miml.md``).

What is here (the estimator is in :mod:`mimlkit.deep.selfpaced`, which re-exports every
public name below; its networks, trainer task and metrics are in ``selfpaced_images``,
``selfpaced_mlp``, ``selfpaced_task`` and ``selfpaced_metrics``):

* switch values (``GRANULARITIES``, ``INITS``, ``SAMPLINGS``, ``PSEUDO_LABELS``,
  ``COEFFICIENTS``) and the paper's Table III rows (:data:`TABLE_III`, :func:`table3_params`);
* label-combination groups (:func:`group_rows`) and the label-aware learning-rate coefficient
  ``λ = ln(m)/ln(C)`` (:func:`label_aware_coefficients`; §2.5 of the spec, no paper formula);
* α initialisation (:func:`init_alpha`): Eq. 11a ("data"), Eq. 11b ("sample") and Eq. 12
  (softmax over label-combination groups, :func:`_group_softmax`);
* the instance sampler's weights (:func:`sampler_weights`, Eq. 5);
* the pseudo-label dispatcher (:func:`dispatch_targets`, Eq. 8);
* the self-paced loss (:func:`self_paced_bce`, Eq. 10);
* the curriculum state (:class:`AlphaStore`: α, groups, coefficients, stored pseudo-labels) and
  the row-wise optimiser for α (:class:`SelfPacedAdam`), whose α step is the pure function
  :func:`alpha_update` (``"adam"``: the authors' code; ``"sgd"`` / ``"proportional"``:
  loss-aware extensions, see :data:`ALPHA_OPTIMIZERS`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "GRANULARITIES",
    "INITS",
    "SAMPLINGS",
    "PSEUDO_LABELS",
    "COEFFICIENTS",
    "ALPHA_OPTIMIZERS",
    "TABLE_III",
    "table3_params",
    "group_rows",
    "label_aware_coefficients",
    "init_alpha",
    "sampler_weights",
    "ohem_weights",
    "dispatch_targets",
    "self_paced_bce",
    "AlphaStore",
    "SelfPacedAdam",
    "alpha_update",
]

GRANULARITIES = ("label", "instance", "none")
INITS = ("ones", "data", "sample", "instance", "data_softmax", "sample_softmax")
#: tile sampling strategies: "weighted" (Eq. 5, the method), "uniform" (a shuffled pass, Table
#: III's ×), and the Fig. 4b alternatives "random" (N draws with replacement, equal
#: probability) and "ohem" (N draws with probability ∝ the tile's loss at its last visit:
#: online hard example mining as an epoch-level sampler; see :func:`ohem_weights`).
SAMPLINGS = ("weighted", "uniform", "random", "ohem")
PSEUDO_LABELS = ("soft", "bernoulli", "bag")
COEFFICIENTS = ("label_aware", "none")
#: α update rules of :func:`alpha_update`: "adam" (the authors' code, default), "sgd" (plain
#: gradient step, α -= lr·λ·∂L/∂α) and "proportional" (gradient step normalised by the mean
#: |∂L/∂α| of the cells used at that step: scale-free like Adam, loss-ordered like SGD).
ALPHA_OPTIMIZERS = ("adam", "sgd", "proportional")


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


def ohem_weights(last_loss: np.ndarray, floor: float = 1e-3) -> np.ndarray | None:
    """Fig. 4b's OHEM baseline as draw weights: each tile's loss at its last visit (NaN =
    not yet visited); unvisited tiles get the mean recorded loss, and every weight at least
    ``floor`` × that mean so no tile is starved. ``None`` when nothing is recorded yet
    (epoch 0: a plain shuffled pass)."""
    v = np.asarray(last_loss, dtype=np.float64)
    seen = np.isfinite(v)
    if not seen.any():
        return None
    mean = float(v[seen].mean())
    if not mean > 0:
        return None
    w = np.where(seen, v, mean)
    return np.maximum(w, floor * mean)


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


# ============================================================================ α update
@torch.no_grad()
def alpha_update(grad: torch.Tensor, lr: Any, mode: str = "adam",
                 state: dict | None = None, active: torch.Tensor | None = None,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
                 ) -> torch.Tensor:
    """The step Δ of one α update (the caller does ``α -= Δ``), row-wise learning rates.

    grad : ∂L/∂α, (N, K) or (N,); lr : scalar or per-row (N,) learning rates (``alpha_lr·λ``);
    active : bool (N,), rows updated at this step (default all; inactive rows get Δ = 0 and
    keep their Adam moments); state : per-tensor dict (Adam moments ``exp_avg``,
    ``exp_avg_sq``, per-row step counts ``row_step``), created and updated in place.

    * ``"adam"`` (the authors' code): Δ = lr·m̂/(√v̂ + ε) with per-row bias correction. The
      step is invariant to the gradient's scale: a cell's α falls by ≈ lr per use whatever
      its loss (spec §2.5).
    * ``"sgd"``: Δ = lr·g. With g = z·(−log p) (label granularity) the step is the loss
      itself: high-loss (hard, ambiguous) cells lose weight faster — the classical
      self-paced reading. It scales with the loss, so it depends on ``reduction`` and on
      ``alpha_lr`` (0.05–0.5 is a typical range, not the 1e-3 of the Adam setting).
    * ``"proportional"``: Δ = lr·g / mean(|g| over the cells with g ≠ 0 at this step): the
      mean step of the used cells is lr (as under Adam, so ``alpha_lr`` keeps its meaning and
      a global loss scale cancels) but cells are ordered by loss as under SGD.
    """
    n = grad.shape[0]
    shape = (n,) + (1,) * (grad.dim() - 1)
    lr_t = torch.as_tensor(lr, dtype=grad.dtype, device=grad.device)
    lr_t = (lr_t.expand(n) if lr_t.dim() == 0 else lr_t).reshape(shape)
    if active is None:
        active = torch.ones(n, dtype=torch.bool, device=grad.device)
    a = active.view(shape)
    state = {} if state is None else state
    if "row_step" not in state:
        state["row_step"] = torch.zeros(n, dtype=grad.dtype, device=grad.device)
    state["row_step"].add_(active.to(grad.dtype))
    if mode == "sgd":
        step = lr_t * grad
    elif mode == "proportional":
        nz = grad != 0
        scale = grad.abs().sum() / nz.sum().clamp(min=1)
        step = lr_t * grad / torch.where(scale > 0, scale, torch.ones_like(scale))
    elif mode == "adam":
        if "exp_avg" not in state:
            state["exp_avg"] = torch.zeros_like(grad)
            state["exp_avg_sq"] = torch.zeros_like(grad)
        b1, b2 = betas
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m.copy_(torch.where(a, m * b1 + grad * (1 - b1), m))
        v.copy_(torch.where(a, v * b2 + grad * grad * (1 - b2), v))
        kk = state["row_step"].clamp(min=1).view(shape)
        step = lr_t * (m / (1 - b1 ** kk)) / ((v / (1 - b2 ** kk)).sqrt() + eps)
    else:
        raise ValueError(f"alpha_optimizer must be one of {ALPHA_OPTIMIZERS}, got {mode!r}")
    return torch.where(a, step, torch.zeros_like(step))


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

    A row-wise group's ``"alpha_optimizer"`` key picks the step rule of :func:`alpha_update`
    (``"adam"`` default; ``"sgd"``, ``"proportional"``; the older ``row_sgd=True`` = "sgd").

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
        mode = group.get("alpha_optimizer") or ("sgd" if group.get("row_sgd") else "adam")
        p.sub_(alpha_update(g, group["lr"] * lam, mode, state, act, group["betas"],
                            group["eps"]))

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
