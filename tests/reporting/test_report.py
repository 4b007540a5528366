"""mimlkit.reporting: tables (best marked, directions), figures, HTML from results JSON."""

from __future__ import annotations

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest

from mimlkit.reporting import build_report, metric_direction, summary_markdown
from mimlkit.reporting.tables import summary_csv, summary_stats, timing_stats


def _rows():
    rng = np.random.default_rng(0)
    rows = []
    for learner, base in (("good", 0.9), ("bad", 0.6)):
        for split in range(3):
            fit, pred = 0.1 * (2 if learner == "bad" else 1), 0.01
            for metric, v in (("average_precision", base), ("hamming_loss", 1 - base)):
                rows.append(dict(learner=learner, split=split, metric=metric, label=None,
                                 value=v + 0.01 * split, fit_seconds=fit,
                                 predict_seconds=pred, error=None))
            for lab in ("cat", "dog"):
                rows.append(dict(learner=learner, split=split, metric="per_label_ap",
                                 label=lab, value=base - 0.1 * (lab == "dog"),
                                 fit_seconds=fit, predict_seconds=pred, error=None))
    rows.append(dict(learner="broken", split=0, metric="error", label=None, value=np.nan,
                     fit_seconds=np.nan, predict_seconds=np.nan, error="ValueError: boom"))
    _ = rng
    return rows


def test_directions():
    assert metric_direction("hamming_loss") == "min"
    assert metric_direction("ranking_loss") == "min"
    assert metric_direction("one_error") == "min"
    assert metric_direction("coverage_norm") == "min"
    assert metric_direction("average_precision") == "max"
    assert metric_direction("macro_auc") == "max"
    assert metric_direction("subset_accuracy") == "max"


def test_summary_tables_mark_best_and_skip_errors():
    t = pd.DataFrame(_rows())
    st = summary_stats(t)
    assert set(st["learner"]) == {"good", "bad"}  # error rows left out
    g = st[(st.learner == "good") & (st.metric == "average_precision")].iloc[0]
    assert g["mean"] == pytest.approx(0.91) and g["std"] == pytest.approx(0.01) and g["n"] == 3
    md = summary_markdown(t)
    assert "average_precision ↑" in md and "hamming_loss ↓" in md
    good_line = next(ln for ln in md.splitlines() if ln.startswith("| good"))
    bad_line = next(ln for ln in md.splitlines() if ln.startswith("| bad"))
    assert good_line.count("**") == 4 and "**" not in bad_line  # best on both metrics
    csv = summary_csv(t)
    assert "direction" in csv and "min" in csv and "max" in csv
    ts = timing_stats(t)
    assert list(ts["learner"]) == ["good", "bad"]
    assert ts.set_index("learner").loc["bad", "fit_mean"] == pytest.approx(0.2)


def test_report_from_results_json(tmp_path):
    payload = {"format": "mimlkit-results", "version": 1, "title": "unit test",
               "command": "mimlkit bench --suite x", "rows": _rows(),
               "skipped": {"broken": "failed on 1/1 split(s): ValueError: boom"},
               "sizes": [{"learner": "good", "n_bags": n, "fit_seconds": 0.001 * n}
                         for n in (100, 200, 400)],
               "histories": {"good": {"train_loss": [1.0, 0.5, 0.25], "lr": [0.1] * 3}},
               "instance_maps": {"good": [{"bag": 0, "label": "cat",
                                           "grid": [[0.1, 0.9], [0.2, 0.3]],
                                           "truth": [[0, 1], [0, 0]],
                                           "image": np.zeros((8, 8, 3), int).tolist()}]}}
    res = tmp_path / "results.json"
    res.write_text(json.dumps(payload))
    html_path = build_report(res, tmp_path / "report")
    html = html_path.read_text()
    imgs = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", html)
    # per-label, timing, time-vs-size, curves, heatmaps + one metric panel per metric
    assert len(imgs) == 5 + 2 and "class='panels'" in html
    assert all(base64.b64decode(b)[:8] == b"\x89PNG\r\n\x1a\n" for b in imgs)
    assert "src='http" not in html and "<script" not in html  # self-contained
    assert "★" in html and "broken" in html and "mimlkit bench --suite x" in html
    out = tmp_path / "report"
    for name in ("summary.md", "summary.csv", "per_label.csv", "timing.csv"):
        assert (out / name).is_file()
    assert sorted(p.name for p in (out / "figures").iterdir()) == sorted(
        ["metrics.png", "per_label.png", "timing.png", "time_vs_size.png",
         "training_curves.png", "tile_heatmaps.png"])
    md = (out / "summary.md").read_text()
    assert "| good | **0.910 ± 0.010** |" in md
    per_label = pd.read_csv(out / "per_label.csv")
    assert set(per_label["label"]) == {"cat", "dog"}


