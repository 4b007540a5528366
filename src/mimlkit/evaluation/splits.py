"""Bag-level train/test splitters for MIML evaluation.

Every splitter has ``split(X_or_dataset, Y=None, groups=None)`` yielding ``(train_idx,
test_idx)`` (sorted int64 arrays of bag indices) and ``get_n_splits(...)``, so it works as
``cv=`` in scikit-learn's ``GridSearchCV`` / ``cross_validate`` with ``Bags`` (list-like) input.
``X_or_dataset`` may be a ``MIMLDataset`` (then ``Y`` and ``groups`` default to its own), a
``Bags``, a list of bags, an ``ImageSet`` or any sized object. All splitters are seeded and
deterministic: the same ``random_state`` gives the same splits on every machine.

- ``HoldOut``: one random train/test split.
- ``RepeatedRandomSplit``: the literature's protocol (2/3 train, 1/3 test, 30 repeats; e.g.
  Zhou & Zhang's MIML tables), with ``train_n`` for learning curves.
- ``KFold``: (shuffled) k-fold.
- ``IterativeStratifiedKFold``: Sechidis, Tsoumakas & Vlahavas (2011) iterative
  stratification for multi-label data.
- ``GroupKFold``, ``GroupHoldOut``, ``GroupRepeatedRandomSplit``: never put bags of one group
  (patient, slide) on both sides.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

__all__ = [
    "BaseSplitter", "HoldOut", "RepeatedRandomSplit", "KFold", "IterativeStratifiedKFold",
    "GroupKFold", "GroupHoldOut", "GroupRepeatedRandomSplit", "parse_protocol",
    "resolve_splits", "describe_splitter", "train_test_splits",
]


def _n_samples(X: Any) -> int:
    if X is None:
        raise ValueError("split() needs the data (a dataset, bags or labels) to count bags")
    if hasattr(X, "Y") and hasattr(X, "inputs"):  # MIMLDataset
        return len(X.Y)
    return len(X)


def _dataset_defaults(X: Any, Y: Any, groups: Any) -> tuple[Any, Any]:
    if hasattr(X, "Y") and hasattr(X, "inputs"):
        if Y is None:
            Y = X.Y
        if groups is None:
            groups = getattr(X, "groups", None)
    return Y, groups


def _rng(random_state: Any, *extra: int) -> np.random.Generator:
    """A generator derived deterministically from ``random_state`` and extra keys."""
    if isinstance(random_state, np.random.Generator):
        return random_state
    if random_state is None:
        return np.random.default_rng()
    if isinstance(random_state, np.random.RandomState):
        random_state = int(random_state.randint(0, 2**31 - 1))
    return np.random.default_rng([int(random_state), *extra])


def _n_from_fraction(n: int, frac: float, what: str) -> int:
    if isinstance(frac, (int, np.integer)) and not isinstance(frac, bool) and frac >= 1:
        k = int(frac)
    else:
        if not 0.0 < float(frac) < 1.0:
            raise ValueError(f"{what} must be in (0, 1) or an integer >= 1, got {frac!r}")
        k = int(round(float(frac) * n))
    if not 1 <= k <= n - 1:
        raise ValueError(f"{what}={frac!r} leaves an empty train or test part with {n} bags")
    return k


class BaseSplitter:
    """Common interface: ``split``, ``get_n_splits``, ``describe`` and a readable repr."""

    _params: tuple[str, ...] = ()

    def split(self, X: Any = None, Y: Any = None,
              groups: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        raise NotImplementedError

    def get_n_splits(self, X: Any = None, Y: Any = None, groups: Any = None) -> int:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """JSON-friendly description (stored in evaluation results)."""
        return {"splitter": type(self).__name__,
                **{k: getattr(self, k) for k in self._params}}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._params)
        return f"{type(self).__name__}({args})"


class _OneSplit(BaseSplitter):
    """Shared parameters of the single-split splitters (``HoldOut``, ``GroupHoldOut``)."""

    _params = ("test_size", "random_state")

    def __init__(self, test_size: float = 1 / 3, random_state: Any = 0) -> None:
        self.test_size = test_size
        self.random_state = random_state

    def get_n_splits(self, X: Any = None, Y: Any = None, groups: Any = None) -> int:
        return 1


class _FoldSplitter(BaseSplitter):
    """Shared parameters of the k-fold splitters (``n_splits``, ``shuffle``, ``random_state``)."""

    _params = ("n_splits", "shuffle", "random_state")

    def __init__(self, n_splits: int = 5, shuffle: bool = True, random_state: Any = 0) -> None:
        self.n_splits = n_splits
        self.shuffle = shuffle
        self.random_state = random_state

    def get_n_splits(self, X: Any = None, Y: Any = None, groups: Any = None) -> int:
        return int(self.n_splits)


def _check_n_splits(k: int, n: int, what: str = "bags") -> None:
    if k < 2:
        raise ValueError("n_splits must be >= 2")
    if k > n:
        raise ValueError(f"n_splits={k} is larger than the number of {what} ({n})")


def _fold_splits(fold: np.ndarray, k: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(train_idx, test_idx)`` for each fold id ``0..k-1`` of ``fold`` (one id per bag)."""
    for j in range(k):
        yield np.flatnonzero(fold != j), np.flatnonzero(fold == j)


