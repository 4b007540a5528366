"""DBA (Dirichlet-Bernoulli Alignment, docs/dba.md) on small synthetic bags (fast)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone

from mimlkit.bags import Bags
from mimlkit.datasets import make_miml_bags
from mimlkit.learners.classic.dba import DBA, _log1m_phi
from mimlkit.metrics import average_precision


@pytest.fixture(scope="module")
def split():
    ds = make_miml_bags(n_bags=200, random_state=0)
    perm = np.random.default_rng(0).permutation(len(ds.bags))
    n_tr = 2 * len(ds.bags) // 3
    tr, te = np.sort(perm[:n_tr]), np.sort(perm[n_tr:])
    return ds.bags[tr], ds.Y[tr], ds.bags[te], ds.Y[te]


@pytest.fixture(scope="module")
def fitted(split):
    Xtr, Ytr, _, _ = split
    return DBA(random_state=0).fit(Xtr, Ytr)


def test_shapes_and_attributes(split, fitted):
    Xtr, Ytr, Xte, Yte = split
    m = fitted
    K, p = Ytr.shape[1], Xtr.n_features
    assert m.n_features_in_ == p and m.n_labels_ == K
    assert m.n_components_ == K + int(m.background_)
    assert m.means_.shape == (m.n_components_, p)
    assert m.covariances_.shape == (m.n_components_, p, p)
    assert m.alpha_.shape == (m.n_components_,) and (m.alpha_ > 0).all()
    S = m.decision_function(Xte)
    assert S.shape == (len(Xte), K) and np.isfinite(S).all() and (S >= 0).all()
    P = m.predict_proba(Xte)
    assert P.shape == S.shape and (P >= 0).all() and (P <= 1).all()
    np.testing.assert_allclose(P, 1 - np.exp(-S))
    Yp = m.predict(Xte)
    assert Yp.shape == S.shape and set(np.unique(Yp)) <= {0, 1}


def test_beats_label_prior(split, fitted):
    Xtr, Ytr, Xte, Yte = split
    prior = np.tile(Ytr.mean(axis=0), (len(Xte), 1))
    ap_prior = average_precision(Yte, prior)
    ap = average_precision(Yte, fitted.decision_function(Xte))
    assert ap > ap_prior + 0.15, (ap, ap_prior)


@pytest.mark.parametrize("kw", [{}, {"covariance": "diag", "background": True},
                                {"covariance": "spherical", "fit_alpha": False}])
def test_elbo_never_decreases(split, kw):
    Xtr, Ytr, _, _ = split
    m = DBA(random_state=0, max_iter=25, tol=0.0, threshold_mode="fixed", **kw).fit(Xtr, Ytr)
    e = m.elbo_
    assert e.shape == (m.n_iter_,) and m.n_iter_ == 25 and np.isfinite(e).all()
    assert (np.diff(e) >= -1e-9 * np.abs(e[:-1])).all(), np.diff(e).min()
    assert e[-1] > e[0]


def test_deterministic(split):
    Xtr, Ytr, Xte, _ = split
    a = DBA(random_state=3, max_iter=10, threshold_mode="fixed").fit(Xtr, Ytr)
    b = DBA(random_state=3, max_iter=10, threshold_mode="fixed").fit(Xtr, Ytr)
    np.testing.assert_array_equal(a.decision_function(Xte), b.decision_function(Xte))
    np.testing.assert_array_equal(a.elbo_, b.elbo_)


def test_instance_scores(split, fitted):
    _, Ytr, Xte, _ = split
    inst = fitted.instance_scores(Xte)
    sizes = np.diff(Xte.offsets)
    assert len(inst) == len(Xte)
    for s, n in zip(inst, sizes):
        assert s.shape == (n, Ytr.shape[1])
        assert (s >= 0).all() and (s.sum(axis=1) <= 1 + 1e-9).all()
    # the bag score is the noisy-OR of the instance responsibilities (D12)
    S = fitted.decision_function(Xte)
    P = np.array([1 - np.prod(1 - s, axis=0) for s in inst])
    np.testing.assert_allclose(1 - np.exp(-S), P, atol=1e-9)


def test_label_set_constraint_and_background(split):
    Xtr, Ytr, _, _ = split
    Y = Ytr.copy()
    Y[:5] = 0  # unlabelled bags need the background component
    m = DBA(random_state=0, max_iter=5, threshold_mode="fixed").fit(Xtr, Y)
    assert m.background_ and m.n_components_ == Y.shape[1] + 1
    with pytest.raises(ValueError, match="background=False"):
        DBA(background=False, max_iter=2).fit(Xtr, Y)
    assert not DBA(max_iter=2, threshold_mode="fixed").fit(Xtr, Ytr).background_


def test_proportion_score_and_diag(split):
    Xtr, Ytr, Xte, _ = split
    m = DBA(bag_score="proportion", covariance="diag", max_iter=10, random_state=0,
            threshold_mode="fixed").fit(Xtr, Ytr)
    S = m.decision_function(Xte)
    assert m.covariances_.shape == (m.n_components_, Xtr.n_features)
    assert (S >= 0).all() and (S.sum(axis=1) <= 1 + 1e-9).all()
    np.testing.assert_array_equal(m.predict_proba(Xte), S)


def test_pca_cap_and_list_input():
    rng = np.random.default_rng(0)
    bags = [rng.normal(size=(int(rng.integers(2, 6)), 30)) for _ in range(40)]
    Y = (rng.random((40, 3)) < 0.5).astype(np.int8)
    Y[np.arange(40), rng.integers(0, 3, 40)] = 1
    m = DBA(max_dim=8, max_iter=5, random_state=0, threshold_mode="fixed").fit(bags, Y)
    assert m.pca_components_.shape == (8, 30) and m.means_.shape[1] == 8
    assert m.decision_function(bags).shape == (40, 3)


def test_clone_round_trip_and_pickle(split, fitted):
    Xtr, Ytr, Xte, Yte = split
    est = DBA(covariance="diag", alpha=0.5, max_iter=7, random_state=1)
    c = clone(est)
    assert c.get_params() == est.get_params() and not hasattr(c, "means_")
    assert 0 < fitted.score(Xte, Yte) <= 1  # the mixin's AP, not shadowed by a parameter
    m2 = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(m2.decision_function(Xte), fitted.decision_function(Xte))


def test_log1m_phi_exact_near_one():
    logphi = np.log(np.array([[1 - 1e-20, 1e-20], [0.25, 0.75]]))
    logphi[0] = [-1e-20, np.log(1e-20)]
    out = _log1m_phi(logphi)
    np.testing.assert_allclose(out, [[np.log(1e-20), -1e-20], [np.log(0.75), np.log(0.25)]])


@pytest.mark.parametrize("kw, match", [
    ({"covariance": "tied"}, "covariance"), ({"bag_score": "max"}, "bag_score"),
    ({"max_iter": 0}, "max_iter"), ({"e_step_iter": 1.5}, "e_step_iter"),
    ({"prior_strength": -1.0}, "prior_strength"), ({"alpha": 0}, "alpha"),
    ({"tol": -1}, "tol"), ({"max_dim": 0}, "max_dim"), ({"background": "yes"}, "background"),
])
def test_bad_params(split, kw, match):
    Xtr, Ytr, _, _ = split
    with pytest.raises(ValueError, match=match):
        DBA(**kw).fit(Xtr, Ytr)


def test_bad_input(split, fitted):
    Xtr, Ytr, Xte, _ = split
    with pytest.raises(ValueError):  # -1 (unobserved) labels are not supported
        Y = Ytr.copy()
        Y[0, 0] = -1
        DBA(max_iter=2).fit(Xtr, Y)
    with pytest.raises(ValueError):  # wrong number of label rows
        DBA(max_iter=2).fit(Xtr, Ytr[:-1])
    with pytest.raises(ValueError, match="features"):
        fitted.decision_function(Bags(Xte.instances[:, :-1], Xte.offsets))
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        DBA().decision_function(Xte)


def test_refuses_bags_with_more_labels_than_instances():
    from mimlkit.learners.base import RefusedData

    rng = np.random.default_rng(0)
    X = [rng.normal(size=(1, 3)) for _ in range(30)]
    Y = np.zeros((30, 3), dtype=int)
    Y[:, :2] = 1  # two labels, one instance: the alignment cannot hold
    with pytest.raises(RefusedData, match="100% of the training bags have more labels"):
        DBA().fit(X, Y)
