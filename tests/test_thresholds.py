"""Data-chosen thresholds, the T-criterion rule, trivial baselines and the paper preset."""

from __future__ import annotations

import numpy as np
import pytest

from mimlkit.datasets import make_miml_bags
from mimlkit.learners._thresholds import choose_thresholds, fold_indices, t_criterion_helps
from mimlkit.metrics import average_precision, hamming_loss
from mimlkit.registry import create, list_learners, preset_params


def _errors(S, Y, t):
    return int(((S > t) != (Y == 1)).sum())


def test_hamming_thresholds_never_worse_than_never_predicting():
    rng = np.random.default_rng(0)
    Y = (rng.random((200, 6)) < [0.5, 0.3, 0.1, 0.02, 0.6, 0.0]).astype(int)
    S = rng.normal(size=Y.shape) + 1.5 * Y[:, :] * np.array([1, 1, 1, 0, 0.2, 0])
    t = choose_thresholds(S, Y, "hamming", 0.0)
    for k in range(Y.shape[1]):
        assert _errors(S[:, k], Y[:, k], t[k]) <= int(Y[:, k].sum())
    # an uninformative label (column 3: no signal, 2 % positives) is never predicted
    assert np.isinf(t[3]) and t[3] > 0
    # an informative one gets a finite threshold that beats both 0 and never
    assert np.isfinite(t[0])
    assert _errors(S[:, 0], Y[:, 0], t[0]) < min(_errors(S[:, 0], Y[:, 0], 0.0), Y[:, 0].sum())


def test_hamming_threshold_is_the_error_minimiser():
    rng = np.random.default_rng(1)
    y = (rng.random(300) < 0.4).astype(int)
    s = rng.normal(size=300) + 2 * y
    t = choose_thresholds(s[:, None], y[:, None], "hamming", 0.0)[0]
    grid = np.concatenate([np.sort(s), [np.inf]])
    best = min(_errors(s, y, g) for g in grid)
    assert _errors(s, y, t) == best


def test_f1_and_rate_modes():
    rng = np.random.default_rng(2)
    y = (rng.random(400) < 0.1).astype(int)
    s = rng.normal(size=400) + 1.2 * y
    t_f1 = choose_thresholds(s[:, None], y[:, None], "f1", 0.0)[0]
    t_ham = choose_thresholds(s[:, None], y[:, None], "hamming", 0.0)[0]
    assert (s > t_f1).sum() >= (s > t_ham).sum()  # F1 favours recall on a rare label
    t_rate = choose_thresholds(s[:, None], y[:, None], "rate", 0.0)[0]
    assert abs(int((s > t_rate).sum()) - int(y.sum())) <= 1
    with pytest.raises(ValueError, match="threshold_mode"):
        choose_thresholds(s[:, None], y[:, None], "best", 0.0)


def test_unobserved_entries_are_ignored():
    Y = np.array([[1], [0], [-1], [-1]])
    S = np.array([[2.0], [-2.0], [5.0], [-5.0]])
    t = choose_thresholds(S, Y, "hamming", 0.0, margin_z=0, cross_check=False, fdr=0)[0]
    assert -2.0 < t < 2.0


def test_a_gain_within_noise_does_not_switch_a_label_on():
    # 4 held-out bags above the cut: 3 positives, 1 negative -> gain 2 < 1.645 * sqrt(4)
    s = np.array([5.0, 4.0, 3.0, 2.5] + [0.0] * 96)[:, None]
    y = np.array([1, 1, 0, 1] + [0] * 96)[:, None]
    assert np.isinf(choose_thresholds(s, y, "hamming", 0.0)[0])
    assert np.isfinite(choose_thresholds(s, y, "hamming", 0.0, margin_z=0, fdr=0)[0])
    # 19 of 20 right above the cut: gain 18 >= 1.645 * sqrt(20), also across halves
    s2 = np.array([5.0 - 0.1 * i for i in range(20)] + [0.0] * 80)[:, None]
    y2 = np.array([1] * 4 + [0] + [1] * 15 + [0] * 80)[:, None]
    t = choose_thresholds(s2, y2, "hamming", 0.0)[0]
    assert np.isfinite(t) and int((s2[:, 0] > t).sum()) == 20