class HoldOut(_OneSplit):
    """One random split: ``test_size`` (fraction or count) of the bags for testing."""

    def split(self, X: Any = None, Y: Any = None, groups: Any = None):
        n = _n_samples(X)
        n_test = _n_from_fraction(n, self.test_size, "test_size")
        perm = _rng(self.random_state).permutation(n)
        yield np.sort(perm[n_test:]), np.sort(perm[:n_test])


class RepeatedRandomSplit(BaseSplitter):
    """``n_repeats`` independent random splits with ``train_size`` of the bags for training
    (default: 2/3 train, 1/3 test, 30 repeats, the MIML literature's protocol).

    Repeat ``r`` uses the generator seeded with ``(random_state, r)``, so repeat r is the same
    whatever ``n_repeats`` is. ``train_n`` (small-training-set / learning-curve experiments):
    each repeat first makes its ``train_size`` split, then trains on only ``train_n`` bags
    drawn at random from that split's training part, and tests on the split's full test part
    -- so results for different ``train_n`` share the same test sets and are comparable.
    """

    _params = ("n_repeats", "train_size", "random_state", "train_n")

    def __init__(self, n_repeats: int = 30, train_size: float = 2 / 3, random_state: Any = 0,
                 train_n: int | None = None) -> None:
        self.n_repeats = n_repeats
        self.train_size = train_size
        self.random_state = random_state
        self.train_n = train_n

    def get_n_splits(self, X: Any = None, Y: Any = None, groups: Any = None) -> int:
        return int(self.n_repeats)

    def split(self, X: Any = None, Y: Any = None, groups: Any = None):
        n = _n_samples(X)
        n_train = _n_from_fraction(n, self.train_size, "train_size")
        if self.n_repeats < 1:
            raise ValueError("n_repeats must be >= 1")
        if self.train_n is not None and not 1 <= int(self.train_n) <= n_train:
            raise ValueError(f"train_n={self.train_n} must be between 1 and the training part "
                             f"size {n_train} (train_size={self.train_size} of {n} bags)")
        for r in range(int(self.n_repeats)):
            rng = _rng(self.random_state, r)
            perm = rng.permutation(n)
            train, test = perm[:n_train], perm[n_train:]
            if self.train_n is not None:
                train = rng.choice(train, size=int(self.train_n), replace=False)
            yield np.sort(train), np.sort(test)


class KFold(_FoldSplitter):
    """k-fold cross-validation over bags (shuffled by default)."""

    def __init__(self, n_splits: int = 10, shuffle: bool = True, random_state: Any = 0) -> None:
        super().__init__(n_splits=n_splits, shuffle=shuffle, random_state=random_state)

    def _folds(self, n: int) -> np.ndarray:
        k = int(self.n_splits)
        _check_n_splits(k, n)
        perm = _rng(self.random_state).permutation(n) if self.shuffle else np.arange(n)
        fold = np.empty(n, dtype=np.int64)
        fold[perm] = np.arange(n) * k // n  # contiguous, balanced blocks of the permutation
        return fold

    def split(self, X: Any = None, Y: Any = None, groups: Any = None):
        fold = self._folds(_n_samples(X))
        yield from _fold_splits(fold, int(self.n_splits))


