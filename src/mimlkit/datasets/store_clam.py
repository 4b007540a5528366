"""CLAM feature import into a bag store (:mod:`mimlkit.datasets.store`, which re-exports
:func:`import_clam`).

:func:`import_clam` reads CLAM-style features (one HDF5 file per slide, datasets ``features``
(n x d) and ``coords`` (n x 2)) and a labels CSV (:func:`_clam_labels`: 0/1 label columns or
one categorical ``label`` column) and writes one bag per slide with
:class:`mimlkit.datasets.store_writer.BagStoreWriter`, resuming an interrupted import.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from mimlkit._extras import require
from mimlkit.datasets.store_format import StoreError
from mimlkit.datasets.store_reader import StoredBags, open_store
from mimlkit.datasets.store_writer import BagStoreWriter

__all__ = ["import_clam"]

_SLIDE_EXTS = (".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".vms", ".vmu", ".bif",
               ".h5", ".pt")


def _clam_labels(labels_csv: str | os.PathLike, slide_column: str,
                 label_columns: Sequence[str] | None) -> tuple[list[str], np.ndarray, list[str]]:
    """(slide ids, Y int8, label names) from a CSV with a slide id column and either 0/1
    label columns (multi-label; empty = -1 unobserved) or one categorical ``label`` column
    (CLAM's format: one-hot over the sorted class names)."""
    import pandas as pd

    df = pd.read_csv(labels_csv, dtype={slide_column: str})
    if slide_column not in df.columns:
        raise ValueError(f"{labels_csv}: no {slide_column!r} column (columns: "
                         f"{', '.join(map(str, df.columns))})")
    ids = [str(s).strip() for s in df[slide_column]]
    if len(set(ids)) != len(ids):
        dup = next(s for s in ids if ids.count(s) > 1)
        raise ValueError(f"{labels_csv}: slide {dup!r} is listed more than once")
    cols = list(label_columns) if label_columns is not None else [
        c for c in df.columns if c not in (slide_column, "case_id")]
    missing = [c for c in cols if c not in df.columns]
    if missing or not cols:
        raise ValueError(f"{labels_csv}: label columns {missing or '(none)'} not found")
    block = df[cols]
    numeric = all(pd.api.types.is_numeric_dtype(block[c]) for c in cols)
    if numeric and np.isin(block.fillna(-1).to_numpy(), (-1, 0, 1)).all():
        Y = block.fillna(-1).to_numpy().astype(np.int8)
        return ids, Y, [str(c) for c in cols]
    if len(cols) == 1:
        values = block[cols[0]]
        if values.isna().any():
            bad = ids[int(np.flatnonzero(values.isna().to_numpy())[0])]
            raise ValueError(f"{labels_csv}: slide {bad!r} has no {cols[0]!r}")
        classes = sorted({str(v) for v in values})
        Y = (np.array([str(v) for v in values])[:, None] == np.array(classes)[None, :])
        return ids, Y.astype(np.int8), classes
    raise ValueError(f"{labels_csv}: label columns must hold 1 / 0 (empty = unobserved), or "
                     "give one categorical label column")


def _clam_files(folder_or_files: str | os.PathLike | Iterable[str | os.PathLike]
                ) -> dict[str, Path]:
    if isinstance(folder_or_files, (str, os.PathLike)):
        root = Path(folder_or_files)
        if not root.is_dir():
            raise FileNotFoundError(f"no feature folder at {root}")
        if (root / "h5_files").is_dir():  # CLAM's extract_features output layout
            root = root / "h5_files"
        files = sorted(root.glob("*.h5"))
        if not files:
            raise FileNotFoundError(f"no .h5 feature files in {root}")
    else:
        files = [Path(p) for p in folder_or_files]
    by_id: dict[str, Path] = {}
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"feature file {f} does not exist")
        by_id[f.stem] = f
    return by_id


