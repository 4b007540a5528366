"""On-disk bag store: chunked, append-only, resumable; read lazily block by block.

A store holds the same CSR-like layout as :class:`mimlkit.bags.Bags`, on disk, so feature
sets larger than memory (e.g. CNN features of every tile of thousands of whole-slide images)
can be written once and streamed into learners (``fit_from_store``) without ever being
loaded whole.

Why zarr and not HDF5: zarr is a pure-Python wheel (``pip install zarr``; no h5py / libhdf5 C
dependency to build or match), arrays grow by chunked appends with no file-level rewrite,
every chunk is a separate, atomically written file, so concurrent writers can fill separate
chunks (the format allows it; :class:`BagStoreWriter` itself is one writer per store) and a
crash can never leave a half-written chunk behind; a reader sees whole chunks or none.
HDF5 (h5py) is only used to *import* CLAM-style feature files (``import_clam``).

Layout (a zarr v3 group; ``attrs`` hold ``format`` = ``"mimlkit-bag-store"``,
``format_version``, ``n_features``, ``label_names``, ``meta`` (name -> dtype, trailing shape),
``chunk_rows`` and ``complete`` = the writer was closed)::

    instances   float32 (n_instances, d), chunked by ``chunk_rows`` rows
    offsets     int64 (n_bags + 1,); bag i = instances[offsets[i]:offsets[i + 1]]
    labels      int8 (n_bags, K), 1 / 0 / -1 = unobserved           (optional)
    bag_names   str (n_bags,)                                         (optional)
    meta/<key>  per-instance metadata, e.g. coords int64 (n, 2), level (optional)

Commit rule: a bag exists only once its entry in ``offsets`` is written, and the writer
writes a bag's instances, metadata, label row and name *before* its offset. Offsets beyond
the committed ones hold the fill value -1, so an interrupted write leaves a valid prefix:
reopening with :class:`BagStoreWriter` continues after the last complete bag (rows written
after it are overwritten), and :func:`open_store` reads exactly the committed bags.

The writer buffers rows in memory and writes whole chunks (a bag may straddle two chunks);
bags are committed whenever a chunk fills, on :meth:`BagStoreWriter.flush` and on
:meth:`BagStoreWriter.close`. A process killed without ``close`` loses at most the bags
appended since the last chunk was written. One writer per store at a time.

This module holds ``fit_from_store`` and re-exports the rest: the format constants and
:class:`StoreError` (:mod:`mimlkit.datasets.store_format`), the writer
(:mod:`mimlkit.datasets.store_writer`), the reader (:mod:`mimlkit.datasets.store_reader`) and
the CLAM import (:mod:`mimlkit.datasets.store_clam`).

Example::

    with BagStoreWriter("feats.zarr", n_features=1024, label_names=["tumour", "normal"]) as w:
        for slide in slides:
            w.append(features(slide), label_row=labels(slide), meta={"coords": coords(slide)},
                     name=slide.id)
    store = open_store("feats.zarr")
    for bags, Y in store.iter_blocks(256):
        ...
    fit_from_store(BroadLearningSystem(), store, block_bags=256)  # partial_fit, by blocks
    ABMIL().fit(store)  # lazy learners read one batch of bags per step (store's labels)

Training from a store: ``docs/store_training.md``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from mimlkit.datasets.store_clam import import_clam
from mimlkit.datasets.store_format import FORMAT, FORMAT_VERSION, StoreError
from mimlkit.datasets.store_reader import StoredBags, open_store
from mimlkit.datasets.store_view import StoreSubset, is_bag_source
from mimlkit.datasets.store_writer import BagStoreWriter

__all__ = ["BagStoreWriter", "StoredBags", "StoreSubset", "StoreError", "open_store",
           "fit_from_store", "import_clam", "FORMAT", "FORMAT_VERSION"]


def fit_from_store(estimator: Any, store: StoredBags | StoreSubset | str | os.PathLike,
                   block_bags: int = 256,
                   *, calibrate_bags: int | None = None) -> Any:
    """Train ``estimator`` on a labelled store, never loading it whole.

    Learners that read a store lazily (``_store_input``: ``abmil``, ``transmil``, ``dsmil``,
    ``meanmil`` / ``maxmil``, ``deepmiml``, ``mimlfast``, ``pooled-linear``,
    ``multilabel-head``) get ``estimator.fit(store, store.labels)``: deep learners read one
    batch of bags per training step, the others stream blocks (see their docstrings), and
    the data-chosen thresholds of ``fit`` hold bags out as lazy subsets of the store;
    ``block_bags`` / ``calibrate_bags`` do not apply to them.

    Otherwise the estimator needs ``partial_fit(X, Y)``. If it also has ``calibrate(X, Y)`` (the
    broad learners: BLS freezes its random node maps and scalers there), it is first
    calibrated on ``calibrate_bags`` bags (default ``block_bags``) spread evenly over the
    store, which also resets any earlier fit; then every block of ``block_bags`` bags goes
    through ``partial_fit``. For BLS the result equals the in-memory
    ``calibrate(sample) + partial_fit(all bags)``, and with ``calibrate_bags >= n_bags`` it
    equals ``fit(..., solver='primal')`` with ``threshold_mode='fixed'`` (up to float
    rounding): the data-chosen thresholds of ``fit`` need held-out refits, which streaming
    skips; the learner's own threshold is kept.

    Returns the estimator.
    """
    if not is_bag_source(store):  # a path (a store or a subset of one is used as it is)
        store = open_store(store)
    name = type(estimator).__name__
    partial = callable(getattr(estimator, "partial_fit", None))
    lazy = bool(getattr(estimator, "_store_input", False))
    if not partial and not lazy:
        gb = store.nbytes / 2**30
        raise TypeError(
            f"{name} has no partial_fit and cannot read a store lazily, so it cannot be "
            "trained from a store without loading it. For a store that fits in memory "
            f"({store.path}: {gb:.2f} GiB of instances) load it whole: "
            "estimator.fit(store.to_bags(), store.labels)")
    if store.labels is None:
        raise StoreError(f"bag store {store.path} has no labels to train on", store.path)
    if not partial:
        return estimator.fit(store, store.labels)
    block_bags = int(block_bags)
    if block_bags < 1:
        raise ValueError(f"block_bags must be >= 1, got {block_bags}")
    if callable(getattr(estimator, "calibrate", None)):
        n_cal = min(store.n_bags, int(calibrate_bags or block_bags))
        idx = np.unique(np.linspace(0, store.n_bags - 1, n_cal).round().astype(np.int64))
        # settings resolved from the data size (BLS ``n_enhancement="auto"``) count every
        # bag the model will be fitted on, not only the calibration sample
        estimator._calibration_rows_hint = int(store.n_bags)
        try:
            estimator.calibrate(store.take(idx), store.labels[idx])
        finally:
            estimator.__dict__.pop("_calibration_rows_hint", None)
    for bags, Y in store.iter_blocks(block_bags):
        estimator.partial_fit(bags, Y)
        del bags, Y  # free this block before the next one is read
    # the T-criterion rule of a fixed-threshold fit (on unless a bag has no label)
    tc = getattr(estimator, "t_criterion", None)
    if tc is not None and callable(getattr(estimator, "_set_fixed_t_criterion", None)):
        estimator._set_fixed_t_criterion(store.labels, tc)
    return estimator
