"""scikit-learn contract of every registered bag learner (issue 14, item 1).

``cross_val_score`` / ``cross_validate`` / ``GridSearchCV`` with scikit-learn's multilabel
string scorers and with ``mimlkit.scoring.get_scorer`` give finite values equal to
mimlkit's own metrics recomputed by hand on the same (fixed) folds; bag transformers
(``mimlkit.preprocessing``) run inside ``Pipeline``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score, cross_validate
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline

from mimlkit import metrics as M
from mimlkit.bags import Bags
from mimlkit.datasets import make_miml_bags
from mimlkit.preprocessing import BagPCA, BagPooler, BagScaler
from mimlkit.registry import create, learner_spec, list_learners
from mimlkit.scoring import get_scorer, get_scorer_names

from .conftest import need_data

CV = KFold(n_splits=3, shuffle=True, random_state=0)
SK_SCORERS = ["average_precision", "f1_samples", "f1_micro", "f1_macro", "roc_auc",
              "roc_auc_ovr"]
MIML_SCORERS = ["one_error", "coverage", "ranking_loss", "average_precision", "hamming_loss"]

# small settings so that a fit takes well under a second on the test data
_AWLEL = dict(n_enhancement=50, n_windows=4, max_iter=3, sparse_iter=10)
FAST = {
    "awlel": _AWLEL, "deepmiml": dict(epochs=3, hidden=32), "multilabel-head": dict(max_epochs=5),
    "smipr": dict(epochs=3, max_iter=50), "mimlboost": dict(n_rounds=3),
    "mimlmisvm": dict(max_iter=1), "mimlfast": dict(n_epochs=5),
}
#: cheap enough for the default suite's full check (every scorer through cross_val_score)
CHEAP = ("mimlknn", "transfer-lr", "prior")
#: learners whose contract check takes > ~5 s here even with FAST settings
SLOW = {"bmiml", "smipr", "dsmil", "transmil", "maxmil", "meanmil", "abmil", "pooled-linear",
        "bls", "awlel"}


def _learner(name: str, threshold_mode: str | None = "fixed"):
    params = create(name).get_params(deep=False)
    kw = {k: v for k, v in FAST.get(name, {}).items() if k in params}
    if "random_state" in params:
        kw["random_state"] = 0
    if threshold_mode is not None and "threshold_mode" in params:
        kw["threshold_mode"] = threshold_mode
    if name == "bmiml":
        kw.update(awlel=create("awlel", random_state=0, **_AWLEL),
                  smipr=create("smipr", random_state=0, **FAST["smipr"]))
    return create(name, **kw)


def _marks(name: str, full: bool = False):
    slow = name in SLOW or not learner_spec(name).quick or (full and name not in CHEAP)
    return pytest.param(name, marks=[pytest.mark.slow] if slow else [], id=name)


BAG_LEARNERS = list_learners(input="bags")


@pytest.fixture(scope="module")
def data():
    ds = make_miml_bags(n_bags=60, n_labels=4, random_state=3)
    # every test fold has both classes of every label (roc_auc is defined) -- checked
    for _, te in CV.split(ds.Y):
        col = ds.Y[te]
        assert (col.max(axis=0) == 1).all() and (col.min(axis=0) == 0).all()
    return ds


def _all_scorers() -> dict:
    out = {f"sk_{s}": s for s in SK_SCORERS}
    out.update({f"miml_{s}": get_scorer(s) for s in MIML_SCORERS})
    return out


def _expected(est, X, Y) -> dict[str, float]:
    """mimlkit's own metrics of a fitted estimator on (X, Y), named as ``_all_scorers``
    (losses negated as scikit-learn scorers report them)."""
    S = est.decision_function(X)
    P = est.predict_proba(X)
    H = est.predict(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {
            "sk_average_precision": M.mean_average_precision(Y, S),
            "sk_f1_samples": M.example_f1(Y, H, convention="sklearn"),
            "sk_f1_micro": M.micro_f1(Y, H),
            "sk_f1_macro": M.macro_f1(Y, H),
            "sk_roc_auc": M.macro_auc(Y, S),
            "sk_roc_auc_ovr": M.macro_auc(Y, P),  # predict_proba path
            "miml_one_error": -M.one_error(Y, S),
            "miml_coverage": -M.coverage(Y, S),
            "miml_ranking_loss": -M.ranking_loss(Y, S),
            "miml_average_precision": M.average_precision(Y, S),
            "miml_hamming_loss": -M.hamming_loss(Y, H),
        }


def _by_hand(est, bags, Y) -> list[dict[str, float]]:
    out = []
    for tr, te in CV.split(Y):
        fitted = clone(est).fit(bags[tr], Y[tr])
        out.append(_expected(fitted, bags[te], Y[te]))
    return out


@pytest.mark.parametrize("name", [_marks(n) for n in BAG_LEARNERS])
def test_fitted_attributes_and_cross_validate_scores(name, data):
    """Every scorer finite and equal to mimlkit's metric of the same fitted split model."""
    est = _learner(name)
    assert not hasattr(est, "classes_")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cv = cross_validate(est, data.bags, data.Y, cv=CV, scoring=_all_scorers(),
                            return_estimator=True, error_score="raise")
    K = data.Y.shape[1]
    for (_, te), fitted in zip(CV.split(data.Y), cv["estimator"]):
        assert fitted.n_features_in_ == data.bags.n_features
        assert len(fitted.classes_) == K and all(list(c) == [0, 1] for c in fitted.classes_)
        P = fitted.predict_proba(data.bags[te])
        assert P.shape == (len(te), K) and np.all((P >= 0) & (P <= 1))
        assert fitted.decision_function(data.bags[te]).shape == (len(te), K)
    for i, expect in enumerate(_by_hand_from(cv["estimator"], data)):
        for key, value in expect.items():
            got = cv[f"test_{key}"][i]
            assert np.isfinite(got), (key, got)
            assert got == pytest.approx(value, rel=1e-9, abs=1e-12), key


