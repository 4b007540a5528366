"""Bag-aware transformers for ``sklearn.pipeline.Pipeline``.

Each takes anything ``mimlkit.bags.as_bags`` accepts (a ``Bags``, a list of 2-D arrays, a
3-D array, a ``MIMLDataset``) and is fitted on the **instances** of the training bags:

- ``BagScaler``: per-feature scaling of the instances (standard / robust / min-max);
  returns ``Bags`` with the same bag structure.
- ``BagPCA``: PCA fitted on the training instances and applied to every instance;
  returns ``Bags``.
- ``BagPooler``: bag-level vectors (mean, max or their concatenation "meanmax") as a 2-D
  array, so any scikit-learn (multi-label) estimator can follow::

    Pipeline([("scale", BagScaler()), ("pool", BagPooler("meanmax")),
              ("clf", OneVsRestClassifier(LogisticRegression()))])

All three are plain estimators (``get_params`` / ``clone``), so they work in
``cross_val_score`` and ``GridSearchCV``, where the pipeline refits them on each training
part only.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from mimlkit.bags import Bags, as_bags

__all__ = ["BagScaler", "BagPooler", "BagPCA"]

_SCALERS = ("standard", "robust", "minmax")
_POOLS = ("mean", "max", "min", "meanmax")


def _bags(X: Any) -> Bags:
    bags = as_bags(X, dtype=np.float64)
    if bags.dtype.kind != "f":
        bags = bags.astype(np.float64)
    return bags


def _check_width(est: Any, bags: Bags) -> None:
    if bags.n_features != est.n_features_in_:
        raise ValueError(f"X has {bags.n_features} features per instance, but "
                         f"{type(est).__name__} was fitted with {est.n_features_in_}")


class _InstanceTransformer(TransformerMixin, BaseEstimator):
    """Fit a scikit-learn transformer on the instances; apply it per instance."""

    def _make(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, X: Any, y: Any = None) -> _InstanceTransformer:
        bags = _bags(X)
        self.n_features_in_ = bags.n_features
        self.transformer_ = self._make().fit(bags.instances)
        return self

    def transform(self, X: Any) -> Bags:
        check_is_fitted(self, "transformer_")
        bags = _bags(X)
        _check_width(self, bags)
        out = self.transformer_.transform(bags.instances)
        return bags.with_instances(np.asarray(out, dtype=bags.dtype))

    def __sklearn_tags__(self):  # noqa: D105
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.requires_fit = True
        return tags


class BagScaler(_InstanceTransformer):
    """Per-feature scaling of the instances, fitted on the training instances.

    method : "standard" (zero mean, unit variance), "robust" (median / IQR) or "minmax"
        (to [0, 1]). Constant features are left unscaled (scikit-learn's rule).
    Fitted: ``transformer_`` (the scikit-learn scaler), ``n_features_in_``.
    """

    def __init__(self, method: str = "standard") -> None:
        self.method = method

    def _make(self) -> Any:
        from sklearn.preprocessing import MinMaxScaler, RobustScaler, StandardScaler

        if self.method not in _SCALERS:
            raise ValueError(f"method must be one of {_SCALERS}, got {self.method!r}")
        return {"standard": StandardScaler, "robust": RobustScaler,
                "minmax": MinMaxScaler}[self.method]()


class BagPCA(_InstanceTransformer):
    """PCA fitted on the training instances, applied to every instance (the bag structure
    is kept). ``n_components``, ``whiten``, ``svd_solver``, ``random_state``: as in
    ``sklearn.decomposition.PCA``. Fitted: ``transformer_`` (the PCA), ``n_features_in_``,
    ``n_components_``."""

    def __init__(self, n_components: int | float | str | None = None, whiten: bool = False,
                 svd_solver: str = "auto", random_state: Any = None) -> None:
        self.n_components = n_components
        self.whiten = whiten
        self.svd_solver = svd_solver
        self.random_state = random_state

    def _make(self) -> Any:
        from sklearn.decomposition import PCA

        return PCA(n_components=self.n_components, whiten=self.whiten,
                   svd_solver=self.svd_solver, random_state=self.random_state)

    def fit(self, X: Any, y: Any = None) -> BagPCA:
        super().fit(X, y)
        self.n_components_ = int(self.transformer_.n_components_)
        return self


class BagPooler(TransformerMixin, BaseEstimator):
    """Bags -> one vector per bag (n_bags x d, or 2d for "meanmax"), a vectorised segment
    reduction (``Bags.pool``). ``pool``: "mean", "max", "min" or "meanmax" (mean then max,
    concatenated). Stateless apart from the remembered feature width."""

    def __init__(self, pool: str = "mean") -> None:
        self.pool = pool

    def fit(self, X: Any, y: Any = None) -> BagPooler:
        if self.pool not in _POOLS:
            raise ValueError(f"pool must be one of {_POOLS}, got {self.pool!r}")
        self.n_features_in_ = _bags(X).n_features
        return self

    def transform(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "n_features_in_")
        bags = _bags(X)
        _check_width(self, bags)
        if self.pool == "meanmax":
            return np.hstack([bags.pool("mean"), bags.pool("max")])
        return bags.pool(self.pool)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``<pool>_<feature>`` names (``x0``, ``x1``, ... unless given)."""
        check_is_fitted(self, "n_features_in_")
        if input_features is None:
            input_features = [f"x{i}" for i in range(self.n_features_in_)]
        elif len(input_features) != self.n_features_in_:
            raise ValueError(f"{len(input_features)} feature names for "
                             f"{self.n_features_in_} features")
        pools = ("mean", "max") if self.pool == "meanmax" else (self.pool,)
        return np.asarray([f"{p}_{f}" for p in pools for f in input_features], dtype=object)

    def __sklearn_tags__(self):  # noqa: D105
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        return tags
