"""MIMLSVM, MIMLkNN, MIMLNN, MIMLRBF on small synthetic bags: learning, estimator contract,
GridSearchCV with a bag-level splitter, pickling and save/load."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold

from mimlkit.datasets import make_miml_bags
from mimlkit.learners.classic import MIMLNN, MIMLRBF, MIMLSVM, MIMLkNN
from mimlkit.metrics import average_precision

LEARNERS = {
    "mimlsvm": lambda: MIMLSVM(random_state=0),
    "mimlknn": lambda: MIMLkNN(n_references=5, n_citers=8),
    "mimlknn-kdis": lambda: MIMLkNN(n_references=5, n_citers=8, citers="kdis"),
    "mimlnn": lambda: MIMLNN(random_state=0),
    "mimlrbf": lambda: MIMLRBF(random_state=0),
}


@pytest.fixture(scope="module")
def data():
    ds = make_miml_bags(n_bags=150, n_labels=4, n_features=6, random_state=0)
    return ds.bags, ds.Y


def _random_ap(Y, seed=0):
    rng = np.random.default_rng(seed)
    return np.mean([average_precision(Y, rng.random(Y.shape)) for _ in range(5)])


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_learns_beats_chance(name, data):
    bags, Y = data
    tr, te = np.arange(100), np.arange(100, 150)
    est = LEARNERS[name]().fit(bags[tr], Y[tr])
    S = est.decision_function(bags[te])
    assert S.shape == (50, 4) and np.isfinite(S).all()
    ap = average_precision(Y[te], S)
    assert ap > _random_ap(Y[te]) + 0.15, ap
    P = est.predict(bags[te])
    assert P.dtype == np.int8
    if est.t_criterion_:  # "auto": on when it adds no error on held-out training scores
        assert (P.sum(axis=1) >= 1).all()
    # data-chosen thresholds: never worse than predicting no label (hamming loss)
    assert (P != Y[te]).mean() <= (Y[te] == 1).mean(), ((P != Y[te]).mean(), Y[te].mean())
    assert est.score(bags[te], Y[te]) == pytest.approx(ap)


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_contract_clone_pickle_gridsearch(name, data, tmp_path):
    bags, Y = data
    est = LEARNERS[name]()
    params = est.get_params()
    c = clone(est)
    assert c.get_params() == params
    key = "t_criterion"
    assert est.set_params(**{key: False}).get_params()[key] is False
    est.set_params(**{key: True})
    with pytest.raises(ValueError):
        est.set_params(nonexistent=1)
    with pytest.raises(Exception):  # noqa: B017 - NotFittedError
        est.decision_function(bags[:3])
    est.fit(bags[:60], Y[:60])
    S = est.decision_function(bags[60:80])
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.decision_function(bags[60:80]), S)
    from mimlkit import persistence

    persistence.save(est, tmp_path / "m")
    loaded = persistence.load(tmp_path / "m")
    np.testing.assert_allclose(loaded.decision_function(bags[60:80]), S, rtol=1e-12)
    # list-of-arrays input gives the same scores
    np.testing.assert_allclose(est.decision_function(bags[60:80].to_list()), S, rtol=1e-6)
    grid = {"variant": ["max", "average"]}
    gs = GridSearchCV(estimator=clone(est), param_grid=grid,
                      cv=KFold(n_splits=3, shuffle=True, random_state=0), error_score="raise")
    gs.fit(bags[:90], Y[:90])
    assert gs.best_params_["variant"] in ("max", "average")
    assert gs.best_estimator_.decision_function(bags[90:]).shape == (60, 4)


def test_deterministic_given_random_state(data):
    bags, Y = data
    for make in (lambda: MIMLSVM(random_state=3), lambda: MIMLRBF(random_state=3)):
        a = make().fit(bags[:80], Y[:80]).decision_function(bags[80:])
        b = make().fit(bags[:80], Y[:80]).decision_function(bags[80:])
        np.testing.assert_array_equal(a, b)


def test_mimlsvm_gamma_options(data):
    bags, Y = data
    for g in (0.2, "scale", "mean_sq_dist"):
        est = MIMLSVM(gamma=g, random_state=0).fit(bags[:80], Y[:80])
        assert est.gamma_ > 0
    assert MIMLSVM(gamma=0.2).fit(bags[:80], Y[:80]).gamma_ == 0.2
    est = MIMLSVM(ratio=0.1, random_state=0).fit(bags[:80], Y[:80])
    assert est.medoid_bags_.n_bags == 8 and est.transform(bags[:5]).shape == (5, 8)
    with pytest.raises(ValueError, match="gamma"):
        MIMLSVM(gamma="auto-ish").fit(bags[:40], Y[:40])
    with pytest.raises(ValueError, match="ratio"):
        MIMLSVM(ratio=0).fit(bags[:40], Y[:40])
    with pytest.raises(ValueError, match="variant"):
        MIMLSVM(variant="median").fit(bags[:40], Y[:40])


def test_constant_label_and_unobserved_rejected(data):
    bags, Y = data
    Yc = Y[:60].copy()
    Yc[:, 2] = 0
    for make in LEARNERS.values():
        S = make().fit(bags[:60], Yc).decision_function(bags[60:70])
        assert np.isfinite(S).all() and (S[:, 2] < 0).all()
    Yu = Y[:60].copy()
    Yu[0, 0] = -1
    with pytest.raises(ValueError, match="bag 0"):
        MIMLSVM().fit(bags[:60], Yu)


def test_mimlknn_citers_and_leave_one_out(data):
    bags, Y = data
    est = MIMLkNN(n_references=3, n_citers=5).fit(bags[:50], Y[:50])
    assert est.weights_.shape == (4, 4)
    # a training bag presented at test time is its own nearest neighbour: with n_references=1
    # and no citers its count vector is its own label set
    one = MIMLkNN(n_references=1, n_citers=0).fit(bags[:50], Y[:50])
    from mimlkit.learners.classic.mimlknn import _knn_mask

    D = one._dist(one._test_bags(bags[:50]), one.train_bags_)
    assert _knn_mask(D, 1)[np.arange(50), np.arange(50)].all()
    with pytest.raises(ValueError, match="citers"):
        MIMLkNN(citers="other").fit(bags[:50], Y[:50])


def test_mimlnn_lambda_modes_and_mimlrbf_sigma(data):
    bags, Y = data
    loo = MIMLNN(random_state=0).fit(bags[:80], Y[:80])
    assert loo.reg_lambda_ > 0
    lit = MIMLNN(reg_lambda=1.0, random_state=0).fit(bags[:80], Y[:80])
    assert lit.reg_lambda_ == 1.0 and lit.weights_.shape == (33, 4)
    with pytest.raises(ValueError, match="reg_lambda"):
        MIMLNN(reg_lambda="gcv").fit(bags[:80], Y[:80])
    g = MIMLRBF(random_state=0).fit(bags[:80], Y[:80])
    assert np.ptp(g.sigma_) == 0 and g.centre_bags_.n_bags == g.sigma_.size
    counts = Y[:80].sum(axis=0)
    assert g.sigma_.size == int(np.sum(np.maximum(1, np.ceil(0.1 * counts))))
    p = MIMLRBF(sigma="per_label", reg_lambda=1e-3, random_state=0).fit(bags[:80], Y[:80])
    assert p.transform(bags[:3]).shape == (3, p.sigma_.size)
