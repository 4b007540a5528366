"""Each input/environment problem of issue 14 gives one red line naming the file and exit 2
(or the right result): disk full, CUDA on a CPU build, Latin-1 CSV, duplicate header,
--scheduler without dask, unreachable scheduler, duplicate bag ids, EXIF orientation."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mimlkit.cli import app

runner = CliRunner()


def _one_line_error(args, *needles):
    r = runner.invoke(app, [str(a) for a in args])
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert r.exit_code == 2, (r.exit_code, r.output, r.exception)
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    assert "Traceback" not in r.output
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory) -> Path:
    from mimlkit.datasets import make_miml_bags, save_npz

    ds = make_miml_bags(n_bags=30, n_labels=3, n_features=5, random_state=0)
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    save_npz(ds, path)
    return path


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


# ----------------------------------------------------------------------------- disk full
def test_disk_full_predict_csv(tiny_npz, tmp_path, monkeypatch):
    model = tmp_path / "m"
    r = runner.invoke(app, ["fit", "--data", str(tiny_npz), "-l", "pooled-linear", "--out",
                            str(model)])
    assert r.exit_code == 0, r.output
    import mimlkit.reporting.report as rep

    monkeypatch.setattr(rep, "_atomic_write", _enospc)
    out = tmp_path / "pred.csv"
    _one_line_error(["predict", "--model", model, "--data", tiny_npz, "--out", out],
                    str(out), "No space left on device")
    assert not out.exists()


def test_disk_full_model_save(tiny_npz, tmp_path, monkeypatch):
    import skops.io

    monkeypatch.setattr(skops.io, "dump", _enospc)
    model = tmp_path / "m"
    _one_line_error(["fit", "--data", tiny_npz, "-l", "pooled-linear", "--out", model],
                    str(model), "No space left on device")
    assert not model.exists() and not list(tmp_path.glob(".m.tmp-*"))  # no debris


def test_disk_full_real_device(tmp_path):
    """/dev/full: every write fails with ENOSPC (no monkeypatching)."""
    if not Path("/dev/full").exists():
        pytest.skip("/dev/full not available on this system")
    from mimlkit.cli import writing

    with pytest.raises(OSError) as info:
        with writing("/dev/full"), open("/dev/full", "w") as f:
            f.write("x" * 10)
    assert info.value.errno == errno.ENOSPC and info.value.filename == "/dev/full"


def test_disk_full_features(tmp_path, monkeypatch, image_folder):
    import mimlkit.datasets as dsmod

    monkeypatch.setattr(dsmod, "save_npz", _enospc)
    out = tmp_path / "f.npz"
    _one_line_error(["features", "--images", image_folder / "imgs", "--labels",
                     image_folder / "labels.csv", "--label-column", "Finding Labels",
                     "--backbone", "colour-texture", "--tile", 24, "--out", out],
                    str(out), "No space left on device")


# ----------------------------------------------------------------------------- devices
def test_cuda_on_cpu_build_is_one_line(tmp_path, image_folder):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: --device cuda is valid here")
    line = _one_line_error(["features", "--images", image_folder / "imgs", "--labels",
                            image_folder / "labels.csv", "--label-column", "Finding Labels",
                            "--backbone", "tiny", "--device", "cuda", "--out",
                            tmp_path / "x.npz"], "--device cuda")
    assert "--device cpu" in line
    _one_line_error(["predict", "--model", tmp_path / "none", "--images", image_folder / "imgs",
                     "--device", "cuda:1"], "--device cuda:1")


# ----------------------------------------------------------------------------- CSV files
def _csv_folder(tmp_path, header: str, rows: list[str], encoding="utf-8") -> Path:
    from PIL import Image

    d = tmp_path / "images"
    d.mkdir()
    for name in ("a.png", "b.png", "c.png"):
        Image.fromarray(np.full((8, 8, 3), 100, np.uint8)).save(d / name)
    p = tmp_path / "labels.csv"
    p.write_bytes(("\n".join([header, *rows]) + "\n").encode(encoding))
    return p


def test_latin1_csv_is_read_with_a_warning(tmp_path):
    p = _csv_folder(tmp_path, "image,Épanchement,Masse",
                    ["a.png,1,0", "b.png,0,1", "c.png,1,1"], encoding="latin-1")
    from mimlkit.datasets import load_dataset

    with pytest.warns(UserWarning, match=r"labels\.csv: not UTF-8 .* read as Windows-1252"):
        ds = load_dataset(p)
    assert ds.label_names == ["Épanchement", "Masse"]
    r = runner.invoke(app, ["datasets", "info", str(p)])
    assert r.exit_code == 0, r.output
    assert "Épanchement" in r.output
    warn = [ln for ln in r.output.splitlines() if ln.startswith("warning:")]
    assert len(warn) == 1 and "labels.csv" in warn[0]


def test_undecodable_csv_names_the_file(tmp_path):
    p = _csv_folder(tmp_path, "image,x", ["a.png,1", "b.png,0", "c.png,1"], encoding="utf-16-le")
    _one_line_error(["datasets", "info", p], "labels.csv", "UTF-8")


def test_duplicate_csv_header(tmp_path):
    p = _csv_folder(tmp_path, "image,cat,dog,cat", ["a.png,1,0,1", "b.png,0,1,0", "c.png,1,1,1"])
    _one_line_error(["datasets", "info", p], "labels.csv", "'cat' appears twice",
                    "columns 2 and 4")


def test_duplicate_bag_ids_refused(tmp_path):
    arff = tmp_path / "dup.arff"
    arff.write_text(
        "@relation dup\n@attribute id {b1,b2}\n@attribute bag relational\n"
        "@attribute f1 numeric\n@attribute f2 numeric\n@end bag\n"
        "@attribute y1 {0,1}\n@attribute y2 {0,1}\n@data\n"
        "b1,\"1,2\\n3,4\",1,0\nb2,\"1,1\",0,1\nb1,\"0,0\",1,1\n")
    from mimlkit.datasets import load_dataset

    try:
        ds = load_dataset(arff, labels=2)
    except ValueError as exc:  # the reader itself may refuse them: then it must name both
        assert "dup.arff" in str(exc) and "b1" in str(exc)
        return
    assert ds.meta.get("bag_ids") == ["b1", "b2", "b1"]
    _one_line_error(["datasets", "info", arff, "-o", "labels=2"], "dup.arff",
                    "duplicate bag ids 'b1'")


def test_duplicate_image_rows_refused(tmp_path):
    p = _csv_folder(tmp_path, "image,cat", ["a.png,1", "b.png,0", "a.png,1"])
    _one_line_error(["datasets", "info", p], "labels.csv", "'a.png' is listed twice")


# ----------------------------------------------------------------------------- Dask
def test_scheduler_without_dask_backend(tiny_npz, tmp_path):
    _one_line_error(["evaluate", "--data", tiny_npz, "-l", "pooled-linear", "--backend", "loky",
                     "--scheduler", "tcp://127.0.0.1:1", "--out", tmp_path / "r.json"],
                    "--scheduler", "needs --backend dask")


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_unreachable_scheduler_fails_fast(tiny_npz, tmp_path):
    """--scheduler alone implies dask; nothing listening -> one line in seconds."""
    import time

    addr = f"tcp://127.0.0.1:{_closed_port()}"
    t0 = time.perf_counter()
    for cmd in (["evaluate", "--data", tiny_npz, "-l", "pooled-linear",
                 "--out", tmp_path / "r.json"], ["bench", "--suite", "synthetic"]):
        _one_line_error([*cmd, "--scheduler", addr], addr, "unreachable")
    assert time.perf_counter() - t0 < 20
    assert not (tmp_path / "r.json").exists()


def test_runner_connection_error_is_one_line(tiny_npz, tmp_path, monkeypatch):
    """Whatever the evaluation layer raises when Dask fails mid-way (an OSError such as
    ConnectionError / TimeoutError) is one line too."""
    import mimlkit.cli_models as cm
    import mimlkit.evaluation.bench as bench

    monkeypatch.setattr(cm, "check_scheduler_reachable", lambda *a, **k: None)

    def boom(*a, **k):
        raise TimeoutError("Timed out trying to connect to tcp://10.0.0.9:8786 after 30 s")

    monkeypatch.setattr(bench, "run_evaluation", boom)
    _one_line_error(["evaluate", "--data", tiny_npz, "-l", "pooled-linear", "--scheduler",
                     "tcp://10.0.0.9:8786", "--out", tmp_path / "r.json"], "10.0.0.9:8786")


# ----------------------------------------------------------------------------- images
def test_exif_orientation_applied(tmp_path):
    """A landscape-stored JPEG tagged 'rotate 90 CW' (orientation 6) loads as portrait."""
    from PIL import Image

    from mimlkit.datasets.base import ImageSet

    a = np.zeros((20, 40, 3), np.uint8)  # stored 20 high x 40 wide
    a[:, :20] = (255, 0, 0)  # left half red
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6
    p = tmp_path / "portrait.jpg"
    im.save(p, exif=exif, quality=95)
    out = ImageSet([p])[0]
    assert out.shape == (40, 20, 3)  # displayed upright: portrait
    # orientation 6 = rotate 90 degrees clockwise for display: the left half goes on top
    assert out[:18, :, 0].mean() > 200 and out[22:, :, 0].mean() < 50
    # the datasets layer (image CSV) and the tiler see the upright image
    from mimlkit.datasets.tiling import TileBagger

    tiles, coords = TileBagger(20)(out)
    assert coords.tolist() == [[0, 0], [20, 0]]


def test_disk_full_evaluate_results(tiny_npz, tmp_path, monkeypatch):
    import mimlkit.evaluation.bench as bench

    monkeypatch.setattr(bench, "write_results", _enospc)
    out = tmp_path / "r.json"
    r = runner.invoke(app, ["evaluate", "--data", str(tiny_npz), "-l", "pooled-linear",
                            "--metrics", "hamming_loss", "--out", str(out)])
    assert r.exit_code == 2 and "Traceback" not in r.output
    errors = [ln for ln in r.output.splitlines() if "error:" in ln]  # after progress lines
    assert len(errors) == 1 and str(out) in errors[0] and "No space left" in errors[0]


def test_writing_only_disk_keeps_other_errors():
    from mimlkit.cli import writing

    with pytest.raises(ConnectionError, match="scheduler gone"):
        with writing("runs/x", only_disk=True):
            raise ConnectionError("scheduler gone")
    with pytest.raises(OSError) as info:
        with writing("runs/x", only_disk=True):
            _enospc()
    assert info.value.filename == "runs/x" and "No space left" in str(info.value)
