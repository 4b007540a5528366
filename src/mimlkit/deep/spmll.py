"""Single-positive multi-label learning (SPMLL) tools (``specs/multilabel_losses.md`` §4.2, §6).

* :func:`make_single_positive` — keep one random positive per training sample (seeded, fixed
  once); every other entry becomes -1 (unobserved).
* :func:`spmll_split` / :class:`SPMLLProtocol` — the protocol of Cole et al.: 20% of the
  official training set held out as a fully labelled validation split (``split_seed=1200``),
  one positive kept per remaining training row (``label_seed=1200``); save / load to JSON.
* :func:`per_label_ap` — per-label average precision (scikit-learn's step-wise definition,
  ties grouped; AP = 0 for labels without positives, as in Cole's ``metrics.py``).
* :class:`APLabelCorrector` — OPML's AP-based label correction (Algorithm 1 reconstruction):
  once per epoch, per label j, flip the top-k_j unobserved entries by score to positive,
  permanently, with k_j = ⌊scale · base_j · (1 − AP_j)⌋ (``base="n_j"``: observed positives of
  label j, recommended; ``"n"``: number of samples), optionally capped.
* :class:`SmoothingSchedule` — epoch → value schedules (constant, linear, cosine, step) for
  smoothing coefficients (``ls_coef``, ``eps_scale``, ...), applied by :func:`apply_schedules`.

Only numpy at import time (torch tensors are accepted where noted).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["make_single_positive", "spmll_split", "SPMLLProtocol", "per_label_ap",
           "mean_ap", "APLabelCorrector", "hidden_positive_budget", "SmoothingSchedule",
           "apply_schedules"]


def _asnumpy(a: Any) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a)


# ----------------------------------------------------------------------------- metrics
def per_label_ap(Y: Any, scores: Any) -> np.ndarray:
    """Average precision of each label (column); ``Y`` > 0 counts as positive.

    Step-wise AP = Σ_k (R_k − R_{k−1}) P_k over distinct score thresholds (scikit-learn's
    ``average_precision_score``); labels without positives get 0.
    """
    Y = _asnumpy(Y) > 0
    S = _asnumpy(scores).astype(np.float64)
    if Y.shape != S.shape or Y.ndim != 2:
        raise ValueError(f"Y {Y.shape} and scores {S.shape} must be equal 2-D shapes")
    n, c = Y.shape
    order = np.argsort(-S, axis=0, kind="mergesort")
    ys = np.take_along_axis(Y, order, axis=0).astype(np.float64)
    ss = np.take_along_axis(S, order, axis=0)
    tps = np.cumsum(ys, axis=0)
    npos = tps[-1] if n else np.zeros(c)
    ap = np.zeros(c)
    for j in range(c):  # ties differ per column; c is small
        if npos[j] == 0:
            continue
        last = np.r_[np.flatnonzero(np.diff(ss[:, j]) != 0), n - 1]  # end of each tie group
        tp = tps[last, j]
        prec = tp / (last + 1)
        rec = tp / npos[j]
        ap[j] = np.sum(np.diff(np.r_[0.0, rec]) * prec)
    return ap


def mean_ap(Y: Any, scores: Any) -> float:
    """mAP (mean of :func:`per_label_ap`, labels without positives count as 0)."""
    return float(per_label_ap(Y, scores).mean())


# ----------------------------------------------------------------------------- observed labels
def make_single_positive(Y: Any, random_state: int | np.random.Generator | None = 1200,
                         no_positive: str = "unobserved") -> np.ndarray:
    """One uniformly drawn positive per row is kept (1); everything else becomes -1.

    ``no_positive``: rows without any positive stay all -1 (``"unobserved"``, default; they
    then train only through the unobserved treatment of the loss) or raise (``"error"``).
    Returns an int8 matrix. The draw is vectorised and depends only on ``random_state``.
    """
    Y = _asnumpy(Y)
    if Y.ndim != 2:
        raise ValueError("Y must be a 2-D label matrix")
    if np.any((Y != 0) & (Y != 1)):
        bad = np.argwhere((Y != 0) & (Y != 1))[0]
        raise ValueError(f"Y must be a full 0/1 matrix; row {bad[0]}, label {bad[1]} "
                         f"holds {Y[tuple(bad)]}")
    if no_positive not in ("unobserved", "error"):
        raise ValueError("no_positive must be 'unobserved' or 'error'")
    rng = random_state if isinstance(random_state, np.random.Generator) else \
        np.random.default_rng(random_state)
    pos = Y == 1
    counts = pos.sum(1)
    if no_positive == "error" and (counts == 0).any():
        raise ValueError(f"row {int(np.flatnonzero(counts == 0)[0])} has no positive label")
    u = rng.random(Y.shape[0])
    pick = np.floor(u * np.maximum(counts, 1)).astype(np.int64)  # rank among the positives
    csum = np.cumsum(pos, axis=1) - 1  # rank of each positive within its row
    keep = pos & (csum == pick[:, None])
    out = np.full(Y.shape, -1, dtype=np.int8)
    out[keep] = 1
    return out


def spmll_split(n: int, val_frac: float = 0.2, split_seed: int = 1200
                ) -> tuple[np.ndarray, np.ndarray]:
    """Protocol train / validation indices of the official training set (sorted)."""
    if not 0.0 <= val_frac < 1.0:
        raise ValueError("val_frac must be in [0, 1)")
    perm = np.random.default_rng(split_seed).permutation(n)
    n_val = int(round(val_frac * n))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


@dataclass
class SPMLLProtocol:
    """The SPMLL protocol on a fully labelled training set (Cole et al.; spec §6).

    ``fit(Y_train_full)`` draws the validation split and the kept positives; the result is
    ``train_idx``, ``val_idx`` (into the official training set) and ``Y_observed`` (rows of
    ``train_idx``; one 1 per row, the rest -1). ``save``/``load`` write a small JSON with the
    seeds, the indices and each row's kept label.
    """

    val_frac: float = 0.2
    split_seed: int = 1200
    label_seed: int = 1200
    no_positive: str = "unobserved"
    train_idx: np.ndarray | None = field(default=None, repr=False)
    val_idx: np.ndarray | None = field(default=None, repr=False)
    Y_observed: np.ndarray | None = field(default=None, repr=False)

    def fit(self, Y_full: Any) -> SPMLLProtocol:
        Y_full = _asnumpy(Y_full)
        self.train_idx, self.val_idx = spmll_split(len(Y_full), self.val_frac, self.split_seed)
        self.Y_observed = make_single_positive(Y_full[self.train_idx], self.label_seed,
                                               self.no_positive)
        return self

    @property
    def kept_label(self) -> np.ndarray:
        """Kept positive label per training row (-1 when the row had none)."""
        if self.Y_observed is None:
            raise ValueError("call fit first")
        has = (self.Y_observed == 1).any(1)
        return np.where(has, np.argmax(self.Y_observed == 1, axis=1), -1)

    def to_dict(self) -> dict[str, Any]:
        return {"val_frac": self.val_frac, "split_seed": self.split_seed,
                "label_seed": self.label_seed, "no_positive": self.no_positive,
                "n_labels": int(self.Y_observed.shape[1]),
                "train_idx": self.train_idx.tolist(), "val_idx": self.val_idx.tolist(),
                "kept_label": self.kept_label.tolist()}

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict()) + "\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> SPMLLProtocol:
        d = json.loads(Path(path).read_text())
        p = cls(d["val_frac"], d["split_seed"], d["label_seed"], d.get("no_positive",
                                                                       "unobserved"))
        p.train_idx = np.asarray(d["train_idx"], dtype=np.int64)
        p.val_idx = np.asarray(d["val_idx"], dtype=np.int64)
        kept = np.asarray(d["kept_label"], dtype=np.int64)
        Y = np.full((len(kept), int(d["n_labels"])), -1, dtype=np.int8)
        rows = np.flatnonzero(kept >= 0)
        Y[rows, kept[rows]] = 1
        p.Y_observed = Y
        return p


# ----------------------------------------------------------------------------- correction
@dataclass
class APLabelCorrector:
    """AP-based label correction (OPML Algorithm 1, reconstruction; spec §4.2).

    At each call (once per epoch, from ``warmup_epochs`` on): AP_j of the current scores
    against the *initially* observed positives (unobserved as 0); quota
    ``k_j = ⌊scale · base_j · (1 − AP_j)⌋`` with ``base="n_j"`` (observed positives of j) or
    ``"n"`` (samples), capped at ``cap · n`` when ``cap`` is set; the k_j still-unobserved
    entries of label j with the highest scores become positive, permanently.
    ``max_total`` (optional, our addition) bounds the flips of label j over the whole run by
    ``⌊max_total · n_j⌋`` (n_j = initially observed positives): with one kept positive per
    sample the hidden positives number about (cardinality − 1) · n_j, so repeated per-epoch
    quotas would otherwise keep flipping after the hidden positives are used up. A sequence
    gives one bound per label, e.g. the hidden positives expected from a fully labelled
    validation part: ``max(rate_j · n − n_j, 0) / n_j`` (``hidden_positive_budget``).
    """

    scale: float = 0.1
    base: str = "n_j"
    cap: float | None = None
    warmup_epochs: int = 1
    max_total: float | list[float] | None = None

    def quotas(self, Y_initial: np.ndarray, ap: np.ndarray) -> np.ndarray:
        n = Y_initial.shape[0]
        if self.base == "n_j":
            b = (Y_initial == 1).sum(0).astype(np.float64)
        elif self.base == "n":
            b = np.full(Y_initial.shape[1], float(n))
        else:
            raise ValueError("base must be 'n_j' or 'n'")
        k = np.floor(self.scale * b * (1.0 - ap)).astype(np.int64)
        if self.cap is not None:
            k = np.minimum(k, int(math.floor(self.cap * n)))
        return np.maximum(k, 0)

    def __call__(self, Y_current: Any, scores: Any, Y_initial: Any, epoch: int
                 ) -> tuple[np.ndarray, int]:
        """Corrected copy of ``Y_current`` and the number of flipped entries."""
        Yc = _asnumpy(Y_current).astype(np.int8).copy()
        if epoch < self.warmup_epochs:
            return Yc, 0
        Y0 = _asnumpy(Y_initial)
        S = _asnumpy(scores).astype(np.float64)
        ap = per_label_ap(Y0 == 1, S)
        k = self.quotas(Y0, ap)
        if self.max_total is not None:
            done = ((Yc == 1) & (Y0 != 1)).sum(0)
            mt = np.asarray(self.max_total, dtype=np.float64)
            if mt.ndim and mt.shape != (Y0.shape[1],):
                raise ValueError(f"max_total has {mt.size} entries for {Y0.shape[1]} labels")
            budget = np.floor(mt * (Y0 == 1).sum(0)).astype(np.int64) - done
            k = np.clip(np.minimum(k, budget), 0, None)
        flipped = 0
        for j in np.flatnonzero(k > 0):
            cand = np.flatnonzero(Yc[:, j] < 0)
            if cand.size == 0:
                continue
            kk = min(int(k[j]), cand.size)
            top = cand[np.argpartition(-S[cand, j], kk - 1)[:kk]]
            Yc[top, j] = 1
            flipped += kk
        return Yc, flipped


def hidden_positive_budget(Y_observed: Any, Y_reference: Any) -> list[float]:
    """Per-label ``max_total`` of :class:`APLabelCorrector` from fully labelled reference rows
    (e.g. the protocol's validation part): the positives label j is expected to have among the
    observed rows (its reference rate × rows) less those observed, over those observed."""
    Yo = _asnumpy(Y_observed)
    rate = (_asnumpy(Y_reference) == 1).mean(0)
    n_j = (Yo == 1).sum(0).astype(np.float64)
    hidden = np.maximum(rate * Yo.shape[0] - n_j, 0.0)
    return (hidden / np.maximum(n_j, 1.0)).tolist()


# ----------------------------------------------------------------------------- schedules
@dataclass
class SmoothingSchedule:
    """Epoch -> value: ``kind`` in constant | linear | cosine | step.

    linear/cosine go from ``start`` to ``end`` over ``epochs`` after ``warmup`` epochs held at
    ``start``; step multiplies ``start`` by ``gamma`` every ``every`` epochs."""

    kind: str = "constant"
    start: float = 0.1
    end: float = 0.1
    epochs: int = 10
    warmup: int = 0
    every: int = 10
    gamma: float = 0.5

    def __call__(self, epoch: int) -> float:
        if self.kind == "constant":
            return float(self.start)
        if self.kind == "step":
            return float(self.start * self.gamma ** (max(epoch - self.warmup, 0) // self.every))
        t = min(max(epoch - self.warmup, 0) / max(self.epochs, 1), 1.0)
        if self.kind == "linear":
            return float(self.start + (self.end - self.start) * t)
        if self.kind == "cosine":
            return float(self.end + (self.start - self.end) * 0.5 * (1 + math.cos(math.pi * t)))
        raise ValueError(f"unknown schedule kind {self.kind!r}")

    @classmethod
    def from_spec(cls, spec: Any) -> SmoothingSchedule:
        """From a ``SmoothingSchedule``, a number (constant) or a dict of fields."""
        if isinstance(spec, cls):
            return spec
        if isinstance(spec, (int, float)):
            return cls("constant", float(spec), float(spec))
        if isinstance(spec, dict):
            return cls(**spec)
        raise ValueError(f"cannot build a schedule from {spec!r}")


def apply_schedules(loss: Any, schedules: dict[str, Any] | None, epoch: int) -> dict[str, float]:
    """Set ``loss.<attr> = schedule(epoch)`` for each entry; returns the values set."""
    out = {}
    for attr, spec in (schedules or {}).items():
        if not hasattr(loss, attr):
            raise ValueError(f"{type(loss).__name__} has no attribute {attr!r} to schedule")
        v = SmoothingSchedule.from_spec(spec)(epoch)
        setattr(loss, attr, v)
        out[attr] = v
    return out
