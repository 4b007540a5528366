"""RankLSIM (Briggs, Fern & Raich, KDD 2012) on small synthetic bags with instance truth."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import roc_auc_score

from mimlkit.datasets import make_miml_bags
from mimlkit.learners.classic.ranklsim import RankLSIM, auto_epochs, auto_lambda
from mimlkit.metrics import average_precision


@pytest.fixture(scope="module")
def split():
    """make_miml_bags(200 bags, seed 0), first 2/3 for training, last 1/3 for testing."""
    ds = make_miml_bags(n_bags=200, random_state=0)
    n = ds.bags.n_bags
    cut = 2 * n // 3
    tr, te = np.arange(cut), np.arange(cut, n)
    inst_te = ds.instance_labels[ds.bags.offsets[cut]:]
    return ds.bags.take(tr), ds.Y[tr], ds.bags.take(te), ds.Y[te], inst_te


@pytest.fixture(scope="module")
def fitted(split):
    Xtr, Ytr, *_ = split
    return RankLSIM(random_state=0).fit(Xtr, Ytr)


def _objective(model: RankLSIM, bags, Y) -> float:
    """Eq. 3 + 3a, written with plain loops over bags and pairs (a reference for the
    vectorised code): lambda/2 ||W||^2 + mean over bags of the per-bag mean pair hinge."""
    W = model.coef_
    Xs = model._features(bags)
    K = Y.shape[1]
    total, n = 0.0, 0
    for b in range(bags.n_bags):
        F = (Xs[bags.offsets[b]:bags.offsets[b + 1]] @ W.T).max(axis=0)
        pos = [c for c in range(K) if Y[b, c] == 1] + [K]
        neg = [c for c in range(K) if Y[b, c] == 0] + [K]
        pairs = [(c, e) for c in pos for e in neg if c != e]
        n += 1
        if pairs:
            total += sum(max(0.0, 1.0 - F[c] + F[e]) for c, e in pairs) / len(pairs)
    return 0.5 * model.reg_lambda_ * float(np.sum(W * W)) + total / n


# ---------------------------------------------------------------------------- outputs
def test_shapes(split, fitted):
    Xtr, Ytr, Xte, Yte, _ = split
    K = Ytr.shape[1]
    S = fitted.decision_function(Xte)
    assert S.shape == (Xte.n_bags, K) and np.isfinite(S).all()
    P = fitted.predict(Xte)
    assert P.shape == S.shape and set(np.unique(P)) <= {0, 1}
    inst = fitted.instance_scores(Xte)
    assert len(inst) == Xte.n_bags
    assert [a.shape for a in inst] == [(int(s), K) for s in np.diff(Xte.offsets)]
    ann = fitted.predict_instances(Xte)
    assert [a.shape for a in ann] == [(int(s),) for s in np.diff(Xte.offsets)]
    assert fitted.coef_.shape == (K + 1, Xtr.n_features + 1)  # dummy row, bias column
    assert fitted.n_features_in_ == Xtr.n_features and fitted.n_labels_ == K
    assert len(fitted.loss_curve_) == fitted.n_epochs_ == auto_epochs(Xtr.n_bags)
    assert fitted.reg_lambda_ == pytest.approx(auto_lambda(Xtr.n_bags))


def test_bag_score_is_max_of_instance_scores_minus_dummy(split, fitted):
    """Eq. 2 / 3a: decision = per-bag max of f_c minus the per-bag max of the dummy."""
    Xte = split[2]
    inst = fitted.instance_scores(Xte)
    dummy = fitted._features(Xte) @ fitted.coef_[-1]
    dmax = np.maximum.reduceat(dummy, Xte.offsets[:-1])
    expect = np.vstack([a.max(axis=0) for a in inst]) - dmax[:, None]
    np.testing.assert_allclose(fitted.decision_function(Xte), expect, rtol=1e-10, atol=1e-10)


def test_fixed_threshold_is_the_dummy_label(split):
    Xtr, Ytr, Xte, _, _ = split
    m = RankLSIM(threshold_mode="fixed", t_criterion=False, random_state=0).fit(Xtr, Ytr)
    assert not hasattr(m, "threshold_")
    np.testing.assert_array_equal(m.predict(Xte), (m.decision_function(Xte) > 0).astype(int))


def test_predict_instances_within_bag_labels(split, fitted):
    Xtr, Ytr, *_ = split
    ann = np.concatenate(fitted.predict_instances(Xtr, Ytr))
    bag_of = np.repeat(np.arange(Xtr.n_bags), np.diff(Xtr.offsets))
    has = Ytr.any(axis=1)[bag_of]
    assert (Ytr[bag_of, ann] == 1)[has].all()


# ---------------------------------------------------------------------------- quality
def test_ap_clearly_above_label_prior(split, fitted):
    _, Ytr, Xte, Yte, _ = split
    prior = np.tile(Ytr.mean(axis=0), (Yte.shape[0], 1))
    ap_prior = average_precision(Yte, prior)
    ap = average_precision(Yte, fitted.decision_function(Xte))
    assert ap > ap_prior + 0.2, (ap, ap_prior)  # observed .98 vs .61
    assert ap > 0.9


def test_instance_annotation_auc(split, fitted):
    """Per-label instance AUC of f_c(x) against the instance truth (observed >= .989)."""
    Xte, inst_te = split[2], split[4]
    S = np.vstack(fitted.instance_scores(Xte))
    for c in range(inst_te.shape[1]):
        if 0 < inst_te[:, c].sum() < inst_te.shape[0]:
            assert roc_auc_score(inst_te[:, c], S[:, c]) > 0.9, c


@pytest.mark.parametrize("mode", ["heuristic", "cccp"])
def test_support_update_modes_learn(split, mode):
    Xtr, Ytr, Xte, Yte, _ = split
    m = RankLSIM(support_update=mode, threshold_mode="fixed", n_epochs=20,
                 random_state=0).fit(Xtr, Ytr)
    assert average_precision(Yte, m.decision_function(Xte)) > 0.9


# ---------------------------------------------------------------------------- optimisation
def test_rank_loss_decreases_over_training(split, fitted):
    Xtr, Ytr, *_ = split
    curve = np.asarray(fitted.loss_curve_)
    assert curve[-1] < 0.2 * curve[0]
    assert curve[-5:].mean() < curve[:5].mean()
    # the full objective (independent loop implementation) falls with more epochs, and
    # from 1 at W = 0 (every pair violated by exactly the margin)
    js = [_objective(RankLSIM(n_epochs=e, threshold_mode="fixed", random_state=0)
                     .fit(Xtr, Ytr), Xtr, Ytr) for e in (1, 5)]
    j_final = _objective(fitted, Xtr, Ytr)
    assert js[0] > js[1] > j_final
    assert j_final < 0.3


def test_subgradient_matches_finite_differences(split):
    """The vectorised Eq. 4 data term is the gradient of the loop objective where the
    objective is differentiable (unique maxima, no margin exactly 0)."""
    Xtr, Ytr, *_ = split
    m = RankLSIM(n_epochs=1, threshold_mode="fixed", random_state=0).fit(Xtr, Ytr)
    rng = np.random.default_rng(1)
    m.coef_ = rng.normal(scale=0.3, size=m.coef_.shape)
    Xs = m._features(Xtr)
    n, K = Ytr.shape
    pres = np.zeros((n, K + 1), bool)
    absn = np.zeros((n, K + 1), bool)
    pres[:, :K], absn[:, :K] = Ytr == 1, Ytr == 0
    pres[:, K] = absn[:, K] = True
    npairs = pres.sum(1) * absn.sum(1) - 1
    inv = np.where(npairs > 0, 1.0 / np.maximum(npairs, 1), 0.0)
    self_pair = np.zeros((K + 1, K + 1), bool)
    self_pair[K, K] = True
    G, loss = RankLSIM._subgradient(m.coef_.copy(), Xs, Xtr.offsets, np.arange(n), pres, absn,
                                    inv, self_pair, None, "step")
    m.reg_lambda_ = 0.0
    assert loss == pytest.approx(_objective(m, Xtr, Ytr), rel=1e-10)
    eps = 1e-6
    for r, c in [(0, 0), (1, 3), (K, 2), (2, Xs.shape[1] - 1), (K, Xs.shape[1] - 1)]:
        W0 = m.coef_.copy()
        m.coef_[r, c] += eps
        up = _objective(m, Xtr, Ytr)
        m.coef_ = W0.copy()
        m.coef_[r, c] -= eps
        down = _objective(m, Xtr, Ytr)
        m.coef_ = W0
        assert G[r, c] == pytest.approx((up - down) / (2 * eps), abs=1e-6)


# ---------------------------------------------------------------------------- contract
def test_deterministic_given_random_state(split):
    Xtr, Ytr, Xte, _, _ = split
    a = RankLSIM(random_state=3, n_epochs=10).fit(Xtr, Ytr)
    b = RankLSIM(random_state=3, n_epochs=10).fit(Xtr, Ytr)
    np.testing.assert_array_equal(a.decision_function(Xte), b.decision_function(Xte))
    np.testing.assert_array_equal(a.predict(Xte), b.predict(Xte))
    c = RankLSIM(random_state=4, n_epochs=10).fit(Xtr, Ytr)
    assert not np.array_equal(a.coef_, c.coef_)


def test_objective_attribute_is_eq3_on_all_training_bags(split):
    Xtr, Ytr, *_ = split
    m = RankLSIM(n_epochs=6, random_state=0, threshold_mode="fixed").fit(Xtr, Ytr)
    assert m.objective_ == pytest.approx(_objective(m, Xtr, Ytr), rel=1e-9)


def test_restarts_keep_the_lowest_probe_objective(split, monkeypatch):
    """n_init probes every restart and continues the one with the lowest Eq. 3."""
    from mimlkit.learners.classic import ranklsim as mod

    Xtr, Ytr, *_ = split
    real = mod.RankLSIM._objective.__func__

    def fit_with(probe_values):
        calls: list[int] = []

        def forced(cls, W, *a):
            calls.append(1)
            i = len(calls) - 1
            return probe_values[i] if i < len(probe_values) else real(cls, W, *a)

        monkeypatch.setattr(mod.RankLSIM, "_objective", classmethod(forced))
        m = RankLSIM(n_epochs=10, n_init=3, init="zero", random_state=0, threshold_mode="fixed")
        m.fit(Xtr, Ytr)
        assert len(calls) == 4  # three probes, then the kept run's final objective
        assert m.n_epochs_ == 10 and len(m.loss_curve_) == 10
        return m.coef_

    first, second = fit_with([1.0, 5.0, 5.0]), fit_with([5.0, 1.0, 5.0])
    assert not np.array_equal(first, second)  # a different winner, a different model
    np.testing.assert_array_equal(first, fit_with([1.0, 6.0, 7.0]))  # same winner


def test_mean_start_escapes_the_first_instance_optimum():
    """From W = 0 every first support instance is the bag's first instance; the bag-mean
    start (MI-SVM's) reaches a lower Eq. 3 on many-label bags and ranks better."""
    from mimlkit.datasets.synthetic import stress_variants

    ds = make_miml_bags(random_state=0, **{**stress_variants()["many-labels"], "n_bags": 300})
    tr, te = np.arange(200), np.arange(200, 300)
    Xtr, Xte = ds.bags.take(tr), ds.bags.take(te)
    kw = {"random_state": 0, "threshold_mode": "fixed", "n_init": 1}
    zero = RankLSIM(init="zero", **kw).fit(Xtr, ds.Y[tr])
    mean = RankLSIM(init="mean", **kw).fit(Xtr, ds.Y[tr])
    assert mean.objective_ < zero.objective_
    assert (average_precision(ds.Y[te], mean.decision_function(Xte))
            > average_precision(ds.Y[te], zero.decision_function(Xte)) + 0.05)


def test_clone_round_trip(split):
    Xtr, Ytr, Xte, _, _ = split
    est = RankLSIM(reg_lambda=0.01, n_epochs=7, batch_size=5, support_update="cccp",
                   average=False, bias=None, scale=None, threshold_mode="fixed",
                   random_state=2)
    twin = clone(est)
    assert twin.get_params() == est.get_params()
    est.fit(Xtr, Ytr)
    assert clone(est).get_params() == est.get_params()
    assert not hasattr(clone(est), "coef_")
    twin.fit(Xtr, Ytr)
    np.testing.assert_array_equal(est.decision_function(Xte), twin.decision_function(Xte))
    assert est.coef_.shape == (Ytr.shape[1] + 1, Xtr.n_features)  # no bias column


def test_without_dummy_label(split):
    Xtr, Ytr, Xte, Yte, _ = split
    m = RankLSIM(dummy_label=False, n_epochs=20, random_state=0).fit(Xtr, Ytr)
    assert m.coef_.shape[0] == Ytr.shape[1]
    assert average_precision(Yte, m.decision_function(Xte)) > 0.9
    assert m.predict(Xte).shape == Yte.shape


@pytest.mark.parametrize("params", [
    {"reg_lambda": -1.0}, {"reg_lambda": 0}, {"reg_lambda": "big"}, {"n_epochs": 0},
    {"n_epochs": 2.5}, {"n_epochs": "many"}, {"batch_size": 0}, {"support_update": "bogus"},
    {"bias": float("nan")}, {"scale": "bogus"}, {"threshold_mode": "bogus"},
    {"t_criterion": "maybe"}, {"init": "random"}, {"n_init": 0}, {"n_init": 1.5},
])
def test_bad_params(split, params):
    Xtr, Ytr, *_ = split
    with pytest.raises(ValueError):
        RankLSIM(**params).fit(Xtr, Ytr)


def test_bad_inputs(split):
    Xtr, Ytr, Xte, _, _ = split
    with pytest.raises(NotFittedError):
        RankLSIM().decision_function(Xte)
    Ybad = Ytr.copy()
    Ybad[0, 0] = -1
    with pytest.raises(ValueError):
        RankLSIM(n_epochs=1).fit(Xtr, Ybad)  # unobserved labels are not supported
    with pytest.raises(ValueError):
        RankLSIM(n_epochs=1).fit(Xtr, Ytr[:-1])  # one label row short
    m = RankLSIM(n_epochs=1, threshold_mode="fixed").fit(Xtr, Ytr)
    wrong = [np.zeros((3, Xtr.n_features + 2))]
    with pytest.raises(ValueError):
        m.decision_function(wrong)
    with pytest.raises(ValueError):
        m.predict_instances(Xtr, Ytr[:-1])
