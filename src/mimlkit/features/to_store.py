"""``mimlkit features --out NAME.zarr``: feature bags written into a bag store incrementally
and resumably, in this process or by a Dask cluster.

**Local** (no ``--scheduler``, ``--jobs 1``): the images are processed in runs of
``chunk_images``; each run's bags are appended to the store and committed
(``BagStoreWriter.flush``) before the next run starts, so only one run's features are in
memory and a killed process keeps every committed run. The same command again resumes after
the last committed bag.

**Dask** (``--scheduler ADDRESS`` or ``--jobs N`` > 1, a local cluster): the image list is
cut into contiguous chunks of ``chunk_images``; one task per chunk extracts it and writes
its own part store ``<out>.parts/images-<a>-<b>.zarr`` (under a temporary name, renamed
into place once complete). The client then copies the parts into ``<out>`` in image order,
block by block, and removes ``<out>.parts``. A task gets only the chunk's image paths and
the extractor settings (:class:`ExtractSettings`), so workers need the same paths (a shared
filesystem) for the images, a weights file, ``--cache`` and the output. A rerun reuses the
complete parts and the committed prefix of ``<out>``.

**Consistency**: ``<out>`` follows the store's commit rule (a bag exists once its offset is
written; the ``complete`` attribute is set only when every image is in), so an interrupted
run leaves a valid prefix that ``load_dataset`` refuses as incomplete and a rerun finishes.
The run's identity (image names, labels, extractor and tiler settings) is kept in the
store's sidecar (:mod:`mimlkit.datasets.store_dataset`); a rerun with other images or
settings is refused in one line.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mimlkit.bags import Bags
from mimlkit.datasets.base import ImageSet, MIMLDataset
from mimlkit.datasets.store_dataset import (
    SIDECAR,
    committed_bags,
    json_default,
    read_sidecar,
    write_sidecar,
)

__all__ = ["ExtractSettings", "features_to_store", "extract_part", "image_names",
           "parts_dir"]

_EXTRACTORS: dict[tuple, Any] = {}  # one built extractor per settings, per process
_BLOCK_CHUNKS = 4  # a block copied from a part into the store: about 4 store chunks of rows


# ----------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class ExtractSettings:
    """What a worker needs to extract features: backbone, weights, tiling, batching.

    Plain data (pickled to Dask workers); ``weights`` and ``cache`` should be absolute
    paths on a shared filesystem for a multi-machine run.
    """

    backbone: str
    weights: str | None = None
    seed: int = 0
    image_size: int | None = None
    resize: str = "full"
    tiler: dict[str, Any] | None = None
    batch_size: int = 16
    memory_budget_mb: float | None = None
    workers: int | None = None
    device: str = "auto"
    cache: str | None = None

    @property
    def handcrafted(self) -> bool:
        from mimlkit.features.input_pipeline import _HANDCRAFTED_ALIASES

        return self.backbone.lower() in _HANDCRAFTED_ALIASES

    def extractor(self) -> Any:
        """The CNN extractor (built once per process and settings)."""
        key = (self.backbone, self.weights, self.seed, self.image_size, self.resize)
        if key not in _EXTRACTORS:
            from mimlkit.features.multilevel import make_extractor

            _EXTRACTORS[key] = make_extractor(self.backbone, self.weights, seed=self.seed,
                                              image_size=self.image_size, resize=self.resize)
        return _EXTRACTORS[key]

    def features_meta(self) -> dict[str, Any]:
        """``meta["features"]``, as the ``.npz`` output records it."""
        if self.handcrafted:
            from mimlkit.features.handcrafted import N_COLOUR_TEXTURE_FEATURES
            from mimlkit.features.input_pipeline import HANDCRAFTED_NAME

            return {"extractor": HANDCRAFTED_NAME, "n_features": N_COLOUR_TEXTURE_FEATURES}
        return self.extractor().config()

    def n_features(self) -> int:
        if self.handcrafted:
            from mimlkit.features.handcrafted import N_COLOUR_TEXTURE_FEATURES

            return N_COLOUR_TEXTURE_FEATURES
        return int(self.extractor().n_features)

    def extract(self, images: ImageSet) -> Bags:
        """Feature bags of ``images`` (one bag per image; tiles are instances)."""
        from mimlkit.features.input_pipeline import handcrafted_bags, make_tiler

        tiler = make_tiler(self.tiler)
        if self.handcrafted:
            return handcrafted_bags(images, tiler)
        from mimlkit.features.extract import extract_features

        return extract_features(images, self.extractor(), tiler=tiler,
                                batch_size=self.batch_size, num_workers=self.workers,
                                cache_dir=self.cache, device=self.device, progress=False,
                                memory_budget_mb=self.memory_budget_mb)


# ----------------------------------------------------------------------------- identity
def _canon(obj: Any) -> Any:
    """JSON round trip (tuples -> lists, numpy -> Python), for comparing settings."""
    return json.loads(json.dumps(obj, default=json_default, sort_keys=True))


def _digest(obj: Any) -> str:
    text = json.dumps(obj, default=json_default, sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def image_names(images: ImageSet, root: Path | None) -> list[str]:
    """Bag names: image paths relative to ``root`` (absolute when outside it)."""
    base = os.path.abspath(root) if root is not None else None
    out = []
    for src in images.sources:
        p = os.path.abspath(src)
        rel = os.path.relpath(p, base) if base is not None else p
        outside = rel == os.pardir or rel.startswith(os.pardir + os.sep)
        out.append(p if outside else Path(rel).as_posix())
    return out


def _identity(ds: MIMLDataset, names: Sequence[str], meta: dict[str, Any]) -> dict[str, Any]:
    groups = None if ds.groups is None else np.asarray(ds.groups).tolist()
    return {"n_images": len(names), "images_digest": _digest(list(names)),
            "labels_digest": _digest([ds.label_names, np.asarray(ds.Y).tolist(), groups]),
            "features": _canon(meta.get("features")), "tiler": _canon(meta.get("tiler"))}


def _diff(a: Any, b: Any) -> str:
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return f"{a!r} vs {b!r}"
    keys = [k for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return ", ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in keys)


def _check_identity(where: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Refuse resuming ``where`` (a store or parts folder) written by another run."""
    fix = "delete it or choose another --out"
    if (old.get("n_images"), old.get("images_digest")) != (new["n_images"],
                                                          new["images_digest"]):
        raise ValueError(f"{where} was written for another image list ({old.get('n_images')} "
                         f"images, now {new['n_images']}, or other files); {fix}")
    if old.get("labels_digest") != new["labels_digest"]:
        raise ValueError(f"{where} was written with other labels (label names, rows or "
                         f"groups of the CSV differ); {fix}")
    for key, what in (("features", "feature extractor"), ("tiler", "tiling")):
        if _canon(old.get(key)) != new[key]:
            raise ValueError(f"{where} was written with another {what} (stored vs now: "
                             f"{_diff(_canon(old.get(key)), new[key])}); {fix}")


