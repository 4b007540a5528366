"""mimlkit.reporting.cd_diagram: the Demšar-style critical-difference diagram."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mimlkit.evaluation.stats import nemenyi_cd
from mimlkit.reporting.cd_diagram import plot_cd_diagram

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _size(path):
    import matplotlib.image as mpimg

    img = mpimg.imread(path)
    return img.shape[1], img.shape[0]


def test_writes_png(tmp_path):
    ranks = {"bmiml": 1.6, "mimlsvm": 2.2, "mimlknn": 2.9, "prior": 4.7, "pooled-linear": 3.6}
    cd = nemenyi_cd(5, 6)
    out = plot_cd_diagram(ranks, cd, tmp_path / "sub" / "cd.png", title="AP, 6 datasets")
    assert out == tmp_path / "sub" / "cd.png"
    data = out.read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 5000
    assert not list((tmp_path / "sub").glob("*.part"))
    w, h = _size(out)
    assert w > h > 100


def test_scales_with_learners_and_names(tmp_path):
    rng = np.random.default_rng(0)
    names = [f"learner-{i:02d}" for i in range(20)]
    ranks = dict(zip(names, rng.uniform(1, 20, 20)))
    ranks["learner-00"] = ranks["learner-01"]  # tied ranks are fine
    small = plot_cd_diagram({"a": 1.2, "b": 1.8}, 0.9, tmp_path / "small.png")
    big = plot_cd_diagram(ranks, nemenyi_cd(20, 9), tmp_path / "big.png")
    (ws, hs), (wb, hb) = _size(small), _size(big)
    assert wb > ws and hb > hs  # longer names, more learners -> larger figure
    # cd = 0 (no bar) and a CD longer than the axis are drawn too
    plot_cd_diagram({"a": 1.0, "b": 2.0, "c": 3.0}, 0.0, tmp_path / "zero.png")
    plot_cd_diagram({"a": 1.0, "b": 2.0}, 5.0, tmp_path / "long.svg")
    assert (tmp_path / "long.svg").read_text().lstrip().startswith("<?xml")


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match="at least 2"):
        plot_cd_diagram({"a": 1.0}, 1.0, tmp_path / "x.png")
    with pytest.raises(ValueError, match="not finite"):
        plot_cd_diagram({"a": 1.0, "b": math.nan}, 1.0, tmp_path / "x.png")
    with pytest.raises(ValueError, match="cd must be"):
        plot_cd_diagram({"a": 1.0, "b": 2.0}, -1.0, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
