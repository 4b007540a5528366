"""Multi-label and single-positive losses (``specs/multilabel_losses.md``), as torch modules.

Input contract (every loss): ``loss(logits, targets, observed=None, index=None)``

* ``logits``: float ``(B, c)`` scores (bag-level scores for MIML models);
* ``targets``: ``(B, c)`` with 1 = present, 0 = absent, -1 = unobserved;
* ``observed``: optional boolean ``(B, c)`` mask; ``False`` marks an entry unobserved whatever
  its target says;
* ``index``: ``(B,)`` long tensor of training-sample ids, required by losses that keep
  per-sample state (``needs_index = True``: ROLE's label estimates, APL's pseudo-labels,
  LL-Cp's permanent corrections). Include ``torch.arange(n)`` in the training tensors and pass
  the batch's slice (``MultiLabelHead`` does this).

``reduction`` is ``"mean"`` (default, over samples), ``"sum"`` (over samples) or ``"none"``
(one value per sample, shape ``(B,)``). Element-wise losses average over the ``c`` labels inside
each sample (``label_normalize=True``: the official single-positive code's ``sum / (B·c)``).
Batch-level terms (EPR, the high-rank regulariser) are added to every sample's value under
``"none"``, so that ``.mean()`` of the per-sample vector equals ``reduction="mean"``. Under
``reduction="sum"`` that per-sample addition makes a batch-level term count B times (B = batch
size): its effective weight grows with the batch. Use ``"mean"`` (the default) when the
regulariser's weight must not depend on B.

Unobserved entries: single-positive losses define their own treatment (that *is* the method);
losses that also make sense with full labels take ``unobserved="negative"`` (assume negative,
AN; the default) or ``"ignore"`` (masked out).

Stateful losses (epoch-dependent or curriculum state) implement ``set_epoch(epoch)`` and, when
``needs_epoch_scores = True``, ``epoch_update(epoch, scores, targets)``, called by the training
task at the *start* of every epoch with the current model's logits on the whole training set and
the observed label matrix. Their state lives in ``state_dict()`` (extra state), so trainer
checkpoints resume them exactly.

Everything runs in float32 on log-sum-exp / softplus forms: logits of ±100 give finite losses
and gradients. No global grad-mode toggling; focusing weights are ``.detach()``-ed only when
asked (``detach_weight=True``).
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MultiLabelLoss", "BCELoss", "WeightedANLoss", "LabelSmoothingLoss", "FocalLoss",
    "AsymmetricLoss", "ZLPRLoss", "OPMLLoss", "SoftOPMLLoss", "HighRankRegularizer",
    "EPRLoss", "ROLELoss", "LargeLossLoss", "EntMaxLoss", "APLLoss",
    "from_unit", "create_loss", "list_losses", "register_loss", "loss_class",
]

_NEG_INF = float("-inf")


# ----------------------------------------------------------------------------- helpers
def from_unit(a: float, mapping: str = "odds") -> float:
    """Map ``a ∈ (0, 1)`` to a positive constant (OPML's α = f(a), β = f(b); spec §1).

    ``"odds"``: a/(1-a) (recommended; ZLPR at a = 0.5), ``"inv_odds"``: (1-a)/a,
    ``"tan"``: tan(πa/2), ``"neglog"``: -ln a (puts ZLPR at 1/e).
    """
    a = float(a)
    if not 0.0 < a < 1.0:
        raise ValueError(f"a must lie in (0, 1), got {a}")
    if mapping == "odds":
        return a / (1.0 - a)
    if mapping == "inv_odds":
        return (1.0 - a) / a
    if mapping == "tan":
        return math.tan(math.pi * a / 2.0)
    if mapping == "neglog":
        return -math.log(a)
    raise ValueError(f"unknown mapping {mapping!r}; use odds, inv_odds, tan or neglog")


def _masks(logits: torch.Tensor, targets: torch.Tensor, observed: torch.Tensor | None
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """float logits, positive, observed-negative and unobserved boolean masks."""
    if logits.dim() != 2:
        raise ValueError(f"logits must be (batch, labels); got shape {tuple(logits.shape)}")
    if targets.shape != logits.shape:
        raise ValueError(f"targets shape {tuple(targets.shape)} != logits shape "
                         f"{tuple(logits.shape)}")
    s = logits.float()
    t = targets
    obs = t >= 0
    if observed is not None:
        if observed.shape != logits.shape:
            raise ValueError("observed mask must have the logits' shape")
        obs = obs & observed.bool()
    pos = obs & (t > 0.5)
    neg = obs & ~pos
    return s, pos, neg, ~obs


def _lse_pad(x: torch.Tensor, mask: torch.Tensor, log_pad: float | torch.Tensor) -> torch.Tensor:
    """Row-wise ``log(exp(log_pad) + Σ_{mask} exp(x))`` (the padded log-sum-exp)."""
    x = x.masked_fill(~mask, _NEG_INF)
    pad = torch.as_tensor(log_pad, dtype=x.dtype, device=x.device).expand(x.shape[0], 1)
    return torch.logsumexp(torch.cat([pad, x], dim=1), dim=1)


def _nll_pos(s: torch.Tensor) -> torch.Tensor:
    """-log σ(s), stable."""
    return F.softplus(-s)


def _nll_neg(s: torch.Tensor) -> torch.Tensor:
    """-log(1 - σ(s)), stable."""
    return F.softplus(s)


def _entropy(s: torch.Tensor) -> torch.Tensor:
    """Binary entropy H(σ(s)) in nats, stable for any s."""
    p = torch.sigmoid(s)
    return p * F.softplus(-s) + (1.0 - p) * F.softplus(s)


# ----------------------------------------------------------------------------- base class
class MultiLabelLoss(nn.Module):
    """Base class: reduction, masks, epoch state. Subclasses implement ``per_sample``."""

    needs_index: bool = False
    needs_epoch_scores: bool = False

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError("reduction must be 'mean', 'sum' or 'none'")
        self.reduction = reduction
        self.epoch = 0

    # -- state
    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def epoch_update(self, epoch: int, scores: torch.Tensor, targets: torch.Tensor) -> None:
        """Refresh epoch-level state from the training set's current logits (default: none)."""
        self.set_epoch(epoch)

    def _extra(self) -> dict[str, Any]:
        return {}

    def _load_extra(self, state: dict[str, Any]) -> None:
        pass

    def get_extra_state(self) -> dict[str, Any]:
        return {"epoch": self.epoch, **self._extra()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.epoch = int(state.get("epoch", 0))
        self._load_extra(state)

    @property
    def decision_threshold(self) -> float:
        """Logit above which a label is predicted present."""
        return 0.0

    # -- forward
    def per_sample(self, s: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor,
                   unobs: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, logits: torch.Tensor, targets: torch.Tensor,
                observed: torch.Tensor | None = None,
                index: torch.Tensor | None = None) -> torch.Tensor:
        s, pos, neg, unobs = _masks(logits, targets, observed)
        if self.needs_index and index is None and self.training:
            raise ValueError(f"{type(self).__name__} keeps per-sample state and needs "
                             "index= (the batch's training-sample ids)")
        values = self.per_sample(s, pos, neg, unobs, index)
        if self.reduction == "none":
            return values
        return values.sum() if self.reduction == "sum" else values.mean()


class _Elementwise(MultiLabelLoss):
    """Losses defined entry by entry; per-sample value = Σ_labels / c (``label_normalize``)."""

    def __init__(self, reduction: str = "mean", unobserved: str = "negative",
                 label_normalize: bool = True) -> None:
        super().__init__(reduction)
        if unobserved not in ("negative", "ignore"):
            raise ValueError("unobserved must be 'negative' (assume negative) or 'ignore'")
        self.unobserved = unobserved
        self.label_normalize = label_normalize

    def element(self, s: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor,
                unobs: torch.Tensor, index: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def _neg_set(self, neg: torch.Tensor, unobs: torch.Tensor) -> torch.Tensor:
        return neg | unobs if self.unobserved == "negative" else neg

    def per_sample(self, s, pos, neg, unobs, index):
        m = self.element(s, pos, neg, unobs, index)
        out = m.sum(dim=1)
        return out / s.shape[1] if self.label_normalize else out


# ----------------------------------------------------------------------------- BCE family
class BCELoss(_Elementwise):
    """Binary cross-entropy; under ``unobserved="negative"`` this is AN (assume negative,
    Eq. 7 of the OPML paper; Cole et al.'s ``loss_an``): −log p on positives, −log(1−p) on
    negatives and unobserved. ``"ignore"`` gives masked BCE for partial labels."""

    def element(self, s, pos, neg, unobs, index):
        n = self._neg_set(neg, unobs)
        zero = torch.zeros_like(s)
        return torch.where(pos, _nll_pos(s), torch.where(n, _nll_neg(s), zero))


class WeightedANLoss(_Elementwise):
    """WAN ("BCE+DW"): AN with the unobserved term down-weighted by ``unobserved_weight``
    (default 1/(c−1)), Cole et al.'s ``loss_wan``."""

    def __init__(self, unobserved_weight: float | None = None, reduction: str = "mean",
                 label_normalize: bool = True) -> None:
        super().__init__(reduction, "negative", label_normalize)
        self.unobserved_weight = unobserved_weight

    def element(self, s, pos, neg, unobs, index):
        c = s.shape[1]
        w = self.unobserved_weight if self.unobserved_weight is not None else 1.0 / max(c - 1, 1)
        zero = torch.zeros_like(s)
        return torch.where(pos, _nll_pos(s), torch.where(neg, _nll_neg(s),
                                                         torch.where(unobs, w * _nll_neg(s),
                                                                     zero)))


class LabelSmoothingLoss(_Elementwise):
    """Label smoothing under AN (``loss_an_ls``): positives (1−ε)(−log p) + ε(−log(1−p)),
    negatives/unobserved symmetric. ``negative_only=True`` is N-LS (positives unsmoothed)."""

    def __init__(self, ls_coef: float = 0.1, negative_only: bool = False,
                 reduction: str = "mean", unobserved: str = "negative",
                 label_normalize: bool = True) -> None:
        super().__init__(reduction, unobserved, label_normalize)
        self.ls_coef = ls_coef
        self.negative_only = negative_only

    def element(self, s, pos, neg, unobs, index):
        e = float(self.ls_coef)
        lp, ln = _nll_pos(s), _nll_neg(s)
        pos_v = lp if self.negative_only else (1 - e) * lp + e * ln
        neg_v = (1 - e) * ln + e * lp
        n = self._neg_set(neg, unobs)
        return torch.where(pos, pos_v, torch.where(n, neg_v, torch.zeros_like(s)))


class FocalLoss(_Elementwise):
    """Focal loss (Lin et al. 2017): −[y(1−p)^γ log p + (1−y) p^γ log(1−p)], optional α
    balancing (α on positives, 1−α on negatives). γ = 0 is BCE."""

    def __init__(self, gamma: float = 2.0, alpha: float | None = None,
                 detach_weight: bool = False, reduction: str = "mean",
                 unobserved: str = "negative", label_normalize: bool = True) -> None:
        super().__init__(reduction, unobserved, label_normalize)
        self.gamma = gamma
        self.alpha = alpha
        self.detach_weight = detach_weight

    def element(self, s, pos, neg, unobs, index):
        g = float(self.gamma)
        wp = torch.exp(g * F.logsigmoid(-s))  # (1-p)^γ
        wn = torch.exp(g * F.logsigmoid(s))   # p^γ
        if self.detach_weight:
            wp, wn = wp.detach(), wn.detach()
        vp, vn = wp * _nll_pos(s), wn * _nll_neg(s)
        if self.alpha is not None:
            vp, vn = self.alpha * vp, (1.0 - self.alpha) * vn
        n = self._neg_set(neg, unobs)
        return torch.where(pos, vp, torch.where(n, vn, torch.zeros_like(s)))


class AsymmetricLoss(_Elementwise):
    """ASL (Ridnik et al.; "ASY" in OPML Table V). With p_m = max(p − clip, 0):
    −[y(1−p)^{γ+} log p + (1−y) p_m^{γ−} log(1 − p_m)], logs clamped at ``eps``.
    Defaults (γ−, γ+, clip) = (4, 0, 0.05) as in the official training scripts. Focal is ASL
    with γ+ = γ− and clip = 0."""

    def __init__(self, gamma_neg: float = 4.0, gamma_pos: float = 0.0, clip: float = 0.05,
                 eps: float = 1e-8, detach_weight: bool = False, reduction: str = "mean",
                 unobserved: str = "negative", label_normalize: bool = True) -> None:
        super().__init__(reduction, unobserved, label_normalize)
        self.gamma_neg = gamma_neg
        self.gamma_pos = gamma_pos
        self.clip = clip
        self.eps = eps
        self.detach_weight = detach_weight

    def element(self, s, pos, neg, unobs, index):
        log_eps = math.log(self.eps)
        log_p = torch.clamp(F.logsigmoid(s), min=log_eps)
        wp = torch.exp(float(self.gamma_pos) * F.logsigmoid(-s))
        if self.clip and self.clip > 0:
            q = torch.clamp(torch.sigmoid(-s) + self.clip, max=1.0)  # 1 - p_m
            log_q = torch.clamp(torch.log(q), min=log_eps)
            pm = torch.clamp(torch.sigmoid(s) - self.clip, min=0.0)
            wn = pm.clamp_min(1e-30).pow(float(self.gamma_neg)) * (pm > 0)
        else:
            log_q = torch.clamp(F.logsigmoid(-s), min=log_eps)
            wn = torch.exp(float(self.gamma_neg) * F.logsigmoid(s))
        if self.detach_weight:
            wp, wn = wp.detach(), wn.detach()
        n = self._neg_set(neg, unobs)
        return torch.where(pos, -wp * log_p, torch.where(n, -wn * log_q, torch.zeros_like(s)))


# ----------------------------------------------------------------------------- high-rank
class HighRankRegularizer(nn.Module):
    """High-rank regulariser (OPML Eq. 10, spec §3): ``λ · (−Σ_{i≤min(B,c)} log(σ_i(P)² + δ))``
    with P the batch's (B × c) sigmoid predictions (``on="probs"``) or logits. Computed as
    ``−log det(G + δI)`` on the smaller Gram matrix G (B×B or c×c) by Cholesky in float64.
    ``delta=1e-6`` is close to the literal −log det(PᵀP); ``delta=1`` gives Fazel's
    log det(I + PᵀP)."""

    def __init__(self, lam: float = 1e-3, delta: float = 1e-6, on: str = "probs") -> None:
        super().__init__()
        if on not in ("probs", "logits"):
            raise ValueError("on must be 'probs' or 'logits'")
        self.lam = lam
        self.delta = delta
        self.on = on

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        P = torch.sigmoid(logits.float()) if self.on == "probs" else logits.float()
        P = P.double()
        B, c = P.shape
        G = P @ P.T if B <= c else P.T @ P
        G = G + self.delta * torch.eye(G.shape[0], dtype=G.dtype, device=G.device)
        L, info = torch.linalg.cholesky_ex(G)
        if int(info) == 0:
            logdet = 2.0 * torch.log(torch.diagonal(L)).sum()
        else:  # numerically not PD (tiny delta): fall back to slogdet
            logdet = torch.linalg.slogdet(G)[1]
        return (-self.lam * logdet).float()


# ----------------------------------------------------------------------------- ZLPR / OPML
class ZLPRLoss(MultiLabelLoss):
    """ZLPR (Su et al. 2022): log(1 + Σ_neg e^{s}) + log(1 + Σ_pos e^{−s}); positive iff s > 0.
    ``unobserved="negative"`` puts unobserved labels in the negative set (AN)."""

    def __init__(self, reduction: str = "mean", unobserved: str = "negative") -> None:
        super().__init__(reduction)
        if unobserved not in ("negative", "ignore"):
            raise ValueError("unobserved must be 'negative' or 'ignore'")
        self.unobserved = unobserved

    def per_sample(self, s, pos, neg, unobs, index):
        n = neg | unobs if self.unobserved == "negative" else neg
        return _lse_pad(-s, pos, 0.0) + _lse_pad(s, n, 0.0)


class OPMLLoss(MultiLabelLoss):
    """OPML (Eq. 6; Eq. 3 with one positive): log(α + Σ_{i∈Ω_p} e^{−s_i}) +
    log(β + Σ_{j∈Ω_n} e^{s_j}). Bounded below by log α + log β; α = β = 1 is ZLPR.

    Constants: raw ``alpha``/``beta`` > 0, or ``a``/``b`` ∈ (0, 1) through ``from_unit``
    (``mapping="odds"``: α = a/(1−a)), which override the raw values. Ω_n is the observed
    negatives plus (``unobserved="negative"``, the SPMLL reading) the unobserved labels.
    ``hr_lambda > 0`` adds the high-rank regulariser (Eq. 10) on the batch.
    Analytic gradients (Eq. 9): ∂L/∂s_i = −e^{−s_i}/(α + Σ_pos e^{−s}) on positives,
    ∂L/∂s_k = e^{s_k}/(β + Σ_neg e^{s}) on negatives.
    """

    def __init__(self, alpha: float = 1.0, beta: float = 1.0, a: float | None = None,
                 b: float | None = None, mapping: str = "odds", hr_lambda: float = 0.0,
                 hr_delta: float = 1e-6, reduction: str = "mean",
                 unobserved: str = "negative") -> None:
        super().__init__(reduction)
        if unobserved not in ("negative", "ignore"):
            raise ValueError("unobserved must be 'negative' or 'ignore'")
        self.alpha = from_unit(a, mapping) if a is not None else float(alpha)
        self.beta = from_unit(b, mapping) if b is not None else float(beta)
        if not (self.alpha > 0 and self.beta > 0):
            raise ValueError("OPML needs alpha > 0 and beta > 0")
        self.a, self.b, self.mapping = a, b, mapping
        self.unobserved = unobserved
        self.hr_lambda = hr_lambda
        self.high_rank = HighRankRegularizer(hr_lambda, hr_delta) if hr_lambda else None

    @property
    def decision_threshold(self) -> float:
        """Midpoint between the virtual positive (−log α) and negative (log β) logits."""
        return 0.5 * (math.log(self.beta) - math.log(self.alpha))

    def _neg_set(self, neg, unobs):
        return neg | unobs if self.unobserved == "negative" else neg

    def per_sample(self, s, pos, neg, unobs, index):
        out = _lse_pad(-s, pos, math.log(self.alpha)) + \
            _lse_pad(s, self._neg_set(neg, unobs), math.log(self.beta))
        if self.high_rank is not None:
            out = out + self.high_rank(s)
        return out


class SoftOPMLLoss(OPMLLoss):
    """Soft OPML (Eq. 11, spec §4.1) with AP-based adaptive smoothing:

    log(α + Σ_pos e^{−s} + Σ_{j∈Ω_u} ε_ij e^{−s_j}) + log(β + Σ_{j∈Ω_u} (1−ε_ij) e^{s_j}
    + Σ_{obs. neg} e^{s})

    ε_ij (detached) from the per-label training AP (refreshed by ``epoch_update`` once per
    epoch, against the observed labels, unobserved counted as 0) and the current prediction
    p_ij: ``eps_form="ap_p"`` (recommended) (AP_j·p_ij)^γ; ``"ap_pow"`` AP_j^γ·p_ij;
    ``"p_pow"`` AP_j·p_ij^γ. ε = 0 (before the first update or during ``warmup_epochs``)
    recovers OPML. ``eps_scale`` multiplies ε (use with a smoothing schedule).
    """

    needs_epoch_scores = True

    def __init__(self, alpha: float = 1.0, beta: float = 1.0, a: float | None = None,
                 b: float | None = None, mapping: str = "odds", gamma: float = 1.0,
                 eps_form: str = "ap_p", eps_scale: float = 1.0, warmup_epochs: int = 1,
                 hr_lambda: float = 0.0, hr_delta: float = 1e-6,
                 reduction: str = "mean") -> None:
        super().__init__(alpha, beta, a, b, mapping, hr_lambda, hr_delta, reduction, "negative")
        if eps_form not in ("ap_p", "ap_pow", "p_pow"):
            raise ValueError("eps_form must be 'ap_p', 'ap_pow' or 'p_pow'")
        self.gamma = gamma
        self.eps_form = eps_form
        self.eps_scale = eps_scale
        self.warmup_epochs = warmup_epochs
        self.label_ap: torch.Tensor | None = None

    def _extra(self):
        return {"label_ap": None if self.label_ap is None else self.label_ap.cpu()}

    def _load_extra(self, state):
        self.label_ap = state.get("label_ap")

    def epoch_update(self, epoch, scores, targets):
        from mimlkit.deep.spmll import per_label_ap

        self.set_epoch(epoch)
        y = (torch.as_tensor(targets) > 0.5).cpu().numpy()
        ap = per_label_ap(y, torch.as_tensor(scores).float().cpu().numpy())
        self.label_ap = torch.as_tensor(ap, dtype=torch.float32)

    def smoothing(self, s: torch.Tensor) -> torch.Tensor | None:
        """ε matrix for logits ``s`` (detached), or ``None`` when smoothing is off."""
        if self.label_ap is None or self.epoch < self.warmup_epochs or self.eps_scale == 0:
            return None
        ap = self.label_ap.to(s.device)[None, :]
        p = torch.sigmoid(s.detach())
        g = float(self.gamma)
        if self.eps_form == "ap_p":
            eps = (ap * p).pow(g)
        elif self.eps_form == "ap_pow":
            eps = ap.pow(g) * p
        else:
            eps = ap * p.pow(g)
        return (self.eps_scale * eps).clamp(0.0, 1.0 - 1e-6)

    def per_sample(self, s, pos, neg, unobs, index):
        eps = self.smoothing(s)
        if eps is None:
            return super().per_sample(s, pos, neg, unobs, index)
        log_e = torch.log(eps)          # -inf where ε = 0 (constant: no gradient path)
        log_1e = torch.log1p(-eps)
        xp = torch.where(unobs, -s + log_e, -s)
        xn = torch.where(unobs, s + log_1e, s)
        out = _lse_pad(xp, pos | unobs, math.log(self.alpha)) + \
            _lse_pad(xn, neg | unobs, math.log(self.beta))
        if self.high_rank is not None:
            out = out + self.high_rank(s)
        return out


# ----------------------------------------------------------------------------- EPR / ROLE
def _epr_term(p: torch.Tensor, k: float) -> torch.Tensor:
    """Expected-positive regulariser (mean_b Σ_j p_bj − k)² / c² (Cole et al.)."""
    c = p.shape[1]
    return (p.sum(dim=1).mean() - k) ** 2 / (c * c)


class EPRLoss(MultiLabelLoss):
    """EPR (Cole et al.): −log p on observed positives (Σ/c per sample) + the
    expected-positive regulariser (mean_b Σ_j p_bj − k)²/c² with k = ``expected_num_pos``
    (an oracle quantity; the training cardinality). Observed negatives get −log(1−p)."""

    def __init__(self, expected_num_pos: float | None = None, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.expected_num_pos = expected_num_pos

    def per_sample(self, s, pos, neg, unobs, index):
        if self.expected_num_pos is None:
            raise ValueError("EPR needs expected_num_pos (the expected positives per sample)")
        c = s.shape[1]
        zero = torch.zeros_like(s)
        m = torch.where(pos, _nll_pos(s), torch.where(neg, _nll_neg(s), zero))
        return m.sum(1) / c + _epr_term(torch.sigmoid(s), float(self.expected_num_pos))


class ROLELoss(MultiLabelLoss):
    """ROLE (Cole et al.): jointly learns label estimates g (one logit per training sample and
    label, an ``nn.Parameter`` of shape ``(n_samples, n_labels)`` held by this module) with the
    classifier f:

    ½[−log f_pos − log g_pos] + ½[BCE(f, sg(g)) + BCE(g, sg(f))] + ½[EPR(f) + EPR(g)]

    (cross terms over all entries, Σ/c per sample; sg = stop-gradient). Needs ``index`` (the
    batch's sample ids; rows of g). Give g its own learning rate: ``lr_mult`` (default 10) is
    honoured by ``MultiLabelHead``'s optimizer groups. ``reset_estimates(targets)``
    initialises g from the observed matrix: positives at logit(0.995), observed negatives at
    logit(0.005), unobserved uniform in ±logit(0.6) (seeded).
    """

    needs_index = True

    def __init__(self, n_samples: int, n_labels: int, expected_num_pos: float | None = None,
                 lr_mult: float = 10.0, seed: int = 0, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.expected_num_pos = expected_num_pos
        self.lr_mult = lr_mult
        self.seed = seed
        self.estimates = nn.Parameter(torch.zeros(int(n_samples), int(n_labels)))
        self.reset_estimates()

    @torch.no_grad()
    def reset_estimates(self, targets: Any = None) -> None:
        g = torch.Generator().manual_seed(int(self.seed))
        q = math.log(0.6 / 0.4)
        w = (2 * torch.rand(self.estimates.shape, generator=g) - 1) * q
        if targets is not None:
            t = torch.as_tensor(np.asarray(targets))
            if t.shape != self.estimates.shape:
                raise ValueError(f"targets shape {tuple(t.shape)} != estimates "
                                 f"{tuple(self.estimates.shape)}")
            w[t == 1] = math.log(0.995 / 0.005)
            w[t == 0] = math.log(0.005 / 0.995)
        self.estimates.copy_(w.to(self.estimates.device))

    def per_sample(self, s, pos, neg, unobs, index):
        if self.expected_num_pos is None:
            raise ValueError("ROLE needs expected_num_pos")
        if index is None:  # evaluation without ids: plain AN-BCE on f
            return torch.where(pos, _nll_pos(s), _nll_neg(s)).mean(1)
        gl = self.estimates[index].float()
        c = s.shape[1]
        f_p, g_p = torch.sigmoid(s), torch.sigmoid(gl)
        zero = torch.zeros_like(s)
        pos_part = 0.5 * torch.where(pos, _nll_pos(s) + _nll_pos(gl), zero)
        gd, fd = g_p.detach(), f_p.detach()
        cross = 0.5 * (gd * _nll_pos(s) + (1 - gd) * _nll_neg(s)
                       + fd * _nll_pos(gl) + (1 - fd) * _nll_neg(gl))
        k = float(self.expected_num_pos)
        reg = 0.5 * (_epr_term(f_p, k) + _epr_term(g_p, k))
        return (pos_part + cross).sum(1) / c + reg


# ----------------------------------------------------------------------------- large loss
class LargeLossLoss(MultiLabelLoss):
    """Large-loss rejection / correction (Kim et al., LL-R / LL-Ct / LL-Cp) on AN-BCE.

    In epoch e (0-based) the clean rate is ``1 − e·delta_rel``; among the batch's unobserved
    entries the ``k = ceil(B·c·(1 − clean_rate))`` largest losses are rejected (``mode="r"``:
    set to 0) or corrected for this step (``"ct"``: replaced by BCE toward 1). ``"cp"``
    corrects ``k = ceil(B·c·delta_rel)`` entries (from epoch 1 on) permanently: they are
    remembered per sample (needs ``index`` and ``n_samples``) and treated as positives
    afterwards. ``delta_rel`` is a fraction (the official code's percent / 100).
    Outside training mode (``.eval()``) it is plain AN-BCE.
    """

    def __init__(self, mode: str = "r", delta_rel: float = 0.002, n_samples: int | None = None,
                 n_labels: int | None = None, reduction: str = "mean") -> None:
        super().__init__(reduction)
        if mode not in ("r", "ct", "cp"):
            raise ValueError("mode must be 'r', 'ct' or 'cp'")
        self.mode = mode
        self.delta_rel = delta_rel
        self.n_samples = n_samples
        self.n_labels = n_labels
        self.corrected: torch.Tensor | None = None
        if mode == "cp" and n_samples is not None and n_labels is not None:
            self.corrected = torch.zeros(int(n_samples), int(n_labels), dtype=torch.bool)

    @property
    def needs_index(self) -> bool:  # type: ignore[override]
        return self.mode == "cp" and self.corrected is not None

    def _extra(self):
        return {"corrected": self.corrected}

    def _load_extra(self, state):
        self.corrected = state.get("corrected")

    def rejection_rate(self, epoch: int | None = None) -> float:
        e = self.epoch if epoch is None else epoch
        if self.mode == "cp":
            return float(self.delta_rel) if e >= 1 else 0.0
        return float(min(max(e * self.delta_rel, 0.0), 1.0))

    def per_sample(self, s, pos, neg, unobs, index):
        if self.corrected is not None and index is not None:
            extra = self.corrected.to(s.device)[index]
            pos, unobs = pos | (extra & unobs), unobs & ~extra
        lp, ln = _nll_pos(s), _nll_neg(s)
        m = torch.where(pos, lp, ln)
        rate = self.rejection_rate()
        if self.training and rate > 0 and unobs.any():
            k = min(math.ceil(s.numel() * rate), int(unobs.sum()))
            if k > 0:
                cand = torch.where(unobs, ln.detach(), torch.full_like(ln, _NEG_INF))
                top = torch.topk(cand.flatten(), k).indices
                sel = torch.zeros(s.numel(), dtype=torch.bool, device=s.device)
                sel[top] = True
                sel = sel.view_as(s)
                if self.mode == "r":
                    m = torch.where(sel, torch.zeros_like(m), m)
                else:
                    m = torch.where(sel, lp, m)
                    if self.mode == "cp" and self.corrected is not None and index is not None:
                        rows = torch.zeros_like(self.corrected)
                        rows_idx = index.cpu()
                        rows[rows_idx] = sel.cpu()
                        self.corrected |= rows
        return m.sum(1) / s.shape[1]


# ----------------------------------------------------------------------------- EM / APL
class EntMaxLoss(MultiLabelLoss):
    """Entropy maximisation (Zhou et al., ``loss_EM``): −log p on observed positives,
    −α·H(p) on unobserved, −log(1−p) on observed negatives; Σ/c per sample."""

    def __init__(self, alpha: float = 0.1, reduction: str = "mean") -> None:
        super().__init__(reduction)
        self.alpha = alpha

    def per_sample(self, s, pos, neg, unobs, index):
        zero = torch.zeros_like(s)
        m = torch.where(pos, _nll_pos(s), torch.where(neg, _nll_neg(s), zero))
        m = m - torch.where(unobs, self.alpha * _entropy(s), zero)
        return m.sum(1) / s.shape[1]


class APLLoss(EntMaxLoss):
    """EntMax + asymmetric pseudo-labelling (Zhou et al., ``loss_EM_APL``).

    At the start of every epoch e ≥ ``warmup_epochs`` (i.e. after the warm-up epochs ended),
    per label j, the ⌊θ·|U_j| / (T − T_warm)⌋ still-unobserved samples with the lowest scores
    get a permanent soft negative label p̃ = σ(score) (|U_j| = initially unobserved count,
    T = ``total_epochs``). Their loss is β·[p̃(−log q) + (1 − p̃)(−log(1 − q))]; other
    unobserved entries keep −α·H(q). Needs ``index``, ``n_samples``, ``n_labels``."""

    needs_index = True
    needs_epoch_scores = True

    def __init__(self, n_samples: int, n_labels: int, alpha: float = 0.1, beta: float = 0.2,
                 theta: float = 0.9, warmup_epochs: int = 1, total_epochs: int = 10,
                 reduction: str = "mean") -> None:
        super().__init__(alpha, reduction)
        self.beta = beta
        self.theta = theta
        self.warmup_epochs = warmup_epochs
        self.total_epochs = total_epochs
        self.pseudo = torch.full((int(n_samples), int(n_labels)), float("nan"))
        self.n_unobserved: torch.Tensor | None = None

    def _extra(self):
        return {"pseudo": self.pseudo, "n_unobserved": self.n_unobserved}

    def _load_extra(self, state):
        self.pseudo = state["pseudo"]
        self.n_unobserved = state.get("n_unobserved")

    @torch.no_grad()
    def epoch_update(self, epoch, scores, targets):
        self.set_epoch(epoch)
        t = torch.as_tensor(targets).cpu()
        unobs = t < 0
        if self.n_unobserved is None:
            self.n_unobserved = unobs.sum(0)
        if epoch < self.warmup_epochs:
            return
        span = max(int(self.total_epochs) - int(self.warmup_epochs), 1)
        sc = torch.as_tensor(scores).float().cpu()
        free = unobs & torch.isnan(self.pseudo)
        for j in range(t.shape[1]):  # per label (c is small); vectorised over samples
            quota = int(math.floor(self.theta * float(self.n_unobserved[j]) / span))
            cand = torch.nonzero(free[:, j]).flatten()
            if quota <= 0 or cand.numel() == 0:
                continue
            order = torch.argsort(sc[cand, j])[:quota]
            rows = cand[order]
            self.pseudo[rows, j] = torch.sigmoid(sc[rows, j])

    def per_sample(self, s, pos, neg, unobs, index):
        if index is None:
            return super().per_sample(s, pos, neg, unobs, index)
        pt = self.pseudo.to(s.device)[index]
        has = unobs & ~torch.isnan(pt)
        pt = torch.nan_to_num(pt, nan=0.0)
        zero = torch.zeros_like(s)
        m = torch.where(pos, _nll_pos(s), torch.where(neg, _nll_neg(s), zero))
        m = m - torch.where(unobs & ~has, self.alpha * _entropy(s), zero)
        m = m + torch.where(has, self.beta * (pt * _nll_pos(s) + (1 - pt) * _nll_neg(s)), zero)
        return m.sum(1) / s.shape[1]


# ----------------------------------------------------------------------------- registry
_CONTEXT_KEYS = ("n_samples", "n_labels", "total_epochs")
_LOSSES: dict[str, tuple[type, dict[str, Any], str]] = {}


def register_loss(name: str, cls: type, *, description: str = "", overwrite: bool = False,
                  **preset: Any) -> None:
    """Register a loss class (with preset keyword arguments) under ``name``."""
    key = name.lower()
    if key in _LOSSES and not overwrite:
        raise ValueError(f"loss {name!r} already registered")
    _LOSSES[key] = (cls, dict(preset), description)


def loss_class(name: str) -> type:
    key = name.lower()
    if key not in _LOSSES:
        raise KeyError(f"unknown loss {name!r}; known: {', '.join(sorted(_LOSSES))}")
    return _LOSSES[key][0]


def list_losses() -> list[str]:
    """Registered loss names."""
    return sorted(_LOSSES)


def create_loss(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate a registered loss. Context keywords (``n_samples``, ``n_labels``,
    ``total_epochs``) are passed only to losses whose constructor takes them, so a training
    loop may always supply them."""
    key = name.lower()
    if key not in _LOSSES:
        raise KeyError(f"unknown loss {name!r}; known: {', '.join(sorted(_LOSSES))}")
    cls, preset, _ = _LOSSES[key]
    params = set(inspect.signature(cls.__init__).parameters)
    kw = {**preset, **kwargs}
    for k in _CONTEXT_KEYS:
        if k in kw and k not in params:
            kw.pop(k)
    return cls(**kw)


for _name, _cls, _preset, _desc in [
    ("bce", BCELoss, {}, "binary cross-entropy (AN on unobserved by default)"),
    ("an", BCELoss, {"unobserved": "negative"}, "assume negative (AN-BCE)"),
    ("wan", WeightedANLoss, {}, "weighted assume negative (BCE+DW)"),
    ("ls", LabelSmoothingLoss, {}, "label smoothing under AN"),
    ("nls", LabelSmoothingLoss, {"negative_only": True}, "negative-only label smoothing"),
    ("focal", FocalLoss, {}, "focal loss"),
    ("asl", AsymmetricLoss, {}, "asymmetric loss (ASL)"),
    ("zlpr", ZLPRLoss, {}, "zero-bounded log-sum-exp pairwise loss"),
    ("opml", OPMLLoss, {}, "one pair of labels apart (OPML, Eq. 6)"),
    ("opml_hr", OPMLLoss, {"hr_lambda": 1e-3}, "OPML + high-rank regulariser"),
    ("opml_soft", SoftOPMLLoss, {}, "soft OPML with AP-based smoothing (Eq. 11)"),
    ("epr", EPRLoss, {}, "expected positive regulariser"),
    ("role", ROLELoss, {}, "regularised online label estimation"),
    ("ll_r", LargeLossLoss, {"mode": "r"}, "large-loss rejection"),
    ("ll_ct", LargeLossLoss, {"mode": "ct"}, "large-loss temporary correction"),
    ("ll_cp", LargeLossLoss, {"mode": "cp"}, "large-loss permanent correction"),
    ("entmax", EntMaxLoss, {}, "entropy maximisation on unobserved labels"),
    ("apl", APLLoss, {}, "EntMax + asymmetric pseudo-labelling"),
    ("entmax_apl", APLLoss, {}, "alias of apl"),
]:
    register_loss(_name, _cls, description=_desc, **_preset)