def _by_hand_from(fitted_models, data):
    for (_, te), fitted in zip(CV.split(data.Y), fitted_models):
        yield _expected(fitted, data.bags[te], data.Y[te])


@pytest.mark.parametrize("name", [_marks(n, full=True) for n in BAG_LEARNERS])
def test_cross_val_score_and_gridsearch_equal_by_hand(name, data):
    """Fresh fits in ``cross_val_score`` / ``GridSearchCV`` give the values recomputed by
    hand on the same folds (learners are seeded, so refits are identical)."""
    est = _learner(name)
    expect = _by_hand(est, data.bags, data.Y)
    scorers = _all_scorers()
    names = list(scorers) if name in CHEAP else ["sk_f1_samples", "miml_one_error"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for key in names:
            got = cross_val_score(est, data.bags, data.Y, cv=CV, scoring=scorers[key],
                                  error_score="raise")
            np.testing.assert_allclose(got, [e[key] for e in expect], rtol=1e-9, atol=1e-12,
                                       err_msg=key)
        # a one-point grid on a parameter every learner has: the scores are the same fits
        params = est.get_params(deep=False)
        key = "random_state" if "random_state" in params else next(iter(sorted(params)), None)
        grid = {key: [params[key]]} if key is not None else {}
        gs = GridSearchCV(est, grid, cv=CV, scoring=scorers,
                          refit="sk_f1_micro", error_score="raise")
        gs.fit(data.bags, data.Y)
    assert np.isfinite(gs.best_score_)
    for key in scorers:
        for i, e in enumerate(expect):
            got = gs.cv_results_[f"split{i}_test_{key}"][0]
            assert got == pytest.approx(e[key], rel=1e-9, abs=1e-12), (key, i)
    assert gs.predict(data.bags[:4]).shape == (4, data.Y.shape[1])


def test_gridsearch_picks_on_finite_scores(data):
    """The reported bug: GridSearchCV(scoring="f1_micro") had best_score_ = nan."""
    gs = GridSearchCV(_learner("mimlknn"), {"n_references": [3, 7]}, cv=CV, scoring="f1_micro",
                      error_score="raise").fit(data.bags, data.Y)
    scores = gs.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores))
    assert gs.best_score_ == pytest.approx(scores.max())
    assert gs.best_params_["n_references"] == [3, 7][int(np.argmax(scores))]


