"""scikit-learn scorers for the MIML metrics scikit-learn lacks.

    from sklearn.model_selection import cross_val_score
    from mimlkit.scoring import get_scorer
    cross_val_score(create("mimlsvm"), bags, Y, cv=3, scoring=get_scorer("one_error"))

``get_scorer(name)`` takes any name of ``mimlkit.metrics.METRICS`` (or an alias there):
one-error, coverage, ranking loss, MIML average precision, hamming loss, macro-AUC, F1s,
subset accuracy, mAP, "overall". Names follow mimlkit, not scikit-learn:
``"average_precision"`` is the **example-based** (label-ranking) AP of the MIML tables
(``"miml_average_precision"`` is accepted too); scikit-learn's string ``"average_precision"``
(label-based, macro over labels) is mimlkit's ``"mean_average_precision"``. A name mimlkit
does not know is passed on to ``sklearn.metrics.get_scorer``.

As for every scikit-learn scorer, greater is better: a loss (hamming loss, one-error,
coverage, ranking loss) comes back negated (``-value``); ``"neg_<loss>"`` is accepted as a
name for the same scorer. Ranking metrics read ``decision_function`` (else
``predict_proba``), set metrics read ``predict``; ``convention`` ("zhang" default, as in
``mimlkit.evaluation.evaluate``, or "sklearn") chooses the bags and offsets
(``mimlkit.metrics``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import get_scorer as _sklearn_get_scorer
from sklearn.metrics import make_scorer

from mimlkit.metrics import METRICS, resolve_metric

__all__ = ["get_scorer", "get_scorer_names"]

_SCORE_METHODS = ("decision_function", "predict_proba")


def get_scorer_names() -> list[str]:
    """mimlkit metric names that ``get_scorer`` turns into scalar scorers."""
    return [n for n, s in METRICS.items() if not s.per_label]


def _metric_name(name: str) -> str | None:
    key = name.strip().lower().replace("-", "_")
    if key.startswith("miml_"):
        key = key[len("miml_"):]
    neg = key.startswith("neg_")
    if neg:
        key = key[len("neg_"):]
    try:
        metric = resolve_metric(key)
    except ValueError:
        return None
    if neg and METRICS[metric].greater_is_better:
        raise ValueError(f"scorer {name!r}: {metric} is not a loss; ask for {metric!r}")
    return metric


def _scores_of(estimator: Any, X: Any) -> np.ndarray:
    """(n, K) real scores: decision_function, else predict_proba (a per-label list of
    (n, 2) arrays, scikit-learn's multi-output form, is stacked)."""
    if hasattr(estimator, "decision_function"):
        return np.asarray(estimator.decision_function(X), dtype=np.float64)
    proba = estimator.predict_proba(X)
    if isinstance(proba, list):
        return np.column_stack([np.asarray(p)[:, -1] for p in proba]).astype(np.float64)
    return np.asarray(proba, dtype=np.float64)


class _BothScorer:
    """Scorer for a metric that needs scores and 0/1 predictions ("overall")."""

    def __init__(self, metric: str) -> None:
        self.metric = metric

    def __call__(self, estimator: Any, X: Any, y_true: Any, sample_weight: Any = None) -> float:
        if sample_weight is not None:
            raise ValueError(f"scorer {self.metric!r} does not take sample_weight")
        spec = METRICS[self.metric]
        value = float(spec.fn(y_true, _scores_of(estimator, X), np.asarray(estimator.predict(X))))
        return value if spec.greater_is_better else -value

    def __repr__(self) -> str:
        return f"mimlkit.scoring.get_scorer({self.metric!r})"


def get_scorer(name: str | Any, *, convention: str = "zhang") -> Any:
    """A scikit-learn scorer ``scorer(estimator, X, Y) -> float`` (greater is better).

    ``name``: a mimlkit metric name (module docstring) or any scikit-learn scorer name; a
    callable is returned unchanged. ``convention`` applies to the ranking metrics and
    example-based F1 (``mimlkit.metrics``).
    """
    if callable(name):
        return name
    if not isinstance(name, str):
        raise TypeError(f"scorer name must be a string, got {type(name).__name__}")
    metric = _metric_name(name)
    if metric is None:
        try:
            return _sklearn_get_scorer(name)
        except ValueError:
            raise ValueError(f"unknown scorer {name!r}: not a mimlkit metric "
                             f"({', '.join(get_scorer_names())}) nor a scikit-learn scorer "
                             "(sklearn.metrics.get_scorer_names())") from None
    spec = METRICS[metric]
    if spec.per_label:
        raise ValueError(f"metric {metric!r} gives one value per label, not a single score")
    if spec.input == "both":
        return _BothScorer(metric)
    kwargs = {"convention": convention} if spec.convention else {}
    method = _SCORE_METHODS if spec.input == "scores" else "predict"
    return make_scorer(spec.fn, response_method=method,
                       greater_is_better=spec.greater_is_better, **kwargs)
