"""A whole dataset in a bag store (what ``mimlkit features --out NAME.zarr`` writes) and its
loader, :func:`load_store_dataset` (``load_dataset("feats.zarr")``).

The store (:mod:`mimlkit.datasets.store`) holds the bags, labels, bag names and per-instance
metadata (tile ``coords``). What a ``MIMLDataset`` has beyond that, and what a resumed
``mimlkit features`` run must match, sit in the JSON sidecar ``mimlkit_features.json``
inside the store folder (zarr ignores the file)::

    {"format": 1,
     "n_images": N, "images_digest": "...", "labels_digest": "...",  # the run's identity
     "features": {...}, "tiler": {...} | null,                          # extractor, tiling
     "dataset": {"name": str, "meta": {...}, "groups": [...] | null,
                 "image_root": "/abs/image/folder" | null}}

Bag names are the image paths relative to ``image_root`` (absolute when outside it), so the
loaded dataset gets its ``ImageSet`` back, as ``load_npz`` does.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from mimlkit.datasets.base import ImageSet, MIMLDataset
from mimlkit.datasets.npz import _json_default as json_default  # numpy / Path -> JSON
from mimlkit.datasets.store_format import StoreError, _committed, _open_group
from mimlkit.datasets.store_reader import StoredBags, open_store

__all__ = ["SIDECAR", "read_sidecar", "write_sidecar", "load_store_dataset", "is_store_path",
           "committed_bags", "StoreDataset", "open_store_dataset"]

#: name of the JSON sidecar inside a store folder
SIDECAR = "mimlkit_features.json"
SIDECAR_FORMAT = 1


def is_store_path(path: str | os.PathLike) -> bool:
    """True for a ``*.zarr`` path or an existing folder holding a zarr group."""
    p = Path(path)
    return p.suffix.lower() == ".zarr" or (p.is_dir() and (p / "zarr.json").is_file())


def committed_bags(path: str | os.PathLike) -> tuple[int, bool]:
    """(committed bags, ``complete`` attribute) of the store at ``path``, read without
    opening a writer (which would mark it incomplete). ``StoreError`` for a non-store."""
    g = _open_group(Path(path), "r", "the bag store")
    n = _committed(g["offsets"][:], g["instances"].shape[0], Path(path))
    return n, bool(g.attrs.get("complete", False))


def read_sidecar(path: str | os.PathLike) -> dict[str, Any] | None:
    """The sidecar of the store at ``path`` (None when it has none)."""
    f = Path(path) / SIDECAR
    if not f.is_file():
        return None
    try:
        info = json.loads(f.read_text())
    except (OSError, ValueError) as exc:
        raise StoreError(f"{f}: unreadable store sidecar ({exc})", path) from None
    if not isinstance(info, dict) or int(info.get("format", 0)) > SIDECAR_FORMAT:
        raise StoreError(f"{f}: not a sidecar this mimlkit reads", path)
    return info


def write_sidecar(path: str | os.PathLike, info: dict[str, Any]) -> None:
    """Write the sidecar atomically (temporary sibling + ``os.replace``)."""
    folder = Path(path)
    text = json.dumps({"format": SIDECAR_FORMAT, **info}, default=json_default)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{SIDECAR}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, folder / SIDECAR)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class StoreDataset:
    """A bag store seen as a dataset whose instances stay on disk (:func:`open_store_dataset`).

    ``name``, ``meta``, ``label_names``, ``images`` and ``groups`` are what
    :func:`load_store_dataset` gives the in-memory ``MIMLDataset``; ``bags`` is the
    :class:`StoredBags` itself (``n_features``, ``n_bags`` and the offsets are in memory),
    ``Y`` its labels (None for an unlabelled store). ``load()`` reads it whole.
    """

    store: StoredBags
    name: str
    meta: dict[str, Any]
    label_names: list[str] | None
    images: ImageSet | None = None
    groups: np.ndarray | None = None

    @property
    def path(self) -> Path:
        return self.store.path

    @property
    def bags(self) -> StoredBags:
        return self.store

    @property
    def Y(self) -> np.ndarray | None:
        return self.store.labels

    def __len__(self) -> int:
        return self.store.n_bags

    def inputs(self, kind: str = "bags") -> Any:
        """The learner input of ``kind``: the store (read lazily) or the images."""
        if kind == "bags":
            return self.store
        if kind == "images" and self.images is not None:
            return self.images
        raise ValueError(f"bag store {self.path} has no {kind!r} input")

    def load(self) -> MIMLDataset:
        """The whole store as an in-memory ``MIMLDataset`` (refused without labels)."""
        ds = self.store.to_dataset(name=self.name)
        return replace(ds, meta={**ds.meta, **self.meta}, images=self.images,
                       groups=self.groups)


def open_store_dataset(path: str | os.PathLike) -> StoreDataset:
    """The bag store at ``path`` as a :class:`StoreDataset` (only its index is read). An
    incomplete store (a writer that was interrupted) is refused in one line."""
    path = Path(path)
    store = open_store(path)
    info = read_sidecar(path) or {}
    want = info.get("n_images")
    if not store.complete or (want is not None and store.n_bags != int(want)):
        of = f" of {want}" if want is not None else ""
        raise StoreError(f"bag store {path} is incomplete ({store.n_bags}{of} bags committed; "
                         "its writer was interrupted): rerun the command that wrote it "
                         "(`mimlkit features ... --out` resumes)", path)
    side = info.get("dataset") or {}
    # what to_dataset puts in meta, then the sidecar's (as the .npz keeps it: source = the
    # label CSV), then where the store is
    meta: dict[str, Any] = {"source": str(path)}
    if store.bag_names is not None:
        meta["bag_names"] = list(store.bag_names)
    meta = {**meta, **(side.get("meta") or {}), "store": str(path)}
    names = store.label_names
    if names is None and store.labels is not None:
        names = [f"label_{j}" for j in range(store.labels.shape[1])]
    groups = side.get("groups")
    images = None
    root = side.get("image_root")
    if root and store.bag_names is not None:
        images = ImageSet([Path(root) / n for n in store.bag_names])
    return StoreDataset(store=store, name=side.get("name") or path.stem, meta=meta,
                        label_names=None if names is None else list(names), images=images,
                        groups=None if groups is None else np.asarray(groups)[: store.n_bags])


def load_store_dataset(path: str | os.PathLike) -> MIMLDataset:
    """The labelled bag store at ``path`` as an in-memory ``MIMLDataset`` (name, meta, groups
    and images from the sidecar when there is one). An incomplete store (a writer that was
    interrupted) is refused in one line."""
    return open_store_dataset(path).load()
