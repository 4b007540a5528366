"""Multi-level CNN features: pooled conv-group outputs + a fully connected layer.

The seed recipe (``specs/transfer_l1lr.md`` §1.2, §2.1), for VGG16: after each of the 5 conv
groups take the max-pooling layer's output (``features[4, 9, 16, 23, 30]``) and apply
**4-quadrant max pooling** per channel (64·4 + 128·4 + 256·4 + 512·4 + 512·4 = 5888), then
append **fc7** (``classifier[3]`` + ReLU, eval mode, 4096) -> **9984** features.

* Quadrants: ``quadrant="adaptive"`` (default) is ``adaptive_max_pool2d(output_size=2)``; for
  an odd side (7 at 224 px) its bins overlap on the middle row/column ([0,4) and [3,7)).
  ``quadrant="floor"`` splits at ``H // 2`` ([0,3) and [3,7)).
* ``fc="post_relu"`` (default; Caffe's in-place relu7) or ``"pre_relu"``.
* fc7 works at any input size >= 32 px: torchvision's VGG averages pool5 to 7 x 7 first.

Generic variant for other backbones: ResNets tap ``layer1..layer4`` and the global average
pool (``pool``); each conv tap is pooled by ``pool="quadrant"`` (4 values per channel),
``"max"`` or ``"avg"`` (1 value per channel). ``levels="head"`` keeps only the last level
(VGG fc7, ResNet pooled vector). Works on whole images and on tiles alike: each input
picture (image or tile) gives one feature row.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mimlkit.features.backbones import Backbone, load_backbone

__all__ = ["MultiLevelExtractor", "make_extractor", "list_extractors", "quadrant_max_pool"]

_POOLS = ("quadrant", "max", "avg")
_SUFFIXES = {"multilevel": "all", "fc7": "head", "global": "head", "head": "head"}


def quadrant_max_pool(x: torch.Tensor, mode: str = "adaptive") -> torch.Tensor:
    """(B, C, H, W) -> (B, 4C): per channel the max of each spatial quadrant, ordered
    channel-major then (top-left, top-right, bottom-left, bottom-right)."""
    if mode not in ("adaptive", "floor"):
        raise ValueError(f"quadrant must be 'adaptive' or 'floor', got {mode!r}")
    H, W = x.shape[-2:]
    if mode == "adaptive" or H < 2 or W < 2:
        return F.adaptive_max_pool2d(x, 2).flatten(1)
    h, w = H // 2, W // 2
    q = torch.stack([x[:, :, :h, :w].amax((2, 3)), x[:, :, :h, w:].amax((2, 3)),
                     x[:, :, h:, :w].amax((2, 3)), x[:, :, h:, w:].amax((2, 3))], dim=2)
    return q.flatten(1)


def _last_channels(block: nn.Module) -> int:
    chans = [m.num_features for m in block.modules() if isinstance(m, nn.BatchNorm2d)]
    if not chans:
        chans = [m.out_channels for m in block.modules() if isinstance(m, nn.Conv2d)]
    return int(chans[-1])


class MultiLevelExtractor(nn.Module):
    """Frozen feature extractor: normalised images (B, 3, H, W) -> (B, n_features) float32.

    Parameters
    ----------
    backbone : a :class:`~mimlkit.features.backbones.Backbone` (``load_backbone(...)``).
    levels : ``"all"`` | ``"head"`` | list of level names (``pool1..pool5``/``fc7`` for VGG,
        ``layer1..layer4``/``pool`` for ResNet, ``pool1..pool3``/``fc2`` for ``tiny``).
    pool : pooling of conv levels: ``"quadrant"`` (seed), ``"max"`` or ``"avg"``.
    quadrant : ``"adaptive"`` | ``"floor"`` (see module docstring).
    fc : ``"post_relu"`` | ``"pre_relu"`` for the VGG/tiny fully connected level.
    """

    def __init__(self, backbone: Backbone, *, levels: str | list[str] = "all",
                 pool: str = "quadrant", quadrant: str = "adaptive",
                 fc: str = "post_relu") -> None:
        super().__init__()
        if pool not in _POOLS:
            raise ValueError(f"pool must be one of {_POOLS}, got {pool!r}")
        if quadrant not in ("adaptive", "floor"):
            raise ValueError(f"quadrant must be 'adaptive' or 'floor', got {quadrant!r}")
        if fc not in ("post_relu", "pre_relu"):
            raise ValueError(f"fc must be 'post_relu' or 'pre_relu', got {fc!r}")
        self.backbone_name = backbone.name
        self.family = backbone.family
        self.preprocess = backbone.preprocess
        self.weights_id = backbone.weights_id
        self.pool, self.quadrant, self.fc = pool, quadrant, fc
        m = backbone.model.eval()
        available: list[tuple[str, int, bool]] = []  # (name, channels/width, is_conv)
        if self.family == "resnet":
            self.stem = nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool)
            self.stages = nn.ModuleList([m.layer1, m.layer2, m.layer3, m.layer4])
            for i, st in enumerate(self.stages):
                available.append((f"layer{i + 1}", _last_channels(st[-1]), True))
            available.append(("pool", int(m.fc.in_features), False))
        else:  # vgg-shaped: tap every MaxPool2d in `features`, then the second FC layer
            self.features = m.features
            self.avgpool = m.avgpool
            self.fc_layers = nn.Sequential(*list(m.classifier)[:4])  # fc6, relu, drop, fc7
            ch, k = 3, 0
            for mod in m.features:
                if isinstance(mod, nn.Conv2d):
                    ch = mod.out_channels
                elif isinstance(mod, nn.MaxPool2d):
                    k += 1
                    available.append((f"pool{k}", int(ch), True))
            fc_name = "fc7" if self.family == "vgg" else "fc2"
            available.append((fc_name, int(m.classifier[3].out_features), False))
        names = [a[0] for a in available]
        if levels == "all":
            chosen = names
        elif levels == "head":
            chosen = [names[-1]]
        else:
            chosen = list(levels)
            unknown = [x for x in chosen if x not in names]
            if unknown:
                raise ValueError(f"unknown levels {unknown} for {backbone.name!r}; "
                                 f"available: {names}")
        self.levels = [n for n in names if n in chosen]
        self._last_conv = max((i for i, a in enumerate(available) if a[0] in self.levels
                               and a[2]), default=-1)
        self._need_head = available[-1][0] in self.levels
        k = 4 if pool == "quadrant" else 1
        self.level_dims = [(n, c * k if conv else c) for n, c, conv in available
                           if n in self.levels]
        self._level_channels = {n: (c, conv) for n, c, conv in available}
        self.n_features = int(sum(d for _, d in self.level_dims))

    # ------------------------------------------------------------------ description
    def config(self) -> dict[str, Any]:
        """Everything that determines the features (cache key)."""
        return {"extractor": "multilevel", "backbone": self.backbone_name,
                "weights": self.weights_id, "preprocess": self.preprocess.config(),
                "levels": list(self.levels), "pool": self.pool, "quadrant": self.quadrant,
                "fc": self.fc}

    def feature_names(self) -> list[str]:
        """``pool3_c017_q2`` (channel 17, quadrant 2) / ``layer2_c005`` / ``fc7_0421``."""
        out: list[str] = []
        for name in self.levels:
            c, conv = self._level_channels[name]
            if not conv:
                out += [f"{name}_{i:04d}" for i in range(c)]
            elif self.pool == "quadrant":
                out += [f"{name}_c{j:03d}_q{q}" for j in range(c) for q in range(4)]
            else:
                out += [f"{name}_c{j:03d}" for j in range(c)]
        return out

    # ------------------------------------------------------------------ forward
    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool == "quadrant":
            return quadrant_max_pool(x, self.quadrant)
        if self.pool == "max":
            return x.amax((2, 3))
        return x.mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts: list[torch.Tensor] = []
        if self.family == "resnet":
            x = self.stem(x)
            for i, st in enumerate(self.stages):
                if i > self._last_conv and not self._need_head:
                    break
                x = st(x)
                if f"layer{i + 1}" in self.levels:
                    parts.append(self._pool(x))
            if self._need_head:
                parts.append(x.mean((2, 3)))
        else:
            k = 0
            for mod in self.features:
                x = mod(x)
                if isinstance(mod, nn.MaxPool2d):
                    k += 1
                    if f"pool{k}" in self.levels:
                        parts.append(self._pool(x))
                    if k - 1 >= self._last_conv and not self._need_head:
                        break
            if self._need_head:
                h = self.fc_layers(torch.flatten(self.avgpool(x), 1))
                parts.append(F.relu(h) if self.fc == "post_relu" else h)
        return torch.cat([p.float().flatten(1) for p in parts], dim=1)


def list_extractors() -> list[str]:
    """Extractor names for :func:`make_extractor` / ``mimlkit features --backbone``."""
    from mimlkit.features.backbones import list_backbones

    out = []
    for b in list_backbones():
        out += [f"{b}-multilevel", b]
    return out


def make_extractor(name: str, weights: Any = None, *, seed: int = 0,
                   image_size: int | None = None, resize: str = "full",
                   pool: str = "quadrant", quadrant: str = "adaptive",
                   fc: str = "post_relu", levels: str | list[str] | None = None,
                   device: str | torch.device | None = None) -> MultiLevelExtractor:
    """Extractor by name: ``"<arch>-multilevel"`` (all levels; ``vgg16-multilevel`` is the
    seed's 9984-d recipe) or ``"<arch>"`` / ``"<arch>-fc7"`` / ``"<arch>-global"`` (last level
    only). ``weights``: None (random, ``seed``), a state-dict file, or a torchvision weights
    name. Returned in eval mode, channels-last, on ``device`` (CPU by default)."""
    key = name.lower()
    arch, sep, suffix = key.rpartition("-")
    if not sep or suffix not in _SUFFIXES:
        arch, suffix = key, "head"
    backbone = load_backbone(arch, weights, seed=seed, image_size=image_size, resize=resize)
    ext = MultiLevelExtractor(backbone, levels=levels or _SUFFIXES[suffix], pool=pool,
                              quadrant=quadrant, fc=fc)
    ext = ext.eval().to(memory_format=torch.channels_last)
    if device is not None:
        ext = ext.to(device)
    return ext
