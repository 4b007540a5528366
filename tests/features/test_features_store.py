"""``mimlkit features --out NAME.zarr``: the bag store path (incremental, resumable) and the
Dask path (part stores assembled in image order), against the ``.npz`` path.

Hand-crafted ``colour-texture`` features on a few tiny generated PNGs: numpy only, no torch.
The distributed test starts a Dask scheduler and a worker as separate processes.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("zarr")

from mimlkit.cli import app  # noqa: E402

runner = CliRunner()
N_IMAGES = 7


def _png(path: Path, seed: int, shape=(36, 44)) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (*shape, 3), dtype=np.uint8)).save(path)


@pytest.fixture
def folder(tmp_path) -> Path:
    """``imgs/im0.png ..`` + ``labels.csv`` (names column, patient groups)."""
    (tmp_path / "imgs").mkdir()
    rows = ["Image Index,Finding Labels,Patient ID"]
    cells = ["cat", "dog", "cat|dog", "No Finding", "dog", "cat", "cat|dog"]
    for i in range(N_IMAGES):
        _png(tmp_path / "imgs" / f"im{i}.png", i, (36 + 4 * (i % 3), 44))
        rows.append(f"im{i}.png,{cells[i]},p{i // 2}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def _args(folder: Path, out: Path, *extra: str, tile: str | None = "16") -> list[str]:
    args = ["features", "--images", str(folder / "imgs"), "--labels",
            str(folder / "labels.csv"), "--label-column", "Finding Labels",
            "--group-column", "Patient ID", "--backbone", "colour-texture",
            "--no-progress", "--out", str(out), *extra]
    return args + (["--tile", tile, "--stride", "12"] if tile else [])


def _run(args: list[str], code: int = 0):
    res = runner.invoke(app, args)
    assert res.exit_code == code, res.output
    return res


def _same(a, b) -> None:
    """Two datasets hold the same values (bags, metadata, labels, groups, provenance)."""
    assert a.label_names == b.label_names and a.name == b.name
    np.testing.assert_array_equal(a.Y, b.Y)
    np.testing.assert_array_equal(a.groups, b.groups)
    np.testing.assert_array_equal(a.bags.offsets, b.bags.offsets)
    assert a.bags.instances.dtype == b.bags.instances.dtype == np.float32
    np.testing.assert_array_equal(a.bags.instances, b.bags.instances)
    assert sorted(a.bags.instance_meta) == sorted(b.bags.instance_meta)
    for k, v in a.bags.instance_meta.items():
        assert v.dtype == b.bags.instance_meta[k].dtype
        np.testing.assert_array_equal(v, b.bags.instance_meta[k])
    for key in ("features", "tiler", "source", "image_dir", "label_layout"):
        assert a.meta.get(key) == b.meta.get(key), key
    assert [Path(p).resolve() for p in a.images.sources] == \
        [Path(p).resolve() for p in b.images.sources]


@pytest.fixture
def reference(folder):
    """The ``.npz`` written by the in-memory path."""
    from mimlkit.datasets import load_npz

    _run(_args(folder, folder / "ref.npz"))
    return load_npz(folder / "ref.npz")


# ----------------------------------------------------------------------------- local store
@pytest.mark.parametrize("tile", ["16", None], ids=["tiles", "whole-images"])
def test_store_equals_npz_value_for_value(folder, tile):
    from mimlkit.datasets import load_dataset, load_npz, open_store

    _run(_args(folder, folder / "ref.npz", tile=tile))
    res = _run(_args(folder, folder / "f.zarr", "--chunk-images", "3", tile=tile))
    assert f"{N_IMAGES} images added now" in res.output
    store = open_store(folder / "f.zarr")
    assert store.complete and store.n_bags == N_IMAGES
    assert store.bag_names == [f"im{i}.png" for i in range(N_IMAGES)]
    assert store.meta_names == (["coords"] if tile else [])
    _same(load_dataset(folder / "f.zarr"), load_npz(folder / "ref.npz"))
    # a rerun of a complete store does nothing
    res = _run(_args(folder, folder / "f.zarr", "--chunk-images", "3", tile=tile))
    assert "0 images added now" in res.output


def test_cli_reads_the_store(folder):
    """``datasets info`` and ``fit --data`` take the store like a .npz."""
    _run(_args(folder, folder / "f.zarr"))
    res = _run(["datasets", "info", str(folder / "f.zarr")])
    assert f"{N_IMAGES} bags" in res.output
    _run(["fit", "--data", str(folder / "f.zarr"), "-l", "pooled-linear",
          "--out", str(folder / "model")])
    import json

    pipeline = json.loads((folder / "model" / "config.json").read_text())["metadata"]["pipeline"]
    assert pipeline["tiler"]["tile_size"] == 16 and pipeline["n_features"] == 40
    assert pipeline["features"]["name"] == "colour-texture"


def test_interrupted_run_resumes_to_the_same_store(folder, reference):
    """A failing image stops the run after the committed chunks; the error names it; the
    partial store is refused as incomplete; after the fix the rerun extracts only the
    rest and the result equals an uninterrupted run."""
    from mimlkit.datasets import load_dataset, open_store

    bad = folder / "imgs" / "im5.png"
    bad.write_bytes(b"not a png")
    out = folder / "f.zarr"
    res = _run(_args(folder, out, "--chunk-images", "2"), code=2)
    assert "im5.png" in res.output and "Traceback" not in res.output
    store = open_store(out)
    assert store.n_bags == 4 and not store.complete  # chunks [0, 2) and [2, 4) committed
    with pytest.raises(ValueError, match="incomplete"):
        load_dataset(out)
    _png(bad, 5, (36 + 4 * (5 % 3), 44))
    res = _run(_args(folder, out, "--chunk-images", "2"))
    assert f"{N_IMAGES - 4} images added now" in res.output
    _same(load_dataset(out), reference)


def test_partial_store_with_torn_tail_resumes(folder, reference):
    """A writer killed mid-chunk: rows past the last committed bag are dropped on resume."""
    from mimlkit.datasets import load_dataset, open_store

    out = folder / "f.zarr"
    _run(_args(folder, out, "--chunk-images", "3"))
    # cut the store back to 3 committed bags + 5 uncommitted rows, as a killed run leaves it
    import zarr

    g = zarr.open_group(str(out), mode="r+")
    off = g["offsets"][:]
    g["offsets"][4:] = -1
    g.attrs["complete"] = False
    assert g["instances"].shape[0] >= off[3] + 5
    assert open_store(out).n_bags == 3
    res = _run(_args(folder, out))
    assert f"{N_IMAGES - 3} images added now" in res.output
    _same(load_dataset(out), reference)


@pytest.mark.parametrize("change,message", [
    (["--tile", "20"], "another tiling"),
    (["--csv-drop"], "another image list"),
    (["--csv-relabel"], "other labels"),
])
def test_resume_refuses_another_run(folder, change, message):
    out = folder / "f.zarr"
    bad = folder / "imgs" / "im5.png"
    bad.write_bytes(b"broken")
    _run(_args(folder, out, "--chunk-images", "2"), code=2)
    _png(bad, 5)
    csv = folder / "labels.csv"
    lines = csv.read_text().splitlines()
    if change == ["--csv-drop"]:
        csv.write_text("\n".join(lines[:-1]) + "\n")
        args = _args(folder, out)
    elif change == ["--csv-relabel"]:
        csv.write_text("\n".join([lines[0], lines[1].replace("cat", "dog"), *lines[2:]]) + "\n")
        args = _args(folder, out)
    else:
        args = _args(folder, out, tile=None) + change + ["--stride", "12"]
    res = _run(args, code=2)
    text = " ".join(res.output.split())
    assert message in text and str(out) in text and "Traceback" not in res.output


def test_store_option_errors(folder, tmp_path):
    res = _run(_args(folder, tmp_path / "x.npz", "--jobs", "2"), code=2)
    assert "--out NAME.zarr" in res.output
    res = _run(_args(folder, tmp_path / "x.zarr", "--scheduler", "tcp://127.0.0.1:1"), code=2)
    assert "unreachable" in res.output and not (tmp_path / "x.zarr").exists()
    res = _run(_args(folder, tmp_path / "y.zarr", "--chunk-images", "0"), code=2)
    assert "--chunk-images" in res.output
    # a folder holding a store of someone else is not touched
    from mimlkit.datasets import BagStoreWriter

    with BagStoreWriter(tmp_path / "other.zarr", n_features=3) as w:
        w.append(np.ones((2, 3)))
    res = _run(_args(folder, tmp_path / "other.zarr"), code=2)
    assert "not written by `mimlkit features`" in " ".join(res.output.split())


# ----------------------------------------------------------------------------- Dask
def _start(cmd: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    with open(log, "wb") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env,
                                cwd=log.parent)


@pytest.fixture
def dask_cluster(tmp_path):
    """A Dask scheduler and one worker process (two one-thread workers), each started as a
    separate process like on separate hosts; killed afterwards."""
    pytest.importorskip("distributed")
    from dask.distributed import Client

    sched_file = tmp_path / "scheduler.json"
    procs = []
    try:
        procs.append(_start([sys.executable, "-m", "distributed.cli.dask_scheduler",
                             "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                             "--scheduler-file", str(sched_file)], tmp_path / "sched.log"))
        procs.append(_start([sys.executable, "-m", "distributed.cli.dask_worker",
                             "--scheduler-file", str(sched_file), "--nworkers", "2",
                             "--nthreads", "1", "--no-dashboard", "--memory-limit", "0"],
                            tmp_path / "worker.log"))
        deadline = time.monotonic() + 60
        while not sched_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sched_file.is_file(), (tmp_path / "sched.log").read_text()
        with Client(scheduler_file=str(sched_file), timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
            address = client.scheduler.address
        yield address
    finally:
        if sched_file.is_file():  # a clean, quick stop: the scheduler closes its workers
            with contextlib.suppress(Exception), \
                    Client(scheduler_file=str(sched_file), timeout=5) as client:
                client.shutdown()
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_distributed_run_equals_local_and_resumes(folder, reference, dask_cluster):
    """Separately started scheduler + workers: a failing image names itself, the other
    tasks finish and keep their parts; the rerun reuses them, assembles the store in image
    order and removes the parts; the store equals the local .npz value for value."""
    from mimlkit.datasets import load_dataset

    out = folder / "dist.zarr"
    parts = folder / "dist.zarr.parts"
    bad = folder / "imgs" / "im5.png"
    bad.write_bytes(b"not a png")
    args = _args(folder, out, "--scheduler", dask_cluster, "--chunk-images", "2")
    res = _run(args, code=2)
    text = " ".join(res.output.split())
    assert "im5.png" in text and "1 of 4 Dask tasks failed" in text
    assert "Traceback" not in res.output
    # every other task ran to the end: its part is in place, nothing half-written is left
    assert sorted(x.name for x in parts.iterdir()) == [
        "images-00000000-00000002.zarr", "images-00000002-00000004.zarr",
        "images-00000006-00000007.zarr", "mimlkit_features.json"]
    _png(bad, 5, (36 + 4 * (5 % 3), 44))
    # im0 is now unreadable: the rerun succeeds only because it reuses the part of im0, im1
    (folder / "imgs" / "im0.png").write_bytes(b"not a png either")
    res = _run(args)
    assert f"{N_IMAGES} images added now (Dask scheduler" in res.output
    assert not parts.exists()
    _same(load_dataset(out), reference)


def test_parts_assemble_in_image_order_block_by_block(folder, reference):
    """The Dask task function and the assembly without a cluster: parts written in reverse
    order, one already in the store, copied in blocks of a few bags (small chunk_rows)."""
    from mimlkit.datasets import BagStoreWriter, open_store
    from mimlkit.features.to_store import ExtractSettings, _assemble, extract_part

    settings = ExtractSettings("colour-texture", tiler=reference.meta["tiler"])
    sources = [str(Path(s).resolve()) for s in reference.images.sources]
    parts = folder / "p.parts"
    parts.mkdir()
    chunks = [(0, 3), (3, 6), (6, 7)]
    for a, b in reversed(chunks):
        path = parts / f"images-{a:08d}-{b:08d}.zarr"
        got = extract_part(settings, sources[a:b], a, str(path), reference.meta["features"])
        assert not got["reused"] and path.is_dir()
    assert extract_part(settings, sources[:3], 0, str(parts / "images-00000000-00000003.zarr"),
                        None)["reused"]
    names = [Path(s).name for s in sources]
    w = BagStoreWriter(folder / "s.zarr", n_features=40, label_names=reference.label_names,
                       chunk_rows=3)
    w.append(open_store(parts / "images-00000000-00000003.zarr").slice(0, 2),
             label_row=reference.Y[:2], name=names[:2])
    w.flush()
    _assemble(w, chunks, parts, sources, reference.Y, names)
    w.close()
    got = open_store(folder / "s.zarr")
    assert got.bag_names == names
    np.testing.assert_array_equal(got.labels, reference.Y)
    bags = got.to_bags()
    np.testing.assert_array_equal(bags.offsets, reference.bags.offsets)
    np.testing.assert_array_equal(bags.instances, reference.bags.instances)
    np.testing.assert_array_equal(bags.instance_meta["coords"],
                                  reference.bags.instance_meta["coords"])
    # a worker whose extractor differs from the client's refuses
    with pytest.raises(ValueError, match="differs from the client's"):
        extract_part(settings, sources[:1], 0, str(parts / "x.zarr"), {"extractor": "other"})


@pytest.mark.slow
def test_local_dask_cluster_equals_local(folder, reference):
    """``--jobs 2``: a local Dask cluster of two worker processes gives the same store."""
    pytest.importorskip("distributed")
    from mimlkit.datasets import load_dataset

    out = folder / "jobs.zarr"
    res = _run(_args(folder, out, "--jobs", "2", "--chunk-images", "3"))
    assert "2 local Dask workers" in res.output and not (folder / "jobs.zarr.parts").exists()
    _same(load_dataset(out), reference)


def test_cnn_backbone_store_matches_npz(folder, tmp_path):
    """A (tiny, random-init) CNN backbone through the store path: same extractor config and
    the same features as the .npz path (up to float rounding: other forward batches)."""
    pytest.importorskip("torch")
    from mimlkit.datasets import load_dataset, load_npz

    def args(out, *extra):
        return ["features", "--images", str(folder / "imgs"), "--labels",
                str(folder / "labels.csv"), "--label-column", "Finding Labels",
                "--backbone", "tiny-multilevel", "--tile", "24", "--no-progress",
                "--out", str(out), *extra]

    _run(args(tmp_path / "ref.npz"))
    res = _run(args(tmp_path / "f.zarr", "--chunk-images", "3", "--cache",
                    str(tmp_path / "cache")))
    assert "weights=random:seed=0" in res.output
    a, b = load_dataset(tmp_path / "f.zarr"), load_npz(tmp_path / "ref.npz")
    assert a.meta["features"] == b.meta["features"] and a.meta["tiler"] == b.meta["tiler"]
    np.testing.assert_array_equal(a.bags.offsets, b.bags.offsets)
    np.testing.assert_array_equal(a.bags.instance_meta["coords"], b.bags.instance_meta["coords"])
    np.testing.assert_allclose(a.bags.instances, b.bags.instances, rtol=1e-5, atol=1e-6)
    assert list((tmp_path / "cache").rglob("*.npz"))
