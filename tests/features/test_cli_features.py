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
