"""BMIML: AWLEL -> retargeted labels T -> SMIPR -> IDO (Lai et al., IEEE TETCI 2024, seed 000).

What the paper calls "single-stage" is a sequential pipeline: AWLEL reaches the prediction
only through its retargeted labels T (Eqs. 8–11, 26–27), which are the regression targets of
SMIPR (Eq. 17); IDO (Eqs. 22–23) turns SMIPR's outputs into label sets.

IDO, two readings (spec ``bmiml.md`` §5, gaps 13–14):

* ``decision='per_label'`` (recommended default). Scores ``s_c = clip(g_c, Tmin_c, Tmax_c)``
  with the column-wise range of the training T (our reading of ``[min(T_1), max(T_1)]``),
  normalised ``p_c = (s_c − Tmin_c) / (Tmax_c − Tmin_c)``; label c is predicted when
  ``p_c > τ_c`` (τ_c = 0.5, or tuned per label on a validation part with ``tau='tune'``),
  and a bag with no label above its threshold gets its top label (T-criterion).
  ``decision_function`` returns p.
* ``decision='paper_softmax'`` (literal Eq. 23): ``ŷ_c = 1[softmax(s)_c > τ]``, τ = 0.8.
  Softmax outputs sum to 1, so at most one label passes any τ ≥ 0.5 and many bags get the
  empty set; no fallback. ``decision_function`` returns ``softmax(s)`` (same ranking within a
  bag as s). Kept for reproduction only.

Ranking metrics (one-error, coverage, ranking loss, AP) use the real-valued scores under both
rules; only the label sets (Hamming loss, F1, ...) depend on the rule.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from mimlkit.bags import Bags
from mimlkit.learners.base import MIMLClassifierMixin, t_criterion_predict
from mimlkit.learners.broad.awlel import AWLEL
from mimlkit.learners.broad.smipr import SMIPR

__all__ = ["BMIML", "softmax"]

_MODES = {"full": "full", "awlel_only": "awlel_only", "awlel": "awlel_only",
          "smipr_only": "smipr_only", "smipr": "smipr_only"}


def softmax(S: np.ndarray) -> np.ndarray:
    """Row-wise softmax (stable)."""
    E = np.exp(S - S.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def tune_thresholds(Y: np.ndarray, P: np.ndarray) -> np.ndarray:
    """Per-label thresholds minimising the label's error rate (its Hamming-loss share) on
    (Y, P); candidates are midpoints between sorted scores (ties -> the value closest to 0.5)."""
    n, K = P.shape
    tau = np.full(K, 0.5)
    for c in range(K):
        order = np.argsort(P[:, c], kind="mergesort")
        p, y = P[order, c], Y[order, c].astype(np.int64)
        # predicting 1 for scores > t: errors = positives below + negatives above
        pos_below = np.concatenate([[0], np.cumsum(y)])
        neg_above = (n - y.sum()) - np.concatenate([[0], np.cumsum(1 - y)])
        err = pos_below + neg_above  # threshold after the first i sorted scores
        cand = np.concatenate([[p[0] - 1e-6], (p[:-1] + p[1:]) / 2, [p[-1] + 1e-6]])
        valid = np.concatenate([[True], p[:-1] < p[1:], [True]])
        err = np.where(valid, err, n + 1)
        best = np.flatnonzero(err == err.min())
        tau[c] = cand[best[np.argmin(np.abs(cand[best] - 0.5))]]
    return tau


class BMIML(MIMLClassifierMixin, BaseEstimator):
    """Broad multi-instance multi-label learning (seed 000, Algorithm 1).

    Parameters
    ----------
    awlel : an ``AWLEL`` (cloned at fit); ``None`` = ``AWLEL()`` with this ``random_state``.
    smipr : a ``SMIPR`` (cloned at fit); ``None`` = ``SMIPR()`` with this ``random_state``.
    mode : ``'full'`` (AWLEL -> T -> SMIPR -> IDO), ``'awlel_only'`` (IDO on AWLEL's scores
        ``AW``) or ``'smipr_only'`` (SMIPR trained on Y): the ablations of seed Tables V–VI.
    decision : ``'per_label'`` (default) or ``'paper_softmax'`` (see module doc).
    tau : threshold(s). ``None`` = 0.5 for ``'per_label'``, 0.8 for ``'paper_softmax'``; a
        float or a length-K array; ``'tune'`` (per-label only) chooses τ_c on a validation
        part (``validation_fraction`` of the training bags, held out from training as in the
        paper's 60/10/30 protocol) to minimise that label's Hamming error.
    validation_fraction : held-out share for ``tau='tune'`` (default 0.1).
    clip : clip scores to the training target range (Eq. 22; default True).
    fusion_alpha : ``s = α g(X) + (1 − α) A(X)W`` in ``'full'`` mode. Default 0.75: SMIPR's
        output blended with AWLEL's own scores, chosen on inner splits of the zoo training
        parts (``benchmarks/results/select_bmiml_round3.md``, after rounds 1–2 in
        ``select_bmiml_round1.md`` / ``select_bmiml.md`` and SMIPR's α selection).
        1.0 is the paper (Eq. 22 uses g only; the ``paper`` preset).
    t_criterion : top-label fallback for ``'per_label'`` (never used by the paper rule).
    random_state : seed for the sub-learners left at ``random_state=None`` and the split.

    Global view: AWLEL takes one vector per bag, by default its ``pooling`` of the instances
    (mean + max). A user matrix (e.g. a CNN embedding of the whole image) goes in with
    ``fit(X, Y, global_features=G)`` and then ``decision_function(X, global_features=G_test)``
    / ``predict(X, global_features=G_test)``. SMIPR always uses the instance bags.

    Fitted attributes: ``awlel_``, ``smipr_`` (``None`` when the mode skips them), ``T_``
    (retargeted training labels, ``None`` in ``'smipr_only'``), ``target_min_``,
    ``target_max_``, ``threshold_``, ``n_labels_``, ``fit_seconds_`` (per stage).
    """

    def __init__(self, awlel: AWLEL | None = None, smipr: SMIPR | None = None,
                 mode: str = "full", decision: str = "per_label", tau: Any = None,
                 validation_fraction: float = 0.1, clip: bool = True, fusion_alpha: float = 0.75,
                 t_criterion: bool | str = "auto", threshold_mode: str = "hamming",
                 random_state: int | None = None) -> None:
        self.awlel = awlel
        self.smipr = smipr
        self.mode = mode
        self.decision = decision
        self.tau = tau
        self.validation_fraction = validation_fraction
        self.clip = clip
        self.fusion_alpha = fusion_alpha
        self.t_criterion = t_criterion
        self.threshold_mode = threshold_mode
        self.random_state = random_state

    # ------------------------------------------------------------------ helpers
    def _sub(self, est: Any, default: type) -> Any:
        est = default() if est is None else clone(est)
        if getattr(est, "random_state", 0) is None and self.random_state is not None:
            est.set_params(random_state=self.random_state)
        if "threshold_mode" in est.get_params(deep=False):
            est.set_params(threshold_mode="fixed")  # only BMIML's own thresholds are used
        return est

    @staticmethod
    def _check_global(G: Any, n: int) -> np.ndarray | None:
        if G is None:
            return None
        G = np.asarray(G.toarray() if hasattr(G, "toarray") else G)
        if G.ndim != 2 or G.shape[0] != n:
            raise ValueError(f"global_features must have shape (n_bags={n}, D), got {G.shape}")
        return G

    def _fit_core(self, bags: Bags, Y: np.ndarray, G: np.ndarray | None) -> None:
        mode = self.mode_
        self.awlel_ = self.smipr_ = self.T_ = None
        self.fit_seconds_ = {}
        t0 = time.perf_counter()
        if mode in ("full", "awlel_only"):
            self.awlel_ = self._sub(self.awlel, AWLEL).fit(bags, Y, global_features=G)
            T = self.T_ = self.awlel_.T_
            self.fit_seconds_["awlel"] = time.perf_counter() - t0
        else:
            T = Y.astype(np.float64)
        if mode == "awlel_only":
            self.smipr_ = None
        else:
            t0 = time.perf_counter()
            self.smipr_ = self._sub(self.smipr, SMIPR).fit(
                bags, Y, targets=T if mode == "full" else None)
            self.fit_seconds_["smipr"] = time.perf_counter() - t0
        lo, hi = T.min(axis=0), T.max(axis=0)
        # A label constant in training (no positives, or no negatives) has a (near-)zero
        # target range; normalising by it would turn round-off noise into 0..1 scores. Use
        # the span of [0, 1] and the constant instead, so "always present" stays ~1.
        flat = (hi - lo) <= 1e-4 * np.maximum(1.0, np.maximum(np.abs(lo), np.abs(hi)))
        mid = (lo + hi) / 2
        lo = np.where(flat, np.minimum(mid, 0.0), lo)
        hi = np.where(flat, np.maximum(mid, 1.0), hi)
        hi = np.where(hi > lo, hi, lo + 1.0)
        self.target_min_, self.target_max_ = lo, hi
        # a label never (always) present in training is scored 0 (1) under 'per_label': its
        # regression output carries no information, only the ridge shrinkage
        pos = (Y == 1).mean(axis=0)
        self.constant_labels_ = np.where(pos == 0, 0.0, np.where(pos == 1, 1.0, np.nan))

    def _raw_scores(self, bags: Bags, G: np.ndarray | None) -> np.ndarray:
        if self.mode_ == "awlel_only":
            return self.awlel_.decision_function(bags, global_features=G)
        g = self.smipr_.decision_function(bags)
        if self.mode_ == "full" and self.fusion_alpha != 1.0:
            a = float(self.fusion_alpha)
            g = a * g + (1.0 - a) * self.awlel_.decision_function(bags, global_features=G)
        return g

    def _scores(self, bags: Bags, G: np.ndarray | None) -> np.ndarray:
        s = self._raw_scores(bags, G)
        if self.clip:
            s = np.clip(s, self.target_min_, self.target_max_)
        if self.decision == "paper_softmax":
            return softmax(s)
        p = (s - self.target_min_) / (self.target_max_ - self.target_min_)
        const = getattr(self, "constant_labels_", None)  # absent in older pickles
        if const is not None and np.isfinite(const).any():
            p = np.where(np.isfinite(const), const, p)
        return p

    def _explicit_threshold(self) -> bool:
        """A given ``tau`` (number, array or 'tune') or the paper's softmax rule is kept."""
        return self.tau is not None or self.decision == "paper_softmax"

    # ------------------------------------------------------------------ API
    def fit(self, X: Any, Y: Any, global_features: Any = None) -> BMIML:
        """Fit AWLEL (on the global view) and SMIPR (on the bags), then the IDO thresholds."""
        bags, Y = self._validate_fit(X, Y)
        if self.mode not in _MODES:
            raise ValueError(f"mode must be one of {sorted(set(_MODES.values()))}, "
                             f"got {self.mode!r}")
        if self.decision not in ("per_label", "paper_softmax"):
            raise ValueError(f"decision must be 'per_label' or 'paper_softmax', "
                             f"got {self.decision!r}")
        self.mode_ = _MODES[self.mode]
        G = self._check_global(global_features, bags.n_bags)
        self.global_source_ = "pooled" if G is None else "user"
        K = Y.shape[1]
        tau = self.tau
        if isinstance(tau, str):
            if tau != "tune":
                raise ValueError(f"tau must be a number, an array, None or 'tune', got {tau!r}")
            if self.decision != "per_label":
                raise ValueError("tau='tune' is only defined for decision='per_label'")
            n = bags.n_bags
            n_val = int(round(float(self.validation_fraction) * n))
            if not 1 <= n_val < n:
                raise ValueError(f"validation_fraction={self.validation_fraction} leaves no "
                                 f"validation or no training bags (n={n})")
            perm = np.random.default_rng(self.random_state).permutation(n)
            val, tr = np.sort(perm[:n_val]), np.sort(perm[n_val:])
            self._fit_core(bags.take(tr), Y[tr], None if G is None else G[tr])
            P = self._scores(bags.take(val), None if G is None else G[val])
            self.threshold_ = tune_thresholds(Y[val], P)
        else:
            if tau is None:
                tau = 0.8 if self.decision == "paper_softmax" else 0.5
            t = np.asarray(tau, dtype=np.float64)
            if t.ndim not in (0, 1) or (t.ndim == 1 and t.shape[0] != K):
                raise ValueError(f"tau must be a scalar or have one entry per label ({K})")
            self._fit_core(bags, Y, G)
            self.threshold_ = np.broadcast_to(t, (K,)).copy()
        return self

    def decision_function(self, X: Any, global_features: Any = None) -> np.ndarray:
        """Real-valued label scores (n_bags x K): p for ``'per_label'``, softmax for the paper
        rule. Larger = more likely."""
        check_is_fitted(self, "threshold_")
        bags = self._validate_bags(X, reset=False)
        G = self._check_global(global_features, bags.n_bags)
        if G is None and self.global_source_ == "user" and self.awlel_ is not None \
                and self.mode_ != "smipr_only":
            raise ValueError("BMIML was fitted with global_features; pass them here too")
        return self._scores(bags, G)

    def predict(self, X: Any, global_features: Any = None) -> np.ndarray:
        """{0,1} label sets (IDO, Eq. 23 or its per-label reading)."""
        S = self.decision_function(X, global_features)
        if self.decision == "paper_softmax":
            return (S > self.threshold_).astype(np.int8)
        return t_criterion_predict(S, self.threshold_, self._use_t_criterion())