class IterativeStratifiedKFold(_FoldSplitter):
    """Multi-label iterative stratification (Sechidis, Tsoumakas & Vlahavas, ECML 2011).

    Algorithm (their Alg. 1, folds of equal size): repeatedly take the label with the fewest
    still-unassigned positive bags; give each of those bags to the fold that most wants that
    label (largest remaining desired count), ties broken by the fold's overall remaining
    demand, then at random; update the demands. Bags without any positive label go last to
    the folds with the largest remaining demand. The per-bag work is on fold-sized arrays
    and the demand updates are one matrix product per label, so 100K bags x 100 labels split
    in a few seconds. ``-1`` (unobserved) entries count as absent.
    """

    def assign_folds(self, Y: Any) -> np.ndarray:
        """Fold id (0..k-1) of every bag."""
        if hasattr(Y, "toarray"):
            Y = Y.toarray()
        Y = np.asarray(Y)
        if Y.ndim == 1:
            Y = Y[:, None]
        Yb = Y > 0
        n, q = Yb.shape
        k = int(self.n_splits)
        _check_n_splits(k, n)
        rng = _rng(self.random_state)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        Yb = Yb[order]  # work in shuffled order; map back at the end
        # desired positives per fold and label, and desired bags per fold
        desired_lab = np.tile(Yb.sum(axis=0).astype(float) / k, (k, 1))  # k x q
        desired = np.full(k, n / k)
        fold = np.full(n, -1, dtype=np.int64)
        remaining = Yb.sum(axis=0).astype(np.int64)
        unassigned = np.ones(n, dtype=bool)
        while True:
            active = remaining > 0
            if not active.any():
                break
            counts = np.where(active, remaining, np.iinfo(np.int64).max)
            best = np.flatnonzero(counts == counts.min())
            lab = int(best[rng.integers(best.size)]) if self.shuffle else int(best[0])
            bags = np.flatnonzero(Yb[:, lab] & unassigned)
            # greedy assignment of these bags, one at a time, on plain Python floats
            dl = desired_lab[:, lab].tolist()
            dt = desired.tolist()
            tie = rng.random(k).tolist() if self.shuffle else [0.0] * k
            chosen = np.empty(bags.size, dtype=np.int64)
            folds_range = range(k)
            for t in range(bags.size):
                j = max(folds_range, key=lambda f: (dl[f], dt[f], tie[f]))
                chosen[t] = j
                dl[j] -= 1.0
                dt[j] -= 1.0
            fold[bags] = chosen
            unassigned[bags] = False
            onehot = np.zeros((k, bags.size))
            onehot[chosen, np.arange(bags.size)] = 1.0
            desired_lab -= onehot @ Yb[bags]
            desired = np.asarray(dt)
            remaining -= Yb[bags].sum(axis=0)
        rest = np.flatnonzero(unassigned)
        if rest.size:
            dt = desired.tolist()
            tie = rng.random(k).tolist() if self.shuffle else [0.0] * k
            for t in rest:
                j = max(range(k), key=lambda f: (dt[f], tie[f]))
                fold[t] = j
                dt[j] -= 1.0
        out = np.empty(n, dtype=np.int64)
        out[order] = fold
        return out

    def split(self, X: Any = None, Y: Any = None, groups: Any = None):
        Y, _ = _dataset_defaults(X, Y, groups)
        if Y is None:
            raise ValueError("IterativeStratifiedKFold needs the label matrix Y")
        if X is not None and _n_samples(X) != len(Y):
            raise ValueError(f"Y has {len(Y)} rows but there are {_n_samples(X)} bags")
        fold = self.assign_folds(Y)
        yield from _fold_splits(fold, int(self.n_splits))


def _groups_of(X: Any, Y: Any, groups: Any, who: str) -> np.ndarray:
    _, groups = _dataset_defaults(X, Y, groups)
    if groups is None:
        raise ValueError(f"{who} needs groups (one id per bag, e.g. patient id); the dataset "
                         "has none")
    groups = np.asarray(groups)
    if X is not None and groups.shape != (_n_samples(X),):
        raise ValueError(f"groups must hold one id per bag ({_n_samples(X)}), got "
                         f"{groups.shape}")
    return groups


