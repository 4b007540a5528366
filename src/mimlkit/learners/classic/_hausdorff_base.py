"""Shared machinery of the Hausdorff-based classic learners (MIMLSVM, MIMLkNN, MIMLNN,
MIMLRBF): optional instance scaling, bag distances, medoid embeddings, ±1 targets and
least-squares output layers (specs/classic_miml.md §0)."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg

from mimlkit.bags import Bags
from mimlkit.distances import hausdorff, kmedoids_bags, normalize_variant
from mimlkit.learners.base import MIMLClassifierMixin
from mimlkit.learners.classic._instance_scaling import apply_scaling, fit_scaling

__all__ = ["HausdorffLearnerMixin", "least_squares", "ridge_loo", "pm1"]


def pm1(Y: np.ndarray) -> np.ndarray:
    """{0,1} -> {-1,+1} float64 targets."""
    return 2.0 * np.asarray(Y, dtype=np.float64) - 1.0


def least_squares(Phi: np.ndarray, T: np.ndarray, reg_lambda: float,
                  rcond: float = 1e-9) -> np.ndarray:
    """``argmin_W ||Phi W - T||^2 + lambda ||W||^2``.

    ``lambda > 0``: normal equations ``(Phi^T Phi + lambda I) W = Phi^T T`` by Cholesky
    (``scipy.linalg.solve(assume_a='pos')``); ``lambda = 0``: SVD pseudo-inverse with singular
    values below ``rcond * s_max`` dropped (minimum-norm solution).
    """
    Phi = np.asarray(Phi, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    if reg_lambda < 0:
        raise ValueError(f"reg_lambda must be >= 0, got {reg_lambda}")
    if reg_lambda > 0:
        A = Phi.T @ Phi
        A[np.diag_indices_from(A)] += reg_lambda
        try:
            return scipy.linalg.solve(A, Phi.T @ T, assume_a="pos")
        except (np.linalg.LinAlgError, scipy.linalg.LinAlgError):
            pass  # numerically not positive definite: fall through to the SVD
    W, *_ = scipy.linalg.lstsq(Phi, T, cond=rcond)
    return W


def ridge_loo(Phi: np.ndarray, T: np.ndarray, lambdas: np.ndarray | None = None
              ) -> tuple[np.ndarray, float]:
    """Ridge regression with lambda chosen by exact leave-one-out error (closed form).

    With ``Phi = U S V^T`` the hat matrix is ``U diag(s^2 / (s^2 + lambda)) U^T`` and the
    LOO residuals are ``(t_i - yhat_i) / (1 - h_ii)``; the grid (default: mean eigenvalue of
    ``Phi^T Phi`` times ``10^[-6, 1]``, 15 values) is scanned and the lambda with the least
    mean squared LOO residual is used. Returns (W, lambda). Only the training data are used.
    """
    Phi = np.asarray(Phi, dtype=np.float64)
    T = np.asarray(T, dtype=np.float64)
    # thin SVD through the k x k Gram matrix (k <= n here): Phi^T Phi = V diag(s^2) V^T,
    # U = Phi V / s on the numerically non-zero directions
    evals, V = scipy.linalg.eigh(Phi.T @ Phi)
    keep = evals > max(float(evals.max()), 0.0) * 1e-12
    s2 = evals[keep]
    s = np.sqrt(s2)
    V = V[:, keep]
    U = (Phi @ V) / s
    Vt = V.T
    if lambdas is None:
        lambdas = max(float(s2.mean()), 1e-12) * np.logspace(-6, 1, 15)
    UT = U.T @ T
    U2 = U**2
    best = (np.inf, float(lambdas[0]))
    for lam in lambdas:
        f = s2 / (s2 + lam)
        fitted = U @ (f[:, None] * UT)
        h = U2 @ f
        loo = (T - fitted) / np.maximum(1.0 - h, 1e-12)[:, None]
        err = float(np.mean(loo**2))
        if err < best[0]:
            best = (err, float(lam))
    lam = best[1]
    W = Vt.T @ ((s / (s2 + lam))[:, None] * UT)
    return W, lam


class HausdorffLearnerMixin(MIMLClassifierMixin):
    """Adds ``_fit_bags`` / ``_transform_bags`` (scaling) and distance helpers.

    Expects the parameters ``variant``, ``scale``, ``n_jobs`` and ``memory_budget_mb`` (MB
    of working memory for the distance engine and the row-blocked steps) on the learner.
    """

    decision_threshold = 0.0  # ±1 targets

    # ---------------------------------------------------------------- scaling
    def _fit_bags(self, X: Any, Y: Any) -> tuple[Bags, np.ndarray]:
        bags, Y = self._validate_fit(X, Y)
        normalize_variant(self.variant)  # raise early on a bad name
        self.scale_offset_, self.scale_factor_ = fit_scaling(bags.instances, self.scale)
        return self._scaled(bags), Y

    def _scaled(self, bags: Bags) -> Bags:
        if self.scale is None or self.scale == "none":
            return bags
        return bags.with_instances(apply_scaling(bags.instances, self.scale_offset_,
                                                 self.scale_factor_, dtype=np.float32))

    def _test_bags(self, X: Any) -> Bags:
        return self._scaled(self._validate_bags(X, reset=False))

    # ---------------------------------------------------------------- distances
    def _budget_mb(self) -> float:
        """Working-memory budget of the distance engine and of the row-blocked steps
        (the learner's ``memory_budget_mb`` when it has one, else 256 MB)."""
        budget = getattr(self, "memory_budget_mb", None)
        if budget is None:
            return 256.0
        if isinstance(budget, bool) or not float(budget) > 0:
            raise ValueError(f"memory_budget_mb must be a positive number of MB, got {budget!r}")
        return float(budget)

    def _dist(self, A: Bags, B: Bags | None = None, dtype: Any = np.float64,
              square_bytes: float | None = None) -> np.ndarray:
        """Hausdorff matrix; ``dtype=np.float32`` keeps the engine's output as is (the
        all-pairs training matrix: no float64 copy of an n x n matrix). For the all-pairs
        matrix, ``square_bytes`` (default: the dtype's size) is the learner's peak bytes per
        bag pair: the fit is refused up front, with the figures, when that exceeds the
        memory available (rather than being killed by the OS half-way)."""
        if B is None:
            self._check_square_fits(A.n_bags, square_bytes or np.dtype(dtype).itemsize)
        D = hausdorff(A, B, variant=self.variant, n_jobs=self.n_jobs,
                      memory_budget_mb=self._budget_mb())
        return D if D.dtype == dtype else D.astype(dtype)

    def _check_square_fits(self, n: int, square_bytes: float) -> None:
        need = float(n) * n * square_bytes
        try:
            import psutil

            avail = float(psutil.virtual_memory().available)
        except Exception:  # noqa: BLE001 - no reading: let the allocation decide
            return
        if need > avail:
            name = type(self).__name__
            raise MemoryError(
                f"{name} needs the {n:,} x {n:,} matrix of bag distances between the "
                f"training bags ({need / 2**30:.1f} GiB at its peak) but only "
                f"{avail / 2**30:.1f} GiB of memory is available: {name} holds all pairwise "
                "distances (memory grows with the square of the number of bags); train on "
                "fewer bags, or use a learner that grows linearly (bmiml, mimlfast, bls)")

    def _rows_per_block(self, row_bytes: float) -> int:
        """Rows of a row-blocked step whose rows take ``row_bytes`` each."""
        return max(1, int(self._budget_mb() * 2**20 // max(row_bytes, 1.0)))

    def _medoids(self, D: np.ndarray, k: int, seed: int) -> np.ndarray:
        return kmedoids_bags(D, k, random_state=seed, method=self.kmedoids).medoids
