"""Shared behaviour of every mimlkit learner (the scikit-learn estimator contract).

A learner subclasses ``MIMLClassifierMixin`` (left of ``BaseEstimator``) and implements
``fit(X, Y)`` and ``decision_function(X)`` (real scores, n_bags x n_labels; larger = more
likely). ``predict`` thresholds the scores at ``self._threshold()`` and applies the
T-criterion (Zhang & Zhou): a bag with no score above the threshold still gets its top label,
unless the learner's ``t_criterion`` parameter is ``False``.

``X`` is anything ``as_bags`` accepts (a ``Bags``, a list of 2-D arrays, a 3-D or 2-D array).
``Y`` is an n x K matrix of 1 (present), 0 (absent) and, where the learner supports it,
-1 (unobserved).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from mimlkit.bags import Bags, as_bags, check_labels

__all__ = ["MIMLClassifierMixin", "BaseEstimator", "t_criterion_predict"]


def t_criterion_predict(scores: np.ndarray, threshold: float | np.ndarray,
                        t_criterion: bool = True) -> np.ndarray:
    """{0,1} predictions: ``scores > threshold``; with the T-criterion every row keeps its
    arg-max label even when no score passes the threshold. Vectorised."""
    scores = np.asarray(scores)
    Y = (scores > threshold).astype(np.int8)
    if t_criterion and Y.shape[0]:
        empty = ~Y.any(axis=1)
        if empty.any():
            rows = np.flatnonzero(empty)
            Y[rows, np.argmax(scores[rows], axis=1)] = 1
    return Y


class MIMLClassifierMixin:
    """Mixin for MIML learners: ``predict`` (threshold + T-criterion), ``score``,
    input/label validation helpers and estimator tags.

    Subclasses set ``decision_threshold`` (class attribute, default 0.0) or a fitted
    ``threshold_`` (scalar or per-label array) to say where their scores split 1 from 0.
    """

    _estimator_type = "classifier"
    #: where ``decision_function`` separates present (>) from absent; 0.5 for probabilities
    decision_threshold: float = 0.0
    #: whether ``fit`` accepts -1 (unobserved) entries in Y
    supports_unobserved: bool = False
    #: what ``fit``/``predict`` take: "bags" (feature bags) or "images" (an ``ImageSet``);
    #: ``mimlkit.evaluation.evaluate`` feeds estimator objects accordingly
    input_kind: str = "bags"

    # ---------------------------------------------------------------- validation helpers
    def _validate_bags(self, X: Any, *, reset: bool) -> Bags:
        """Coerce to ``Bags``; on ``reset`` remember the feature width, else check it."""
        bags = as_bags(X, dtype=getattr(self, "dtype", np.float32))
        if reset:
            self.n_features_in_ = bags.n_features
        else:
            check_is_fitted(self)
            expected = getattr(self, "n_features_in_", None)
            if expected is not None and bags.n_features != expected:
                raise ValueError(
                    f"X has {bags.n_features} features per instance, but "
                    f"{type(self).__name__} was fitted with {expected}"
                )
        return bags

    def _validate_fit(self, X: Any, Y: Any) -> tuple[Bags, np.ndarray]:
        """Validated (bags, Y int8) for ``fit``; sets ``n_features_in_`` and ``n_labels_``."""
        bags = self._validate_bags(X, reset=True)
        Y = check_labels(Y, bags.n_bags, allow_unobserved=self.supports_unobserved)
        self.n_labels_ = Y.shape[1]
        return bags, Y

    # ---------------------------------------------------------------- prediction
    def _threshold(self) -> float | np.ndarray:
        return getattr(self, "threshold_", self.decision_threshold)

    def predict(self, X: Any) -> np.ndarray:
        """{0,1} label matrix (n_bags x n_labels, int8)."""
        scores = self.decision_function(X)  # type: ignore[attr-defined]
        return t_criterion_predict(scores, self._threshold(), getattr(self, "t_criterion", True))

    def score(self, X: Any, Y: Any, sample_weight: Any = None) -> float:
        """Average precision (label ranking), the field's headline metric; higher is better."""
        from mimlkit.metrics import average_precision

        return float(average_precision(check_labels(Y, allow_unobserved=False),
                                       self.decision_function(X)))  # type: ignore[attr-defined]

    def __sklearn_tags__(self):  # noqa: D105
        tags = super().__sklearn_tags__()  # type: ignore[misc]
        tags.estimator_type = "classifier"
        if tags.classifier_tags is None:  # what sklearn's ClassifierMixin would set
            from sklearn.utils import ClassifierTags

            tags.classifier_tags = ClassifierTags(multi_class=False, multi_label=True)
        tags.target_tags.required = True
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = False
        tags.input_tags.two_d_array = True
        return tags