class GroupKFold(_FoldSplitter):
    """k-fold over groups: every group's bags land in exactly one test fold. Groups are
    shuffled, then placed largest first into the currently smallest fold (balanced sizes)."""

    def split(self, X: Any = None, Y: Any = None, groups: Any = None):
        groups = _groups_of(X, Y, groups, "GroupKFold")
        uniq, inv, sizes = np.unique(groups, return_inverse=True, return_counts=True)
        k = int(self.n_splits)
        _check_n_splits(k, uniq.size, "groups")
        perm = _rng(self.random_state).permutation(uniq.size) if self.shuffle \
            else np.arange(uniq.size)
        order = perm[np.argsort(-sizes[perm], kind="stable")]  # largest first, random ties
        load = [0] * k
        gfold = np.empty(uniq.size, dtype=np.int64)
        for g in order:
            j = min(range(k), key=lambda f: (load[f], f))
            gfold[g] = j
            load[j] += int(sizes[g])
        yield from _fold_splits(gfold[inv], k)


class GroupRepeatedRandomSplit(BaseSplitter):
    """Repeated random splits over groups: whole groups go to the test side until it holds
    at least ``1 - train_size`` of the bags."""

    _params = ("n_repeats", "train_size", "random_state")

    def __init__(self, n_repeats: int = 30, train_size: float = 2 / 3,
                 random_state: Any = 0) -> None:
        self.n_repeats = n_repeats
        self.train_size = train_size
        self.random_state = random_state

    def get_n_splits(self, X: Any = None, Y: Any = None, groups: Any = None) -> int:
        return int(self.n_repeats)

    def _one(self, groups: np.ndarray, rng: np.random.Generator, test_frac: float):
        uniq, inv, sizes = np.unique(groups, return_inverse=True, return_counts=True)
        if uniq.size < 2:
            raise ValueError("group splits need at least 2 groups")
        n = groups.size
        perm = rng.permutation(uniq.size)
        cum = np.cumsum(sizes[perm])
        n_test_groups = int(np.searchsorted(cum, test_frac * n, side="left")) + 1
        n_test_groups = min(max(n_test_groups, 1), uniq.size - 1)
        is_test = np.zeros(uniq.size, dtype=bool)
        is_test[perm[:n_test_groups]] = True
        mask = is_test[inv]
        return np.flatnonzero(~mask), np.flatnonzero(mask)

    def split(self, X: Any = None, Y: Any = None, groups: Any = None):
        groups = _groups_of(X, Y, groups, type(self).__name__)
        frac = float(self.train_size)
        if not 0.0 < frac < 1.0:
            raise ValueError("train_size must be a fraction in (0, 1) for group splits")
        for r in range(int(self.n_repeats)):
            yield self._one(groups, _rng(self.random_state, r), 1.0 - frac)


class GroupHoldOut(_OneSplit, GroupRepeatedRandomSplit):
    """One group-aware random split with about ``test_size`` of the bags for testing."""

    def split(self, X: Any = None, Y: Any = None, groups: Any = None):
        groups = _groups_of(X, Y, groups, "GroupHoldOut")
        if not 0.0 < float(self.test_size) < 1.0:
            raise ValueError("test_size must be a fraction in (0, 1) for group splits")
        yield self._one(groups, _rng(self.random_state, 0), float(self.test_size))


_PROTOCOLS = {
    "holdout": "holdout[:TEST_FRACTION]  (default 1/3)",
    "repeat": "repeat[:N_REPEATS[:TRAIN_FRACTION]]  (default 30 x 2/3)",
    "kfold": "kfold[:K]  (default 10)",
    "stratified": "stratified[:K]  (iterative stratification, default 5)",
    "group-kfold": "group-kfold[:K]  (default 5)",
    "group-holdout": "group-holdout[:TEST_FRACTION]",
    "group-repeat": "group-repeat[:N_REPEATS[:TRAIN_FRACTION]]",
}


