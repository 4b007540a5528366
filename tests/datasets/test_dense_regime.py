"""Dense-evidence synthetic regime: ``make_dense_miml_images``."""

from __future__ import annotations

import numpy as np
import pytest

from mimlkit.datasets import TileBagger, make_dense_miml_images
from mimlkit.datasets.synthetic import DENSE_KINDS
from mimlkit.features.handcrafted import images_to_bags


def _per_image(ds, a):
    return a.reshape(len(ds), -1, *a.shape[1:])


@pytest.mark.parametrize("evidence,noise", [(0.5, 0.2), (0.7, 0.2), (0.9, 0.1), (0.6, 0.0)])
def test_shares_honoured(evidence, noise):
    ds = make_dense_miml_images(n_images=60, evidence_share=evidence, noise_share=noise,
                                random_state=0)
    G = 36
    kind = _per_image(ds, ds.bags.instance_meta["kind"])
    assert kind.shape == (60, G)
    ev = (kind == 0).mean(axis=1)
    nz = np.isin(kind, [2, 3, 4]).mean(axis=1)
    assert np.abs(ev - evidence).max() <= 0.5 / G + 1e-9  # rounding to whole tiles
    assert np.abs(nz - noise).max() <= 0.5 / G + 1e-9
    # each label of an image gets an even part of the evidence (+-1 tile)
    inst = _per_image(ds, ds.instance_labels)
    per_label = inst.sum(axis=1)  # (n, K) tiles of each label
    L = ds.Y.sum(axis=1)
    n_ev = (kind == 0).sum(axis=1)
    for i in range(60):
        c = per_label[i][ds.Y[i] == 1]
        assert c.min() >= 1 and c.max() - c.min() <= 1 and c.sum() == n_ev[i]
        assert abs(c.mean() - evidence * G / L[i]) <= 1


def test_truth_consistent_with_bag_labels():
    ds = make_dense_miml_images(n_images=80, n_labels=5, noise_share=0.25, random_state=1)
    inst = ds.instance_labels
    assert inst.dtype == np.int8 and inst.shape == (ds.bags.n_instances, 5)
    assert (inst.sum(axis=1) <= 1).all()  # one label per tile
    bag_or = np.maximum.reduceat(inst, ds.bags.offsets[:-1], axis=0)
    np.testing.assert_array_equal(bag_or, ds.Y)
    kind = ds.bags.instance_meta["kind"]
    assert set(np.unique(kind)) <= set(DENSE_KINDS)
    np.testing.assert_array_equal(inst.any(axis=1), kind == 0)  # truth only on evidence
    # every noise kind occurs (foreign tiles: a lacking label's pattern, never truth)
    assert (kind == 4).sum() > 0 and (kind == 3).sum() > 0 and (kind == 2).sum() > 0


def test_noise_mix_and_layouts():
    only_foreign = make_dense_miml_images(n_images=30, noise_share=0.3,
                                          noise_mix=(0, 0, 1), random_state=2)
    k = only_foreign.bags.instance_meta["kind"]
    full = only_foreign.Y.sum(axis=1) == only_foreign.Y.shape[1]
    # images with every label cannot hold a foreign tile: artefacts instead
    assert set(np.unique(k[np.repeat(~full, 36)])) <= {0, 1, 4}
    assert set(np.unique(k)) <= {0, 1, 2, 4}
    rnd = make_dense_miml_images(n_images=30, layout="random", random_state=2)
    reg = make_dense_miml_images(n_images=30, layout="regions", random_state=2)

    def neighbour_agreement(ds):  # share of horizontally adjacent evidence pairs, same label
        lab = np.where(ds.instance_labels.any(1), ds.instance_labels.argmax(1), -1)
        lab = lab.reshape(len(ds), 6, 6)
        a, b = lab[:, :, :-1], lab[:, :, 1:]
        both = (a >= 0) & (b >= 0)
        return (a == b)[both].mean()

    assert neighbour_agreement(reg) > neighbour_agreement(rnd) + 0.1


def test_ranges_per_image():
    ds = make_dense_miml_images(n_images=80, evidence_share=(0.5, 0.8),
                                noise_share=(0.0, 0.2), random_state=4)
    kind = _per_image(ds, ds.bags.instance_meta["kind"])
    ev = (kind == 0).mean(axis=1)
    assert ev.min() >= 0.5 - 0.5 / 36 and ev.max() <= 0.8 + 0.5 / 36 and ev.std() > 0.05
    assert ds.meta["params"]["evidence_share"] == [0.5, 0.8]


def test_determinism_by_seed():
    a = make_dense_miml_images(n_images=20, random_state=7)
    b = make_dense_miml_images(n_images=20, random_state=7)
    c = make_dense_miml_images(n_images=20, random_state=8)
    np.testing.assert_array_equal(a.Y, b.Y)
    np.testing.assert_array_equal(a.bags.instances, b.bags.instances)
    np.testing.assert_array_equal(a.instance_labels, b.instance_labels)
    np.testing.assert_array_equal(np.stack(list(a.images)), np.stack(list(b.images)))
    assert not np.array_equal(np.stack(list(a.images)), np.stack(list(c.images)))
    g = make_dense_miml_images(n_images=20, random_state=np.random.default_rng(7))
    np.testing.assert_array_equal(g.bags.instances, a.bags.instances)


def test_images_only_and_features_match_tiler():
    ds = make_dense_miml_images(n_images=6, image_size=64, tile_size=16, random_state=3)
    img = make_dense_miml_images(n_images=6, image_size=64, tile_size=16, random_state=3,
                                 features=None)
    assert img.bags is None and img.instance_labels is None
    np.testing.assert_array_equal(img.meta["tile_labels"], ds.instance_labels)
    np.testing.assert_array_equal(img.meta["tile_kind"], ds.bags.instance_meta["kind"])
    bags = images_to_bags(ds.images, TileBagger(16))
    np.testing.assert_allclose(bags.instances, ds.bags.instances, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(bags.instance_meta["coords"], ds.bags.instance_meta["coords"])
    assert ds.name == "synthetic-dense-images"


def test_pixel_noise_tiles_are_noisy():
    ds = make_dense_miml_images(n_images=20, evidence_share=0.5, noise_share=0.3,
                                noise_mix=(0, 1, 0),
                                features=None, random_state=5)
    tiles = np.stack(list(ds.images)).reshape(20, 6, 16, 6, 16, 3).transpose(0, 1, 3, 2, 4, 5)
    tiles = tiles.reshape(-1, 16, 16, 3).astype(float)
    kind = ds.meta["tile_kind"]
    rough = np.abs(np.diff(tiles, axis=2)).mean(axis=(1, 2, 3))
    assert rough[kind == 3].mean() > 2 * rough[kind == 1].mean()


def test_validation():
    with pytest.raises(ValueError, match="evidence_share"):
        make_dense_miml_images(evidence_share=0.9, noise_share=0.2)
    with pytest.raises(ValueError, match="evidence_share"):
        make_dense_miml_images(evidence_share=0.0)
    with pytest.raises(ValueError, match="noise_share"):
        make_dense_miml_images(noise_share=(0.3, 0.1))
    with pytest.raises(ValueError, match="noise_mix"):
        make_dense_miml_images(noise_mix=(0, 0, 0))
    with pytest.raises(ValueError, match="layout"):
        make_dense_miml_images(layout="blobs")
    with pytest.raises(ValueError, match="fewer cells"):
        make_dense_miml_images(n_labels=6, image_size=32, tile_size=16)

