"""``PooledLinear``: the baseline that makes the pipeline real end to end.

Each bag is reduced to one vector by pooling its instances (mean, max, or both
concatenated), the pooled vectors are standardised, and one L2-regularised logistic
regression per label is fitted (binary relevance). Scores are the per-label logits, so the
decision threshold is 0. A label with a single class in the (observed) training rows gets a
constant score: the smoothed log-odds ``log((n_pos + 0.5) / (n_neg + 0.5))``.

Supports unobserved (-1) labels: each label's model is fitted on the bags where that label
is observed (the "assume nothing" treatment of single-positive data).

A bag store (``open_store``) as ``X`` is pooled one block of bags at a time: only the pooled
matrix (n_bags x d, or 2d for "meanmax") is held in memory, and it equals the in-memory one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from mimlkit.bags import Bags
from mimlkit.learners._bag_source import is_bag_source, map_blocks
from mimlkit.learners.base import MIMLClassifierMixin

__all__ = ["PooledLinear"]

_POOL_CHOICES = ("mean", "max", "meanmax")


def _pool(bags: Any, how: str) -> np.ndarray:
    if is_bag_source(bags):  # a bag store: pooled one block of bags at a time
        if how not in _POOL_CHOICES:
            raise ValueError(f"pool must be one of {_POOL_CHOICES}, got {how!r}")
        return map_blocks(bags, lambda blk: _pool(blk, how))
    if how == "mean":
        return bags.pool("mean").astype(np.float64, copy=False)
    if how == "max":
        return bags.pool("max").astype(np.float64, copy=False)
    if how == "meanmax":
        return np.hstack([bags.pool("mean").astype(np.float64, copy=False),
                          bags.pool("max").astype(np.float64, copy=False)])
    raise ValueError(f"pool must be one of {_POOL_CHOICES}, got {how!r}")


def _fit_one(F: np.ndarray, y: np.ndarray, C: float, max_iter: int, tol: float,
             class_weight: Any, random_state: Any) -> tuple[np.ndarray, float, int]:
    """Coefficients and intercept of one label's logistic regression (rows with y >= 0)."""
    mask = y >= 0
    yk = y[mask]
    n_pos = int((yk == 1).sum())
    n_neg = int((yk == 0).sum())
    if n_pos == 0 or n_neg == 0:
        return np.zeros(F.shape[1]), float(np.log((n_pos + 0.5) / (n_neg + 0.5))), 0
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=C, max_iter=max_iter, tol=tol, class_weight=class_weight,
                             random_state=random_state)
    clf.fit(X=F[mask], y=yk)
    return clf.coef_[0].astype(np.float64), float(clf.intercept_[0]), int(clf.n_iter_[0])


class PooledLinear(MIMLClassifierMixin, BaseEstimator):
    """Bag pooling + standardisation + one-vs-rest logistic regression.

    Parameters
    ----------
    pool : "mean" | "max" | "meanmax"
        How a bag's instances become one vector ("meanmax" concatenates both).
    C : float
        Inverse L2 regularisation strength of each logistic regression.
    standardize : bool
        Scale pooled features to zero mean / unit variance (statistics of the training bags).
    class_weight : None | "balanced"
        Passed to each per-label logistic regression.
    max_iter, tol : solver settings (lbfgs).
    t_criterion : bool
        ``predict`` gives every bag at least its top-scoring label.
    random_state : int | None
        Kept for API symmetry (lbfgs is deterministic).
    n_jobs : int | None
        Labels fitted in parallel (joblib).

    Fitted attributes: ``coef_`` (n_labels x n_pooled_features, in standardised space),
    ``intercept_`` (n_labels,), ``mean_``/``scale_`` (standardisation), ``n_iter_``
    (solver iterations per label; 0 for a constant label), ``n_features_in_``, ``n_labels_``.
    """

    supports_unobserved = True
    decision_threshold = 0.0
    _store_input = True  # a bag store is pooled block by block

    def __init__(self, *, pool: str = "mean", C: float = 1.0, standardize: bool = True,
                 class_weight: str | None = None, max_iter: int = 500, tol: float = 1e-4,
                 t_criterion: bool | str = "auto", threshold_mode: str = "hamming",
                 random_state: int | None = None,
                 n_jobs: int | None = None) -> None:
        self.pool = pool
        self.C = C
        self.standardize = standardize
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.tol = tol
        self.t_criterion = t_criterion
        self.threshold_mode = threshold_mode
        self.random_state = random_state
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, Y: Any) -> PooledLinear:
        """Fit one logistic regression per label on pooled, standardised bags."""
        if self.pool not in _POOL_CHOICES:
            raise ValueError(f"pool must be one of {_POOL_CHOICES}, got {self.pool!r}")
        if not (isinstance(self.C, (int, float, np.number)) and self.C > 0):
            raise ValueError(f"C must be a positive number, got {self.C!r}")
        bags, Y = self._validate_fit(X, Y)
        F = _pool(bags, self.pool)
        if self.standardize:
            mean = F.mean(axis=0)
            scale = F.std(axis=0)
            scale[scale < 1e-12] = 1.0
        else:
            mean = np.zeros(F.shape[1])
            scale = np.ones(F.shape[1])
        Fs = (F - mean) / scale
        out = Parallel(n_jobs=self.n_jobs, prefer="threads")(
            delayed(_fit_one)(Fs, Y[:, k], float(self.C), int(self.max_iter), float(self.tol),
                              self.class_weight, self.random_state)
            for k in range(Y.shape[1])
        )
        self.mean_ = mean
        self.scale_ = scale
        self.coef_ = np.vstack([o[0] for o in out]) if out else np.zeros((0, F.shape[1]))
        self.intercept_ = np.array([o[1] for o in out], dtype=np.float64)
        self.n_iter_ = np.array([o[2] for o in out], dtype=np.int64)
        return self

    # ------------------------------------------------------------------ predict
    def decision_function(self, X: Any) -> np.ndarray:
        """Per-label logits (n_bags x n_labels); > 0 means present."""
        check_is_fitted(self, "coef_")
        bags = self._validate_bags(X, reset=False)
        Fs = (_pool(bags, self.pool) - self.mean_) / self.scale_
        return Fs @ self.coef_.T + self.intercept_

    def predict_proba(self, X: Any) -> np.ndarray:
        """Per-label probabilities (sigmoid of the logits)."""
        s = self.decision_function(X)
        return 0.5 * (1.0 + np.tanh(0.5 * s))

    def decision_function_instances(self, X: Any) -> np.ndarray:
        """Per-instance logits (n_instances x n_labels): the linear model applied to each
        instance as if it were a bag of one. With ``pool="mean"`` a bag's score is the mean
        of its instances' scores (exact decomposition)."""
        check_is_fitted(self, "coef_")
        bags = self._validate_bags(X, reset=False)
        if is_bag_source(bags):
            return map_blocks(bags, self._instance_logits)
        return self._instance_logits(bags)

    def _instance_logits(self, bags: Bags) -> np.ndarray:
        Xi = bags.instances.astype(np.float64, copy=False)
        F = np.hstack([Xi, Xi]) if self.pool == "meanmax" else Xi
        return ((F - self.mean_) / self.scale_) @ self.coef_.T + self.intercept_
