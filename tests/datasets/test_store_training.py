"""Learners trained from a bag store read lazily (issue #16): the deep MIL learners, DeepMIML,
MIMLfast and the pooled baselines accept a ``StoredBags`` as ``X``; a store larger than the
allocation budget trains BLS, ABMIL and DeepMIML without ever being loaded whole."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

pytest.importorskip("zarr")
pytest.importorskip("torch")

from mimlkit.bags import Bags  # noqa: E402
from mimlkit.datasets import make_miml_bags  # noqa: E402
from mimlkit.datasets.store import (  # noqa: E402
    BagStoreWriter,
    StoredBags,
    StoreError,
    fit_from_store,
    open_store,
)
from mimlkit.datasets.store_view import StoreSubset, iter_bag_blocks  # noqa: E402
from mimlkit.learners._bag_source import stream_scaling  # noqa: E402
from mimlkit.learners.classic._instance_scaling import fit_scaling  # noqa: E402


def _grid_coords(bags: Bags, stride: int = 224) -> np.ndarray:
    """Tile coordinates: instance j of a bag at (j // 4, j % 4) * stride."""
    j = np.arange(bags.n_instances) - np.repeat(bags.offsets[:-1], bags.sizes)
    return np.stack([j // 4, j % 4], axis=1).astype(np.int64) * stride


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """90 bags in memory and the same bags (with tile coordinates) in a store."""
    ds = make_miml_bags(n_bags=90, n_labels=4, n_features=8, bag_size=(3, 9), random_state=1)
    bags = Bags(ds.bags.instances, ds.bags.offsets, {"coords": _grid_coords(ds.bags)})
    path = tmp_path_factory.mktemp("small") / "small.zarr"
    with BagStoreWriter(path, 8, ds.label_names, chunk_rows=64) as w:
        w.append(bags, ds.Y)
    return bags, ds.Y, open_store(path)


# ----------------------------------------------------------------------------- lazy views
def test_subsets_and_streamed_statistics(small):
    bags, Y, store = small
    idx = np.array([50, 3, 4, 5, 88, 0])
    sub = store.subset(idx)
    assert isinstance(sub, StoreSubset) and sub.n_bags == 6
    assert sub.take([1, 0]) == bags.take(idx[[1, 0]]) and sub.to_bags() == bags.take(idx)
    np.testing.assert_array_equal(sub.labels, Y[idx])
    np.testing.assert_array_equal(sub.offsets, bags.take(idx).offsets)
    np.testing.assert_array_equal(sub.slice_meta(0, 6)["coords"],
                                  bags.take(idx).instance_meta["coords"])
    assert sub.subset([2, 3]).to_bags() == bags.take([4, 5])
    np.testing.assert_array_equal(sub.bag(-2), bags.take([88]).instances)
    blocks = list(sub.iter_blocks(4))
    assert [b.n_bags for b, _ in blocks] == [4, 2]
    np.testing.assert_array_equal(blocks[1][1], Y[[88, 0]])
    with pytest.raises(IndexError, match="small.zarr"):
        store.subset([90])
    # blocks of at most 20 instances (a bigger bag alone) cover every bag once, in order
    seen = [(s, e, blk) for s, e, blk in iter_bag_blocks(store, max_rows=20)]
    assert seen[0][0] == 0 and seen[-1][1] == 90
    assert all(blk.n_instances <= 20 or e - s == 1 for s, e, blk in seen)
    np.testing.assert_array_equal(np.concatenate([b.instances for *_, b in seen]),
                                  bags.instances)
    for how in ("standard", "minmax", "auto", "robust", None):
        off, fac = stream_scaling(sub, how)
        ref = fit_scaling(bags.take(idx).instances, how)
        np.testing.assert_allclose(off, ref[0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(fac, ref[1], rtol=1e-10)


# ----------------------------------------------------------------------------- equality
def _deep(name: str, **kw):
    from mimlkit.deep.attention import ABMIL, PoolMIL
    from mimlkit.deep.dsmil import DSMIL
    from mimlkit.deep.transmil import TransMIL

    common = dict(hidden=16, max_epochs=2, batch_size=16, threshold_mode="fixed",
                  device="cpu", random_state=0)
    common.update(kw)
    if name == "abmil":
        return ABMIL(att_dim=8, **common)
    if name == "meanmil":
        return PoolMIL(pool="mean", **common)
    if name == "dsmil":
        return DSMIL(q_dim=8, **common)
    return TransMIL(n_heads=2, **common)


@pytest.mark.parametrize("name,kw", [
    ("abmil", {}),  # standardised: streamed statistics, equal up to float rounding
    ("abmil", {"scale": None, "max_instances": 4, "instance_dropout": 0.2}),
    ("meanmil", {}), ("dsmil", {}), ("transmil", {}),  # transmil: grid from the coords
])
def test_deep_mil_from_store_equals_in_memory(small, name, kw):
    bags, Y, store = small
    mem = _deep(name, **kw).fit(bags.take(np.arange(70)), Y[:70])
    lazy = _deep(name, **kw).fit(store.subset(np.arange(70)))  # labels from the store
    test = np.arange(70, 90)
    S_mem = mem.decision_function(bags.take(test))
    S_lazy = lazy.decision_function(store.subset(test))
    np.testing.assert_allclose(S_lazy, S_mem, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(lazy.scale_offset_, mem.scale_offset_, rtol=1e-9, atol=1e-12)
    inst_mem = mem.instance_scores(bags.take(test))
    inst_lazy = lazy.instance_scores(store.subset(test))
    assert [a.shape for a in inst_lazy] == [a.shape for a in inst_mem]
    np.testing.assert_allclose(np.vstack(inst_lazy), np.vstack(inst_mem), rtol=1e-4, atol=1e-5)


def test_calibrated_fit_from_store_equals_in_memory(small):
    """The default data-chosen thresholds: clones fitted on lazy subsets of the store."""
    bags, Y, store = small
    mem = _deep("abmil", threshold_mode="hamming", scale=None).fit(bags, Y)
    lazy = fit_from_store(_deep("abmil", threshold_mode="hamming", scale=None), store)
    assert lazy.calibration_ == mem.calibration_ and lazy.calibration_["n_folds"] == 3
    np.testing.assert_allclose(lazy.threshold_, mem.threshold_, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(lazy.predict(store), mem.predict(bags))


def test_deepmiml_from_store_equals_in_memory(small):
    from mimlkit.deep.deepmiml import DeepMIML

    bags, Y, store = small

    def make():
        return DeepMIML(hidden=16, n_subconcepts=2, epochs=2, batch_size=16, device="cpu",
                        random_state=0)

    mem, lazy = make().fit(bags, Y), make().fit(store)
    np.testing.assert_allclose(lazy.decision_function(store), mem.decision_function(bags),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lazy.threshold_, mem.threshold_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.vstack(lazy.instance_scores(store)),
                               np.vstack(mem.instance_scores(bags)), rtol=1e-5, atol=1e-6)


def test_pooled_and_mimlfast_from_store_equal_in_memory(small):
    from mimlkit.deep.heads import MultiLabelHead
    from mimlkit.learners.classic.mimlfast import MIMLfast
    from mimlkit.learners.pooled import PooledLinear

    bags, Y, store = small
    for make in (lambda: PooledLinear(pool="meanmax"),
                 lambda: MultiLabelHead(max_epochs=3, device="cpu", threshold_mode="fixed")):
        mem, lazy = make().fit(bags, Y), make().fit(store)
        np.testing.assert_array_equal(lazy.decision_function(store), mem.decision_function(bags))
    pl = fit_from_store(PooledLinear(), store.subset(np.arange(60)))  # a subset too
    np.testing.assert_array_equal(pl.coef_, PooledLinear().fit(bags.take(np.arange(60)),
                                                               Y[:60]).coef_)
    pl = PooledLinear().fit(store)
    np.testing.assert_array_equal(pl.decision_function_instances(store),
                                  PooledLinear().fit(bags, Y).decision_function_instances(bags))
    fast = dict(dim=8, n_subconcepts=2, n_epochs=2, average_begin=0, threshold_mode="fixed",
                random_state=0)
    mem, lazy = MIMLfast(**fast).fit(bags, Y), MIMLfast(**fast).fit(store)
    np.testing.assert_allclose(lazy.V_, mem.V_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(lazy.decision_function(store), mem.decision_function(bags),
                               rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(np.vstack(lazy.instance_scores(store)),
                               np.vstack(mem.instance_scores(bags)), rtol=1e-6, atol=1e-9)


# ----------------------------------------------------------------------------- errors
def test_store_errors_name_the_path(small, tmp_path):
    from mimlkit.deep.attention import ABMIL
    from mimlkit.deep.deepmiml import DeepMIML
    from mimlkit.learners.classic.mimlknn import MIMLkNN

    bags, Y, store = small
    with BagStoreWriter(tmp_path / "unlabelled.zarr", 8) as w:
        w.append(bags)
    u = open_store(tmp_path / "unlabelled.zarr")
    for est in (ABMIL(), DeepMIML()):
        with pytest.raises(StoreError, match="unlabelled.zarr has no labels"):
            est.fit(u)
        with pytest.raises(StoreError, match="unlabelled.zarr has no labels"):
            fit_from_store(est, u)
    m = ABMIL(hidden=8, max_epochs=1, threshold_mode="fixed", device="cpu").fit(u, Y)
    assert m.predict(u).shape == Y.shape  # labels given with an unlabelled store
    with pytest.raises(TypeError, match="MIMLkNN cannot read a bag store lazily.*small.zarr"):
        MIMLkNN().fit(store)
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'Y'"):
        ABMIL().fit(bags)
    with pytest.raises(ValueError, match="features"):
        m.decision_function(bags.with_instances(np.ones((bags.n_instances, 3), np.float32)))


# ----------------------------------------------------------------------------- acceptance
@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """An easy synthetic problem: a ~50 MB store of 240 training bags of ~800 instances
    (written in batches) and 60 test bags kept in memory."""
    ds = make_miml_bags(n_bags=300, n_labels=4, n_features=64, bag_size=(700, 900),
                        witness_share=0.05, random_state=7)
    path = tmp_path_factory.mktemp("big") / "big.zarr"
    with BagStoreWriter(path, 64, ds.label_names, chunk_rows=4096) as w:
        for s in range(0, 240, 40):
            w.append(ds.bags.take(np.arange(s, s + 40)), ds.Y[s:s + 40])
    test = np.arange(240, 300)
    return open_store(path), ds.bags.take(test), ds.Y[test]


def _traced_fit(fit):
    """Run ``fit()``; return (result, peak traced allocation, largest single store read),
    with ``StoredBags.to_bags`` refusing to load the store whole."""
    largest = [0]
    rows = StoredBags._rows

    def counting(self, arr, a, b):
        if arr is self._inst:
            largest[0] = max(largest[0], b - a)
        return rows(self, arr, a, b)

    def refuse(self):
        raise AssertionError("the store was loaded whole")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(StoredBags, "_rows", counting)
        mp.setattr(StoredBags, "to_bags", refuse)
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            out = fit()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    return out, peak, largest[0]


def _beats_prior(est, X_test, Y_test, store):
    from mimlkit.learners.baselines import LabelPrior
    from mimlkit.metrics import average_precision, macro_auc

    S = est.decision_function(X_test)
    assert S.shape == Y_test.shape and est.predict(X_test).shape == Y_test.shape
    prior = LabelPrior().fit(Bags.from_array(np.zeros((store.n_bags, store.n_features))),
                             store.labels)
    S0 = prior.decision_function(X_test)
    ap, ap0 = average_precision(Y_test, S), average_precision(Y_test, S0)
    auc = macro_auc(Y_test, S)
    print(f"{type(est).__name__}: AP {ap:.3f} (prior {ap0:.3f}), macro AUC {auc:.3f}")
    assert ap > ap0 + 0.05 and auc > 0.7


@pytest.mark.parametrize("learner", ["bls", "abmil", "deepmiml"])
def test_store_larger_than_the_allocation_budget_trains(big, learner, monkeypatch):
    """Acceptance (issue #16): the store is 4x the budget of Python allocations the fit
    may peak at; BLS streams blocks (``partial_fit``), ABMIL and DeepMIML read one batch of
    bags per step (and score the store in blocks of ``STORE_READ_BYTES``, set to 1 MiB for
    this budget: zarr holds about 3x a read while decoding it); no read is larger than a
    block or batch, the store is never loaded whole, and the models beat the label prior."""
    import mimlkit.datasets.store_view as store_view
    from mimlkit.deep.attention import ABMIL
    from mimlkit.deep.deepmiml import DeepMIML
    from mimlkit.learners.broad.bls import BroadLearningSystem

    store, X_test, Y_test = big
    assert store.nbytes > 45e6
    budget = store.nbytes / 4
    monkeypatch.setattr(store_view, "STORE_READ_BYTES", 1 << 20)
    if learner == "bls":
        est = BroadLearningSystem(n_nodes_per_window=8, n_windows=4, n_enhancement=120,
                                  sparse_iter=10, threshold_mode="fixed", random_state=0)
        warm = store.subset(np.arange(5)).to_bags()  # lazy imports of the fit path
        est.calibrate(warm, store.labels[:5]).partial_fit(warm, store.labels[:5])
        fit = lambda: fit_from_store(est, store, block_bags=4, calibrate_bags=16)  # noqa: E731
    else:
        est = (ABMIL(hidden=16, att_dim=8, max_epochs=2, batch_size=16, lr=1e-2)
               if learner == "abmil" else
               DeepMIML(hidden=16, n_subconcepts=2, epochs=2, batch_size=8, lr=1e-2,
                        random_state=0))
        est.set_params(threshold_mode="fixed", device="cpu")
        est.fit(store.subset(np.arange(8)))  # warm-up: lazy imports of the fit path

        def fit():
            est.fit(store)
            return est.decision_function(store)  # scored block by block too

    out, peak, largest = _traced_fit(fit)
    print(f"{learner}: store {store.nbytes / 1e6:.1f} MB, peak traced allocation "
          f"{peak / 1e6:.1f} MB, largest read {largest} instances")
    assert peak < budget, f"peak Python allocation {peak / 1e6:.1f} MB >= {budget / 1e6:.1f} MB"
    assert largest * store.n_features * 4 <= budget / 2
    if learner != "bls":
        assert out.shape == (store.n_bags, store.n_labels)
    _beats_prior(est, X_test, Y_test, store)