def test_report_rejects_bad_files(tmp_path):
    p = tmp_path / "r.json"
    p.write_text("{nope")
    with pytest.raises(ValueError, match="not valid JSON"):
        build_report(p, tmp_path / "o")
    p.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match="no 'rows'"):
        build_report(p, tmp_path / "o")
    with pytest.raises(FileNotFoundError):
        build_report(tmp_path / "missing.json", tmp_path / "o")


# ----------------------------------------------------------------------------- issue 17
def _multi_rows(n_datasets: int = 4, n_splits: int = 3):
    """3 learners ranked a > b > c on every dataset (ties impossible)."""
    rng = np.random.default_rng(1)
    rows = []
    for d in range(n_datasets):
        for learner, base in (("a", 0.80), ("b", 0.70), ("c", 0.60)):
            for split in range(n_splits):
                v = base + 0.01 * d + rng.uniform(-0.004, 0.004)
                for metric, val in (("average_precision", v), ("hamming_loss", 1 - v)):
                    rows.append(dict(dataset=f"ds{d}", learner=learner, split=split,
                                     metric=metric, label=None, value=val,
                                     fit_seconds=0.1 * (d + 1),
                                     predict_seconds=0.01, error=None))
    return rows


def test_report_multi_dataset_statistics(tmp_path):
    payload = {"format": "mimlkit-results", "version": 1, "title": "zoo-like",
               "suite": "zoo", "rows": _multi_rows(),
               "datasets": {f"ds{d}": {"summary": {"n_bags": 90}} for d in range(4)}}
    res = tmp_path / "results.json"
    res.write_text(json.dumps(payload))
    html = build_report(res, tmp_path / "report").read_text()
    md = (tmp_path / "report" / "summary.md").read_text()
    assert "Across datasets" in html and "Friedman" in html
    # identical ranking on N = 4 datasets, k = 3: chi2_F = 12N/(k(k+1)) (sum R^2 - k(k+1)^2/4)
    # = 12*4/12 * (1 + 4 + 9 - 12) = 8; p = chi2.sf(8, 2) = exp(-4)
    friedman = next(ln for ln in md.splitlines() if ln.startswith("| AP"))
    assert "| 8.000 |" in friedman and f"{np.exp(-4):.3f}" in friedman
    sec = md.split("### Average ranks")[1].split("###")[0]
    ranks = {ln.split("|")[1].strip(): ln.split("|")[2].strip() for ln in sec.splitlines()
             if ln[:4] in ("| a ", "| b ", "| c ")}
    assert ranks == {"a": "1.000", "b": "2.000", "c": "3.000"}
    assert "| a | 8 | 0 | 0 |" in md and "| c | 0 | 0 | 8 |" in md  # wins / ties / losses
    assert "Per dataset: paired tests" in md and md.count("corrected resampled t-test") == 4
    for d in range(4):  # one summary table per dataset, not pooled over datasets
        assert f"<details><summary><b>ds{d}</b></summary>" in html
    if (tmp_path / "report" / "figures" / "cd_average_precision.png").is_file():
        assert "Critical-difference diagram" in html
    assert not (tmp_path / "report" / "figures" / "metrics.png").exists()
    assert "datasets: 4 (ds0, ds1, ds2, ds3)" in html
    timing = pd.read_csv(tmp_path / "report" / "timing.csv").set_index("learner")
    assert timing.loc["a", "fit_mean"] == pytest.approx(0.25)  # over every dataset's split


