"""MIMLBoost (Zhou & Zhang, NIPS 2006; Zhou et al., AIJ 2012, §4.1).

Spec ``classic_miml.md`` §5. Two steps:

1. **Degeneration MIML -> MI** (AIJ 2012, Eq. 5): bag ``X_i`` and label ``y_j`` become the
   multi-instance bag ``{[x, code_j] : x in X_i}`` labelled +1 iff ``y_j in Y_i``, with the
   label code ``code_j = ER (j - 1) / (q - 1)``, ``ER = 1`` if ``d + 1 <= 50`` else
   ``log(d + 1) / log(50)``. This gives N q bags.
2. **MIBoosting** (Xu & Frank 2004) on those bags. Bag weights start at ``1 / (N q)``; each
   round
   * spreads each bag's weight evenly over its instances, resamples the instances by weight
     (with replacement) and trains a Gaussian-kernel SVM ``h_t`` on them (the resample is
     passed to ``SVC`` as unique instances + ``sample_weight`` = counts, which is the same
     objective and much cheaper);
   * ``e_ij`` = fraction of the instances of bag (i, j) that ``h_t`` misclassifies;
   * stops if every ``e_ij <= 0.5`` (the weak learner is already perfect at bag level: it
     is kept with the largest earlier weight, or 1 in round 1);
   * ``c_t = argmin_c sum W_ij exp((2 e_ij - 1) c)`` (1-D convex; stops if ``c_t <= 0``);
   * ``W_ij <- W_ij exp((2 e_ij - 1) c_t)``, renormalised.

Prediction (spec: [unverified]): ``F_j(X) = sum_t c_t mean_{x in X} h_t([x, code_j])``;
label j is predicted when ``F_j(X) > 0`` (T-criterion).

It is slow by nature (SVMs on N q n instances every round); ``sample_size`` caps the number of
resampled instances per round; one kernel block per weak learner serves all q label codes
(the RBF kernel factorises over the code), and ``n_jobs`` threads share the blocks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator
from sklearn.svm import SVC
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from mimlkit.bags import Bags
from mimlkit.learners.base import MIMLClassifierMixin, refuse_instance_label_pairs
from mimlkit.learners.classic._instance_scaling import (
    apply_scaling,
    fit_scaling,
    resolve_rbf_gamma,
)

__all__ = ["MIMLBoost", "label_codes"]


def label_codes(n_features: int, n_labels: int) -> np.ndarray:
    """Label codes appended to the instances by the MIML -> MI degeneration (AIJ Eq. 5)."""
    er = 1.0 if n_features + 1 <= 50 else np.log(n_features + 1) / np.log(50)
    if n_labels == 1:
        return np.zeros(1)
    return er * np.arange(n_labels) / (n_labels - 1)


def _decision_matrix(svm: SVC, Xs: np.ndarray, codes: np.ndarray, n_jobs: Any = None,
                     block: int = 4096) -> np.ndarray:
    """(n_instances, q) RBF-SVM decision values of ``[x, code_j]`` for every instance and label.

    The RBF kernel factorises over the appended code: ``k([x, c], [s, c_s]) =
    exp(-g |x - s|^2) exp(-g (c - c_s)^2)``, so one instance-to-support-vector kernel block
    (one BLAS product) serves all q labels: ``D = K(X, S) @ (alpha * exp(-g (c_j - c_s)^2))
    + b``. Equals ``svm.decision_function`` on the q stacked inputs (up to rounding), q times
    cheaper, and memory is bounded by ``block`` rows (blocks run in ``n_jobs`` threads).
    """
    sv = np.asarray(svm.support_vectors_, dtype=np.float64)
    g = float(svm._gamma)
    S, cs = sv[:, :-1], sv[:, -1]
    coef = svm.dual_coef_[0][:, None] * np.exp(-g * (codes[None, :] - cs[:, None]) ** 2)
    b = float(svm.intercept_[0])
    s_sq = np.einsum("ij,ij->i", S, S)
    out = np.empty((Xs.shape[0], len(codes)))

    def one(i: int) -> None:
        Xb = np.asarray(Xs[i:i + block], dtype=np.float64)
        d2 = np.einsum("ij,ij->i", Xb, Xb)[:, None] + s_sq[None, :] - 2.0 * (Xb @ S.T)
        np.maximum(d2, 0.0, out=d2)
        out[i:i + block] = np.exp(-g * d2) @ coef + b

    starts = range(0, Xs.shape[0], block)
    if n_jobs in (None, 1) or len(starts) == 1:
        for i in starts:
            one(i)
    else:
        Parallel(n_jobs=n_jobs, prefer="threads")(delayed(one)(i) for i in starts)
    return out


def _vote_matrix(svm: SVC, Xs: np.ndarray, codes: np.ndarray, n_jobs: Any = None) -> np.ndarray:
    """(n_instances, q) weak-learner votes h([x, code_j]) in {-1, +1}."""
    return np.where(_decision_matrix(svm, Xs, codes, n_jobs) > 0, 1.0, -1.0)


def _best_c(W: np.ndarray, a: np.ndarray) -> float:
    """argmin_c sum W exp(a c), a = 2e - 1 (convex; root of the increasing derivative)."""
    W = W.ravel()
    a = a.ravel()

    def grad(c: float) -> float:
        z = a * c
        m = z.max()
        return float(np.sum(W * a * np.exp(z - m)))  # sign-preserving rescale

    if grad(0.0) >= 0:
        return 0.0
    hi = 1.0
    while grad(hi) < 0 and hi < 1e6:
        hi *= 2.0
    lo = 0.0
    for _ in range(100):  # bisection on the derivative
        mid = 0.5 * (lo + hi)
        if grad(mid) < 0:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-10 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


class MIMLBoost(MIMLClassifierMixin, BaseEstimator):
    """MIML -> MI degeneration + MIBoosting with Gaussian-kernel SVM weak learners.

    Parameters
    ----------
    n_rounds : int, default 25
        Maximum boosting rounds.
    gamma, C : float or "auto", default "auto"; float, default 1.0
        RBF SVM of every round (on the scaled instances + label code). The reference value
        γ = 1 (LAMDA ``sample.m``) assumes features in a unit range; on min-max scaled Scene
        instances γ = 10 was chosen on an inner hold-out of a training part (docs/classic_part2.md).
        "auto" re-expresses that choice relative to the data (``resolve_rbf_gamma``: 10 on
        Scene's 15 features, smaller with more features); the ``paper`` preset uses 10.
    code_scale : "auto", "paper" or float, default "auto"
        Spacing of the label codes appended by the degeneration. "paper" = AIJ Eq. 5 (codes
        spread over [0, ER]): with q labels adjacent codes are ER/(q-1) apart, which the RBF
        kernel cannot tell apart once q is more than a handful (yeast, 14 labels: AP below the
        label prior). A float κ in (0, 1) spaces the codes so that the kernel factor between
        adjacent labels is κ (``exp(-γ δ²) = κ``); "auto" = 0.5 (neighbouring labels share
        some evidence, labels three apart almost none; chosen on inner splits of the zoo
        training parts over "paper" and 0.01, ``benchmarks/results/select_mimlboost.md``).
        The ``paper`` preset uses "paper".
    scale : {"minmax", "standard", None}, default "minmax"
        Instance feature scaling fitted on the training instances. Min-max keeps the label
        code (range ER = 1) on the same scale as the features, as the degeneration assumes.
    sample_size : int, float or None, default 2000
        Instances drawn per round: None = as many as there are MI instances (faithful, but one
        round then fits an SVM on N q n̄ instances: > 12 min on Scene), an int = that many, a
        float in (0, 1] = that fraction.
    n_jobs : int or None
        Threads for the weak learners' decision values (blocks of instances).
    t_criterion : bool or "auto", default "auto"
        Give a bag with no label above its threshold its top label. "auto": only when no
        training bag has an empty label set and it adds no error on held-out training
        scores (``learners/_thresholds.py``).
    threshold_mode : {"hamming", "f1", "rate", "fixed"}, default "hamming"
        How the decision thresholds are chosen: per label on held-out training scores
        (``learners/_thresholds.py``), or the learner's own fixed threshold ("fixed", the
        paper's rule and the ``paper`` preset).
    random_state : int, RandomState or None
    verbose : bool, default False
        Show a tqdm progress bar over the rounds.

    Attributes
    ----------
    estimators_ : list of fitted ``SVC`` (one per round)
    estimator_weights_ : ndarray (n_rounds_,) the ``c_t``
    codes_ : ndarray (n_labels,) label codes
    bag_errors_ : ndarray (n_rounds_, ) weighted bag error of each round
    stop_reason_ : str
    """

    def __init__(self, n_rounds: int = 25, gamma: float | str = "auto", C: float = 1.0,
                 code_scale: float | str = "auto",
                 scale: str | None = "minmax", sample_size: int | float | None = 2000,
                 n_jobs: int | None = None, t_criterion: bool | str = "auto",
                 threshold_mode: str = "hamming", random_state: Any = None,
                 verbose: bool = False) -> None:
        self.n_rounds = n_rounds
        self.gamma = gamma
        self.C = C
        self.code_scale = code_scale
        self.scale = scale
        self.sample_size = sample_size
        self.n_jobs = n_jobs
        self.t_criterion = t_criterion
        self.threshold_mode = threshold_mode
        self.random_state = random_state
        self.verbose = verbose

    def _codes(self, d: int, q: int) -> np.ndarray:
        """Label codes: the paper's (``label_codes``), or spaced so that the RBF kernel factor
        between adjacent labels is κ: ``exp(-γ δ²) = κ`` (``"auto"``: κ = 0.01)."""
        cs = self.code_scale
        if cs == "paper":
            return label_codes(d, q)
        kappa = 0.5 if cs == "auto" else cs
        if isinstance(kappa, str) or not 0.0 < float(kappa) < 1.0:
            raise ValueError(f"code_scale must be 'auto', 'paper' or a kernel factor in (0, 1), "
                             f"got {cs!r}")
        delta = np.sqrt(-np.log(float(kappa)) / self.gamma_)
        return delta * np.arange(q, dtype=np.float64)

    def fit(self, X: Any, Y: Any) -> MIMLBoost:
        from tqdm.auto import tqdm

        bags, Y = self._validate_fit(X, Y)
        refuse_instance_label_pairs("MIMLBoost", bags.n_instances, Y.shape[1])
        if int(self.n_rounds) < 1:
            raise ValueError(f"n_rounds must be >= 1, got {self.n_rounds!r}")
        rng = check_random_state(self.random_state)
        self.scale_offset_, self.scale_factor_ = fit_scaling(bags.instances, self.scale)
        Xs = apply_scaling(bags.instances, self.scale_offset_, self.scale_factor_)
        n_inst, d = Xs.shape
        # "auto": 10 on Scene's min-max features (d x mean variance = 0.273 there)
        self.gamma_ = resolve_rbf_gamma(self.gamma, Xs, ref=2.73)
        N, q = Y.shape
        codes = self._codes(d, q)
        self.codes_ = codes
        sizes = bags.sizes
        starts = bags.offsets[:-1]
        T = np.where(Y == 1, 1.0, -1.0)  # MI bag labels (N, q)
        T_inst = np.repeat(T, sizes, axis=0)  # instance labels (n_inst, q)
        W = np.full((N, q), 1.0 / (N * q))
        M = n_inst * q
        if self.sample_size is None:
            m = M
        elif isinstance(self.sample_size, float) and 0 < self.sample_size <= 1:
            m = max(2, int(round(self.sample_size * M)))
        else:
            m = int(self.sample_size)
            if m < 2:
                raise ValueError(f"sample_size must be >= 2 or a fraction, got {m}")

        estimators: list[SVC] = []
        weights: list[float] = []
        errors: list[float] = []
        reason = "n_rounds"
        for _ in tqdm(range(int(self.n_rounds)), desc="MIMLBoost", disable=not self.verbose):
            # instance weights W_ij / n_i over the M = n_inst * q MI instances (row-major)
            p = np.repeat(W / sizes[:, None], sizes, axis=0).ravel()
            counts = np.bincount(rng.choice(M, size=m, replace=True, p=p / p.sum()),
                                 minlength=M)
            chosen = np.flatnonzero(counts)
            rows, labs = np.divmod(chosen, q)
            yk = T_inst.ravel()[chosen]
            if np.unique(yk).size < 2:
                reason = "one-class resample"
                break
            Z = np.hstack([Xs[rows], codes[labs][:, None]])
            svm = SVC(kernel="rbf", gamma=self.gamma_, C=self.C, cache_size=500.0)
            svm.fit(Z, yk, sample_weight=counts[chosen].astype(np.float64))
            H = _vote_matrix(svm, Xs, codes, self.n_jobs)  # (n_inst, q)
            e = np.add.reduceat((H != T_inst).astype(np.float64), starts, axis=0) / sizes[:, None]
            errors.append(float(np.sum(W * e)))
            if np.all(e <= 0.5):
                estimators.append(svm)
                weights.append(max(weights) if weights else 1.0)
                reason = "all bag errors <= 0.5"
                break
            a = 2.0 * e - 1.0
            c = _best_c(W, a)
            if c <= 0:
                reason = "c <= 0"
                if not estimators:  # keep one weak learner so the model can predict
                    estimators.append(svm)
                    weights.append(1.0)
                break
            estimators.append(svm)
            weights.append(c)
            W = W * np.exp(a * c - np.max(a * c))
            W /= W.sum()
        self.estimators_ = estimators
        self.estimator_weights_ = np.asarray(weights)
        self.bag_errors_ = np.asarray(errors)
        self.n_rounds_ = len(estimators)
        self.stop_reason_ = reason
        return self

    def _scores(self, bags: Bags) -> np.ndarray:
        Xs = apply_scaling(bags.instances, self.scale_offset_, self.scale_factor_)
        F = np.zeros((bags.n_bags, len(self.codes_)))
        starts = bags.offsets[:-1]
        sizes = bags.sizes[:, None]
        for svm, c in zip(self.estimators_, self.estimator_weights_):
            H = _vote_matrix(svm, Xs, self.codes_, self.n_jobs)
            F += c * np.add.reduceat(H, starts, axis=0) / sizes
        return F

    def decision_function(self, X: Any) -> np.ndarray:
        """``F_j(X) = sum_t c_t mean_{x in X} h_t([x, code_j])`` (n_bags, n_labels)."""
        check_is_fitted(self, "estimators_")
        return self._scores(self._validate_bags(X, reset=False))
