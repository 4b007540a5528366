"""Synthetic generators: determinism, instance truth consistent with bag labels, knobs."""

from __future__ import annotations

import time

import numpy as np
import pytest

from mimlkit.datasets import TileBagger, load_dataset, make_miml_bags, make_miml_images
from mimlkit.datasets.synthetic import stress_variants
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


# ----------------------------------------------------------------------------- stress options
def test_stress_options_default_off_keep_data_identical():
    a = make_miml_bags(n_bags=80, random_state=11)
    b = make_miml_bags(n_bags=80, random_state=11, feature_scale=None, density=None,
                       single_instance=False, label_noise=0.0, empty_share=0.0)
    assert a.bags == b.bags and np.array_equal(a.Y, b.Y) and a.meta == b.meta


def test_feature_scale_spans_the_requested_exponents():
    base = make_miml_bags(n_bags=300, n_features=11, random_state=4)
    ds = make_miml_bags(n_bags=300, n_features=11, random_state=4, feature_scale=(-6, 4))
    factor = np.array(ds.meta["feature_scale"])
    np.testing.assert_allclose(np.sort(np.log10(factor)), np.linspace(-6, 4, 11), atol=1e-12)
    # the same instances, each feature multiplied by its factor
    np.testing.assert_allclose(ds.bags.instances, base.bags.instances * factor, rtol=1e-5)
    spread = np.log10(np.abs(ds.bags.instances).max(axis=0))
    assert spread.max() - spread.min() > 9
    np.testing.assert_array_equal(ds.Y, base.Y)


def test_density_gives_sparse_high_dimensional_instances_with_signal():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import label_ranking_average_precision_score as lrap

    ds = make_miml_bags(n_bags=300, n_features=1000, bag_size=(2, 6), density=0.015,
                        random_state=0)
    X = ds.bags.instances
    assert X.shape[1] == 1000 and X.dtype == np.float32
    nnz = (X != 0).sum(axis=1)
    assert (nnz <= 15).all() and nnz.mean() > 14  # round(0.015 * 1000) = 15 per instance
    np.testing.assert_array_equal(bag_or(ds), ds.Y)
    pooled = ds.bags.pool("max")
    tr, te = np.arange(200), np.arange(200, 300)
    S = np.column_stack([LogisticRegression(max_iter=2000).fit(pooled[tr], ds.Y[tr, k])
                         .decision_function(pooled[te]) for k in range(ds.n_labels)])
    chance = lrap(ds.Y[te], np.random.default_rng(0).random(S.shape))
    assert lrap(ds.Y[te], S) > chance + 0.2  # the concepts stay learnable


def test_many_labels_low_cardinality():
    ds = make_miml_bags(**{**stress_variants()["many-labels"], "random_state": 0})
    assert ds.n_labels >= 50
    assert ds.Y.sum(axis=1).mean() < 2
    assert (ds.Y.sum(axis=0) > 0).sum() >= 50  # most labels occur
    np.testing.assert_array_equal(bag_or(ds), ds.Y)


def test_single_instance_and_large_bags():
    one = make_miml_bags(n_bags=200, single_instance=True, random_state=1)
    assert (one.bags.sizes == 1).all() and one.bags.n_instances == 200
    np.testing.assert_array_equal(one.instance_labels, one.Y)
    assert (one.Y.sum(axis=1) > 1).any()  # multi-label single instances exist
    big = make_miml_bags(**{**stress_variants()["large-bags"], "random_state": 0})
    assert big.bags.sizes.min() >= 500
    np.testing.assert_array_equal(bag_or(big), big.Y)


def test_label_noise_flips_at_the_requested_rate():
    clean = make_miml_bags(n_bags=2000, n_labels=5, random_state=2)
    ds = make_miml_bags(n_bags=2000, n_labels=5, random_state=2, label_noise=0.1)
    assert clean.bags == ds.bags
    flipped = ds.Y != bag_or(ds)  # instance truth stays clean
    assert abs(flipped.mean() - 0.1) < 0.01
    assert flipped.sum() == ds.meta["label_noise_flipped"]
    np.testing.assert_array_equal(bag_or(ds), clean.Y)


def test_empty_share_of_label_sets():
    ds = make_miml_bags(n_bags=500, empty_share=0.2, random_state=3)
    empty = ds.Y.sum(axis=1) == 0
    assert empty.sum() == 100
    np.testing.assert_array_equal(bag_or(ds), ds.Y)  # empty bags hold no concept instance
    kind = ds.bags.instance_meta["kind"]
    assert (kind[np.isin(ds.bags.bag_index, np.flatnonzero(empty))] != 0).all()


def test_stress_variants_are_small_and_valid():
    variants = stress_variants()
    assert {"scales", "sparse-highdim", "many-labels", "single-instance", "large-bags",
            "label-noise", "empty-labels"} <= set(variants)
    for name, params in variants.items():
        ds = make_miml_bags(random_state=0, **params)
        assert 100 <= len(ds) <= 600, name
        assert ds.bags.n_instances <= 70_000, name
        assert np.isfinite(ds.bags.instances).all(), name


@pytest.mark.parametrize("kw, match", [
    ({"feature_scale": (4, -6)}, "feature_scale"),
    ({"density": 0.0}, "density"),
    ({"label_noise": 0.7}, "label_noise"),
    ({"empty_share": 1.0}, "empty_share"),
    ({"witness_share": 1.0}, "witness_share"),
])
def test_stress_options_validated(kw, match):
    with pytest.raises(ValueError, match=match):
        make_miml_bags(**kw)


def test_witness_share_gives_a_label_a_share_of_a_large_bag():
    ds = make_miml_bags(n_bags=30, n_labels=3, n_features=4, bag_size=(500, 600),
                        witness_share=0.02, random_state=0)
    sizes = np.diff(ds.bags.offsets)
    counts = np.add.reduceat(ds.instance_labels.astype(np.int64), ds.bags.offsets[:-1], axis=0)
    need = np.maximum(1, np.rint(0.02 * np.minimum(sizes, 600)))[:, None] * (ds.Y == 1)
    assert (counts >= need - 1).all() and (counts[ds.Y == 1] >= 9).all()
    plain = make_miml_bags(n_bags=30, n_labels=3, n_features=4, bag_size=(500, 600),
                           random_state=0)
    pc = np.add.reduceat(plain.instance_labels.astype(np.int64), plain.bags.offsets[:-1], 0)
    assert pc.max() <= 4  # 1-2 concept instances per label (+ co-occurrence partners)
