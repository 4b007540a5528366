"""``memory_budget_mb`` of the Hausdorff learners (issue 16): a public, documented
constructor parameter (scikit-learn get_params / clone contract) that reaches the distance
engine in fit, decision_function and predict (calibration clones included), changes no
result, and the ``--memory-budget-mb MB`` option of ``mimlkit fit`` / ``evaluate``."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from sklearn.base import clone
from typer.testing import CliRunner

from mimlkit.datasets import make_miml_bags, save_npz
from mimlkit.learners.classic import _hausdorff_base
from mimlkit.learners.classic.mimlknn import MIMLkNN
from mimlkit.learners.classic.mimlnn import MIMLNN
from mimlkit.learners.classic.mimlrbf import MIMLRBF
from mimlkit.learners.classic.mimlsvm import MIMLSVM

LEARNERS = [MIMLkNN, MIMLSVM, MIMLNN, MIMLRBF]
runner = CliRunner()


@pytest.fixture(scope="module")
def data():
    ds = make_miml_bags(60, n_labels=3, n_features=5, bag_size=(2, 7), random_state=4)
    tr, te = np.arange(45), np.arange(45, 60)
    return ds.bags.take(tr), ds.Y[tr], ds.bags.take(te)


def _make(cls, **kw):
    return cls(random_state=0, **kw) if "random_state" in inspect.signature(cls).parameters \
        else cls(**kw)


# ----------------------------------------------------------------------------- parameter
@pytest.mark.parametrize("cls", LEARNERS)
def test_public_parameter_get_params_clone(cls):
    sig = inspect.signature(cls)
    assert sig.parameters["memory_budget_mb"].default == 256
    assert cls().get_params()["memory_budget_mb"] == 256
    est = cls(memory_budget_mb=32)
    assert est.get_params()["memory_budget_mb"] == 32
    assert clone(est).get_params()["memory_budget_mb"] == 32
    assert est.set_params(memory_budget_mb=8.5).memory_budget_mb == 8.5
    assert clone(est).memory_budget_mb == 8.5
    doc = inspect.getdoc(cls)
    assert "memory_budget_mb : float, default 256" in doc


@pytest.mark.parametrize("cls", LEARNERS)
@pytest.mark.parametrize("bad", [0, -1.0])
def test_nonpositive_budget_refused(cls, bad, data):
    Xtr, Ytr, _ = data
    with pytest.raises(ValueError, match="memory_budget_mb"):
        _make(cls, memory_budget_mb=bad, threshold_mode="fixed").fit(Xtr, Ytr)


@pytest.mark.parametrize("cls", LEARNERS)
def test_budget_reaches_the_engine(cls, data, monkeypatch):
    """Every distance computation of fit (calibration clones included), decision_function
    and predict gets the learner's budget; predict computes the distances only once (as
    many engine calls as decision_function)."""
    Xtr, Ytr, Xte = data
    seen: list[float] = []
    real = _hausdorff_base.hausdorff

    def spy(*args, **kw):
        seen.append(kw.get("memory_budget_mb"))
        return real(*args, **kw)

    monkeypatch.setattr(_hausdorff_base, "hausdorff", spy)
    est = _make(cls, memory_budget_mb=7.5).fit(Xtr, Ytr)  # default: calibrated (clones)
    assert len(seen) >= 4 and set(seen) == {7.5}, seen  # final fit + 3 out-of-fold clones
    seen.clear()
    est.decision_function(Xte)
    n_decision = len(seen)
    assert n_decision >= 1 and set(seen) == {7.5}
    seen.clear()
    est.predict(Xte)
    assert len(seen) == n_decision and set(seen) == {7.5}


@pytest.mark.parametrize("cls", LEARNERS)
def test_results_identical_for_8_and_512_mb(cls, data):
    Xtr, Ytr, Xte = data
    small = _make(cls, memory_budget_mb=8).fit(Xtr, Ytr)
    large = _make(cls, memory_budget_mb=512).fit(Xtr, Ytr)
    np.testing.assert_allclose(small.decision_function(Xte), large.decision_function(Xte),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(small.predict(Xte), large.predict(Xte))
    np.testing.assert_array_equal(np.asarray(small.threshold_), np.asarray(large.threshold_))


@pytest.mark.parametrize("cls", [MIMLkNN, MIMLSVM])
def test_tiny_budget_splits_and_changes_nothing(cls):
    """A budget small enough to split the bags and the learner's row blocks."""
    ds = make_miml_bags(80, n_labels=3, n_features=5, bag_size=(20, 60), random_state=1)
    Xtr, Ytr, Xte = ds.bags.take(np.arange(60)), ds.Y[:60], ds.bags.take(np.arange(60, 80))
    tiny = _make(cls, memory_budget_mb=0.01, threshold_mode="fixed").fit(Xtr, Ytr)
    assert tiny._rows_per_block(24.0 * 60) < 20
    big = _make(cls, memory_budget_mb=512, threshold_mode="fixed").fit(Xtr, Ytr)
    np.testing.assert_allclose(tiny.decision_function(Xte), big.decision_function(Xte),
                               rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory):
    ds = make_miml_bags(n_bags=30, n_labels=3, n_features=5, random_state=0)
    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    save_npz(ds, path)
    return path


