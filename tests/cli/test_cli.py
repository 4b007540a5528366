"""The ``mimlkit`` command line: datasets info, learners, evaluate, fit, predict, errors."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from mimlkit.cli import app, parse_param, parse_params

runner = CliRunner()
MIMLKIT = [sys.executable, "-m", "mimlkit.cli"]


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory) -> Path:
    from mimlkit.datasets import make_miml_bags, save_npz

    ds = make_miml_bags(n_bags=45, n_labels=3, n_features=5, random_state=0)
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    save_npz(ds, path)
    return path


def _run(args, **kw):
    return runner.invoke(app, args, catch_exceptions=False, **kw)


# ----------------------------------------------------------------------------- params
def test_parse_param_literals():
    assert parse_param("C=1") == ("C", 1)
    assert parse_param("C=0.5") == ("C", 0.5)
    assert parse_param("t_criterion=false") == ("t_criterion", False)
    assert parse_param("x=None") == ("x", None)
    assert parse_param("pool=max") == ("pool", "max")
    assert parse_param("sizes=[1, 2]") == ("sizes", [1, 2])
    assert parse_param("name='a=b'") == ("name", "a=b")
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_param("C")


def test_parse_params_routing():
    out = parse_params(["C=2", "pooled-linear.pool=max"], ["pooled-linear"])
    assert out == {"pooled-linear": {"C": 2, "pool": "max"}}
    with pytest.raises(ValueError, match="no selected learner has a parameter 'nope'"):
        parse_params(["nope=1"], ["pooled-linear"])
    with pytest.raises(ValueError, match="not among the --learner"):
        parse_params(["mimlsvm.C=1"], ["pooled-linear"])


# ----------------------------------------------------------------------------- datasets info
def test_datasets_info_toy_arff(data_root):
    r = _run(["datasets", "info", str(data_root / "miml_scene" / "miml_04_data.arff")])
    assert r.exit_code == 0, r.output
    assert "11 bags" in r.output and "99 instances" in r.output and "15 features" in r.output
    for name in ("desert", "mountains", "sea", "sunset", "trees"):
        assert name in r.output


@pytest.mark.slow
def test_datasets_info_scene(data_root):
    r = _run(["datasets", "info", str(data_root / "miml_scene" / "miml_03_data.arff")])
    assert r.exit_code == 0
    assert "2000 bags, 18,000 instances, 15 features, 5 labels" in r.output
    for c in ("409", "458", "580", "465", "560"):
        assert c in r.output


def test_datasets_info_npz_counts(tiny_npz):
    from mimlkit.datasets import load_dataset

    ds = load_dataset(tiny_npz)
    r = _run(["datasets", "info", str(tiny_npz)])
    assert r.exit_code == 0
    assert f"{len(ds)} bags" in r.output
    for name, c in zip(ds.label_names, (ds.Y == 1).sum(0)):
        line = next(ln for ln in r.output.splitlines() if name in ln and "│" in ln)
        assert str(int(c)) in line


def test_learners_lists_registry():
    r = _run(["learners", "--no-check"])
    assert r.exit_code == 0
    for name in ("pooled-linear", "mimlsvm", "bmiml"):
        assert name in r.output
    r = _run(["learners", "--family", "baseline"])
    assert "pooled-linear" in r.output and "yes" in r.output and "mimlsvm" not in r.output


# ----------------------------------------------------------------------------- errors
def test_bad_input_one_line_exit_2(tmp_path):
    r = runner.invoke(app, ["datasets", "info", str(tmp_path / "missing.arff")])
    assert r.exit_code == 2
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "missing.arff" in lines[0]
    assert "Traceback" not in r.output


def test_unknown_learner_exit_2(tiny_npz, tmp_path):
    r = runner.invoke(app, ["evaluate", "--data", str(tiny_npz), "--learner", "nope",
                            "--out", str(tmp_path / "r.json")])
    assert r.exit_code == 2
    assert "unknown learner 'nope'" in r.output
    assert not (tmp_path / "r.json").exists()


def test_debug_shows_traceback(tmp_path):
    r = runner.invoke(app, ["--debug", "datasets", "info", str(tmp_path / "missing.arff")])
    assert r.exit_code != 0 and r.exit_code != 2
    assert isinstance(r.exception, (ValueError, FileNotFoundError))


def test_entry_point_subprocess(tmp_path):
    env = {**os.environ, "COLUMNS": "200"}
    p = subprocess.run([*MIMLKIT, "datasets", "info", str(tmp_path / "x.arff")],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 2
    err = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(err) == 1 and "x.arff" in err[0] and p.stdout == ""
    p = subprocess.run([*MIMLKIT, "--debug", "datasets", "info", str(tmp_path / "x.arff")],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 1 and "Traceback" in p.stderr
    p = subprocess.run([*MIMLKIT, "--version"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.startswith("mimlkit ")


def test_import_does_not_load_heavy_modules():
    code = ("import sys, mimlkit.cli; bad=[m for m in ('torch','sklearn','pandas',"
            "'matplotlib') if m in sys.modules]; print(bad)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.stdout.strip() == "[]", p.stdout + p.stderr


# ----------------------------------------------------------------------------- fit / predict
def test_fit_predict_round_trip(tiny_npz, tmp_path):
    model = tmp_path / "model"
    r = _run(["fit", "--data", str(tiny_npz), "--learner", "pooled-linear", "--param", "C=0.5",
              "--out", str(model)])
    assert r.exit_code == 0, r.output
    cfg = json.loads((model / "config.json").read_text())
    assert cfg["params"]["C"] == 0.5 and cfg["metadata"]["learner"] == "pooled-linear"
    out = tmp_path / "pred.csv"
    r = _run(["predict", "--model", str(model), "--data", str(tiny_npz), "--out", str(out)])
    assert r.exit_code == 0, r.output
    rows = list(csv.reader(out.open()))
    from mimlkit import persistence
    from mimlkit.datasets import load_dataset

    ds = load_dataset(tiny_npz)
    assert rows[0] == ["bag_id", "predicted", *ds.label_names]
    assert len(rows) == len(ds) + 1
    est = persistence.load(model)
    S = est.decision_function(ds.bags)
    np.testing.assert_allclose(np.array([[float(v) for v in r[2:]] for r in rows[1:]]), S,
                               rtol=1e-5, atol=1e-6)
    P = est.predict(ds.bags)
    for r_, p in zip(rows[1:], P):
        assert r_[1] == "|".join(n for n, v in zip(ds.label_names, p) if v)
        assert r_[1]  # T-criterion: never empty
    assert sorted(x.name for x in tmp_path.iterdir()) == ["model", "pred.csv"]  # no temp files


def test_predict_missing_model_exit_2(tiny_npz, tmp_path):
    r = runner.invoke(app, ["predict", "--model", str(tmp_path / "none"), "--data",
                            str(tiny_npz), "--out", str(tmp_path / "p.csv")])
    assert r.exit_code == 2 and "not found" in r.output
    assert not (tmp_path / "p.csv").exists()


# ----------------------------------------------------------------------------- evaluate
def test_evaluate_end_to_end(tiny_npz, tmp_path):
    out = tmp_path / "res" / "results.json"
    r = _run(["evaluate", "--data", str(tiny_npz), "--learner", "pooled-linear",
              "--param", "C=0.3", "--protocol", "repeat:2", "--metrics",
              "hamming_loss,average_precision,per_label_ap", "--out", str(out)])
    assert r.exit_code == 0, r.output
    data = json.loads(out.read_text())
    assert data["format"] == "mimlkit-results"
    rows = data["rows"]
    assert {row["learner"] for row in rows} == {"pooled-linear"}
    assert {row["metric"] for row in rows} >= {"hamming_loss", "average_precision"}
    assert len({row["split"] for row in rows}) == 2
    md = out.with_suffix(".md").read_text()
    assert "pooled-linear" in md and "average_precision ↑" in md and "hamming_loss ↓" in md
    ap = [row["value"] for row in rows if row["metric"] == "average_precision"]
    assert all(0 < v <= 1 for v in ap)
    assert "mimlkit evaluate" in data["command"] or data["command"]
