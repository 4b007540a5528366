"""MIMLkNN (Zhang, ICTAI 2010): references and citers under the Hausdorff distance, and a
linear output layer on their label counts.

Spec ``classic_miml.md`` §2:

* references of X: its ``k`` nearest training bags (X itself excluded);
* citers of X (``citers="paper"``, Citation-kNN style): training bags Z that have X among
  *their* ``k'`` nearest neighbours (for a test bag: with X added to the pool, i.e.
  ``d(Z, X) <= r_Z``, the distance from Z to its k'-th nearest training bag);
  ``citers="kdis"``: among the bags whose k-reference list contains X, the k' nearest to X;
* labelling counting vector ``c(X)_l`` = number of bags in references ∪ citers with label l;
* ``y(X) = W^T c(X)``; W (q x q) minimises ``sum_i ||W^T c(X_i) - t_i||^2`` over the training
  bags (``t = ±1``; ``c`` computed leave-one-out), solved by an SVD pseudo-inverse;
* predict ``y_l > threshold`` (0 by default) with the T-criterion.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from mimlkit.learners.classic._hausdorff_base import HausdorffLearnerMixin, least_squares, pm1

__all__ = ["MIMLkNN"]


def _kth_smallest(D: np.ndarray, k: int, rows: int) -> np.ndarray:
    """Per row, the k-th smallest value (1-based), k <= n_cols; by blocks of ``rows``."""
    out = np.empty(D.shape[0], dtype=np.float64)
    for r in range(0, D.shape[0], rows):
        out[r:r + rows] = np.partition(D[r:r + rows], k - 1, axis=1)[:, k - 1]
    return out


def _knn_mask(D: np.ndarray, k: int) -> np.ndarray:
    """Boolean n x m mask of the k smallest entries of each row (ties broken by index)."""
    idx = np.argpartition(D, k - 1, axis=1)[:, :k]
    M = np.zeros(D.shape, dtype=bool)
    M[np.arange(D.shape[0])[:, None], idx] = True
    return M


class MIMLkNN(HausdorffLearnerMixin, BaseEstimator):
    """References + citers label counting and a least-squares linear output (spec §2).

    Parameters
    ----------
    n_references : int, default 10
        k, the number of nearest training bags (references).
    n_citers : int, default 20
        k', the neighbourhood size that defines citers.
    citers : {"paper", "kdis"}, default "paper"
        Citer definition (see the module docstring).
    threshold : float, default 0.0
        Decision threshold on the ±1-trained outputs (the Java port uses 0.3).
    fit_intercept : bool, default False
        Add a constant input to the output layer (not in the reference formulation).
    variant, scale, t_criterion, threshold_mode, n_jobs : as in ``MIMLSVM``.
    memory_budget_mb : float, default 256
        Working memory, in MB, that the Hausdorff distance engine (which blocks within and
        across bags by it) and the learner's own row-blocked steps may use per block: the
        k-th-neighbour radii, the reference / citer masks (n x n in row blocks) and the test
        bags' distances to the training bags (scored in chunks of test bags). Only the
        n x n float32 training distance matrix is held whole. Results do not depend on it.
    random_state : unused (deterministic); kept for a uniform interface.

    Attributes
    ----------
    train_bags_ : Bags, Y_train_ : int8 labels, citer_radius_ : (n_train,) the distance from
    each training bag to its k'-th (paper) or k-th (kdis) nearest training bag,
    weights_ : (q [+1]) x q output weights, threshold_ : float.
    """

    def __init__(self, n_references: int = 10, n_citers: int = 20, citers: str = "paper",
                 threshold: float = 0.0, fit_intercept: bool = False, variant: str = "max",
                 scale: str | None = "auto", t_criterion: bool | str = "auto",
                 threshold_mode: str = "hamming", random_state: Any = None,
                 n_jobs: int | None = None, memory_budget_mb: float = 256) -> None:
        self.n_references = n_references
        self.n_citers = n_citers
        self.citers = citers
        self.threshold = threshold
        self.fit_intercept = fit_intercept
        self.variant = variant
        self.scale = scale
        self.t_criterion = t_criterion
        self.threshold_mode = threshold_mode
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.memory_budget_mb = memory_budget_mb

    # ---------------------------------------------------------------- helpers
    def _counts(self, D: np.ndarray, radius: np.ndarray, loo: bool) -> np.ndarray:
        """Label counting vectors for query rows of ``D`` (queries x training bags; for
        ``loo`` the training matrix itself with ``inf`` on its diagonal), by row blocks:
        the masks and the neighbour indices exist for one block at a time."""
        n_q, n_train = D.shape
        k = min(int(self.n_references), n_train - loo)
        kc = min(int(self.n_citers), n_train - loo)
        Yf = self.Y_train_.astype(np.float64)
        C = np.empty((n_q, Yf.shape[1]))
        # per row: argpartition indices (8), float32 copy (4), masks (2), float64 M (8)
        rows = self._rows_per_block(24.0 * n_train)
        for r0 in range(0, n_q, rows):
            Dq = D[r0:r0 + rows]
            # training bag Z cites query X when X is within Z's neighbourhood radius
            M = Dq <= radius[None, :]
            if self.citers == "kdis" and kc > 0:
                M &= _knn_mask(np.where(M, Dq, np.inf), kc)
            if k > 0:
                M |= _knn_mask(Dq, k)  # references
            C[r0:r0 + rows] = M @ Yf
        return self._design(C)

    def _design(self, C: np.ndarray) -> np.ndarray:
        return np.hstack([C, np.ones((C.shape[0], 1))]) if self.fit_intercept else C

    def fit(self, X: Any, Y: Any) -> MIMLkNN:
        bags, Y = self._fit_bags(X, Y)
        if int(self.n_references) < 1 or int(self.n_citers) < 0:
            raise ValueError("n_references must be >= 1 and n_citers >= 0, got "
                             f"{self.n_references} and {self.n_citers}")
        if self.citers not in ("paper", "kdis"):
            raise ValueError(f"citers must be 'paper' or 'kdis', got {self.citers!r}")
        n = bags.n_bags
        if n < 2:
            raise ValueError("MIMLkNN needs at least 2 training bags")
        # the only n x n array: float32 distances, inf on the diagonal (leave-one-out)
        D = self._dist(bags, dtype=np.float32)
        np.fill_diagonal(D, np.inf)
        # paper: Z's k'-neighbourhood; kdis: Z's k-reference list
        kr = int(self.n_citers) if self.citers == "paper" else int(self.n_references)
        kr = min(max(kr, 0), n - 1)
        self.citer_radius_ = (_kth_smallest(D, kr, self._rows_per_block(4.0 * n)) if kr > 0
                              else np.full(n, -np.inf))
        self.train_bags_ = bags
        self.Y_train_ = Y
        Phi = self._counts(D, self.citer_radius_, loo=True)
        del D
        self.weights_ = least_squares(Phi, pm1(Y), reg_lambda=0.0)
        self.threshold_ = float(self.threshold)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Linear outputs ``W^T c(X)`` (n_bags x n_labels); > ``threshold`` = relevant."""
        check_is_fitted(self)
        bags = self._test_bags(X)
        n = bags.n_bags
        # test bags in chunks: their float32 distances (4) + the counting step (24) per entry
        rows = self._rows_per_block(28.0 * self.train_bags_.n_bags)
        out = np.empty((n, self.weights_.shape[1]))
        for r0 in range(0, n, rows):
            part = bags if rows >= n else bags.take(np.arange(r0, min(n, r0 + rows)))
            D = self._dist(part, self.train_bags_, dtype=np.float32)
            out[r0:r0 + rows] = self._counts(D, self.citer_radius_, loo=False) @ self.weights_
        return out
