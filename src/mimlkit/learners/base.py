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


class _LabelClasses:
    """``classes_`` for learners that set ``n_labels_`` without ``_validate_fit``: one
    ``array([0, 1])`` per label (see ``_validate_fit``). A non-data descriptor, so a fitted
    ``classes_`` in the instance wins; before fit ``hasattr(est, "classes_")`` is False."""

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        n = obj.__dict__.get("n_labels_")
        if n is None:
            raise AttributeError(f"{type(obj).__name__!r} object has no attribute 'classes_' "
                                 "(not fitted)")
        return [np.array([0, 1]) for _ in range(int(n))]


class MIMLClassifierMixin:
    """Mixin for MIML learners: ``predict`` (threshold + T-criterion), ``score``,
    input/label validation helpers and estimator tags.

    Subclasses set ``decision_threshold`` (class attribute, default 0.0) or a fitted
    ``threshold_`` (scalar or per-label array) to say where their scores split 1 from 0.
    """

    _estimator_type = "classifier"
    classes_ = _LabelClasses()
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
        """Validated (bags, Y int8) for ``fit``; sets ``n_features_in_``, ``n_labels_`` and
        ``classes_``.

        ``classes_`` follows scikit-learn's multi-output classifiers (RandomForest,
        KNeighbors): one ``array([0, 1])`` per label. ``type_of_target(classes_)`` is then
        "multilabel-indicator" for every K, so sklearn's scorers take ``decision_function``
        / ``predict_proba`` as the (n, K) arrays they are; ``np.arange(K)`` (MLPClassifier's
        form) reads as *binary* when K = 2 and makes the scorers pick one column."""
        bags = self._validate_bags(X, reset=True)
        Y = check_labels(Y, bags.n_bags, allow_unobserved=self.supports_unobserved)
        self.n_labels_ = Y.shape[1]
        self.classes_ = [np.array([0, 1]) for _ in range(Y.shape[1])]
        return bags, Y

    # ---------------------------------------------------------------- prediction
    def _threshold(self) -> float | np.ndarray:
        return getattr(self, "threshold_", self.decision_threshold)

    def predict(self, X: Any) -> np.ndarray:
        """{0,1} label matrix (n_bags x n_labels, int8)."""
        scores = self.decision_function(X)  # type: ignore[attr-defined]
        return t_criterion_predict(scores, self._threshold(), getattr(self, "t_criterion", True))

    def predict_proba(self, X: Any) -> np.ndarray:
        """Per-label scores in [0, 1] (n_bags x n_labels), the multilabel-indicator shape of
        scikit-learn's scorers. Learners whose scores are probabilities (class attribute
        ``decision_threshold == 0.5``, scores within [0, 1]) return them unchanged; for
        the others this is ``1 / (1 + exp(-(score - t)))`` with ``t`` the label's decision
        threshold (the native one where the fitted threshold is infinite): monotone in the
        score per label, > 0.5 exactly where the score passes a finite threshold, and
        **not calibrated**. Learners with real probabilities override this method."""
        from scipy.special import expit

        S = np.asarray(self.decision_function(X), dtype=np.float64)  # type: ignore[attr-defined]
        if type(self).decision_threshold == 0.5 and S.size and S.min() >= 0 and S.max() <= 1:
            return S
        native = float(type(self).decision_threshold)
        t = np.broadcast_to(np.asarray(self._threshold(), dtype=np.float64), S.shape[1:])
        t = np.where(np.isfinite(t), t, native if np.isfinite(native) else 0.0)
        return expit(S - t)

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