def test_cross_check_drops_a_threshold_that_only_fits_its_own_bags():
    # noise scores, 4 % positives: the best threshold on all bags saves a little (lucky top
    # scores) but the threshold chosen on one half loses errors on the other half
    rng = np.random.default_rng(3)
    y = (rng.random(400) < 0.04).astype(int)
    s = rng.normal(size=400)
    from mimlkit.learners._thresholds import cross_checked_gain

    assert cross_checked_gain(s, y == 1, 0.0, 0.0) <= 0
    assert np.isinf(choose_thresholds(s[:, None], y[:, None], "hamming", 0.0, margin_z=0,
                                      fdr=0, cross_check=True)[0])
    # a separable label passes both halves: 8 of 24 bags, all above the rest
    s2 = np.r_[np.linspace(2, 3, 8), np.linspace(-3, -2, 16)]
    y2 = np.r_[np.ones(8, int), np.zeros(16, int)]
    assert cross_checked_gain(s2, y2 == 1) == 8
    t = choose_thresholds(s2[:, None], y2[:, None], "hamming", 0.0, cross_check=True)[0]
    assert np.isfinite(t) and ((s2 > t) == (y2 == 1)).all()


def test_many_noise_labels_raise_the_margin_benjamini_hochberg():
    from scipy.stats import norm

    from mimlkit.learners._thresholds import MARGIN_Z, fdr_margin

    # one label with 6 of 6 right above the cut: gain 6 >= 1.645 * sqrt(6) = 4.03
    n = 330
    s_good = np.r_[np.full(6, 3.0), np.zeros(n - 6)]
    y_good = np.r_[np.ones(6, int), np.zeros(n - 6, int)]
    assert np.isfinite(choose_thresholds(s_good[:, None], y_good[:, None], "hamming", 0.0)[0])
    # ... alone it passes; among 59 rare labels the learner cannot predict, 6 of 6 is what
    # luck gives one label in ~60, so the step-up margin rises and the label stays off
    rng = np.random.default_rng(4)
    Yn = (rng.random((n, 59)) < 0.03).astype(int)
    Sn = rng.normal(size=Yn.shape)
    S, Y = np.c_[s_good, Sn], np.c_[y_good, Yn]
    z = fdr_margin(S, Y, MARGIN_Z, 0.05)
    assert z > norm.isf(0.05 / 60) - 1e-9 or np.isinf(z)
    assert np.isinf(choose_thresholds(S, Y, "hamming", 0.0)[0])
    assert np.isfinite(choose_thresholds(S, Y, "hamming", 0.0, fdr=0)[0])
    # when every label is strong the margin stays the per-label one
    Ys = (rng.random((n, 20)) < 0.3).astype(int)
    Ss = rng.normal(size=Ys.shape) + 4 * Ys
    assert fdr_margin(Ss, Ys, MARGIN_Z, 0.05) == pytest.approx(MARGIN_Z)
    assert np.isfinite(choose_thresholds(Ss, Ys, "hamming", 0.0)).all()


def test_t_criterion_needs_a_margin_beyond_noise():
    S = np.array([[1.0, 0.0]] * 5)
    thr = np.array([np.inf, np.inf])
    Y = np.array([[1, 0]] * 3 + [[0, 1]] * 2)  # top label right 3 of 5 times
    assert not t_criterion_helps(S, Y, thr)
    assert t_criterion_helps(S, Y, thr, margin_z=0)
    S10 = np.array([[1.0, 0.0]] * 10)
    Y10 = np.array([[1, 0]] * 10)
    assert t_criterion_helps(S10, Y10, thr)  # 10 of 10: 10 >= 1.645 * sqrt(10)


def test_t_criterion_helps_rule():
    S = np.array([[0.2, 0.1], [0.3, 0.1], [0.1, 0.4]])
    thr = np.array([0.5, 0.5])
    assert t_criterion_helps(S, np.array([[1, 0], [1, 0], [0, 1]]), thr, margin_z=0)
    assert not t_criterion_helps(S, np.array([[1, 0], [1, 0], [0, 1]]), thr, margin_z=3.09)
    assert not t_criterion_helps(S, np.array([[0, 1], [0, 1], [1, 0]]), thr, margin_z=0)


def test_fold_indices_cover_every_bag_once():
    for k in (1, 3):
        folds = fold_indices(50, k, 0)
        held = np.concatenate([te for _, te in folds])
        assert len(set(held.tolist())) == held.size
        for tr, te in folds:
            assert not set(tr) & set(te)
    assert np.concatenate([te for _, te in fold_indices(50, 3, 0)]).size == 50


def _sparse_labels(n=240, seed=0):
    """Bags whose labels are rare (density ~5 %) and partly unlearnable."""
    ds = make_miml_bags(n_bags=n, n_labels=8, n_features=6, random_state=seed)
    rng = np.random.default_rng(seed)
    Y = ds.Y.copy()
    Y[:, 4:] = (rng.random((n, 4)) < 0.03).astype(Y.dtype)  # noise labels
    return ds.bags, Y


