"""MIMLfast, MIMLmiSVM and MIMLBoost on small synthetic bags (fast; real-size runs are slow)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone

from mimlkit.bags import Bags
from mimlkit.learners.classic._instance_scaling import fit_scaling, gather_rows, segment_argmax
from mimlkit.learners.classic.mimlboost import MIMLBoost, _best_c, _decision_matrix, label_codes
from mimlkit.learners.classic.mimlfast import MIMLfast
from mimlkit.learners.classic.mimlmisvm import MIMLmiSVM
from mimlkit.metrics import average_precision

try:
    from mimlkit.datasets import make_miml_bags
except ImportError:  # pragma: no cover - fallback generator
    make_miml_bags = None


def _data(n=160, seed=0):
    if make_miml_bags is not None:
        ds = make_miml_bags(n_bags=n, n_labels=4, n_features=8, bag_size=(3, 8),
                            random_state=seed)
        return ds.bags, ds.Y, ds.instance_labels
    rng = np.random.default_rng(seed)  # concept instance per label + background
    centres = rng.normal(scale=3.0, size=(4, 8))
    bags, Y, inst = [], [], []
    for _ in range(n):
        y = (rng.random(4) < 0.35).astype(np.int8)
        y[rng.integers(4)] = 1
        m = int(rng.integers(3, 8))
        X = rng.normal(size=(m, 8))
        lab = np.zeros((m, 4), np.int8)
        for j, k in enumerate(np.flatnonzero(y)[:m]):
            X[j] += centres[k]
            lab[j, k] = 1
        bags.append(X)
        Y.append(y)
        inst.append(lab)
    return Bags.from_list(bags), np.array(Y), np.concatenate(inst)


FAST = {
    "mimlfast": lambda **kw: MIMLfast(n_epochs=10, random_state=0, **kw),
    "mimlmisvm": lambda **kw: MIMLmiSVM(max_iter=5, random_state=0, **kw),
    "mimlboost": lambda **kw: MIMLBoost(n_rounds=4, sample_size=0.5, random_state=0, **kw),
}


@pytest.fixture(scope="module")
def data():
    bags, Y, inst = _data()
    tr, te = np.arange(110), np.arange(110, len(bags))
    return bags[tr], Y[tr], bags[te], Y[te], bags, inst, Y


def _chance_ap(Y, n_draws=20, seed=0):
    rng = np.random.default_rng(seed)
    return float(np.mean([average_precision(Y, rng.random(Y.shape)) for _ in range(n_draws)]))


@pytest.mark.parametrize("name", sorted(FAST))
def test_beats_chance(name, data):
    Xtr, Ytr, Xte, Yte, _, _, _ = data
    est = FAST[name]().fit(Xtr, Ytr)
    S = est.decision_function(Xte)
    assert S.shape == Yte.shape and np.isfinite(S).all()
    chance = _chance_ap(Yte)
    ap = average_precision(Yte, S)
    assert ap > chance + 0.15, (name, ap, chance)
    P = est.predict(Xte)
    assert P.shape == Yte.shape
    if est.t_criterion_:  # data-chosen (t_criterion="auto"): every bag keeps a label then
        assert (P.sum(axis=1) >= 1).all()
    if name != "mimlboost":  # MIBoosting's mean instance vote is a weak bag rule (by design)
        assert ((P == Yte).mean()) > 0.7


@pytest.mark.parametrize("name", ["mimlfast", "mimlmisvm"])
def test_instance_scores(name, data):
    Xtr, Ytr, _, _, bags, inst, Yall = data
    est = FAST[name]().fit(Xtr, Ytr)
    scores = est.instance_scores(bags)
    assert len(scores) == len(bags)
    assert all(s.shape == (n, Ytr.shape[1]) for s, n in zip(scores, bags.sizes))
    # bag score = max over instances (MIMLfast: up to the per-bag dummy offset)
    bag = np.stack([s.max(axis=0) for s in scores])
    if name == "mimlfast":
        bag = bag - est.bag_scores(bags)[:, -1:]
    np.testing.assert_allclose(bag, est.decision_function(bags), rtol=1e-6, atol=1e-6)
    # concept instances outscore the other instances of the same positive bags
    S = np.concatenate(scores)
    Ybag = np.repeat(Yall, bags.sizes, axis=0)
    wins = []
    for k in range(S.shape[1]):
        in_pos = Ybag[:, k] == 1
        concept = (inst[:, k] == 1) & in_pos
        other = (inst[:, k] == 0) & in_pos
        if concept.any() and other.any():
            wins.append(S[concept, k].mean() > S[other, k].mean())
    assert wins and np.mean(wins) == 1.0


@pytest.mark.parametrize("name", sorted(FAST))
def test_clone_params_pickle_determinism(name, data):
    Xtr, Ytr, Xte, _, _, _, _ = data
    est = FAST[name]()
    params = est.get_params()
    c = clone(est)
    assert c.get_params() == params
    est.set_params(random_state=3)
    assert est.get_params()["random_state"] == 3
    a = FAST[name]().set_params(random_state=1).fit(Xtr, Ytr)
    b = FAST[name]().set_params(random_state=1).fit(Xtr, Ytr)
    Sa = a.decision_function(Xte)
    np.testing.assert_array_equal(Sa, b.decision_function(Xte))
    again = pickle.loads(pickle.dumps(a))
    np.testing.assert_array_equal(again.decision_function(Xte), Sa)


def test_mimlfast_threshold_and_batches(data):
    Xtr, Ytr, Xte, Yte, _, _, _ = data
    est = MIMLfast(n_epochs=5, batch_size=1, average_begin=0, random_state=0).fit(Xtr, Ytr)
    F = est.bag_scores(Xte)
    assert F.shape == (len(Xte), Ytr.shape[1] + 1)
    np.testing.assert_allclose(est.decision_function(Xte), F[:, :-1] - F[:, -1:])
    # the dummy separates labels: predictions are mostly right
    assert (est.predict(Xte) == Yte).mean() > 0.8
    # the norm constraints hold for the averaged model too
    assert np.linalg.norm(est.V_, axis=0).max() <= est.norm_up + 1e-9
    assert np.linalg.norm(est.W_, axis=1).max() <= est.norm_up + 1e-9
    big = MIMLfast(n_epochs=5, batch_size=16, random_state=0).fit(Xtr, Ytr)
    assert big.n_steps_ < est.n_steps_
    assert average_precision(Yte, big.decision_function(Xte)) > _chance_ap(Yte) + 0.15
    with pytest.raises(ValueError, match="dim"):
        MIMLfast(dim=0).fit(Xtr, Ytr)
    with pytest.raises(ValueError, match="features"):
        est.decision_function([np.zeros((2, 3))])


def test_misvm_keeps_a_positive_and_linear_kernel(data):
    Xtr, Ytr, Xte, Yte, _, _, _ = data
    est = MIMLmiSVM(kernel="linear", max_iter=5, random_state=0).fit(Xtr, Ytr)
    assert average_precision(Yte, est.decision_function(Xte)) > _chance_ap(Yte) + 0.1
    # on the training set every positive bag has a positive max score for a fitted label
    rbf = MIMLmiSVM(max_iter=5, random_state=0, n_jobs=2).fit(Xtr, Ytr)
    S = rbf.decision_function(Xtr)
    assert ((S > 0) == (Ytr == 1)).mean() > 0.9
    assert (rbf.n_iter_ >= 1).all()
    # a label with a single class gets a constant score
    Y1 = Ytr.copy()
    Y1[:, 0] = 0
    one = MIMLmiSVM(max_iter=2, random_state=0).fit(Xtr, Y1)
    assert one.estimators_[0] is None and np.all(one.decision_function(Xte)[:, 0] == -1.0)
    with pytest.raises(ValueError, match="kernel"):
        MIMLmiSVM(kernel="cosine").fit(Xtr, Ytr)


def test_mimlboost_parts(data):
    Xtr, Ytr, Xte, _, _, _, _ = data
    np.testing.assert_allclose(label_codes(15, 5), [0, 0.25, 0.5, 0.75, 1.0])
    assert label_codes(99, 3)[-1] == pytest.approx(np.log(100) / np.log(50))
    # the optimal c of sum W exp(a c): closed form for two groups, a = -/+ 1
    W = np.array([0.7, 0.3])
    a = np.array([-1.0, 1.0])
    assert _best_c(W, a) == pytest.approx(0.5 * np.log(0.7 / 0.3), rel=1e-6)
    assert _best_c(W, -a) == 0.0
    est = MIMLBoost(n_rounds=3, sample_size=200, random_state=0, verbose=False).fit(Xtr, Ytr)
    assert 1 <= est.n_rounds_ <= 3 and (est.estimator_weights_ > 0).all()
    S = est.decision_function(Xte)
    assert np.abs(S).max() <= est.estimator_weights_.sum() + 1e-9
    with pytest.raises(ValueError, match="n_rounds"):
        MIMLBoost(n_rounds=0).fit(Xtr, Ytr)


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_mimlboost_factorised_kernel_equals_svc(data, n_jobs):
    """One kernel block for all label codes == SVC.decision_function on [x, code_j]."""
    from mimlkit.learners.classic._instance_scaling import apply_scaling

    Xtr, Ytr, Xte, _, _, _, _ = data
    est = MIMLBoost(n_rounds=2, sample_size=300, random_state=0).fit(Xtr, Ytr)
    Xs = apply_scaling(Xte.instances, est.scale_offset_, est.scale_factor_)
    for svm in est.estimators_:
        D = _decision_matrix(svm, Xs, est.codes_, n_jobs=n_jobs, block=37)
        ref = np.stack([svm.decision_function(np.hstack([Xs, np.full((len(Xs), 1), c)]))
                        for c in est.codes_], axis=1)
        np.testing.assert_allclose(D, ref, rtol=1e-9, atol=1e-9)


def test_helpers():
    v = np.array([[1.0, 5.0], [3.0, 2.0], [0.0, 9.0], [7.0, 1.0], [7.0, 0.0]])
    off = np.array([0, 2, 5])
    m, arg = segment_argmax(v, off)
    np.testing.assert_array_equal(m, [[3, 5], [7, 9]])
    np.testing.assert_array_equal(arg, [[1, 0], [3, 2]])
    rows, new = gather_rows(off, np.array([1, 0, 1]))
    np.testing.assert_array_equal(rows, [2, 3, 4, 0, 1, 2, 3, 4])
    np.testing.assert_array_equal(new, [0, 3, 5, 8])
    o, f = fit_scaling(np.array([[1.0, 2.0], [3.0, 2.0]]), "standard")
    np.testing.assert_allclose(o, [2, 2])
    np.testing.assert_allclose(f, [1, 1])  # constant column keeps factor 1
    with pytest.raises(ValueError, match="scale"):
        fit_scaling(v, "bogus")


def test_reject_unobserved_labels(data):
    Xtr, Ytr, _, _, _, _, _ = data
    Y = Ytr.astype(np.int8).copy()
    Y[0, 0] = -1
    for name in FAST:
        with pytest.raises(ValueError, match="bag 0"):
            FAST[name]().fit(Xtr, Y)


def test_instance_learners_refuse_data_beyond_their_design_limits():
    from mimlkit.learners.base import RefusedData
    from mimlkit.learners.classic.mimlboost import MIMLBoost
    from mimlkit.learners.classic.mimlmisvm import MIMLmiSVM

    rng = np.random.default_rng(0)
    big = [rng.normal(size=(10_001, 2)).astype(np.float32) for _ in range(2)]
    Y = np.array([[1, 0], [0, 1]])
    with pytest.raises(RefusedData, match=r"20,002 instances > 20,000"):
        MIMLmiSVM().fit(big, Y)
    many = [rng.normal(size=(2, 2)).astype(np.float32) for _ in range(2_600)]
    Ym = (rng.random((2_600, 100)) < 0.1).astype(int)
    with pytest.raises(RefusedData, match=r"5,200 instances x 100 labels"):
        MIMLBoost().fit(many, Ym)
