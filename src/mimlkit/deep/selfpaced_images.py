"""Image path of the self-paced MIML learner (:mod:`mimlkit.deep.selfpaced`, which re-exports
:class:`SelfPacedNet`): the tile network and the image-to-tiles input preparation.

* :class:`SelfPacedNet`: uint8 tiles -> per-class logits (normalisation, backbone trunk,
  linear head);
* :func:`_image_list`: the accepted image inputs (``ImageSet``, ``MIMLDataset``, a list of
  H x W x 3 arrays, an N x H x W x 3 array) as an indexable list of images;
* :func:`_tile_images`: every image cut into tiles (each image a bag of tiles) and the tiles
  resized to the network input, with each tile's image index and (y, x) coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SelfPacedNet"]


class SelfPacedNet(nn.Module):
    """uint8 tiles (B, 3, s, s) -> per-class logits: normalisation + backbone trunk + linear."""

    def __init__(self, trunk: nn.Module, feature_dim: int, n_labels: int,
                 mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = nn.Linear(int(feature_dim), int(n_labels))
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32)
                             .view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float().div(255.0)
        x = ((x - self.mean) / self.std).contiguous(memory_format=torch.channels_last)
        return self.head(self.trunk(x))


def _image_list(X: Any) -> Any:
    from mimlkit.datasets.base import ImageSet, MIMLDataset

    if isinstance(X, MIMLDataset):
        X = X.inputs("images")
    if isinstance(X, ImageSet):
        return X
    if isinstance(X, np.ndarray) and X.ndim == 4:
        return list(X)
    if isinstance(X, np.ndarray) and X.ndim == 3:
        return [X]
    if isinstance(X, (list, tuple)):
        return X
    raise ValueError(f"SelfPacedMIML expects images (ImageSet, list of H x W x 3 arrays or an "
                     f"N x H x W x 3 array), got {type(X).__name__}")


def _tile_images(images: Any, tiler: Any, size: int, chunk: int = 2048
                 ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    """Tile every image and resize tiles to ``size``: (uint8 N x 3 x s x s, bag index,
    coords N x 2 (y, x))."""
    from mimlkit.datasets.tiling import as_rgb_uint8

    tiles, bags, coords = [], [], []
    for i in range(len(images)):
        img = as_rgb_uint8(images[i], where=f"image {i}")
        t, c = tiler(img)
        tiles.append(t)
        coords.append(c)
        bags.append(np.full(len(t), i, dtype=np.int64))
    if not tiles:
        raise ValueError("no images given")
    arr = torch.from_numpy(np.concatenate(tiles)).permute(0, 3, 1, 2)
    if arr.shape[-1] != size:
        out = torch.empty((arr.shape[0], 3, size, size), dtype=torch.uint8)
        for s in range(0, arr.shape[0], chunk):
            x = arr[s:s + chunk].float()
            y = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                              antialias=True)
            out[s:s + chunk] = y.round_().clamp_(0, 255).to(torch.uint8)
        arr = out
    else:
        arr = arr.contiguous()
    return arr, np.concatenate(bags), np.concatenate(coords)
