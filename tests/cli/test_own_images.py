"""Own images through the CLI: ``features`` from a ``Finding Labels`` CSV -> ``fit --seed``
-> ``predict --images``; the model carries its input pipeline and refuses other inputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mimlkit.cli import app

runner = CliRunner()


def _ok(args):
    r = runner.invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r


def _refused(args, *needles):
    r = runner.invoke(app, [str(a) for a in args])
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert r.exit_code == 2, r.output
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


def _rows(path: Path):
    return list(csv.reader(path.open()))


@pytest.fixture
def fitted(image_folder, tmp_path):
    """features (colour-texture, tile 24) -> fit --seed 0; returns (folder, npz, model)."""
    feats = tmp_path / "f.npz"
    _ok(["features", "--images", image_folder / "imgs", "--labels", image_folder / "labels.csv",
         "--label-column", "Finding Labels", "--backbone", "colour-texture", "--tile", 24,
         "--out", feats])
    model = tmp_path / "m"
    _ok(["fit", "--data", feats, "--learner", "pooled-linear", "--seed", 0, "--out", model])
    return image_folder, feats, model


def test_own_images_flow(fitted, tmp_path):
    folder, feats, model = fitted
    from mimlkit.datasets import load_npz

    ds = load_npz(feats)
    assert ds.label_names == ["Effusion", "Mass"]
    assert ds.bags.n_features == 40 and ds.bags.n_instances == 4 * len(ds)  # 48 px / 24 px
    # "No Finding" rows are empty label sets
    assert not ds.Y[::3].any() and ds.Y[1::3, 0].all()
    cfg = json.loads((model / "config.json").read_text())
    pipe = cfg["metadata"]["pipeline"]
    assert pipe["tiler"]["tile_size"] == 24 and pipe["n_features"] == 40
    assert pipe["features"]["name"] == "colour-texture"
    assert pipe["label_names"] == cfg["label_names"] == ["Effusion", "Mass"]
    assert cfg["metadata"]["seed"] == 0 and "config_sha256" in cfg

    pred = tmp_path / "p.csv"
    _ok(["predict", "--model", model, "--images", folder / "imgs", "--out", pred])
    rows = _rows(pred)
    assert rows[0] == ["bag_id", "predicted", "Effusion", "Mass"]
    assert [r[0] for r in rows[1:]] == sorted(p.name for p in (folder / "imgs").iterdir())
    # raw images re-tiled and re-described == the features file: same scores
    from mimlkit import persistence

    est = persistence.load(model)
    S = est.decision_function(ds.bags)
    np.testing.assert_allclose(np.array([[float(v) for v in r[2:]] for r in rows[1:]]), S,
                               rtol=1e-4, atol=1e-5)
    # predicting the labelled image CSV (features redone from the images) gives the same file
    pred2 = tmp_path / "p2.csv"
    _ok(["predict", "--model", model, "--data", folder / "labels.csv", "-o",
         "label_column=Finding Labels", "-o", f"image_dir={folder / 'imgs'}", "--out", pred2])
    assert pred2.read_bytes() == pred.read_bytes()


def test_no_finding_images_get_empty_predictions(fitted, tmp_path):
    """Trained with empty label sets, the T-criterion is off by default: the images with
    neither finding (every third) get an empty prediction, the others their label."""
    folder, _, model = fitted
    pred = tmp_path / "p.csv"
    _ok(["predict", "--model", model, "--images", folder / "imgs", "--out", pred])
    got = {r[0]: r[1] for r in _rows(pred)[1:]}
    for i in range(24):
        name = f"im{i:02d}." + ("png" if i % 2 else "jpg")
        want = "|".join(n for n, on in (("Effusion", i % 3 == 1 or i % 6 == 5),
                                         ("Mass", i % 3 == 2)) if on)
        assert got[name] == want, (name, got[name], want)
    # --t-criterion forces every bag to keep its top label
    _ok(["predict", "--model", model, "--images", folder / "imgs", "--t-criterion",
         "--out", pred])
    assert all(r[1] for r in _rows(pred)[1:])


def test_threshold_and_top_k(fitted, tmp_path):
    folder, _, model = fitted
    pred = tmp_path / "p.csv"
    _ok(["predict", "--model", model, "--images", folder / "imgs", "--top-k", 1, "--out", pred])
    rows = _rows(pred)[1:]
    for r in rows:  # exactly the arg-max label
        s = [float(v) for v in r[2:]]
        assert r[1] == ["Effusion", "Mass"][int(np.argmax(s))]
    # a threshold on the score scale of the CSV columns
    S = np.array([[float(v) for v in r[2:]] for r in rows])
    x = float(np.median(S))
    _ok(["predict", "--model", model, "--images", folder / "imgs", "--threshold", x,
         "--no-t-criterion", "--out", pred])
    for r, s in zip(_rows(pred)[1:], S):
        assert r[1] == "|".join(n for n, v in zip(["Effusion", "Mass"], s) if v > x)
    _ok(["predict", "--model", model, "--images", folder / "imgs", "--threshold", -1e9,
         "--top-k", 1, "--out", pred])
    assert all(len(r[1].split("|")) == 1 for r in _rows(pred)[1:])
    _refused(["predict", "--model", model, "--images", folder / "imgs", "--top-k", 0,
              "--out", pred], "--top-k")


def test_mismatched_inputs_are_refused(fitted, tmp_path):
    folder, feats, model = fitted
    out = tmp_path / "x.csv"
    _refused(["predict", "--model", model, "--images", folder / "imgs", "-o", "tile=16",
              "--out", out], "other tiling", "tile_size=24 vs 16")
    _refused(["predict", "--model", model, "--data", folder / "labels.csv", "-o",
              "label_column=Finding Labels", "-o", f"image_dir={folder / 'imgs'}", "-o",
              "tile=32", "--out", out], "other tiling", "labels.csv")
    # other label set: the same images read with the labels as the vocabulary in another order
    _refused(["predict", "--model", model, "--data", folder / "labels.csv", "-o",
              "label_column=Finding Labels", "-o", f"image_dir={folder / 'imgs'}", "-o",
              "labels=['Mass', 'Effusion']", "--out", out], "other label set")
    # other feature width: a model fitted on other features
    from mimlkit.datasets import load_npz, make_miml_bags, save_npz

    ds = load_npz(feats)
    other = make_miml_bags(n_bags=len(ds), n_labels=2, n_features=7, random_state=0)
    other.label_names = ds.label_names
    save_npz(other, tmp_path / "o.npz")
    _refused(["predict", "--model", model, "--data", tmp_path / "o.npz", "--out", out],
             "does not match")
    assert not out.exists()
    _refused(["predict", "--model", model, "--out", out], "exactly one of --data")


def test_fit_seed_gives_identical_predictions(image_folder, tmp_path):
    """Same --seed -> byte-identical prediction CSVs, with a learner that uses its seed."""
    feats = tmp_path / "f.npz"
    _ok(["features", "--images", image_folder / "imgs", "--labels",
         image_folder / "labels.csv", "--label-column", "Finding Labels", "--backbone",
         "colour-texture", "--tile", 24, "--out", feats])
    outs = []
    for k, seed in enumerate((3, 3)):
        model, pred = tmp_path / f"m{k}", tmp_path / f"p{k}.csv"
        _ok(["fit", "--data", feats, "--learner", "mimlsvm", "--seed", seed, "--out", model])
        cfg = json.loads((model / "config.json").read_text())
        assert cfg["params"]["random_state"] == seed
        _ok(["predict", "--model", model, "--images", image_folder / "imgs", "--out", pred])
        outs.append(pred.read_bytes())
    assert outs[0] == outs[1]
    # an explicit --param random_state wins over --seed
    _ok(["fit", "--data", feats, "--learner", "mimlsvm", "--seed", 3, "-p", "random_state=5",
         "--out", tmp_path / "m5"])
    assert json.loads((tmp_path / "m5" / "config.json").read_text())["params"][
        "random_state"] == 5


def test_reordered_label_names_refused_by_predict(fitted, tmp_path):
    folder, _, model = fitted
    p = model / "config.json"
    cfg = json.loads(p.read_text())
    cfg["label_names"] = cfg["label_names"][::-1]
    p.write_text(json.dumps(cfg))
    _refused(["predict", "--model", model, "--images", folder / "imgs", "--out",
              tmp_path / "x.csv"], "label_names", "config.json")