@contextlib.contextmanager
def _naming_images(sources: Sequence[str], start: int) -> Iterator[None]:
    """Make a ``ValueError`` from a run of images name the images when it names none."""
    try:
        yield
    except ValueError as exc:
        msg = str(exc)
        if any(s in msg for s in sources):
            raise
        span = sources[0] if len(sources) == 1 else f"{sources[0]} .. {sources[-1]}"
        raise ValueError(f"images {start}..{start + len(sources) - 1} ({span}): {msg}") \
            from None


# ----------------------------------------------------------------------------- entry point
def parts_dir(out: Path) -> Path:
    """Folder of the Dask run's part stores: ``<out>.parts``."""
    return out.with_name(out.name + ".parts")


def features_to_store(ds: MIMLDataset, settings: ExtractSettings, out: str | os.PathLike, *,
                      meta: dict[str, Any], chunk_images: int = 64,
                      scheduler: str | None = None, jobs: int = 1,
                      progress: bool = True) -> tuple[Any, int]:
    """Write the feature bags of ``ds``'s images into the store ``out`` (created or resumed).

    ``meta`` is the dataset meta to keep (with ``features`` and ``tiler``). Returns the
    opened store (``StoredBags``) and the number of images this call added to it.
    """
    from mimlkit.datasets.store import BagStoreWriter, open_store

    out = Path(out).absolute()
    chunk_images = int(chunk_images)
    if chunk_images < 1:
        raise ValueError(f"--chunk-images must be >= 1, got {chunk_images}")
    if int(jobs) < 1:
        raise ValueError(f"--jobs must be >= 1, got {jobs}")
    images = ds.inputs("images")
    root = Path(meta["image_dir"]).absolute() if meta.get("image_dir") else None
    names = image_names(images, root)
    n = len(names)
    ident = _identity(ds, names, meta)
    groups = None if ds.groups is None else np.asarray(ds.groups).tolist()
    info = {**ident, "dataset": {"name": ds.name, "meta": meta, "groups": groups,
                                 "image_root": None if root is None else str(root)}}
    old = read_sidecar(out) if out.is_dir() else None
    state = committed_bags(out) if out.is_dir() and any(out.iterdir()) else (0, False)
    if old is not None:
        _check_identity(out, old, ident)
        if state == (n, True):  # complete: nothing to do (parts left by a crash go)
            if read_sidecar(parts_dir(out)) is not None:
                shutil.rmtree(parts_dir(out), ignore_errors=True)
            return open_store(out), 0
    elif state[0]:
        raise ValueError(f"{out} holds a bag store not written by `mimlkit features` (no "
                         f"{SIDECAR} inside); delete it or choose another --out")
    writer = BagStoreWriter(out, n_features=settings.n_features(),
                            label_names=ds.label_names)
    write_sidecar(out, info)
    k = writer.n_committed
    if k > n:
        raise ValueError(f"{out} holds {k} bags but there are {n} images")
    try:
        if scheduler is not None or int(jobs) > 1:
            _run_dask(ds, settings, out, writer, names, ident, chunk_images, scheduler,
                      int(jobs), progress, meta)
        else:
            _run_local(ds, settings, writer, names, chunk_images, progress)
    except BaseException:
        with contextlib.suppress(Exception):
            writer.flush()  # keep every whole bag appended; the store stays incomplete
        raise
    writer.close()
    if scheduler is not None or int(jobs) > 1:
        shutil.rmtree(parts_dir(out), ignore_errors=True)
    return open_store(out), n - k


