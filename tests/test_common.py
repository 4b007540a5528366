"""Estimator contract for every registered, importable bag learner (+ sklearn common checks).

Learners whose modules are not there yet are skipped with the reason; new registry entries
are picked up without changes here.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.utils.estimator_checks import parametrize_with_checks

from mimlkit.bags import Bags
from mimlkit.learners.pooled import PooledLinear
from mimlkit.registry import get_learner_class, learner_spec, list_learners

BAG_LEARNERS = list_learners(input="bags")

# fast-fitting overrides (only the ones a learner has are applied)
_QUICK = {"max_iter": 10, "n_epochs": 2, "epochs": 2, "max_epochs": 2, "min_steps": None,
          "n_iter": 5,
          "n_estimators": 3, "n_rounds": 3, "hidden_size": 8, "batch_size": 8,
          "n_medoids": 4, "k": 3, "n_enhancement": 40, "n_windows": 3, "sparse_iter": 5}


def _tiny(seed=0, n=30, d=4, k=3):
    rng = np.random.default_rng(seed)
    X = [rng.normal(size=(int(rng.integers(1, 5)), d)).astype(np.float32) for _ in range(n)]
    Y = (rng.random((n, k)) > 0.6).astype(np.int8)
    Y[:, 0] |= (np.array([b[:, 0].max() for b in X]) > 0.8).astype(np.int8)
    Y[np.arange(n), rng.integers(0, k, n)] = 1
    Y[:2, 1] = 0  # keep both classes in every label
    Y[2:4, 1] = 1
    return X, Y


def _make(name):
    try:
        cls = get_learner_class(name)
    except (ImportError, AttributeError) as exc:
        pytest.skip(f"{name} not available yet: {exc}")
    est = cls(**learner_spec(name).params)
    names = set(est.get_params(deep=False))
    over = {k: v for k, v in _QUICK.items() if k in names}
    if "random_state" in names:
        over["random_state"] = 0
    return est.set_params(**over)


@pytest.mark.parametrize("name", BAG_LEARNERS)
def test_clone_and_params(name):
    est = _make(name)
    params = est.get_params(deep=False)
    c = clone(est)
    assert type(c) is type(est)
    assert c.get_params(deep=False).keys() == params.keys()
    for k, v in params.items():
        assert c.get_params(deep=False)[k] is v or c.get_params(deep=False)[k] == v or (
            isinstance(v, float) and np.isnan(v)), k
    # set_params round trip on one parameter
    key = sorted(params)[0]
    assert est.set_params(**{key: params[key]}) is est
    with pytest.raises(ValueError):
        est.set_params(not_a_parameter_xyz=1)


@pytest.mark.parametrize("name", BAG_LEARNERS)
def test_fit_predict_pickle(name):
    X, Y = _tiny()
    est = _make(name)
    assert not any(k.endswith("_") and not k.startswith("_") for k in vars(est)), \
        "fitted attributes set before fit"
    with pytest.raises(Exception):  # noqa: B017 - NotFittedError or subclass
        est.decision_function(X)
    est.fit(X, Y)
    S = np.asarray(est.decision_function(X))
    assert S.shape == (len(X), Y.shape[1])
    assert np.isfinite(S).all()
    P = est.predict(X)
    assert P.shape == Y.shape
    assert set(np.unique(P)) <= {0, 1}
    if getattr(est, "t_criterion_", False):
        assert (P.sum(axis=1) >= 1).all(), "T-criterion: every bag keeps at least one label"
    if name == "empty":
        assert P.sum() == 0
    # same results from Bags input
    np.testing.assert_allclose(est.decision_function(Bags.from_list(X)), S, rtol=1e-5,
                               atol=1e-6)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_allclose(again.decision_function(X), S, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name", BAG_LEARNERS)
def test_gridsearch_bag_level(name):
    X, Y = _tiny(n=36)
    est = _make(name)
    params = est.get_params(deep=False)
    # one harmless parameter to search over
    for key in ("C", "t_criterion", "random_state"):
        if key in params:
            grid = {key: [params[key], params[key]]} if key != "C" else {"C": [0.5, 2.0]}
            break
    else:
        pytest.skip(f"{name}: no common parameter to grid over")
    gs = GridSearchCV(estimator=est, param_grid=grid,
                      cv=KFold(n_splits=3, shuffle=True, random_state=0), n_jobs=1,
                      error_score="raise")
    gs.fit(X, Y)
    assert gs.best_estimator_.decision_function(X).shape == Y.shape
    assert np.isfinite(gs.best_score_)


# ----------------------------------------------------------------------------- PooledLinear
def test_pooled_linear_constant_label_and_pools():
    X, Y = _tiny()
    Y = Y.copy()
    Y[:, 2] = 0
    for pool in ("mean", "max", "meanmax"):
        est = PooledLinear(pool=pool).fit(X, Y)
        S = est.decision_function(X)
        assert np.ptp(S[:, 2]) == 0 and S[0, 2] < 0  # constant, negative log-odds
        assert est.coef_.shape[1] == (8 if pool == "meanmax" else 4)
        Si = est.decision_function_instances(X)
        assert Si.shape == (sum(len(b) for b in X), 3)
    est = PooledLinear(pool="mean").fit(X, Y)
    Si = est.decision_function_instances(X)
    bags = Bags.from_list(X)
    mean_inst = np.add.reduceat(Si, bags.offsets[:-1], axis=0) / bags.sizes[:, None]
    np.testing.assert_allclose(mean_inst, est.decision_function(X), rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match="pool"):
        PooledLinear(pool="median").fit(X, Y)
    with pytest.raises(ValueError, match="C must be"):
        PooledLinear(C=0).fit(X, Y)


def test_pooled_linear_learns_and_unobserved():
    rng = np.random.default_rng(1)
    n = 200
    X = [rng.normal(size=(5, 3)) for _ in range(n)]
    Y = np.stack([[int(b[:, 0].mean() > 0), int(b[:, 1].mean() > 0)] for b in X])
    est = PooledLinear().fit(X, Y)
    assert ((est.decision_function(X) > 0) == Y).mean() > 0.95
    Yu = Y.astype(np.int8).copy()
    Yu[rng.random(Yu.shape) < 0.5] = -1  # unobserved entries are ignored per label
    est2 = PooledLinear().fit(X, Yu)
    assert ((est2.decision_function(X) > 0) == Y).mean() > 0.9
    with pytest.raises(ValueError, match="features"):
        est.decision_function([rng.normal(size=(2, 4))])


def test_pooled_linear_n_jobs_identical():
    X, Y = _tiny()
    a = PooledLinear(n_jobs=1).fit(X, Y).decision_function(X)
    b = PooledLinear(n_jobs=2).fit(X, Y).decision_function(X)
    np.testing.assert_allclose(a, b)


# scikit-learn's common checks in instance mode (2-D X = one-instance bags).
_POOLED_XFAIL = {
    # mimlkit learners are multi-label: y must be a 0/1(/-1) indicator matrix; the checks
    # below feed string / multi-class / regression targets that have no MIML meaning.
    "check_classifiers_classes": "string / multi-class targets are not label indicators",
    "check_classifiers_train": "multi-class y is not a label-indicator matrix",
    "check_classifiers_regression_target": "continuous y is rejected with a MIML-specific "
                                          "message, not sklearn's 'Unknown label type'",
    "check_classifiers_one_label": "error message is MIML-specific",
    "check_classifier_multioutput": "predict_proba returns an n x K array, not a list",
    "check_supervised_y_2d": "2-D y is the normal case here (no DataConversionWarning)",
    "check_classifier_data_not_an_array": "multi-class y",
    "check_estimators_dtypes": "multi-class y",
    "check_dtype_object": "multi-class / string y",
    "check_fit2d_1feature": "multi-class y",
    "check_fit2d_predict1d": "multi-class y",
    "check_estimators_empty_data": "error message differs (Bags: 'no bags given')",
    "check_decision_proba_consistency": "multi-class y",
    "check_sample_weight_equivalence_on_dense_data": "no sample_weight",
    "check_class_weight_classifiers": "multi-class y",
    "check_classifier_not_supporting_multiclass": "multi-class y is rejected by check_labels "
                                                  "with a MIML message (values must be 0/1/-1)",
    "check_classifiers_multilabel_output_format_predict": "int8 predictions",
    "check_complex_data": "error message differs",
    "check_estimator_sparse_array": "multi-class y",
    "check_estimator_sparse_matrix": "multi-class y",
    "check_estimator_sparse_tag": "multi-class y",
    "check_requires_y_none": "error message differs",
    "check_n_features_in_after_fitting": "error message differs",
}


def _pooled_expected_failed(est):
    return _POOLED_XFAIL


@parametrize_with_checks([PooledLinear()], expected_failed_checks=_pooled_expected_failed)
def test_sklearn_common_checks_pooled(estimator, check):
    check(estimator)
