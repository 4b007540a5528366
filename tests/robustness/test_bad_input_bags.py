"""Bad input for ``Bags`` / ``as_bags`` / ``check_labels``: property-based where it fits.

Every bad input gives a ``ValueError`` naming the bag (or row) at fault; good edge cases
(a single bag, one-instance bags) give the exact data back.
"""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mimlkit.bags import Bags, as_bags, check_labels
from mimlkit.datasets import MIMLDataset

# fixed examples in CI (derandomized); MIMLKIT_FUZZ_EXAMPLES=2000 explores at random
_FUZZ = int(os.environ.get("MIMLKIT_FUZZ_EXAMPLES", "0"))
PROP = settings(max_examples=_FUZZ or 40, derandomize=not _FUZZ, deadline=None)


@st.composite
def ragged_bags(draw, min_bags=1, max_bags=8, max_size=5, max_d=4):
    n = draw(st.integers(min_bags, max_bags))
    d = draw(st.integers(1, max_d))
    sizes = draw(st.lists(st.integers(1, max_size), min_size=n, max_size=n))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(s, d)).astype(np.float32) for s in sizes]


@PROP
@given(bags=ragged_bags(), data=st.data(),
       bad=st.sampled_from([np.nan, np.inf, -np.inf]),
       kind=st.sampled_from(["list", "bags", "3d", "instances"]))
def test_non_finite_value_names_the_bag(bags, data, bad, kind):
    """NaN/inf injected at a random position: ValueError naming that bag (and instance)."""
    if kind == "3d":  # equal-size bags for the 3-D array form
        bags = [b[:1] for b in bags]
    i = data.draw(st.integers(0, len(bags) - 1), label="bag")
    r = data.draw(st.integers(0, bags[i].shape[0] - 1), label="row")
    c = data.draw(st.integers(0, bags[i].shape[1] - 1), label="col")
    bags = [b.copy() for b in bags]
    bags[i][r, c] = bad
    with pytest.raises(ValueError, match=rf"bag {i} contains NaN or inf \(instance {r} "):
        if kind == "list":
            as_bags(bags)
        elif kind == "bags":
            Bags.from_list(bags)
        elif kind == "3d":
            as_bags(np.stack(bags))
        else:
            ref = Bags.from_list([np.nan_to_num(b) for b in bags])
            Bags(np.concatenate(bags), ref.offsets)


@PROP
@given(bags=ragged_bags(min_bags=2), data=st.data())
def test_width_mismatch_names_the_bag(bags, data):
    i = data.draw(st.integers(1, len(bags) - 1))
    d = bags[0].shape[1]
    bags = list(bags)
    bags[i] = np.ones((bags[i].shape[0], d + data.draw(st.integers(1, 3))), np.float32)
    with pytest.raises(ValueError, match=rf"bag {i} has {bags[i].shape[1]} features, bag 0 "
                                         rf"has {d}"):
        as_bags(bags)


@PROP
@given(bags=ragged_bags(), data=st.data())
def test_empty_bag_names_the_bag(bags, data):
    i = data.draw(st.integers(0, len(bags) - 1))
    bags = list(bags)
    bags[i] = np.zeros((0, bags[0].shape[1]), np.float32)
    with pytest.raises(ValueError, match=rf"bag {i} is empty"):
        as_bags(bags)
    ref = Bags.from_list([b if b.shape[0] else np.zeros((1, b.shape[1]), np.float32)
                          for b in bags])
    sizes = ref.sizes.copy()
    sizes[i] = 0
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    if len(bags) == 1:
        return
    inst = np.concatenate([b for b in bags if b.shape[0]])
    with pytest.raises(ValueError, match=rf"bag {i} is empty"):
        Bags(inst, offsets)
    bag_ids = np.repeat(np.arange(len(bags)), sizes)
    if i < len(bags) - 1:  # an id gap in the middle
        with pytest.raises(ValueError, match=rf"bag {i} is empty"):
            Bags.from_instances(inst, bag_ids)


@PROP
@given(bags=ragged_bags())
def test_round_trip_exact(bags):
    """Valid ragged input (incl. one-instance bags, a single bag) comes back bit for bit."""
    b = as_bags(bags)
    assert len(b) == len(bags)
    for x, y in zip(b, bags):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(b.sizes, [len(x) for x in bags])


def test_zero_bags_every_form():
    with pytest.raises(ValueError, match="no bags"):
        as_bags([])
    with pytest.raises(ValueError, match="no bags"):
        Bags.from_list([])
    with pytest.raises(ValueError, match="no bags"):
        Bags(np.zeros((0, 3)), np.array([0]))
    with pytest.raises(ValueError, match="no bags"):
        as_bags(np.zeros((0, 4, 3)))
    with pytest.raises(ValueError, match="no bags"):
        as_bags(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="no bags"):
        Bags.from_instances(np.zeros((0, 3)), np.zeros(0, int))


def test_zero_features_and_zero_instance_3d():
    with pytest.raises(ValueError, match="0 feature"):
        as_bags([np.zeros((2, 0))])
    with pytest.raises(ValueError, match="0 feature"):
        as_bags(np.zeros((3, 0)))
    with pytest.raises(ValueError, match="bag 0 is empty"):
        as_bags(np.zeros((2, 0, 3)))