def test_responsive_summary_markup():
    from mimlkit.reporting.report import _CSS
    from mimlkit.reporting.tables import summary_html

    h = summary_html(pd.DataFrame(_rows()))
    assert '<div class="scroll" role="region"' in h and 'class="summary"' in h
    assert '<th class="sticky">learner</th>' in h and '<th class="sticky">good</th>' in h
    assert '<span class="m">0.910</span><span class="s">★ ± 0.010</span>' in h
    css = _CSS.replace("\n", "")
    assert ".scroll{overflow-x:auto" in css and "position:sticky" in css
    assert "@media (max-width:900px)" in css and ".panels{display:flex;flex-wrap:wrap" in css


def test_dataset_name_fallback(tmp_path, monkeypatch):
    from mimlkit.evaluation.results_io import dataset_name_from_path
    from mimlkit.reporting.report import dataset_name

    folder = tmp_path / "chest-xrays"
    folder.mkdir()
    monkeypatch.chdir(folder)
    assert dataset_name_from_path("labels.csv") == "chest-xrays"  # generic stem: folder
    assert dataset_name_from_path(tmp_path / "birds.arff") == "birds"
    assert dataset_name({"dataset": {"name": "", "path": "labels.csv"}}) == "chest-xrays"
    assert dataset_name({"dataset": {"name": "scene", "path": "x.arff"}}) == "scene"
    payload = {"format": "mimlkit-results", "rows": _rows(),
               "title": "mimlkit bench: my suite (, repeat:3)",
               "dataset": {"name": "", "path": str(tmp_path / "my-photos.csv"), "n_bags": 9}}
    html = build_report(payload, tmp_path / "report").read_text()
    assert "my suite (my-photos, repeat:3)" in html and "dataset: my-photos" in html


def _photo_dataset(tile: int = 32, stride: int | None = None, border: str = "pad"):
    """A user's image dataset (not the synthetic generator: no meta['tile_size'], no tile
    truth), 70 x 100 px photographs tiled by TileBagger."""
    from mimlkit.datasets import MIMLDataset, TileBagger, extract_tile_features
    from mimlkit.datasets.base import ImageSet

    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 255, (70, 100, 3), dtype=np.uint8) for _ in range(12)]
    Y = np.zeros((12, 2), np.int8)
    Y[::2, 0] = 1
    Y[1::2, 1] = 1
    ds = MIMLDataset(Y=Y, label_names=["cat", "dog"], images=ImageSet(imgs), name="photos")
    return extract_tile_features(ds, TileBagger(tile, stride, border=border))


@pytest.mark.parametrize("tile,stride,border,shape,cell", [
    (32, None, "pad", (3, 4), 32),  # ceil(70/32) x ceil(100/32) tiles
    (32, 16, "drop", (3, 5), 16),   # overlapping tiles: one cell per stride
])
def test_tile_maps_from_tile_coordinates_of_user_images(tmp_path, tile, stride, border,
                                                        shape, cell):
    from mimlkit.evaluation.bench import _Log
    from mimlkit.evaluation.explain import _explain
    from mimlkit.evaluation.runs import FixedSplit
    from mimlkit.registry import create

    ds = _photo_dataset(tile, stride, border)
    assert "tile_size" not in ds.meta
    built = {"pooled-linear": (create("pooled-linear"), "bags", {}, "pooled-linear")}
    out = _explain(built, ds, FixedSplit(np.arange(8), np.arange(8, 12)), {}, _Log(None))
    panels = out["instance_maps"]["pooled-linear"]
    assert [p["bag"] for p in panels] == [8, 9, 10]
    assert [p["label"] for p in panels[:2]] == ["cat", "dog"]  # panels cover both labels
    p = panels[0]
    grid = np.asarray(p["grid"], dtype=float)
    assert grid.shape == shape and np.isfinite(grid).all()
    assert p["cell"] == [cell, cell] and p["origin"] == [0, 0]
    assert p["image_shape"] == [70, 100] and np.asarray(p["image"]).shape == (70, 100, 3)
    # the grid holds the learner's own instance scores for the shown label, tile by tile
    est = create("pooled-linear").fit(ds.bags[np.arange(8)], ds.Y[:8])
    s = est.decision_function_instances(ds.bags[np.array([8])])
    k = ds.label_names.index(p["label"])
    c = ds.bags[np.array([8])].instance_meta["coords"] // cell
    np.testing.assert_allclose(grid[c[:, 0], c[:, 1]], np.asarray(s)[:, k], rtol=1e-6)
    from mimlkit.reporting import plots

    fig = plots.tile_heatmaps(json.loads(json.dumps(out["instance_maps"])))
    assert fig is not None and sum(ax.get_visible() for ax in fig.axes) >= 6  # 3 images + maps
    assert plots.fig_to_png(fig)[:4] == b"\x89PNG"


