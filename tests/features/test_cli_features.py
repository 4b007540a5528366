"""``mimlkit features``: image folder + CSV -> dataset .npz of CNN feature bags."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
from typer.testing import CliRunner  # noqa: E402


def _folder(tmp_path, n=4):
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "imgs").mkdir()
    rows = ["image,cat,dog"]
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (40, 52, 3), dtype=np.uint8)).save(
            tmp_path / "imgs" / f"im{i}.png")
        rows.append(f"im{i}.png,{i % 2},{1 - i % 2}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


def test_features_command_writes_dataset(tmp_path):
    from mimlkit.cli import app
    from mimlkit.datasets import load_npz

    d = _folder(tmp_path)
    out = tmp_path / "feats.npz"
    args = ["features", "--images", str(d / "imgs"), "--labels", str(d / "labels.csv"),
            "--backbone", "tiny-multilevel", "--tile", "24", "--stride", "16",
            "--cache", str(tmp_path / "cache"), "--out", str(out), "--no-progress"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    ds = load_npz(out)
    assert len(ds) == 4 and ds.label_names == ["cat", "dog"]
    assert ds.bags.n_features == 288 and "coords" in ds.bags.instance_meta
    assert ds.meta["features"]["backbone"] == "tiny" and ds.meta["tiler"]["tile_size"] == 24
    assert list((tmp_path / "cache").rglob("*.npz"))


def test_features_command_offline_weights_is_one_line_error(tmp_path, monkeypatch):
    from mimlkit.cli import app

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    d = _folder(tmp_path, n=2)
    res = CliRunner().invoke(app, ["features", "--images", str(d / "imgs"), "--labels",
                                   str(d / "labels.csv"), "--backbone", "resnet18",
                                   "--weights", "DEFAULT", "--out", str(tmp_path / "x.npz")])
    assert res.exit_code == 2
    assert "weights='path/to/resnet18.pth'" in " ".join(res.output.split())
    assert not (tmp_path / "x.npz").exists()


def test_features_command_memory_budget_gives_same_features(tmp_path):
    """``--memory-budget-mb`` only shrinks the forward batch: same features as without."""
    from mimlkit.cli import app
    from mimlkit.datasets import load_npz

    d = _folder(tmp_path)
    outs = []
    for extra in ([], ["--memory-budget-mb", "1"]):
        out = tmp_path / f"f{len(extra)}.npz"
        args = ["features", "--images", str(d / "imgs"), "--labels", str(d / "labels.csv"),
                "--backbone", "tiny-multilevel", "--tile", "24", "--batch-size", "64",
                "--out", str(out), "--no-progress", *extra]
        res = CliRunner().invoke(app, args)
        assert res.exit_code == 0, res.output
        outs.append(load_npz(out).bags.instances)
    np.testing.assert_allclose(outs[0], outs[1], rtol=1e-5, atol=1e-6)


def _nih_folder(tmp_path, sep="|"):
    from PIL import Image

    rng = np.random.default_rng(1)
    (tmp_path / "imgs").mkdir()
    cells = ["Effusion", f"Effusion{sep}Mass", "No Finding", "Mass", ""]
    rows = ["Image Index;Finding Labels;Patient ID" if sep != ";" else
            "Image Index,Finding Labels,Patient ID"]
    delim = ";" if sep != ";" else ","
    for i, cell in enumerate(cells):
        Image.fromarray(rng.integers(0, 255, (30, 30, 3), dtype=np.uint8)).save(
            tmp_path / "imgs" / f"x{i}.png")
        rows.append(delim.join([f"x{i}.png", cell, f"p{i // 2}"]))
    (tmp_path / "Data_Entry.csv").write_text("\n".join(rows) + "\n")
    return tmp_path


@pytest.mark.parametrize("sep", ["|", ";"])
def test_features_reads_finding_labels_csv(tmp_path, sep):
    """NIH-style CSV: --label-column with --sep-joined names; 'No Finding' and an empty cell
    are empty label sets; --group-column fills groups; hand-crafted features, no torch."""
    from mimlkit.cli import app
    from mimlkit.datasets import load_npz

    d = _nih_folder(tmp_path, sep)
    out = tmp_path / "f.npz"
    res = CliRunner().invoke(app, [
        "features", "--images", str(d / "imgs"), "--labels", str(d / "Data_Entry.csv"),
        "--label-column", "Finding Labels", "--sep", sep, "--group-column", "Patient ID",
        "--backbone", "colour-texture", "--out", str(out)])
    assert res.exit_code == 0, res.output
    ds = load_npz(out)
    assert ds.label_names == ["Effusion", "Mass"]
    assert ds.Y.tolist() == [[1, 0], [1, 1], [0, 0], [0, 1], [0, 0]]
    assert ds.groups.tolist() == ["p0", "p0", "p1", "p1", "p2"]
    # no --tile: each whole image is one instance of 40 colour/texture features
    assert ds.bags.sizes.tolist() == [1] * 5 and ds.bags.n_features == 40
    assert ds.meta["features"]["extractor"] == "colour-texture"
    # the same through the datasets layer's -o options gives the same labels
    from mimlkit.datasets import load_dataset

    ds2 = load_dataset(d / "Data_Entry.csv", image_dir=d / "imgs",
                       label_column="Finding Labels", separator=sep)
    assert ds2.label_names == ds.label_names and (ds2.Y == ds.Y).all()
    # without --label-column the label column is not 0/1: one clear line naming the file
    res = CliRunner().invoke(app, ["features", "--images", str(d / "imgs"), "--labels",
                                   str(d / "Data_Entry.csv"), "--backbone", "colour-texture",
                                   "--out", str(tmp_path / "g.npz")])
    assert res.exit_code == 2 and "Data_Entry.csv" in res.output
    assert "Traceback" not in res.output


def test_features_colour_texture_tiles_match_datasets_tile_option(tmp_path):
    """--backbone colour-texture --tile T writes what load_dataset(..., tile=T) computes."""
    from mimlkit.cli import app
    from mimlkit.datasets import load_dataset, load_npz

    d = _folder(tmp_path)
    out = tmp_path / "f.npz"
    res = CliRunner().invoke(app, ["features", "--images", str(d / "imgs"), "--labels",
                                   str(d / "labels.csv"), "--backbone", "colour-texture",
                                   "--tile", "16", "--out", str(out)])
    assert res.exit_code == 0, res.output
    got = load_npz(out)
    ref = load_dataset(d / "labels.csv", image_dir=d / "imgs", tile=16)
    np.testing.assert_allclose(got.bags.instances, ref.bags.instances, rtol=1e-6)
    assert got.meta["tiler"] == ref.meta["tiler"]
    res = CliRunner().invoke(app, ["features", "--images", str(d / "imgs"), "--labels",
                                   str(d / "labels.csv"), "--backbone", "colour-texture",
                                   "--weights", "w.pth", "--out", str(tmp_path / "g.npz")])
    assert res.exit_code == 2 and "--weights does not apply" in res.output


def test_predict_images_redoes_cnn_extraction(tmp_path):
    """A model fitted on CNN tile features re-extracts them from raw images at predict time
    (same backbone, random-init seed, tiling): the scores equal those on the features file;
    a weights file that moved is asked for, another one is refused."""
    import csv
    import json

    import torch

    from mimlkit import persistence
    from mimlkit.cli import app
    from mimlkit.datasets import load_npz

    d = _folder(tmp_path, n=6)
    feats, model, pred = tmp_path / "f.npz", tmp_path / "m", tmp_path / "p.csv"
    run = CliRunner().invoke
    res = run(app, ["features", "--images", str(d / "imgs"), "--labels", str(d / "labels.csv"),
                    "--backbone", "tiny-multilevel", "--seed", "3", "--tile", "24",
                    "--out", str(feats), "--no-progress"])
    assert res.exit_code == 0, res.output
    res = run(app, ["fit", "--data", str(feats), "-l", "pooled-linear", "--seed", "0",
                    "--out", str(model)])
    assert res.exit_code == 0, res.output
    pipe = json.loads((model / "config.json").read_text())["metadata"]["pipeline"]
    assert pipe["features"]["name"] == "cnn" and pipe["features"]["weights_id"] == "random:seed=3"
    res = run(app, ["predict", "--model", str(model), "--images", str(d / "imgs"),
                    "--device", "cpu", "--out", str(pred)])
    assert res.exit_code == 0, res.output
    S = persistence.load(model).decision_function(load_npz(feats).bags)
    rows = list(csv.reader(pred.open()))[1:]
    np.testing.assert_allclose([[float(v) for v in r[2:]] for r in rows], S, rtol=1e-3,
                               atol=1e-4)

    # weights from a file: the digest is part of the pipeline
    wfile = tmp_path / "tiny.pth"
    torch.save(_tiny_state_dict(seed=5), wfile)
    res = run(app, ["features", "--images", str(d / "imgs"), "--labels", str(d / "labels.csv"),
                    "--backbone", "tiny", "--weights", str(wfile), "--tile", "24",
                    "--out", str(feats), "--no-progress"])
    assert res.exit_code == 0, res.output
    res = run(app, ["fit", "--data", str(feats), "-l", "pooled-linear", "--out", str(model)])
    assert res.exit_code == 0, res.output
    wfile.rename(tmp_path / "moved.pth")
    res = run(app, ["predict", "--model", str(model), "--images", str(d / "imgs"),
                    "--out", str(pred)])
    assert res.exit_code == 2 and "tiny.pth" in res.output
    torch.save(_tiny_state_dict(seed=6), tmp_path / "other.pth")
    res = run(app, ["predict", "--model", str(model), "--images", str(d / "imgs"),
                    "--weights", str(tmp_path / "other.pth"), "--out", str(pred)])
    assert res.exit_code == 2 and "feature extractor differs" in res.output
    res = run(app, ["predict", "--model", str(model), "--images", str(d / "imgs"),
                    "--weights", str(tmp_path / "moved.pth"), "--out", str(pred)])
    assert res.exit_code == 0, res.output


def _tiny_state_dict(seed):
    from mimlkit.features.backbones import _build_arch

    return _build_arch("tiny", seed).state_dict()
