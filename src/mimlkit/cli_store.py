"""``mimlkit fit`` / ``mimlkit predict`` on a bag store (``--data NAME.zarr``) without
loading it, for the learners that can.

* Learners that read a store lazily (``_store_input``: ``abmil``, ``transmil``, ``dsmil``,
  ``meanmil``, ``maxmil``, ``deepmiml``, ``mimlfast``, ``pooled-linear``,
  ``multilabel-head``) are fitted with ``fit(store, labels)`` and score the store
  themselves: the same model as from the same bags in memory (``docs/store_training.md``).
* Learners with ``partial_fit`` (``bls``) are fitted by ``fit_from_store`` block by block
  and score the store block by block. That fit calibrates the node maps on a sample of
  :data:`BLOCK_BAGS` bags and keeps the learner's own threshold (no data-chosen
  thresholds), so it differs from the in-memory fit; ``fit`` says so in one line.
* Every other learner (and ``predict --explain`` / ``--heatmaps``, which hold every
  instance's scores) loads the store into memory as before, after a one-line note.

Only the store's index (offsets, labels, names) and its sidecar are read up front
(:func:`mimlkit.datasets.store_dataset.open_store_dataset`); the label names, dataset name
and pipeline recorded in the model are the ones the in-memory load gives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["BLOCK_BAGS", "streaming_mode", "training_data", "fit_streamed", "scoring_store",
           "score_input", "streamed_metadata"]

#: bags per block when a ``partial_fit`` learner is fitted or a store is scored by blocks
BLOCK_BAGS = 256

_LAZY, _BLOCKS = "lazy", "partial_fit"


def _is_store_dir(data: Any) -> bool:
    from mimlkit.datasets.store_dataset import is_store_path

    p = Path(data)
    return p.is_dir() and is_store_path(p)


def streaming_mode(est: Any, input_kind: str = "bags") -> str | None:
    """How ``est`` can use a store without loading it: ``"lazy"`` (it reads the store
    itself), ``"partial_fit"`` (block by block) or None (it needs the bags in memory)."""
    if input_kind != "bags":
        return None
    if getattr(est, "_store_input", False):
        return _LAZY
    if callable(getattr(est, "partial_fit", None)):
        return _BLOCKS
    return None


def _size(nbytes: int) -> str:
    return f"{nbytes / 2**30:.3g} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.3g} MiB"


def _note(text: str) -> None:
    from rich.markup import escape

    from mimlkit.cli import _console

    _console(stderr=True).print(f"[dim]note: {escape(text)}[/]")


def _open(data: Path, option: list[str] | None) -> Any:
    """The store at ``data`` as a lazy ``StoreDataset``; reader options checked as
    ``load_dataset`` checks them for a store (bag ids must be unique)."""
    from mimlkit.cli_models import check_unique_bag_ids, parse_data_options
    from mimlkit.datasets.store_dataset import open_store_dataset

    opts = parse_data_options(option)
    if opts.get("tile") is not None or opts.get("regions") or opts.get("tile_truth"):
        raise ValueError(f"{data}: tile= / regions= / tile_truth= apply to image datasets, "
                         "not to a bag store of features")
    sds = open_store_dataset(data)
    check_unique_bag_ids(sds, data)
    return sds


def training_data(data: Path, labels_xml: Path | None, option: list[str] | None, est: Any,
                  input_kind: str, name: str) -> tuple[Any, str | None]:
    """``(dataset, mode)`` for ``mimlkit fit``: a lazy ``StoreDataset`` and its
    :func:`streaming_mode` when ``data`` is a bag store ``est`` can stream, else the
    in-memory dataset (the CLI's usual load; a note for a store) and None."""
    from mimlkit.cli import _load_dataset
    from mimlkit.datasets.store_format import StoreError

    if input_kind != "bags" or not _is_store_dir(data):
        return _load_dataset(data, labels_xml, option), None
    sds = _open(data, option)  # an incomplete store is refused here, before any note
    if sds.Y is None:
        raise StoreError(f"bag store {data} has no labels; `mimlkit fit` needs labelled "
                         "bags", data)
    mode = streaming_mode(est, input_kind)
    if mode is None:
        _note(f"{name} cannot read a bag store lazily: {data} is loaded into memory "
              f"({_size(sds.store.nbytes)} of instances)")
        return sds.load(), None  # = load_dataset(data): load_store_dataset
    if mode == _BLOCKS:
        n_cal = min(BLOCK_BAGS, len(sds))
        _note(f"{name} is trained from the store with partial_fit, {BLOCK_BAGS} bags a "
              f"block (fit_from_store): calibrated on {n_cal} bags spread over the store, "
              "and the learner's own threshold is kept (no data-chosen thresholds)")
    return sds, mode


def fit_streamed(est: Any, sds: Any) -> Any:
    """Fit ``est`` on the lazy store dataset ``sds`` (``fit_from_store``: ``fit(store,
    labels)`` for a learner that reads it lazily, else ``partial_fit`` block by block)."""
    from mimlkit.datasets.store import fit_from_store

    return fit_from_store(est, sds.store, block_bags=BLOCK_BAGS)


def streamed_metadata(mode: str | None) -> dict[str, Any]:
    """What the saved model records about a streamed fit (nothing for an in-memory one)."""
    if mode is None:
        return {}
    how = "fit(store): read lazily" if mode == _LAZY else \
        (f"fit_from_store: partial_fit by blocks of {BLOCK_BAGS} bags, calibrated on up to "
         f"{BLOCK_BAGS} bags, the learner's own threshold")
    return {"store_training": how}


def scoring_store(data: Path, option: list[str] | None, est: Any, kind: str,
                  explaining: bool, name: str) -> tuple[Any, str | None] | None:
    """For ``mimlkit predict``: None when ``data`` is no bag store (or the model takes
    images); else ``(lazy StoreDataset, mode)``, ``mode`` None when the store must be
    loaded (``.load()``; a note says why) because the learner cannot score it lazily or
    ``--explain`` / ``--heatmaps`` need every instance."""
    if kind != "bags" or not _is_store_dir(data):
        return None
    from mimlkit.datasets.store_format import StoreError

    sds = _open(data, option)  # an incomplete store is refused here, before any note
    mode = streaming_mode(est, kind)
    if mode is None or explaining:
        why = "--explain/--heatmaps need every instance in memory" if mode is not None \
            else f"{name} cannot score a bag store lazily"
        if sds.Y is None:  # the in-memory dataset needs labels (as load_dataset)
            raise StoreError(f"bag store {data} has no labels, and {why} (loading a store "
                             "needs labels); score it with a learner that reads stores "
                             "lazily, without --explain/--heatmaps", data)
        _note(f"{why}: {data} is loaded into memory ({_size(sds.store.nbytes)} of "
              "instances)")
        return sds, None
    return sds, mode


def _scores_and_rule(est: Any, X: Any, threshold: float | None, top_k: int | None,
                     t_criterion: bool | None) -> tuple[Any, Any]:
    """(scores, {0,1} predictions) of ``X``: the model's own rule, or the asked one."""
    import numpy as np

    from mimlkit.cli_models import decision_rule

    scores = np.asarray(est.decision_function(X), dtype=float)
    if threshold is None and top_k is None and t_criterion is None:
        from mimlkit.evaluation.runner import _predict_from_scores

        # the shared rule on these scores: no second pass of the learner (distances)
        return scores, _predict_from_scores(est, X, scores)
    thr = threshold
    if thr is None and top_k is None:
        thr = est._threshold() if hasattr(est, "_threshold") else 0.0
    tc = t_criterion
    if tc is None:
        tc = est._use_t_criterion() if hasattr(est, "_use_t_criterion") else \
            bool(getattr(est, "t_criterion", True))
    return scores, decision_rule(scores, thr, top_k, bool(tc))


def score_input(est: Any, X: Any, mode: str | None, threshold: float | None = None,
                top_k: int | None = None, t_criterion: bool | None = None
                ) -> tuple[Any, Any]:
    """(scores, predictions) of ``X``: at once (in memory, or a learner that reads the
    store lazily) or, for ``partial_fit`` learners on a store, block by block."""
    if mode != _BLOCKS:
        return _scores_and_rule(est, X, threshold, top_k, t_criterion)
    import numpy as np

    parts = [_scores_and_rule(est, bags, threshold, top_k, t_criterion)
             for bags, _ in X.iter_blocks(BLOCK_BAGS)]
    return (np.concatenate([s for s, _ in parts]),
            np.concatenate([np.asarray(p) for _, p in parts]))
