"""Attention MIL learners (abmil, transmil, dsmil, meanmil/maxmil) on small feature bags."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklearn.base import clone  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from mimlkit.bags import Bags  # noqa: E402
from mimlkit.datasets import make_miml_bags  # noqa: E402
from mimlkit.deep.attention import ABMIL, PoolMIL  # noqa: E402
from mimlkit.deep.dsmil import DSMIL  # noqa: E402
from mimlkit.deep.losses import list_losses  # noqa: E402
from mimlkit.deep.mil_base import _BagBatches, grid_positions  # noqa: E402
from mimlkit.deep.transmil import TransMIL  # noqa: E402
from mimlkit.metrics import average_precision  # noqa: E402

FAST = dict(hidden=16, max_epochs=2, batch_size=8, device="cpu", random_state=0)
MODELS = {
    "abmil": lambda **k: ABMIL(att_dim=8, **k),
    "abmil-shared-plain": lambda **k: ABMIL(att_dim=8, attention="shared", gated=False, **k),
    "transmil": lambda **k: TransMIL(n_heads=2, min_steps=None, **k),
    "transmil-linear": lambda **k: TransMIL(n_heads=2, attention="linear",
                                            pos_encoding="sincos", min_steps=None, **k),
    "transmil-clsmean": lambda **k: TransMIL(n_heads=2, readout="cls+mean", min_steps=None,
                                             **k),
    "dsmil": lambda **k: DSMIL(q_dim=8, **k),
    "meanmil": lambda **k: PoolMIL(pool="mean", **k),
    "maxmil": lambda **k: PoolMIL(pool="max", **k),
}


@pytest.fixture(scope="module")
def data():
    ds = make_miml_bags(n_bags=150, n_labels=3, n_features=6, bag_size=(2, 9), random_state=0)
    return ds


def _tiny_bags(seed=0, n=20, d=5, k=3):
    rng = np.random.default_rng(seed)
    X = [rng.normal(size=(int(rng.integers(1, 7)), d)).astype(np.float32) * 50 + 100
         for _ in range(n)]
    Y = (rng.random((n, k)) > 0.5).astype(np.int8)
    Y[np.arange(n), rng.integers(0, k, n)] = 1
    return X, Y


@pytest.mark.parametrize("name", list(MODELS))
def test_fit_shapes_padding_invariance(name):
    X, Y = _tiny_bags()
    est = MODELS[name](**FAST).fit(X, Y)
    S = est.decision_function(X)
    assert S.shape == Y.shape and np.isfinite(S).all()
    # a bag scored alone (no padding) == the same bag inside a padded mixed-length batch
    for i in (0, 3, 7):
        np.testing.assert_allclose(est.decision_function([X[i]])[0], S[i], rtol=1e-4,
                                   atol=1e-5)
    inst = est.instance_scores(X)
    assert [a.shape for a in inst] == [(len(b), Y.shape[1]) for b in X]
    assert all(np.isfinite(a).all() for a in inst)
    assert est.get_params()["hidden"] == 16 and clone(est).get_params() == est.get_params()


def test_scaling_fitted_on_training_instances():
    X, Y = _tiny_bags(5)
    a = ABMIL(**FAST).fit(X, Y)
    shifted = [b * 40.0 - 200.0 for b in X]  # unscaled input: same fit after scaling
    b = ABMIL(**FAST).fit(shifted, Y)
    np.testing.assert_allclose(b.decision_function(shifted), a.decision_function(X),
                               rtol=1e-3, atol=1e-3)
    raw = ABMIL(scale=None, **FAST).fit(shifted, Y)
    assert not np.allclose(raw.decision_function(shifted), a.decision_function(X), atol=1e-3)


def test_contribution_decomposes_bag_logit():
    X, Y = _tiny_bags(1)
    ab = ABMIL(**FAST).fit(X, Y)
    S = ab.decision_function(X)
    C = np.stack([c.sum(0) for c in ab.instance_scores(X, kind="contribution")])
    np.testing.assert_allclose(C + ab.module_.classifier.bias.detach().numpy(), S, rtol=1e-4,
                               atol=1e-4)
    att = ab.instance_scores(X, kind="attention")
    np.testing.assert_allclose([a.sum(0) for a in att], 1.0, rtol=1e-5)
    ds = DSMIL(**FAST).fit(X, Y)
    C = np.stack([c.sum(0) for c in ds.instance_scores(X)])
    np.testing.assert_allclose(C + 0.5 * ds.module_.bag_bias.detach().numpy(),
                               ds.decision_function(X), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="kind"):
        ab.instance_scores(X, kind="nope")


def test_abmil_learns_and_localises(data):
    ds = data
    tr, te = np.arange(100), np.arange(100, 150)
    est = ABMIL(hidden=32, att_dim=16, max_epochs=20, lr=3e-3, batch_size=16,
                device="cpu").fit(ds.bags[tr], ds.Y[tr])
    assert average_precision(ds.Y[te], est.decision_function(ds.bags[te])) > 0.9
    lo = ds.bags.offsets[100]
    inst = np.concatenate(est.instance_scores(ds.bags[te]))
    truth = ds.instance_labels[lo:]
    aucs = [roc_auc_score(truth[:, k], inst[:, k]) for k in range(truth.shape[1])]
    assert min(aucs) > 0.9, aucs


def test_transmil_uses_tile_coordinates():
    rng = np.random.default_rng(0)
    n, m, d = 12, 6, 4
    coords = np.concatenate([rng.permutation(9)[:m] for _ in range(n)])
    coords = np.stack([coords // 3, coords % 3], 1) * 32  # tiles of 32 px on a 3 x 3 grid
    X = rng.normal(size=(n * m, d)).astype(np.float32)
    offsets = np.arange(0, n * m + 1, m)
    bags = Bags(X, offsets, {"coords": coords})
    g = grid_positions(bags)
    np.testing.assert_array_equal(g, coords // 32 - np.repeat(
        np.minimum.reduceat(coords // 32, offsets[:-1]), m, axis=0))
    Y = (rng.random((n, 2)) > 0.5).astype(np.int8)
    Y[:, 0] = 1 - Y[:, 1]
    est = TransMIL(**FAST).fit(bags, Y)
    # reorder the instances inside every bag (coordinates travel with them): same scores,
    # since positions come from the coordinates and attention is permutation-invariant
    perm = np.concatenate([o + rng.permutation(m) for o in offsets[:-1]])
    shuffled = Bags(X[perm], offsets, {"coords": coords[perm]})
    np.testing.assert_allclose(est.decision_function(shuffled), est.decision_function(bags),
                               rtol=1e-4, atol=1e-5)
    # without coordinates the instance order defines the grid, so the scores move
    plain = Bags(X, offsets)
    assert not np.allclose(est.decision_function(Bags(X[perm], offsets)),
                           est.decision_function(plain), atol=1e-6)


def test_bucketing_subsampling_and_dropout():
    rng = np.random.default_rng(0)
    sizes = rng.integers(1, 60, size=200)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    X = torch.zeros((int(sizes.sum()), 3))
    data = _BagBatches(X, offsets, None, 16, 0, train=True)
    padded = sum(data[j][0][1].numel() for j in range(len(data)))
    assert padded < 1.1 * sizes.sum()  # similar lengths share a batch: little padding
    seen = np.concatenate([data[j][1].numpy() for j in range(len(data))])
    np.testing.assert_array_equal(np.sort(seen), np.arange(200))
    first = [data[j][1].numpy().copy() for j in range(len(data))]
    data.set_epoch(1)
    assert any(not np.array_equal(a, data[j][1].numpy()) for j, a in enumerate(first))
    sub = _BagBatches(X, offsets, None, 16, 0, train=True, max_instances=5,
                      instance_dropout=0.5)
    for j in range(len(sub)):
        (x, mask, _), idx = sub[j]
        kept = mask.sum(1).numpy()
        assert (kept >= 1).all() and (kept <= np.minimum(sizes[idx.numpy()], 5)).all()


def test_single_positive_and_validation(data):
    ds = data
    Y = ds.Y[:100].astype(np.int8).copy()
    rng = np.random.default_rng(0)
    obs = np.full_like(Y, -1)
    for i in range(len(Y)):  # one observed positive per bag
        obs[i, rng.choice(np.flatnonzero(Y[i] == 1))] = 1
    est = ABMIL(hidden=16, att_dim=8, loss="opml", max_epochs=4, device="cpu",
                early_stopping_patience=2)
    est.fit(ds.bags[np.arange(100)], obs, eval_set=(ds.bags[np.arange(100, 150)],
                                                   ds.Y[100:]))
    assert "val_map" in est.history_[0]
    assert est.threshold_ == pytest.approx(0.0)
    with pytest.raises(ValueError, match="attention"):
        ABMIL(attention="both", max_epochs=1).fit(*_tiny_bags())
    with pytest.raises(ValueError, match="max_instances"):
        DSMIL(max_instances=0).fit(*_tiny_bags())


_FAST_LOSSES = ["bce", "asl", "zlpr", "opml"]


@pytest.mark.parametrize("name", ["abmil", "transmil", "dsmil", "meanmil"])
def test_core_losses(name):
    X, Y = _tiny_bags(3)
    Y = Y.copy()
    Y[::3, 0] = -1  # some unobserved entries
    for loss in _FAST_LOSSES:
        est = MODELS[name](loss=loss, **FAST).fit(X, Y)
        assert np.isfinite(est.decision_function(X)).all(), loss


@pytest.mark.slow
@pytest.mark.parametrize("loss", list_losses())
@pytest.mark.parametrize("name", ["abmil", "transmil", "dsmil", "meanmil", "maxmil"])
def test_every_loss(name, loss):
    X, Y = _tiny_bags(4)
    sp = np.full_like(Y, -1)  # single positive: one observed positive per bag
    sp[np.arange(len(Y)), Y.argmax(1)] = 1
    params = {"expected_num_pos": 1.5} if loss in ("epr", "role") else None  # required k
    est = MODELS[name](loss=loss, loss_params=params, **FAST).fit(X, sp)
    S = est.decision_function(X)
    assert S.shape == Y.shape and np.isfinite(S).all()
    assert est.n_epochs_ == 2


def test_transmil_internal_validation_part(data):
    from mimlkit.deep.spmll import mean_ap

    ds = data
    est = TransMIL(n_heads=2, validation_fraction=0.2, min_steps=None,
                   **{**FAST, "max_epochs": 3})
    est.fit(ds.bags, ds.Y)
    va = est.validation_bags_
    assert len(va) == 30 and len(np.unique(va)) == 30  # 20 % of 150, held out (seeded)
    assert all("val_map" in h for h in est.history_)
    best = max(range(3), key=lambda e: est.history_[e]["val_map"])
    S = est.decision_function(ds.bags[va])
    assert mean_ap(ds.Y[va] == 1, S) == pytest.approx(est.history_[best]["val_map"], abs=1e-5)
    np.testing.assert_array_equal(clone(est).fit(ds.bags, ds.Y).validation_bags_, va)
    with pytest.raises(ValueError, match="validation_fraction"):
        TransMIL(validation_fraction=1.5, **FAST).fit(ds.bags, ds.Y)
    # unobserved labels: no internal validation part (its labels would be incomplete)
    Y = ds.Y.astype(np.int8).copy()
    Y[0, 0] = -1
    assert TransMIL(n_heads=2, validation_fraction=0.2, **FAST).fit(
        ds.bags, Y).validation_bags_ is None


def test_thresholds_chosen_on_held_out_bags_unless_given(data):
    ds = data
    est = PoolMIL(pool="mean", **FAST).fit(ds.bags, ds.Y)
    assert est.calibration_["method"] == "out-of-fold"  # 150 bags <= 200: 3 folds
    assert est.threshold_.shape == (ds.Y.shape[1],)
    fixed = PoolMIL(pool="mean", threshold=0.25, **FAST).fit(ds.bags, ds.Y)
    assert fixed.threshold_ == 0.25 and not hasattr(fixed, "calibration_")
    own = PoolMIL(pool="mean", threshold_mode="fixed", **FAST).fit(ds.bags, ds.Y)
    assert own.threshold_ == 0.0  # BCE logits: the loss's own threshold
    # a label with no signal (shuffled) is not switched on by noise on held-out bags
    Y = ds.Y.copy()
    Y[:, 0] = np.random.default_rng(0).permutation(Y[:, 0])
    noisy = PoolMIL(pool="mean", **FAST).fit(ds.bags, Y)
    assert np.isinf(noisy.threshold_[0])


def test_transmil_readout_option():
    X, Y = _tiny_bags(2)
    est = TransMIL(n_heads=2, readout="cls+mean", **FAST).fit(X, Y)
    assert est.module_.head.in_features == 2 * 16
    with pytest.raises(ValueError, match="readout"):
        TransMIL(n_heads=2, readout="max", **FAST).fit(X, Y)


def test_transmil_min_steps_raises_the_epochs_on_few_bags():
    """``min_steps``: 20 bags in batches of 8 are 3 steps per epoch, so 10 steps need 4
    epochs (more than ``max_epochs=2``); 2 steps are already reached in 2 epochs; the
    trainer really runs ``n_epochs_`` epochs."""
    bags, Y = _tiny_bags()
    kw = dict(FAST, threshold_mode="fixed")
    m = TransMIL(n_heads=2, min_steps=10, **kw).fit(bags, Y)
    assert m.n_epochs_ == 4 and len(m.history_) == 4
    assert TransMIL(n_heads=2, min_steps=2, **kw).fit(bags, Y).n_epochs_ == 2
    assert TransMIL(n_heads=2, min_steps=None, **kw).fit(bags, Y).n_epochs_ == 2
    assert TransMIL().min_steps == 200  # the default (select_transmil_round3.md)


@pytest.mark.parametrize("linear", [True, False])
def test_transmil_attention_stays_finite_under_fp16_autocast(linear):
    """Autocast would run the attention's einsum / matmul in fp16, whose sums over thousands
    of instances overflow (65,504): the attention computes in fp32 under any autocast, so a
    5,000-instance bag with large activations gives finite outputs (CPU fp16 autocast here,
    the same code path as CUDA's)."""
    from mimlkit.deep.transmil import _SelfAttention

    torch.manual_seed(0)
    att = _SelfAttention(16, 2, linear=linear)
    x = torch.full((1, 5000, 16), 30.0) + torch.randn(1, 5000, 16)
    mask = torch.ones(1, 5000, dtype=torch.bool)
    with torch.autocast(device_type="cpu", dtype=torch.float16):
        out, cls = att(x, mask)
    assert torch.isfinite(out).all() and torch.isfinite(cls).all()
