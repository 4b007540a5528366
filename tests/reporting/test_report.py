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
    assert len(imgs) == 6  # metrics, per-label, timing, time-vs-size, curves, heatmaps
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
