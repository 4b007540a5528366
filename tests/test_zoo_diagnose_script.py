"""``benchmarks/zoo_diagnose.py``: refits a zoo cell as the zoo does and explains it.

Uses a generated stress set (no ``../shared`` needed) and never writes results."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def script(load_benchmark):
    return load_benchmark("zoo_diagnose")


def test_params_are_typed(script):
    assert script._params("init=zero,n_init=1,alpha=0.5") == {"init": "zero", "n_init": 1,
                                                             "alpha": 0.5}
    assert script._params("") == {}


def test_cell_reproduces_the_zoo_fit(script):
    """The cell's figures are the zoo's: same split, same per-job seed, same predictions."""
    from mimlkit.evaluation import evaluate
    from mimlkit.evaluation.results_io import _rows
    from mimlkit.evaluation.zoo import zoo_datasets

    out, md = script._cell("stress-label-noise", "pooled-linear", {})
    _, ds, split, _ = next(zoo_datasets(only=["stress-label-noise"]))
    res = evaluate(["pooled-linear"], ds, split, metrics=["hamming_loss"], progress=False,
                   random_state=0)
    hl = [r for r in _rows(res.table) if r["metric"] == "hamming_loss"
          and r.get("label") in (None, "", "all")][0]["value"]
    assert out["hamming_loss"] == pytest.approx(hl)
    Yte = np.asarray(ds.Y)[split.test_idx]
    assert out["empty_hamming_loss"] == pytest.approx(float(Yte.mean()))
    for row in out["labels"]:  # every predicted label has its counts
        assert row["test_tp"] + row["test_fp"] >= 0 and "calibration_tp" in row
    assert md[0].startswith("### stress-label-noise / pooled-linear")


def test_unknown_dataset_is_a_clear_exit(script):
    with pytest.raises(SystemExit, match="unknown zoo dataset"):
        script._data("no-such-set")
