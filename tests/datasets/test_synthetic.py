"""Synthetic generators: determinism, instance truth consistent with bag labels, knobs."""

from __future__ import annotations

import time

import numpy as np
import pytest

from mimlkit.datasets import TileBagger, load_dataset, make_miml_bags, make_miml_images
from mimlkit.features.handcrafted import images_to_bags


def bag_or(ds):
    """Bag labels implied by the instance truth: OR over each bag's instances."""
    return np.maximum.reduceat(ds.instance_labels, ds.bags.offsets[:-1], axis=0)


def test_bags_truth_and_shapes():
    ds = make_miml_bags(n_bags=150, n_labels=4, n_features=8, bag_size=(3, 6), random_state=3)
    assert len(ds) == 150 and ds.bags.n_features == 8 and ds.n_labels == 4
    np.testing.assert_array_equal(bag_or(ds), ds.Y)  # label k iff an instance of concept k
    assert (ds.Y.sum(axis=1) >= 1).all()
    assert (ds.instance_labels.sum(axis=1) <= 1).all()
    assert ds.bags.sizes.min() >= 3
    kind = ds.bags.instance_meta["kind"]
    np.testing.assert_array_equal(kind == 0, ds.instance_labels.any(axis=1))


def test_bags_deterministic_and_seed_sensitive():
    a = make_miml_bags(random_state=0)
    b = make_miml_bags(random_state=0)
    c = make_miml_bags(random_state=1)
    assert a.bags == b.bags and np.array_equal(a.Y, b.Y)
    assert not np.array_equal(a.bags.instances[:5], c.bags.instances[:5])


def test_bags_knobs():
    none = make_miml_bags(n_bags=400, distractor_rate=0.0, random_state=0)
    assert (none.bags.instance_meta["kind"] != 2).all()
    allx = make_miml_bags(n_bags=400, distractor_rate=1.0, random_state=0)
    assert (allx.bags.instance_meta["kind"] != 1).all()
    multi = make_miml_bags(n_bags=50, n_concepts_per_label=3, random_state=0)
    np.testing.assert_array_equal(bag_or(multi), multi.Y)
    # co-occurrence: each label's partner is switched on more often with a high knob
    lo = make_miml_bags(n_bags=3000, n_labels=6, cooccurrence=0.0, random_state=5)
    hi = make_miml_bags(n_bags=3000, n_labels=6, cooccurrence=0.9, random_state=5)

    def pair_rate(ds):
        part = np.array(ds.meta["cooccurrence_partner"])
        Y = ds.Y.astype(bool)
        return np.mean([(Y[:, k] & Y[:, part[k]]).sum() / Y[:, k].sum() for k in range(6)])

    assert pair_rate(hi) > pair_rate(lo) + 0.3, (pair_rate(hi), pair_rate(lo))
    with pytest.raises(ValueError, match="bag_size"):
        make_miml_bags(bag_size=(5, 2))
    with pytest.raises(ValueError, match="cooccurrence"):
        make_miml_bags(cooccurrence=2.0)


def test_images_truth_matches_tiler_and_features():
    ds = make_miml_images(n_images=12, random_state=4)
    t = ds.meta["tile_size"]
    assert ds.images[0].shape == (96, 96, 3) and ds.images[0].dtype == np.uint8
    assert (ds.bags.sizes == (96 // t) ** 2).all()
    np.testing.assert_array_equal(bag_or(ds), ds.Y)
    per_img = ds.instance_labels.reshape(12, -1, ds.n_labels).sum(axis=1)
    assert ((per_img == 0) | ((per_img >= 1) & (per_img <= 3))).all()  # positive_tiles=(1, 3)
    rebuilt = images_to_bags(ds.images, TileBagger(t))
    np.testing.assert_allclose(rebuilt.instances, ds.bags.instances, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(rebuilt.instance_meta["coords"], ds.bags.instance_meta["coords"])
    # an object tile really shows a saturated, textured pattern; background tiles are dull
    feats = ds.bags.instances
    obj = ds.instance_labels.any(axis=1)
    bg = ds.bags.instance_meta["kind"] == 1
    assert feats[obj, 16].mean() > feats[bg, 16].mean() + 0.2  # saturation
    assert feats[obj, 26].mean() > 2 * feats[bg, 26].mean()  # gradient magnitude


def test_images_deterministic_fast_and_image_only():
    t0 = time.perf_counter()
    a = make_miml_images(random_state=0)
    elapsed = time.perf_counter() - t0
    b = make_miml_images(random_state=0)
    assert a.bags == b.bags
    assert all(np.array_equal(a.images[i], b.images[i]) for i in (0, 50, 119))
    assert elapsed < 6.0  # < 1 s on an idle core; bound for a loaded CI machine
    c = make_miml_images(n_images=4, features=None, random_state=0)
    assert c.bags is None and c.meta["tile_labels"].shape == (4 * 36, 4)
    same = make_miml_images(n_images=4, random_state=0)
    np.testing.assert_array_equal(c.images[0], same.images[0])
    with pytest.raises(ValueError, match="multiple of tile_size"):
        make_miml_images(image_size=100, tile_size=16)
    with pytest.raises(ValueError, match="do not fit"):
        make_miml_images(n_labels=12, image_size=32, tile_size=16)


def test_pooled_linear_baseline_is_above_chance_but_not_perfect():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import label_ranking_average_precision_score
    from sklearn.preprocessing import StandardScaler

    ds = make_miml_images(n_images=200, random_state=7)
    X = StandardScaler().fit_transform(ds.bags.pool("mean"))
    tr, te = np.arange(130), np.arange(130, 200)
    S = np.column_stack([LogisticRegression(max_iter=1000).fit(X[tr], ds.Y[tr, k])
                         .decision_function(X[te]) for k in range(ds.n_labels)])
    ap = label_ranking_average_precision_score(ds.Y[te], S)
    rng = np.random.default_rng(0)
    chance = label_ranking_average_precision_score(ds.Y[te], rng.random(S.shape))
    assert ap > chance + 0.2
    assert ap < 0.97


def test_builtin_names():
    a = load_dataset("synthetic")
    assert a.name == "synthetic-images" and a.bags is not None and len(a) == 120
    b = load_dataset("synthetic-bags")
    assert b.name == "synthetic-bags" and len(b) == 200
    with pytest.raises(ValueError, match="no such file or directory.*synthetic"):
        load_dataset("not-a-dataset")