def _bar(total: int, desc: str, enabled: bool) -> Any:
    from mimlkit.features.extract import _NoBar

    if not enabled:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover
        return _NoBar()
    return tqdm(total=total, unit="img", desc=desc, leave=False)


def _run_local(ds: MIMLDataset, settings: ExtractSettings, writer: Any, names: list[str],
               chunk: int, progress: bool) -> None:
    """In this process: extract and commit ``chunk`` images at a time after the store's
    committed prefix."""
    images = ds.inputs("images")
    sources = images.sources
    n, k = len(names), writer.n_committed
    bar = _bar(n - k, f"features ({k} already in the store)", progress)
    try:
        for a in range(k, n, chunk):
            b = min(a + chunk, n)
            with _naming_images(sources[a:b], a):
                bags = settings.extract(images[a:b])
                writer.append(bags, label_row=ds.Y[a:b], name=names[a:b])
                writer.flush()  # commit this run of images
            bar.update(b - a)
    finally:
        bar.close()


# ----------------------------------------------------------------------------- Dask
def extract_part(settings: ExtractSettings, sources: list[str], start: int, part: str,
                 expected: dict[str, Any] | None = None) -> dict[str, Any]:
    """Dask task: extract the images ``sources`` (image ``start`` on) into the part store
    ``part`` (written under a temporary name, renamed into place when complete).
    ``expected`` is the client's ``meta["features"]``; a worker whose extractor differs
    (other weights file, other library version) refuses."""
    import socket

    from mimlkit.datasets.store import BagStoreWriter

    final = Path(part)
    host = socket.gethostname()
    if final.is_dir():
        return {"part": part, "host": host, "reused": True}
    if expected is not None and _canon(settings.features_meta()) != _canon(expected):
        raise ValueError(f"worker {host}: the feature extractor built here differs from the "
                         f"client's ({_diff(_canon(expected), _canon(settings.features_meta()))})")
    tmp = final.with_name(f".tmp-{final.stem}-{uuid.uuid4().hex[:10]}.zarr")
    try:
        with _naming_images(sources, start):
            bags = settings.extract(ImageSet(list(sources)))
        w = BagStoreWriter(tmp, n_features=bags.n_features)
        w.append(bags, name=list(sources))
        w.close()
        try:
            os.rename(tmp, final)
        except OSError:
            if not final.is_dir():  # else: the same task finished elsewhere first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"part": part, "host": host, "reused": False}


def _part_path(parts: Path, a: int, b: int) -> Path:
    return parts / f"images-{a:08d}-{b:08d}.zarr"