def test_styles_training_axes_and_pr_curves(tmp_path):
    from mimlkit.reporting import plots

    st = plots.learner_styles([f"l{i}" for i in range(24)])
    pairs = [(tuple(np.round(c, 4)), m) for c, m in st.values()]
    assert len(set(pairs)) == 24  # colour + marker distinct at 24 learners
    assert len({p[0] for p in pairs[:20]}) == 20  # and 20 distinct colours
    fig = plots.training_curves({"spl": {"train_loss": [130.0, 90.0, 70.0],
                                         "val_loss": [140.0, 100.0, 95.0],
                                         "alpha_mean": [0.9, 0.5, 0.2], "lr": [0.1] * 3}})
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert sorted(ax.get_ylabel() for ax in axes) == ["alpha", "loss"]  # loss vs alpha
    assert [len(ax.lines) for ax in axes if ax.get_ylabel() == "loss"] == [2]
    Y = [[1, 0], [0, 1], [1, 1], [0, 0]]
    ts = {"split": 0, "test_idx": [0, 1, 2, 3], "Y": Y, "label_names": ["x", "y"],
          "scores": {"a": [[0.9, 0.1], [0.2, 0.8], [0.7, 0.6], [0.1, 0.2]],
                     "b": [[0.1, 0.9], [0.8, 0.2], [0.6, 0.7], [0.2, 0.1]]}}
    fig = plots.pr_curves(ts)
    assert fig is not None and sum(ax.get_visible() for ax in fig.axes) == 2
    payload = {"format": "mimlkit-results", "rows": _rows(), "test_scores": ts,
               "dataset": {"name": "toy", "label_names": ["cat", "dog"],
                           "label_counts": [5, 2], "n_bags": 10}}
    html = build_report(payload, tmp_path / "r").read_text()
    assert "Precision-recall curves per label" in html
    md = (tmp_path / "r" / "summary.md").read_text()
    assert "| label | support | support % |" in md.replace(" | good | bad |", " |")
    assert "| cat | 5 | 50.0" in md


def test_split_scores_payload_and_evaluate_name(tmp_path):
    from mimlkit.evaluation.results_io import split_scores_payload

    Y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    sc = {"a": {1: {"test_idx": np.array([2, 3]), "scores": np.array([[0.5, np.nan],
                                                                       [0.1, 0.2]])},
                0: {"test_idx": np.array([0, 1]), "scores": np.array([[0.9, 0.1],
                                                                       [0.2, 0.8]])}},
          "b": {0: {"test_idx": np.array([0, 1]), "scores": np.zeros((2, 2))}}}
    p = split_scores_payload(sc, Y, ["x", "y"])
    assert p["split"] == 0 and p["test_idx"] == [0, 1] and p["Y"] == [[1, 0], [0, 1]]
    assert set(p["scores"]) == {"a", "b"} and p["scores"]["a"][0] == [0.9, 0.1]
    p1 = split_scores_payload({"a": {1: sc["a"][1]}}, Y, ["x", "y"])
    assert p1["scores"]["a"][0] == [0.5, None]  # NaN stored as JSON null
    assert split_scores_payload(sc, Y, ["x", "y"], max_values=7) is None  # 2 x 2 x 2 = 8

    from mimlkit.datasets import make_miml_bags
    from mimlkit.evaluation.bench import run_evaluation

    ds = make_miml_bags(random_state=0)
    ds.name = ""
    run_evaluation(ds, ["prior"], {}, protocol="holdout", source=str(tmp_path / "birds.arff"))
    assert ds.name == "birds"