def import_clam(folder_or_files: str | os.PathLike | Iterable[str | os.PathLike],
                labels_csv: str | os.PathLike, out_store: str | os.PathLike, *,
                slide_column: str = "slide_id", label_columns: Sequence[str] | None = None,
                missing: str = "error", chunk_rows: int | None = None) -> StoredBags:
    """Import CLAM-style features (one HDF5 per slide, datasets ``features`` (n x d) and
    ``coords`` (n x 2)) and a labels CSV into a bag store; one bag per CSV row, in CSV order.

    ``folder_or_files``: a folder of ``<slide_id>.h5`` files (its ``h5_files/`` subfolder if
    present, CLAM's layout) or a list of files. ``labels_csv``: a ``slide_id`` column plus
    either 0/1 label columns (empty cells = -1, unobserved) or CLAM's single categorical
    ``label`` column (one-hot over the sorted classes); ``case_id`` is ignored. Slide ids
    match file stems (a slide extension such as ``.svs`` in the CSV is dropped). ``missing``:
    ``"error"`` (default) or ``"skip"`` slides without a feature file. Bags get the slide ids
    as names and ``coords`` as per-instance metadata (when the files have it).

    An existing ``out_store`` is resumed: slides already committed (checked by name) are
    skipped, so an interrupted import continues where it stopped. Needs the ``store`` extra
    (zarr, h5py).
    """
    h5py = require("store", "h5py", "import_clam (reading CLAM HDF5 features)")
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', got {missing!r}")
    ids, Y, label_names = _clam_labels(labels_csv, slide_column, label_columns)
    files = _clam_files(folder_or_files)

    def find(sid: str) -> Path | None:
        if sid in files:
            return files[sid]
        stem, ext = os.path.splitext(sid)
        return files.get(stem) if ext.lower() in _SLIDE_EXTS else None

    todo, lost = [], []
    for j, sid in enumerate(ids):
        f = find(sid)
        if f is None:
            lost.append(sid)
        else:
            todo.append((j, sid, f))
    if lost and missing == "error":
        more = f" and {len(lost) - 5} more" if len(lost) > 5 else ""
        raise FileNotFoundError(f"no feature file for {len(lost)} slide(s) of {labels_csv}: "
                                f"{', '.join(lost[:5])}{more} (missing='skip' leaves them out)")
    if not todo:
        raise FileNotFoundError(f"none of the slides in {labels_csv} has a feature file")

    def read(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
        try:
            with h5py.File(path, "r") as h:
                if "features" not in h:
                    raise StoreError(f"{path}: no 'features' dataset", path)
                X = np.asarray(h["features"][()], dtype=np.float32)
                coords = np.asarray(h["coords"][()]) if "coords" in h else None
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"cannot read CLAM features from {path} ({type(exc).__name__}: "
                             f"{exc})", path) from exc
        X = X.reshape(-1, X.shape[-1]) if X.ndim > 2 else X  # (1, n, d) -> (n, d)
        if X.ndim != 2 or X.shape[0] == 0:
            raise StoreError(f"{path}: 'features' must be a non-empty (n, d) array, got "
                             f"shape {X.shape}", path)
        if coords is not None:
            coords = coords.reshape(-1, coords.shape[-1]).astype(np.int64)
            if coords.shape[0] != X.shape[0]:
                raise StoreError(f"{path}: {coords.shape[0]} coords for {X.shape[0]} "
                                 "feature rows", path)
        return X, coords

    out = Path(out_store)
    X0, c0 = read(todo[0][2])
    writer = BagStoreWriter(out, X0.shape[1], label_names, chunk_rows=chunk_rows)
    with writer:
        done = writer.n_committed
        if done:
            have = open_store(out).bag_names or []
            want = [sid for _, sid, _ in todo[:done]]
            if have != want:
                raise StoreError(f"bag store {out} holds slides that are not the first "
                                 f"{done} of {labels_csv}; import into a new store", out)
        for k, (j, sid, f) in enumerate(todo[done:], start=done):
            X, coords = (X0, c0) if k == 0 else read(f)
            if (coords is None) != (c0 is None):
                raise StoreError(f"{f}: 'coords' is {'missing' if coords is None else 'present'}"
                                 f" but {'present' if coords is None else 'missing'} in "
                                 f"{todo[0][2]}", f)
            if X.shape[1] != writer.n_features:
                raise StoreError(f"{f}: {X.shape[1]} features per tile, the store has "
                                 f"{writer.n_features}", f)
            writer.append(X, label_row=Y[j], meta=None if coords is None else {"coords": coords},
                          name=sid)
    return open_store(out)
