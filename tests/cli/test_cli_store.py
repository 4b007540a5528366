"""``mimlkit fit`` / ``mimlkit predict`` with ``--data NAME.zarr`` (``mimlkit.cli_store``):
learners that read a bag store lazily train and score without loading it, ``partial_fit``
learners go through ``fit_from_store`` and score block by block, every other learner loads
the store as before; the model and the predictions equal those from the same bags in a
``.npz``.

The same hand-crafted ``colour-texture`` tile features are written by ``mimlkit features``
to a ``.npz`` and to a ``.zarr`` (numpy only, no CNN).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("zarr")

from mimlkit import persistence  # noqa: E402
from mimlkit.cli import app  # noqa: E402
from mimlkit.datasets import load_npz  # noqa: E402
from mimlkit.datasets.store import BagStoreWriter, StoredBags, open_store  # noqa: E402
from mimlkit.datasets.store_dataset import load_store_dataset  # noqa: E402
from mimlkit.features.input_pipeline import describe_pipeline  # noqa: E402

from .conftest import make_image_folder  # noqa: E402

runner = CliRunner()
TINY_ABMIL = ["-p", "max_epochs=2", "-p", "hidden=8", "-p", "att_dim=8",
              "-p", "batch_size=4"]


def _run(args: list[str], code: int = 0):
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == code, res.output
    return res


@pytest.fixture(scope="module")
def feats(tmp_path_factory) -> tuple[Path, Path]:
    """(features.npz, features.zarr): the same tile features of 24 small images."""
    root = make_image_folder(tmp_path_factory.mktemp("store_cli"))
    out = []
    for name in ("feats.npz", "feats.zarr"):
        _run(["features", "--images", root / "imgs", "--labels", root / "labels.csv",
              "--label-column", "Finding Labels", "--backbone", "colour-texture",
              "--tile", "16", "--no-progress", "--out", root / name])
        out.append(root / name)
    return out[0], out[1]


@pytest.fixture
def no_load(monkeypatch):
    """Make any whole-store load fail (the lazy paths must never need one)."""
    def boom(self, *a, **k):
        raise AssertionError(f"{self.path} was loaded whole")

    monkeypatch.setattr(StoredBags, "to_bags", boom)
    monkeypatch.setattr(StoredBags, "to_dataset", boom)


def _fit(data: Path, learner: str, out: Path, *extra: str):
    return _run(["fit", "--data", data, "-l", learner, "--seed", "0", "--out", out, *extra])


def _scores(model: Path, npz: Path) -> np.ndarray:
    return np.asarray(persistence.load(model).decision_function(load_npz(npz).bags))


def _meta(model: Path) -> dict:
    return json.loads((model / "config.json").read_text())


@pytest.mark.parametrize("learner, extra, tol", [("pooled-linear", [], 1e-9),
                                                 ("abmil", TINY_ABMIL, 1e-4)])
def test_fit_from_store_reads_it_lazily(feats, tmp_path, monkeypatch, no_load, learner,
                                        extra, tol):
    npz, zarr = feats
    _fit(npz, learner, tmp_path / "from_npz", *extra)
    res = _fit(zarr, learner, tmp_path / "from_store", *extra)
    assert "loaded into memory" not in res.output
    a, b = _scores(tmp_path / "from_npz", npz), _scores(tmp_path / "from_store", npz)
    np.testing.assert_allclose(b, a, rtol=tol, atol=tol)
    monkeypatch.undo()  # (no_load's patches)
    # what the model records is what the in-memory load of the store gives
    cfg = _meta(tmp_path / "from_store")
    ds = load_store_dataset(zarr)
    md = cfg["metadata"]
    assert cfg["label_names"] == ds.label_names == load_npz(npz).label_names
    assert md["pipeline"] == describe_pipeline(ds, "bags")
    assert md["pipeline"] == _meta(tmp_path / "from_npz")["metadata"]["pipeline"]
    assert (md["dataset"], md["n_bags"], md["data"]) == (ds.name, len(ds), str(zarr))
    assert md["store_training"].startswith("fit(store)")
    assert md["seed"] == 0 and md["params"] == _meta(tmp_path / "from_npz")["metadata"][
        "params"]


def test_predict_from_store_equals_npz(feats, tmp_path, no_load):
    npz, zarr = feats
    _fit(zarr, "pooled-linear", tmp_path / "m")
    outs = {}
    for name, data in (("npz", npz), ("zarr", zarr)):
        for rule in ([], ["--top-k", "1"]):
            out = tmp_path / f"{name}{len(rule)}.csv"
            _run(["predict", "--model", tmp_path / "m", "--data", data, "--out", out, *rule])
            outs[name, len(rule)] = out.read_text()
    assert outs["npz", 0] == outs["zarr", 0] and outs["npz", 2] == outs["zarr", 2]
    assert len(outs["zarr", 0].splitlines()) == 25  # header + 24 bags, ids as in the npz


def test_abmil_predict_from_store(feats, tmp_path, no_load):
    npz, zarr = feats
    _fit(zarr, "abmil", tmp_path / "m", *TINY_ABMIL)
    rows = {}
    for name, data in (("npz", npz), ("zarr", zarr)):
        _run(["predict", "--model", tmp_path / "m", "--data", data, "--out",
              tmp_path / f"{name}.csv"])
        rows[name] = [r.split(",") for r in (tmp_path / f"{name}.csv").read_text().splitlines()]
    a, b = rows["npz"], rows["zarr"]
    assert [r[:2] for r in a] == [r[:2] for r in b]  # bag ids and predicted labels
    np.testing.assert_allclose(np.array([r[2:] for r in b[1:]], dtype=float),
                               np.array([r[2:] for r in a[1:]], dtype=float), rtol=1e-4)


def test_partial_fit_learner_streams_blocks(feats, tmp_path, no_load):
    """bls: fit_from_store (a note says the learner's own threshold is kept); predict block
    by block gives the .npz path's CSV."""
    npz, zarr = feats
    res = _fit(zarr, "bls", tmp_path / "m", "-p", "n_enhancement=40")
    assert "partial_fit" in res.output and "own threshold" in res.output
    assert "fit_from_store" in _meta(tmp_path / "m")["metadata"]["store_training"]
    from mimlkit.datasets.store import fit_from_store
    from mimlkit.registry import create

    ref = fit_from_store(create("bls", n_enhancement=40, random_state=0), open_store(zarr))
    bags = load_npz(npz).bags
    np.testing.assert_allclose(_scores(tmp_path / "m", npz), ref.decision_function(bags),
                               rtol=1e-9, atol=1e-9)
    texts = []
    for data in (npz, zarr):
        _run(["predict", "--model", tmp_path / "m", "--data", data, "--out", tmp_path / "p.csv"])
        texts.append((tmp_path / "p.csv").read_text())
    assert texts[0] == texts[1]


def test_learner_without_lazy_support_loads_the_store(feats, tmp_path):
    npz, zarr = feats
    res = _fit(zarr, "mimlknn", tmp_path / "from_store")
    assert "loaded into memory" in res.output
    _fit(npz, "mimlknn", tmp_path / "from_npz")
    np.testing.assert_allclose(_scores(tmp_path / "from_store", npz),
                               _scores(tmp_path / "from_npz", npz))
    texts = []
    for data in (npz, zarr):
        _run(["predict", "--model", tmp_path / "from_store", "--data", data, "--out",
              tmp_path / "p.csv"])
        texts.append((tmp_path / "p.csv").read_text())
    assert texts[0] == texts[1]


def _one_line_error(res, path: Path, *words: str) -> None:
    lines = [x for x in res.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    assert str(path) in lines[0]
    for w in words:
        assert w in res.output


def _small_store(path: Path, *, labels: bool = True, close: bool = True) -> Path:
    rng = np.random.default_rng(0)
    w = BagStoreWriter(path, n_features=3, label_names=["a", "b"] if labels else None)
    for i in range(4):
        w.append(rng.normal(size=(2 + i, 3)).astype(np.float32),
                 label_row=[i % 2, 1 - i % 2] if labels else None)
    if close:
        w.close()
    else:
        w.flush()  # committed but not marked complete: an interrupted writer
    return path


@pytest.mark.parametrize("learner", ["pooled-linear", "mimlknn"])
def test_incomplete_store_is_refused(tmp_path, learner):
    s = _small_store(tmp_path / "part.zarr", close=False)
    res = _run(["fit", "--data", s, "-l", learner, "--out", tmp_path / "m"], code=2)
    _one_line_error(res, s, "incomplete")


@pytest.mark.parametrize("learner", ["pooled-linear", "mimlknn"])
def test_store_without_labels_cannot_fit(tmp_path, learner):
    s = _small_store(tmp_path / "nolab.zarr", labels=False)
    res = _run(["fit", "--data", s, "-l", learner, "--out", tmp_path / "m"], code=2)
    _one_line_error(res, s, "no labels")


def test_predict_incomplete_store_is_refused(feats, tmp_path):
    npz, _ = feats
    _fit(npz, "pooled-linear", tmp_path / "m")
    s = _small_store(tmp_path / "part.zarr", close=False)
    res = _run(["predict", "--model", tmp_path / "m", "--data", s, "--out",
                tmp_path / "p.csv"], code=2)
    _one_line_error(res, s, "incomplete")


def test_store_rejects_image_reader_options(feats, tmp_path):
    _, zarr = feats
    res = _run(["fit", "--data", zarr, "-l", "pooled-linear", "-o", "tile=8", "--out",
                tmp_path / "m"], code=2)
    _one_line_error(res, zarr, "tile=")


def test_predict_unlabelled_store(tmp_path):
    """A learner that scores lazily needs no labels in the store; one that must load it is
    refused in one line naming the store."""
    lab = _small_store(tmp_path / "lab.zarr")
    nolab = _small_store(tmp_path / "nolab.zarr", labels=False)
    _fit(lab, "pooled-linear", tmp_path / "pl")
    _run(["predict", "--model", tmp_path / "pl", "--data", nolab, "--out", tmp_path / "p.csv"])
    want = tmp_path / "want.csv"
    _run(["predict", "--model", tmp_path / "pl", "--data", lab, "--out", want])
    assert (tmp_path / "p.csv").read_text() == want.read_text()
    _fit(lab, "mimlknn", tmp_path / "knn")
    res = _run(["predict", "--model", tmp_path / "knn", "--data", nolab, "--out",
                tmp_path / "q.csv"], code=2)
    _one_line_error(res, nolab, "no labels")
