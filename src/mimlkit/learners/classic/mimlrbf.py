"""MIMLRBF (Zhang & Wang, Neurocomputing 2009): an RBF network whose first-layer centres are
per-label k-medoids of bags under the Hausdorff distance.

Spec ``classic_miml.md`` §4:

1. for each label l, k-medoids on the training bags carrying l with
   ``k_l = max(1, ceil(ratio |U_l|))`` (ratio 0.1); all medoids are the centres c_1..c_M;
2. width ``sigma = mu * mean pairwise Hausdorff distance among the centres`` (mu = 0.6);
   ``sigma="per_label"``: each label's centres use ``mu *`` the mean distance among that
   label's centres; basis ``phi_j(X) = exp(-d_H(X, c_j)^2 / (2 sigma_j^2))``;
3. linear second layer with a bias on ±1 targets, ``W = pinv(Phi) T`` (``reg_lambda=0``) or
   ridge by Cholesky (``reg_lambda > 0``);
4. predict ``> 0`` with the T-criterion.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from mimlkit.learners.classic._hausdorff_base import HausdorffLearnerMixin, least_squares, pm1

__all__ = ["MIMLRBF"]


def _mean_offdiag(D: np.ndarray) -> float:
    m = D.shape[0]
    if m < 2:
        return 0.0
    return float((D.sum() - np.trace(D)) / (m * (m - 1)))


class MIMLRBF(HausdorffLearnerMixin, BaseEstimator):
    """Per-label medoid RBF network (spec §4).

    Parameters
    ----------
    ratio : float, default 0.1
        Centres per label as a fraction of the bags carrying that label.
    mu : float, default 0.6
        Width factor: ``sigma = mu * mean centre-to-centre distance``.
    sigma : {"global", "per_label"}, default "global"
        One width for all centres, or one per label's group of centres.
    reg_lambda : float, default 0.0
        0 = SVD pseudo-inverse (the reference formulation); > 0 = ridge by Cholesky.
    variant, kmedoids, scale, t_criterion, threshold_mode, random_state, n_jobs : as in
        ``MIMLSVM``.
    memory_budget_mb : float, default 256
        Working memory, in MB, that the Hausdorff distance engine (which blocks within and
        across bags by it) may use per block. The n x n float32 training distances (for
        the per-label k-medoids) and the n x M centre distances are held whole. Results do
        not depend on it.

    Attributes
    ----------
    centre_bags_ : Bags, centre_index_ : training positions, centre_label_ : the label that
    produced each centre, sigma_ : (M,) widths, weights_ : (M + 1) x q.
    """

    def __init__(self, ratio: float = 0.1, mu: float = 0.6, sigma: str = "global",
                 reg_lambda: float = 0.0, variant: str = "max", kmedoids: str = "fasterpam",
                 scale: str | None = "auto", t_criterion: bool | str = "auto",
                 threshold_mode: str = "hamming", random_state: Any = None,
                 n_jobs: int | None = None, memory_budget_mb: float = 256) -> None:
        self.ratio = ratio
        self.mu = mu
        self.sigma = sigma
        self.reg_lambda = reg_lambda
        self.variant = variant
        self.kmedoids = kmedoids
        self.scale = scale
        self.t_criterion = t_criterion
        self.threshold_mode = threshold_mode
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.memory_budget_mb = memory_budget_mb

    def _basis(self, Dc: np.ndarray) -> np.ndarray:
        Phi = np.exp(-(Dc**2) / (2.0 * self.sigma_[None, :] ** 2))
        return np.hstack([Phi, np.ones((Phi.shape[0], 1))])

    def fit(self, X: Any, Y: Any) -> MIMLRBF:
        bags, Y = self._fit_bags(X, Y)
        if not 0 < self.ratio <= 1:
            raise ValueError(f"ratio must be in (0, 1], got {self.ratio}")
        if not self.mu > 0:
            raise ValueError(f"mu must be positive, got {self.mu}")
        if self.sigma not in ("global", "per_label"):
            raise ValueError(f"sigma must be 'global' or 'per_label', got {self.sigma!r}")
        rs = check_random_state(self.random_state)
        D = self._dist(bags, dtype=np.float32)  # float32: no float64 n x n copy
        centres, owner = [], []
        for lab in range(Y.shape[1]):
            members = np.flatnonzero(Y[:, lab] == 1)
            if members.size == 0:
                continue
            k = max(1, int(np.ceil(self.ratio * members.size)))
            sub = self._medoids(D[np.ix_(members, members)], k, int(rs.randint(0, 2**31 - 1)))
            centres.append(members[sub])
            owner.append(np.full(k, lab))
        if not centres:  # no positive label at all: one centre, constant outputs
            centres, owner = [np.array([0])], [np.array([0])]
        idx = np.concatenate(centres).astype(np.int64)
        self.centre_index_ = idx
        self.centre_label_ = np.concatenate(owner).astype(np.int64)
        self.centre_bags_ = bags.take(idx)
        Dcc = D[np.ix_(idx, idx)].astype(np.float64)
        Dc = D[:, idx].astype(np.float64)
        del D  # only the centre distances are kept
        g = _mean_offdiag(Dcc)
        sig = np.full(idx.size, g)
        if self.sigma == "per_label":
            for lab in np.unique(self.centre_label_):
                sel = self.centre_label_ == lab
                m = _mean_offdiag(Dcc[np.ix_(sel, sel)])
                sig[sel] = m if m > 0 else g
        sig = self.mu * sig
        sig[sig <= 0] = 1.0  # all centres identical: any width gives the same constant basis
        self.sigma_ = sig
        self.weights_ = least_squares(self._basis(Dc), pm1(Y), float(self.reg_lambda))
        return self

    def transform(self, X: Any) -> np.ndarray:
        """RBF activations of the centres (n_bags x M)."""
        check_is_fitted(self)
        return self._basis(self._dist(self._test_bags(X), self.centre_bags_))[:, :-1]

    def decision_function(self, X: Any) -> np.ndarray:
        """Network outputs (n_bags x n_labels); > 0 = relevant."""
        check_is_fitted(self)
        Dc = self._dist(self._test_bags(X), self.centre_bags_)
        return self._basis(Dc) @ self.weights_
