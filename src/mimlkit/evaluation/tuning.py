"""Nested hyper-parameter tuning: choices made on inner bag-level folds of the training
part only, never on the test part.

Each learner declares a small search space (``SEARCH_SPACES`` below, or a ``search_space``
class attribute on a third-party learner). ``TunedLearner(estimator, space)`` is itself an
estimator: its ``fit`` scores every setting of the grid by MIML average precision over
``cv`` inner folds of the bags it is given, refits the best setting on all of them and
predicts with it. ``evaluate(..., tune=True)`` / ``mimlkit evaluate --tune`` wrap every
learner that has a space, so the outer protocol's test part is never seen by the choice;
the chosen values are recorded per split (``tuned_params`` in the result rows).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone
from sklearn.utils.validation import check_is_fitted

from mimlkit.bags import as_bags, check_labels
from mimlkit.learners.base import MIMLClassifierMixin

__all__ = ["SEARCH_SPACES", "search_space", "TunedLearner", "tuned"]

#: Small grids (≤ 9 settings) around each default; names are registry names.
SEARCH_SPACES: dict[str, dict[str, list[Any]]] = {
    "pooled-linear": {"C": [0.1, 1.0, 10.0], "pool": ["mean", "meanmax"]},
    "mimlsvm": {"ratio": [0.1, 0.2, 0.4], "C": [0.3, 1.0, 3.0]},
    "mimlknn": {"n_references": [5, 10, 20], "n_citers": [10, 20, 40]},
    "mimlnn": {"ratio": [0.2, 0.4, 0.6]},
    "mimlrbf": {"ratio": [0.05, 0.1, 0.2], "mu": [0.4, 0.6, 1.0]},
    "mimlfast": {"dim": [50, 100], "lr": [0.002, 0.005, 0.01]},
    "mimlboost": {"gamma": [1.0, 10.0, 30.0]},
    "mimlmisvm": {"C": [0.3, 1.0, 3.0]},
    "deepmiml": {"hidden": [128, 512], "epochs": [15, 30]},
    "bls": {"n_enhancement": [250, 1000], "reg_lambda": [1e-3, 1e-1]},
    "awlel": {"n_enhancement": [250, 1000], "reg_lambda": [1e-3, 1e-1]},
    "smipr": {"alpha": [0.3, 3.0, 30.0]},
    "bmiml": {"fusion_alpha": [1.0, 0.5]},
    "transfer-lr": {"C": [0.1, 1.0, 10.0]},
    "multilabel-head": {"lr": [1e-3, 1e-2], "weight_decay": [0.0, 1e-4]},
}


def search_space(name_or_estimator: Any) -> dict[str, list[Any]] | None:
    """The declared grid of a registry name or an estimator (its ``search_space``
    attribute, else the registry entry of its class), or None."""
    if isinstance(name_or_estimator, str):
        return SEARCH_SPACES.get(name_or_estimator.lower())
    own = getattr(name_or_estimator, "search_space", None)
    if isinstance(own, dict):
        return own
    from mimlkit import registry

    target = f"{type(name_or_estimator).__module__}:{type(name_or_estimator).__qualname__}"
    for name in registry.list_learners():
        spec = registry.learner_spec(name)
        if spec.target == target and not spec.params:
            return SEARCH_SPACES.get(name)
    return None


def _grid(space: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = sorted(space)
    return [dict(zip(keys, vals)) for vals in itertools.product(*(space[k] for k in keys))]


class TunedLearner(MIMLClassifierMixin, BaseEstimator):
    """Grid search by inner bag-level K-fold CV (MIML average precision), then refit.

    Parameters
    ----------
    estimator : the learner to tune (cloned).
    param_grid : {parameter: [values]} (``None`` = the learner's declared space).
    cv : inner folds (default 3).
    random_state : seeds the inner fold assignment.

    Fitted: ``best_params_``, ``best_score_``, ``cv_results_`` (list of (params, mean AP)),
    ``best_estimator_``.
    """

    _uses_threshold_calibration = False  # the refitted learner calibrates itself

    def __init__(self, estimator: Any = None, param_grid: dict | None = None, cv: int = 3,
                 random_state: int | None = 0) -> None:
        self.estimator = estimator
        self.param_grid = param_grid
        self.cv = cv
        self.random_state = random_state

    @property
    def input_kind(self) -> str:  # type: ignore[override]
        return getattr(self.estimator, "input_kind", "bags")

    @property
    def supports_unobserved(self) -> bool:  # type: ignore[override]
        return bool(getattr(self.estimator, "supports_unobserved", False))

    def fit(self, X: Any, Y: Any) -> TunedLearner:
        from mimlkit.metrics import average_precision

        if self.estimator is None:
            raise ValueError("TunedLearner needs an estimator")
        bags = as_bags(X)
        Y = check_labels(Y, bags.n_bags, allow_unobserved=self.supports_unobserved)
        space = self.param_grid if self.param_grid is not None else search_space(self.estimator)
        grid = _grid(space) if space else [{}]
        k = int(self.cv)
        if k < 2 or k > bags.n_bags:
            raise ValueError(f"cv must be in [2, n_bags={bags.n_bags}], got {self.cv}")
        perm = np.random.default_rng(self.random_state).permutation(bags.n_bags)
        folds = np.array_split(perm, k)
        results = []
        for params in grid if len(grid) > 1 else []:
            aps = []
            for i in range(k):
                te = np.sort(folds[i])
                tr = np.sort(np.concatenate(folds[:i] + folds[i + 1:]))
                est = clone(self.estimator).set_params(**params)
                if "threshold_mode" in est.get_params(deep=False):
                    est.set_params(threshold_mode="fixed")  # ranking only: no calibration
                est.fit(bags.take(tr), Y[tr])
                S = est.decision_function(bags.take(te))
                Yt = Y[te]
                keep = (Yt >= 0).all(axis=1)  # full rows only for the ranking metric
                aps.append(float(average_precision(Yt[keep], S[keep])))
            results.append((params, float(np.mean(aps))))
        if results:
            best, score = max(results, key=lambda r: r[1])
        else:
            best, score = (grid[0], float("nan"))
        self.cv_results_ = results
        self.best_params_ = dict(best)
        self.best_score_ = score
        self.best_estimator_ = clone(self.estimator).set_params(**best).fit(bags, Y)
        self.n_features_in_ = bags.n_features
        self.n_labels_ = Y.shape[1]
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.decision_function(X)

    def predict(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict(X)


def tuned(estimator: Any, cv: int = 3, random_state: int | None = 0) -> Any:
    """``TunedLearner`` around ``estimator`` when it has a search space, else ``estimator``."""
    space = search_space(estimator)
    if not space:
        return estimator
    return TunedLearner(estimator, space, cv=cv, random_state=random_state)
