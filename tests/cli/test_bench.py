"""``mimlkit bench`` / ``report``: config suites, registry-driven selection, Dask = loky."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from mimlkit.cli import app
from mimlkit.evaluation import bench
from mimlkit.registry import _REGISTRY, list_learners, register_learner

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory):
    from mimlkit.datasets import make_miml_bags, save_npz

    ds = make_miml_bags(n_bags=48, n_labels=3, n_features=5, random_state=1)
    path = tmp_path_factory.mktemp("benchdata") / "tiny.npz"
    save_npz(ds, path)
    return path


def _yaml(tmp_path, data, **extra):
    cfg = tmp_path / "suite.yaml"
    lines = [f"name: tiny\ndataset: {data}\nprotocol: repeat:2\nseed: 3\n",
             "metrics: [hamming_loss, average_precision, ranking_loss, per_label_ap]\n",
             "learners:\n  - pooled-linear\n",
             "  - {name: pooled-linear, params: {pool: max, C: 0.5}, label: pooled-max}\n"]
    for k, v in extra.items():
        lines.append(f"{k}: {v}\n")
    cfg.write_text("".join(lines))
    return cfg


def test_bench_config_yaml_end_to_end(tiny_npz, tmp_path):
    cfg = _yaml(tmp_path, tiny_npz)
    out = tmp_path / "run"
    r = runner.invoke(app, ["bench", "--config", str(cfg), "--out", str(out)],
                      catch_exceptions=False)
    assert r.exit_code == 0, r.output
    data = json.loads((out / "results.json").read_text())
    assert data["format"] == "mimlkit-results" and data["suite"] == "tiny"
    env = data["environment"]
    assert env["versions"]["numpy"] and env["machine"]["n_cpus"] and env["seeds"]["split"] == 3
    assert "mimlkit bench" in data["command"] or data["command"]
    assert data["learners"]["pooled-max"]["params"] == {"pool": "max", "C": 0.5,
                                                        "random_state": 3}
    t = pd.DataFrame(data["rows"])
    assert set(t["learner"]) == {"pooled-linear", "pooled-max"}
    assert t["split"].nunique() == 2
    # the report's table matches the JSON
    md = (out / "report" / "summary.md").read_text()
    for learner in ("pooled-linear", "pooled-max"):
        v = t[(t.learner == learner) & (t.metric == "average_precision")]["value"]
        cell = f"{v.mean():.3f} ± {v.std(ddof=1):.3f}"
        line = next(ln for ln in md.splitlines() if ln.startswith(f"| {learner} |"))
        assert cell in line
    html = (out / "report" / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3
    # regenerate from results.json alone
    r = runner.invoke(app, ["report", str(out / "results.json"), "--out", str(tmp_path / "r2")],
                      catch_exceptions=False)
    assert r.exit_code == 0
    assert (tmp_path / "r2" / "summary.md").read_text().split("## Summary")[1] == \
        md.split("## Summary")[1]


def test_bench_toml_and_config_errors(tiny_npz, tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text(f'name = "t"\ndataset = "{tiny_npz}"\nprotocol = "holdout"\n'
                   'learners = ["pooled-linear"]\nmetrics = ["average_precision"]\n')
    r = runner.invoke(app, ["bench", "--config", str(cfg), "--out", str(tmp_path / "o")])
    assert r.exit_code == 0, r.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nlearnerz: [a]\n")
    r = runner.invoke(app, ["bench", "--config", str(bad)])
    assert r.exit_code == 2 and "unknown key(s) ['learnerz']" in r.output
    r = runner.invoke(app, ["bench", "--suite", "nope"])
    assert r.exit_code == 2 and "unknown suite 'nope'" in r.output
    r = runner.invoke(app, ["bench", "--suite", "scene"])
    assert r.exit_code == 2 and "--data" in r.output
    r = runner.invoke(app, ["bench"])
    assert r.exit_code == 2 and "exactly one of" in r.output


def test_synthetic_suite_is_registry_driven():
    cfg = bench.get_suite("synthetic")
    entries, skipped = bench._select_learners(cfg, None)
    names = {e.name for e in entries}
    demo = set(cfg.demo_overrides)
    assert names == set(list_learners(quick=True, available=True)) | (
        demo & set(list_learners(available=True)))
    for name in list_learners(quick=False):
        assert (name in skipped) != (name in demo)
    register_learner("zz-test-dummy", "mimlkit.learners.pooled:PooledLinear",
                     family="baseline", quick=True)
    try:
        entries, _ = bench._select_learners(cfg, None)
        assert "zz-test-dummy" in {e.name for e in entries}
    finally:
        del _REGISTRY["zz-test-dummy"]


def test_synthetic_suite_overrides_apply():
    cfg = bench.get_suite("synthetic")
    est, kind, params = bench._build(bench.LearnerEntry("pooled-linear"), cfg)
    assert kind == "bags" and est.n_jobs == 1 and est.random_state == cfg.seed
    with pytest.raises(ValueError, match="unknown parameter"):
        bench._build(bench.LearnerEntry("pooled-linear", {"nope": 1}), cfg)


def test_single_positive_wrapper():
    from mimlkit.learners.pooled import PooledLinear

    rng = np.random.default_rng(0)
    X = [rng.normal(size=(3, 4)) for _ in range(40)]
    Y = (rng.random((40, 3)) > 0.4).astype(np.int8)
    Y[Y.sum(1) == 0, 0] = 1
    seen = {}

    class Spy(PooledLinear):
        def fit(self, X, Y):
            # the first call is the wrapper's; later ones are threshold-calibration clones
            seen.setdefault("Y", np.asarray(Y))
            return super().fit(X, Y)

    w = bench.SinglePositiveTraining(Spy(), unobserved="keep", random_state=5).fit(X, Y)
    Ys = seen["Y"]
    assert ((Ys == 1).sum(1) == 1).all() and set(np.unique(Ys)) == {-1, 1}
    assert (Y[Ys == 1] == 1).all()  # the kept positive is a true one
    assert w.decision_function(X).shape == (40, 3)
    # "assume negative" baseline: the same single positive, everything else 0
    seen.clear()
    bench.SinglePositiveTraining(Spy(), random_state=5).fit(X, Y)
    np.testing.assert_array_equal(seen["Y"], np.where(Ys == 1, 1, 0))
    with pytest.raises(ValueError, match="unobserved must be"):
        bench.SinglePositiveTraining(Spy(), unobserved="drop").fit(X, Y)


def test_spmll_suite_selection():
    cfg = bench.get_suite("spmll")
    entries, skipped = bench._select_learners(cfg, None)
    keys = [e.key for e in entries]
    assert "pooled-linear" in keys
    if "multilabel-head" in list_learners(available=True):
        assert "head-an" in keys and "multilabel-head" not in keys
        from mimlkit.datasets import make_miml_bags

        ds = make_miml_bags(n_bags=20, n_labels=3, random_state=0)
        e = next(e for e in entries if e.key == "head-epr") if "head-epr" in keys else None
        if e is not None:
            est, _, params = bench._build(e, cfg, ds)
            assert est.unobserved == "keep"
            assert params["loss_params"]["expected_num_pos"] == pytest.approx(
                (ds.Y == 1).sum(1).mean())
    est, _, _ = bench._build(bench.LearnerEntry("pooled-linear"), cfg)
    assert isinstance(est, bench.SinglePositiveTraining) and est.unobserved == "negative"


def test_make_splitter_train_size():
    s = bench.make_splitter("holdout", train_size=0.75, seed=1)
    tr, te = next(iter(s.split(np.zeros((40, 1)), np.zeros((40, 1)))))
    assert len(tr) == 30 and len(te) == 10
    s = bench.make_splitter("repeat:4", train_size=0.5, seed=1)
    splits = list(s.split(np.zeros((40, 1)), np.zeros((40, 1))))
    assert len(splits) == 4 and all(len(tr) == 20 for tr, _ in splits)
    with pytest.raises(ValueError, match="does not apply"):
        bench.make_splitter("kfold:3", train_size=0.5)


def test_dask_backend_matches_loky(tiny_npz, tmp_path):
    """The same suite on a 2-worker LocalCluster gives identical metric values."""
    pytest.importorskip("dask.distributed")
    cfg = bench.load_suite_config(_yaml(tmp_path, tiny_npz))
    cfg.learners = cfg.learners[1:]  # one learner x 2 splits keeps the cluster run short
    res = {}
    for backend in ("loky", "dask"):
        out = bench.run_suite(cfg, jobs=2, backend=backend, out_dir=tmp_path / backend,
                              report=False)
        data = json.loads(out.results_path.read_text())
        assert data["environment"]["backend"] == backend
        t = pd.DataFrame(data["rows"]).sort_values(["learner", "split", "metric", "label"],
                                                   na_position="first")
        res[backend] = t[["learner", "split", "metric", "label", "value"]].reset_index(
            drop=True)
    assert len(res["loky"]) > 10
    pd.testing.assert_frame_equal(res["loky"], res["dask"])


def test_cli_bench_dask_bad_scheduler(tiny_npz, tmp_path):
    cfg = _yaml(tmp_path, tiny_npz)
    r = runner.invoke(app, ["bench", "--config", str(cfg), "--backend", "ray"])
    assert r.exit_code == 2 and re.search(r"--backend must be loky or dask", r.output)