def _run_dask(ds: MIMLDataset, settings: ExtractSettings, out: Path, writer: Any,
              names: list[str], ident: dict[str, Any], chunk: int, scheduler: str | None,
              jobs: int, progress: bool, meta: dict[str, Any]) -> None:
    """On Dask: one task per chunk not yet in the store nor among the finished parts, then
    the parts copied into the store in image order."""
    from mimlkit._extras import require

    require("dask", "dask.distributed", "mimlkit features --scheduler / --jobs")
    parts = parts_dir(out)
    parts.mkdir(parents=True, exist_ok=True)
    old = read_sidecar(parts)
    if old is not None:
        _check_identity(parts, old, ident)
    else:
        write_sidecar(parts, ident)
    n, k = len(names), writer.n_committed
    sources = [os.path.abspath(s) for s in ds.inputs("images").sources]
    chunks = [(a, min(a + chunk, n)) for a in range(0, n, chunk) if min(a + chunk, n) > k]
    todo = [(a, b) for a, b in chunks if not _part_path(parts, a, b).is_dir()]
    if todo:
        _submit(todo, settings, sources, parts, scheduler, jobs, progress,
                meta.get("features"))
    _assemble(writer, chunks, parts, sources, ds.Y, names)


def _submit(todo: list[tuple[int, int]], settings: ExtractSettings, sources: list[str],
            parts: Path, scheduler: str | None, jobs: int, progress: bool,
            expected: Any) -> None:
    """Run the ``todo`` chunks as Dask tasks; every task runs to its end, then the first
    failure (in image order) is raised as one line."""
    from dask.distributed import as_completed

    from mimlkit.evaluation._dask import dask_client

    if scheduler is not None:
        from mimlkit.cli_models import check_scheduler_reachable

        check_scheduler_reachable(scheduler)
    client, closers = dask_client(scheduler, jobs)
    bar = _bar(sum(b - a for a, b in todo), f"features ({len(todo)} Dask tasks)", progress)
    try:
        futures = {}
        for a, b in todo:
            fut = client.submit(extract_part, settings, sources[a:b], a,
                                str(_part_path(parts, a, b)), expected, pure=False,
                                key=f"mimlkit-features-{a}-{b}-{uuid.uuid4().hex}")
            futures[fut] = (a, b)
        failed: list[tuple[int, int, BaseException]] = []
        for fut in as_completed(list(futures)):
            a, b = futures[fut]
            try:
                fut.result()
            except Exception as exc:  # noqa: BLE001 - reported below, after the others
                failed.append((a, b, exc))
            finally:
                fut.release()
            bar.update(b - a)
        if failed:
            raise _task_error(failed, len(todo), sources, parts)
    finally:
        bar.close()
        for c in reversed(closers):
            with contextlib.suppress(Exception):
                c.close()


def _task_error(failed: list[tuple[int, int, BaseException]], n_tasks: int,
                sources: list[str], parts: Path) -> ValueError:
    """One line for the failed tasks: the first one's error in image order (naming its
    image), how many failed, and that the finished parts are kept for the rerun."""
    a, b, exc = min(failed, key=lambda f: f[0])
    if isinstance(exc, ValueError):
        msg = str(exc)
    elif isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        msg = f"{exc.filename}: {exc.strerror}"
    else:  # e.g. KilledWorker
        msg = (f"images {a}..{b - 1} ({sources[a]} ..): the Dask task failed "
               f"({type(exc).__name__}: {exc})")
    return ValueError(f"{msg} [{len(failed)} of {n_tasks} Dask tasks failed; the finished "
                      f"parts in {parts} are kept and the same command again redoes only "
                      "the failed ones]")


def _assemble(writer: Any, chunks: list[tuple[int, int]], parts: Path, sources: list[str],
              Y: np.ndarray, names: list[str]) -> None:
    """Copy the parts into the store in image order, block by block, after its committed
    prefix; each part is committed before the next is read."""
    from mimlkit.datasets.store import open_store

    for a, b in chunks:
        path = _part_path(parts, a, b)
        part = open_store(path)
        if part.n_bags != b - a or part.bag_names != sources[a:b]:
            raise ValueError(f"{path}: part store of other images (expected images {a}..{b - 1}"
                             f" from {sources[a]}); delete {parts} and rerun")
        s, stop = max(0, writer.n_committed - a), b - a
        max_rows = _BLOCK_CHUNKS * writer.chunk_rows
        while s < stop:  # blocks of whole bags, about max_rows rows (at least one bag)
            limit = part.offsets[s] + max_rows
            e = min(stop, max(s + 1, int(np.searchsorted(part.offsets, limit, "right")) - 1))
            writer.append(part.slice(s, e), label_row=Y[a + s:a + e], name=names[a + s:a + e])
            s = e
        writer.flush()
