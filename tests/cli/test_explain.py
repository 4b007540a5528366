"""``mimlkit predict --explain OUT [--heatmaps DIR]``: instance attributions (CSV) and heatmaps."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mimlkit.cli import app

runner = CliRunner()


def _run(args):
    return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def tiles_npz(tmp_path_factory) -> Path:
    """12 synthetic 48x48 images, 3x3 tiles of 16 px: tile descriptors + coords + images."""
    from mimlkit.datasets import make_miml_images, save_npz

    ds = make_miml_images(n_images=12, n_labels=3, image_size=48, tile_size=16,
                          random_state=0)
    path = tmp_path_factory.mktemp("explain_data") / "tiles.npz"
    save_npz(ds, path)
    return path


@pytest.fixture(scope="module")
def mimlfast_model(tiles_npz, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("explain_model") / "mimlfast"
    r = _run(["fit", "--data", tiles_npz, "-l", "mimlfast", "-p", "n_epochs=3", "--seed", 0,
              "--out", out])
    assert r.exit_code == 0, r.output
    return out


def _read(path: Path) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(path.open(newline="")))
    return rows[0], rows[1:]


def test_explain_csv_mimlfast(tiles_npz, mimlfast_model, tmp_path):
    from mimlkit.datasets import load_dataset

    ds = load_dataset(tiles_npz)
    plain, pred, exp = tmp_path / "plain.csv", tmp_path / "pred.csv", tmp_path / "inst.csv"
    assert _run(["predict", "--model", mimlfast_model, "--data", tiles_npz,
                 "--out", plain]).exit_code == 0
    r = _run(["predict", "--model", mimlfast_model, "--data", tiles_npz, "--out", pred,
              "--explain", exp])
    assert r.exit_code == 0, r.output
    assert pred.read_text() == plain.read_text()  # the predictions are unchanged
    head, rows = _read(exp)
    names = list(ds.label_names)
    assert head == ["bag_id", "instance", "tile_y", "tile_x", "tile_size", *names]
    assert len(rows) == ds.bags.n_instances
    S = np.array([[float(v) for v in r_[5:]] for r_ in rows])
    assert S.shape == (ds.bags.n_instances, len(names)) and np.isfinite(S).all()
    # instance index within the bag, bag ids as in the predictions, coordinates as stored
    sizes = ds.bags.sizes
    assert [int(r_[1]) for r_ in rows] == [j for n in sizes for j in range(n)]
    _, prow = _read(pred)
    assert [r_[0] for r_ in rows] == [p[0] for p, n in zip(prow, sizes) for _ in range(n)]
    np.testing.assert_array_equal(np.array([[int(r_[2]), int(r_[3])] for r_ in rows]),
                                  ds.bags.instance_meta["coords"])
    assert {r_[4] for r_ in rows} == {"16"}
    # MIMLfast: f_l(X) = max over instances of f_l(x); decision = f_l(X) - f_dummy(X), so
    # (instance max - decision score) is the same for every label of a bag
    bag_max = np.maximum.reduceat(S, ds.bags.offsets[:-1], axis=0)
    D = np.array([[float(v) for v in p[2:]] for p in prow])
    gap = bag_max - D
    np.testing.assert_allclose(gap, np.repeat(gap[:, :1], len(names), axis=1), atol=1e-4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inst.csv", "plain.csv", "pred.csv"]


def test_explain_refused_without_instance_scores(tiles_npz, tmp_path):
    model = tmp_path / "pl"
    assert _run(["fit", "--data", tiles_npz, "-l", "pooled-linear", "--out", model]
                ).exit_code == 0
    pred, exp = tmp_path / "pred.csv", tmp_path / "inst.csv"
    r = runner.invoke(app, ["predict", "--model", str(model), "--data", str(tiles_npz),
                            "--out", str(pred), "--explain", str(exp)],
                      env={"COLUMNS": "1000"})
    assert r.exit_code == 2
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, r.output
    assert "pooled-linear" in lines[0] and "mimlfast" in lines[0]
    assert "Traceback" not in r.output
    assert not exp.exists() and not pred.exists()  # refused before anything is written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pl"]


def test_heatmaps_written(tiles_npz, mimlfast_model, tmp_path):
    pytest.importorskip("matplotlib")
    hm = tmp_path / "hm"
    r = _run(["predict", "--model", mimlfast_model, "--data", tiles_npz,
              "--out", tmp_path / "pred.csv", "--explain", tmp_path / "inst.csv",
              "--heatmaps", hm, "--max-heatmaps", 2, "--heatmap-labels", 2])
    assert r.exit_code == 0, r.output
    pngs = sorted(hm.iterdir())
    assert [p.name for p in pngs] == ["0000_0.png", "0001_1.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_heatmap_grid_and_fallback():
    pytest.importorskip("matplotlib")
    from mimlkit.reporting.heatmaps import bag_heatmap, infer_tile_size, tile_grid

    coords = np.array([[0, 0], [0, 8], [8, 0], [8, 8], [16, 16]])
    assert infer_tile_size(coords) == 8
    grid, origin, cell = tile_grid(np.arange(5.0), coords)
    assert origin == (0.0, 0.0) and cell == 8 and grid.shape == (3, 3)
    assert grid[0, 1] == 1 and grid[2, 2] == 4 and np.isnan(grid[0, 2])
    # overlapping tiles (16 px tiles, stride 8): each covers 2x2 cells, maximum kept
    grid, _, cell = tile_grid(np.arange(5.0), coords, tile_size=16)
    assert cell == 8 and grid.shape == (4, 4) and grid[1, 1] == 3 and grid[3, 3] == 4
    S = np.random.default_rng(0).random((7, 3))
    fig = bag_heatmap(S, ["a", "b", "c"], top_k=2)
    assert "square grid" in fig._suptitle.get_text() and len(fig.axes) == 4  # 2 + colorbars
    fig = bag_heatmap(S[:5], ["a", "b", "c"], coords=coords, image=np.zeros((24, 24, 3)),
                      labels=[1])
    assert "square grid" not in fig._suptitle.get_text()
    import matplotlib.pyplot as plt

    plt.close("all")


def test_report_explain_section(tiles_npz, mimlfast_model, tmp_path):
    pytest.importorskip("matplotlib")
    exp = tmp_path / "inst.csv"
    assert _run(["predict", "--model", mimlfast_model, "--data", tiles_npz,
                 "--out", tmp_path / "pred.csv", "--explain", exp]).exit_code == 0
    rows = [dict(learner="mimlfast", split=0, metric="average_precision", label=None,
                 value=0.5, fit_seconds=0.1, predict_seconds=0.01, error=None)]
    res = tmp_path / "results.json"
    res.write_text(json.dumps({"format": "mimlkit-results", "version": 1, "rows": rows}))
    r = _run(["report", res, "--out", tmp_path / "rep", "--explain", exp])
    assert r.exit_code == 0, r.output
    html = (tmp_path / "rep" / "report.html").read_text()
    assert "Instance attributions" in html and html.count("alt='bag ") == 6
    assert (tmp_path / "rep" / "figures" / "explain_0.png").is_file()


def test_meanmil_instance_logits_average_to_bag_logit(tiles_npz, tmp_path):
    pytest.importorskip("torch")
    model, pred, exp = tmp_path / "mm", tmp_path / "pred.csv", tmp_path / "inst.csv"
    r = _run(["fit", "--data", tiles_npz, "-l", "meanmil", "-p", "max_epochs=2",
              "-p", "hidden=8", "-p", "device=cpu", "--seed", 0, "--out", model])
    assert r.exit_code == 0, r.output
    r = _run(["predict", "--model", model, "--data", tiles_npz, "--out", pred,
              "--explain", exp])
    assert r.exit_code == 0, r.output
    head, rows = _read(exp)
    from mimlkit.datasets import load_dataset

    bags = load_dataset(tiles_npz).bags
    S = np.array([[float(v) for v in r_[5:]] for r_ in rows])
    assert S.shape == (bags.n_instances, 3) and np.isfinite(S).all()
    _, prow = _read(pred)
    D = np.array([[float(v) for v in p[2:]] for p in prow])
    # meanmil: default instance score = instance logit; bag logit = their mean
    mean = np.add.reduceat(S, bags.offsets[:-1], axis=0) / bags.sizes[:, None]
    np.testing.assert_allclose(mean, D, rtol=1e-4, atol=1e-4)
