"""CNN backbones by name, with their weights and the preprocessing that matches them.

``load_backbone("vgg16", weights=...)`` returns a :class:`Backbone`: the torchvision module
(eval mode, CPU), its :class:`Preprocess` (resize policy + mean/std of the weights in use) and a
``weights_id`` string that identifies the weights for feature caches. Three weight sources:

* ``weights=None``: random initialisation, seeded by ``seed`` (tests, plumbing, benchmarks on
  machines without pretrained files);
* ``weights="path/to/file.pth"`` (or ``.pt`` / ``.bin`` / ``.safetensors``): a state dict of the
  torchvision architecture, loaded with ``torch.load(..., weights_only=True)`` (never pickle
  code) or safetensors;
* ``weights="DEFAULT"`` / ``"IMAGENET1K_V1"`` / a torchvision ``WeightsEnum`` member: used when the
  file is already in the torch hub cache (``$TORCH_HOME/hub/checkpoints``) or the download host
  answers within a few seconds. Otherwise :class:`WeightsUnavailableError` is raised at once,
  with instructions on how to provide the file (the build machines are offline).

Architectures: ``vgg11/13/16/19`` (+ ``_bn``), ``resnet18/34/50/101/152`` and ``tiny`` (a
3-group VGG-shaped CNN for tests and demos; same layout rules as VGG, so every extractor works
on it). State-dict key names are torchvision's, so torchvision weight files load unchanged.

The preprocessing ships with the backbone (``specs/conventions.md`` §5: never mix features
and normalisation of different weights). The default resize policy is the seed's reading
(``specs/transfer_l1lr.md`` §2.1): the whole image resized to ``size`` x ``size`` without
cropping, then ImageNet mean/std of the weights.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from mimlkit._compat import torchvision_ops

torchvision_ops.ensure()

import torch  # noqa: E402
from torch import nn  # noqa: E402

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Backbone",
    "Preprocess",
    "TinyCNN",
    "WeightsUnavailableError",
    "list_backbones",
    "load_backbone",
    "load_state_dict_file",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

_VGG = ("vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn")
_RESNET = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
_WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".safetensors")
_PROBE_TIMEOUT_S = 3.0


class WeightsUnavailableError(FileNotFoundError):
    """Pretrained weights were requested but are neither cached nor downloadable (a
    ``FileNotFoundError``, so the CLI reports it as a one-line user error)."""


def list_backbones() -> list[str]:
    """Architecture names accepted by :func:`load_backbone`."""
    return [*_VGG, *_RESNET, "tiny"]


def _family(arch: str) -> str:
    if arch in _VGG:
        return "vgg"
    if arch in _RESNET:
        return "resnet"
    if arch == "tiny":
        return "tiny"
    raise ValueError(f"unknown backbone {arch!r}; known: {', '.join(list_backbones())}")


# ----------------------------------------------------------------------------- preprocessing
@dataclass(frozen=True)
class Preprocess:
    """Image -> network input: resize policy (uint8, PIL, done in DataLoader workers) then
    float conversion and mean/std normalisation (done on the batch, on the device).

    ``resize``: ``"full"`` resizes the whole image to ``size`` x ``size`` (no crop, every
    region stays visible; default), ``"shorter+crop"`` resizes the shorter side to
    ``resize_size`` then centre-crops ``size`` (torchvision's eval transform), ``"none"``
    keeps the input size (tiles already cut to the right size).
    """

    size: int = 224
    resize: str = "full"
    resize_size: int = 256
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD

    def __post_init__(self) -> None:
        if self.resize not in ("full", "shorter+crop", "none"):
            raise ValueError(f"resize must be 'full', 'shorter+crop' or 'none', "
                             f"got {self.resize!r}")
        if int(self.size) < 8:
            raise ValueError(f"input size {self.size} is too small (need >= 8 pixels)")

    def config(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"] = [round(float(x), 6) for x in self.mean]
        d["std"] = [round(float(x), 6) for x in self.std]
        return d

    def to_uint8(self, image: Any, where: str = "image") -> np.ndarray:
        """H x W x 3 uint8 array (or PIL image) -> resized H' x W' x 3 uint8 array.

        Grey (H x W or H x W x 1) is replicated to 3 channels and alpha dropped; pixels must
        be uint8 (or integers within 0..255): other dtypes/ranges (16-bit, float) and empty
        images raise ``ValueError`` naming ``where`` instead of being clipped silently."""
        from PIL import Image

        from mimlkit.datasets.base import pil_to_rgb_uint8
        from mimlkit.datasets.tiling import as_rgb_uint8

        if isinstance(image, Image.Image):
            im = Image.fromarray(pil_to_rgb_uint8(image, where))
        else:
            arr = np.asarray(image)
            if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (1, 3, 4)):
                raise ValueError(f"{where}: expected an H x W x 3 image, got shape {arr.shape}")
            arr = as_rgb_uint8(arr, where)
            s = int(self.size)
            if self.resize == "none" or (self.resize == "full" and arr.shape[:2] == (s, s)):
                return np.ascontiguousarray(arr)
            im = Image.fromarray(np.ascontiguousarray(arr))
        s = int(self.size)
        if self.resize == "none":
            return np.asarray(im)
        if self.resize == "full":
            if im.size != (s, s):
                im = im.resize((s, s), Image.BILINEAR)
            return np.asarray(im)
        w, h = im.size
        scale = self.resize_size / min(w, h)
        nw, nh = max(s, round(w * scale)), max(s, round(h * scale))
        im = im.resize((nw, nh), Image.BILINEAR)
        left, top = (nw - s) // 2, (nh - s) // 2
        return np.asarray(im.crop((left, top, left + s, top + s)))

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, H, W) -> float32 normalised, channels-last, on ``batch``'s device."""
        x = batch.to(dtype=torch.float32).div_(255.0)
        mean = torch.tensor(self.mean, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
        x = x.sub_(mean).div_(std)
        return x.contiguous(memory_format=torch.channels_last)

    def __call__(self, images: Any) -> torch.Tensor:
        """Images (list of H x W x 3 arrays / PIL images, or one image) -> normalised batch."""
        if isinstance(images, np.ndarray) and images.ndim == 3:
            images = [images]
        arrs = [self.to_uint8(im) for im in images]
        if len({a.shape for a in arrs}) > 1:
            raise ValueError("images have different sizes after resizing; use resize='full'")
        t = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2)
        return self.normalize(t)


# ----------------------------------------------------------------------------- tiny CNN
class TinyCNN(nn.Module):
    """Three VGG-style groups (conv3x3-ReLU-maxpool; 8/16/32 channels), adaptive average
    pooling to 2 x 2, and a 3-layer classifier (FC-ReLU-Dropout-FC-ReLU-Dropout-FC) laid out
    like torchvision's VGG, so the VGG multi-level recipe applies (288 features)."""

    def __init__(self, widths: tuple[int, ...] = (8, 16, 32), hidden: int = 64,
                 num_classes: int = 10) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for c in widths:
            layers += [nn.Conv2d(c_in, c, kernel_size=3, padding=1), nn.ReLU(inplace=True),
                       nn.MaxPool2d(kernel_size=2, stride=2)]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = nn.Sequential(
            nn.Linear(c_in * 4, hidden), nn.ReLU(inplace=True), nn.Dropout(0.0),
            nn.Linear(hidden, hidden), nn.ReLU(inplace=True), nn.Dropout(0.0),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


# ----------------------------------------------------------------------------- backbone
@dataclass
class Backbone:
    """A named CNN with its weights and matching preprocessing.

    ``model`` is the full torchvision module (eval mode). ``trunk()`` returns a module mapping
    normalised images to the penultimate vector (VGG: fc7 post-ReLU; ResNet: global average
    pool; tiny: second FC), of width ``feature_dim`` -- what heads and deep trainers build on.
    """

    name: str
    model: nn.Module
    preprocess: Preprocess
    weights_id: str
    family: str = field(default="")

    def __post_init__(self) -> None:
        if not self.family:
            self.family = _family(self.name)

    @property
    def feature_dim(self) -> int:
        if self.family == "resnet":
            return int(self.model.fc.in_features)
        return int(self.model.classifier[3].out_features)

    def trunk(self) -> nn.Module:
        """Images -> penultimate features (shares parameters with ``model``)."""
        if self.family == "resnet":
            m = self.model
            return nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool, m.layer1, m.layer2, m.layer3,
                                 m.layer4, m.avgpool, nn.Flatten(1))
        m = self.model
        return nn.Sequential(m.features, m.avgpool, nn.Flatten(1), *list(m.classifier)[:5])

    def config(self) -> dict[str, Any]:
        return {"backbone": self.name, "weights": self.weights_id,
                "preprocess": self.preprocess.config()}


def _build_arch(arch: str, seed: int) -> nn.Module:
    """Randomly initialised architecture; the global RNG is left untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        if arch == "tiny":
            return TinyCNN()
        from torchvision import models

        return getattr(models, arch)(weights=None)


def _looks_like_path(weights: str) -> bool:
    return (os.sep in weights or weights.lower().endswith(_WEIGHT_SUFFIXES)
            or Path(weights).exists())


_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def _file_digest(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _FILE_HASHES:
        h = hashlib.blake2b(digest_size=16)
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        _FILE_HASHES[key] = h.hexdigest()
    return _FILE_HASHES[key]


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a torch file (``weights_only=True``).
    Unwraps ``{"state_dict": ...}`` / ``{"model": ...}`` and strips a DDP ``module.`` prefix."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd: Any = load_file(str(path))
    else:
        try:
            sd = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - re-raised with the file name
            raise ValueError(f"{path}: cannot read as a torch state dict with weights_only=True "
                             f"({type(exc).__name__}: {str(exc)[:300]})") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{path}: expected a state dict (name -> tensor), got {type(sd).__name__}")
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def _load_into(model: nn.Module, sd: dict[str, torch.Tensor], source: str, arch: str) -> None:
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    bad = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or bad:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} keys (e.g. {missing[:3]})")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} keys (e.g. {unexpected[:3]})")
        if bad:
            k = bad[0]
            parts.append(f"{len(bad)} shape mismatches (e.g. {k}: file {tuple(sd[k].shape)} vs "
                         f"model {tuple(own[k].shape)})")
        raise ValueError(f"{source}: not a state dict of torchvision {arch!r}: " + "; ".join(parts))
    model.load_state_dict(sd, strict=True)


def _host_reachable(url: str, timeout: float = _PROBE_TIMEOUT_S) -> bool:
    """True when a TCP connection to the URL's host succeeds within ``timeout`` seconds.
    Runs in a daemon thread so a stuck DNS lookup cannot hang the caller."""
    if os.environ.get("MIMLKIT_OFFLINE", "") not in ("", "0"):
        return False
    import socket

    parsed = urlparse(url)
    host, port = parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)
    result = {"ok": False}

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result["ok"] = True
        except Exception:  # noqa: BLE001 - any failure means "not reachable"
            result["ok"] = False

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.5)
    return bool(result["ok"])


def _resolve_enum(arch: str, weights: Any) -> Any:
    from torchvision import models

    if arch == "tiny":
        raise ValueError("backbone 'tiny' has no pretrained weights; use weights=None or a file")
    enum = models.get_model_weights(arch)
    if not isinstance(weights, str):
        if not isinstance(weights, enum):
            raise ValueError(f"weights {weights!r} do not belong to {arch!r} ({enum.__name__})")
        return weights
    name = weights.split(".")[-1]
    try:
        return enum[name] if name != "DEFAULT" else enum.DEFAULT
    except KeyError:
        known = ", ".join(m.name for m in enum)
        raise ValueError(f"unknown weights {weights!r} for {arch!r}; known: {known}, "
                         f"DEFAULT, or a local file path") from None


def _load_enum_weights(arch: str, w: Any, progress: bool) -> dict[str, torch.Tensor]:
    url = w.url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)
    if cached.is_file():
        return load_state_dict_file(cached)
    if not _host_reachable(url):
        raise WeightsUnavailableError(
            f"pretrained weights {type(w).__name__}.{w.name} for {arch!r} are not cached at "
            f"{cached} and {urlparse(url).hostname} cannot be reached (offline machine). "
            f"Provide them in one of two ways: (1) on a machine with internet run "
            f"`python -c \"import torchvision; torchvision.models.{arch}(weights='{w.name}')\"` "
            f"and copy the file {cached.name} into {cached.parent} here (set TORCH_HOME to "
            f"choose the folder), or (2) pass weights='path/to/{arch}.pth' (a torchvision "
            f"state dict, .pth or .safetensors). weights=None gives random initialisation."
        )
    return torch.hub.load_state_dict_from_url(url, progress=progress, check_hash=True,
                                              map_location="cpu", weights_only=True)


def load_backbone(name: str, weights: Any = None, *, seed: int = 0,
                  image_size: int | None = None, resize: str = "full",
                  mean: tuple[float, ...] | None = None, std: tuple[float, ...] | None = None,
                  progress: bool = False) -> Backbone:
    """Build backbone ``name`` with ``weights`` (None | file path | torchvision weights name /
    enum); see the module docstring. ``image_size`` defaults to the weights' crop size (224;
    64 for ``tiny``). Raises ``WeightsUnavailableError`` quickly when pretrained weights can
    be neither found nor downloaded, ``ValueError`` for a bad file."""
    arch = name.lower()
    family = _family(arch)
    model = _build_arch(arch, seed)
    default_size = 64 if family == "tiny" else 224
    resize_size = 73 if family == "tiny" else 256
    w_mean, w_std = IMAGENET_MEAN, IMAGENET_STD
    if weights is None:
        weights_id = f"random:seed={int(seed)}"
    elif isinstance(weights, (str, Path)) and (isinstance(weights, Path)
                                              or _looks_like_path(str(weights))):
        path = Path(weights).expanduser()
        sd = load_state_dict_file(path)
        _load_into(model, sd, str(path), arch)
        weights_id = f"file:{_file_digest(path)}"
    else:
        w = _resolve_enum(arch, weights)
        sd = _load_enum_weights(arch, w, progress)
        _load_into(model, sd, f"{type(w).__name__}.{w.name}", arch)
        weights_id = f"torchvision:{type(w).__name__}.{w.name}"
        tr = w.transforms()
        w_mean, w_std = tuple(tr.mean), tuple(tr.std)
        default_size, resize_size = int(tr.crop_size[0]), int(tr.resize_size[0])
    model.eval()
    size = int(image_size) if image_size else default_size
    if resize == "shorter+crop" and image_size:
        resize_size = round(size * 256 / 224)
    pre = Preprocess(size=size, resize=resize, resize_size=resize_size,
                     mean=tuple(mean) if mean is not None else w_mean,
                     std=tuple(std) if std is not None else w_std)
    return Backbone(name=arch, model=model, preprocess=pre, weights_id=weights_id, family=family)


def config_hash(config: dict[str, Any]) -> str:
    """Stable short hash of a JSON-able configuration (used as a cache key)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()