@pytest.mark.parametrize("name", ["pooled-linear", "mimlknn", "mimlsvm", "mimlfast", "bls"])
def test_default_learner_not_worse_than_empty_on_noise_labels(name):
    bags, Y = _sparse_labels()
    tr, te = np.arange(160), np.arange(160, 240)
    est = create(name, random_state=0)
    if "n_epochs" in est.get_params():
        est.set_params(n_epochs=10)
    est.fit(bags.take(tr), Y[tr])
    P = est.predict(bags.take(te))
    # the noise labels (no signal) are not predicted
    assert P[:, 4:].sum() <= 2
    assert hasattr(est, "calibration_")
    assert np.ndim(est.threshold_) == 1


def test_t_criterion_auto_off_with_empty_label_sets():
    ds = make_miml_bags(n_bags=120, n_labels=4, random_state=3)
    Y = ds.Y.copy()
    Y[:30] = 0  # "no finding" bags
    est = create("pooled-linear").fit(ds.bags, Y)
    assert est.t_criterion_ is False
    fixed = create("pooled-linear", preset="paper").fit(ds.bags, ds.Y)
    assert fixed.t_criterion_ is True and not hasattr(fixed, "calibration_")
    assert (fixed.predict(ds.bags).sum(axis=1) >= 1).all()


def test_paper_preset_is_literal():
    p = preset_params("mimlsvm", "paper")
    assert p["scale"] is None and p["threshold_mode"] == "fixed" and p["t_criterion"] is True
    assert create("mimlsvm", preset="paper").get_params()["scale"] is None
    assert create("mimlsvm").get_params()["scale"] == "auto"
    with pytest.raises(ValueError, match="unknown preset"):
        create("mimlsvm", preset="nope")


def test_baselines():
    ds = make_miml_bags(n_bags=90, n_labels=5, random_state=0)
    prior = create("prior").fit(ds.bags, ds.Y)
    S = prior.decision_function(ds.bags)
    assert np.allclose(S, ds.Y.mean(axis=0))
    assert ((prior.predict(ds.bags) == 1) == (ds.Y.mean(axis=0) > 0.5)).all()
    empty = create("empty").fit(ds.bags, ds.Y)
    assert empty.predict(ds.bags).sum() == 0
    assert hamming_loss(ds.Y, empty.predict(ds.bags)) == pytest.approx(ds.Y.mean())
    # a constant scorer is worst-case on ranking metrics: below any informative learner
    good = create("pooled-linear").fit(ds.bags, ds.Y)
    assert average_precision(ds.Y, good.decision_function(ds.bags)) > average_precision(ds.Y, S)
    assert {"prior", "empty"} <= set(list_learners(family="baseline"))


def test_paper_preset_equals_the_settings_of_the_published_scene_runs():
    """README's Scene rows were run before the data-adaptive defaults: the paper preset must
    give exactly those settings (scale, fixed threshold, T-criterion, RBF widths)."""
    expect = {
        "mimlsvm": {"scale": None, "gamma": "scale", "ratio": 0.2, "C": 1.0},
        "mimlknn": {"scale": None, "threshold": 0.0, "n_references": 10, "n_citers": 20},
        "mimlfast": {"scale": "standard", "norm_up": 10.0, "bias": None},
        "mimlboost": {"scale": "minmax", "gamma": 10.0, "code_scale": "paper"},
        "smipr": {"variant": "max", "scale_instances": False, "alpha": 10.0},
        "awlel": {"reg_lambda": 1e-3, "max_iter": 10},
        "bmiml": {"fusion_alpha": 1.0, "awlel__reg_lambda": 1e-3, "awlel__max_iter": 10,
                  "smipr__variant": "max", "smipr__alpha": 10.0},
        "mimlmisvm": {"scale": "standard", "gamma": 0.2},
    }
    for name, old in expect.items():
        p = create(name, preset="paper").get_params()
        assert p["threshold_mode"] == "fixed" and p["t_criterion"] is True, name
        for k, v in old.items():
            assert p[k] == v, (name, k, p[k])


def test_smipr_calibration_clones_keep_the_final_models_settings():
    """With ``match_calibration_clones`` a calibration clone fitted on fewer bags resolves
    SMIPR's data-size settings at the full size: the final model's medoid count and its L2
    penalty per bag. Off by default."""
    from mimlkit.learners.broad.smipr import SMIPR, resolve_n_clusters

    assert SMIPR()._calibration_clone_params(300, 200) == {}  # off by default (inner splits)
    est = SMIPR()
    est.match_calibration_clones = True
    p = est._calibration_clone_params(300, 200)
    assert p["n_clusters"] == resolve_n_clusters(0.2, 300, 256) == 60
    assert p["alpha"] == pytest.approx(1.0 * 200 / 300)
    big = SMIPR(max_clusters=50)
    big.match_calibration_clones = True
    big = big._calibration_clone_params(3000, 2400)
    assert big["n_clusters"] == 50


