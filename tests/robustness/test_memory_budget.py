"""Memory bounds: Hausdorff distances, BLS fitting and CNN feature extraction honour their
``memory_budget_mb`` parameter.

``tracemalloc`` traces numpy allocations, so a peak below ``budget + output + inputs`` proves
that no all-pairs instance matrix (or whole design matrix) was ever materialised. Torch
allocations are invisible to it; feature extraction is checked with forward hooks instead.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from mimlkit.bags import Bags

MB = 2**20


def _peak(fn):
    tracemalloc.start()
    try:
        out = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return out, peak


# ----------------------------------------------------------------------------- distances
@pytest.fixture(scope="module")
def big_bags():
    """30 000 instances in 3 000 bags of 10: the instance-pair matrix would be 30k x 30k
    float32 = 3.4 GiB; the bag matrix is 3k x 3k = 34 MiB."""
    rng = np.random.default_rng(0)
    n_bags, size, d = 3000, 10, 8
    X = rng.normal(size=(n_bags * size, d)).astype(np.float32)
    return Bags.from_instances(X, np.repeat(np.arange(n_bags), size))


def _direct(A: Bags, B: Bags, variant: str) -> np.ndarray:
    """Reference: explicit float64 instance distances per bag pair (small subsets only)."""
    out = np.empty((len(A), len(B)))
    for i in range(len(A)):
        for j in range(len(B)):
            a, b = A[i].astype(np.float64), B[j].astype(np.float64)
            d = np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))
            if variant == "max":
                out[i, j] = max(d.min(1).max(), d.min(0).max())
            elif variant == "min":
                out[i, j] = d.min()
            else:
                out[i, j] = (d.min(1).sum() + d.min(0).sum()) / (len(a) + len(b))
    return out


@pytest.mark.parametrize("variant", ["max", "average"])
def test_hausdorff_within_budget_on_30k_instances(big_bags, variant):
    from mimlkit.distances import hausdorff

    budget = 8
    n_inst, n_bags = big_bags.n_instances, len(big_bags)
    assert n_inst**2 * 4 > 400 * budget * MB  # the pairwise matrix would not fit, by far
    D, peak = _peak(lambda: hausdorff(big_bags, variant=variant, memory_budget_mb=budget))
    out_bytes = n_bags**2 * 4
    inputs = big_bags.instances.nbytes * 4  # float64 centring copy + padded groups
    assert D.shape == (n_bags, n_bags) and D.dtype == np.float32
    assert peak < budget * MB + out_bytes + inputs, (peak / MB, out_bytes / MB)
    # the same numbers as a direct computation on a subset
    idx = np.r_[0:6, 1500:1504, 2990:3000]
    sub = big_bags[idx]
    np.testing.assert_allclose(D[np.ix_(idx, idx)], _direct(sub, sub, variant), rtol=2e-5,
                               atol=2e-5)
    np.testing.assert_array_equal(D, D.T)
    assert np.all(np.diag(D) == 0)


@pytest.mark.parametrize("variant", ["max", "average"])
def test_hausdorff_big_bags_within_budget(variant):
    """Bags of 12 000 and 6 000 instances: the instance-pair block of the big bag with
    itself (576 MB) or with the other (288 MB) is never allocated; the engine blocks inside
    the bags."""
    from mimlkit.distances import hausdorff

    rng = np.random.default_rng(2)
    bags = [rng.normal(size=(n, 8)).astype(np.float32) for n in (12000, 6000, 9, 9)]
    budget = 8
    n_inst = sum(len(b) for b in bags)
    D, peak = _peak(lambda: hausdorff(bags, variant=variant, memory_budget_mb=budget))
    inputs = n_inst * 8 * 4 * 4  # copies of the instances (centred, grouped, augmented)
    assert peak < budget * MB + inputs, peak / MB
    assert 12000 * 6000 * 4 > 20 * (budget * MB + inputs)  # the pair block would not fit
    ref = hausdorff([b.astype(np.float64) for b in bags[1:]], variant=variant,
                    dtype=np.float64, memory_budget_mb=4096)
    np.testing.assert_allclose(D[1:, 1:], ref, rtol=2e-5, atol=2e-5)
    assert np.all(np.diag(D) == 0) and np.all(D[0, 1:] > 0)


def test_hausdorff_budget_does_not_change_the_result(big_bags):
    from mimlkit.distances import hausdorff

    sub = big_bags[:400]
    a = hausdorff(sub, memory_budget_mb=0.05)
    b = hausdorff(sub, memory_budget_mb=512)
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(a, a.T)


# ----------------------------------------------------------------------------- BLS
@pytest.fixture(scope="module")
def bls_data():
    rng = np.random.default_rng(1)
    n, d, k = 10000, 8, 3
    X = rng.normal(size=(n, d))  # one-instance bags
    Y = (X[:, :k] + 0.5 * rng.normal(size=(n, k)) > 0).astype(np.int8)
    return X, Y


def test_bls_fit_within_budget_same_fit(bls_data):
    from mimlkit.learners.broad.bls import BroadLearningSystem

    X, Y = bls_data
    kw = dict(n_enhancement=600, sparse_iter=5, random_state=0)
    free, peak_free = _peak(lambda: BroadLearningSystem(**kw).fit(X, Y))
    capped, peak_capped = _peak(lambda: BroadLearningSystem(**kw, memory_budget_mb=2)
                                .fit(X, Y))
    p = capped.coef_.shape[0]
    design = len(X) * p * 8  # the n x #nodes float64 design matrix
    assert capped._rows_per_block() < 300
    assert peak_capped < design / 2, (peak_capped / MB, design / MB)
    assert peak_capped < peak_free / 2
    np.testing.assert_allclose(capped.coef_, free.coef_, rtol=1e-6, atol=1e-6 * np.abs(
        free.coef_).max())
    np.testing.assert_allclose(capped.decision_function(X[:500]),
                               free.decision_function(X[:500]), rtol=1e-6, atol=1e-6)


def test_bls_budget_equals_streaming_partial_fit(bls_data):
    """The budgeted fit equals calibrate + partial_fit over explicit blocks."""
    from mimlkit.learners.broad.bls import BroadLearningSystem

    X, Y = bls_data
    X, Y = X[:3000], Y[:3000]
    kw = dict(n_enhancement=200, sparse_iter=5, random_state=0)
    capped = BroadLearningSystem(**kw, memory_budget_mb=1).fit(X, Y)
    stream = BroadLearningSystem(**kw, solver="primal").calibrate(X, Y)
    for s in range(0, len(X), 700):
        stream.partial_fit(X[s:s + 700], Y[s:s + 700])
    np.testing.assert_allclose(capped.coef_, stream.coef_, rtol=1e-6,
                               atol=1e-8 * np.abs(stream.coef_).max())
    with pytest.raises(ValueError, match="memory_budget_mb"):
        BroadLearningSystem(**kw, memory_budget_mb=0).fit(X[:50], Y[:50])


# ----------------------------------------------------------------------------- features
def test_feature_extraction_batches_fit_the_budget():
    torch = pytest.importorskip("torch")
    from mimlkit.datasets.tiling import TileBagger
    from mimlkit.features.extract import extract_features, picture_bytes
    from mimlkit.features.multilevel import make_extractor

    ex = make_extractor("tiny-multilevel", None, seed=0)
    per = picture_bytes(ex, "cpu")
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 255, (96, 96, 3), dtype=np.uint8) for _ in range(5)]
    budget_mb = 4 * per / MB  # room for 4 pictures per forward pass

    seen = []  # largest (input + output) bytes of any layer during each forward

    def hook(module, inputs, output):
        seen.append(sum(t.numel() * t.element_size() for t in inputs if torch.is_tensor(t))
                    + output.numel() * output.element_size())

    handles = [m.register_forward_hook(hook) for m in ex.modules()
               if next(m.children(), None) is None]
    try:
        capped = extract_features(imgs, ex, tiler=TileBagger(32), batch_size=64,
                                  device="cpu", progress=False, memory_budget_mb=budget_mb)
        worst_capped = max(seen)
        seen.clear()
        free = extract_features(imgs, ex, tiler=TileBagger(32), batch_size=64, device="cpu",
                                progress=False)
        worst_free = max(seen)
    finally:
        for h in handles:
            h.remove()
    assert worst_capped <= budget_mb * MB
    assert worst_free > budget_mb * MB  # without the budget, 45 tiles go through at once
    np.testing.assert_allclose(capped.instances, free.instances, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(capped.offsets, free.offsets)
    with pytest.raises(ValueError, match="memory_budget_mb"):
        extract_features(imgs[:1], ex, device="cpu", progress=False, memory_budget_mb=0)
