"""Bad input for EVERY registered learner (parametrised over ``mimlkit.registry``).

Bag learners run on tiny feature bags with the fast settings of ``tests/test_common.py``;
image learners on tiny images with the ``tiny`` backbone. A case gives either a correct
result (finite scores of the right shape, and the right direction for a constant label) or a
``ValueError`` naming the bag / image at fault.

What is "correct" for a label with no positives (or no negatives) in training: the learner
must fit and return finite scores. Learners with a closed-form or converged fit must also
put that label below (above) their decision threshold for every bag; learners trained by a
few SGD epochs here (``_UNDERTRAINED``) must at least score it lower with no positives than
with no negatives.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mimlkit.bags import Bags
from mimlkit.datasets import ImageSet, MIMLDataset
from mimlkit.registry import get_learner_class, learner_spec, list_learners

# a constant label column is one of the cases tried: its "single class" warning is expected
pytestmark = pytest.mark.filterwarnings("ignore:.*single class:UserWarning")

BAG_LEARNERS = list_learners(input="bags")
IMAGE_LEARNERS = list_learners(input="images")

# fast-fitting overrides (only the ones a learner has are applied), as in tests/test_common.py
_QUICK = {"max_iter": 10, "n_epochs": 2, "epochs": 2, "max_epochs": 2, "min_steps": None,
          "n_iter": 5,
          "n_estimators": 3, "n_rounds": 3, "hidden_size": 8, "batch_size": 8,
          "n_medoids": 4, "k": 3, "n_enhancement": 40, "n_windows": 3, "sparse_iter": 5}
_IMAGE_QUICK = {
    "vgg-l1lr": dict(backbone="tiny-multilevel"),
    "vgg-lr": dict(backbone="tiny-multilevel"),
    "multilabel-cnn": dict(backbone="tiny", image_size=16, max_epochs=1, batch_size=8,
                           device="cpu"),
    "selfpaced-miml": dict(tile_size=8, backbone="tiny", image_size=16, batch_size=8,
                           max_epochs=1, device="cpu"),
}
#: trained by a couple of SGD epochs in these tests: only the direction is checked
# ("empty" never predicts, by design: its threshold is +inf)
_UNDERTRAINED = {"empty", "deepmiml", "multilabel-head", "mimlboost", "mimlfast", "multilabel-cnn",
                 "selfpaced-miml"}
#: learners that need more than one training bag (and say so)
_NEEDS_TWO_BAGS = {"mimlknn"}


def make(name: str):
    try:
        cls = get_learner_class(name)
    except (ImportError, AttributeError) as exc:  # pragma: no cover - optional deps
        pytest.skip(f"{name} not available: {exc}")
    est = cls(**learner_spec(name).params)
    names = set(est.get_params(deep=False))
    if learner_spec(name).input == "images":
        over = dict(_IMAGE_QUICK.get(name, {}))
    else:
        over = {k: v for k, v in _QUICK.items() if k in names}
    if "random_state" in names:
        over["random_state"] = 0
    est.set_params(**{k: v for k, v in over.items() if k in names})
    if name == "bmiml":  # its default AWLEL has 1000 enhancement nodes: slow on 2 cores
        from mimlkit.learners.broad.awlel import AWLEL

        est.set_params(awlel=AWLEL(n_enhancement=40, n_windows=3, sparse_iter=5,
                                   random_state=0))
    return est


def tiny_bags(n=12, d=3, k=3, seed=0, one_instance=False):
    rng = np.random.default_rng(seed)
    X = [rng.normal(size=(1 if one_instance else int(rng.integers(1, 4)), d))
         .astype(np.float32) for _ in range(n)]
    Y = (rng.random((n, k)) > 0.5).astype(np.int8)
    Y[0], Y[min(1, n - 1)] = 1, 0  # every label has both classes
    for j in range(k):
        X_shift = 1.5 * Y[:, j] - 0.75  # weak signal so every label is learnable
        for i in range(n):
            X[i][:, j % d] += X_shift[i]
    return X, Y


def _threshold(est, j):
    t = np.asarray(est._threshold(), dtype=float)
    return float(t) if t.ndim == 0 else float(t[j])


def _scores(est, X):
    S = np.asarray(est.decision_function(X), dtype=float)
    assert np.isfinite(S).all(), "non-finite scores"
    return S


# ============================================================================= bag learners
@pytest.mark.parametrize("name", BAG_LEARNERS)
def test_bag_learner_non_finite_and_width(name):
    """NaN at fit, inf at predict, a wrong feature width at predict, zero bags at predict."""
    X, Y = tiny_bags()
    bad = [b.copy() for b in X]
    bad[5][0, 1] = np.nan
    with pytest.raises(ValueError, match=r"bag 5 contains NaN or inf"):
        make(name).fit(bad, Y)
    est = make(name).fit(X, Y)
    bad = [b.copy() for b in X]
    bad[7][-1, 0] = -np.inf
    with pytest.raises(ValueError, match=r"bag 7 contains NaN or inf"):
        est.decision_function(bad)
    with pytest.raises(ValueError, match=r"bag 7 contains NaN or inf"):
        est.predict(bad)
    with pytest.raises(ValueError, match=r"X has 5 features per instance, but .* with 3"):
        est.decision_function([np.ones((2, 5), np.float32)])
    with pytest.raises(ValueError, match=r"bag 1 has 4 features, bag 0 has 3"):
        est.predict([np.ones((2, 3), np.float32), np.ones((1, 4), np.float32)])
    with pytest.raises(ValueError, match="no bags"):
        est.decision_function([])
    with pytest.raises(ValueError, match="bag 0 is empty"):
        est.decision_function([np.zeros((0, 3), np.float32)])


@pytest.mark.parametrize("name", BAG_LEARNERS)
def test_bag_learner_bad_labels(name):
    X, Y = tiny_bags()
    Y2 = Y.copy()
    Y2[4, 2] = 2
    with pytest.raises(ValueError, match="labels of bag 4 hold"):
        make(name).fit(X, Y2)
    with pytest.raises(ValueError, match="labels have 11 rows but there are 12 bags"):
        make(name).fit(X, Y[:-1])
    with pytest.raises(ValueError, match="2-D array"):
        make(name).fit(X, Y[:, :, None])
    Y3 = Y.copy()
    Y3[3, 0] = -1
    est = make(name)
    if est.supports_unobserved:
        S = _scores(est.fit(X, Y3), X)
        assert S.shape == Y.shape
    else:
        with pytest.raises(ValueError, match=r"labels of bag 3 hold .*-1.*not allowed"):
            est.fit(X, Y3)


@pytest.mark.parametrize("name", BAG_LEARNERS)
def test_bag_learner_constant_label(name):
    """Label 1 with no positives, then with no negatives, in training."""
    X, Y = tiny_bags()
    means = {}
    for v in (0, 1):
        Yc = Y.copy()
        Yc[:, 1] = v
        est = make(name).fit(X, Yc)
        S = _scores(est, X)
        assert S.shape == Y.shape
        P = est.predict(X)
        assert set(np.unique(P)) <= {0, 1}
        means[v] = S[:, 1].mean()
        if name not in _UNDERTRAINED:
            above = S[:, 1] > _threshold(est, 1)
            assert above.all() if v else not above.any(), (v, S[:, 1], est._threshold())
            # the other labels are still predicted from their own scores
            assert np.isfinite(S[:, [0, 2]]).all()
    assert means[0] < means[1], means


@pytest.mark.parametrize("name", BAG_LEARNERS)
def test_bag_learner_tiny_training_sets(name):
    """One bag, two bags, one-instance bags (list and 2-D array forms agree)."""
    X, Y = tiny_bags()
    est = make(name)
    if name in _NEEDS_TWO_BAGS:
        with pytest.raises(ValueError, match="at least 2 training bags"):
            est.fit(X[:1], Y[:1])
    else:
        assert _scores(est.fit(X[:1], Y[:1]), X).shape == Y.shape
    assert _scores(make(name).fit(X[:2], Y[:2]), X).shape == Y.shape
    X1, Y1 = tiny_bags(one_instance=True)
    est = make(name).fit(X1, Y1)
    S = _scores(est, X1)
    flat = np.concatenate(X1)  # a 2-D array = one-instance bags
    np.testing.assert_allclose(_scores(est, flat), S, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_scores(make(name).fit(flat, Y1), X1), S, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", BAG_LEARNERS)
def test_bag_learner_degenerate_features(name):
    """All-zero features, identical bags: finite scores (no division by a zero spread)."""
    X, Y = tiny_bags()
    Z = [np.zeros_like(b) for b in X]
    assert _scores(make(name).fit(Z, Y), Z).shape == Y.shape
    D = [X[0].copy() for _ in X]
    assert _scores(make(name).fit(D, Y), X).shape == Y.shape


# ============================================================================= image learners
def tiny_images(n=8, size=24, seed=0):
    rng = np.random.default_rng(seed)
    imgs = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]
    Y = (rng.random((n, 2)) > 0.5).astype(np.int8)
    Y[0], Y[1] = 1, 0
    return imgs, Y


@pytest.mark.parametrize("name", IMAGE_LEARNERS)
def test_image_learner_pixel_formats(name):
    """Grey / RGBA / grey-as-H x W x 1 give the same scores as the equivalent RGB images;
    16-bit, float and empty arrays are a ValueError naming the image."""
    pytest.importorskip("torch")
    imgs, Y = tiny_images()
    grey = [im[:, :, 0] for im in imgs]
    rgb_of_grey = [np.repeat(g[:, :, None], 3, axis=2) for g in grey]
    est = make(name).fit(rgb_of_grey, Y)
    S = _scores(est, rgb_of_grey)
    np.testing.assert_allclose(_scores(est, grey), S, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_scores(est, [g[:, :, None] for g in grey]), S, rtol=1e-5,
                               atol=1e-6)
    rgba = [np.dstack([im, np.full(im.shape[:2], 7, np.uint8)]) for im in rgb_of_grey]
    np.testing.assert_allclose(_scores(est, rgba), S, rtol=1e-5, atol=1e-6)
    # integer arrays within 0..255 are read as 8-bit
    np.testing.assert_allclose(_scores(est, [g.astype(np.int64) for g in rgb_of_grey]), S,
                               rtol=1e-5, atol=1e-6)
    for bad, match in [(imgs[3].astype(np.uint16) * 257, "uint8"),
                       (imgs[3].astype(np.float32) / 255, "uint8"),
                       (np.zeros((0, 24, 3), np.uint8), "empty image"),
                       (np.zeros((24, 24, 2), np.uint8), "H x W x 3")]:
        test = list(rgb_of_grey)
        test[3] = bad
        with pytest.raises(ValueError, match=match) as ei:
            est.decision_function(test)
        assert "image 3" in str(ei.value) or "<array 3>" in str(ei.value), str(ei.value)


@pytest.mark.parametrize("name", IMAGE_LEARNERS)
def test_image_learner_files(name, tmp_path):
    """File-backed images: a corrupt / zero-byte file is a ValueError naming it; a 16-bit
    PNG is scaled to 8 bits (same scores as the 8-bit image)."""
    pytest.importorskip("torch")
    imgs, Y = tiny_images(n=6)
    paths = []
    for i, im in enumerate(imgs):
        paths.append(tmp_path / f"im{i}.png")
        Image.fromarray(im[:, :, 0].astype(np.uint16) * 257).save(paths[-1])  # 16-bit grey
    est = make(name).fit(ImageSet(paths), Y)
    S = _scores(est, ImageSet(paths))
    eight = [np.repeat(im[:, :, :1], 3, axis=2) for im in imgs]
    np.testing.assert_allclose(_scores(est, eight), S, rtol=1e-5, atol=1e-6)
    (tmp_path / "im2.png").write_bytes(b"")
    with pytest.raises(ValueError, match="im2.png"):
        est.decision_function(ImageSet(paths))
    (tmp_path / "im2.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ValueError, match="im2.png"):
        make(name).fit(ImageSet(paths), Y)
    with pytest.raises(ValueError, match="missing.png"):
        est.decision_function(ImageSet([tmp_path / "missing.png"]))


@pytest.mark.parametrize("name", IMAGE_LEARNERS)
def test_image_learner_labels_and_tiny_sets(name):
    pytest.importorskip("torch")
    imgs, Y = tiny_images()
    Y2 = Y.copy()
    Y2[2, 0] = 3
    with pytest.raises(ValueError, match="labels of bag 2 hold"):
        make(name).fit(imgs, Y2)
    with pytest.raises(ValueError, match="labels have 5 rows but there are 8 bags"):
        make(name).fit(imgs, Y[:5])
    means = {}
    for v in (0, 1):  # label 1 with no positives / no negatives
        Yc = Y.copy()
        Yc[:, 1] = v
        est = make(name).fit(imgs, Yc)
        S = _scores(est, imgs)
        means[v] = S[:, 1].mean()
        if name not in _UNDERTRAINED:
            above = S[:, 1] > _threshold(est, 1)
            assert above.all() if v else not above.any()
    assert means[0] < means[1], means
    assert _scores(make(name).fit(imgs[:1], Y[:1]), imgs).shape == Y.shape
    assert _scores(make(name).fit(imgs[:2], Y[:2]), imgs).shape == Y.shape
    small = tiny_images(size=5)[0]  # smaller than one tile / the network input
    assert _scores(make(name).fit(small, Y), small).shape == Y.shape


# ============================================================================= evaluation
def _dataset(n=4, k=2, seed=0, groups=None):
    X, Y = tiny_bags(n=n, k=k, seed=seed)
    return MIMLDataset(Y=Y, label_names=[f"l{j}" for j in range(k)], bags=Bags.from_list(X),
                       groups=groups)


@pytest.mark.parametrize("protocol, match", [
    ("kfold:10", "n_splits=10 is larger than the number of bags \\(4\\)"),
    ("kfold:5", "n_splits=5 is larger than the number of bags \\(4\\)"),
    ("stratified:5", "n_splits=5 is larger than the number of bags \\(4\\)"),
    ("kfold:1", "n_splits must be >= 2"),
    ("repeat:0", "n_repeats must be >= 1"),
    ("kfold:x", "'x' is not a number"),
    ("bogus", "unknown protocol 'bogus'"),
])
def test_fewer_bags_than_folds(protocol, match):
    from mimlkit.evaluation import evaluate, parse_protocol
    from mimlkit.learners.pooled import PooledLinear

    with pytest.raises(ValueError, match=match):
        evaluate({"p": PooledLinear()}, _dataset(), parse_protocol(protocol))


def test_splitters_on_tiny_and_grouped_sets():
    from mimlkit.evaluation import (
        GroupKFold,
        HoldOut,
        IterativeStratifiedKFold,
        KFold,
        RepeatedRandomSplit,
    )

    one = _dataset(n=1)
    for sp in (HoldOut(), RepeatedRandomSplit(n_repeats=2)):
        with pytest.raises(ValueError, match="empty train or test part with 1 bags"):
            list(sp.split(one))
    for sp in (KFold(n_splits=5), IterativeStratifiedKFold(n_splits=5)):
        with pytest.raises(ValueError, match="larger than the number of bags"):
            list(sp.split(_dataset(n=4)))
    two = list(HoldOut().split(_dataset(n=2)))  # two bags: one train, one test
    assert [(len(a), len(b)) for a, b in two] == [(1, 1)]
    grouped = _dataset(n=6, groups=np.array(["a", "a", "b", "b", "c", "c"]))
    with pytest.raises(ValueError, match="group"):
        list(GroupKFold(n_splits=4).split(grouped))
    with pytest.raises(ValueError, match="groups"):
        list(GroupKFold(n_splits=2).split(_dataset(n=6)))


def test_evaluate_label_missing_from_a_training_split():
    """A label with a single positive: some training folds have no positive for it. Every
    split still scores (no error rows) and ranking metrics stay finite."""
    from mimlkit.evaluation import KFold, evaluate
    from mimlkit.learners.pooled import PooledLinear

    X, Y = tiny_bags(n=9, k=3)
    Y[:, 2] = 0
    Y[4, 2] = 1
    ds = MIMLDataset(Y=Y, label_names=["a", "b", "c"], bags=Bags.from_list(X))
    res = evaluate({"p": PooledLinear()}, ds, KFold(n_splits=3, shuffle=True, random_state=0))
    t = res.table
    assert (t["metric"] != "error").all(), t[t["metric"] == "error"]["error"].tolist()
    ap = t[t["metric"] == "average_precision"]["value"]
    assert len(ap) == 3 and np.isfinite(ap).all()