def parse_protocol(spec: str, random_state: Any = 0, train_n: int | None = None) -> BaseSplitter:
    """Splitter from a short protocol string (CLI ``--protocol``).

    ``holdout``, ``holdout:0.25``, ``repeat:30``, ``repeat:30:0.667``, ``kfold:10``,
    ``stratified:5``, ``group-kfold:5``, ``group-holdout:0.3``, ``group-repeat:10:0.7``.
    ``train_n`` (training-set size) applies to ``repeat`` only.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("empty protocol")
    name, *args = [x.strip() for x in spec.strip().lower().split(":")]
    name = name.replace("_", "-")
    usage = "; ".join(_PROTOCOLS.values())

    def num(i: int, cast, default):
        if len(args) <= i or args[i] == "":
            return default
        try:
            return cast(args[i])
        except ValueError:
            raise ValueError(f"protocol {spec!r}: {args[i]!r} is not a number "
                             f"(expected {_PROTOCOLS.get(name, usage)})") from None

    max_args = {"holdout": 1, "repeat": 2, "kfold": 1, "stratified": 1, "group-kfold": 1,
                "group-holdout": 1, "group-repeat": 2}
    if name not in max_args:
        raise ValueError(f"unknown protocol {spec!r}; use one of: {usage}")
    if len(args) > max_args[name]:
        raise ValueError(f"protocol {spec!r} has too many parts; expected {_PROTOCOLS[name]}")
    if train_n is not None and name != "repeat":
        raise ValueError("train_n applies to the 'repeat' protocol only")
    if name == "holdout":
        return HoldOut(test_size=num(0, float, 1 / 3), random_state=random_state)
    if name == "repeat":
        return RepeatedRandomSplit(n_repeats=num(0, int, 30), train_size=num(1, float, 2 / 3),
                                   random_state=random_state, train_n=train_n)
    if name == "kfold":
        return KFold(n_splits=num(0, int, 10), random_state=random_state)
    if name == "stratified":
        return IterativeStratifiedKFold(n_splits=num(0, int, 5), random_state=random_state)
    if name == "group-kfold":
        return GroupKFold(n_splits=num(0, int, 5), random_state=random_state)
    if name == "group-holdout":
        return GroupHoldOut(test_size=num(0, float, 1 / 3), random_state=random_state)
    return GroupRepeatedRandomSplit(n_repeats=num(0, int, 30), train_size=num(1, float, 2 / 3),
                                    random_state=random_state)


def resolve_splits(splitter: Any, dataset: Any, groups: Any = None,
                   random_state: Any = 0) -> tuple[Any, list[tuple[np.ndarray, np.ndarray]]]:
    """``(splitter, [(train_idx, test_idx), ...])`` for ``evaluate``.

    ``splitter``: None (``RepeatedRandomSplit``), a protocol string (``parse_protocol``), an
    int k (``KFold(k)``), a mimlkit splitter, any scikit-learn splitter (``KFold``,
    ``ShuffleSplit``, ``GroupKFold``, ...: it sees an n x 1 placeholder for X, the label
    matrix as y and the groups) or an iterable of ``(train, test)`` index pairs.
    ``groups`` overrides the dataset's. Every split is checked: integer indices in range,
    neither side empty.
    """
    n = _n_samples(dataset)
    Y = dataset.Y if hasattr(dataset, "Y") else None
    if groups is None:
        groups = getattr(dataset, "groups", None)
    elif len(groups) != n:
        raise ValueError(f"groups must hold one id per bag ({n}), got {len(groups)}")
    if splitter is None:
        splitter = RepeatedRandomSplit(random_state=random_state)
    elif isinstance(splitter, str):
        splitter = parse_protocol(splitter, random_state=random_state)
    elif isinstance(splitter, (int, np.integer)) and not isinstance(splitter, bool):
        splitter = KFold(n_splits=int(splitter), random_state=random_state)
    if isinstance(splitter, BaseSplitter):
        pairs = splitter.split(dataset, Y, groups)
    elif hasattr(splitter, "split") and hasattr(splitter, "get_n_splits"):  # scikit-learn
        with warnings.catch_warnings():  # the dataset's groups, for splitters that use them
            warnings.filterwarnings("ignore", message="The groups parameter is ignored")
            pairs = list(splitter.split(np.zeros((n, 1)), Y, groups))
    elif hasattr(splitter, "__iter__"):
        pairs, splitter = splitter, _GivenSplits()
    else:
        raise TypeError(f"cannot split with {type(splitter).__name__}: give a protocol "
                        "string, an int, a mimlkit or scikit-learn splitter, or (train, test) "
                        "index pairs")
    splits = []
    for i, pair in enumerate(pairs):
        try:
            tr, te = pair
        except (TypeError, ValueError):
            raise ValueError(f"split {i}: expected a (train, test) pair of index arrays") \
                from None
        tr, te = _as_index(tr, n, i, "train"), _as_index(te, n, i, "test")
        splits.append((tr, te))
    if not splits:
        raise ValueError(f"{splitter!r} produced no split")
    return splitter, splits


class _GivenSplits:
    """Stands for (train, test) pairs given directly (``describe`` for the results)."""

    def describe(self) -> dict[str, Any]:
        return {"splitter": "given index pairs"}

    def __repr__(self) -> str:
        return "given (train, test) index pairs"


def describe_splitter(splitter: Any) -> dict[str, Any]:
    """JSON-friendly description of any splitter ``resolve_splits`` accepts."""
    if hasattr(splitter, "describe"):
        return splitter.describe()
    if isinstance(splitter, dict):
        return dict(splitter)
    return {"splitter": type(splitter).__name__, "repr": repr(splitter)}


def _as_index(idx: Any, n: int, i: int, side: str) -> np.ndarray:
    a = np.asarray(idx)
    if a.dtype == bool:
        if a.shape != (n,):
            raise ValueError(f"split {i}: {side} mask has shape {a.shape}, expected ({n},)")
        a = np.flatnonzero(a)
    if a.ndim != 1 or (a.size and not np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"split {i}: {side} indices must be a 1-D integer array")
    if a.size == 0:
        raise ValueError(f"split {i}: empty {side} part")
    if a.min() < 0 or a.max() >= n:
        raise ValueError(f"split {i}: {side} index out of range for {n} bags")
    return a.astype(np.int64, copy=False)


def train_test_splits(train: Any, test: Any):
    """``(dataset, description, [(train_idx, test_idx)])`` for a given test set: one
    ``MIMLDataset`` holding the training bags then the test bags (test labels reordered to
    the training label order; refused with a one-line reason when the label sets or the
    feature widths differ) and the one split between them."""
    from dataclasses import replace

    if set(test.label_names) != set(train.label_names):
        extra = sorted(set(test.label_names) - set(train.label_names))
        missing = sorted(set(train.label_names) - set(test.label_names))
        raise ValueError(f"test set {test.name!r} has other labels than training set "
                         f"{train.name!r} (only in test: {extra[:5]}; only in train: "
                         f"{missing[:5]})")
    order = [test.label_names.index(n) for n in train.label_names]
    Yt = test.Y[:, order]
    bags = images = None
    if train.bags is not None and test.bags is not None:
        if train.bags.n_features != test.bags.n_features:
            raise ValueError(f"test set {test.name!r} has {test.bags.n_features} features per "
                             f"instance, training set {train.name!r} has "
                             f"{train.bags.n_features}")
        from mimlkit.bags import Bags

        a, b = train.bags, test.bags
        inst = np.concatenate([a.instances, b.instances.astype(a.dtype, copy=False)])
        meta = {k: np.concatenate([a.instance_meta[k], b.instance_meta[k]])
                for k in a.instance_meta if k in b.instance_meta}
        bags = Bags(inst, np.concatenate([a.offsets, b.offsets[1:] + a.offsets[-1]]), meta,
                    validate=False)
    if train.images is not None and test.images is not None:
        from mimlkit.datasets.base import ImageSet

        images = ImageSet([train.images.raw(i) for i in range(len(train.images))]
                          + [test.images.raw(i) for i in range(len(test.images))])
    if bags is None and images is None:
        raise ValueError(f"training set {train.name!r} and test set {test.name!r} share no "
                         "input kind (feature bags / images)")
    groups = None
    if train.groups is not None and test.groups is not None:
        groups = np.concatenate([train.groups, test.groups])
    n, m = len(train), len(test)
    both = replace(train, Y=np.vstack([train.Y, Yt]), bags=bags, images=images, groups=groups,
                   instance_labels=None, name=f"{train.name}+{test.name}",
                   meta=dict(train.meta))
    desc = {"splitter": "TrainTest", "train": train.name, "test": test.name, "n_train": n,
            "n_test": m}
    return both, desc, [(np.arange(n, dtype=np.int64), np.arange(n, n + m, dtype=np.int64))]
