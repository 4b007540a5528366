"""``save_npz`` / ``load_npz``: a ``MIMLDataset`` as one compressed ``.npz`` (no pickle).

Keys written (all plain numeric or unicode arrays, loaded with ``allow_pickle=False``):

- ``mimlkit_npz_version``; ``Y`` (int8); ``label_names``; ``name``; ``meta_json``;
- ``bag_instances``, ``bag_offsets``, ``bag_meta__<key>`` (instance metadata, e.g. coords);
- ``groups``, ``instance_labels`` (when present);
- images: ``image_paths`` (file-backed ``ImageSet``) or ``image_data`` (all pixels
  flattened, uint8) + ``image_shapes`` (n x 3) for in-memory images;
- ``meta_array__<key>``: array-valued ``meta`` entries (JSON cannot hold them).

The write is atomic: a temporary file in the target folder is renamed into place with
``os.replace``, so a crash never leaves a half-written dataset.

``load_npz`` also reads plain array files: ``X`` (2-D: one-instance bags; 3-D: equal-size
bags) + ``Y``, or ``instances`` + ``offsets`` (or ``bag_ids``) + ``Y``, optional
``label_names`` and ``groups``.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from mimlkit.bags import Bags, as_bags
from mimlkit.datasets.base import ImageSet, MIMLDataset

__all__ = ["save_npz", "load_npz"]

FORMAT_VERSION = 1


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return repr(obj)


def save_npz(dataset: MIMLDataset, path: str | Path) -> Path:
    """Write ``dataset`` to ``path`` (``.npz`` appended if missing); returns the path."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    arrays: dict[str, np.ndarray] = {
        "mimlkit_npz_version": np.array(FORMAT_VERSION),
        "Y": np.asarray(dataset.Y, dtype=np.int8),
        "label_names": np.array(dataset.label_names, dtype=str),
        "name": np.array(dataset.name),
    }
    meta_json: dict[str, Any] = {}
    for k, v in dataset.meta.items():
        if isinstance(v, np.ndarray) and v.dtype != object:
            arrays[f"meta_array__{k}"] = v
        else:
            meta_json[k] = v
    arrays["meta_json"] = np.array(json.dumps(meta_json, default=_json_default))
    if dataset.bags is not None:
        arrays["bag_instances"] = dataset.bags.instances
        arrays["bag_offsets"] = dataset.bags.offsets
        for k, v in dataset.bags.instance_meta.items():
            if v.dtype == object:
                raise ValueError(f"instance metadata {k!r} has object dtype; cannot save it "
                                 "without pickle")
            arrays[f"bag_meta__{k}"] = v
    if dataset.groups is not None:
        g = np.asarray(dataset.groups)
        arrays["groups"] = g.astype(str) if g.dtype == object else g
    if dataset.instance_labels is not None:
        arrays["instance_labels"] = np.asarray(dataset.instance_labels, dtype=np.int8)
    if dataset.images is not None:
        raw = [dataset.images.raw(i) for i in range(len(dataset.images))]
        if all(isinstance(r, np.ndarray) for r in raw):
            arrays["image_shapes"] = np.array([r.shape for r in raw], dtype=np.int64)
            arrays["image_data"] = (np.concatenate([np.asarray(r, np.uint8).ravel() for r in raw])
                                    if raw else np.zeros(0, np.uint8))
        elif all(not isinstance(r, np.ndarray) for r in raw):
            arrays["image_paths"] = np.array([str(r) for r in raw], dtype=str)
        else:
            raise ValueError("cannot save an ImageSet that mixes file paths and arrays")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez_compressed(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; use the usual permissions
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def load_npz(path: str | Path) -> MIMLDataset:
    """Read a dataset written by ``save_npz`` (or a plain ``X``/``Y`` array file)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from None
    if not hasattr(z, "files"):  # a bare .npy array saved under a .npz name
        raise ValueError(f"{path}: not a readable .npz file (a single array, not an archive)")
    with z:
        keys = set(z.files)
        try:
            if "mimlkit_npz_version" in keys:
                return _load_mimlkit(z, keys, path)
            return _load_plain(z, keys, path)
        except ValueError as exc:
            msg = str(exc)
            raise ValueError(msg if msg.startswith(str(path)) else f"{path}: {msg}") from None
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            # members are decompressed lazily: a truncated or corrupted archive fails here
            raise ValueError(f"{path}: damaged .npz file ({type(exc).__name__}: "
                             f"{' '.join(str(exc).split())})") from None


def _load_mimlkit(z: Any, keys: set[str], path: Path) -> MIMLDataset:
    version = int(z["mimlkit_npz_version"])
    if version > FORMAT_VERSION:
        raise ValueError(f"written by a newer mimlkit (format {version} > {FORMAT_VERSION})")
    for k in ("Y", "label_names", "meta_json"):
        if k not in keys:
            raise ValueError(f"missing array {k!r} (file damaged?)")
    bags = None
    if "bag_instances" in keys:
        inst_meta = {k[len("bag_meta__"):]: z[k] for k in keys if k.startswith("bag_meta__")}
        bags = Bags(z["bag_instances"], z["bag_offsets"], inst_meta)
    images = None
    if "image_paths" in keys:
        images = ImageSet([Path(p) for p in z["image_paths"].tolist()])
    elif "image_shapes" in keys:
        shapes = z["image_shapes"]
        data = z["image_data"]
        ends = np.cumsum(np.prod(shapes, axis=1))
        if ends.size and ends[-1] != data.size:
            raise ValueError("image_data does not match image_shapes (file damaged?)")
        starts = ends - np.prod(shapes, axis=1)
        images = ImageSet([data[a:b].reshape(tuple(s)) for a, b, s in zip(starts, ends, shapes)])
    try:
        meta = json.loads(str(z["meta_json"]))
    except json.JSONDecodeError as exc:
        raise ValueError(f"meta_json is not valid JSON ({exc})") from None
    for k in keys:
        if k.startswith("meta_array__"):
            meta[k[len("meta_array__"):]] = z[k]
    return MIMLDataset(
        Y=z["Y"],
        label_names=z["label_names"].tolist(),
        bags=bags,
        images=images,
        groups=z["groups"] if "groups" in keys else None,
        instance_labels=z["instance_labels"] if "instance_labels" in keys else None,
        name=str(z["name"]) if "name" in keys else path.stem,
        meta=meta,
    )


def _load_plain(z: Any, keys: set[str], path: Path) -> MIMLDataset:
    if "Y" not in keys:
        raise ValueError(f"no 'Y' array; found {sorted(keys)}. Expected a mimlkit dataset "
                         "(save_npz) or X/instances + Y arrays")
    if "X" in keys:
        bags = as_bags(z["X"])
    elif "instances" in keys and "offsets" in keys:
        bags = Bags(z["instances"], z["offsets"])
    elif "instances" in keys and "bag_ids" in keys:
        bags = Bags.from_instances(z["instances"], z["bag_ids"])
    else:
        raise ValueError(f"no bags: expected 'X', or 'instances' with 'offsets' or 'bag_ids'; "
                         f"found {sorted(keys)}")
    Y = z["Y"]
    Y = Y[:, None] if Y.ndim == 1 else Y
    names = (z["label_names"].tolist() if "label_names" in keys
             else [f"label_{k}" for k in range(Y.shape[1])])
    return MIMLDataset(Y=Y, label_names=names, bags=bags,
                       groups=z["groups"] if "groups" in keys else None,
                       name=path.stem, meta={"source": str(path), "format": "npz-plain"})
