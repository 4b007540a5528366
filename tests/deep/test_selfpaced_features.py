"""Self-paced MIML on precomputed instance features (backbone="mlp") and the α update rules
(issue #20). Tiny data, few epochs."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklearn.base import clone  # noqa: E402
from sklearn.metrics import average_precision_score  # noqa: E402

from mimlkit.datasets import make_miml_bags  # noqa: E402
from mimlkit.deep.selfpaced import (  # noqa: E402
    ALPHA_OPTIMIZERS,
    AlphaStore,
    SelfPacedAdam,
    SelfPacedMIML,
    alpha_update,
    table3_params,
)

FEAT = dict(backbone="mlp", hidden=16, batch_size=32, max_epochs=3, device="cpu")


@pytest.fixture(scope="module")
def ds():
    return make_miml_bags(n_bags=60, n_labels=3, n_features=8, bag_size=(3, 6),
                          separation=4.0, noise=0.5, random_state=0)


@pytest.fixture(scope="module")
def fitted(ds):
    return SelfPacedMIML(**FEAT).fit(ds.bags, ds.Y)


# ----------------------------------------------------------------------------- feature path
def test_feature_fit_shapes_and_instance_scores(ds, fitted):
    m, bags = fitted, ds.bags
    assert m.input_kind == "bags" and SelfPacedMIML().input_kind == "images"
    assert m.n_features_in_ == 8 and m.n_train_tiles_ == bags.n_instances
    assert m.alpha_.shape == (bags.n_instances, 3)
    assert m.pseudo_labels_.shape == (bags.n_instances, 3)
    S = m.decision_function(bags)
    assert S.shape == (60, 3) and np.all((S >= 0) & (S <= 1))
    np.testing.assert_array_equal(m.predict(bags), (S > 0.5).astype(np.int8))
    inst = m.instance_scores(bags[:5])
    assert [s.shape for s in inst] == [(int(n), 3) for n in bags.sizes[:5]]
    np.testing.assert_allclose(np.stack([s.max(0) for s in inst]), S[:5])
    # a list of 2-D arrays works too; images-only helpers refuse clearly
    np.testing.assert_allclose(m.decision_function(bags.to_list()[:3]), S[:3])
    with pytest.raises(ValueError):
        m.instance_scores(bags[:2], return_coords=True)
    with pytest.raises(ValueError):
        m.tile_coords(bags[:2])
    with pytest.raises(ValueError):
        m.decision_function([np.zeros((2, 5), np.float32)])  # wrong width
    assert np.isfinite(m.history_[-1]["train_loss"]) and "alpha_mean" in m.history_[-1]


def test_feature_deterministic_and_sklearn_contract(ds, fitted):
    again = SelfPacedMIML(**FEAT).fit(ds.bags, ds.Y)
    np.testing.assert_array_equal(again.decision_function(ds.bags),
                                  fitted.decision_function(ds.bags))
    np.testing.assert_array_equal(again.alpha_, fitted.alpha_)
    other = SelfPacedMIML(**FEAT, random_state=1).fit(ds.bags, ds.Y)
    assert not np.array_equal(other.decision_function(ds.bags),
                              fitted.decision_function(ds.bags))
    c = clone(fitted)
    assert c.get_params() == fitted.get_params() and not hasattr(c, "module_")
    assert c.get_params()["hidden"] == 16 and c.input_kind == "bags"
    m2 = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_allclose(m2.decision_function(ds.bags[:4]),
                               fitted.decision_function(ds.bags[:4]))


def test_feature_persistence_roundtrip(ds, fitted, tmp_path):
    from mimlkit import persistence

    persistence.save(fitted, tmp_path / "model")
    m2 = persistence.load(tmp_path / "model")
    np.testing.assert_array_equal(m2.decision_function(ds.bags[:4]),
                                  fitted.decision_function(ds.bags[:4]))


def test_feature_bag_ap_above_label_prior(ds):
    m = SelfPacedMIML(**{**FEAT, "max_epochs": 25, "lr": 1e-2}).fit(ds.bags, ds.Y)
    ap = average_precision_score(ds.Y, m.decision_function(ds.bags), average="macro")
    assert ap > ds.Y.mean() + 0.2


@pytest.mark.parametrize("row", [1, 5, 13])
def test_feature_table3_rows_run(ds, row):
    m = SelfPacedMIML(**{**FEAT, "max_epochs": 1, "hidden": ()}, **table3_params(row))
    m.fit(ds.bags[:20], ds.Y[:20], eval_set=(ds.bags[20:30], ds.Y[20:30]))
    assert m.decision_function(ds.bags[:2]).shape == (2, 3)
    assert "val_map" in m.history_[0]


@pytest.mark.parametrize("bad", [{"hidden": 0}, {"hidden": (8, "x")},
                                 {"alpha_optimizer": "rmsprop"}])
def test_feature_bad_params_raise(ds, bad):
    with pytest.raises(ValueError):
        SelfPacedMIML(**{**FEAT, **bad}).fit(ds.bags[:10], ds.Y[:10])


# ----------------------------------------------------------------------------- α update
@pytest.mark.parametrize("opt", ALPHA_OPTIMIZERS)
def test_alpha_optimizers_run_and_move_alpha(ds, opt):
    kw = {**FEAT, "max_epochs": 2, "alpha_optimizer": opt, "coefficient": "none",
          "alpha_init": "ones", "pseudo_label": "bag", "sampling": "uniform",
          "alpha_lr": 0.05 if opt == "sgd" else 0.01}
    m = SelfPacedMIML(**kw).fit(ds.bags, ds.Y)
    T = ds.Y[ds.bags.bag_index] > 0
    assert np.all(m.alpha_[~T] == 0)  # negatives never change
    assert np.all(m.alpha_[T] < 1)  # every used positive decreased


def test_alpha_update_rules_under_loss_scaling():
    g = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 0.0]])
    lr = torch.tensor([0.1, 0.1, 0.1])
    step = {mode: [alpha_update(c * g, lr, mode).numpy() for c in (1.0, 10.0)]
            for mode in ALPHA_OPTIMIZERS}
    # Adam (the authors' rule): first step = lr·sign(g), blind to the loss and its scale
    np.testing.assert_allclose(step["adam"][0], [[0.1, 0], [0.1, 0], [0, 0]], atol=1e-6)
    np.testing.assert_allclose(step["adam"][1], step["adam"][0], atol=1e-6)
    # SGD: step = lr·g, follows the loss and its scale
    np.testing.assert_allclose(step["sgd"][0], 0.1 * g.numpy())
    np.testing.assert_allclose(step["sgd"][1], 10 * step["sgd"][0], rtol=1e-6)
    # proportional: lr·g / mean|g| over used cells -> scale-free, loss-ordered, mean step lr
    np.testing.assert_allclose(step["proportional"][0], [[0.1 / 1.5, 0], [0.2 / 1.5, 0],
                                                         [0, 0]], rtol=1e-6)
    np.testing.assert_allclose(step["proportional"][1], step["proportional"][0], rtol=1e-6)
    # inactive rows do not move
    act = torch.tensor([True, False, True])
    np.testing.assert_array_equal(alpha_update(g, lr, "sgd", active=act).numpy()[1], 0)
    with pytest.raises(ValueError):
        alpha_update(g, lr, "rmsprop")


def test_selfpaced_adam_uses_alpha_optimizer_key():
    T = np.array([[1, 0], [1, 1], [1, 1], [0, 1]])
    grad = torch.tensor([[0.0, 0.0], [2.0, 4.0], [0.0, 0.0], [0.0, 0.0]])
    moved = {}
    for mode in ALPHA_OPTIMIZERS:
        store = AlphaStore(T, "label", "ones", "label_aware")  # λ = [0, 1, 1, 0]
        opt = SelfPacedAdam([{"params": [store.alpha], "row_wise": True, "lr": 0.1,
                              "alpha_optimizer": mode}], lr=0.1, row_info=store.row_info)
        before = store.alpha.detach().clone()
        store.alpha.grad = grad.clone()
        opt.step()
        moved[mode] = (before - store.alpha.detach()).numpy()[1]
    np.testing.assert_allclose(moved["adam"], [0.1, 0.1], atol=1e-6)
    np.testing.assert_allclose(moved["sgd"], [0.2, 0.4], atol=1e-6)
    np.testing.assert_allclose(moved["proportional"], [0.2 / 3, 0.4 / 3], atol=1e-6)


# ----------------------------------------------------------------------------- Fig. 4b samplers
def test_ohem_weights_rule():
    from mimlkit.deep.selfpaced import ohem_weights

    assert ohem_weights(np.full(4, np.nan)) is None  # nothing recorded: a plain pass
    w = ohem_weights(np.array([2.0, np.nan, 0.0, 4.0]))
    np.testing.assert_allclose(w, [2.0, 2.0, 2e-3, 4.0])  # unvisited = mean; floor


def test_random_and_ohem_samplers_draw_as_documented():
    from mimlkit.deep.distributed import EpochSampler
    from mimlkit.deep.selfpaced import SelfPacedTask

    T = np.array([[1, 0], [1, 1], [0, 1], [1, 0]], dtype=np.float32)
    net = torch.nn.Linear(3, 2)

    class _Tr:
        sampler = EpochSampler(4, seed=1)
        dist = None

    task = SelfPacedTask(net, None, T, sampling="random")
    task.on_epoch_start(0, _Tr)
    draws = np.concatenate([_Tr.sampler.global_indices(e) for e in range(2000)])
    assert len(_Tr.sampler.global_indices(0)) == 4
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / draws.size, 0.25, atol=0.02)
    # some epoch repeats a tile (with replacement), unlike the uniform pass
    assert any(len(set(_Tr.sampler.global_indices(e).tolist())) < 4 for e in range(50))

    task = SelfPacedTask(net, None, T, sampling="ohem")
    task.on_epoch_start(0, _Tr)  # no loss recorded yet: a shuffled pass
    assert sorted(_Tr.sampler.global_indices(0).tolist()) == [0, 1, 2, 3]
    x = torch.randn(4, 3)
    task.training_step((x, torch.arange(4)), 0)
    rec = task.last_loss.numpy().copy()
    with torch.no_grad():
        ref = torch.nn.functional.binary_cross_entropy_with_logits(
            net(x), torch.from_numpy(T), reduction="none").sum(1).numpy()
    np.testing.assert_allclose(rec, ref, rtol=1e-5)
    task.on_epoch_start(1, _Tr)
    draws = np.concatenate([_Tr.sampler.global_indices(e) for e in range(1, 3000)])
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / draws.size, ref / ref.sum(),
                               atol=0.02)


@pytest.mark.parametrize("sampling", ["random", "ohem"])
def test_fig4b_samplers_fit_end_to_end(ds, sampling):
    m = SelfPacedMIML(**{**FEAT, "max_epochs": 2}, sampling=sampling).fit(ds.bags, ds.Y)
    assert m.n_epochs_ == 2 and m.decision_function(ds.bags).shape == (60, 3)
    with pytest.raises(ValueError, match="sampling"):
        SelfPacedMIML(**FEAT, sampling="hard").fit(ds.bags, ds.Y)
