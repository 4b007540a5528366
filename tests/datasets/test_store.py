"""On-disk bag store (``mimlkit.datasets.store``): round trip, resume, lazy blocks, errors,
CLAM import and streaming BLS training from a store larger than the allocation budget."""

from __future__ import annotations

import importlib.util
import sys
import tracemalloc
import types
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("zarr")

from mimlkit.bags import Bags  # noqa: E402
from mimlkit.datasets.store import (  # noqa: E402
    BagStoreWriter,
    StoredBags,
    StoreError,
    fit_from_store,
    import_clam,
    open_store,
)

LABELS = ["a", "b", "c"]


def _data(n_bags=40, d=6, seed=0, max_size=25):
    rng = np.random.default_rng(seed)
    bags = [rng.normal(size=(int(rng.integers(1, max_size)), d)).astype(np.float32)
            for _ in range(n_bags)]
    Y = rng.integers(0, 2, size=(n_bags, len(LABELS))).astype(np.int8)
    Y[3, 1] = -1  # one unobserved entry survives the round trip
    coords = [rng.integers(0, 10_000, size=(len(b), 2)).astype(np.int64) for b in bags]
    return bags, Y, coords


def _write(path, bags, Y, coords, *, chunk_rows=16, start=0, stop=None):
    with BagStoreWriter(path, bags[0].shape[1], LABELS, chunk_rows=chunk_rows) as w:
        for i in range(start, len(bags) if stop is None else stop):
            w.append(bags[i], Y[i], {"coords": coords[i],
                                     "level": np.full(len(bags[i]), i % 3, np.int8)},
                     name=f"slide{i}")
    return w


def _check_equal(store: StoredBags, bags, Y, coords):
    ref = Bags.from_list(bags)
    assert store.n_bags == len(bags) and store.n_instances == ref.n_instances
    assert store.n_features == ref.n_features
    np.testing.assert_array_equal(store.offsets, ref.offsets)
    np.testing.assert_array_equal(store.sizes, ref.sizes)
    got = store.to_bags()
    assert got == ref and got.instances.dtype == np.float32
    np.testing.assert_array_equal(got.instance_meta["coords"], np.concatenate(coords))
    np.testing.assert_array_equal(got.instance_meta["level"],
                                  np.repeat(np.arange(len(bags)) % 3, ref.sizes))
    np.testing.assert_array_equal(store.labels, Y)
    assert store.label_names == LABELS
    assert store.bag_names == [f"slide{i}" for i in range(len(bags))]


# ----------------------------------------------------------------------------- round trip
def test_round_trip_per_bag(tmp_path):
    bags, Y, coords = _data()
    _write(tmp_path / "s.zarr", bags, Y, coords)
    store = open_store(tmp_path / "s.zarr")
    assert store.complete and store.format_version == 1
    _check_equal(store, bags, Y, coords)
    for i in (0, 7, len(bags) - 1, -1):
        np.testing.assert_array_equal(store.bag(i), bags[i])
    np.testing.assert_array_equal(store.bag_meta(5)["coords"], coords[5])
    ref = Bags.from_list(bags)
    idx = [9, 3, 4, 5, 0]
    assert store.take(idx) == ref.take(idx)
    np.testing.assert_array_equal(store.take(idx).instance_meta["coords"],
                                  np.concatenate([coords[i] for i in idx]))
    with pytest.raises(IndexError, match="out of range"):
        store.bag(len(bags))
    ds = store.to_dataset()
    assert ds.bags == ref and ds.label_names == LABELS and ds.meta["bag_names"][0] == "slide0"
    assert "n_bags=40" in repr(store)


def test_round_trip_batches_and_no_labels(tmp_path):
    bags, Y, coords = _data(seed=1)
    ref = Bags.from_list(bags, instance_meta={"coords": coords})
    with BagStoreWriter(tmp_path / "b", ref.n_features, chunk_rows=32) as w:
        w.append(ref.take(np.arange(0, 15)), Y[:15])  # a batch: meta from the Bags
        w.append(bags[15], Y[15], {"coords": coords[15]})  # one bag
        w.append(ref.take(np.arange(16, 40)), Y[16:])
    store = open_store(tmp_path / "b")
    assert store.to_bags() == ref and store.label_names is None and store.bag_names is None
    np.testing.assert_array_equal(store.labels, Y)
    np.testing.assert_array_equal(store.to_bags().instance_meta["coords"],
                                  ref.instance_meta["coords"])
    # unlabelled store: blocks carry Y = None
    with BagStoreWriter(tmp_path / "u", ref.n_features) as w:
        w.append(ref)
    u = open_store(tmp_path / "u")
    assert u.labels is None and u.to_bags() == ref
    assert all(Yb is None for _, Yb in u.iter_blocks(16))


