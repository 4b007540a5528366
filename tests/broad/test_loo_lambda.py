"""The streamed exact leave-one-out choice of the ridge λ (``_nodes.loo_lambda``)."""

import numpy as np
import pytest

from mimlkit.learners.broad._nodes import loo_lambda


def _brute_press(A, T, lam):
    n = A.shape[0]
    err = 0.0
    for i in range(n):
        keep = np.arange(n) != i
        W = np.linalg.solve(A[keep].T @ A[keep] + lam * np.eye(A.shape[1]), A[keep].T @ T[keep])
        err += float(((T[i] - A[i] @ W) ** 2).sum())
    return err


@pytest.mark.parametrize("n,p", [(40, 10), (25, 60)])  # more rows than nodes, and fewer
def test_matches_brute_force_leave_one_out(n, p):
    rng = np.random.default_rng(n)
    A = rng.normal(size=(n, p))
    T = A[:, :3] @ rng.normal(size=(3, 2)) + 0.5 * rng.normal(size=(n, 2))
    grid = np.logspace(-3, 3, 13)

    def blocks():  # two row blocks: the statistics must add up across blocks
        yield A[: n // 2], T[: n // 2]
        yield A[n // 2:], T[n // 2:]

    lam = loo_lambda(A.T @ A, A.T @ T, blocks, grid=grid)
    press = [_brute_press(A, T, g) for g in grid]
    assert lam == grid[int(np.argmin(press))]


def test_noise_only_targets_get_strong_shrinkage():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(60, 200))  # nodes outnumber rows, targets carry no signal
    T = rng.normal(size=(60, 3))
    grid = np.logspace(-4, 4, 17)
    lam = loo_lambda(A.T @ A, A.T @ T, lambda: iter([(A, T)]), grid=grid)
    assert lam >= 100.0
