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

import threading
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from mimlkit.bags import Bags, as_bags, check_labels

#: LIBLINEAR (``LogisticRegression(solver="liblinear")``, ``LinearSVC``) seeds and draws from
#: C's process-global ``rand()``: fits running at once in threads interleave their draws and
#: the result depends on timing. Learners hold this lock around LIBLINEAR fits, which
#: serialises them within a process (processes have their own ``rand()``).
LIBLINEAR_LOCK = threading.Lock()

__all__ = ["MIMLClassifierMixin", "BaseEstimator", "t_criterion_predict", "RefusedData"]


class RefusedData(ValueError):
    """A learner declines a dataset it cannot handle within its design limits (e.g.
    MIMLBoost's bag-per-label expansion on 159 labels); the message says why in one line
    and what to use instead. Raised by ``fit`` before any heavy work."""


#: instances x labels above which the per-label instance learners (MIMLBoost, MIML-miSVM)
#: refuse: both train on every (instance, label) pair, so they grow with the product
MAX_INSTANCE_LABEL_PAIRS = 500_000


def refuse_instance_label_pairs(name: str, n_instances: int, n_labels: int) -> None:
    """Raise ``RefusedData`` when ``n_instances * n_labels`` exceeds the limit above."""
    pairs = int(n_instances) * int(n_labels)
    if pairs > MAX_INSTANCE_LABEL_PAIRS:
        raise RefusedData(
            f"{name} trains on every (instance, label) pair: {n_instances:,} instances x "
            f"{n_labels} labels = {pairs:,} > {MAX_INSTANCE_LABEL_PAIRS:,}; use mimlfast, "
            "bmiml or pooled-linear for this many labels")


#: training instances above which MIML-miSVM refuses: it fits kernel SVMs over every training
#: instance (per label, per re-labelling round), whose cost grows with their square
MAX_KERNEL_INSTANCES = 20_000


def refuse_kernel_instances(name: str, n_instances: int) -> None:
    """Raise ``RefusedData`` when a kernel-SVM-on-every-instance learner would get more
    than ``MAX_KERNEL_INSTANCES`` training instances."""
    if int(n_instances) > MAX_KERNEL_INSTANCES:
        raise RefusedData(
            f"{name} fits kernel SVMs over every training instance (cost ~ their square): "
            f"{int(n_instances):,} instances > {MAX_KERNEL_INSTANCES:,}; use mimlfast, "
            "abmil or bmiml for bags this large, or subsample the instances")


def constant_label_codes(Y: np.ndarray) -> np.ndarray:
    """Per label: -1 never present in training, +1 always present, 0 otherwise (int8)."""
    pos = (np.asarray(Y) == 1).sum(axis=0)
    return np.where(pos == 0, -1, np.where(pos == len(Y), 1, 0)).astype(np.int8)


def pin_constant_labels(S: np.ndarray, codes: np.ndarray | None, absent: float,
                        present: float) -> np.ndarray:
    """Scores with the columns of labels constant in training fixed to ``absent`` /
    ``present`` (their training terms carry no information); ``codes`` from
    ``constant_label_codes`` (None: unchanged, e.g. an older pickle)."""
    if codes is None or not codes.any():
        return S
    return np.where(codes < 0, absent, np.where(codes > 0, present, S)).astype(S.dtype)


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


_NO_Y = object()


def _is_bag_source(X: Any) -> bool:
    """A lazy bag source (a bag store or a subset of one: ``datasets/store_view.py``)."""
    return getattr(type(X), "lazy_bags", False) is True


def _with_calibration(fit):
    """Wrap a learner's ``fit`` so that its decision thresholds are chosen on training data
    (``MIMLClassifierMixin._fit_and_calibrate``); nested ``super().fit`` calls pass through."""
    import functools

    @functools.wraps(fit)
    def wrapped(self, X, Y=_NO_Y, *args, **kwargs):
        if Y is _NO_Y:  # only a bag store may omit Y (its own labels are used)
            if not _is_bag_source(X):
                raise TypeError(f"{type(self).__name__}.fit() missing 1 required positional "
                                "argument: 'Y'")
            Y = None
        if _is_bag_source(X):
            from mimlkit.learners._bag_source import store_labels

            self._check_store_input(X)
            Y = store_labels(X, Y)
        if getattr(self, "_in_fit", False):
            return fit(self, X, Y, *args, **kwargs)
        self._in_fit = True
        try:
            return self._fit_and_calibrate(fit, X, Y, args, kwargs)
        finally:
            self.__dict__.pop("_in_fit", None)

    wrapped._calibrated_fit = True  # type: ignore[attr-defined]
    return wrapped


