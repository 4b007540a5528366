"""BLS algebra: ridge = least squares on the augmented system; streaming = one-shot."""

from __future__ import annotations

import numpy as np
import pytest

from mimlkit.bags import as_bags
from mimlkit.learners.broad._nodes import sparse_bls, tribas
from mimlkit.learners.broad.bls import BroadLearningSystem


def _data(n=240, m=3, d=6, K=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, m, d))
    W = rng.normal(size=(2 * d, K))
    b = as_bags(X)
    G = np.hstack([b.pool("mean"), b.pool("max")])
    Y = (G @ W + 0.3 * rng.normal(size=(n, K)) > 0.5).astype(np.int8)
    return X, Y


def _lstsq(A, T, lam):
    p = A.shape[1]
    aug_A = np.vstack([A, np.sqrt(lam) * np.eye(p)])
    aug_T = np.vstack([T, np.zeros((p, T.shape[1]))])
    return np.linalg.lstsq(aug_A, aug_T, rcond=None)[0]


@pytest.mark.parametrize("solver,n_enh", [("primal", 40), ("dual", 400)])
def test_ridge_equals_augmented_lstsq(solver, n_enh):
    X, Y = _data()
    lam = 1e-2
    m = BroadLearningSystem(n_enhancement=n_enh, reg_lambda=lam, solver=solver,
                            random_state=0).fit(X, Y)
    A = m.transform(X)
    assert A.shape == (len(X), 100 + n_enh)
    W = _lstsq(A, 2.0 * Y - 1.0, lam)  # label_encoding='pm1'
    np.testing.assert_allclose(m.coef_, W, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(m.decision_function(X), A @ W, rtol=1e-6, atol=1e-7)


def test_auto_solver_picks_by_shape():
    X, Y = _data(n=200)
    tall = BroadLearningSystem(n_enhancement=20, random_state=0).fit(X, Y)
    wide = BroadLearningSystem(n_enhancement=300, random_state=0).fit(X, Y)
    assert hasattr(tall, "gram_") and not hasattr(wide, "gram_")


def test_partial_fit_blocks_equal_one_shot():
    X, Y = _data(n=300)
    full = BroadLearningSystem(n_enhancement=50, solver="primal", block_size=64,
                               random_state=1).fit(X, Y)
    stream = BroadLearningSystem(n_enhancement=50, random_state=1).calibrate(X, Y)
    for s in range(0, 300, 70):
        stream.partial_fit(X[s:s + 70], Y[s:s + 70])
    assert stream.n_samples_seen_ == 300
    np.testing.assert_allclose(stream.gram_, full.gram_, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(stream.coef_, full.coef_, rtol=1e-6, atol=1e-7)
    # the first partial_fit without calibrate freezes the maps from its own block
    first = BroadLearningSystem(n_enhancement=50, random_state=1).partial_fit(X[:150], Y[:150])
    assert first.n_samples_seen_ == 150 and np.isfinite(first.coef_).all()


def test_sparse_autoencoder_solves_lasso():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(80, 5))
    B = A @ rng.normal(size=(5, 3)) + 0.1 * rng.normal(size=(80, 3))
    lam = 0.5
    Xs = sparse_bls(A, B, lam=lam, n_iter=2000)
    grad = A.T @ (A @ Xs - B)  # KKT of ½‖AX − B‖² + lam‖X‖₁
    nz = np.abs(Xs) > 1e-8
    np.testing.assert_allclose(grad[nz], -lam * np.sign(Xs[nz]), atol=1e-4)
    assert np.all(np.abs(grad[~nz]) <= lam + 1e-4)


def test_tribas_and_enhancement_shrink():
    np.testing.assert_allclose(tribas(np.array([-2.0, -0.5, 0.0, 0.25, 1.0, 3.0])),
                               [0.0, 0.5, 1.0, 0.75, 0.0, 0.0])
    X, Y = _data(n=120)
    m = BroadLearningSystem(n_enhancement=30, random_state=0).fit(X, Y)
    Wh = m.enhancement_weights_  # 101 x 30: orthonormal columns (tall case)
    np.testing.assert_allclose(Wh.T @ Wh, np.eye(30), atol=1e-10)
    A = m.transform(X)
    Z = A[:, :100]
    assert Z.min() >= -1e-12 and Z.max() <= 1 + 1e-12  # min-max scaled on the training set
    H = A[:, 100:]
    assert np.abs(H).max() <= np.tanh(0.8) + 1e-12  # shrink s = 0.8 over the max


def test_bad_global_features_raise():
    X, Y = _data(n=50)
    m = BroadLearningSystem(n_enhancement=10, random_state=0)
    with pytest.raises(ValueError, match="global_features"):
        m.fit(X, Y, global_features=np.ones((49, 4)))
    G = np.random.default_rng(0).normal(size=(50, 4))
    m.fit(X, Y, global_features=G)
    with pytest.raises(ValueError, match="global_features"):
        m.decision_function(X)
    assert m.decision_function(X, global_features=G).shape == (50, 3)


def test_auto_enhancement_nodes_follow_the_training_bags(tmp_path):
    """``n_enhancement="auto"`` (the default): N3 = training bags clipped to [100, 1000];
    a streaming fit from a store that calibrates on a sample counts every bag of the store,
    so it builds the same node maps as the in-memory fit; the paper preset keeps 1000."""
    pytest.importorskip("zarr")
    from mimlkit.datasets import make_miml_bags
    from mimlkit.datasets.store import BagStoreWriter, fit_from_store, open_store
    from mimlkit.learners.broad.bls import BroadLearningSystem
    from mimlkit.registry import create

    small = make_miml_bags(n_bags=60, n_labels=3, n_features=6, random_state=0)
    mid = make_miml_bags(n_bags=300, n_labels=3, n_features=6, random_state=0)
    fixed = dict(threshold_mode="fixed", random_state=0)
    assert BroadLearningSystem().n_enhancement == "auto"
    assert BroadLearningSystem(**fixed).fit(small.bags, small.Y).n_enhancement_ == 100
    est = BroadLearningSystem(**fixed).fit(mid.bags, mid.Y)
    assert est.n_enhancement_ == 300 and est.enhancement_weights_.shape[1] == 300
    assert create("bls", preset="paper").n_enhancement == 1000
    path = tmp_path / "mid.zarr"
    with BagStoreWriter(path, 6, mid.label_names, chunk_rows=256) as w:
        w.append(mid.bags, mid.Y)
    lazy = fit_from_store(BroadLearningSystem(**fixed), open_store(path), block_bags=64,
                          calibrate_bags=300)
    assert lazy.n_enhancement_ == 300 and "_calibration_rows_hint" not in lazy.__dict__
    np.testing.assert_allclose(lazy.decision_function(mid.bags), est.decision_function(mid.bags),
                               rtol=1e-6, atol=1e-8)
    sampled = fit_from_store(BroadLearningSystem(**fixed), open_store(path), block_bags=64)
    assert sampled.n_enhancement_ == 300  # calibrated on 64 bags, sized for all 300