def test_neg_log_loss_is_finite_and_is_sklearns_on_predict_proba(data):
    est = _learner("mimlknn")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # y_prob rows of a multilabel target do not sum to 1
        got = cross_val_score(est, data.bags, data.Y, cv=CV, scoring="neg_log_loss",
                              error_score="raise")
        for (tr, te), g in zip(CV.split(data.Y), got):
            P = clone(est).fit(data.bags[tr], data.Y[tr]).predict_proba(data.bags[te])
            assert g == pytest.approx(-log_loss(data.Y[te], P), rel=1e-9)
    assert np.all(np.isfinite(got))


@pytest.mark.parametrize("form", ["bags", "list", "3d"])
def test_input_forms_split_by_sklearn(form, data):
    m = int(data.bags.sizes.min())
    eq = Bags.from_list([b[:m] for b in data.bags])  # equal-size bags for the 3-D form
    X = {"bags": eq, "list": eq.to_list(), "3d": np.stack(eq.to_list())}[form]
    est = _learner("mimlknn")
    got = cross_val_score(est, X, data.Y, cv=CV, scoring=get_scorer("ranking_loss"),
                          error_score="raise")
    ref = cross_val_score(est, eq, data.Y, cv=CV, scoring=get_scorer("ranking_loss"))
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    assert np.all(np.isfinite(got))


def test_default_predict_proba_is_monotone_map_of_scores(data):
    est = _learner("mimlsvm").fit(data.bags, data.Y)
    S = est.decision_function(data.bags)
    P = est.predict_proba(data.bags)
    for k in range(S.shape[1]):  # same order of bags per label
        o = np.argsort(S[:, k], kind="stable")
        assert np.all(np.diff(P[o, k]) >= 0)
    t = np.broadcast_to(est._threshold(), S.shape[1:])
    fin = np.isfinite(t)
    np.testing.assert_array_equal((P > 0.5)[:, fin], (S > t)[:, fin])


# ------------------------------------------------------------------------- scorers
def test_get_scorer_signs_names_and_errors(data):
    est = _learner("mimlknn").fit(data.bags, data.Y)
    S, H = est.decision_function(data.bags), est.predict(data.bags)
    assert get_scorer("one_error")(est, data.bags, data.Y) == -M.one_error(data.Y, S)
    assert get_scorer("neg_coverage")(est, data.bags, data.Y) == -M.coverage(data.Y, S)
    assert get_scorer("miml_average_precision")(est, data.bags, data.Y) == \
        M.average_precision(data.Y, S)
    assert get_scorer("coverage", convention="sklearn")(est, data.bags, data.Y) == \
        -M.coverage(data.Y, S, convention="sklearn")
    assert get_scorer("overall")(est, data.bags, data.Y) == M.overall_score(data.Y, S, H)
    assert get_scorer("f1_samples")._score_func.__name__ == "f1_score"  # sklearn passthrough
    assert "one_error" in get_scorer_names() and "per_label_ap" not in get_scorer_names()
    with pytest.raises(ValueError, match="unknown scorer 'nope'"):
        get_scorer("nope")
    with pytest.raises(ValueError, match="one value per label"):
        get_scorer("per_label_ap")
    with pytest.raises(ValueError, match="not a loss"):
        get_scorer("neg_average_precision")


def test_scorer_exported_from_metrics():
    assert M.get_scorer is get_scorer