def test_calibration_clone_params_reach_the_clones(monkeypatch):
    """The mixin hands ``_calibration_clone_params`` to every out-of-fold clone."""
    from mimlkit.learners.broad.smipr import SMIPR

    seen = []
    orig = SMIPR._find_medoids

    def spy(self, bags, k):
        seen.append((bags.n_bags, k, self.alpha))
        return orig(self, bags, k)

    monkeypatch.setattr(SMIPR, "_find_medoids", spy)
    g = np.random.default_rng(0)
    bags = [g.normal(size=(3, 4)).astype(np.float32) for _ in range(60)]
    Y = (g.random((60, 2)) < 0.4).astype(np.int8)
    est = SMIPR(n_clusters=0.2, max_iter=20, random_state=0)
    est.match_calibration_clones = True
    est.fit(bags, Y)
    assert (60, 12, 1.0) in seen  # the final fit
    # SMIPR's 5 calibration folds of 60 bags: 48 bags each
    clones = [(k, a) for n, k, a in seen if n == 48]
    assert len(clones) == 5 and all(k == 12 for k, _ in clones)  # 20 % of 60, not of 48
    assert all(a == pytest.approx(48 / 60) for _, a in clones)


def test_crossfit_final_scores_with_the_mean_of_the_calibration_clones():
    """``crossfit_final``: the out-of-fold clones that chose the thresholds also score (their
    mean); the model refitted on all bags is kept but does not score. Off by default, and a
    re-fit without it drops the clones."""
    from mimlkit.learners.pooled import PooledLinear

    ds = make_miml_bags(90, n_labels=3, random_state=0)
    bags, Y = ds.bags, ds.Y
    assert PooledLinear.crossfit_final is False
    plain = create("pooled-linear").fit(bags, Y)
    assert "calibration_models_" not in plain.__dict__
    est = create("pooled-linear")
    est.crossfit_final = True
    est.fit(bags, Y)
    models = est.calibration_models_
    assert len(models) == 3 and all(not m.__dict__.get("calibration_models_") for m in models)
    mean = np.mean([m.decision_function(bags) for m in models], axis=0)
    np.testing.assert_allclose(est.decision_function(bags), mean)
    own = type(est).decision_function.__wrapped__(est, bags)  # the refitted model's scores
    np.testing.assert_allclose(own, plain.decision_function(bags))
    assert not np.allclose(own, mean)
    assert est.predict(bags).shape == Y.shape and "crossfit" in est.calibration_["scores"]
    est.crossfit_final = False
    est.fit(bags, Y)
    assert "calibration_models_" not in est.__dict__
    np.testing.assert_allclose(est.decision_function(bags), own)


def test_rate_capped_raises_thresholds_only_where_the_final_model_predicts_more():
    """``rate_capped``: a label the final model predicts on more training rows than the
    clones did on held-out rows gets a higher threshold, at the clones' rate; others (and
    ``+inf``) keep theirs; thresholds never go down."""
    from mimlkit.learners._thresholds import rate_capped

    rng = np.random.default_rng(0)
    held = rng.normal(size=(300, 3))
    thr = np.array([1.0, 1.0, np.inf])
    rate = (held > thr).mean(axis=0)
    # label 0: shifted up by 1 in the final model; label 1: shifted down; label 2: never
    F = rng.normal(size=(600, 3)) + np.array([1.0, -1.0, 5.0])
    new = rate_capped(held, thr, F)
    assert new[0] > thr[0] and new[1] == thr[1] and np.isinf(new[2])
    assert (F[:, 0] > new[0]).sum() <= np.ceil(rate[0] * 600)
    assert (F[:, 0] > new[0]).sum() >= np.ceil(rate[0] * 600) - 1  # capped, not emptied
    # a label the clones never predicted on held-out rows is not predicted on training rows
    none = rate_capped(held, np.array([10.0, 1.0, 1.0]), F + np.array([20.0, 0, 0]))
    assert (F[:, 0] + 20 > none[0]).sum() == 0


def test_rate_cap_final_switch_raises_thresholds_after_the_refit():
    """``rate_cap_final`` (off by default): the fitted thresholds are the capped ones, never
    below the plain fit's, and the calibration record says how many were raised."""
    from mimlkit.learners.pooled import PooledLinear

    ds = make_miml_bags(90, n_labels=3, random_state=0)
    assert PooledLinear.rate_cap_final is False
    plain = create("pooled-linear").fit(ds.bags, ds.Y)
    est = create("pooled-linear")
    est.rate_cap_final = True
    est.fit(ds.bags, ds.Y)
    t0 = np.asarray(plain.threshold_, dtype=float)
    t1 = np.asarray(est.threshold_, dtype=float)
    assert np.all((t1 >= t0) | (np.isinf(t0) & np.isinf(t1)))
    assert "raised" in est.calibration_["rate_cap"]
    S = est.decision_function(ds.bags)
    np.testing.assert_allclose(S, plain.decision_function(ds.bags))
