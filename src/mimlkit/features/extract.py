"""Batched feature extraction from images (or their tiles) into ``Bags``, with a disk cache.

``extract_features(images, extractor, tiler=None, ...)``:

1. hashes every image's content (file bytes, or array bytes + shape + dtype) and looks up
   ``cache_dir/<config hash>/<content hash>.npy|.npz``; the config hash covers the extractor
   (backbone, weights id, preprocessing, levels, pooling) and the tiler, so features of
   different settings never mix;
2. decodes the missing images with PIL in ``DataLoader`` workers (``torchvision.io`` cannot
   decode on CPU-only torch here), cuts tiles, resizes with the backbone's own preprocessing,
   and ships uint8 tensors (4x less inter-process traffic than float);
3. normalises on the device, runs the extractor under ``torch.inference_mode`` in
   channels-last batches of ``batch_size`` pictures (images or tiles), and
4. writes each image's features to the cache as soon as they are complete (temporary file +
   ``os.replace``), so an interrupted run resumes where it stopped and a second run does no
   forward pass at all.

Without a tiler each image is a one-instance bag; with one, each tile is an instance and the
tile coordinates travel in ``bags.instance_meta["coords"]`` (N x 2, row/col of the top-left
corner as given by the tiler).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mimlkit.bags import Bags
from mimlkit.datasets.base import ImageSet

__all__ = ["extract_features", "content_hash", "resolve_device", "cache_key", "FeatureCache",
           "picture_bytes"]

_FORMAT = 1  # bump when the on-disk layout changes


# ----------------------------------------------------------------------------- hashing / keys
def content_hash(item: Any) -> str:
    """blake2b digest of an image file's bytes or of an in-memory array (shape, dtype, bytes)."""
    h = hashlib.blake2b(digest_size=20)
    if isinstance(item, np.ndarray):
        a = np.ascontiguousarray(item)
        h.update(f"{a.shape}|{a.dtype}|".encode())
        h.update(memoryview(a).cast("B"))
        return "a" + h.hexdigest()
    path = Path(item)
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise ValueError(f"{path}: cannot read image file ({exc})") from None
    return "f" + h.hexdigest()


def _tiler_config(tiler: Any) -> dict[str, Any] | None:
    if tiler is None:
        return None
    cfg = getattr(tiler, "config", None) or getattr(tiler, "get_config", None)
    if callable(cfg):
        d = cfg()
    else:
        d = {k: v for k, v in vars(tiler).items() if not k.startswith("_")
             and isinstance(v, (int, float, str, bool, type(None), tuple, list))}
    return {"class": type(tiler).__name__, **{k: d[k] for k in sorted(d)}}


def cache_key(extractor: Any, tiler: Any = None) -> tuple[str, dict[str, Any]]:
    """(short hash, full config) identifying features of ``extractor`` (+ ``tiler``)."""
    cfg = {"format": _FORMAT, "extractor": extractor.config(), "tiler": _tiler_config(tiler)}
    text = json.dumps(cfg, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest(), cfg


class FeatureCache:
    """Folder of per-image feature files for one extractor configuration.

    ``root/<config hash>/config.json`` describes the settings; ``<hash[:2]>/<hash>.npy``
    holds one image's features (``.npz`` with ``features`` + ``coords`` when tiled).
    """

    def __init__(self, root: str | Path, key: str, config: dict[str, Any], tiled: bool) -> None:
        self.dir = Path(root).expanduser() / key
        self.tiled = tiled
        self.dir.mkdir(parents=True, exist_ok=True)
        cfg_path = self.dir / "config.json"
        if not cfg_path.exists():
            _atomic_write_bytes(cfg_path, json.dumps(config, indent=1, default=str).encode())

    def path(self, h: str) -> Path:
        return self.dir / h[1:3] / (h + (".npz" if self.tiled else ".npy"))

    def get(self, h: str) -> tuple[np.ndarray, np.ndarray | None] | None:
        p = self.path(h)
        if not p.exists():
            return None
        try:
            if self.tiled:
                with np.load(p) as z:
                    feats, coords = z["features"], z["coords"]
            else:
                feats, coords = np.load(p), None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None  # corrupt / partial file (should not happen with atomic writes)
        if feats.ndim != 2 or (coords is not None and len(coords) != len(feats)):
            return None  # not an entry this code wrote: recompute it
        return feats, coords

    def put(self, h: str, feats: np.ndarray, coords: np.ndarray | None) -> None:
        p = self.path(h)
        p.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.stem}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                if self.tiled:
                    np.savez(f, features=feats, coords=coords)
                else:
                    np.save(f, feats)
            os.replace(tmp, p)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- devices
