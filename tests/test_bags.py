import numpy as np
import pytest

from mimlkit.bags import Bags, as_bags, check_labels


def _bags():
    rng = np.random.default_rng(0)
    return [rng.normal(size=(n, 3)).astype(np.float32) for n in (2, 5, 1, 3)]


def test_roundtrip_and_indexing():
    lst = _bags()
    b = as_bags(lst)
    assert len(b) == 4 and b.n_instances == 11 and b.n_features == 3
    for i, a in enumerate(lst):
        np.testing.assert_array_equal(b[i], a)
    np.testing.assert_array_equal(b[-1], lst[-1])
    sub = b[np.array([3, 0])]
    assert isinstance(sub, Bags) and len(sub) == 2
    np.testing.assert_array_equal(sub[0], lst[3])
    np.testing.assert_array_equal(b[1:3][1], lst[2])
    mask = np.array([True, False, True, False])
    np.testing.assert_array_equal(b[mask][1], lst[2])
    np.testing.assert_array_equal(b.bag_index, np.repeat(np.arange(4), [2, 5, 1, 3]))
    with pytest.raises(IndexError):
        b[4]


def test_pool_and_padded():
    lst = _bags()
    b = as_bags(lst)
    np.testing.assert_allclose(b.pool("mean"), [a.mean(0) for a in lst], rtol=1e-6)
    np.testing.assert_array_equal(b.pool("max"), [a.max(0) for a in lst])
    np.testing.assert_array_equal(b.pool("min"), [a.min(0) for a in lst])
    arr, mask = b.padded()
    assert arr.shape == (4, 5, 3) and mask.sum() == 11
    np.testing.assert_array_equal(arr[1], lst[1])
    assert not mask[2, 1:].any() and (arr[2, 1:] == 0).all()


def test_metadata_travels():
    lst = _bags()
    coords = [np.arange(len(a) * 2).reshape(-1, 2) + 100 * i for i, a in enumerate(lst)]
    b = Bags.from_list(lst, instance_meta={"coords": coords})
    sub = b[[2, 1]]
    np.testing.assert_array_equal(sub.instance_meta["coords"][:1], coords[2])
    np.testing.assert_array_equal(sub.instance_meta["coords"][1:], coords[1])


def test_validation_names_the_bag():
    lst = _bags()
    lst[2] = np.full((2, 3), np.nan)
    with pytest.raises(ValueError, match="bag 2"):
        as_bags(lst)
    with pytest.raises(ValueError, match="bag 1 is empty"):
        as_bags([np.ones((1, 3)), np.ones((0, 3))])
    with pytest.raises(ValueError, match="bag 1 has 4 features"):
        as_bags([np.ones((1, 3)), np.ones((2, 4))])
    with pytest.raises(ValueError, match="bag 1"):
        check_labels(np.array([[1, 0], [2, 0]]))
    with pytest.raises(ValueError, match="3 rows but there are 2"):
        check_labels(np.zeros((3, 2)), 2)


def test_from_instances_and_arrays():
    X = np.arange(12, dtype=np.float32).reshape(6, 2)
    b = Bags.from_instances(X, np.array([1, 0, 1, 2, 0, 2]))
    np.testing.assert_array_equal(b[0], X[[1, 4]])
    assert len(as_bags(np.zeros((3, 4, 2)))) == 3
    assert len(as_bags(np.zeros((5, 2)))) == 5
