"""Bounded memory inside the distance-based classic learners (issue 16): float32 training
distance matrices, row-blocked neighbour structures and kernels, and mi-SVM's BLAS
re-scoring, all with the same results as the direct computations."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from sklearn.svm import SVC

from mimlkit.datasets import make_miml_bags
from mimlkit.learners.classic import mimlmisvm
from mimlkit.learners.classic.mimlknn import MIMLkNN
from mimlkit.learners.classic.mimlsvm import MIMLSVM, rbf_kernel_matrix

MB = 2**20


def _peak(fn):
    tracemalloc.start()
    try:
        out = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return out, peak


def _fixed(est, budget=None):
    """No threshold calibration (it refits clones); optional memory budget."""
    est.threshold_mode = "fixed"
    est.t_criterion = True
    if budget is not None:
        est.memory_budget_mb = budget
    return est


@pytest.fixture(scope="module")
def split():
    ds = make_miml_bags(700, n_features=6, bag_size=(2, 6), random_state=3)
    tr, te = np.arange(500), np.arange(500, 700)
    return ds.bags.take(tr), ds.Y[tr], ds.bags.take(te)


@pytest.mark.parametrize("kw", [{}, {"citers": "kdis"}, {"fit_intercept": True}])
def test_mimlknn_row_blocks_change_nothing(split, kw):
    Xtr, Ytr, Xte = split
    one = _fixed(MIMLkNN(scale=None, **kw)).fit(Xtr, Ytr)
    small = _fixed(MIMLkNN(scale=None, **kw), budget=0.3).fit(Xtr, Ytr)
    assert small._rows_per_block(24.0 * 500) < 50  # the budget really splits the rows
    np.testing.assert_array_equal(small.citer_radius_, one.citer_radius_)
    np.testing.assert_allclose(small.weights_, one.weights_, rtol=1e-9, atol=1e-9)
    s1 = one.decision_function(Xte)
    s2 = small.decision_function(Xte)  # test bags in chunks of < 50
    np.testing.assert_allclose(s2, s1, rtol=1e-6, atol=1e-6)


def test_mimlsvm_kernel_blocks_change_nothing(split):
    Xtr, Ytr, Xte = split
    est = _fixed(MIMLSVM(scale=None, random_state=0)).fit(Xtr, Ytr)
    s1 = est.decision_function(Xte)
    Phi = est.transform(Xte)
    est.memory_budget_mb = 0.1  # kernel rows in blocks of ~26; distances unchanged
    est._dist = lambda A, B=None, dtype=np.float64: Phi  # same embedding, new blocks only
    np.testing.assert_allclose(est.decision_function(Xte), s1, rtol=1e-10, atol=1e-10)


def test_rbf_kernel_matrix_in_place_equals_formula():
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(70, 9)) * 4, rng.normal(size=(50, 9)) * 4
    sq = (A**2).sum(1)[:, None] + (B**2).sum(1)[None, :] - 2.0 * (A @ B.T)
    np.testing.assert_array_equal(rbf_kernel_matrix(A, B, 0.03),
                                  np.exp(-0.03 * np.maximum(sq, 0.0)))


def test_distance_learners_keep_no_float64_square_matrix():
    """1 200 training bags: an n x n float64 matrix is 11 MB; MIMLkNN keeps only the float32
    distances (5.5 MB) plus budget-sized blocks, MIMLSVM the float64 Gram matrix alone."""
    ds = make_miml_bags(1200, n_features=4, bag_size=(2, 4), random_state=5)
    n = 1200
    sq64 = n * n * 8
    _, peak = _peak(lambda: _fixed(MIMLkNN(scale=None), budget=1).fit(ds.bags, ds.Y))
    assert peak < 0.5 * sq64 + 3 * MB, peak / MB
    _, peak = _peak(lambda: _fixed(MIMLSVM(scale=None, random_state=0), budget=1)
                    .fit(ds.bags, ds.Y))
    assert peak < 1.25 * sq64 + 3 * MB, peak / MB


@pytest.mark.parametrize("kernel,kw", [("rbf", {"gamma": 0.3}),
                                       ("poly", {"gamma": 0.2, "degree": 3, "coef0": 1.0}),
                                       ("sigmoid", {"gamma": 0.05, "coef0": 0.2})])
def test_misvm_blas_decision_equals_libsvm(kernel, kw):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 5))
    y = np.where(X[:, 0] + 0.7 * rng.normal(size=400) > 0, 1, -1)
    svm = SVC(kernel=kernel, **kw).fit(X, y)
    f = mimlmisvm._svm_decision(svm, X, block_entries=1000)  # several row blocks
    np.testing.assert_allclose(f, svm.decision_function(X), rtol=0, atol=1e-9)


def test_misvm_fit_same_as_libsvm_rescoring(monkeypatch):
    ds = make_miml_bags(60, n_features=5, bag_size=(2, 5), random_state=2)
    fast = _fixed(mimlmisvm.MIMLmiSVM(max_iter=4, random_state=0)).fit(ds.bags, ds.Y)
    monkeypatch.setattr(mimlmisvm, "_svm_decision", lambda svm, X: svm.decision_function(X))
    slow = _fixed(mimlmisvm.MIMLmiSVM(max_iter=4, random_state=0)).fit(ds.bags, ds.Y)
    np.testing.assert_array_equal(fast.n_iter_, slow.n_iter_)
    for a, b in zip(fast.estimators_, slow.estimators_):
        if a is not None:
            np.testing.assert_array_equal(a.support_, b.support_)
    np.testing.assert_allclose(fast.decision_function(ds.bags), slow.decision_function(ds.bags),
                               rtol=0, atol=1e-9)


def test_all_pairs_learner_refuses_what_cannot_fit(monkeypatch):
    """The n x n training matrix is checked against the available memory before any work:
    a clear MemoryError naming the learner, the matrix and the figures."""
    import psutil

    class _VM:
        available = 4 * MB  # pretend: 4 MB free

    monkeypatch.setattr(psutil, "virtual_memory", lambda: _VM())
    ds = make_miml_bags(1200, n_features=3, bag_size=(2, 3), random_state=0)
    for est in (MIMLkNN(), MIMLSVM()):
        with pytest.raises(MemoryError, match=r"1,200 x 1,200 .*GiB.*available"):
            _fixed(est).fit(ds.bags, ds.Y)
