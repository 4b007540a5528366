"""Single-positive training protocol (SPMLL): a meta-estimator that trains any learner on
one random positive per training row and predicts unchanged (test labels stay full)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone

from mimlkit.learners.base import MIMLClassifierMixin

__all__ = ["SinglePositiveTraining"]


class SinglePositiveTraining(MIMLClassifierMixin, BaseEstimator):
    """Meta-estimator: fit ``estimator`` on single-positive labels (one random positive
    kept per training row, every other entry -1), predict with it unchanged. The test-time
    labels stay full, so any runner evaluates the single-positive protocol."""

    supports_unobserved = True

    def __init__(self, estimator: Any = None, *, unobserved: str = "negative",
                 random_state: int = 1200) -> None:
        self.estimator = estimator
        self.unobserved = unobserved
        self.random_state = random_state

    def fit(self, X: Any, Y: Any) -> SinglePositiveTraining:
        """``unobserved="negative"``: the "assume negative" (AN) baseline, unobserved entries
        become 0 (any learner); ``"keep"``: they stay -1 for learners whose loss handles them
        (``supports_unobserved``)."""
        from mimlkit.bags import check_labels

        if self.unobserved not in ("negative", "keep"):
            raise ValueError(f"unobserved must be 'negative' or 'keep', got {self.unobserved!r}")
        Y = check_labels(Y, allow_unobserved=True)
        Ysp = Y if (Y == -1).any() else _single_positive(Y, self.random_state)
        if self.unobserved == "negative":
            Ysp = np.where(Ysp == 1, 1, 0).astype(np.int8)
        self.estimator_ = clone(self.estimator).fit(X, Ysp)
        self.n_labels_ = Y.shape[1]
        self.n_features_in_ = getattr(self.estimator_, "n_features_in_", None)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "estimator_")
        return self.estimator_.decision_function(X)

    def predict(self, X: Any) -> np.ndarray:
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "estimator_")
        return self.estimator_.predict(X)

    @property
    def history_(self):  # noqa: D401 - pass-through for training curves
        return self.estimator_.history_


def _single_positive(Y: np.ndarray, seed: int) -> np.ndarray:
    try:
        from mimlkit.deep.spmll import make_single_positive
    except ImportError:  # pragma: no cover - spmll module absent
        make_single_positive = None
    if make_single_positive is not None:
        return make_single_positive(Y, random_state=seed)
    rng = np.random.default_rng(seed)
    pos = Y == 1
    counts = pos.sum(1)
    pick = np.floor(rng.random(len(Y)) * np.maximum(counts, 1)).astype(np.int64)
    keep = pos & ((np.cumsum(pos, axis=1) - 1) == pick[:, None])
    out = np.full(Y.shape, -1, dtype=np.int8)
    out[keep] = 1
    return out
