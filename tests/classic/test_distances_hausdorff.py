"""mimlkit.distances: Hausdorff engine vs a direct per-pair computation, k-medoids helpers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist, directed_hausdorff

from mimlkit.bags import Bags
from mimlkit.distances import hausdorff, kmedoids_bags, normalize_variant, sampled_medoids


def _ref(A, B, variant):
    C = cdist(A, B)
    if variant == "max":
        return max(C.min(axis=1).max(), C.min(axis=0).max())
    if variant == "min":
        return C.min()
    if variant == "directed":
        return C.min(axis=1).max()
    return (C.min(axis=1).sum() + C.min(axis=0).sum()) / (len(A) + len(B))


def _bags(seed, n, d=5, lo=1, hi=12, shift=0.0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(int(rng.integers(lo, hi)), d)) + shift for _ in range(n)]


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("variant", ["max", "min", "average", "directed"])
def test_matches_direct_computation_ragged(variant, dtype, tol):
    A = _bags(0, 23)
    B = _bags(1, 17, hi=30, shift=0.3)
    R = np.array([[_ref(a, b, variant) for b in B] for a in A])
    D = hausdorff(A, B, variant=variant, dtype=dtype)
    assert D.dtype == dtype and D.shape == (23, 17)
    np.testing.assert_allclose(D, R, rtol=0, atol=tol)
    # all pairs: symmetric (except directed), zero diagonal
    Rall = np.array([[_ref(a, b, variant) for b in A] for a in A])
    np.fill_diagonal(Rall, 0)
    Dall = hausdorff(A, variant=variant, dtype=dtype, memory_budget_mb=0.01, n_jobs=2)
    np.testing.assert_allclose(Dall, Rall, rtol=0, atol=tol)
    assert np.all(np.diag(Dall) == 0)
    if variant != "directed":
        np.testing.assert_array_equal(Dall, Dall.T)


def test_max_equals_scipy_directed_hausdorff_both_ways():
    A = _bags(2, 12, d=3)
    D = hausdorff(A, dtype=np.float64)
    for i in range(len(A)):
        for j in range(len(A)):
            if i == j:
                continue
            ref = max(directed_hausdorff(A[i], A[j])[0], directed_hausdorff(A[j], A[i])[0])
            assert abs(D[i, j] - ref) < 1e-10


def test_equal_size_3d_input_bags_and_blocks_agree():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 9, 6)).astype(np.float32) * 50 + 20  # unscaled, off-centre
    D1 = hausdorff(X)
    D2 = hausdorff(Bags.from_list(list(X)), memory_budget_mb=0.005, n_jobs=2)
    np.testing.assert_allclose(D1, D2, rtol=1e-6)
    R = np.array([[_ref(a.astype(np.float64), b.astype(np.float64), "max") for b in X]
                  for a in X])
    np.testing.assert_allclose(D1, R, rtol=1e-5, atol=1e-4)


def test_torch_backend_matches_numpy():
    pytest.importorskip("torch")
    A = _bags(4, 15)
    B = _bags(5, 9, shift=1.0)
    for variant in ("max", "min", "average"):
        np.testing.assert_allclose(hausdorff(A, B, variant=variant, backend="torch"),
                                   hausdorff(A, B, variant=variant), rtol=1e-5, atol=1e-5)
    # bags too large for one block go through the instance-blocked pairs
    rng = np.random.default_rng(6)
    big = [rng.normal(size=(s, 3)) for s in (260, 240, 4)]
    for variant in ("max", "average"):
        np.testing.assert_allclose(
            hausdorff(big, variant=variant, backend="torch", memory_budget_mb=0.01),
            hausdorff(big, variant=variant, memory_budget_mb=512), rtol=1e-5, atol=1e-5)


def test_errors_and_aliases():
    A = _bags(6, 4)
    assert normalize_variant("max_hausdorff") == "max"
    assert normalize_variant("avg") == "average"
    with pytest.raises(ValueError, match="variant"):
        hausdorff(A, variant="median")
    with pytest.raises(ValueError, match="widths"):
        hausdorff(A, _bags(7, 3, d=4))
    with pytest.raises(ValueError, match="dtype"):
        hausdorff(A, dtype=np.int32)
    with pytest.raises(ValueError, match="backend"):
        hausdorff(A, backend="cupy")


def test_kmedoids_bags_methods():
    rng = np.random.default_rng(8)
    centres = rng.normal(size=(3, 4)) * 10
    bags = [centres[i % 3] + rng.normal(size=(5, 4)) for i in range(30)]
    D = hausdorff(bags, dtype=np.float64)
    for method in ("fasterpam", "lamda", "alternate"):
        res = kmedoids_bags(D, 3, random_state=0, method=method)
        assert res.medoids.shape == (3,) and len(set(res.medoids)) == 3
        np.testing.assert_array_equal(res.labels[res.medoids], np.arange(3))
        # the three well-separated groups are recovered
        truth = np.arange(30) % 3
        for c in range(3):
            assert len(set(truth[res.labels == c])) == 1
    with pytest.raises(ValueError, match="n_clusters"):
        kmedoids_bags(D, 31)
    with pytest.raises(ValueError, match="method"):
        kmedoids_bags(D, 3, method="nope")
    assert kmedoids_bags(D, 30).cost == 0.0


def test_sampled_medoids_close_to_full():
    rng = np.random.default_rng(9)
    centres = rng.normal(size=(4, 3)) * 10
    bags = [centres[i % 4] + rng.normal(size=(int(rng.integers(2, 6)), 3)) for i in range(300)]
    full = kmedoids_bags(hausdorff(bags), 4, random_state=0)
    clara = sampled_medoids(bags, 4, sample_size=60, n_samples=3, random_state=0)
    assert clara.medoids.shape == (4,) and clara.labels.shape == (300,)
    assert clara.cost <= 1.1 * full.cost
    D = hausdorff(bags)
    np.testing.assert_allclose(clara.cost, D[np.arange(300), clara.medoids[clara.labels]].sum(),
                               rtol=1e-4)


@pytest.mark.parametrize("variant", ["max", "min", "average", "directed"])
def test_blocks_inside_bags_same_result_as_one_block(variant):
    """Bags too large for one block are split over their instances (both bags); the
    result equals the one-block computation and a direct one."""
    rng = np.random.default_rng(10)
    sizes = [300, 280, 230, 3, 1, 9, 40]
    A = [rng.normal(size=(s, 4)) + 0.1 * k for k, s in enumerate(sizes)]
    B = [rng.normal(size=(s, 4)) for s in (250, 2, 11)]
    for args in ((A,), (A, B)):
        one = hausdorff(*args, variant=variant, dtype=np.float64, memory_budget_mb=512)
        for budget, jobs in ((0.01, 1), (0.003, 2)):  # ~440 / ~130 entries per block
            small = hausdorff(*args, variant=variant, dtype=np.float64,
                              memory_budget_mb=budget, n_jobs=jobs)
            np.testing.assert_allclose(small, one, rtol=1e-12, atol=1e-12)
        other = args[1] if len(args) == 2 else A
        R = np.array([[_ref(a, b, variant) for b in other] for a in A])
        if len(args) == 1:
            np.fill_diagonal(R, 0)
        np.testing.assert_allclose(one, R, rtol=0, atol=1e-10)