def resolve_device(device: Any = "auto"):
    """``"auto"`` -> CUDA when available, else CPU; anything else -> ``torch.device``."""
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _default_workers(device: Any) -> int:
    n = os.cpu_count() or 1
    if getattr(device, "type", "cpu") == "cuda":
        return min(8, max(1, n - 1))
    # on a small CPU box the forward pass needs the cores; decoding is ~1% of VGG16's work
    return 0 if n <= 2 else min(4, n // 4)


# ----------------------------------------------------------------------------- decoding
class _DecodeSet:
    """Map-style dataset: position k -> (image index, uint8 tensor (n, H, W, 3), coords)."""

    def __init__(self, images: ImageSet, indices: Sequence[int], preprocess: Any,
                 tiler: Any) -> None:
        self.images, self.indices, self.pre, self.tiler = images, list(indices), preprocess, tiler

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int):
        import torch

        i = self.indices[k]
        img = self.images.load(i)
        where = self.images.sources[i] if hasattr(self.images, "sources") else f"image {i}"
        if self.tiler is None:
            arr = self.pre.to_uint8(img, where)[None]
            coords = None
        else:
            from mimlkit.datasets.tiling import as_rgb_uint8

            tiles, coords = self.tiler(as_rgb_uint8(img, where))
            tiles = np.asarray(tiles)
            if len(tiles) == 0:
                arr = np.zeros((0, self.pre.size, self.pre.size, 3), np.uint8)
            else:
                arr = np.stack([self.pre.to_uint8(t, where) for t in tiles])
            coords = np.asarray(coords)
        return i, torch.from_numpy(np.require(arr, requirements=["C", "W"])), coords


def _collate(items):
    return items


