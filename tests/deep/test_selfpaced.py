"""Self-paced deep MIML (seed 002): pieces, switches, resume, outputs. Tiny data/backbone."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklearn.base import clone  # noqa: E402

from mimlkit.datasets import make_miml_images  # noqa: E402
from mimlkit.deep.selfpaced import (  # noqa: E402
    TABLE_III,
    AlphaStore,
    SelfPacedAdam,
    SelfPacedMIML,
    SelfPacedTask,
    dispatch_targets,
    group_rows,
    init_alpha,
    label_aware_coefficients,
    sampler_weights,
    self_paced_bce,
    table3_params,
)
from mimlkit.deep.trainer import EpochSampler  # noqa: E402

TINY = dict(tile_size=8, backbone="tiny", image_size=16, batch_size=8, max_epochs=1,
            device="cpu")


@pytest.fixture(scope="module")
def data():
    ds = make_miml_images(n_images=12, n_labels=3, image_size=32, tile_size=8,
                          positive_tiles=(1, 2), random_state=0, features=None)
    return ds


# ----------------------------------------------------------------------------- pure pieces
def test_table3_mapping():
    assert len(TABLE_III) == 21
    assert table3_params(1) == {"granularity": "none", "alpha_init": "ones",
                                "sampling": "uniform", "pseudo_label": "bag",
                                "coefficient": "none"}
    assert table3_params(21) == {"granularity": "label", "alpha_init": "sample",
                                 "sampling": "weighted", "pseudo_label": "bernoulli",
                                 "coefficient": "label_aware"}
    assert table3_params(5) == {"granularity": "instance", "alpha_init": "data",
                                "sampling": "weighted", "pseudo_label": "bag",
                                "coefficient": "label_aware"}
    assert table3_params(8)["pseudo_label"] == "bernoulli"
    assert table3_params(8)["sampling"] == "uniform"
    assert table3_params(14)["alpha_init"] == "sample"
    with pytest.raises(ValueError):
        table3_params(22)
    # the default estimator is the full method (row 21)
    est = SelfPacedMIML()
    assert all(getattr(est, k) == v for k, v in TABLE_III[21].items())


def test_alpha_init_formulas():
    T = np.array([[1, 0, 0], [1, 1, 0], [1, 1, 0], [0, 1, 1], [0, 0, 0]])
    # ones
    np.testing.assert_array_equal(init_alpha(T, "ones", "label"), T)
    np.testing.assert_array_equal(init_alpha(T, "ones", "instance"), np.ones(5))
    # Eq. 11a (code magnitudes): f_k over tiles, softmax masked to each row's positives
    f = np.array([3, 3, 1]) / 7
    a = init_alpha(T, "data", "label")
    e = np.exp(f)
    np.testing.assert_allclose(a[0], [1, 0, 0])
    np.testing.assert_allclose(a[1], [e[0] / (e[0] + e[1]), e[1] / (e[0] + e[1]), 0])
    np.testing.assert_allclose(a[3], [0, e[1] / (e[1] + e[2]), e[2] / (e[1] + e[2])])
    np.testing.assert_array_equal(a[4], 0)
    # Eq. 11b: per-image frequencies = t / m
    b = init_alpha(T, "sample", "label")
    np.testing.assert_allclose(b, [[1, 0, 0], [.5, .5, 0], [.5, .5, 0], [0, .5, .5], [0, 0, 0]])
    # Eq. 12: softmax over label-combination groups of n_q / N
    g = init_alpha(T, "data", "instance")
    counts = {(1, 0, 0): 1, (1, 1, 0): 2, (0, 1, 1): 1, (0, 0, 0): 1}
    z = np.exp(np.array(list(counts.values())) / 5)
    sm = dict(zip(counts, z / z.sum()))
    np.testing.assert_allclose(g, [sm[tuple(r)] for r in T])
    np.testing.assert_allclose(init_alpha(T, "instance", "instance"), g)
    np.testing.assert_allclose(init_alpha(T, "instance", "label"), T * g[:, None])
    # literal paper softmax over all K
    ds = init_alpha(T, "data_softmax", "label")
    np.testing.assert_allclose(ds[1], T[1] * e / e.sum())
    with pytest.raises(ValueError):
        init_alpha(T, "sample", "instance")
    with pytest.raises(ValueError):
        init_alpha(T, "nope", "label")


def test_label_aware_coefficient_values():
    m = np.array([1, 2, 3, 4, 5, 6])
    lam = label_aware_coefficients(m)  # C = data max = 6
    np.testing.assert_allclose(lam, np.log(m) / np.log(6))
    np.testing.assert_allclose(lam[:3], [0.0, 0.3869, 0.6131], atol=1e-4)
    np.testing.assert_allclose(label_aware_coefficients(np.array([1, 2, 3]), C=4),
                               np.log([1, 2, 3]) / np.log(4))
    np.testing.assert_array_equal(label_aware_coefficients(np.array([0, 1, 2])),
                                  [0, 0, 1])  # m = 0 guarded
    np.testing.assert_array_equal(label_aware_coefficients(np.array([1, 1])), [0, 0])  # C = 1
    gid, mg = group_rows(np.array([[1, 1, 0], [0, 0, 1], [1, 1, 0]]))
    assert gid[0] == gid[2] != gid[1]
    assert mg[gid[0]] == 2 and mg[gid[1]] == 1
    # the store's per-row λ follows the rows' label counts
    T = np.array([[1, 0, 0], [1, 1, 0], [1, 1, 1], [1, 1, 1]])
    st = AlphaStore(T, "label", "ones", "label_aware")
    np.testing.assert_allclose(st.lam.numpy(), np.log([1, 2, 3, 3]) / math.log(3), rtol=1e-6)
    assert float(st.C_used) == 3
    st2 = AlphaStore(T, "label", "ones", "label_aware", C=6)
    np.testing.assert_allclose(st2.lam.numpy(), np.log([1, 2, 3, 3]) / math.log(6), rtol=1e-6)
    st3 = AlphaStore(T, "label", "ones", "none")
    np.testing.assert_array_equal(st3.lam.numpy(), 1)


def test_dispatcher_soft_and_bernoulli():
    T = torch.tensor([[1., 1., 0.], [1., 0., 0.], [1., 1., 0.], [0., 0., 0.]])
    A = torch.tensor([[0.8, 0.2, 5.0], [0.3, 0.9, 0.9], [-0.1, -0.5, 1.0], [1., 1., 1.]])
    soft = dispatch_targets(A, T, "soft")
    np.testing.assert_allclose(soft.numpy(), [[1, 0.25, 0], [1, 0, 0], [0, 0, 0], [0, 0, 0]],
                               atol=1e-6)
    np.testing.assert_array_equal(dispatch_targets(A, T, "bag").numpy(), T.numpy())
    g = torch.Generator().manual_seed(0)
    draws = torch.stack([dispatch_targets(A, T, "bernoulli", generator=g) for _ in range(4000)])
    assert set(np.unique(draws.numpy())) <= {0.0, 1.0}
    mean = draws.mean(0).numpy()
    np.testing.assert_allclose(mean, soft.numpy(), atol=0.03)
    assert mean[0, 0] == 1 and mean[0, 2] == 0 and mean[2].sum() == 0
    # instance granularity: ξ̄ = t while α > 0, zero once α <= 0
    inst = dispatch_targets(torch.tensor([0.4, 0.1, -0.2, 1.0]), T, "soft")
    np.testing.assert_array_equal(inst.numpy(), [[1, 1, 0], [1, 0, 0], [0, 0, 0], [0, 0, 0]])


def test_self_paced_loss_and_alpha_gradient():
    logits = torch.tensor([[2.0, -1.0, 0.5]])
    z = torch.tensor([[1.0, 0.0, 1.0]])
    a = torch.tensor([[0.5, 0.7, -0.3]], requires_grad=True)
    loss = self_paced_bce(logits, z, a)
    p = torch.sigmoid(logits)
    expect = -(0.5 * torch.log(p[0, 0]) + torch.log(1 - p[0, 1]))  # α<=0 cell drops out
    assert torch.allclose(loss, expect)
    loss.backward()
    np.testing.assert_allclose(a.grad.numpy(), [[-math.log(p[0, 0]), 0, 0]], rtol=1e-5)
    ai = torch.tensor([2.0])
    plain = self_paced_bce(logits, z, None)
    assert torch.allclose(self_paced_bce(logits, z, ai), 2 * plain)
    assert torch.allclose(self_paced_bce(logits, z, None, "mean"), plain / 3)


def test_sampler_draws_proportional_to_weights():
    T = torch.tensor([[1., 0.], [1., 1.], [0., 1.], [1., 0.], [0., 0.]])
    A = torch.tensor([[0.1, 0.0], [0.2, 0.4], [0.0, 0.3], [-1.0, 0.0], [5.0, 5.0]])
    w = sampler_weights(A, T).numpy()
    np.testing.assert_allclose(w, [0.1, 0.4, 0.3, 0.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(sampler_weights(torch.tensor([0.5, -1.0, 0.2, 0, 1]), T).numpy(),
                               [0.5, 0, 0.2, 0, 1])
    net = torch.nn.Linear(1, 2)
    store = AlphaStore(T.numpy(), "label", "ones", "none")
    with torch.no_grad():
        store.alpha.copy_(A)
    task = SelfPacedTask(net, store, T.numpy(), sampling="weighted")

    class _Tr:
        sampler = EpochSampler(5, seed=3)

    task.on_epoch_start(0, _Tr)
    counts = np.zeros(5)
    for ep in range(4000):  # 20,000 draws: σ(freq) < 0.004
        counts += np.bincount(_Tr.sampler.global_indices(ep), minlength=5)
    freq = counts / counts.sum()
    np.testing.assert_allclose(freq, w / w.sum(), atol=0.012)
    assert counts[3] == 0 and counts[4] == 0
    assert len(_Tr.sampler.global_indices(0)) == 5  # N_inst draws with replacement
    task.sampling = "uniform"
    task.on_epoch_start(1, _Tr)
    assert sorted(_Tr.sampler.global_indices(1).tolist()) == list(range(5))


def test_row_wise_adam_coefficients():
    T = np.array([[1, 0], [1, 1], [1, 1], [0, 1]])
    store = AlphaStore(T, "label", "ones", "label_aware")  # λ = [0, 1, 1, 0]
    opt = SelfPacedAdam([{"params": [store.alpha], "row_wise": True, "lr": 0.1}],
                        lr=0.1, row_info=store.row_info)
    before = store.alpha.detach().clone()
    store.alpha.grad = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 0.0], [0.0, 3.0]])
    opt.step()
    d = (before - store.alpha.detach()).numpy()
    np.testing.assert_allclose(d[0], 0)  # single-label group: λ = 0
    np.testing.assert_allclose(d[1], [0.1, 0.0], atol=1e-6)  # Adam first step = lr·λ·sign
    np.testing.assert_allclose(d[2], 0)  # same group, zero gradient, zero moments
    np.testing.assert_allclose(d[3], 0)
    # fixed C = 4 halves λ for m = 2 (ln 2 / ln 4)
    store.C = 4
    store.regroup(from_labels=T)
    opt2 = SelfPacedAdam([{"params": [store.alpha], "row_wise": True, "lr": 0.1}],
                         lr=0.1, row_info=store.row_info)
    b2 = store.alpha.detach().clone()
    store.alpha.grad = torch.tensor([[0.0, 0.0], [5.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    opt2.step()
    np.testing.assert_allclose((b2 - store.alpha.detach()).numpy()[1], [0.05, 0], atol=1e-6)


# ----------------------------------------------------------------------------- estimator
def test_fit_predict_shapes_and_outputs(data, tmp_path):
    m = SelfPacedMIML(**TINY)
    m.fit(data.images, data.Y, eval_set=(data.images[:4], data.Y[:4]))
    S = m.decision_function(data.images)
    assert S.shape == (12, 3) and np.all((S >= 0) & (S <= 1))
    P = m.predict(data.images)
    assert P.shape == (12, 3) and set(np.unique(P)) <= {0, 1}
    np.testing.assert_array_equal(P, (S > 0.5).astype(np.int8))
    inst, coords = m.instance_scores(data.images[:3], return_coords=True)
    assert len(inst) == 3 and all(s.shape == (16, 3) for s in inst)
    np.testing.assert_allclose(np.stack([s.max(0) for s in inst]), S[:3])
    assert all(c.shape == (16, 2) for c in coords)
    np.testing.assert_array_equal(m.tile_coords(data.images[:1])[0], coords[0])
    assert m.alpha_.shape == (12 * 16, 3)
    h = m.history_[0]
    for k in ("train_loss", "alpha_mean", "val_overall", "val_map", "val_f1_macro"):
        assert k in h and np.isfinite(h[k])
    paths = m.save_heatmaps(data.images[:2], tmp_path / "hm", label_names=["a", "b", "c"])
    assert len(paths) == 2
    for p in paths:
        assert p.exists() and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # sklearn contract
    c = clone(m)
    assert c.get_params() == m.get_params() and not hasattr(c, "module_")
    m2 = pickle.loads(pickle.dumps(m))
    np.testing.assert_allclose(m2.decision_function(data.images[:2]), S[:2])


@pytest.mark.parametrize("row", [1, 3, 4, 9, 13, 16, 21])
def test_table3_rows_run(data, row):
    m = SelfPacedMIML(**TINY, **table3_params(row))
    m.fit(data.images[:6], data.Y[:6])
    assert m.decision_function(data.images[:2]).shape == (2, 3)
    assert np.isfinite(m.history_[0]["train_loss"])


@pytest.mark.parametrize("params", [
    {"pseudo_label": "soft"},
    {"granularity": "instance", "alpha_init": "ones", "coefficient": "none"},
    {"alpha_init": "instance", "n_classes_for_coefficient": 4},
    {"alpha_init": "data_softmax", "alpha_optimizer": "sgd", "alpha_lr": 0.5},
    {"reduction": "mean", "reset_optimizer": False, "hflip": False, "stride": 4},
])
def test_other_switches_run(data, params):
    m = SelfPacedMIML(**TINY, **params)
    m.fit(data.images[:6], data.Y[:6])
    assert m.decision_function(data.images[:2]).shape == (2, 3)


@pytest.mark.parametrize("bad", [{"granularity": "bag"}, {"sampling": "yes"},
                                 {"pseudo_label": "real"}, {"coefficient": "adaptive"},
                                 {"granularity": "instance", "alpha_init": "sample"},
                                 {"n_classes_for_coefficient": 1}, {"alpha_init": "zeros"}])
def test_bad_params_raise(data, bad):
    with pytest.raises(ValueError):
        SelfPacedMIML(**{**TINY, **bad}).fit(data.images[:4], data.Y[:4])


def test_alpha_learns_and_sgd_follows_loss(data):
    m = SelfPacedMIML(**TINY, alpha_optimizer="sgd", alpha_lr=0.05, coefficient="none",
                      alpha_init="ones", pseudo_label="bag", sampling="uniform")
    m.fit(data.images, data.Y)
    T = data.Y[np.repeat(np.arange(12), 16)] > 0
    assert np.all(m.alpha_[~T] == 0)  # negatives never change
    assert np.all(m.alpha_[T] < 1)  # every used positive decreased (gradient -log p > 0)


def test_resume_after_epoch_one_matches_uninterrupted(data, tmp_path):
    kw = dict(TINY, max_epochs=2, random_state=3)
    full = SelfPacedMIML(**kw, checkpoint_dir=str(tmp_path / "a")).fit(data.images, data.Y)
    SelfPacedMIML(**{**kw, "max_epochs": 1}, checkpoint_dir=str(tmp_path / "b")).fit(
        data.images, data.Y)
    resumed = SelfPacedMIML(**kw, checkpoint_dir=str(tmp_path / "b"), resume=True).fit(
        data.images, data.Y)
    assert [h["epoch"] for h in resumed.history_] == [0, 1]
    sa, sb = full.module_.state_dict(), resumed.module_.state_dict()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    np.testing.assert_array_equal(full.alpha_, resumed.alpha_)
    np.testing.assert_array_equal(full.pseudo_labels_, resumed.pseudo_labels_)
    assert full.history_[1]["train_loss"] == resumed.history_[1]["train_loss"]


def test_persistence_roundtrip(data, tmp_path):
    from mimlkit import persistence

    m = SelfPacedMIML(**TINY).fit(data.images[:6], data.Y[:6])
    persistence.save(m, tmp_path / "model")
    m2 = persistence.load(tmp_path / "model")
    np.testing.assert_array_equal(m2.decision_function(data.images[:3]),
                                  m.decision_function(data.images[:3]))


def test_alpha_machinery_is_identity_when_switched_off(data):
    # α = t, α frozen, uniform sampling, bag targets, no coefficient == plain BCE (row 1):
    # the α store, the row-wise optimiser and the loss must not perturb the network path.
    base = SelfPacedMIML(**TINY, **table3_params(1)).fit(data.images, data.Y)
    ident = SelfPacedMIML(**TINY, granularity="label", alpha_init="ones", alpha_lr=0.0,
                          sampling="uniform", pseudo_label="bag", coefficient="none")
    ident.fit(data.images, data.Y)
    np.testing.assert_allclose(ident.decision_function(data.images),
                               base.decision_function(data.images), rtol=0, atol=1e-6)
    assert np.all(ident.alpha_ == (data.Y[np.repeat(np.arange(12), 16)] > 0))


def test_select_threshold_and_validation_threshold(data):
    from mimlkit.deep.selfpaced import select_threshold

    Y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    S = np.array([[0.9, 0.2], [0.3, 0.8], [0.7, 0.75], [0.1, 0.25]])
    tau = select_threshold(Y, S)
    assert 0.3 <= tau < 0.7  # separates both labels perfectly; tie-break toward 0.5
    assert tau == 0.5
    assert select_threshold(Y, S, grid=[0.1, 0.95]) == 0.1  # 0.95 predicts nothing
    kw = dict(TINY, threshold="validation")
    m = SelfPacedMIML(**kw).fit(data.images[:8], data.Y[:8],
                                eval_set=(data.images[8:], data.Y[8:]))
    assert 0.05 <= m.threshold_ <= 0.95
    assert "val_overall" in m.history_[0]
    S = m.decision_function(data.images[:4])
    np.testing.assert_array_equal(m.predict(data.images[:4]), (S > m.threshold_).astype(int))
    with pytest.raises(ValueError, match="eval_set"):
        SelfPacedMIML(**kw).fit(data.images[:8], data.Y[:8])
    with pytest.raises(ValueError, match="threshold"):
        SelfPacedMIML(**TINY, threshold="best").fit(data.images[:8], data.Y[:8])