def test_writer_checks_every_bag(tmp_path):
    bags, Y, coords = _data(n_bags=4)
    with BagStoreWriter(tmp_path / "s", 6, LABELS) as w:
        w.append(bags[0], Y[0], {"coords": coords[0]}, name="x")
        with pytest.raises(ValueError, match="give label_row"):
            w.append(bags[1], None, {"coords": coords[1]}, name="y")
        with pytest.raises(ValueError, match="metadata keys"):
            w.append(bags[1], Y[1], name="y")
        with pytest.raises(ValueError, match="expected an \\(n, 6\\)"):
            w.append(np.ones((3, 5)), Y[1], {"coords": np.ones((3, 2))}, name="y")
        with pytest.raises(ValueError, match="bag 1 contains NaN"):
            w.append(np.full((2, 6), np.nan), Y[1], {"coords": np.ones((2, 2))}, name="y")
        with pytest.raises(ValueError, match="labels must be 1, 0 or -1"):
            w.append(bags[1], [2, 0, 0], {"coords": coords[1]}, name="y")
        with pytest.raises(ValueError, match="name for every bag"):
            w.append(bags[1], Y[1], {"coords": coords[1]})
        with pytest.raises(ValueError, match="shape"):
            w.append(bags[1], Y[1], {"coords": coords[2]}, name="y")
    assert open_store(tmp_path / "s").n_bags == 1
    with pytest.raises(ValueError, match="n_features"):
        BagStoreWriter(tmp_path / "new")


# ----------------------------------------------------------------------------- resume
def test_resume_after_interrupted_writer(tmp_path):
    bags, Y, coords = _data(n_bags=60, seed=2)
    path = tmp_path / "s.zarr"
    w = BagStoreWriter(path, 6, LABELS, chunk_rows=16)
    for i in range(35):
        w.append(bags[i], Y[i], {"coords": coords[i],
                                 "level": np.full(len(bags[i]), i % 3, np.int8)},
                 name=f"slide{i}")
    committed = w.n_committed
    assert 0 < committed < 35 and w.n_bags == 35  # the rest still buffered
    del w  # "killed": never closed, the buffered bags are lost, the committed ones stay

    half = open_store(path)
    assert not half.complete and half.n_bags == committed
    _check_equal(half, bags[:committed], Y[:committed], coords[:committed])

    # a torn commit on top: rows, labels and offset slots (fill -1) written past the last
    # complete bag, as a crash between resizing and writing the offsets would leave them
    import zarr

    g = zarr.open_group(str(path), mode="r+")
    n_rows = g["instances"].shape[0]
    g["instances"].resize((n_rows + 50, 6))
    g["instances"][n_rows:] = 99.0
    g["labels"].resize((committed + 3, 3))
    g["offsets"].resize((committed + 4,))

    w = BagStoreWriter(path, 6, LABELS)
    assert w.n_committed == committed
    with w:
        for i in range(committed, len(bags)):
            w.append(bags[i], Y[i], {"coords": coords[i],
                                     "level": np.full(len(bags[i]), i % 3, np.int8)},
                     name=f"slide{i}")
    store = open_store(path)
    assert store.complete
    _check_equal(store, bags, Y, coords)

    # resuming a closed store appends; mismatching arguments are refused
    with pytest.raises(StoreError, match="features per instance"):
        BagStoreWriter(path, 7)
    with pytest.raises(StoreError, match="has labels"):
        BagStoreWriter(path, 6, ["x", "y", "z"])
    BagStoreWriter(path, 6, overwrite=True).close()
    with pytest.raises(StoreError, match="no complete bag"):
        open_store(path)


