"""DBA: Dirichlet-Bernoulli Alignment (Yang, Zha & Hu, NIPS 2009), spec ``docs/dba.md``.

Per bag a Dirichlet class mixture ``theta ~ Dir(alpha)``; every instance picks a class
``z ~ Mult(theta)`` (the K labels plus a label-free background component 0) and is drawn from
that class's Gaussian; the bag's Bernoulli label indicators are aligned with the instance
classes, ``y_c = 1[some instance has z = c]`` (D1-D4). Training labels therefore restrict
each training instance to its bag's labels or the background. Mean-field variational EM
(D5-D10): per bag a variational Dirichlet ``gamma`` and per instance responsibilities
``phi``; M-step on the Gaussians (MAP, D8) and ``alpha`` (Minka fixed point, D9).
Bag scores are the noisy-OR of the responsibilities, ``-sum_m log(1 - phi_mc)`` (D12);
``instance_scores`` returns ``phi`` (D11).

Vectorisation: every bag's E-step runs in one array operation (``np.add.reduceat`` over the
bag offsets); Python loops run only over EM / E-step iterations (and over the components for
``covariance="full"``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import digamma, gammaln, logsumexp, polygamma
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from mimlkit.bags import Bags
from mimlkit.learners.base import (
    MIMLClassifierMixin,
    RefusedData,
    constant_label_codes,
    pin_constant_labels,
)
from mimlkit.learners.classic._instance_scaling import apply_scaling, fit_scaling

#: share of training bags with more labels than instances above which DBA refuses the data
MAX_UNDERINSTANCED_SHARE = 0.5

__all__ = ["DBA"]

_COVARIANCES = ("diag", "full", "spherical")
_SCORES = ("noisy_or", "proportion")
_LOG2PI = float(np.log(2.0 * np.pi))
_PCA_SAMPLE = 20_000
_ALPHA_RANGE = (1e-3, 1e3)
_LOG_TINY = float(np.log(np.finfo(np.float64).tiny))


def _inv_digamma(y: np.ndarray, n_newton: int = 5) -> np.ndarray:
    """``x`` with ``digamma(x) = y`` (Minka's initialisation + Newton steps)."""
    x = np.where(y >= -2.22, np.exp(y) + 0.5, -1.0 / (y - digamma(1.0)))
    for _ in range(n_newton):
        x = x - (digamma(x) - y) / polygamma(1, x)
    return x


def _expected_log_theta(gamma: np.ndarray) -> np.ndarray:
    """``E_q[log theta_ik] = psi(gamma_ik) - psi(sum_j gamma_ij)`` (Psi of D5)."""
    return digamma(gamma) - digamma(gamma.sum(axis=1, keepdims=True))


class DBA(MIMLClassifierMixin, BaseEstimator):
    """Dirichlet-Bernoulli Alignment with Gaussian instances (Yang, Zha & Hu, NIPS 2009).

    Parameters
    ----------
    background : bool or "auto", default "auto"
        Add a label-free component 0 for instances that belong to no label (not in the
        paper). ``False`` = the paper's one component per label (every training bag then
        needs a label); "auto": only when some training bag has no label.
    covariance : {"full", "diag", "spherical"}, default "full"
        Form of each component's covariance ``Sigma_k``.
    prior_strength : float or "auto", default "auto"
        ``nu`` of (D8): pseudo-instances pulling ``Sigma_k`` towards the pooled feature
        variances (keeps sparse classes well-posed). "auto": the feature count ``p`` for
        "full" (the smallest proper Wishart), 1 otherwise.
    alpha : float, default 1.0
        Initial (or, with ``fit_alpha=False``, fixed) Dirichlet parameter of every component.
    fit_alpha : bool, default True
        Update ``alpha`` in the M-step (D9).
    max_iter : int, default 50
        EM iterations.
    tol : float, default 1e-5
        EM stops when the bound changes by less than ``tol * |bound|``.
    e_step_iter : int, default 20
        Inner (D5)-(D6) iterations per E-step (five times this at prediction).
    bag_score : {"noisy_or", "proportion"}, default "noisy_or"
        Bag score: ``-sum_m log(1 - phi_mc)`` (D12) or ``E_q[theta_c]``.
    scale : {"auto", "robust", "standard", "minmax", None}, default "standard"
        Instance scaling fitted on the training instances.
    max_dim : int or None, default 64
        Project scaled instances with more features onto this many principal directions.
    t_criterion : bool or "auto", default "auto"
    threshold_mode : {"hamming", "f1", "rate", "fixed"}, default "hamming"
        Decision thresholds chosen on held-out training scores (``learners/_thresholds.py``)
        or the model's own (``"fixed"``: P(y=1) > 0.5).
    random_state : int, RandomState or None
        Seeds the jitter of the initial responsibilities.

    Attributes
    ----------
    means_ : ndarray (n_components, p); covariances_ : (n_components, p) diag,
        (n_components, p, p) full, (n_components,) spherical; alpha_ : (n_components,);
    elbo_ : ndarray, the bound (D10) after each EM iteration (non-decreasing);
    constant_labels_ : (n_labels,) int8, -1 / +1 for a label never / always present in
        training (scored absent / present), else 0.
    n_iter_ : int; converged_ : bool; background_ : bool;
    n_components_ : int (n_labels_ + background_); prior_strength_ : float.
    """

    #: the score ``-log(1 - P)`` at P(y = 1) = 0.5
    decision_threshold: float = float(np.log(2.0))

    def __init__(self, background: bool | str = "auto", covariance: str = "full",
                 prior_strength: float | str = "auto", alpha: float = 1.0,
                 fit_alpha: bool = True,
                 max_iter: int = 50, tol: float = 1e-5, e_step_iter: int = 20,
                 bag_score: str = "noisy_or", scale: str | None = "standard",
                 max_dim: int | None = 64, t_criterion: bool | str = "auto",
                 threshold_mode: str = "hamming", random_state: Any = None) -> None:
        self.background = background
        self.covariance = covariance
        self.prior_strength = prior_strength
        self.alpha = alpha
        self.fit_alpha = fit_alpha
        self.max_iter = max_iter
        self.tol = tol
        self.e_step_iter = e_step_iter
        self.bag_score = bag_score
        self.scale = scale
        self.max_dim = max_dim
        self.t_criterion = t_criterion
        self.threshold_mode = threshold_mode
        self.random_state = random_state

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        if self.covariance not in _COVARIANCES:
            raise ValueError(f"covariance must be one of {_COVARIANCES}, got {self.covariance!r}")
        if self.bag_score not in _SCORES:
            raise ValueError(f"bag_score must be one of {_SCORES}, got {self.bag_score!r}")
        for name in ("max_iter", "e_step_iter"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        md = self.max_dim
        if md is not None and (isinstance(md, bool) or not isinstance(md, (int, np.integer))
                               or md < 1):
            raise ValueError(f"max_dim must be a positive integer or None, got {md!r}")
        for name in ("prior_strength", "alpha"):
            v = getattr(self, name)
            if name == "prior_strength" and isinstance(v, str) and v == "auto":
                continue
            if not (isinstance(v, (int, float, np.number)) and np.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number, got {v!r}")
        if not (isinstance(self.tol, (int, float, np.number)) and self.tol >= 0):
            raise ValueError(f"tol must be >= 0, got {self.tol!r}")

    # ------------------------------------------------------------------ features
    def _fit_features(self, bags: Bags, rng: np.random.RandomState) -> np.ndarray:
        """Scale (and PCA-project, section 3 of the spec) the training instances."""
        self.scale_offset_, self.scale_factor_ = fit_scaling(bags.instances, self.scale)
        Xs = apply_scaling(bags.instances, self.scale_offset_, self.scale_factor_)
        self.pca_mean_ = None
        self.pca_components_ = None
        if self.max_dim is not None and Xs.shape[1] > int(self.max_dim):
            mean = Xs.mean(axis=0)
            rows = (rng.choice(Xs.shape[0], _PCA_SAMPLE, replace=False)
                    if Xs.shape[0] > _PCA_SAMPLE else slice(None))
            _, _, Vt = np.linalg.svd(Xs[rows] - mean, full_matrices=False)
            self.pca_mean_ = mean
            self.pca_components_ = Vt[: int(self.max_dim)]
            Xs = (Xs - mean) @ self.pca_components_.T
        return Xs

    def _features(self, bags: Bags) -> np.ndarray:
        Xs = apply_scaling(bags.instances, self.scale_offset_, self.scale_factor_)
        if self.pca_components_ is not None:
            Xs = (Xs - self.pca_mean_) @ self.pca_components_.T
        return Xs

    # ------------------------------------------------------------------ Gaussians
    def _log_density(self, X: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """``l_mk = log N(x_m | mu_k, Sigma_k)`` (n_instances, n_components) (D3); with a
        training ``mask``, ``-inf`` off the label-set support (full Σ: computed on it only)."""
        mu, cov = self.means_, self.covariances_
        p = X.shape[1]
        if self.covariance == "full":
            out = np.full((X.shape[0], mu.shape[0]), -np.inf)
            for k in range(mu.shape[0]):  # loop over components only
                rows = slice(None) if mask is None else np.flatnonzero(mask[:, k])
                L = np.linalg.cholesky(cov[k])
                Linv = np.linalg.inv(L)  # (scipy's triangular solve is slow on small p)
                sol = X[rows] @ Linv.T - Linv @ mu[k]
                logdet = 2.0 * np.log(np.diag(L)).sum()
                out[rows, k] = -0.5 * (p * _LOG2PI + logdet + np.einsum("ij,ij->i", sol, sol))
            return out
        var = cov[:, None] * np.ones(p) if self.covariance == "spherical" else cov
        prec = 1.0 / var
        maha = (X * X) @ prec.T - 2.0 * X @ (mu * prec).T + (mu * mu * prec).sum(axis=1)
        out = -0.5 * (p * _LOG2PI + np.log(var).sum(axis=1) + np.maximum(maha, 0.0))
        return out if mask is None else np.where(mask, out, -np.inf)

    def _m_step_gaussians(self, X: np.ndarray, phi: np.ndarray) -> None:
        """(D7)-(D8): weighted means and MAP covariances towards the pooled variances."""
        nu, V0 = self.prior_strength_, self.prior_var_
        Nk = phi.sum(axis=0)
        used = Nk > 1e-10
        sx = phi.T @ X
        mu = self.means_.copy()
        mu[used] = sx[used] / Nk[used, None]
        self.means_ = mu
        if self.covariance == "full":
            cov = np.empty((mu.shape[0], X.shape[1], X.shape[1]))
            for k in range(mu.shape[0]):  # only the instances that can carry component k
                rows = np.flatnonzero(phi[:, k] > 0)
                D = X[rows] - mu[k]
                S = (D * phi[rows, k:k + 1]).T @ D
                cov[k] = (S + nu * np.diag(V0)) / (Nk[k] + nu)
            self.covariances_ = cov
            return
        S = np.maximum(phi.T @ (X * X) - 2.0 * mu * sx + Nk[:, None] * mu * mu, 0.0)
        if self.covariance == "spherical":
            self.covariances_ = (S.sum(axis=1) + nu * V0.sum()) / (X.shape[1] * (Nk + nu))
        else:
            self.covariances_ = (S + nu * V0) / (Nk[:, None] + nu)

    def _log_prior_cov(self) -> float:
        """``sum_k log p(Sigma_k)`` of (D8), up to a constant."""
        nu, V0, cov = self.prior_strength_, self.prior_var_, self.covariances_
        if self.covariance == "full":
            total = 0.0
            for C in cov:
                c = np.linalg.cholesky(C)
                Linv = np.linalg.inv(c)
                logdet = 2.0 * np.log(np.diag(c)).sum()
                total += logdet + float((Linv * Linv * V0).sum())  # tr(Sigma^-1 V0)
            return -0.5 * nu * total
        if self.covariance == "spherical":
            p = V0.size
            return float(-0.5 * nu * (p * np.log(cov) + V0.sum() / cov).sum())
        return float(-0.5 * nu * (np.log(cov) + V0 / cov).sum())

    # ------------------------------------------------------------------ E-step
    def _e_step(self, A: np.ndarray, gamma: np.ndarray, bag_of: np.ndarray,
                offsets: np.ndarray, alpha: np.ndarray, n_iter: int,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(D5)-(D6) for all bags at once; ``A = l + log mask``. Returns (phi, log phi, gamma)."""
        for _ in range(n_iter):
            logits = A + _expected_log_theta(gamma)[bag_of]
            logphi = logits - _row_logsumexp(logits)
            phi = np.exp(logphi)
            new = alpha + np.add.reduceat(phi, offsets[:-1], axis=0)
            delta = np.abs(new - gamma).max()
            gamma = new
            if delta < 1e-3:
                break
        return phi, logphi, gamma

    def _elbo(self, A: np.ndarray, phi: np.ndarray, logphi: np.ndarray, gamma: np.ndarray,
              bag_of: np.ndarray, alpha: np.ndarray) -> float:
        """The bound (D10) plus the covariance prior of (D8)."""
        Psi = _expected_log_theta(gamma)
        n = gamma.shape[0]
        dirichlet = n * (gammaln(alpha.sum()) - gammaln(alpha).sum()) + ((alpha - 1) * Psi).sum()
        elogq_theta = (gammaln(gamma.sum(axis=1)) - gammaln(gamma).sum(axis=1)).sum() \
            + ((gamma - 1) * Psi).sum()
        on = phi > 0
        with np.errstate(invalid="ignore"):  # -inf - -inf off the support, discarded
            inst = np.where(on, phi * (Psi[bag_of] + A - logphi), 0.0).sum()
        return float(dirichlet - elogq_theta + inst + self._log_prior_cov())

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, Y: Any) -> DBA:
        """Variational EM (D5)-(D9) with the label-set constraint of section 1.3."""
        bags, Y = self._validate_fit(X, Y)
        self._check_params()
        # the alignment (D4) explains each label of a bag by one of its instances: a bag with
        # more labels than instances (one-instance multi-label data) cannot be represented
        short = float(((Y == 1).sum(axis=1) > np.diff(bags.offsets)).mean())
        if short > MAX_UNDERINSTANCED_SHARE:
            raise RefusedData(
                f"DBA explains every label of a bag by one of its instances, but {short:.0%} of "
                "the training bags have more labels than instances (e.g. one-instance "
                "multi-label data); use pooled-linear, mimlfast or bmiml")
        self.constant_labels_ = constant_label_codes(Y)
        rng = check_random_state(self.random_state)
        if self.background not in (True, False, "auto"):
            raise ValueError(f"background must be True, False or 'auto', got {self.background!r}")
        empty = not Y.any(axis=1).all()
        bg = empty if self.background == "auto" else bool(self.background)
        self.background_ = bg
        if not bg and empty:
            raise ValueError("background=False needs at least one label per training bag "
                             "(an unlabelled bag has no component to explain it)")
        Xs = self._fit_features(bags, rng)
        offsets = bags.offsets
        sizes = np.diff(offsets)
        bag_of = np.repeat(np.arange(bags.n_bags), sizes)
        K1 = Y.shape[1] + int(bg)
        self.n_components_ = K1
        allowed = np.ones((bags.n_bags, K1), dtype=bool)
        allowed[:, int(bg):] = Y == 1
        mask = allowed[bag_of]

        var = Xs.var(axis=0)
        self.prior_var_ = np.where(var > 1e-12, var, 1.0)
        ps = self.prior_strength
        self.prior_strength_ = (float(Xs.shape[1]) if self.covariance == "full" else 1.0) \
            if ps == "auto" else float(ps)
        alpha = np.full(K1, float(self.alpha))
        # initial responsibilities: uniform over the bag's allowed set, jittered (section 2.3)
        phi = mask * rng.uniform(0.9, 1.1, size=mask.shape)
        phi /= phi.sum(axis=1, keepdims=True)
        self.means_ = np.zeros((K1, Xs.shape[1]))
        self._m_step_gaussians(Xs, phi)
        gamma = alpha + np.add.reduceat(phi, offsets[:-1], axis=0)

        elbo: list[float] = []
        A = self._log_density(Xs, mask)
        self.converged_ = False
        for _ in range(int(self.max_iter)):
            phi, logphi, gamma = self._e_step(A, gamma, bag_of, offsets, alpha,
                                              int(self.e_step_iter))
            self._m_step_gaussians(Xs, phi)
            if self.fit_alpha:  # (D9), one Minka fixed-point step
                mean_psi = _expected_log_theta(gamma).mean(axis=0)
                alpha = np.clip(_inv_digamma(digamma(alpha.sum()) + mean_psi), *_ALPHA_RANGE)
            A = self._log_density(Xs, mask)
            elbo.append(self._elbo(A, phi, logphi, gamma, bag_of, alpha))
            if len(elbo) > 1 and abs(elbo[-1] - elbo[-2]) <= self.tol * abs(elbo[-2]):
                self.converged_ = True
                break
        self.alpha_ = alpha
        self.elbo_ = np.asarray(elbo)
        self.n_iter_ = len(elbo)
        return self

    # ------------------------------------------------------------------ inference
    def _infer(self, X: Any) -> tuple[Bags, np.ndarray, np.ndarray, np.ndarray]:
        """E-step on new bags over all components: (bags, phi, log phi, gamma)."""
        check_is_fitted(self, "means_")
        bags = self._validate_bags(X, reset=False)
        A = self._log_density(self._features(bags))
        offsets = bags.offsets
        sizes = np.diff(offsets)
        bag_of = np.repeat(np.arange(bags.n_bags), sizes)
        K1 = self.n_components_
        gamma = self.alpha_ + (sizes / K1)[:, None]
        phi, logphi, gamma = self._e_step(A, gamma, bag_of, offsets, self.alpha_,
                                          5 * int(self.e_step_iter))
        return bags, phi, logphi, gamma

    def _label_slice(self) -> slice:
        return slice(1 if self.background_ else 0, None)

    def decision_function(self, X: Any) -> np.ndarray:
        """Bag scores (n_bags, n_labels): ``-sum_m log(1 - phi_mc)`` (D12) or ``E[theta]``."""
        bags, phi, logphi, gamma = self._infer(X)
        lab = self._label_slice()
        if self.bag_score == "proportion":
            S = (gamma / gamma.sum(axis=1, keepdims=True))[:, lab]
            hi = 1.0
        else:
            S = np.add.reduceat(-_log1m_phi(logphi), bags.offsets[:-1], axis=0)[:, lab]
            hi = 50.0  # P = 1 - exp(-50)
        return pin_constant_labels(S, getattr(self, "constant_labels_", None), 0.0, hi)

    def predict_proba(self, X: Any) -> np.ndarray:
        """``P(y_c = 1) = 1 - prod_m (1 - phi_mc)`` (D12); ``E[theta_c]`` for "proportion"."""
        S = self.decision_function(X)
        return S if self.bag_score == "proportion" else -np.expm1(-S)

    def instance_scores(self, X: Any) -> list[np.ndarray]:
        """Per-bag (n_i, n_labels) responsibilities ``phi_mc`` (D11, instance disambiguation)."""
        bags, phi, _, _ = self._infer(X)
        return np.split(phi[:, self._label_slice()], bags.offsets[1:-1])


def _row_logsumexp(a: np.ndarray) -> np.ndarray:
    """Row-wise log-sum-exp (n, 1); rows need one finite entry (scipy's is slower here)."""
    m = a.max(axis=1, keepdims=True)
    return m + np.log(np.exp(a - m).sum(axis=1, keepdims=True))


def _log1m_phi(logphi: np.ndarray) -> np.ndarray:
    """``log(1 - phi)`` row-wise, exact also where ``phi -> 1``: for each row's largest
    component it is the log-sum-exp of the other components' log-responsibilities; every
    other component has ``phi <= 1/2``, where ``log1p(-phi)`` is exact."""
    out = np.log1p(-np.exp(np.minimum(logphi, np.log(0.5))))
    top = logphi.argmax(axis=1)
    rows = np.arange(logphi.shape[0])
    others = logphi.copy()
    others[rows, top] = -np.inf
    out[rows, top] = logsumexp(others, axis=1) if others.shape[1] > 1 else -np.inf
    return np.maximum(out, _LOG_TINY)  # finite even with a single component