# ------------------------------------------------------------------------- transformers
def test_bag_scaler_pca_pooler_fit_on_training_instances(data):
    bags = data.bags
    sc = BagScaler().fit(bags[:40])
    out = sc.transform(bags[:40])
    assert isinstance(out, Bags) and np.array_equal(out.offsets, bags[:40].offsets)
    np.testing.assert_allclose(out.instances.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(out.instances.std(axis=0), 1, atol=1e-4)
    mm = BagScaler("minmax").fit(bags).transform(bags)
    assert mm.instances.min() == pytest.approx(0, abs=1e-6)
    assert mm.instances.max() == pytest.approx(1, abs=1e-6)
    rb = BagScaler("robust").fit(bags).transform(bags)
    np.testing.assert_allclose(np.median(rb.instances, axis=0), 0, atol=1e-5)
    pca = BagPCA(n_components=3, random_state=0).fit(bags)
    z = pca.transform(bags)
    assert z.n_features == 3 and z.n_bags == bags.n_bags and pca.n_components_ == 3
    np.testing.assert_allclose(z.instances, pca.transformer_.transform(bags.instances),
                               rtol=1e-5, atol=1e-5)
    mx = BagPooler("meanmax").fit(bags).transform(bags.to_list())
    np.testing.assert_allclose(mx, np.hstack([bags.pool("mean"), bags.pool("max")]),
                               rtol=1e-6)
    assert list(BagPooler("meanmax").fit(bags).get_feature_names_out()[[0, -1]]) == \
        ["mean_x0", f"max_x{bags.n_features - 1}"]
    with pytest.raises(ValueError, match="fitted with 16"):
        sc.transform([np.ones((2, 5))])
    with pytest.raises(ValueError, match="method must be one of"):
        BagScaler("zscore").fit(bags)
    with pytest.raises(ValueError, match="pool must be one of"):
        BagPooler("median").fit(bags)


def _pooled_pipeline():
    return Pipeline([("scale", BagScaler()), ("pool", BagPooler("meanmax")),
                     ("clf", OneVsRestClassifier(LogisticRegression(max_iter=500)))])


def test_pipeline_with_sklearn_estimator_in_cv_and_gridsearch(data):
    pipe = _pooled_pipeline()
    scorers = {"ap": "average_precision", "f1": "f1_samples", "rl": get_scorer("ranking_loss")}
    cv = cross_validate(pipe, data.bags, data.Y, cv=CV, scoring=scorers, error_score="raise",
                        return_estimator=True)
    for (_, te), fitted, rl in zip(CV.split(data.Y), cv["estimator"], cv["test_rl"]):
        # the scaler saw the training part only: its mean differs from the full data's
        S = fitted.decision_function(data.bags[te])
        assert rl == pytest.approx(-M.ranking_loss(data.Y[te], S), rel=1e-12)
    assert all(np.all(np.isfinite(cv[f"test_{k}"])) for k in scorers)
    gs = GridSearchCV(pipe, {"scale__method": ["standard", "minmax"],
                             "pool__pool": ["mean", "meanmax"]},
                      cv=CV, scoring="average_precision", error_score="raise")
    gs.fit(data.bags.to_list(), data.Y)
    assert np.all(np.isfinite(gs.cv_results_["mean_test_score"]))
    # a MIML learner after bag transformers
    mp = Pipeline([("scale", BagScaler()), ("pca", BagPCA(8, random_state=0)),
                   ("miml", _learner("mimlknn"))])
    got = cross_val_score(mp, data.bags, data.Y, cv=CV, scoring="f1_micro", error_score="raise")
    assert np.all(np.isfinite(got))


def test_pooled_pipeline_on_scene():
    from mimlkit.datasets import load_dataset

    ds = load_dataset(need_data("miml_scene", "miml_03_data.arff"))
    got = cross_val_score(_pooled_pipeline(), ds.bags, ds.Y, cv=CV,
                          scoring="average_precision", error_score="raise")
    assert got.shape == (3,) and np.all(np.isfinite(got))
    prior_map = float(ds.Y.mean(axis=0).mean())  # mAP of constant scores = mean prevalence
    assert got.mean() > prior_map + 0.2
