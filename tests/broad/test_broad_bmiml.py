"""BMIML: IDO decision rules, ablation modes, global features, estimator contract."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold

from mimlkit.learners.broad.awlel import AWLEL
from mimlkit.learners.broad.bls import BroadLearningSystem
from mimlkit.learners.broad.bmiml import BMIML, tune_thresholds
from mimlkit.learners.broad.smipr import SMIPR
from mimlkit.metrics import average_precision


def _small(**kw):
    kw.setdefault("awlel", AWLEL(n_enhancement=40, max_iter=4))
    kw.setdefault("smipr", SMIPR(n_clusters=20, max_iter=60, hidden=(16,), alpha=1.0))
    return BMIML(random_state=0, **kw)


@pytest.fixture(scope="module")
def data():
    try:
        from mimlkit.datasets import make_miml_bags

        ds = make_miml_bags(n_bags=240, n_labels=4, n_features=8, bag_size=(3, 6),
                            cardinality=1.6, random_state=0)
        return ds.bags, ds.Y
    except ImportError:  # pragma: no cover - generator not available
        rng = np.random.default_rng(0)
        Y = (rng.random((240, 4)) < 0.4).astype(np.int8)
        Y[Y.sum(1) == 0, 0] = 1
        centres = rng.normal(size=(4, 8)) * 3
        bags = []
        for y in Y:
            inst = rng.normal(size=(4, 8))
            inst[: y.sum()] += centres[np.flatnonzero(y)]
            bags.append(inst)
        return bags, Y


def _split(bags, Y):
    from mimlkit.bags import as_bags

    b = as_bags(bags)
    return b.take(np.arange(160)), Y[:160], b.take(np.arange(160, 240)), Y[160:]


def test_paper_rule_never_emits_two_labels_per_label_can(data):
    Xtr, Ytr, Xte, Yte = _split(*data)
    paper = _small(decision="paper_softmax").fit(Xtr, Ytr)
    P = paper.predict(Xte)
    assert P.sum(axis=1).max() <= 1  # softmax outputs sum to 1: at most one passes τ = 0.8
    S = paper.decision_function(Xte)
    np.testing.assert_allclose(S.sum(axis=1), 1.0)
    # property: whatever the scores, τ ≥ 0.5 never lets two softmax entries through
    paper.threshold_ = np.full(Ytr.shape[1], 0.5)
    assert paper.predict(Xte).sum(axis=1).max() <= 1
    per = _small().fit(Xtr, Ytr)
    Pp = per.predict(Xte)
    if per.t_criterion_:  # "auto": on when it adds no error on held-out training scores
        assert Pp.sum(axis=1).min() >= 1
    assert Pp.sum(axis=1).max() >= 2  # multi-label sets do occur
    # same SMIPR scores, only the decision differs: the rankings agree within each bag
    r_paper = np.argsort(-S, axis=1)[:, 0]
    r_per = np.argsort(-per.decision_function(Xte), axis=1)[:, 0]
    assert np.mean(r_paper == r_per) > 0.9


def test_paper_softmax_rule_never_fires(data):
    """docs/bmiml.md: clipped scores lie in [0, 1], so a softmax entry is at most
    e / (e + K - 1) < 0.8 for K >= 2: the literal rule with tau = 0.8 gives no label."""
    Xtr, Ytr, Xte, _ = _split(*data)
    paper = _small(decision="paper_softmax", fusion_alpha=1.0,  # the paper's settings
                   awlel=AWLEL(n_enhancement=40, max_iter=4, reg_lambda=1e-3),
                   smipr=SMIPR(n_clusters=20, max_iter=60, hidden=(16,), alpha=1.0,
                               variant="max")).fit(Xtr, Ytr)
    K = Ytr.shape[1]
    S = paper.decision_function(Xte)
    assert S.max() <= np.e / (np.e + K - 1) + 1e-9
    assert paper.predict(Xte).sum() == 0


def test_tuned_thresholds(data):
    Xtr, Ytr, Xte, Yte = _split(*data)
    m = _small(tau="tune").fit(Xtr, Ytr)
    assert m.threshold_.shape == (Ytr.shape[1],)
    assert not np.allclose(m.threshold_, 0.5)
    Y = np.array([[1, 0], [1, 0], [0, 1], [0, 1]])
    P = np.array([[0.9, 0.2], [0.6, 0.1], [0.3, 0.7], [0.1, 0.4]])
    tau = tune_thresholds(Y, P)
    assert ((P > tau) == Y).all()
    with pytest.raises(ValueError, match="per_label"):
        _small(decision="paper_softmax", tau="tune").fit(Xtr, Ytr)


def test_modes_and_beats_chance(data):
    Xtr, Ytr, Xte, Yte = _split(*data)
    rng = np.random.default_rng(0)
    chance = np.mean([average_precision(Yte, rng.random(Yte.shape)) for _ in range(20)])
    aps = {}
    for mode in ("full", "awlel_only", "smipr_only"):
        m = _small(mode=mode).fit(Xtr, Ytr)
        aps[mode] = average_precision(Yte, m.decision_function(Xte))
        assert (m.awlel_ is None) == (mode == "smipr_only")
        assert (m.smipr_ is None) == (mode == "awlel_only")
    assert min(aps.values()) > chance + 0.15, (aps, chance)
    bls = BroadLearningSystem(n_enhancement=50, random_state=0).fit(Xtr, Ytr)
    assert average_precision(Yte, bls.decision_function(Xte)) > chance + 0.15


def test_user_global_features(data):
    Xtr, Ytr, Xte, Yte = _split(*data)
    Gtr = np.hstack([Xtr.pool("mean"), Ytr + 0.1])  # an informative user matrix
    Gte = np.hstack([Xte.pool("mean"), Yte + 0.1])
    m = _small(mode="awlel_only").fit(Xtr, Ytr, global_features=Gtr)
    assert average_precision(Yte, m.decision_function(Xte, global_features=Gte)) > 0.95
    with pytest.raises(ValueError, match="global_features"):
        m.decision_function(Xte)
    assert m.predict(Xte, global_features=Gte).shape == Yte.shape


def test_estimator_contract(data):
    Xtr, Ytr, Xte, Yte = _split(*data)
    est = _small()
    c = clone(est)
    assert c.get_params()["awlel__n_enhancement"] == 40
    c.set_params(awlel__reg_lambda=0.1, smipr__hidden=(8,))
    assert c.awlel.reg_lambda == 0.1 and est.awlel.reg_lambda == "auto"
    c.fit(Xtr, Ytr)
    S = c.decision_function(Xte)
    c2 = pickle.loads(pickle.dumps(c))
    np.testing.assert_allclose(c2.decision_function(Xte), S)
    # refit is deterministic
    np.testing.assert_allclose(clone(c).fit(Xtr, Ytr).decision_function(Xte), S, atol=1e-10)
    for cls in (AWLEL, SMIPR, BroadLearningSystem, BMIML):
        inst = cls()
        assert clone(inst).get_params() == inst.get_params()
    with pytest.raises(Exception, match="not fitted|fit"):
        BMIML().decision_function(Xte)


def test_gridsearch_bag_kfold(data):
    Xtr, Ytr, _, _ = _split(*data)
    gs = GridSearchCV(_small(mode="awlel_only"), {"awlel__reg_lambda": [1e-3, 1.0]},
                      cv=KFold(n_splits=2, shuffle=True, random_state=0))
    gs.fit(Xtr, Ytr)
    assert gs.best_params_["awlel__reg_lambda"] in (1e-3, 1.0)
    assert 0 < gs.best_score_ <= 1


def test_sampled_medoid_search_for_large_n(data):
    from mimlkit.bags import as_bags
    from mimlkit.distances import hausdorff
    from mimlkit.learners.broad._medoids import clara_medoids

    bags = as_bags(data[0])
    med = clara_medoids(bags, 10, n_samples=3, eval_size=100, random_state=0)
    assert med.shape == (10,) and np.unique(med).size == 10
    D = hausdorff(bags, bags.take(med))
    rand = np.random.default_rng(1).choice(len(bags), 10, replace=False)
    assert D.min(1).sum() < hausdorff(bags, bags.take(rand)).min(1).sum()
    # SMIPR switches to the sampled search above exact_max_bags
    Y = data[1]
    m = SMIPR(n_clusters=10, exact_max_bags=50, max_iter=30, hidden=(8,),
              random_state=0).fit(bags, Y)
    assert m.medoid_bags_.n_bags == 10 and m.transform(bags).shape == (len(bags), 10)


def test_smipr_scales_instances_in_blocks(data, monkeypatch):
    """SMIPR scales the instances block by block (no float64 copy of all of them at 120K
    bags); the blocks give exactly the values of the one-shot formula."""
    import mimlkit.learners.broad.smipr as smipr_mod
    from mimlkit.bags import as_bags

    bags = as_bags(data[0])
    m = SMIPR(n_clusters=10, max_iter=20, hidden=(8,), scale_instances="standard",
              random_state=0).fit(bags, data[1])
    whole = ((np.asarray(bags.instances, dtype=np.float64) - m.instance_mean_)
             / m.instance_scale_).astype(np.float32)
    monkeypatch.setattr(smipr_mod, "_SCALE_BLOCK_BYTES", 8 * bags.n_features * 7)  # 7 rows
    got = m._scaled(bags)
    assert got.instances.dtype == np.float32 and bags.n_instances > 7
    np.testing.assert_array_equal(got.instances, whole)
    np.testing.assert_array_equal(got.offsets, bags.offsets)