def _cli(args):
    from mimlkit.cli import app

    return runner.invoke(app, [str(a) for a in args])


def _one_line_error(r, *needles):
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert r.exit_code == 2, (r.exit_code, r.output, r.exception)
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.mark.parametrize("learner", ["mimlknn", "mimlsvm"])
def test_cli_fit_sets_the_budget(tiny_npz, tmp_path, learner):
    from mimlkit import persistence

    out = tmp_path / "model"
    r = _cli(["fit", "--data", tiny_npz, "-l", learner, "--memory-budget-mb", "8", "--seed",
              "0", "--out", out])
    assert r.exit_code == 0, r.output
    assert persistence.load(out).memory_budget_mb == 8
    # the same value through --param too is accepted; a different one is refused
    r = _cli(["fit", "--data", tiny_npz, "-l", learner, "--memory-budget-mb", "8", "-p",
              "memory_budget_mb=8", "--out", tmp_path / "m2"])
    assert r.exit_code == 0, r.output
    r = _cli(["fit", "--data", tiny_npz, "-l", learner, "--memory-budget-mb", "8", "-p",
              "memory_budget_mb=16", "--out", tmp_path / "m3"])
    _one_line_error(r, "disagree", learner)


def test_cli_fit_refuses_learner_without_budget(tiny_npz, tmp_path):
    r = _cli(["fit", "--data", tiny_npz, "-l", "mimlfast", "--memory-budget-mb", "512",
              "--out", tmp_path / "m"])
    _one_line_error(r, "--memory-budget-mb", "mimlfast", "no memory_budget_mb")
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("value", ["0", "-5", "nan"])
def test_cli_fit_refuses_nonpositive_budget(tiny_npz, tmp_path, value):
    r = _cli(["fit", "--data", tiny_npz, "-l", "mimlknn", "--memory-budget-mb", value,
              "--out", tmp_path / "m"])
    _one_line_error(r, "--memory-budget-mb", "> 0")


def test_cli_evaluate_budget(tiny_npz, tmp_path, monkeypatch):
    from mimlkit.evaluation import bench

    got = {}

    def fake_run_evaluation(ds, learners, per, **kw):
        got.update(per)
        raise ValueError("stop here")  # the parameters are all this test needs

    monkeypatch.setattr(bench, "run_evaluation", fake_run_evaluation)
    r = _cli(["evaluate", "--data", tiny_npz, "-l", "mimlknn", "-l", "smipr",
              "--memory-budget-mb", "64", "--out", tmp_path / "r.json"])
    _one_line_error(r, "stop here")
    assert got == {"mimlknn": {"memory_budget_mb": 64.0}, "smipr": {"memory_budget_mb": 64.0}}
    r = _cli(["evaluate", "--data", tiny_npz, "-l", "mimlknn", "-l", "mimlfast",
              "--memory-budget-mb", "64", "--out", tmp_path / "r.json"])
    _one_line_error(r, "--memory-budget-mb", "mimlfast")


@pytest.mark.parametrize("command", ["fit", "evaluate"])
def test_cli_help_documents_the_option(command):
    import re

    r = _cli([command, "--help"])
    assert r.exit_code == 0
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", r.output).split())
    assert "--memory-budget-mb MB" in text
    assert "number > 0" in text and "memory_budget_mb" in text and "refused" in text
