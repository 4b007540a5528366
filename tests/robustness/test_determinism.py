"""Determinism: same seed -> bitwise-identical scores for every classic, broad, baseline and
transfer (bags) learner across two fits and across ``n_jobs`` 1 vs 2; the same for
``evaluate(n_jobs=1)`` vs ``n_jobs=2``; deep learners (DeepMIML, multi-label head,
self-paced MIML on a tiny backbone) identical on CPU in deterministic mode.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mimlkit.registry import create, get_learner_class, learner_spec, list_learners

# fast-fitting overrides (unknown params are skipped); the same spirit as tests/test_common.py
_QUICK = {"max_iter": 10, "n_epochs": 2, "epochs": 2, "max_epochs": 2, "min_steps": None,
          "n_iter": 5,
          "n_estimators": 3, "n_rounds": 3, "hidden_size": 8, "batch_size": 8,
          "n_medoids": 4, "k": 3, "n_enhancement": 40, "n_windows": 3, "sparse_iter": 5}

SHALLOW = [n for n in list_learners(input="bags")
           if learner_spec(n).family in ("classic", "broad", "baseline", "transfer")]
DEEP_BAGS = [n for n in list_learners(input="bags") if learner_spec(n).family == "deep"]


def _tiny(seed=0, n=36, d=5, k=3):
    rng = np.random.default_rng(seed)
    X = [rng.normal(size=(int(rng.integers(1, 6)), d)).astype(np.float32) for _ in range(n)]
    Y = (rng.random((n, k)) > 0.6).astype(np.int8)
    Y[np.arange(n), rng.integers(0, k, n)] = 1
    Y[:2, 1], Y[2:4, 1] = 0, 1
    return X, Y


def _make(name, **extra):
    try:
        cls = get_learner_class(name)
    except (ImportError, AttributeError) as exc:
        pytest.skip(f"{name} not available: {exc}")
    est = cls(**learner_spec(name).params)
    names = set(est.get_params(deep=False))
    over = {k: v for k, v in _QUICK.items() if k in names}
    over.update({k: v for k, v in extra.items() if k in names})
    if "random_state" in names:
        over["random_state"] = 7
    if "device" in names:
        over["device"] = "cpu"
    return est.set_params(**over)


def _scores(est, X, Y, Xt):
    return np.asarray(est.fit(X, Y).decision_function(Xt), dtype=np.float64)


@pytest.mark.parametrize("name", SHALLOW)
def test_same_seed_same_scores(name):
    X, Y = _tiny()
    Xt, _ = _tiny(seed=1, n=12)
    a = _scores(_make(name), X, Y, Xt)
    b = _scores(_make(name), X, Y, Xt)
    assert np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", [n for n in SHALLOW
                                  if "n_jobs" in create(n).get_params(deep=False)])
def test_n_jobs_does_not_change_scores(name):
    X, Y = _tiny()
    Xt, _ = _tiny(seed=1, n=12)
    a = _scores(_make(name, n_jobs=1), X, Y, Xt)
    b = _scores(_make(name, n_jobs=2), X, Y, Xt)
    np.testing.assert_array_equal(a, b)


def test_evaluate_n_jobs_1_vs_2():
    from mimlkit.datasets import make_miml_bags
    from mimlkit.evaluation import RepeatedRandomSplit, evaluate

    ds = make_miml_bags(n_bags=40, n_labels=3, n_features=5, random_state=2)
    learners = {"pooled-linear": _make("pooled-linear"), "mimlknn": _make("mimlknn")}
    split = RepeatedRandomSplit(n_repeats=2, train_size=0.7, random_state=0)
    t1 = evaluate(learners, ds, split, n_jobs=1, progress=False).table
    t2 = evaluate(learners, ds, split, n_jobs=2, progress=False).table
    keys = ["learner", "split", "metric", "label"]
    t1 = t1.sort_values(keys).reset_index(drop=True)
    t2 = t2.sort_values(keys).reset_index(drop=True)
    assert len(t1) == len(t2) > 0 and set(t1["learner"]) == set(learners)
    pd.testing.assert_frame_equal(t1[keys + ["value"]], t2[keys + ["value"]], check_exact=True,
                                  check_dtype=False)


# ----------------------------------------------------------------------------- deep
@pytest.fixture
def deterministic_torch():
    torch = pytest.importorskip("torch")
    prev = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    yield torch
    torch.use_deterministic_algorithms(prev)


@pytest.mark.parametrize("name", DEEP_BAGS)
def test_deep_bag_learners_identical_on_cpu(name, deterministic_torch):
    X, Y = _tiny()
    Xt, _ = _tiny(seed=1, n=12)
    a = _scores(_make(name, dropout=0.2), X, Y, Xt)
    b = _scores(_make(name, dropout=0.2), X, Y, Xt)
    np.testing.assert_array_equal(a, b)
    # and the learner leaves the caller's deterministic setting as it found it
    assert deterministic_torch.are_deterministic_algorithms_enabled()


def test_selfpaced_tiny_identical_on_cpu(deterministic_torch):
    from mimlkit.datasets import make_miml_images
    from mimlkit.deep.selfpaced import SelfPacedMIML

    ds = make_miml_images(n_images=10, n_labels=3, image_size=32, tile_size=8,
                          positive_tiles=(1, 2), random_state=0, features=None)
    kw = dict(tile_size=8, backbone="tiny", image_size=16, batch_size=8, max_epochs=2,
              device="cpu", random_state=5, sampling="weighted", pseudo_label="bernoulli")
    a = SelfPacedMIML(**kw).fit(ds.images, ds.Y).decision_function(ds.images)
    b = SelfPacedMIML(**kw).fit(ds.images, ds.Y).decision_function(ds.images)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
