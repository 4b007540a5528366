"""AWLEL: the W/T alternation (Eqs. 26–27) never increases the IRLS objective of Eq. 11."""

from __future__ import annotations

import numpy as np
import pytest

from mimlkit.bags import as_bags
from mimlkit.learners.broad.awlel import AWLEL, huber_norm


def _data(n=200, seed=0, K=4, outliers=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4, 5))
    b = as_bags(X)
    G = np.hstack([b.pool("mean"), b.pool("max")])
    Y = (G @ rng.normal(size=(10, K)) + 0.5 * rng.normal(size=(n, K)) > 0.8).astype(np.int8)
    if outliers:
        Y[:outliers] = 1 - Y[:outliers]  # flipped label rows: should receive low weight
    return X, Y


def _objective(m, X, Yt):
    """F(W, T) = Σ ρ(‖A_iW − T_i‖) + λ/2 ‖W‖² + ϑ Σ ρ(‖T_i − Y_i‖), recomputed from scratch."""
    A = m.transform(X)
    r = np.linalg.norm(A @ m.coef_ - m.T_, axis=1)
    e = np.linalg.norm(m.T_ - Yt, axis=1)
    return (huber_norm(r, m.eps).sum() + 0.5 * m.reg_lambda_ * (m.coef_ ** 2).sum()
            + m.theta * huber_norm(e, m.eps).sum())


@pytest.mark.parametrize("theta,seed", [(1.0, 0), (0.5, 1), (2.0, 2)])
def test_irls_objective_never_increases(theta, seed):
    X, Y = _data(seed=seed, outliers=10)
    m = AWLEL(n_enhancement=60, theta=theta, max_iter=12, tol=0.0, random_state=seed).fit(X, Y)
    h = m.objective_history_
    assert m.n_iter_ == 12 and h.size == 12
    rel = np.diff(h) / np.abs(h[:-1])
    assert np.all(rel <= 1e-9), rel
    assert h[-1] < h[0]
    # the recorded last value is the objective of the returned (W, T)
    F_end = _objective(m, X, Y.astype(float))
    # (history[-1] uses the W before the final T-update's partner solve: F(W_last, T_final))
    assert F_end == pytest.approx(h[-1], rel=1e-8)


def test_eq27_row_update_and_weights():
    X, Y = _data(n=120, seed=3)
    m = AWLEL(n_enhancement=40, max_iter=3, tol=0.0, random_state=0).fit(X, Y)
    assert m.T_.shape == Y.shape and np.isfinite(m.T_).all()
    # T lies between Y and the fitted scores (convex combination row-wise, Eq. 27)
    F = m.transform(X) @ m.coef_
    lo, hi = np.minimum(F, Y), np.maximum(F, Y)
    # T was updated with the final W: T_i = (γ F_i + ϑ ω Y_i)/(γ + ϑ ω) with earlier weights
    assert np.all(m.T_ >= lo - 1e-9) and np.all(m.T_ <= hi + 1e-9)
    assert np.all(m.gamma_ > 0) and np.all(m.omega_ > 0)


def test_outlier_rows_get_low_weight():
    X, Y = _data(n=300, seed=4, outliers=15)
    m = AWLEL(n_enhancement=60, max_iter=8, random_state=0).fit(X, Y)
    # flipped rows are far from their labels' fit: T moves away from Y (small ω)
    assert np.median(m.omega_[:15]) < np.median(m.omega_[15:])


def test_tol_stops_early_and_literal_retarget():
    X, Y = _data(n=100)
    m = AWLEL(n_enhancement=30, max_iter=50, tol=1e-2, random_state=0).fit(X, Y)
    assert m.n_iter_ < 50
    lit = AWLEL(n_nodes_per_window=5, n_windows=4, n_enhancement=20, retarget="literal",
                random_state=0).fit(X, Y)
    assert lit.transform(X).shape[1] == 10 + 20 + 20 + 20  # X̃, Z, H, R (N4 = N3)
    with pytest.raises(ValueError, match="literal"):
        AWLEL(n_enhancement=30, retarget="literal").fit(X, Y)