# ----------------------------------------------------------------------------- lazy blocks
@pytest.mark.parametrize("block_bags", [1, 7, 40, 100])
def test_iter_blocks_equals_in_memory(tmp_path, block_bags):
    bags, Y, coords = _data(seed=3)
    _write(tmp_path / "s", bags, Y, coords, chunk_rows=10)
    store = open_store(tmp_path / "s")
    ref = Bags.from_list(bags)
    start = 0
    for blk, Yb in store.iter_blocks(block_bags):
        idx = np.arange(start, start + blk.n_bags)
        assert blk == ref.take(idx) and blk.n_bags <= block_bags
        np.testing.assert_array_equal(Yb, Y[idx])
        np.testing.assert_array_equal(blk.instance_meta["coords"],
                                      np.concatenate([coords[i] for i in idx]))
        start += blk.n_bags
    assert start == len(bags)
    with pytest.raises(ValueError, match="block_bags"):
        next(store.iter_blocks(0))


# ----------------------------------------------------------------------------- errors
def test_missing_and_corrupt_stores_name_the_path(tmp_path):
    missing = tmp_path / "nowhere.zarr"
    with pytest.raises(FileNotFoundError, match="nowhere.zarr"):
        open_store(missing)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("hello")
    with pytest.raises(StoreError, match="junk") as info:
        open_store(junk)
    assert info.value.path == str(junk)
    with pytest.raises(StoreError, match="junk"):
        BagStoreWriter(junk, 4)  # a non-empty folder that is no store is not overwritten
    with pytest.raises(StoreError, match="notes.txt is a file"):
        BagStoreWriter(junk / "notes.txt", 4)

    import zarr

    other = tmp_path / "other.zarr"
    zarr.open_group(str(other), mode="w").create_array("x", shape=(2,), dtype="int8")
    with pytest.raises(StoreError, match="other.zarr.*not a mimlkit bag store"):
        open_store(other)

    bags, Y, coords = _data(n_bags=10)
    good = tmp_path / "good.zarr"
    _write(good, bags, Y, coords)
    import shutil

    no_off = tmp_path / "no_offsets.zarr"
    shutil.copytree(good, no_off)
    shutil.rmtree(no_off / "offsets")
    with pytest.raises(StoreError, match="no_offsets.zarr.*'offsets' array is missing"):
        open_store(no_off)

    bad_chunk = tmp_path / "bad_chunk.zarr"
    shutil.copytree(good, bad_chunk)
    chunk = next(p for p in (bad_chunk / "instances").rglob("*") if p.is_file()
                 and p.name != "zarr.json")
    chunk.write_bytes(b"\x00garbage")
    store = open_store(bad_chunk)
    with pytest.raises(StoreError, match="bad_chunk.zarr.*cannot read rows"):
        store.to_bags()

    bad_off = tmp_path / "bad_offsets.zarr"
    shutil.copytree(good, bad_off)
    g = zarr.open_group(str(bad_off), mode="r+")
    g["offsets"][3] = 10**9
    with pytest.raises(StoreError, match="bad_offsets.zarr.*corrupt"):
        open_store(bad_off)


# ----------------------------------------------------------------------------- training
def test_fit_from_store_needs_partial_fit_and_labels(tmp_path):
    from mimlkit.learners.baselines import LabelPrior

    bags, Y, coords = _data(n_bags=10)
    _write(tmp_path / "s", bags, Y, coords)
    with pytest.raises(TypeError, match="LabelPrior has no partial_fit.*store.to_bags"):
        fit_from_store(LabelPrior(), tmp_path / "s")
    with BagStoreWriter(tmp_path / "u", 6) as w:
        w.append(Bags.from_list(bags))
    from mimlkit.learners.broad.bls import BroadLearningSystem

    with pytest.raises(StoreError, match="has no labels"):
        fit_from_store(BroadLearningSystem(), tmp_path / "u")


def _bls(**kw):
    from mimlkit.learners.broad.bls import BroadLearningSystem

    return BroadLearningSystem(n_nodes_per_window=8, n_windows=4, n_enhancement=120,
                               sparse_iter=10, threshold_mode="fixed", random_state=0, **kw)