def test_single_bag_and_one_instance_bags():
    one = as_bags([np.array([[1.0, 2.0]])])
    assert len(one) == 1 and one.n_instances == 1
    np.testing.assert_array_equal(one.pool("mean"), [[1, 2]])
    flat = as_bags(np.arange(6.0).reshape(3, 2))  # 2-D array = one-instance bags
    assert (flat.sizes == 1).all() and len(flat) == 3
    vec = as_bags([np.array([1.0, 2.0, 3.0])])  # a 1-D bag is one instance
    assert vec.shape == (1, 3)
    padded, mask = flat.padded()
    assert padded.shape == (3, 1, 2) and mask.all()


@pytest.mark.parametrize("bad, match", [
    ([np.array([["a", "b"]])], "bag 0: cannot convert"),
    ([np.ones((2, 2)), np.ones((2, 2, 2))], "bag 1: expected a 2-D array"),
    (np.ones((2, 2, 2, 2)), "4-D"),
    ([np.ones((1, 2)), None], "bag 1"),
    ("not bags", "cannot use str as bags"),
    ({"a": 1}, "cannot use dict as bags"),
])
def test_garbage_containers(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        as_bags(bad)


def test_offsets_inconsistent():
    X = np.zeros((4, 2))
    with pytest.raises(ValueError, match="end at n_instances=4"):
        Bags(X, np.array([0, 2, 5]))
    with pytest.raises(ValueError, match="offsets decrease at bag 1"):
        Bags(X, np.array([0, 3, 1, 4]))
    with pytest.raises(ValueError, match="instance_meta\\['coords'\\] has 3 rows"):
        Bags(X, np.array([0, 2, 4]), {"coords": np.zeros((3, 2))})
    with pytest.raises(ValueError, match="numeric"):
        Bags(np.array([["a"], ["b"]]), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="bag_ids must hold one id per instance"):
        Bags.from_instances(X, np.array([0, 1]))
    with pytest.raises(ValueError, match="instance 2 has -1"):
        Bags.from_instances(X, np.array([0, 0, -1, 1]))


# ----------------------------------------------------------------------------- labels
@PROP
@given(n=st.integers(1, 12), k=st.integers(1, 5), data=st.data(),
       value=st.sampled_from([2, -2, 3, 0.5, np.nan, np.inf, 7.0]))
def test_non_binary_label_names_the_bag(n, k, data, value):
    rng = np.random.default_rng(n * 10 + k)
    Y = rng.integers(0, 2, (n, k)).astype(float)
    i = data.draw(st.integers(0, n - 1))
    j = data.draw(st.integers(0, k - 1))
    Y[i, j] = value
    with pytest.raises(ValueError, match=rf"labels of bag {i} "):
        check_labels(Y, n)
    if float(value).is_integer():
        with pytest.raises(ValueError, match=rf"labels of bag {i} "):
            check_labels(Y.astype(np.int64), n)


@PROP
@given(n=st.integers(1, 12), k=st.integers(1, 5), data=st.data())
def test_minus_one_only_where_supported(n, k, data):
    Y = np.random.default_rng(n + k).integers(0, 2, (n, k))
    i = data.draw(st.integers(0, n - 1))
    Y[i, data.draw(st.integers(0, k - 1))] = -1
    np.testing.assert_array_equal(check_labels(Y, n, allow_unobserved=True), Y)
    with pytest.raises(ValueError, match=rf"labels of bag {i} hold .*-1.*not allowed"):
        check_labels(Y, n, allow_unobserved=False)


@pytest.mark.parametrize("Y, n, match", [
    (np.zeros((3, 2)), 4, "labels have 3 rows but there are 4 bags"),
    (np.zeros((5, 2)), 4, "labels have 5 rows but there are 4 bags"),
    (np.zeros((4, 2, 1)), 4, "2-D array"),
    (np.zeros(()), 1, "2-D array"),
    (np.array([["a", "b"]]), 1, "labels of bag 0"),
    (np.zeros((4, 0)), 4, "no label columns"),
])
def test_labels_wrong_shape(Y, n, match):
    with pytest.raises(ValueError, match=match):
        check_labels(Y, n)


def test_label_forms_accepted_exactly():
    np.testing.assert_array_equal(check_labels([1, 0, 1], 3), [[1], [0], [1]])  # 1-D = 1 label
    np.testing.assert_array_equal(check_labels(np.array([[True, False]]), 1), [[1, 0]])
    np.testing.assert_array_equal(check_labels(np.array([[1.0, -0.0]]), 1), [[1, 0]])
    from scipy.sparse import csr_matrix

    np.testing.assert_array_equal(check_labels(csr_matrix(np.eye(2)), 2), np.eye(2))
    assert check_labels(np.ones((2, 2)), 2).dtype == np.int8


def test_dataset_checks_labels_against_bags():
    bags = as_bags([np.ones((2, 2)), np.ones((1, 2))])
    with pytest.raises(ValueError, match="labels have 3 rows but there are 2 bags"):
        MIMLDataset(Y=np.zeros((3, 1)), label_names=["a"], bags=bags)
    with pytest.raises(ValueError, match="1 label names for 2 label columns"):
        MIMLDataset(Y=np.zeros((2, 2)), label_names=["a"], bags=bags)
    with pytest.raises(ValueError, match=re.escape("labels of bag 1 hold")):
        MIMLDataset(Y=np.array([[0], [5]]), label_names=["a"], bags=bags)
