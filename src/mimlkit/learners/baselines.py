"""Trivial baselines: what a learner gets without learning anything from the instances.

* ``LabelPrior`` (``prior``): every bag gets the training label frequencies as scores, so
  its ranking metrics are those of "rank labels by how common they are". ``predict`` marks
  a label present when its frequency is above one half (the hamming-optimal constant rule).
* ``EmptyPredictor`` (``empty``): the same scores, but ``predict`` never marks a label.
  Its hamming loss is the label density of the test set: a learner whose hamming loss is
  above it predicts worse than saying nothing.

Every figure in a bench table sits next to these two rows. Both accept unobserved (-1)
training entries (frequencies are taken over the observed ones).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from mimlkit.learners.base import MIMLClassifierMixin

__all__ = ["LabelPrior", "EmptyPredictor"]


def _frequencies(Y: np.ndarray, smoothing: float = 0.0) -> np.ndarray:
    """Per-label share of positives among the observed (>= 0) entries, with ``smoothing``
    pseudo-counts on each side (0.5 when a label has no observed entry and no smoothing)."""
    obs = Y >= 0
    n_obs = obs.sum(axis=0) + 2.0 * smoothing
    pos = (Y == 1).sum(axis=0) + smoothing
    return np.where(n_obs > 0, pos / np.maximum(n_obs, 1e-12), 0.5).astype(np.float64)


class LabelPrior(MIMLClassifierMixin, BaseEstimator):
    """Scores = training label frequencies (the same for every bag).

    ``predict`` gives a label when its frequency exceeds 0.5; no T-criterion, so a bag
    may get the empty set. ``smoothing``: Laplace pseudo-counts added to the positives and
    the negatives of each label (0 = the plain frequency). Fitted: ``prior_`` (n_labels,).
    """

    supports_unobserved = True
    decision_threshold = 0.5
    t_criterion = False  # not a parameter: a constant rule gives no bag its "top" label
    _uses_threshold_calibration = False

    def __init__(self, smoothing: float = 0.0) -> None:
        self.smoothing = smoothing

    def fit(self, X: Any, Y: Any) -> LabelPrior:
        _, Y = self._validate_fit(X, Y)
        if not (np.isscalar(self.smoothing) and float(self.smoothing) >= 0):
            raise ValueError(f"smoothing must be a number >= 0, got {self.smoothing!r}")
        self.prior_ = _frequencies(Y, float(self.smoothing))
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "prior_")
        bags = self._validate_bags(X, reset=False)
        return np.tile(self.prior_, (bags.n_bags, 1))

    def predict_proba(self, X: Any) -> np.ndarray:
        return self.decision_function(X)


class EmptyPredictor(LabelPrior):
    """Predicts no label for any bag; scores are the label prior (for the ranking metrics)."""

    decision_threshold = np.inf

    def predict(self, X: Any) -> np.ndarray:
        S = self.decision_function(X)
        return np.zeros(S.shape, dtype=np.int8)