def test_bls_from_store_equals_in_memory_primal_fit(tmp_path):
    bags, Y, coords = _data(n_bags=120, seed=4)
    Y = np.abs(Y)  # BLS needs fully observed labels
    Y[:, 0] = 1  # no empty label set
    _write(tmp_path / "s", bags, Y, coords, chunk_rows=64)
    store = open_store(tmp_path / "s")
    streamed = fit_from_store(_bls(), store, block_bags=25, calibrate_bags=store.n_bags)
    mem = _bls(solver="primal").fit(Bags.from_list(bags), Y)
    np.testing.assert_allclose(streamed.coef_, mem.coef_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(streamed.gram_, mem.gram_, rtol=1e-9, atol=1e-9)
    assert streamed.n_samples_seen_ == 120
    X = Bags.from_list(bags)
    np.testing.assert_array_equal(streamed.predict(X), mem.predict(X))
    assert streamed.t_criterion_ == mem.t_criterion_


def test_bls_trains_from_store_larger_than_the_allocation_budget(tmp_path):
    """Acceptance (issue #16): a ~60 MB store streams into BLS while the Python heap peak
    of the whole fit stays far below the store size; the model equals the in-memory
    calibrate(sample) + partial_fit(all) on the same data."""
    d, n_bags, size = 64, 1200, 200
    path = tmp_path / "big.zarr"
    rng = np.random.default_rng(5)
    Y = rng.integers(0, 2, size=(n_bags, 4)).astype(np.int8)
    Y[:, 0] = 1
    # 1 MiB chunks: a read holds its block plus the (decompressed) chunks it touches
    with BagStoreWriter(path, d, ["w", "x", "y", "z"], chunk_rows=4096) as w:
        for s in range(0, n_bags, 100):  # written in batches: at most 100 bags in memory
            X = rng.normal(size=(100 * size, d)).astype(np.float32)
            X[:, :4] += (Y[s:s + 100].repeat(size, axis=0) * 0.5)  # some signal
            w.append(Bags(X, np.arange(0, 100 * size + 1, size)), Y[s:s + 100])
    store = open_store(path)
    assert store.nbytes == n_bags * size * d * 4 > 60e6
    disk = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    assert disk > 55e6

    budget = store.nbytes / 4
    # warm-up on 20 bags, so that the lazy imports of the fit path are not traced
    model = _bls()
    model.calibrate(store.take(np.arange(20)), Y[:20]).partial_fit(store.slice(0, 20), Y[:20])
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        model = fit_from_store(model, store, block_bags=25, calibrate_bags=50)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"store {store.nbytes / 1e6:.1f} MB, peak traced allocation {peak / 1e6:.1f} MB")
    assert peak < budget, f"peak Python allocation {peak / 1e6:.1f} MB >= {budget / 1e6:.1f} MB"
    assert model.n_samples_seen_ == n_bags

    # same model in memory (the store is loaded here only to check)
    idx = np.unique(np.linspace(0, n_bags - 1, 50).round().astype(np.int64))
    X_all = store.to_bags()
    ref = _bls().calibrate(X_all.take(idx), Y[idx]).partial_fit(X_all, Y)
    np.testing.assert_allclose(model.coef_, ref.coef_, rtol=1e-6, atol=1e-8)
    acc = (model.predict(X_all) == Y).mean()
    assert acc > 0.7


# ----------------------------------------------------------------------------- CLAM import
def _clam_csv(path: Path, ids, Y=None, categorical=None):
    if categorical is not None:
        rows = ["case_id,slide_id,label"] + [f"c{i},{s},{c}" for i, (s, c)
                                             in enumerate(zip(ids, categorical, strict=True))]
    else:
        rows = ["slide_id," + ",".join(LABELS)] + [
            f"{s}," + ",".join("" if v < 0 else str(v) for v in y)
            for s, y in zip(ids, Y, strict=True)]
    path.write_text("\n".join(rows) + "\n")
    return path


def _fake_h5py(monkeypatch):
    """An ``h5py`` stand-in reading ``.h5`` files that are really ``.npz`` archives, so the
    importer's logic is tested where h5py is not installed."""

    class File:
        def __init__(self, path, mode="r"):
            assert mode == "r"
            self._z = np.load(path)

        def __enter__(self):
            return self._z

        def __exit__(self, *exc):
            self._z.close()

    fake = types.ModuleType("h5py")
    fake.File = File
    monkeypatch.setitem(sys.modules, "h5py", fake)

    def write(path, features, coords=None):
        with open(path, "wb") as f:
            if coords is None:
                np.savez(f, features=features)
            else:
                np.savez(f, features=features, coords=coords)

    return write


