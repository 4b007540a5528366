"""Bag-level splitters: sizes, determinism, no group leak, stratification, protocol strings,
use as ``cv=`` in scikit-learn."""

from __future__ import annotations

import time

import numpy as np
import pytest

from mimlkit.bags import Bags
from mimlkit.datasets.base import MIMLDataset
from mimlkit.evaluation import (
    GroupHoldOut,
    GroupKFold,
    GroupRepeatedRandomSplit,
    HoldOut,
    IterativeStratifiedKFold,
    KFold,
    RepeatedRandomSplit,
    parse_protocol,
)


def _dataset(n=60, q=4, seed=0, groups=True):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 4, n)
    inst = rng.normal(size=(int(sizes.sum()), 3)).astype(np.float32)
    bags = Bags(inst, np.concatenate([[0], np.cumsum(sizes)]))
    Y = (rng.random((n, q)) < 0.4).astype(np.int8)
    g = np.repeat(np.arange(n // 3), 3) if groups else None
    return MIMLDataset(Y=Y, label_names=[f"l{i}" for i in range(q)], bags=bags, groups=g)


def _check_partition(train, test, n):
    assert np.intersect1d(train, test).size == 0
    assert np.array_equal(np.union1d(train, test), np.arange(n))


def test_holdout_sizes_and_determinism():
    ds = _dataset()
    (tr, te), = list(HoldOut(random_state=1).split(ds))
    _check_partition(tr, te, 60)
    assert te.size == 20 and tr.size == 40
    (tr2, te2), = list(HoldOut(random_state=1).split(ds))
    assert np.array_equal(te, te2)
    (_, te3), = list(HoldOut(random_state=2).split(ds))
    assert not np.array_equal(te, te3)
    (_, te4), = list(HoldOut(test_size=0.25).split(np.zeros((60, 2))))
    assert te4.size == 15
    with pytest.raises(ValueError, match="test_size"):
        list(HoldOut(test_size=1.5).split(ds))


def test_repeated_random_split_protocol():
    ds = _dataset(n=90)
    sp = RepeatedRandomSplit(n_repeats=30, random_state=0)
    splits = list(sp.split(ds))
    assert len(splits) == sp.get_n_splits() == 30
    for tr, te in splits:
        _check_partition(tr, te, 90)
        assert tr.size == 60 and te.size == 30
    assert len({te.tobytes() for _, te in splits}) == 30
    # repeat r does not depend on n_repeats
    short = list(RepeatedRandomSplit(n_repeats=5, random_state=0).split(ds))
    for (a, b), (c, d) in zip(short, splits):
        assert np.array_equal(a, c) and np.array_equal(b, d)
    # train_n: a subset of that split's training part, same test part
    small = list(RepeatedRandomSplit(n_repeats=5, random_state=0, train_n=12).split(ds))
    for (tr_s, te_s), (tr, te) in zip(small, splits):
        assert tr_s.size == 12 and np.isin(tr_s, tr).all() and np.array_equal(te_s, te)
    with pytest.raises(ValueError, match="train_n"):
        list(RepeatedRandomSplit(train_n=61).split(ds))


def test_kfold_partitions():
    n = 53
    sp = KFold(n_splits=10, random_state=3)
    seen = np.zeros(n, int)
    for tr, te in sp.split(np.zeros((n, 1))):
        _check_partition(tr, te, n)
        assert te.size in (5, 6)
        seen[te] += 1
    assert (seen == 1).all()
    unshuffled = [te for _, te in KFold(n_splits=5, shuffle=False).split(np.zeros((10, 1)))]
    assert np.array_equal(unshuffled[0], [0, 1])


def _label_deviation(Y, folds, k):
    """Mean absolute deviation of per-fold positive counts from the ideal (count / k)."""
    dev = 0.0
    for j in range(k):
        dev += np.abs(Y[folds == j].sum(0) - Y.sum(0) / k).sum()
    return dev


def test_iterative_stratification_beats_random_on_skewed_labels():
    rng = np.random.default_rng(0)
    n, q, k = 400, 12, 5
    rates = np.geomspace(0.4, 0.01, q)  # skewed: rare labels
    Y = (rng.random((n, q)) < rates).astype(np.int8)
    strat, rand = [], []
    for seed in range(5):
        f = IterativeStratifiedKFold(n_splits=k, random_state=seed).assign_folds(Y)
        strat.append(_label_deviation(Y, f, k))
        fr = np.empty(n, int)
        for j, (_, te) in enumerate(KFold(n_splits=k, random_state=seed).split(Y)):
            fr[te] = j
        rand.append(_label_deviation(Y, fr, k))
        sizes = np.bincount(f, minlength=k)
        assert sizes.max() - sizes.min() <= 2
    assert np.mean(strat) < 0.5 * np.mean(rand)
    # split() partitions and reads Y from a dataset
    ds = MIMLDataset(Y=Y, label_names=[str(i) for i in range(q)],
                     bags=Bags.from_array(rng.normal(size=(n, 2))))
    sp = IterativeStratifiedKFold(n_splits=k, random_state=1)
    tests = [te for _, te in sp.split(ds)]
    assert np.array_equal(np.sort(np.concatenate(tests)), np.arange(n))
    again = [te for _, te in IterativeStratifiedKFold(n_splits=k, random_state=1).split(ds)]
    assert all(np.array_equal(a, b) for a, b in zip(tests, again))


def test_iterative_stratification_is_fast_enough():
    rng = np.random.default_rng(1)
    Y = (rng.random((20_000, 50)) < 0.05).astype(np.int8)
    t0 = time.perf_counter()
    f = IterativeStratifiedKFold(n_splits=5).assign_folds(Y)
    assert time.perf_counter() - t0 < 10
    assert np.bincount(f).min() >= 3900


@pytest.mark.slow
def test_iterative_stratification_100k_by_100():
    rng = np.random.default_rng(2)
    Y = (rng.random((100_000, 100)) < 0.05).astype(np.int8)
    t0 = time.perf_counter()
    IterativeStratifiedKFold(n_splits=5).assign_folds(Y)
    assert time.perf_counter() - t0 < 30


@pytest.mark.parametrize("splitter", [GroupKFold(n_splits=4), GroupHoldOut(test_size=0.3),
                                      GroupRepeatedRandomSplit(n_repeats=6)])
def test_group_splitters_never_leak(splitter):
    ds = _dataset(n=60)
    n_seen = 0
    for tr, te in splitter.split(ds):
        _check_partition(tr, te, 60)
        assert np.intersect1d(ds.groups[tr], ds.groups[te]).size == 0
        n_seen += 1
    assert n_seen == splitter.get_n_splits()
    with pytest.raises(ValueError, match="groups"):
        list(splitter.split(_dataset(groups=False)))


def test_group_kfold_covers_every_bag_once_and_balances():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 25, 200)
    seen = np.zeros(200, int)
    sizes = []
    for _, te in GroupKFold(n_splits=5).split(np.zeros((200, 1)), groups=groups):
        seen[te] += 1
        sizes.append(te.size)
    assert (seen == 1).all()
    assert max(sizes) - min(sizes) <= 20


def test_parse_protocol():
    assert isinstance(parse_protocol("holdout"), HoldOut)
    assert parse_protocol("holdout:0.25").test_size == 0.25
    r = parse_protocol("repeat:30")
    assert isinstance(r, RepeatedRandomSplit) and r.n_repeats == 30
    assert r.train_size == pytest.approx(2 / 3)
    r = parse_protocol("repeat:10:0.667", random_state=5, train_n=50)
    assert (r.n_repeats, r.train_size, r.random_state, r.train_n) == (10, 0.667, 5, 50)
    assert parse_protocol("kfold:10").n_splits == 10
    assert parse_protocol("kfold").n_splits == 10
    assert isinstance(parse_protocol("stratified:5"), IterativeStratifiedKFold)
    g = parse_protocol("group-kfold:5")
    assert isinstance(g, GroupKFold) and g.n_splits == 5
    assert isinstance(parse_protocol("group-holdout:0.2"), GroupHoldOut)
    assert parse_protocol("group-repeat:4:0.5").n_repeats == 4
    for bad, msg in [("bootstrap", "unknown protocol"), ("kfold:x", "not a number"),
                     ("kfold:5:3", "too many"), ("", "empty")]:
        with pytest.raises(ValueError, match=msg):
            parse_protocol(bad)
    with pytest.raises(ValueError, match="train_n"):
        parse_protocol("kfold:5", train_n=10)
    assert "RepeatedRandomSplit(n_repeats=30" in repr(parse_protocol("repeat"))
    assert parse_protocol("repeat").describe()["splitter"] == "RepeatedRandomSplit"
