"""``benchmarks/msrc_regions.py`` (seed 001 Table 1, MSRC v2 rows of the bag learners).

Runs the script's ``main`` on a tiny MSRC-v2-style folder written in ``tmp_path`` (images,
``newsegmentations_mats/<stem>_GT.mat`` and ``labels.csv``) with 2 splits, results into
``tmp_path``; never touches the real data or ``benchmarks/results``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

LABELS = ["building", "grass", "sky"]
COLOURS = {1: (120, 60, 40), 2: (40, 160, 40), 3: (90, 140, 230)}


@pytest.fixture(scope="module")
def script(load_benchmark):
    return load_benchmark("msrc_regions")


def _write_msrc(root: Path, n: int = 18, seed: int = 0) -> Path:
    """n 32 x 48 images: 1-3 horizontal bands, each a segment of one class (colour + noise),
    plus a void bottom strip (no class)."""
    rng = np.random.default_rng(seed)
    (root / "images_png").mkdir(parents=True)
    (root / "newsegmentations_mats").mkdir()
    rows = ["image," + ",".join(LABELS)]
    for i in range(n):
        k = 1 + i % 3
        classes = sorted(rng.choice([1, 2, 3], size=k, replace=False).tolist())
        seg = np.full((32, 48), k + 1, dtype=np.uint8)  # last segment = void
        img = rng.integers(0, 40, (32, 48, 3)).astype(np.int64)
        edges = np.linspace(0, 28, k + 1).astype(int)
        for s, c in enumerate(classes):
            seg[edges[s]:edges[s + 1]] = s + 1
            img[edges[s]:edges[s + 1]] += COLOURS[c]
        stem = f"{i}_s"
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(
            root / "images_png" / f"{stem}.png")
        savemat(root / "newsegmentations_mats" / f"{stem}_GT.mat",
                {"newseg": seg, "newlabels": np.array([classes], dtype=np.uint8)})
        rows.append(f"{stem}.png," + ",".join(str(int(c + 1 in classes)) for c in range(3)))
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_published_table_complete(script):
    assert set(script.PUBLISHED) == set(script.LEARNERS)
    for row in script.PUBLISHED.values():
        assert set(row) == set(script.METRICS)
    assert script.PUBLISHED["dba"]["average_precision"][0] == pytest.approx(.326)
    assert script.PUBLISHED["kisar"]["average_precision"][0] == pytest.approx(.666)
    assert script.PUBLISHED["ranklsim"]["average_precision"][0] == pytest.approx(.687)


def test_skips_without_data(script, tmp_path, capsys):
    out = tmp_path / "res"
    assert script.main(["--data", str(tmp_path / "absent"), "--results-dir", str(out)]) == 0
    assert "skipping: MSRC v2 data not found" in capsys.readouterr().out
    assert not out.exists()


def test_runs_on_tiny_region_bags_and_merges(script, tmp_path):
    data = _write_msrc(tmp_path / "msrc")
    out = tmp_path / "res"
    common = ["--data", str(data), "--repeats", "2", "--n-jobs", "1", "--results-dir", str(out),
              "--min-region-pixels", "20", "--name", "tiny"]
    assert script.main(common + ["--learners", "mimlknn", "ranklsim"]) == 0
    res = json.loads((out / "tiny.json").read_text())
    assert res["learners"] == ["mimlknn", "ranklsim"]
    assert res["dataset"]["n_bags"] == 18 and res["dataset"]["n_features"] == 40
    assert res["dataset"]["n_instances"] == sum(1 + i % 3 for i in range(18))
    for n in ("mimlknn", "ranklsim"):
        assert res["results"][n]["average_precision"]["n_splits"] == 2
        assert set(res["difference"][n]) == set(script.METRICS)
    assert not res["errors"]
    assert set(res["timing_one_split"]) == {"mimlknn", "ranklsim"}
    # merge: a second run adds dba and keeps the earlier rows
    assert script.main(common + ["--learners", "dba", "--merge", "--no-timing"]) == 0
    res = json.loads((out / "tiny.json").read_text())
    assert res["learners"] == ["mimlknn", "ranklsim", "dba"]
    md = (out / "tiny.md").read_text()
    assert "*dba published* | 0.326 ± 0.016" in md
    assert "Descriptors differ from the paper's" in md
    assert set(res["sources"]) == {"mimlknn", "ranklsim", "dba"}
    # a different protocol is refused
    with pytest.raises(SystemExit, match="different protocol"):
        script.main(common[:2] + ["--repeats", "3"] + common[4:]
                    + ["--learners", "dba", "--merge", "--no-timing"])