def test_import_clam_with_a_fake_h5py(tmp_path, monkeypatch):
    write = _fake_h5py(monkeypatch)
    bags, Y, coords = _data(n_bags=12, d=8, seed=6)
    Y = np.abs(Y)
    folder = tmp_path / "feats" / "h5_files"
    folder.mkdir(parents=True)
    ids = [f"TCGA-{i:02d}" for i in range(12)]
    for s, b, c in zip(ids, bags, coords, strict=True):
        write(folder / f"{s}.h5", b[None] if s.endswith("3") else b, c)  # (1, n, d) too
    write(folder / "unlisted.h5", bags[0], coords[0])  # not in the CSV: ignored
    csv = _clam_csv(tmp_path / "labels.csv", [s + ".svs" if i == 2 else s
                                              for i, s in enumerate(ids)], Y)
    store = import_clam(tmp_path / "feats", csv, tmp_path / "out.zarr")
    assert store.to_bags() == Bags.from_list(bags)
    np.testing.assert_array_equal(store.labels, Y)
    assert store.label_names == LABELS and store.bag_names[2] == "TCGA-02.svs"
    np.testing.assert_array_equal(store.to_bags().instance_meta["coords"], np.concatenate(coords))

    # CLAM's categorical label column -> one-hot; a missing slide is an error or skipped
    cat = ["tumor" if i % 3 else "normal" for i in range(12)]
    csv2 = _clam_csv(tmp_path / "cat.csv", ids + ["TCGA-99"], categorical=cat + ["tumor"])
    with pytest.raises(FileNotFoundError, match="TCGA-99"):
        import_clam(folder, csv2, tmp_path / "cat.zarr")
    files = sorted(folder.glob("TCGA-*.h5"))
    cstore = import_clam(files, csv2, tmp_path / "cat.zarr", missing="skip")
    assert cstore.label_names == ["normal", "tumor"] and cstore.n_bags == 12
    np.testing.assert_array_equal(cstore.labels[:, 1], [c == "tumor" for c in cat])

    # resume: a store holding the first slides continues; a foreign one is refused
    part = tmp_path / "part.zarr"
    with BagStoreWriter(part, 8, LABELS, chunk_rows=8) as w:
        for i in range(5):
            w.append(bags[i], Y[i], {"coords": coords[i]}, name=ids[i] if i != 2 else
                     "TCGA-02.svs")
    store = import_clam(folder, csv, part)
    assert store.to_bags() == Bags.from_list(bags) and store.n_bags == 12
    with pytest.raises(StoreError, match="not the first"):
        import_clam(folder, _clam_csv(tmp_path / "rev.csv", ids[::-1], Y[::-1]), part)


@pytest.mark.skipif(importlib.util.find_spec("h5py") is not None, reason="h5py is installed")
def test_import_clam_without_h5py_names_the_extra(tmp_path):
    from mimlkit import MissingExtraError

    with pytest.raises(MissingExtraError, match=r"'store' extra \(h5py is not installed\): "
                                                r"pip install 'mimlkit\[store\]'"):
        import_clam(tmp_path, tmp_path / "labels.csv", tmp_path / "out.zarr")


def test_import_clam_real_hdf5(tmp_path):
    h5py = pytest.importorskip("h5py")
    bags, Y, coords = _data(n_bags=6, d=8, seed=7)
    Y = np.abs(Y)
    ids = [f"slide_{i}" for i in range(6)]
    for s, b, c in zip(ids, bags, coords, strict=True):
        with h5py.File(tmp_path / f"{s}.h5", "w") as h:
            h.create_dataset("features", data=b)
            h.create_dataset("coords", data=c)
    store = import_clam(tmp_path, _clam_csv(tmp_path / "l.csv", ids, Y), tmp_path / "o.zarr")
    assert store.to_bags() == Bags.from_list(bags)
    np.testing.assert_array_equal(store.labels, Y)
    np.testing.assert_array_equal(store.to_bags().instance_meta["coords"], np.concatenate(coords))
