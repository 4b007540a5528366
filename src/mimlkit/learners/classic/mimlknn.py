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


def _kth_smallest(D: np.ndarray, k: int) -> np.ndarray:
    """Per row, the k-th smallest value (1-based), k <= n_cols."""
    return np.partition(D, k - 1, axis=1)[:, k - 1]


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
    variant, scale, t_criterion, n_jobs : as in ``MIMLSVM``.
    random_state : unused (deterministic); kept for a uniform interface.

    Attributes
    ----------
    train_bags_ : Bags, Y_train_ : int8 labels, citer_radius_ : (n_train,) the distance from
    each training bag to its k'-th (paper) or k-th (kdis) nearest training bag,
    weights_ : (q [+1]) x q output weights, threshold_ : float.
    """

    def __init__(self, n_references: int = 10, n_citers: int = 20, citers: str = "paper",
                 threshold: float = 0.0, fit_intercept: bool = False, variant: str = "max",
                 scale: str | None = None, t_criterion: bool = True,
                 random_state: Any = None, n_jobs: int | None = None) -> None:
        self.n_references = n_references
        self.n_citers = n_citers
        self.citers = citers
        self.threshold = threshold
        self.fit_intercept = fit_intercept
        self.variant = variant
        self.scale = scale
        self.t_criterion = t_criterion
        self.random_state = random_state
        self.n_jobs = n_jobs

    # ---------------------------------------------------------------- helpers
    def _counts(self, D: np.ndarray, radius: np.ndarray, self_mask: np.ndarray | None
                ) -> np.ndarray:
        """Label counting vectors for query rows of ``D`` (queries x training bags)."""
        n_train = D.shape[1]
        k = min(int(self.n_references), n_train - (self_mask is not None))
        kc = min(int(self.n_citers), n_train - (self_mask is not None))
        Dq = D if self_mask is None else np.where(self_mask, np.inf, D)
        refs = _knn_mask(Dq, k) if k > 0 else np.zeros(D.shape, dtype=bool)
        # training bag Z cites query X when X is within Z's neighbourhood radius
        cand = Dq <= radius[None, :]
        if self.citers == "kdis" and kc > 0:
            Dc = np.where(cand, Dq, np.inf)
            cit = _knn_mask(Dc, kc) & cand
        else:
            cit = cand
        M = (refs | cit).astype(np.float64)
        C = M @ self.Y_train_.astype(np.float64)
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
        D = self._dist(bags)
        eye = np.eye(n, dtype=bool)
        Doff = np.where(eye, np.inf, D)
        # paper: Z's k'-neighbourhood; kdis: Z's k-reference list
        kr = int(self.n_citers) if self.citers == "paper" else int(self.n_references)
        kr = min(max(kr, 0), n - 1)
        self.citer_radius_ = (_kth_smallest(Doff, kr) if kr > 0
                              else np.full(n, -np.inf))
        self.train_bags_ = bags
        self.Y_train_ = Y
        Phi = self._counts(D, self.citer_radius_, eye)  # leave-one-out
        self.weights_ = least_squares(Phi, pm1(Y), reg_lambda=0.0)
        self.threshold_ = float(self.threshold)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Linear outputs ``W^T c(X)`` (n_bags x n_labels); > ``threshold`` = relevant."""
        check_is_fitted(self)
        D = self._dist(self._test_bags(X), self.train_bags_)
        return self._counts(D, self.citer_radius_, None) @ self.weights_
