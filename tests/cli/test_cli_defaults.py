"""CLI side of the data-adaptive defaults: --preset, --tune, bench --suite zoo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mimlkit.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory) -> Path:
    from mimlkit.datasets import make_miml_bags, save_npz

    ds = make_miml_bags(n_bags=60, n_labels=3, n_features=5, random_state=0)
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    save_npz(ds, path)
    return path


def test_evaluate_preset_and_tune(tiny_npz, tmp_path):
    out = tmp_path / "r.json"
    res = runner.invoke(app, ["evaluate", "--data", str(tiny_npz), "-l", "pooled-linear",
                              "--preset", "paper", "--tune", "--out", str(out)])
    assert res.exit_code == 0, res.output
    env = json.loads(out.read_text())["environment"]
    assert env["preset"] == "paper" and env["tuned"] is True
    bad = runner.invoke(app, ["evaluate", "--data", str(tiny_npz), "-l", "pooled-linear",
                              "--preset", "nope", "--out", str(tmp_path / "x.json")])
    assert bad.exit_code == 2 and "--preset must be one of" in bad.output
    assert not (tmp_path / "x.json").exists()


def test_fit_preset_paper_keeps_literal_rule(tiny_npz, tmp_path):
    from mimlkit import persistence

    res = runner.invoke(app, ["fit", "--data", str(tiny_npz), "-l", "mimlknn", "--preset",
                              "paper", "--seed", "0", "--out", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    model = persistence.load(tmp_path / "m")
    est = getattr(model, "estimator", model)
    assert est.get_params()["scale"] is None and est.get_params()["threshold_mode"] == "fixed"


def test_bench_suite_zoo_on_a_data_root(tmp_path):
    from tests.evaluation.test_tuning_zoo import _tiny_root  # noqa: PLC0415

    root = _tiny_root(tmp_path)
    out = tmp_path / "zoo"
    res = runner.invoke(app, ["bench", "--suite", "zoo", "--data", str(root), "-l", "prior",
                              "-l", "empty", "-l", "pooled-linear", "--out", str(out)])
    assert res.exit_code == 0, res.output
    md = (out / "results.md").read_text()
    assert "| pooled-linear |" in md and "scene" in md


def test_evaluate_given_test_file_and_resume(tmp_path):
    from mimlkit.datasets import make_miml_bags, save_npz

    ds = make_miml_bags(n_bags=80, n_labels=3, n_features=5, random_state=4)
    tr, te = tmp_path / "d-train.npz", tmp_path / "d-test.npz"
    save_npz(ds.subset(list(range(50))), tr)
    save_npz(ds.subset(list(range(50, 80))), te)
    out = tmp_path / "r.json"
    args = ["evaluate", "--data", str(tr), "--test", str(te), "-l", "prior", "-l",
            "pooled-linear", "--resume", "--out", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    payload = json.loads(out.read_text())
    assert payload["environment"]["protocol"] == "given test set"
    assert {r["split"] for r in payload["rows"]} == {0}
    jobs = Path(str(out) + ".jobs.jsonl")
    assert jobs.is_file() and len(jobs.read_text().splitlines()) == 1 + 2  # header + 2 jobs
    again = runner.invoke(app, args)  # every job finished: nothing refitted, same table
    assert again.exit_code == 0, again.output
    assert json.loads(out.read_text())["rows"] == payload["rows"]
