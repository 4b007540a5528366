"""CNN transfer + per-label (L1-)logistic regression (seed 001, "VGG+L1LR" / "VGG+LR").

``TransferLR`` is the head: one binary logistic regression per label on (pooled) features,
Eq. (1) of the seed::

    min_w (1/m) sum_i log(1 + exp(-y_ij (x_i' w_j + b))) + lambda ||w_j||_1

solved with LIBLINEAR (scikit-learn's ``liblinear`` solver) in its own scaling,
``||w||_1 + C sum_i log(1 + exp(...))``, with **C = 1** (LIBLINEAR's default, the seed's
"default of 1"; ``specs/transfer_l1lr.md`` §2.2). ``lam`` gives Eq. (1) literally:
``C = 1 / (lam * m)``. ``penalty="l2"`` is the seed's "VGG+LR" (LIBLINEAR has no
unregularised LR). The intercept is LIBLINEAR's penalised synthetic feature (minor deviation
from Eq. (1), documented). No feature scaling by default (as in the seed); ``standardize=True``
scales the pooled features to zero mean / unit variance.

``TransferImageLR`` chains the image pipeline (``mimlkit.features``: backbone, multi-level
pooling, optional tiling, disk cache) with ``TransferLR``; it is registered as ``vgg-l1lr`` and
``vgg-lr`` (input = images). ``TransferLR`` itself is ``transfer-lr`` (input = bags).

A label with a single class among the (observed) training rows gets a constant score
(-1e9 when no positive, +1e9 when all positive), a warning, and its index in
``constant_labels_``.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Any

import numpy as np
import sklearn
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from mimlkit.bags import Bags, check_labels
from mimlkit.learners.base import LIBLINEAR_LOCK, MIMLClassifierMixin

__all__ = ["TransferLR", "TransferImageLR", "make_liblinear"]

_CONSTANT_SCORE = 1e9
_POOLS = ("mean", "max")


def _sklearn_at_least(major: int, minor: int) -> bool:
    parts = sklearn.__version__.split(".")
    try:
        return (int(parts[0]), int(parts[1])) >= (major, minor)
    except (ValueError, IndexError):  # pragma: no cover - odd dev versions
        return True


def make_liblinear(penalty: str, C: float, **kw: Any):
    """Binary ``LogisticRegression(solver="liblinear")`` with an L1 or L2 penalty, spelled for
    the installed scikit-learn: 1.8+ uses ``l1_ratio`` (``penalty`` is deprecated there),
    older versions ``penalty=`` (where ``l1_ratio`` alone would silently fit L2)."""
    from sklearn.linear_model import LogisticRegression

    if penalty not in ("l1", "l2"):
        raise ValueError(f"penalty must be 'l1' or 'l2', got {penalty!r}")
    if _sklearn_at_least(1, 8):
        return LogisticRegression(solver="liblinear", l1_ratio=1.0 if penalty == "l1" else 0.0,
                                  C=C, **kw)
    return LogisticRegression(solver="liblinear", penalty=penalty, C=C, **kw)  # pragma: no cover


def _fit_label(F: np.ndarray, y: np.ndarray, j: int, penalty: str, C: float | None,
               lam: float | None, dual: bool | str, fit_intercept: bool,
               intercept_scaling: float, tol: float, max_iter: int, class_weight: Any,
               random_state: Any) -> tuple[np.ndarray, float, float | None]:
    """(coef, intercept, constant score or None) of label ``j`` (rows with y >= 0)."""
    mask = y >= 0
    yk = y[mask].astype(np.int64)
    n_pos = int(yk.sum())
    if n_pos == 0 or n_pos == len(yk):
        const = _CONSTANT_SCORE if n_pos and n_pos == len(yk) else -_CONSTANT_SCORE
        return np.zeros(F.shape[1]), 0.0, const
    Fk = F[mask] if not mask.all() else F
    c = float(C) if lam is None else 1.0 / (float(lam) * len(yk))
    if dual == "auto":  # primal trust-region Newton: robust on unscaled CNN features
        dual = False      # (dual CD needed ~900 iterations on random-VGG16 fc7/pool maps)
    clf = make_liblinear(penalty, c, dual=bool(dual), fit_intercept=fit_intercept,
                         intercept_scaling=intercept_scaling, tol=tol, max_iter=max_iter,
                         class_weight=class_weight, random_state=random_state)
    with LIBLINEAR_LOCK, warnings.catch_warnings():  # LIBLINEAR's rand() is process-global
        warnings.filterwarnings("ignore", message=".*failed to converge.*")
        warnings.filterwarnings("ignore", message=".*Liblinear failed.*")
        clf.fit(X=Fk, y=yk)
    b = float(clf.intercept_[0]) if fit_intercept else 0.0
    return clf.coef_[0].astype(np.float64), b, None


class TransferLR(MIMLClassifierMixin, BaseEstimator):
    """One binary (L1-)logistic regression per label on pooled bag features (seed Eq. (1)).

    Parameters
    ----------
    penalty : "l1" (VGG+L1LR, default) | "l2" (VGG+LR).
    C : LIBLINEAR's C (default 1, the seed's setting); ignored when ``lam`` is given.
    lam : Eq. (1)'s lambda taken literally (mean loss): ``C = 1 / (lam * m)``.
    pool : "mean" | "max" -- how a bag's instances become one vector (identity for
        one-instance bags, i.e. whole-image features).
    standardize : scale pooled features (training statistics); the seed does not.
    fit_intercept, intercept_scaling : LIBLINEAR's synthetic bias feature (penalised).
    dual : "auto" (= primal; converges in ~10 Newton steps on unscaled CNN features where the
        dual coordinate descent needed ~900 passes) | bool (True only with L2).
    tol, max_iter, class_weight : LIBLINEAR settings.
    t_criterion : ``predict`` gives every bag its top label even if no logit is > 0
        (off by default: the seed's reading is logit > 0).
    n_jobs : labels fitted in parallel (joblib).
    random_state : LIBLINEAR's shuffling seed.

    Fitted: ``coef_`` (n_labels x d, in the scaled space), ``intercept_``, ``mean_``,
    ``scale_``, ``constant_labels_`` (int array), ``constant_scores_``, ``n_nonzero_``
    (non-zero weights per label), ``n_features_in_``, ``n_labels_``.
    """

    supports_unobserved = True
    decision_threshold = 0.0
    input_kind = "bags"
    #: calibration clones keep the final model's penalty per training row (``C`` scaled by
    #: n_full / n_clone; LIBLINEAR's C multiplies the *summed* loss); see
    #: ``benchmarks/select_calibration_clones.py``
    match_calibration_clones = False

    def _calibration_clone_params(self, n_full: int, n_clone: int) -> dict[str, Any]:
        """With ``match_calibration_clones`` and a fixed ``C``: the clone's C makes its
        per-row penalty 1 / (C m) equal to the final model's (``lam`` is already per row)."""
        if not self.match_calibration_clones or self.lam is not None:
            return {}
        return {"C": float(self.C) * n_full / max(1, n_clone)}

    def __init__(self, *, penalty: str = "l1", C: float = 1.0, lam: float | None = None,
                 pool: str = "mean", standardize: bool = False, fit_intercept: bool = True,
                 intercept_scaling: float = 1.0, dual: bool | str = "auto", tol: float = 1e-4,
                 max_iter: int = 1000, class_weight: Any = None, t_criterion: bool | str = False,
                 threshold_mode: str = "hamming", n_jobs: int | None = None,
                 random_state: int | None = 0) -> None:
        self.penalty = penalty
        self.C = C
        self.lam = lam
        self.pool = pool
        self.standardize = standardize
        self.fit_intercept = fit_intercept
        self.intercept_scaling = intercept_scaling
        self.dual = dual
        self.tol = tol
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.t_criterion = t_criterion
        self.threshold_mode = threshold_mode
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _check_params(self) -> None:
        if self.penalty not in ("l1", "l2"):
            raise ValueError(f"penalty must be 'l1' or 'l2', got {self.penalty!r}")
        if self.pool not in _POOLS:
            raise ValueError(f"pool must be one of {_POOLS}, got {self.pool!r}")
        if self.lam is None and not (isinstance(self.C, (int, float, np.number)) and self.C > 0):
            raise ValueError(f"C must be a positive number, got {self.C!r}")
        if self.lam is not None and not self.lam > 0:
            raise ValueError(f"lam must be positive, got {self.lam!r}")
        if self.penalty == "l1" and self.dual is True:
            raise ValueError("the L1 penalty has no dual solver in LIBLINEAR (use dual='auto')")

    def _pooled(self, bags: Bags) -> np.ndarray:
        if np.all(bags.sizes == 1):
            return bags.instances.astype(np.float64, copy=False)
        return bags.pool(self.pool).astype(np.float64, copy=False)

    def fit(self, X: Any, Y: Any) -> TransferLR:
        """Fit one logistic regression per label (rows where the label is observed)."""
        self._check_params()
        bags, Y = self._validate_fit(X, Y)
        F = self._pooled(bags)
        if self.standardize:
            mean = F.mean(axis=0)
            scale = F.std(axis=0)
            scale[scale < 1e-12] = 1.0
            F = (F - mean) / scale
        else:
            mean, scale = np.zeros(F.shape[1]), np.ones(F.shape[1])
        F = np.ascontiguousarray(F)
        out = Parallel(n_jobs=self.n_jobs)(
            delayed(_fit_label)(F, Y[:, j], j, self.penalty, self.C, self.lam, self.dual,
                                self.fit_intercept, float(self.intercept_scaling),
                                float(self.tol), int(self.max_iter), self.class_weight,
                                self.random_state)
            for j in range(Y.shape[1]))
        self.mean_, self.scale_ = mean, scale
        self.coef_ = np.vstack([o[0] for o in out])
        self.intercept_ = np.array([o[1] for o in out], dtype=np.float64)
        const = [(j, o[2]) for j, o in enumerate(out) if o[2] is not None]
        self.constant_labels_ = np.array([j for j, _ in const], dtype=np.int64)
        self.constant_scores_ = np.array([s for _, s in const], dtype=np.float64)
        if const:
            warnings.warn(f"{len(const)} label(s) have a single class in the training data "
                          f"(columns {self.constant_labels_.tolist()}); they get a constant "
                          f"score", UserWarning, stacklevel=2)
        self.n_nonzero_ = (self.coef_ != 0).sum(axis=1)
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Per-label logits (n_bags x n_labels); > 0 means present."""
        check_is_fitted(self, "coef_")
        bags = self._validate_bags(X, reset=False)
        F = (self._pooled(bags) - self.mean_) / self.scale_
        S = F @ self.coef_.T + self.intercept_
        if len(self.constant_labels_):
            S[:, self.constant_labels_] = self.constant_scores_
        return S

    def predict_proba(self, X: Any) -> np.ndarray:
        """Per-label probabilities (sigmoid of the logits)."""
        return 0.5 * (1.0 + np.tanh(0.5 * self.decision_function(X)))


# ----------------------------------------------------------------------------- image preset
@lru_cache(maxsize=2)
def _cached_extractor(backbone: str, weights: str | None, seed: int, image_size: int | None,
                      resize: str):
    """Extractors are rebuilt from parameters (never stored on the estimator, so it stays
    picklable/skops-safe); the two most recent ones are kept in memory."""
    from mimlkit._extras import require

    make_extractor = require("deep", "mimlkit.features.multilevel",
                             "TransferImageLR (CNN features)").make_extractor

    return make_extractor(backbone, weights, seed=seed, image_size=image_size, resize=resize)


class TransferImageLR(MIMLClassifierMixin, BaseEstimator):
    """Images -> CNN multi-level features (cached) -> :class:`TransferLR` (seed 001).

    Parameters
    ----------
    backbone : extractor name (``vgg16-multilevel``: the seed's 9984-d features).
    weights : None (random init, ``seed``) | state-dict file | torchvision weights name.
    tile, stride : cut each image into ``tile`` x ``tile`` tiles (instances) instead of
        using the whole image; features are then pooled per bag with ``pool``.
    image_size : network input side (default: the weights' 224; tiles are resized to it).
    resize : "full" (whole image, no crop) | "shorter+crop".
    penalty, C, lam, pool, standardize, t_criterion, n_jobs, random_state, threshold_mode :
        see TransferLR (the head's thresholds are chosen on out-of-fold scores of the
        extracted features and used by ``predict``).
    cache_dir : feature cache folder (strongly recommended: fits and predictions across
        splits then extract each image once).
    batch_size, num_workers, device, progress : extraction settings.

    ``X`` is an ``ImageSet`` / list of paths or H x W x 3 arrays, or precomputed ``Bags``.
    """

    supports_unobserved = True
    decision_threshold = 0.0
    input_kind = "images"  # what mimlkit.evaluation.evaluate feeds an estimator object
    #: the per-label head calibrates its thresholds on the extracted features (cheap: the
    #: CNN features are computed once); ``predict`` uses the head's thresholds
    _uses_threshold_calibration = False

    def __init__(self, *, backbone: str = "vgg16-multilevel", weights: str | None = None,
                 tile: int | None = None, stride: int | None = None,
                 image_size: int | None = None, resize: str = "full", penalty: str = "l1",
                 C: float = 1.0, lam: float | None = None, pool: str = "mean",
                 standardize: bool = False, t_criterion: bool = False,
                 cache_dir: str | None = None, batch_size: int = 16,
                 num_workers: int | None = None, device: str = "auto", seed: int = 0,
                 progress: bool = False, n_jobs: int | None = None,
                 random_state: int | None = 0, threshold_mode: str = "hamming") -> None:
        self.threshold_mode = threshold_mode
        self.backbone = backbone
        self.weights = weights
        self.tile = tile
        self.stride = stride
        self.image_size = image_size
        self.resize = resize
        self.penalty = penalty
        self.C = C
        self.lam = lam
        self.pool = pool
        self.standardize = standardize
        self.t_criterion = t_criterion
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.device = device
        self.seed = seed
        self.progress = progress
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _extractor(self):
        w = None if self.weights is None else str(self.weights)
        return _cached_extractor(str(self.backbone), w, int(self.seed),
                                 None if self.image_size is None else int(self.image_size),
                                 str(self.resize))

    def _tiler(self):
        if self.tile is None:
            return None
        from mimlkit.datasets.tiling import TileBagger

        return TileBagger(int(self.tile), stride=None if self.stride is None else int(self.stride))

    def transform(self, X: Any) -> Bags:
        """Feature bags of the images ``X`` (precomputed ``Bags`` pass through)."""
        if isinstance(X, Bags):
            return X
        from mimlkit._extras import require
        from mimlkit.datasets.base import ImageSet

        extract_features = require("deep", "mimlkit.features.extract",
                                   "TransferImageLR (CNN features)").extract_features

        if isinstance(X, np.ndarray) and X.ndim == 4:
            X = list(X)
        images = X if isinstance(X, ImageSet) else ImageSet(list(X))
        return extract_features(images, self._extractor(), tiler=self._tiler(),
                                batch_size=int(self.batch_size), num_workers=self.num_workers,
                                cache_dir=self.cache_dir, device=self.device,
                                progress=bool(self.progress))

    def _head(self) -> TransferLR:
        return TransferLR(penalty=self.penalty, C=self.C, lam=self.lam, pool=self.pool,
                          standardize=self.standardize, t_criterion=self.t_criterion,
                          n_jobs=self.n_jobs, random_state=self.random_state,
                          threshold_mode=self.threshold_mode)

    def _threshold(self) -> float | np.ndarray:
        head = getattr(self, "head_", None)
        return head._threshold() if head is not None else self.decision_threshold

    def _use_t_criterion(self) -> bool:
        head = getattr(self, "head_", None)
        return head._use_t_criterion() if head is not None else bool(self.t_criterion)

    def fit(self, X: Any, Y: Any) -> TransferImageLR:
        """Extract (or load cached) features of ``X`` and fit the per-label head."""
        n = len(X)
        Y = check_labels(Y, n, allow_unobserved=True)
        bags = self.transform(X)
        self.head_ = self._head().fit(bags, Y)
        self.n_labels_ = self.head_.n_labels_
        self.n_features_out_ = self.head_.n_features_in_
        if not isinstance(X, Bags):
            self.extractor_config_ = self._extractor().config()
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Per-label logits (n_images x n_labels)."""
        check_is_fitted(self, "head_")
        return self.head_.decision_function(self.transform(X))

    def predict_proba(self, X: Any) -> np.ndarray:
        return 0.5 * (1.0 + np.tanh(0.5 * self.decision_function(X)))
