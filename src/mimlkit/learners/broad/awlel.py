"""AWLEL: auto-weighted label enhancement learning (BMIML stage 2; seed 000 §III-B, §III-E).

Design matrix (Eq. 8, recommended reading of gaps 3–4 in spec ``bmiml.md`` §7)::

    A = [X̃ (direct link), Z (feature nodes), H (enhancement nodes), R (retargeting nodes)]
    R = tribas(s_r · P / max|P|),  P = [X̃, Z, 0.1] W_r,  W_r orthonormal random

Retargeted labels T and output weights W minimise Eq. 11 by alternating Eq. 26 / Eq. 27::

    W ← (λI + AᵀΓA)⁻¹ AᵀΓT                     (Eq. 26, Cholesky, float64 accumulation)
    T_i ← (γ_i A_iW + ϑ ω_i Y_i) / (γ_i + ϑ ω_i)  (Eq. 27, Γ and Ω diagonal -> row-wise)
    γ_i ← 1 / max(‖A_iW − T_i‖, ε),  ω_i ← 1 / max(‖T_i − Y_i‖, ε)

Starting from T = Y, Γ = Ω = I (ω is infinite at T = Y; gap 6). With these weights the
alternation is IRLS (majorise–minimise) for the robust L2,1 objective

    F(W, T) = Σ_i ρ_ε(‖A_iW − T_i‖) + (λ/2)‖W‖² + ϑ Σ_i ρ_ε(‖T_i − Y_i‖),

ρ_ε the Huber-smoothed norm (ρ_ε(r) = r for r ≥ ε, r²/2ε + ε/2 below), so F never increases
after the first pass ("outliers get lower weight"). ``objective_history_`` records it.
The paper calls this "ADMM"; it is block-coordinate descent (gap 7). Γ, Ω and the T update
are row-local, so each iteration is **one pass** over row blocks that re-computes the nodes
and accumulates ``AᵀΓA`` and ``AᵀΓT``: A is never held in memory.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from mimlkit.bags import check_labels
from mimlkit.learners.base import MIMLClassifierMixin, t_criterion_predict
from mimlkit.learners.broad._nodes import (
    BroadNodesMixin,
    loo_lambda,
    orthonormal,
    ridge_solve,
    row_blocks,
    tribas,
)
from mimlkit.learners.broad.bls import encode_labels

__all__ = ["AWLEL", "huber_norm"]


def huber_norm(r: np.ndarray, eps: float) -> np.ndarray:
    """ρ_ε(r): r for r ≥ ε, r²/(2ε) + ε/2 below (the function IRLS with a floor ε minimises)."""
    return np.where(r >= eps, r, r * r / (2 * eps) + eps / 2)


class AWLEL(BroadNodesMixin, MIMLClassifierMixin, BaseEstimator):
    """Auto-weighted label enhancement on BLS + retargeting nodes (seed 000 Eqs. 7–11, 26–27).

    Parameters
    ----------
    n_nodes_per_window, n_windows, n_enhancement, shrink, sparse_refine, sparse_lambda,
    sparse_iter, input_scaling, feature_activation, pooling : as in ``BroadLearningSystem``
        (defaults N1 = 10, N2 = 10, N3 = 1000, s = 0.8; none given in the paper, gap 1).
    n_retarget : N4 retargeting nodes; ``None`` = ``n_enhancement // 2``.
    retarget : ``'orthonormal'`` (recommended: fresh orthonormal ``W_r`` on ``[X̃, Z, 0.1]``,
        shrink-scaled then Tribas) or ``'literal'`` (Eq. 7 read literally:
        ``tribas([X̃,0.1]W_z + [Z,0.1]W_h)``, only when N1·N2 = N3; then N4 = N3).
    retarget_shrink : s_r; ``None`` = ``shrink``.
    direct_link : include the scaled input X̃ in A (Eq. 8; default True).
    reg_lambda : λ of Eq. 26: a number (the ``paper`` preset: 1e-3), or ``'auto'`` (default)
        = the value with the smallest exact
        leave-one-out error of the first (unweighted, T = Y) ridge solve, on the training
        bags only (``_nodes.loo_lambda``: one extra pass), then kept for the IRLS passes.
        Fitted value in ``reg_lambda_``.
    theta : ϑ of Eq. 11 (default 1.0).
    max_iter : number of W solves (Eq. 26) at most. Default 1: one ridge solve on T = Y,
        then T = (AW + ϑY)/(1 + ϑ) (Eq. 27 with Γ = Ω = I). The paper's IRLS re-weighting
        (``max_iter=10``, the ``paper`` preset) lowered AP on inner splits of 4 of 5 zoo
        training parts (``benchmarks/results/select_awlel.md``).
    tol : stop when ‖ΔT‖_F / ‖T‖_F < tol (default 1e-4).
    eps : floor of the residual norms in γ and ω (default 1e-6).
    label_encoding : ``'01'`` (default, T ≈ soft labels in [0, 1]) or ``'pm1'`` (paper §II-A).
    block_size : rows per block in each pass.
    dtype : node computation type (default float64; accumulations are always float64).
        float32 is faster but the design is rank-deficient (linear feature nodes span the
        direct link), so it needs a larger ``reg_lambda`` to stay stable.
    random_state : seed of the random maps.

    ``fit(X, Y, global_features=G)`` replaces the pooled view by a user matrix (then pass
    ``global_features=`` at prediction time too).

    Fitted attributes: ``coef_`` (W), ``T_`` (retargeted training labels, n x K),
    ``gamma_``, ``omega_`` (last row weights), ``objective_history_`` (F after each pass),
    ``n_iter_``, ``threshold_`` and the node maps.
    """

    def __init__(self, n_nodes_per_window: int = 10, n_windows: int = 10,
                 n_enhancement: int = 1000, n_retarget: int | None = None, shrink: float = 0.8,
                 retarget: str = "orthonormal", retarget_shrink: float | None = None,
                 direct_link: bool = True, reg_lambda: float | str = "auto",
                 theta: float = 1.0, max_iter: int = 1, tol: float = 1e-4, eps: float = 1e-6,
                 sparse_refine: bool = True, sparse_lambda: float = 1e-3, sparse_iter: int = 50,
                 input_scaling: str = "standard", feature_activation: str = "linear",
                 pooling: Any = "meanmax", label_encoding: str = "01", block_size: int = 4096,
                 dtype: str = "float64", t_criterion: bool | str = "auto",
                 threshold_mode: str = "hamming", random_state: int | None = None) -> None:
        self.n_nodes_per_window = n_nodes_per_window
        self.n_windows = n_windows
        self.n_enhancement = n_enhancement
        self.n_retarget = n_retarget
        self.shrink = shrink
        self.retarget = retarget
        self.retarget_shrink = retarget_shrink
        self.direct_link = direct_link
        self.reg_lambda = reg_lambda
        self.theta = theta
        self.max_iter = max_iter
        self.tol = tol
        self.eps = eps
        self.sparse_refine = sparse_refine
        self.sparse_lambda = sparse_lambda
        self.sparse_iter = sparse_iter
        self.input_scaling = input_scaling
        self.t_criterion = t_criterion
        self.threshold_mode = threshold_mode
        self.feature_activation = feature_activation
        self.pooling = pooling
        self.label_encoding = label_encoding
        self.block_size = block_size
        self.dtype = dtype
        self.random_state = random_state

    # ------------------------------------------------------------------ nodes
    def _extra_calibrate(self, X, H1, Z, rng) -> None:
        dt = self.window_weights_.dtype
        N3 = int(self.n_enhancement_)
        if self.retarget == "literal":
            if Z.shape[1] != N3:
                raise ValueError("retarget='literal' (Eq. 7) needs n_nodes_per_window * "
                                 f"n_windows == n_enhancement, got {Z.shape[1]} vs {N3}")
            self.retarget_weights_ = np.zeros((0, 0), dtype=dt)
            self.retarget_scale_ = 1.0
            return
        if self.retarget != "orthonormal":
            raise ValueError(f"retarget must be 'orthonormal' or 'literal', got {self.retarget!r}")
        N4 = N3 // 2 if self.n_retarget is None else int(self.n_retarget)
        if N4 < 0:
            raise ValueError("n_retarget must be >= 0")
        Xs = H1[:, :-1]
        P_in = self._with_bias(np.hstack([Xs, Z]))
        Wr = orthonormal(2.0 * rng.uniform(size=(P_in.shape[1], N4)) - 1.0)
        P = P_in @ Wr
        top = float(np.abs(P).max()) if P.size else 1.0
        s_r = self.shrink if self.retarget_shrink is None else self.retarget_shrink
        self.retarget_weights_ = Wr.astype(dt)
        self.retarget_scale_ = float(s_r) / (top or 1.0)

    def _assemble(self, Xs: np.ndarray, Z: np.ndarray, H: np.ndarray) -> np.ndarray:
        if self.retarget == "literal":
            pre_z = self._with_bias(Xs) @ self.window_weights_
            pre_h = self._with_bias(Z) @ self.enhancement_weights_
            R = tribas(pre_z + pre_h)
        else:
            R = tribas(self.retarget_scale_
                       * (self._with_bias(np.hstack([Xs, Z])) @ self.retarget_weights_))
        parts = ([Xs] if self.direct_link else []) + [Z, H, R.astype(Z.dtype, copy=False)]
        return np.hstack(parts)

    # ------------------------------------------------------------------ fitting
    def fit(self, X: Any, Y: Any, global_features: Any = None) -> AWLEL:
        """Calibrate the nodes, then alternate Eq. 26 / Eq. 27 with IRLS re-weighting."""
        bags = self._validate_bags(X, reset=True)
        Y = check_labels(Y, bags.n_bags, allow_unobserved=False)
        self.n_labels_ = Y.shape[1]
        G = self._global_view(bags, global_features, reset=True)
        self._calibrate_nodes(G, np.random.default_rng(self.random_state))
        self.threshold_ = 0.5 if self.label_encoding == "01" else 0.0
        self._irls(G, encode_labels(Y, self.label_encoding))
        return self

    def _irls(self, G: np.ndarray, Yt: np.ndarray) -> None:
        n, K = Yt.shape
        auto = isinstance(self.reg_lambda, str)
        if auto and self.reg_lambda != "auto":
            raise ValueError(f"reg_lambda must be a positive number or 'auto', "
                             f"got {self.reg_lambda!r}")
        lam = 1.0 if auto else float(self.reg_lambda)
        theta, eps = float(self.theta), float(self.eps)
        if lam <= 0 or theta < 0 or eps <= 0:
            raise ValueError("reg_lambda and eps must be > 0 and theta >= 0")
        dt = self.window_weights_.dtype
        T = Yt.copy()
        gamma = np.ones(n)
        omega = np.ones(n)
        W = None
        history: list[float] = []
        n_solves = 0
        max_iter = max(1, int(self.max_iter))
        while True:
            do_solve = n_solves < max_iter
            Gm = R = None
            obj = 0.0
            dT2 = 0.0
            Wd = None if W is None else W.astype(dt)
            for sl in row_blocks(n, self.block_size):
                A = self._node_block(G[sl])
                if Wd is not None:  # Eq. 27 with the weights W was solved with
                    F = (A @ Wd).astype(np.float64, copy=False)
                    g, w = gamma[sl, None], theta * omega[sl, None]
                    Tn = (g * F + w * Yt[sl]) / (g + w)
                    dT2 += float(((Tn - T[sl]) ** 2).sum())
                    T[sl] = Tn
                    r = np.linalg.norm(F - Tn, axis=1)
                    e = np.linalg.norm(Tn - Yt[sl], axis=1)
                    obj += float(huber_norm(r, eps).sum() + theta * huber_norm(e, eps).sum())
                    gamma[sl] = 1.0 / np.maximum(r, eps)
                    omega[sl] = 1.0 / np.maximum(e, eps)
                if do_solve:
                    sq = np.sqrt(gamma[sl])[:, None]
                    B = A * sq.astype(dt)
                    BtB = (B.T @ B).astype(np.float64, copy=False)
                    BtT = B.T.astype(np.float64, copy=False) @ (sq * T[sl])
                    if Gm is None:
                        Gm, R = BtB, BtT
                    else:
                        Gm += BtB
                        R += BtT
            if auto and n_solves == 1 and W is not None:
                # λ was chosen for the squared loss (Γ = I); the IRLS passes weight rows by
                # γ_i = 1/‖r_i‖, so λ is rescaled once by mean(γ) (same ridge strength
                # relative to the data term) and then fixed: F stays monotone from here on
                lam *= float(gamma.mean())
            if W is not None:
                history.append(obj + 0.5 * lam * float((W * W).sum()))
            converged = W is not None and np.sqrt(dT2) <= self.tol * max(np.linalg.norm(T), 1e-12)
            if not do_solve or converged:  # T has been updated with the final W
                break
            if auto and n_solves == 0:  # Γ = I, T = Y: plain ridge, λ by exact LOO
                lam = loo_lambda(Gm, R, lambda: ((self._node_block(G[sl]), T[sl])
                                                 for sl in row_blocks(n, self.block_size)))
            W = ridge_solve(Gm, R, lam)
            n_solves += 1
        self.coef_ = W
        self.reg_lambda_ = lam
        self.T_ = T
        self.gamma_ = gamma
        self.omega_ = omega
        self.objective_history_ = np.asarray(history)
        self.n_iter_ = n_solves

    # ------------------------------------------------------------------ prediction
    def transform(self, X: Any, global_features: Any = None) -> np.ndarray:
        """The design matrix ``A = [X̃, Z, H, R]`` of ``X``."""
        check_is_fitted(self, "coef_")
        bags = self._validate_bags(X, reset=False)
        return self._node_block(self._global_view(bags, global_features, reset=False))

    def decision_function(self, X: Any, global_features: Any = None) -> np.ndarray:
        """AWLEL scores ``A W`` (the AWLEL-only ablation), block by block."""
        check_is_fitted(self, "coef_")
        bags = self._validate_bags(X, reset=False)
        G = self._global_view(bags, global_features, reset=False)
        W = self.coef_.astype(self.window_weights_.dtype)
        out = np.empty((G.shape[0], W.shape[1]))
        for sl in row_blocks(G.shape[0], self.block_size):
            out[sl] = self._node_block(G[sl]) @ W
        return out

    def predict(self, X: Any, global_features: Any = None) -> np.ndarray:
        return t_criterion_predict(self.decision_function(X, global_features), self._threshold(),
                                   self._use_t_criterion())