# ----------------------------------------------------------------------------- main entry
def extract_features(images: ImageSet | Sequence[Any], extractor: Any, tiler: Any = None,
                     batch_size: int = 16, num_workers: int | None = None,
                     cache_dir: str | Path | None = None, device: Any = "auto",
                     progress: bool = True, weights: Any = None,
                     memory_budget_mb: float | None = None) -> Bags:
    """Features of every image (one-instance bags) or of every tile (one bag per image).

    Parameters
    ----------
    images : ``ImageSet`` or a list of paths / H x W x 3 uint8 arrays.
    extractor : a ``MultiLevelExtractor`` (or any module with ``preprocess``, ``config()``,
        ``n_features``), or a name for ``make_extractor`` (with ``weights``).
    tiler : callable image -> (tiles N x t x t x 3 uint8, coords N x 2), e.g. ``TileBagger``.
    batch_size : pictures (images or tiles) per forward pass.
    num_workers : decoding processes; default 0 on <= 2 CPUs, more with a GPU.
    cache_dir : folder for the feature cache (None: no cache).
    device : ``"auto"`` (GPU when present), ``"cpu"``, ``"cuda:0"``, ...
    memory_budget_mb : optional cap on the working memory of one forward batch: the batch
        is shrunk below ``batch_size`` so that ``batch x picture_bytes(extractor)`` (input +
        the largest layer's input and output, measured once by a one-picture probe) fits.
        The returned features themselves are not counted.
    """
    if not isinstance(images, ImageSet):
        images = ImageSet(list(images))
    n = len(images)
    if n == 0:
        raise ValueError("no images given")
    if isinstance(extractor, str):
        from mimlkit.features.multilevel import make_extractor

        extractor = make_extractor(extractor, weights)
    dev = resolve_device(device)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if memory_budget_mb is not None:
        if memory_budget_mb <= 0:
            raise ValueError(f"memory_budget_mb must be positive, got {memory_budget_mb}")
        per = picture_bytes(extractor, dev)
        batch_size = max(1, min(batch_size, int(memory_budget_mb * 2**20 // per)))
    tiled = tiler is not None
    cache = None
    hashes: list[str | None] = [None] * n
    results: list[tuple[np.ndarray, np.ndarray | None] | None] = [None] * n
    if cache_dir is not None:
        key, cfg = cache_key(extractor, tiler)
        cache = FeatureCache(cache_dir, key, cfg, tiled)
        for i in range(n):
            hashes[i] = content_hash(images.raw(i))
            results[i] = cache.get(hashes[i])
    todo = [i for i in range(n) if results[i] is None]

    if todo:
        _run(images, todo, extractor, tiler, batch_size, num_workers, dev, progress, n,
             lambda i, f, c: _finish(i, f, c, results, cache, hashes, images))
    return _assemble(results, tiled, images)


def picture_bytes(extractor: Any, device: Any = "cpu") -> int:
    """Working bytes of one picture in a forward pass: its uint8 and float32 input plus the
    largest ``input + output`` of any leaf module, measured with forward hooks on a
    one-picture probe (inference mode frees everything else as it goes)."""
    import torch

    pre = extractor.preprocess
    dev = resolve_device(device)
    p = next(extractor.parameters(), None)
    if p is not None and p.device != dev:
        extractor.to(dev)
    peak = [0]

    def nbytes(t: Any) -> int:
        if torch.is_tensor(t):
            return t.numel() * t.element_size()
        if isinstance(t, (tuple, list)):
            return sum(nbytes(u) for u in t)
        return 0

    def hook(module, inputs, output) -> None:
        peak[0] = max(peak[0], nbytes(inputs) + nbytes(output))

    leaves = [m for m in extractor.modules() if next(m.children(), None) is None]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = extractor.training
    extractor.eval()
    try:
        with torch.inference_mode():
            s = int(pre.size)
            x = torch.zeros((1, s, s, 3), dtype=torch.uint8, device=dev).permute(0, 3, 1, 2)
            extractor(pre.normalize(x))
    finally:
        for h in handles:
            h.remove()
        if was_training:
            extractor.train()
    return 3 * int(pre.size) ** 2 * (1 + 4) + peak[0]


def _finish(i, feats, coords, results, cache, hashes, images) -> None:
    if len(feats) == 0:
        raise ValueError(f"{images.sources[i]}: the tiler produced no tiles (empty bag)")
    results[i] = (feats, coords)
    if cache is not None:
        cache.put(hashes[i], feats, coords)


def _run(images, todo, extractor, tiler, batch_size, num_workers, dev, progress, n_total,
         finish) -> None:
    import torch
    from torch.utils.data import DataLoader

    pre = extractor.preprocess
    workers = _default_workers(dev) if num_workers is None else int(num_workers)
    per_item = 1 if tiler is None else max(1, batch_size // 8)
    loader = DataLoader(_DecodeSet(images, todo, pre, tiler), batch_size=batch_size
                        if tiler is None else per_item, shuffle=False, num_workers=workers,
                        collate_fn=_collate, pin_memory=dev.type == "cuda",
                        persistent_workers=False, prefetch_factor=4 if workers else None)
    was_training = extractor.training
    extractor.eval()
    p = next(extractor.parameters(), None)
    if p is not None and p.device != dev:
        extractor.to(dev)
    bar = _progress(len(todo), n_total, progress)
    fifo: deque[tuple[int, int, Any]] = deque()  # (image index, n pictures, coords)
    pending: list[torch.Tensor] = []  # uint8 (k, H, W, 3) not yet forwarded
    n_pending = 0
    rows: list[np.ndarray] = []  # computed rows not yet assigned to an image
    n_rows = 0

    def forward(x_hwc: torch.Tensor) -> None:
        nonlocal n_rows
        x = x_hwc.to(dev, non_blocking=True).permute(0, 3, 1, 2)
        out = extractor(pre.normalize(x))
        rows.append(out.float().cpu().numpy())
        n_rows += len(out)

    def drain() -> None:
        nonlocal n_rows
        while fifo and n_rows >= fifo[0][1]:
            i, k, coords = fifo.popleft()
            allr = np.concatenate(rows) if len(rows) > 1 else rows[0]
            finish(i, np.ascontiguousarray(allr[:k]), coords)
            rest = allr[k:]
            rows.clear()
            if len(rest):
                rows.append(rest)
            n_rows -= k
            bar.update(1)

    try:
        with torch.inference_mode():
            for items in loader:
                for i, t, coords in items:
                    fifo.append((i, len(t), coords))
                    if len(t):
                        pending.append(t)
                        n_pending += len(t)
                while n_pending >= batch_size:
                    allp = torch.cat(pending) if len(pending) > 1 else pending[0]
                    forward(allp[:batch_size])
                    rest = allp[batch_size:]
                    pending[:] = [rest] if len(rest) else []
                    n_pending -= batch_size
                    drain()
                drain()
            if n_pending:
                forward(torch.cat(pending) if len(pending) > 1 else pending[0])
            drain()
    finally:
        bar.close()
        if was_training:
            extractor.train()


class _NoBar:
    def update(self, k: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(n_todo: int, n_total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return _NoBar()
    return tqdm(total=n_todo, unit="img", desc=f"features ({n_total - n_todo} cached)",
                leave=False)


def _assemble(results, tiled: bool, images: ImageSet) -> Bags:
    feats = [r[0] for r in results]  # type: ignore[index]
    sizes = np.array([len(f) for f in feats], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    X = np.concatenate(feats).astype(np.float32, copy=False)
    if not np.isfinite(X).all():
        bad = int(np.searchsorted(offsets, np.flatnonzero(~np.isfinite(X).all(1))[0], "right")) - 1
        raise ValueError(f"{images.sources[bad]}: non-finite features (check the weights)")
    meta = {}
    if tiled:
        meta["coords"] = np.concatenate([np.asarray(r[1]).reshape(len(r[0]), -1)
                                         for r in results])  # type: ignore[index]
    return Bags(X, offsets, meta, validate=False)
