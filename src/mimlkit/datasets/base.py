"""``MIMLDataset`` and ``ImageSet``: what readers return and learners consume.

- ``MIMLDataset.bags``: feature bags (``Bags``) or ``None`` for an image dataset whose
  features have not been extracted yet.
- ``MIMLDataset.images``: an ``ImageSet`` (lazy list of pictures) for image datasets.
- ``Y``: int8 n x K, 1 present / 0 absent / -1 unobserved. ``label_names``: K strings.
- ``groups``: optional id per bag (patient / slide) for group-aware splits.
- ``instance_labels``: optional ground truth per instance (n_instances x K, int8) for
  synthetic data and localisation checks.
- ``meta``: free-form provenance (source path, generator parameters, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from mimlkit.bags import Bags, check_labels

__all__ = ["MIMLDataset", "ImageSet", "take", "pil_to_rgb_uint8"]


class ImageSet:
    """Lazy, list-like collection of RGB images: file paths or in-memory uint8 arrays.

    ``images[i]`` returns an H x W x 3 uint8 array (decoded with PIL on access);
    ``images[idx]`` with an index array / slice / mask returns a new ``ImageSet``.
    ``images.sources[i]`` is the path (or ``"<array i>"``) for error messages and caching.
    """

    def __init__(self, items: Sequence[str | Path | np.ndarray]) -> None:
        self._items = list(items)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def paths(self) -> list[Path | None]:
        return [Path(x) if isinstance(x, (str, Path)) else None for x in self._items]

    @property
    def sources(self) -> list[str]:
        return [str(x) if isinstance(x, (str, Path)) else f"<array {i}>"
                for i, x in enumerate(self._items)]

    def raw(self, i: int) -> str | Path | np.ndarray:
        """The stored item (path or array) without decoding."""
        return self._items[i]

    def load(self, i: int) -> np.ndarray:
        item = self._items[i]
        if isinstance(item, np.ndarray):
            return item
        from PIL import Image, ImageOps, UnidentifiedImageError

        try:
            with Image.open(item) as im:  # EXIF orientation applied (portrait phone photos)
                return pil_to_rgb_uint8(ImageOps.exif_transpose(im), str(item))
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            msg = str(exc)
            raise ValueError(msg if msg.startswith(str(item)) else
                             f"{item}: cannot read image ({msg})") from None

    def __getitem__(self, key: Any) -> np.ndarray | ImageSet:
        if isinstance(key, (int, np.integer)):
            return self.load(int(key))
        idx = np.arange(len(self._items))[key] if isinstance(key, slice) else np.asarray(key)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return ImageSet([self._items[int(i)] for i in idx])

    def __iter__(self):
        for i in range(len(self)):
            yield self.load(i)

    def __repr__(self) -> str:
        return f"ImageSet(n_images={len(self)})"


def pil_to_rgb_uint8(im: Any, where: str = "image") -> np.ndarray:
    """PIL image -> H x W x 3 uint8. 16-bit grey (``I;16*``, or ``I`` within 0..65535) is
    scaled linearly to 8 bits (``round(v / 257)``) instead of PIL's clipping at 255; float
    (``F``) and wider integer images have no fixed range and raise ``ValueError``."""
    mode = im.mode
    if mode.startswith("I;16") or mode == "I":
        a = np.asarray(im)
        if a.size and (a.min() < 0 or a.max() > 65535):
            raise ValueError(f"{where}: 32-bit integer pixels outside 0..65535; convert the "
                             "image to 8 or 16 bits first")
        a = np.rint(a.astype(np.float32) * (255.0 / 65535.0)).astype(np.uint8)
        return np.repeat(a[:, :, None], 3, axis=2)
    if mode == "F":
        raise ValueError(f"{where}: floating-point pixels (mode 'F') have no fixed range; "
                         "convert the image to 8 or 16 bits first")
    a = np.asarray(im.convert("RGB"))
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{where}: empty image of shape {a.shape}")
    return a


def take(X: Any, idx: np.ndarray) -> Any:
    """Select rows/bags/images ``idx`` from any learner input (Bags, ImageSet, array, list)."""
    idx = np.asarray(idx)
    if isinstance(X, (Bags, ImageSet)):
        return X[idx]
    if isinstance(X, np.ndarray):
        return X[idx]
    if isinstance(X, (list, tuple)):
        return [X[int(i)] for i in idx]
    raise TypeError(f"cannot index {type(X).__name__}")


@dataclass
class MIMLDataset:
    """A MIML dataset: bags and/or images, labels, names, groups and provenance."""

    Y: np.ndarray
    label_names: list[str]
    bags: Bags | None = None
    images: ImageSet | None = None
    groups: np.ndarray | None = None
    instance_labels: np.ndarray | None = None
    name: str = "dataset"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.bags is None and self.images is None:
            raise ValueError("a dataset needs bags, images, or both")
        n = len(self.bags) if self.bags is not None else len(self.images)  # type: ignore[arg-type]
        if self.bags is not None and self.images is not None and len(self.images) != n:
            raise ValueError(f"{len(self.images)} images but {n} bags")
        self.Y = check_labels(self.Y, n)
        self.label_names = [str(x) for x in self.label_names]
        if len(self.label_names) != self.Y.shape[1]:
            raise ValueError(
                f"{len(self.label_names)} label names for {self.Y.shape[1]} label columns"
            )
        if len(set(self.label_names)) != len(self.label_names):
            raise ValueError("label names must be unique")
        if self.groups is not None:
            self.groups = np.asarray(self.groups)
            if self.groups.shape != (n,):
                raise ValueError(f"groups must hold one id per bag ({n}), got {self.groups.shape}")
        if self.instance_labels is not None:
            if self.bags is None:
                raise ValueError("instance_labels need bags")
            self.instance_labels = np.asarray(self.instance_labels, dtype=np.int8)
            if self.instance_labels.shape != (self.bags.n_instances, self.Y.shape[1]):
                raise ValueError("instance_labels must be n_instances x n_labels")

    # ------------------------------------------------------------------ basics
    def __len__(self) -> int:
        return int(self.Y.shape[0])

    @property
    def n_labels(self) -> int:
        return int(self.Y.shape[1])

    def inputs(self, kind: str = "bags") -> Bags | ImageSet:
        """Learner input of the given kind ("bags" or "images"), with a clear error if absent."""
        if kind == "bags":
            if self.bags is None:
                raise ValueError(f"dataset {self.name!r} has images but no feature bags; extract "
                                 "features first (mimlkit features ...)")
            return self.bags
        if kind == "images":
            if self.images is None:
                raise ValueError(f"dataset {self.name!r} has no images (feature bags only)")
            return self.images
        raise ValueError(f"unknown input kind {kind!r}")

    def subset(self, idx: np.ndarray) -> MIMLDataset:
        """Dataset restricted to bags ``idx`` (instance labels follow their bags)."""
        idx = np.asarray(idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        inst = None
        if self.instance_labels is not None and self.bags is not None:
            pos = self.bags.take(idx)  # cheap enough; reuse offsets logic for instance rows
            starts = self.bags.offsets[idx]
            sizes = self.bags.sizes[idx]
            rel = np.arange(pos.n_instances) - np.repeat(pos.offsets[:-1], sizes)
            inst = self.instance_labels[np.repeat(starts, sizes) + rel]
        return replace(
            self,
            Y=self.Y[idx],
            bags=self.bags[idx] if self.bags is not None else None,  # type: ignore[arg-type]
            images=self.images[idx] if self.images is not None else None,  # type: ignore[arg-type]
            groups=self.groups[idx] if self.groups is not None else None,
            instance_labels=inst,
            meta=dict(self.meta),
        )

    def summary(self) -> dict[str, Any]:
        """Shape, cardinality and per-label counts (what ``mimlkit datasets info`` prints)."""
        Y = self.Y
        observed = Y >= 0
        out: dict[str, Any] = {
            "name": self.name,
            "n_bags": len(self),
            "n_labels": self.n_labels,
            "label_names": list(self.label_names),
            "label_counts": [int(c) for c in (Y == 1).sum(axis=0)],
            "cardinality": float((Y == 1).sum(axis=1).mean()) if len(self) else 0.0,
            "density": float((Y == 1).mean()) if Y.size else 0.0,
            "n_unobserved": int((~observed).sum()),
            "n_distinct_labelsets": int(len({r.tobytes() for r in Y})),
        }
        if self.bags is not None:
            sizes = self.bags.sizes
            out.update(n_instances=self.bags.n_instances, n_features=self.bags.n_features,
                       bag_size_min=int(sizes.min()), bag_size_max=int(sizes.max()),
                       bag_size_mean=float(sizes.mean()))
        if self.images is not None:
            out["n_images"] = len(self.images)
        if self.groups is not None:
            out["n_groups"] = int(len(np.unique(self.groups)))
        return out
