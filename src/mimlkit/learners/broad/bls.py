"""Broad Learning System (Chen & Liu, TNNLS 2018) as a multi-label learner on pooled bags.

Faithful to the reference ``bls_train.m`` (spec ``bmiml.md`` §1.2; seed 000 Eqs. 1–6): sparse
auto-encoder refined feature windows, min–max scaling, orthonormal enhancement weights with the
shrink scale, ``tansig`` and ridge output weights. Seed 000 writes the pseudo-inverse as
``(λI + AAᵀ)⁻¹Aᵀ`` (Eqs. 5–6), which has the wrong dimensions; we use the primal
``(AᵀA + λI)⁻¹AᵀY`` or the dual ``Aᵀ(AAᵀ + λI)⁻¹Y`` (chosen by shape), both by Cholesky.

The primal system is accumulated over row blocks (``partial_fit``: ``G += AᵀA``,
``R += AᵀY`` in float64 with node maps frozen by a calibration pass), so data larger than
memory streams through it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from mimlkit.bags import check_labels
from mimlkit.learners.base import MIMLClassifierMixin
from mimlkit.learners.broad._nodes import BroadNodesMixin, ridge_solve, row_blocks

__all__ = ["BroadLearningSystem"]


def encode_labels(Y: np.ndarray, encoding: str) -> np.ndarray:
    """{0,1} labels -> float targets: ``'01'`` keeps them, ``'pm1'`` maps to {-1,+1}."""
    if encoding == "01":
        return Y.astype(np.float64)
    if encoding == "pm1":
        return 2.0 * Y.astype(np.float64) - 1.0
    raise ValueError(f"label_encoding must be '01' or 'pm1', got {encoding!r}")


class BroadLearningSystem(BroadNodesMixin, MIMLClassifierMixin, BaseEstimator):
    """Broad Learning System on a bag-level (global) feature vector.

    Parameters
    ----------
    n_nodes_per_window : N1, feature nodes per window (reference demo: 10).
    n_windows : N2, number of feature windows (reference demo: 10).
    n_enhancement : N3, enhancement nodes, or ``"auto"`` (default): the training bags clipped
        to [100, 1000] (``n_enhancement_`` holds N3; chosen on inner splits of the zoo training
        parts, ``results/select_bls_enhancement.md``). Reference demo: 11000 on MNIST; the
        ``paper`` preset keeps 1000.
    shrink : s, shrinkage of the enhancement pre-activations (reference: 0.8).
    reg_lambda : ridge λ of the output layer. The reference demo uses 2**-30, which is
        numerically fragile when N < #nodes; default 1e-3 (recommended reading).
    sparse_refine : refine each window's random weights by the lasso auto-encoder (reference).
    sparse_lambda, sparse_iter : lasso penalty and ADMM iterations (reference: 1e-3, 50).
    input_scaling : ``'standard'`` (per-feature, default), ``'bls'`` (reference: per-row
        z-score) or ``'none'``. The 0.1 bias column is always appended.
    feature_activation : ``'linear'`` (reference BLS) or ``'sigmoid'``.
    pooling : global view of a bag when ``global_features`` is not given: ``'meanmax'``
        (default), ``'mean'``, ``'max'``, ``'concat'`` or a callable ``Bags -> (n, D)``.
    label_encoding : ``'pm1'`` (reference: targets in {-1,+1}, threshold 0) or ``'01'``
        (threshold 0.5).
    solver : ``'auto'`` (dual when N < #nodes in ``fit``, else primal), ``'primal'``, ``'dual'``.
    block_size : rows per block when accumulating the primal system / scoring.
    memory_budget_mb : optional cap on the working memory of one row block (enhancement
        pre-activations and design rows); it lowers the rows per block below ``block_size``,
        so the n x N3 enhancement and n x #nodes design matrices are never formed whole.
        Not counted: the pooled input, the calibration's n x (N1·N2) window outputs and the
        #nodes² system. With a budget, ``solver='auto'`` always uses the primal system.
    dtype : float type of the node computations; accumulations are float64.
    random_state : seed of the random maps.

    A user-supplied global matrix replaces pooling: ``fit(X, Y, global_features=G)`` and then
    ``decision_function(X, global_features=G_test)``.

    Fitted attributes: ``coef_`` (#nodes x K), the node maps (see ``BroadNodesMixin``),
    ``gram_`` / ``rhs_`` (the accumulated float64 system; primal solves only),
    ``n_samples_seen_``, ``threshold_``.
    """

    def __init__(self, n_nodes_per_window: int = 10, n_windows: int = 10,
                 n_enhancement: int | str = "auto", shrink: float = 0.8,
                 reg_lambda: float = 1e-3,
                 sparse_refine: bool = True, sparse_lambda: float = 1e-3, sparse_iter: int = 50,
                 input_scaling: str = "standard", feature_activation: str = "linear",
                 pooling: Any = "meanmax", label_encoding: str = "pm1", solver: str = "auto",
                 block_size: int = 8192, memory_budget_mb: float | None = None,
                 dtype: str = "float64", t_criterion: bool | str = "auto",
                 threshold_mode: str = "hamming", random_state: int | None = None) -> None:
        self.n_nodes_per_window = n_nodes_per_window
        self.n_windows = n_windows
        self.n_enhancement = n_enhancement
        self.shrink = shrink
        self.reg_lambda = reg_lambda
        self.sparse_refine = sparse_refine
        self.sparse_lambda = sparse_lambda
        self.sparse_iter = sparse_iter
        self.input_scaling = input_scaling
        self.t_criterion = t_criterion
        self.threshold_mode = threshold_mode
        self.feature_activation = feature_activation
        self.pooling = pooling
        self.label_encoding = label_encoding
        self.solver = solver
        self.block_size = block_size
        self.memory_budget_mb = memory_budget_mb
        self.dtype = dtype
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def _prepare(self, X: Any, Y: Any, global_features: Any, *, reset: bool):
        bags = self._validate_bags(X, reset=reset)
        Y = check_labels(Y, bags.n_bags, allow_unobserved=False)
        G = self._global_view(bags, global_features, reset=reset)
        return G, Y

    def calibrate(self, X: Any, Y: Any, global_features: Any = None) -> BroadLearningSystem:
        """Freeze the random maps and scalers on ``X`` and reset the accumulated system.

        ``Y`` fixes the number of labels. Follow with ``partial_fit`` calls over row blocks.
        """
        G, Y = self._prepare(X, Y, global_features, reset=True)
        self._start(G, Y.shape[1])
        return self

    def _start(self, G: np.ndarray, n_labels: int) -> None:
        self.n_labels_ = n_labels
        self._calibrate_nodes(G, np.random.default_rng(self.random_state))
        p = self._n_design_columns()
        self.gram_ = np.zeros((p, p))
        self.rhs_ = np.zeros((p, n_labels))
        self.n_samples_seen_ = 0
        self.threshold_ = 0.0 if self.label_encoding == "pm1" else 0.5

    def _n_design_columns(self) -> int:
        return int(self.window_weights_.shape[1] + self.enhancement_weights_.shape[1])

    def partial_fit(self, X: Any, Y: Any, global_features: Any = None) -> BroadLearningSystem:
        """Accumulate one row block (``G += AᵀA``, ``R += AᵀY``, float64) and re-solve.

        The first call (or ``calibrate``) freezes the node maps from its block.
        """
        if not hasattr(self, "gram_"):
            if hasattr(self, "coef_"):
                raise ValueError("this model was fitted with the dual solver and holds no "
                                 "accumulated system; call calibrate() to start streaming")
            return self.calibrate(X, Y, global_features)._partial(X, Y, global_features)
        return self._partial(X, Y, global_features)

    def _partial(self, X, Y, global_features) -> BroadLearningSystem:
        G, Y = self._prepare(X, Y, global_features, reset=False)
        if Y.shape[1] != self.n_labels_:
            raise ValueError(f"Y has {Y.shape[1]} labels, expected {self.n_labels_}")
        self._accumulate(G, encode_labels(Y, self.label_encoding))
        self.coef_ = ridge_solve(self.gram_, self.rhs_, self.reg_lambda)
        return self

    def _accumulate(self, G: np.ndarray, T: np.ndarray) -> None:
        for sl in row_blocks(G.shape[0], self._rows_per_block()):
            A = self._node_block(G[sl])
            self.gram_ += (A.T @ A).astype(np.float64, copy=False)
            self.rhs_ += A.T.astype(np.float64, copy=False) @ T[sl]
        self.n_samples_seen_ += G.shape[0]

    def fit(self, X: Any, Y: Any, global_features: Any = None) -> BroadLearningSystem:
        """Calibrate on all of ``X`` and solve the ridge output layer (primal or dual)."""
        for attr in ("gram_", "rhs_", "coef_"):
            self.__dict__.pop(attr, None)
        G, Y = self._prepare(X, Y, global_features, reset=True)
        if self.solver not in ("auto", "primal", "dual"):
            raise ValueError(f"solver must be 'auto', 'primal' or 'dual', got {self.solver!r}")
        self._start(G, Y.shape[1])
        T = encode_labels(Y, self.label_encoding)
        n, p = G.shape[0], self._n_design_columns()
        if self.solver == "dual" or (self.solver == "auto" and n < p
                                     and self.memory_budget_mb is None):
            del self.gram_, self.rhs_
            A = np.asarray(self._node_block(G), dtype=np.float64)
            K = A @ A.T
            K[np.diag_indices_from(K)] += self.reg_lambda
            fac = scipy.linalg.cho_factor(K, check_finite=False)
            self.coef_ = A.T @ scipy.linalg.cho_solve(fac, T, check_finite=False)
            self.n_samples_seen_ = n
        else:
            self._accumulate(G, T)
            self.coef_ = ridge_solve(self.gram_, self.rhs_, self.reg_lambda)
        return self

    # ------------------------------------------------------------------ prediction
    def transform(self, X: Any, global_features: Any = None) -> np.ndarray:
        """The design matrix ``A = [Z, H]`` (n_bags x #nodes) of ``X``."""
        check_is_fitted(self, "coef_")
        bags = self._validate_bags(X, reset=False)
        G = self._global_view(bags, global_features, reset=False)
        return self._node_block(G)

    def decision_function(self, X: Any, global_features: Any = None) -> np.ndarray:
        """Scores ``A W`` (n_bags x K), computed block by block."""
        check_is_fitted(self, "coef_")
        bags = self._validate_bags(X, reset=False)
        G = self._global_view(bags, global_features, reset=False)
        out = np.empty((G.shape[0], self.coef_.shape[1]))
        W = self.coef_.astype(self.window_weights_.dtype)
        for sl in row_blocks(G.shape[0], self._rows_per_block()):
            out[sl] = self._node_block(G[sl]) @ W
        return out

    def predict(self, X: Any, global_features: Any = None) -> np.ndarray:
        from mimlkit.learners.base import t_criterion_predict

        return t_criterion_predict(self.decision_function(X, global_features), self._threshold(),
                                   self._use_t_criterion())

