"""TransferLR (per-label L1/L2 logistic regression, seed 001 Eq. (1)) and the image preset."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold

from mimlkit.bags import Bags
from mimlkit.learners.transfer import TransferImageLR, TransferLR, make_liblinear


def _data(n=90, d=120, k=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    W = np.zeros((d, k))
    W[:4] = rng.normal(size=(4, k)) * 3  # only 4 informative features
    Y = (X @ W + 0.3 * rng.normal(size=(n, k)) > 0).astype(np.int8)
    return X, Y


def test_l1_is_sparse_and_sparser_than_l2():
    X, Y = _data()
    l1 = TransferLR(penalty="l1").fit(X, Y)
    l2 = TransferLR(penalty="l2").fit(X, Y)
    assert l1.coef_.shape == l2.coef_.shape == (3, 120)
    assert (l1.n_nonzero_ < 60).all()  # an L2 fit would have ~all 120 non-zero
    assert (l2.n_nonzero_ > 110).all()
    assert l1.n_nonzero_.sum() < l2.n_nonzero_.sum()
    # informative features carry the largest L1 weights
    assert set(np.argsort(-np.abs(l1.coef_[0]))[:2]) <= {0, 1, 2, 3}
    assert l1.score(X, Y) > 0.9


def test_liblinear_factory_spelling_gives_true_l1():
    X, Y = _data(n=60, d=80)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation / inconsistency warnings
        a = make_liblinear("l1", 1.0).fit(X=X, y=Y[:, 0])
        b = make_liblinear("l2", 1.0).fit(X=X, y=Y[:, 0])
    assert (a.coef_ != 0).sum() < (b.coef_ != 0).sum()
    with pytest.raises(ValueError, match="penalty"):
        make_liblinear("elasticnet", 1.0)


def test_lam_is_eq1_literal_strong_penalty():
    X, Y = _data()
    m = TransferLR(lam=1.0).fit(X, Y)  # C = 1/m: essentially everything shrunk to zero
    assert m.n_nonzero_.sum() == 0
    m2 = TransferLR(lam=1.0 / (1.0 * len(X))).fit(X, Y)  # equals C = 1
    np.testing.assert_allclose(m2.coef_, TransferLR(C=1.0).fit(X, Y).coef_, atol=1e-8)


def test_single_class_label_gets_constant_score():
    X, Y = _data()
    Y[:, 1] = 0
    Y[:, 2] = 1
    with pytest.warns(UserWarning, match="single class"):
        m = TransferLR().fit(X, Y)
    assert m.constant_labels_.tolist() == [1, 2]
    S = m.decision_function(X[:5])
    assert (S[:, 1] == -1e9).all() and (S[:, 2] == 1e9).all()
    P = m.predict(X[:5])
    assert (P[:, 1] == 0).all() and (P[:, 2] == 1).all()


def test_unobserved_labels_and_bags_pooling():
    rng = np.random.default_rng(1)
    X, Y = _data()
    Yu = Y.copy()
    Yu[rng.random(Y.shape) < 0.2] = -1
    m = TransferLR().fit(X, Yu)
    assert m.decision_function(X).shape == Y.shape
    # multi-instance bags: mean vs max pooling
    bags = Bags.from_list([rng.normal(size=(rng.integers(1, 5), 10)) for _ in range(40)])
    Yb = rng.integers(0, 2, (40, 2))
    Fm = bags.pool("mean")
    a = TransferLR(pool="mean").fit(bags, Yb)
    b = TransferLR(pool="mean").fit(Fm, Yb)
    np.testing.assert_allclose(a.decision_function(bags), b.decision_function(Fm), atol=1e-10)
    c = TransferLR(pool="max", standardize=True).fit(bags, Yb)
    assert c.decision_function(bags).shape == (40, 2)
    with pytest.raises(ValueError, match="features"):
        a.decision_function(np.zeros((3, 11)))


def test_bad_params():
    X, Y = _data(n=20, d=5)
    for kw, msg in [({"penalty": "l0"}, "penalty"), ({"pool": "median"}, "pool"),
                    ({"C": 0}, "C must"), ({"lam": -1.0}, "lam"),
                    ({"dual": True}, "dual")]:
        with pytest.raises(ValueError, match=msg):
            TransferLR(**kw).fit(X, Y)


def test_estimator_contract_clone_pickle_gridsearch():
    import joblib

    X, Y = _data(n=60, d=30)
    m = TransferLR(C=0.5, n_jobs=2)
    assert clone(m).get_params() == m.get_params()
    m.set_params(C=2.0)
    assert m.C == 2.0
    with joblib.parallel_config(backend="threading"):  # n_jobs path without process start-up
        m.fit(X, Y)
    np.testing.assert_allclose(m.coef_, TransferLR(C=2.0).fit(X, Y).coef_)
    m2 = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(m.decision_function(X), m2.decision_function(X))
    bags = Bags.from_array(X.astype(np.float32))
    gs = GridSearchCV(TransferLR(), {"C": [0.1, 1.0], "penalty": ["l1", "l2"]},
                      cv=KFold(n_splits=3, shuffle=True, random_state=0))
    gs.fit(bags, Y)
    assert gs.best_params_["C"] in (0.1, 1.0)
    assert gs.predict(bags[:4]).shape == (4, 3)


def test_seed_decision_rule_is_logit_above_zero():
    X, Y = _data()
    m = TransferLR().fit(X, Y)
    S = m.decision_function(X)
    np.testing.assert_array_equal(m.predict(X), (S > 0).astype(np.int8))
    P = m.predict_proba(X)
    np.testing.assert_allclose(P, 1 / (1 + np.exp(-S)), rtol=1e-10)


# ----------------------------------------------------------------------------- images
def _images(n=10, seed=0):
    rng = np.random.default_rng(seed)
    imgs, Y = [], np.zeros((n, 2), np.int8)
    for i in range(n):
        im = rng.integers(0, 60, (48, 56, 3), dtype=np.uint8)
        if i % 2:
            im[:, :, 0] = 230  # "red" images carry label 0
            Y[i, 0] = 1
        if i % 3 == 0:
            im[:24] = 255  # bright top half: label 1
            Y[i, 1] = 1
        imgs.append(im)
    return imgs, Y


def test_image_preset_end_to_end(tmp_path):
    pytest.importorskip("torch")
    imgs, Y = _images()
    m = TransferImageLR(backbone="tiny-multilevel", penalty="l2", cache_dir=str(tmp_path),
                        standardize=True)
    m.fit(imgs, Y)
    S = m.decision_function(imgs)
    assert S.shape == (10, 2) and m.n_features_out_ == 288
    assert m.extractor_config_["backbone"] == "tiny"
    assert m.score(imgs, Y) > 0.9  # separable by colour even with random weights
    assert list(tmp_path.glob("*/config.json"))
    # precomputed features pass through
    feats = m.transform(imgs)
    np.testing.assert_allclose(m.decision_function(feats), S)
    m2 = pickle.loads(pickle.dumps(m))
    np.testing.assert_allclose(m2.decision_function(imgs), S)
    assert clone(m).get_params()["cache_dir"] == str(tmp_path)
    # tiles as instances
    t = TransferImageLR(backbone="tiny-multilevel", tile=24, stride=16, pool="max").fit(imgs, Y)
    assert t.decision_function(imgs[:3]).shape == (3, 2)
    assert t.head_.n_features_in_ == 288


def test_registry_presets():
    from mimlkit.registry import create, learner_spec

    a = create("vgg-l1lr", backbone="tiny-multilevel")
    b = create("vgg-lr")
    assert isinstance(a, TransferImageLR) and a.penalty == "l1" and a.backbone == "tiny-multilevel"
    assert b.penalty == "l2" and b.backbone == "vgg16-multilevel"
    assert learner_spec("vgg-l1lr").input == "images"
    assert isinstance(create("transfer-lr"), TransferLR)


def test_image_learner_predicts_with_the_heads_calibrated_thresholds(tmp_path):
    """``predict`` of the image learner uses the thresholds its per-label head chose on
    out-of-fold scores of the extracted features (not the native 0), and a label that is
    pure noise is not predicted at all."""
    pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    imgs, Y = _images(40)
    Y = np.column_stack([Y, (rng.random(40) < 0.3).astype(np.int8)])  # label 2: noise
    m = TransferImageLR(backbone="tiny-multilevel", penalty="l2", cache_dir=str(tmp_path),
                        standardize=True).fit(imgs, Y)
    thr = np.asarray(m._threshold())
    np.testing.assert_array_equal(thr, m.head_.threshold_)
    assert m.head_.calibration_["method"] == "out-of-fold"
    assert not np.isfinite(thr[2])  # the noise label is never predicted
    P = m.predict(imgs)
    assert not P[:, 2].any()
    S = m.decision_function(imgs)
    np.testing.assert_array_equal(P[:, :2], (S[:, :2] > thr[:2]).astype(P.dtype)
                                  | (P[:, :2] & ~(S[:, :2] > thr[:2])).astype(P.dtype))
    fixed = TransferImageLR(backbone="tiny-multilevel", penalty="l2", cache_dir=str(tmp_path),
                            standardize=True, threshold_mode="fixed").fit(imgs, Y)
    assert fixed._threshold() == 0.0


def test_threaded_label_fits_are_deterministic():
    """LIBLINEAR draws from C's process-global rand(): label fits in threads used to
    interleave their draws (7 of 40 threaded fits differed before the lock)."""
    import joblib

    X, Y = _data(n=60, d=30)
    ref = TransferLR(C=2.0).fit(X, Y).coef_
    for _ in range(15):
        m = TransferLR(C=2.0, n_jobs=2)
        with joblib.parallel_config(backend="threading"):
            m.fit(X, Y)
        np.testing.assert_array_equal(m.coef_, ref)