def _with_crossfit(decision_function):
    """Wrap a learner's ``decision_function``: a model fitted with ``crossfit_final`` scores
    with the mean of its calibration clones (``MIMLClassifierMixin.crossfit_final``)."""
    import functools

    @functools.wraps(decision_function)
    def wrapped(self, X, *args, **kwargs):
        models = self.__dict__.get("calibration_models_")
        if not models:
            return decision_function(self, X, *args, **kwargs)
        S = [np.asarray(m.decision_function(X, *args, **kwargs), dtype=np.float64)
             for m in models]
        return np.mean(S, axis=0)

    wrapped._crossfit = True  # type: ignore[attr-defined]
    return wrapped


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

    #: whether ``fit`` / ``decision_function`` read a bag store (``StoredBags``) lazily;
    #: ``_validate_bags`` then passes the store through instead of a ``Bags``
    _store_input: bool = False

    # ---------------------------------------------------------------- validation helpers
    def _check_store_input(self, X: Any) -> None:
        """Refuse a bag store for a learner that cannot read one lazily."""
        if not self._store_input:
            name = type(self).__name__
            raise TypeError(
                f"{name} cannot read a bag store lazily ({X.path}): train it with "
                "fit_from_store when it has partial_fit, or load the store when it fits in "
                "memory: fit(store.to_bags(), store.labels)")

    def _validate_bags(self, X: Any, *, reset: bool) -> Bags:
        """Coerce to ``Bags``; on ``reset`` remember the feature width, else check it.
        A bag store (or subset) is returned as it is, for learners with ``_store_input``."""
        if _is_bag_source(X):
            self._check_store_input(X)
            bags = X
        else:
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

    # ---------------------------------------------------------------- thresholds
    #: whether ``fit`` ends with the data-chosen thresholds of ``learners/_thresholds.py``
    _uses_threshold_calibration: bool = True
    #: folds of the out-of-fold scores (1 = one 75/25 hold-out, for learners slow to fit)
    _calibration_folds: int = 3
    #: above this many training bags one 80/20 hold-out replaces the out-of-fold refits
    _OOF_MAX_BAGS: int = 1000
    #: above this many, the model fitted on 80 % is kept (no refit on all bags)
    _REFIT_MAX_BAGS: int = 20000
    #: below this many training bags the learner's own threshold is kept
    _MIN_CALIBRATION_BAGS: int = 20

    #: score with the mean of the out-of-fold calibration clones instead of the model
    #: refitted on all bags ("cross-fitted" final scores), where the out-of-fold branch runs
    #: (up to ``_OOF_MAX_BAGS`` training bags). The thresholds were chosen on those clones'
    #: held-out scores, so they are applied to scores of the same scale; a model refitted on
    #: all bags can score on another scale (more data, more optimizer steps). The refitted
    #: model is still fitted (its attributes, ``instance_scores``) but does not score. Off by
    #: default; a learner turns it on only after ``benchmarks/select_calibration_clones.py``
    #: chose it on inner splits.
    crossfit_final: bool = False

    #: cap each label's predicted-positive rate on the training bags at the rate the
    #: calibration clones predicted on their held-out bags: where the model refitted on all
    #: bags scores higher than the clones did (a score shift), its threshold is raised to the
    #: score above which that share of training bags lies (``_thresholds.rate_capped``).
    #: Thresholds only go up, so predictions only move toward the empty predictor. Off by
    #: default; a learner turns it on only after ``benchmarks/select_calibration_clones.py``
    #: chose it on inner splits.
    rate_cap_final: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fit = cls.__dict__.get("fit")
        if fit is not None and not getattr(fit, "_calibrated_fit", False):
            cls.fit = _with_calibration(fit)  # type: ignore[method-assign]
        df = cls.__dict__.get("decision_function")
        if df is not None and not getattr(df, "_crossfit", False):
            cls.decision_function = _with_crossfit(df)  # type: ignore[method-assign]

    def _fit_and_calibrate(self, fit: Any, X: Any, Y: Any, args: tuple, kwargs: dict) -> Any:
        """Run the learner's own ``fit``, then set ``threshold_`` / ``t_criterion_``.

        ``threshold_mode="fixed"`` (or a learner opting out): the learner's threshold, and
        ``t_criterion="auto"`` = on unless a training bag has an empty label set. Otherwise
        (``learners/_thresholds.py``) the thresholds come from scores of bags the scoring
        model did not see: up to ``_OOF_MAX_BAGS`` training bags, out-of-fold scores from
        ``_calibration_folds`` clones, then the final fit on all bags (about 3x one fit);
        up to ``_REFIT_MAX_BAGS``, one clone fitted on 80 % scores the other 20 %, then the
        final fit on all bags (about 1.8x); above (where a refit costs most and a small
        share of the data least), ``min(20 %, 5000)`` held-out bags score the model fitted
        on the rest, which is kept (1x).
        Extra fit inputs (e.g. BLS ``global_features``) and partly observed labels (-1)
        cannot be split or scored: the learner's own threshold is kept then.
        A bag store as ``X`` (learners with ``_store_input``) is split the same way into
        lazy subsets (``store.subset``): clones and scoring read only their own bags.
        """
        from sklearn.base import clone

        from mimlkit.learners._thresholds import THRESHOLD_MODES, fold_indices

        self.__dict__.pop("calibration_models_", None)
        mode = getattr(self, "threshold_mode", "fixed")
        if mode not in THRESHOLD_MODES:
            raise ValueError(f"threshold_mode must be one of {THRESHOLD_MODES}, got {mode!r}")
        tc = getattr(self, "t_criterion", True)
        if tc not in (True, False, "auto"):
            raise ValueError(f"t_criterion must be True, False or 'auto', got {tc!r}")
        extra = bool(args) or any(v is not None for v in kwargs.values())
        if (mode == "fixed" or extra or not self._uses_threshold_calibration
                or self._explicit_threshold()):
            out = fit(self, X, Y, *args, **kwargs)
            self._set_fixed_t_criterion(Y, tc)
            return out
        if _is_bag_source(X):  # held-out parts are lazy subsets of the store
            bags = _SourceParts(X)
        elif getattr(self, "input_kind", "bags") == "bags" or isinstance(X, Bags):
            bags = as_bags(X, dtype=getattr(self, "dtype", np.float32))
        else:  # images (ImageSet, list or N x H x W x C array): rows are taken by index
            bags = _IndexedInputs(X)
        Yc = check_labels(Y, bags.n_bags, allow_unobserved=True)
        if (Yc < 0).any():
            out = fit(self, X, Y)
            self._set_fixed_t_criterion(Yc, tc)
            return out
        n = bags.n_bags
        if n < self._MIN_CALIBRATION_BAGS:  # too few bags to hold any out
            out = fit(self, X, Y)
            self._set_fixed_t_criterion(Yc, tc)
            self.calibration_ = {"method": f"none: fewer than {self._MIN_CALIBRATION_BAGS} "
                                           "training bags (the learner's own threshold)"}
            return out
        if n > self._REFIT_MAX_BAGS:
            n_hold = min(int(0.2 * n), 5000)
            perm = np.random.default_rng(self._seed()).permutation(n)
            hold, keep = np.sort(perm[:n_hold]), np.sort(perm[n_hold:])
            out = fit(self, bags.take(keep), Yc[keep])
            S = np.asarray(self.decision_function(bags.take(hold)), dtype=np.float64)
            self._choose(S, Yc[hold], Yc, mode, tc)
            self.calibration_ = {"method": "holdout, no refit", "n_heldout": int(n_hold)}
            return out
        out = fit(self, X, Y)
        n_folds = self._calibration_folds if n <= self._OOF_MAX_BAGS else 1
        folds = fold_indices(n, n_folds, self._seed())
        rows, scores, models = [], [], []
        private = {k: v for k, v in (("checkpoint_dir", None), ("resume", False))
                   if k in self.get_params(deep=False)}  # clones never touch checkpoints
        for tr, te in folds:
            est = clone(self).set_params(threshold_mode="fixed", **private,
                                         **self._calibration_clone_params(n, len(tr)))
            est.fit(bags.take(tr), Yc[tr])
            rows.append(te)
            scores.append(np.asarray(est.decision_function(bags.take(te)), dtype=np.float64))
            models.append(est)
        self._choose(np.vstack(scores), Yc[np.concatenate(rows)], Yc, mode, tc)
        self.calibration_ = {"method": "out-of-fold" if len(folds) > 1 else "holdout 80/20",
                             "n_folds": len(folds)}
        if self.crossfit_final and len(folds) > 1:
            self.calibration_models_ = models
            self.calibration_["scores"] = "mean of the out-of-fold clones (crossfit_final)"
        elif self.rate_cap_final:
            self._cap_rates(np.vstack(scores), X)
        return out

    def _cap_rates(self, S_held: np.ndarray, X: Any) -> None:
        """``rate_cap_final``: raise thresholds where the final model predicts a label on
        more training bags than the clones predicted on held-out ones."""
        from mimlkit.learners._thresholds import rate_capped

        thr = np.asarray(self.threshold_, dtype=np.float64)
        F = np.asarray(self.decision_function(X), dtype=np.float64)
        new = rate_capped(S_held, thr, F)
        raised = int((new > thr).sum())
        self.threshold_ = new
        self.calibration_["rate_cap"] = f"{raised} label thresholds raised"

    def _calibration_clone_params(self, n_full: int, n_clone: int) -> dict[str, Any]:
        """Parameters that make a calibration clone fitted on ``n_clone`` bags behave like
        the final model fitted on ``n_full`` (data-size-dependent settings resolved at the
        full size), so that its held-out scores share the final model's scale. None by
        default."""
        return {}

    def _explicit_threshold(self) -> bool:
        """True when the learner's parameters fix its decision rule (e.g. BMIML with a
        given ``tau`` or the paper's softmax rule): no data-chosen thresholds then."""
        return False

    def _seed(self) -> int:
        seed = getattr(self, "random_state", None)
        return int(seed) if isinstance(seed, (int, np.integer)) else 0

    def _set_fixed_t_criterion(self, Y: Any, tc: Any) -> None:
        Yc = np.asarray(check_labels(Y, allow_unobserved=True))
        has_empty = bool((~(Yc == 1).any(axis=1) & (Yc >= 0).all(axis=1)).any())
        self.t_criterion_ = (not has_empty) if tc == "auto" else bool(tc)

    def _choose(self, S: np.ndarray, Yh: np.ndarray, Y: np.ndarray, mode: str, tc: Any) -> None:
        """Thresholds and T-criterion from held-out scores ``S`` of labels ``Yh``."""
        from mimlkit.learners._thresholds import choose_thresholds, t_criterion_helps

        native = getattr(self, "threshold_", self.decision_threshold)
        thr = choose_thresholds(S, Yh, mode, native)
        self.threshold_ = thr
        has_empty = bool((~(Y == 1).any(axis=1)).any())
        if tc == "auto":
            self.t_criterion_ = (not has_empty) and t_criterion_helps(S, Yh, thr)
        else:
            self.t_criterion_ = bool(tc)

    # ---------------------------------------------------------------- prediction
    def _threshold(self) -> float | np.ndarray:
        return getattr(self, "threshold_", self.decision_threshold)

    def _use_t_criterion(self) -> bool:
        tc = getattr(self, "t_criterion_", None)
        if tc is None:
            tc = getattr(self, "t_criterion", True)
        return bool(tc) if tc != "auto" else True

    def predict(self, X: Any) -> np.ndarray:
        """{0,1} label matrix (n_bags x n_labels, int8)."""
        scores = self.decision_function(X)  # type: ignore[attr-defined]
        return t_criterion_predict(scores, self._threshold(), self._use_t_criterion())

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


class _SourceParts:
    """A bag store seen through the two methods calibration needs (``take`` is lazy)."""

    def __init__(self, X: Any) -> None:
        self.X = X
        self.n_bags = X.n_bags

    def take(self, idx: Any) -> Any:
        return self.X.subset(idx)


class _IndexedInputs:
    """Non-bag inputs (images) seen through the two methods calibration needs."""

    def __init__(self, X: Any) -> None:
        self.X = X
        self.n_bags = len(X)

    def take(self, idx: Any) -> Any:
        idx = np.asarray(idx, dtype=np.int64)
        X = self.X
        if isinstance(X, np.ndarray) or hasattr(X, "raw"):  # arrays and ImageSet index by array
            return X[idx]
        return [X[int(i)] for i in idx]

