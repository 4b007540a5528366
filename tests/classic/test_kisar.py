"""KISAR (Li et al., AAAI 2012) on small synthetic bags; spec ``docs/kisar.md``."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from mimlkit.bags import Bags
from mimlkit.datasets import make_miml_bags
from mimlkit.learners.classic._instance_scaling import gather_rows
from mimlkit.learners.classic.kisar import KISAR, label_groups, prototype_similarity
from mimlkit.metrics import average_precision


@pytest.fixture(scope="module")
def split():
    """make_miml_bags(200, seed 0), a random 2/3 - 1/3 split of the bags."""
    ds = make_miml_bags(n_bags=200, random_state=0)
    n = len(ds.bags)
    perm = np.random.default_rng(0).permutation(n)
    n_tr = int(round(2 * n / 3))
    tr, te = np.sort(perm[:n_tr]), np.sort(perm[n_tr:])
    return ds, tr, te


@pytest.fixture(scope="module")
def fitted(split):
    ds, tr, te = split
    return KISAR(random_state=0).fit(ds.bags[tr], ds.Y[tr])


def test_shapes_and_fitted_attributes(split, fitted):
    ds, tr, te = split
    q = ds.Y.shape[1]
    S = fitted.decision_function(ds.bags[te])
    P = fitted.predict(ds.bags[te])
    assert S.shape == P.shape == (te.size, q)
    assert np.isfinite(S).all()
    assert set(np.unique(P)) <= {0, 1}
    assert fitted.n_labels_ == q and fitted.n_features_in_ == ds.bags.n_features
    K = fitted.coef_.shape[1]
    assert fitted.prototypes_.shape == fitted.centers_.shape == (K, ds.bags.n_features)
    assert fitted.intercept_.shape == (q,)
    assert fitted.prototype_relevance_.shape == (q, K)
    np.testing.assert_allclose(fitted.prototype_relevance_.mean(axis=1), 1.0)
    assert fitted.transform(ds.bags[te]).shape == (te.size, K)
    proba = fitted.predict_proba(ds.bags[te])
    assert proba.shape == (te.size, q) and (proba >= 0).all() and (proba <= 1).all()


def test_objective_decreases(fitted):
    obj = np.asarray(fitted.objective_)
    assert fitted.n_iter_ == obj.size >= 2
    assert obj[-1] < obj[0]
    assert (np.diff(obj) <= 1e-6 * obj[:-1]).all()  # alternating minimisation of (K5)


def test_deterministic_under_random_state(split):
    ds, tr, te = split
    a = KISAR(random_state=3).fit(ds.bags[tr], ds.Y[tr])
    b = KISAR(random_state=3).fit(ds.bags[tr], ds.Y[tr])
    np.testing.assert_array_equal(a.decision_function(ds.bags[te]),
                                  b.decision_function(ds.bags[te]))
    np.testing.assert_array_equal(a.predict(ds.bags[te]), b.predict(ds.bags[te]))


def test_average_precision_beats_label_prior(split, fitted):
    ds, tr, te = split
    ap = average_precision(ds.Y[te], fitted.decision_function(ds.bags[te]))
    prior = np.tile(ds.Y[tr].mean(axis=0), (te.size, 1))
    ap_prior = average_precision(ds.Y[te], prior)
    assert ap > ap_prior + 0.2, (ap, ap_prior)
    assert ap > 0.9  # observed 0.999 (prior 0.595)
    assert fitted.score(ds.bags[te], ds.Y[te]) == pytest.approx(ap)


def test_instance_scores_find_concept_instances(split, fitted):
    ds, tr, te = split
    inst = fitted.instance_scores(ds.bags[te])
    sizes = np.diff(ds.bags[te].offsets)
    assert len(inst) == te.size
    assert all(s.shape == (m, ds.Y.shape[1]) for s, m in zip(inst, sizes))
    rows, _ = gather_rows(ds.bags.offsets, te)
    truth = np.asarray(ds.instance_labels)[rows]
    S = np.vstack(inst)
    aucs = [roc_auc_score(truth[:, t], S[:, t]) for t in range(truth.shape[1])
            if 0 < truth[:, t].sum() < truth.shape[0]]
    assert len(aucs) == truth.shape[1]
    assert min(aucs) > 0.9, aucs  # observed >= 0.997


def test_key_prototypes_sit_on_the_label_concept(split, fitted):
    """The top trigger prototype of label t is nearer to t's concept instances than to
    the other instances (in the original feature units)."""
    ds, tr, te = split
    keys = fitted.key_prototypes(top_k=3)
    assert len(keys) == ds.Y.shape[1]
    X = ds.bags.instances.astype(np.float64)
    truth = np.asarray(ds.instance_labels)
    hits = 0
    for t, idx in enumerate(keys):
        assert idx.size >= 1
        assert (fitted.coef_[t, idx] > 0).all()
        assert (np.diff(fitted.coef_[t, idx]) <= 0).all()
        d = np.linalg.norm(X - fitted.prototypes_[idx[0]], axis=1)
        hits += d[truth[:, t] == 1].mean() < d[truth[:, t] == 0].mean()
    assert hits == len(keys)
    assert all(k.size == np.count_nonzero(fitted.coef_[t] > 0)
               for t, k in enumerate(fitted.key_prototypes(top_k=None)))


def test_clone_round_trip_and_pickle(split, fitted):
    ds, tr, te = split
    est = KISAR(n_prototypes=30, C=0.5, relation="all", random_state=1)
    c = clone(est)
    assert c.get_params() == est.get_params()
    c2 = clone(fitted)
    assert c2.get_params() == fitted.get_params()
    assert not hasattr(c2, "coef_")
    r = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(r.decision_function(ds.bags[te]),
                                  fitted.decision_function(ds.bags[te]))


def test_prototype_count_scales_with_data():
    small = make_miml_bags(n_bags=60, random_state=1)
    large = make_miml_bags(n_bags=400, random_state=1)
    ks = KISAR(n_iter=1, threshold_mode="fixed", random_state=0).fit(small.bags, small.Y)
    kl = KISAR(n_iter=1, threshold_mode="fixed", random_state=0).fit(large.bags, large.Y)
    assert ks.coef_.shape[1] < kl.coef_.shape[1]
    share = KISAR(n_prototypes=0.1, n_iter=1, threshold_mode="fixed",
                  random_state=0).fit(small.bags, small.Y)
    assert share.coef_.shape[1] == round(0.1 * small.bags.n_instances)
    fixed = KISAR(n_prototypes=7, n_iter=1, threshold_mode="fixed",
                  random_state=0).fit(small.bags, small.Y)
    assert fixed.coef_.shape[1] == 7


def test_label_groups_from_cooccurrence():
    Y = np.array([[1, 1, 0], [1, 1, 0], [1, 1, 0], [0, 0, 1], [1, 0, 1]])
    G = label_groups(Y)
    assert G[0, 1] and G[1, 0] and not G[0, 2] and not G[1, 2]
    assert G.diagonal().all()
    assert (label_groups(Y, "none") == np.eye(3, dtype=bool)).all()
    assert label_groups(Y, "all").all()


def test_embedding_is_max_pooled_gaussian_similarity():
    bags = Bags.from_list([np.array([[0.0, 0.0], [3.0, 0.0]]), np.array([[1.0, 1.0]])])
    C = np.array([[0.0, 0.0], [3.0, 1.0]])
    Phi = prototype_similarity(bags.instances, bags.offsets, C, 0.5)
    expected = np.array([[1.0, np.exp(-0.5)], [np.exp(-1.0), np.exp(-2.0)]])
    np.testing.assert_allclose(Phi, expected)
    mean = prototype_similarity(bags.instances, bags.offsets, C, 0.5, pooling="mean")
    np.testing.assert_allclose(mean[0, 0], (1.0 + np.exp(-4.5)) / 2)


def test_constant_label_column(split):
    ds, tr, te = split
    Y = ds.Y[tr].copy()
    Y[:, 0] = 0
    m = KISAR(n_iter=2, threshold_mode="fixed", random_state=0).fit(ds.bags[tr], Y)
    assert (m.coef_[0] == 0).all() and m.intercept_[0] < 0
    assert np.isfinite(m.decision_function(ds.bags[te])).all()


def test_bad_input_errors(split, fitted):
    ds, tr, te = split
    with pytest.raises(NotFittedError):
        KISAR().decision_function(ds.bags[te])
    Y = ds.Y[tr].copy()
    Y[0, 0] = -1
    with pytest.raises(ValueError):
        KISAR().fit(ds.bags[tr], Y)
    with pytest.raises(ValueError):
        KISAR().fit(ds.bags[tr], ds.Y[tr][:-1])
    wrong = [np.ones((3, ds.bags.n_features + 1))]
    with pytest.raises(ValueError):
        fitted.decision_function(wrong)
    for bad in ({"n_prototypes": 0}, {"n_prototypes": 1.5}, {"n_prototypes": "many"},
                {"C": -1.0}, {"n_iter": 0}, {"gamma": "scale"}, {"gamma": -1.0},
                {"relation": "graph"}, {"pooling": "min"}, {"smoothing": 0.0},
                {"scale": "zscore"}, {"threshold_mode": "best"}):
        with pytest.raises(ValueError):
            KISAR(**bad).fit(ds.bags[tr], ds.Y[tr])
