"""MultiLabelHead / MultiLabelCNN: learning on synthetic data, estimator contract, persistence."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from sklearn.base import clone  # noqa: E402
from sklearn.model_selection import GridSearchCV, KFold  # noqa: E402

from mimlkit.deep.heads import MultiLabelCNN, MultiLabelHead  # noqa: E402
from mimlkit.deep.spmll import make_single_positive, mean_ap  # noqa: E402

torch.set_num_threads(1)


def _miml(n=160, c=4, d=8, seed=0):
    """Bags of 2-5 instances; label k present iff some instance comes from concept k."""
    g = np.random.default_rng(seed)
    centers = g.normal(scale=2.5, size=(c, d))
    bags, Y = [], np.zeros((n, c), dtype=np.int8)
    for i in range(n):
        k = g.integers(2, 6)
        labs = g.choice(c, size=g.integers(1, 3), replace=False)
        Y[i, labs] = 1
        inst = g.normal(size=(k, d))
        inst[: len(labs)] += centers[labs]
        bags.append(inst.astype(np.float32))
    return bags, Y


@pytest.fixture(scope="module")
def data():
    bags, Y = _miml(220)
    return bags[:160], Y[:160], bags[160:], Y[160:]


def _chance(Y):
    return float(Y.mean(0).mean())  # mAP of random scores ≈ label frequency


@pytest.mark.parametrize("loss,params,sp,extra", [
    ("bce", {}, False, {}),
    ("opml", {"a": 0.3, "b": 0.7}, False, {}),
    ("an", {}, True, {}),
    ("opml", {}, True, {}),
    ("opml_soft", {"gamma": 1.0}, True, {"label_correction": {"scale": 0.1}}),
    ("role", {"expected_num_pos": 1.5}, True, {}),
    ("apl", {"warmup_epochs": 1}, True, {}),
    ("ll_cp", {"delta_rel": 0.01}, True, {}),
])
def test_head_beats_chance(data, loss, params, sp, extra):
    X, Y, Xt, Yt = data
    Ytr = make_single_positive(Y, 0) if sp else Y
    h = MultiLabelHead(loss=loss, loss_params=params, max_epochs=15, lr=2e-2, batch_size=32,
                       pooling="max", random_state=0, **extra).fit(X, Ytr)
    S = h.decision_function(Xt)
    assert S.shape == Yt.shape and np.isfinite(S).all()
    assert mean_ap(Yt, S) > _chance(Yt) + 0.25, loss
    P = h.predict(Xt)
    assert P.shape == Yt.shape
    if h.t_criterion_:  # "auto": on when it adds no error on held-out training scores
        assert (P.sum(1) >= 1).all()
    if loss == "opml_soft":
        assert h.n_corrected_ > 0


def test_mlp_head_eval_set_early_stopping(data):
    X, Y, Xt, Yt = data
    h = MultiLabelHead(hidden=(16,), dropout=0.1, pooling="meanmax", max_epochs=40,
                       early_stopping_patience=3, lr=3e-2).fit(X, Y, eval_set=(Xt, Yt))
    assert h.n_epochs_ < 40 and "val_map" in h.history_[0]
    best = max(e["val_map"] for e in h.history_)
    assert mean_ap(Yt, h.decision_function(Xt)) == pytest.approx(best, abs=1e-6)


def test_threshold_from_loss_and_contract(data):
    X, Y, Xt, Yt = data
    h = MultiLabelHead(loss="opml", loss_params={"alpha": 0.5, "beta": 2.0}, max_epochs=2,
                       threshold_mode="fixed")  # the loss's own threshold (no calibration)
    c = clone(h)
    assert c.get_params()["loss_params"] == {"alpha": 0.5, "beta": 2.0}
    h.fit(X, Y)
    assert h.threshold_ == pytest.approx(0.5 * (np.log(2.0) - np.log(0.5)))
    h2 = pickle.loads(pickle.dumps(h))
    assert np.array_equal(h2.decision_function(Xt), h.decision_function(Xt))
    # same seed -> same model; the caller's global RNG streams are left untouched
    np.random.seed(5)
    before = np.random.random()
    np.random.seed(5)
    h3 = clone(h).fit(X, Y)
    assert np.random.random() == before
    assert np.array_equal(h3.decision_function(Xt), h.decision_function(Xt))
    # rebuild from params + plain fitted attributes (the persistence protocol)
    m = h._build_torch_module("module_")
    m.load_state_dict(h.module_.state_dict())
    with pytest.raises(ValueError):
        MultiLabelHead().fit(X, np.full((len(X), 4), 2))
    with pytest.raises(ValueError):
        h.decision_function([np.zeros((2, 3), dtype=np.float32)])


def test_persistence_roundtrip(data, tmp_path):
    persistence = pytest.importorskip("mimlkit.persistence")
    X, Y, Xt, _ = data
    h = MultiLabelHead(hidden=8, max_epochs=2).fit(X, Y)
    persistence.save(h, tmp_path / "m")
    h2 = persistence.load(tmp_path / "m")
    assert np.allclose(h2.decision_function(Xt), h.decision_function(Xt), atol=1e-6)


def test_gridsearch(data):
    X, Y, _, _ = data
    gs = GridSearchCV(MultiLabelHead(max_epochs=3), param_grid={"loss": ["bce", "zlpr"]},
                      cv=KFold(n_splits=2))
    gs.fit(X, Y)
    assert gs.best_params_["loss"] in ("bce", "zlpr")


def _images(n=32, size=24, seed=0):
    """Label k (k < 3) present iff a bright square in colour channel k."""
    g = np.random.default_rng(seed)
    imgs, Y = [], np.zeros((n, 3), dtype=np.int8)
    for i in range(n):
        im = (g.random((size, size, 3)) * 60).astype(np.uint8)
        labs = g.choice(3, size=g.integers(1, 3), replace=False)
        for k in labs:
            r, c0 = g.integers(0, size - 8, 2)
            im[r:r + 8, c0:c0 + 8, k] = 250
        Y[i, labs] = 1
        imgs.append(im)
    return imgs, Y


def test_cnn_tiny_backbone_learns():
    pytest.importorskip("mimlkit.features.backbones")
    imgs, Y = _images(48)
    Ytr = Y[:32]
    cnn = MultiLabelCNN(backbone="tiny", image_size=24, loss="opml", max_epochs=12, lr=1e-2,
                        batch_size=8, device="cpu", random_state=0)
    cnn.fit(imgs[:32], Ytr)
    S = cnn.decision_function(imgs[32:])
    assert S.shape == (16, 3) and np.isfinite(S).all()
    assert mean_ap(Y[32:], S) > _chance(Y[32:]) + 0.15
    m = cnn._build_torch_module("module_")
    m.load_state_dict(cnn.module_.state_dict())
    # single-positive labels and a per-sample-state loss also run end to end
    sp = MultiLabelCNN(backbone="tiny", image_size=24, loss="role",
                       loss_params={"expected_num_pos": 1.5}, max_epochs=1, batch_size=8,
                       device="cpu").fit(imgs[:16], make_single_positive(Y[:16], 0))
    assert sp.decision_function(imgs[:4]).shape == (4, 3)


def test_head_resume_with_curriculum_state(data, tmp_path):
    """Checkpoint after 2 epochs, resume to 4: equals 4 uninterrupted epochs (the corrected
    label matrix and the loss's AP state travel in the checkpoint)."""
    X, Y, Xt, _ = data
    Ysp = make_single_positive(Y, 0)
    kw = dict(loss="opml_soft", loss_params={"gamma": 1.0}, batch_size=32, lr=2e-2,
              label_correction={"scale": 0.2}, random_state=3)
    full = MultiLabelHead(max_epochs=4, **kw).fit(X, Ysp)
    MultiLabelHead(max_epochs=2, checkpoint_dir=str(tmp_path), **kw).fit(X, Ysp)
    res = MultiLabelHead(max_epochs=4, checkpoint_dir=str(tmp_path), resume=True, **kw)
    res.fit(X, Ysp)
    assert full.n_corrected_ > 0 and res.n_corrected_ == full.n_corrected_
    assert np.array_equal(res.decision_function(Xt), full.decision_function(Xt))
    assert (tmp_path / "history.json").exists()


def test_l1_penalty_shrinks_weights_and_rejects_negative(data):
    """``l1_penalty`` (paper 003's BCE + L1R reading) drives head weights towards zero; the
    biases are not penalised; a negative value is a clear error."""
    Xtr, Ytr, _, _ = data
    kw = dict(loss="an", max_epochs=15, lr=1e-2, random_state=0, threshold_mode="fixed")
    plain = MultiLabelHead(**kw).fit(Xtr, Ytr)
    l1 = MultiLabelHead(l1_penalty=0.05, **kw).fit(Xtr, Ytr)
    w0 = plain.module_[-1].weight.detach().abs()
    w1 = l1.module_[-1].weight.detach().abs()
    assert float(w1.sum()) < 0.5 * float(w0.sum())
    assert int((w1 < 1e-2).sum()) > int((w0 < 1e-2).sum())  # sparser
    with pytest.raises(ValueError, match="l1_penalty"):
        MultiLabelHead(l1_penalty=-1.0, **kw).fit(Xtr, Ytr)


def test_cnn_on_images_gets_data_chosen_thresholds():
    """Image learners calibrate like bag learners: out-of-fold clones on image subsets; a
    label that is pure noise is not predicted, so the hamming loss stays at or below the
    empty predictor's on it."""
    pytest.importorskip("mimlkit.features.backbones")
    imgs, Y = _images(48)
    rng = np.random.default_rng(5)
    Y = np.column_stack([Y, (rng.random(48) < 0.3).astype(np.int8)])  # label 3: noise
    cnn = MultiLabelCNN(backbone="tiny", image_size=24, loss="bce", max_epochs=4, lr=1e-2,
                        batch_size=8, device="cpu", random_state=0).fit(imgs, Y)
    assert cnn.calibration_["method"] == "out-of-fold"
    assert np.shape(cnn.threshold_) == (4,) and not np.isfinite(cnn.threshold_[3])
    assert not cnn.predict(imgs)[:, 3].any()
    from mimlkit.datasets.base import ImageSet

    arr = MultiLabelCNN(backbone="tiny", image_size=24, max_epochs=1, batch_size=8,
                        device="cpu").fit(ImageSet(imgs), Y)  # ImageSet subsets too
    assert arr.calibration_["n_folds"] == 3
