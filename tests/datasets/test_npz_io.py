"""save_npz / load_npz round trip (bags, meta, images), plain array files, atomic write."""

from __future__ import annotations

import numpy as np
import pytest

from mimlkit.bags import Bags
from mimlkit.datasets import MIMLDataset, load_dataset, load_npz, make_miml_images, save_npz
from mimlkit.datasets.base import ImageSet


def test_round_trip_bags_groups_meta(tmp_path):
    bags = Bags.from_list([np.ones((2, 3)), np.arange(9.0).reshape(3, 3)],
                          instance_meta={"coords": [np.zeros((2, 2), np.int32),
                                                    np.ones((3, 2), np.int32)]})
    ds = MIMLDataset(Y=[[1, -1], [0, 1]], label_names=["a", "b"], bags=bags,
                     groups=np.array(["p1", "p2"], dtype=object),
                     instance_labels=np.array([[1, 0], [0, 0], [0, 1], [0, 0], [0, 1]]),
                     name="toy", meta={"source": "x", "n": np.int64(3), "nested": {"k": [1, 2]},
                                       "arr": np.arange(4)})
    p = save_npz(ds, tmp_path / "sub" / "toy")  # folder created, .npz appended
    assert p.name == "toy.npz" and p.is_file()
    assert not list(p.parent.glob("*.tmp"))
    out = load_npz(p)
    assert out.bags == ds.bags and out.label_names == ["a", "b"] and out.name == "toy"
    np.testing.assert_array_equal(out.Y, ds.Y)
    np.testing.assert_array_equal(out.groups, ["p1", "p2"])
    np.testing.assert_array_equal(out.instance_labels, ds.instance_labels)
    np.testing.assert_array_equal(out.bags.instance_meta["coords"], bags.instance_meta["coords"])
    assert out.meta["n"] == 3 and out.meta["nested"] == {"k": [1, 2]}
    np.testing.assert_array_equal(out.meta["arr"], np.arange(4))


def test_round_trip_in_memory_and_path_images(tmp_path):
    ds = make_miml_images(n_images=5, random_state=1)
    out = load_dataset(save_npz(ds, tmp_path / "syn.npz"))
    for i in range(5):
        np.testing.assert_array_equal(out.images[i], ds.images[i])
    np.testing.assert_array_equal(out.instance_labels, ds.instance_labels)
    assert out.meta["tile_size"] == ds.meta["tile_size"]
    paths = MIMLDataset(Y=[[1]], label_names=["x"], images=ImageSet([tmp_path / "a.png"]))
    assert load_npz(save_npz(paths, tmp_path / "p.npz")).images.sources == [str(tmp_path / "a.png")]


def test_image_only_dataset_keeps_tile_truth(tmp_path):
    ds = make_miml_images(n_images=3, features=None, random_state=0)
    out = load_npz(save_npz(ds, tmp_path / "img.npz"))
    assert out.bags is None
    np.testing.assert_array_equal(out.meta["tile_labels"], ds.meta["tile_labels"])


def test_overwrite_is_atomic_replace(tmp_path):
    a = MIMLDataset(Y=[[1]], label_names=["x"], bags=Bags.from_array(np.ones((1, 2))))
    b = MIMLDataset(Y=[[0], [1]], label_names=["x"], bags=Bags.from_array(np.zeros((2, 2))))
    p = save_npz(a, tmp_path / "d.npz")
    save_npz(b, p)
    assert len(load_npz(p)) == 2
    assert sorted(x.name for x in tmp_path.iterdir()) == ["d.npz"]


def test_plain_arrays(tmp_path):
    p = tmp_path / "plain.npz"
    np.savez(p, X=np.ones((4, 2, 3)), Y=np.array([1, 0, 1, 1]))
    ds = load_npz(p)
    assert len(ds) == 4 and ds.bags.sizes.tolist() == [2, 2, 2, 2] and ds.label_names == ["label_0"]
    np.savez(p, instances=np.ones((3, 2)), bag_ids=np.array([1, 0, 1]), Y=np.eye(2),
             label_names=np.array(["u", "v"]))
    ds = load_npz(p)
    assert ds.bags.sizes.tolist() == [1, 2] and ds.label_names == ["u", "v"]


def test_bad_files(tmp_path):
    p = tmp_path / "bad.npz"
    p.write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"bad\.npz: not a readable \.npz"):
        load_npz(p)
    np.savez(p, foo=np.ones(3))
    with pytest.raises(ValueError, match=r"bad\.npz: no 'Y' array"):
        load_npz(p)
    np.savez(p, X=np.ones((2, 2)), Y=np.ones((3, 1)))
    with pytest.raises(ValueError, match=r"bad\.npz: labels have 3 rows but there are 2 bags"):
        load_npz(p)
    obj = tmp_path / "obj.npz"
    np.savez(obj, X=np.array([np.ones(2), np.ones(3)], dtype=object), Y=np.ones((2, 1)))
    with pytest.raises(ValueError, match=r"obj\.npz"):
        load_npz(obj)  # object arrays need pickle: refused
