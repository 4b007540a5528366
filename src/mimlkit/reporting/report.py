"""Build a report folder from a results JSON alone.

Input: the ``results.json`` written by ``mimlkit bench`` / ``mimlkit evaluate`` (schema
``mimlkit-results`` v1: ``rows`` = tidy table, plus optional ``environment``, ``dataset``,
``learners``, ``sizes``, ``histories``, ``instance_maps``, ``skipped``, ``command``).

Output folder::

    report.html     single self-contained file (CSS inline, plots as base64 PNG)
    summary.md      mean ± std table (best in bold, ↑/↓ direction) + per-label + timing
    summary.csv     numeric mean / std / n / direction / best per learner x metric
    per_label.csv   per-label values (mean over splits)
    timing.csv      fit / predict seconds per learner
    figures/*.png   the same plots as separate files

Every file is written to a temporary sibling and renamed into place.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from mimlkit._io import atomic_write
from mimlkit.reporting import plots
from mimlkit.reporting.stats_section import multi_dataset_section, pairwise_section
from mimlkit.reporting.tables import (
    label_support,
    overall_rows,
    per_label_html,
    per_label_rows,
    summary_csv,
    summary_html,
    summary_markdown,
    timing_stats,
)

__all__ = ["build_report", "read_results", "RESULTS_FORMAT"]

RESULTS_FORMAT = "mimlkit-results"

_CSS = """
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em auto;
max-width:1500px;color:#222;padding:0 1em;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em;overflow-wrap:anywhere}
h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right;white-space:nowrap}
.scroll{overflow-x:auto;max-width:100%;margin:.6em 0}.scroll>table{margin:0}
.legend{color:#555;font-size:.85em}
table.summary{font-size:.85em}
table.summary thead th,table.per-label thead th{white-space:normal;min-width:4.2em;
max-width:9em;vertical-align:bottom;overflow-wrap:break-word}
table.summary .m{display:block}
table.summary .s{display:block;color:#666;font-size:.82em;font-weight:normal}
thead th{background:#f2f2f2}tbody th{text-align:left;background:#fafafa}
th.sticky{position:sticky;left:0;z-index:1;background:#fafafa;max-width:14em;
white-space:normal;overflow-wrap:break-word;text-align:left}
tr.support th,tr.support td{color:#555;font-style:italic;background:#fbfbf4}
thead th.sticky{background:#f2f2f2;z-index:2}
td.best{background:#e4f5e1;font-weight:bold}
table.dataframe td:first-child{text-align:left;font-weight:bold;background:#fafafa}
.meta{color:#555;font-size:.9em}.meta li{overflow-wrap:anywhere}
.meta code{background:#f4f4f4;padding:1px 4px}
img{max-width:100%;height:auto;border:1px solid #eee;margin:.4em 0}
.skipped{color:#8a5a00;overflow-wrap:anywhere}
.panels{display:flex;flex-wrap:wrap;gap:.4em}
.panels img{flex:1 1 420px;max-width:560px;min-width:0;margin:0}
details{margin:.3em 0}summary{cursor:pointer}
.scroll-hint{display:none;color:#777;font-size:.8em;margin:.2em 0}
@media (max-width:900px){body{margin:.8em auto;padding:0 .5em}
table{font-size:.8em}th,td{padding:3px 4px}h1{font-size:1.3em}
table.summary{font-size:.78em}.scroll-hint{display:block}}
"""


def _atomic_write(path: Path, data: str | bytes) -> None:
    atomic_write(path, data)



def read_results(path: str | os.PathLike) -> dict[str, Any]:
    """Load and minimally validate a results JSON."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no such results file")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or "rows" not in data:
        raise ValueError(f"{p}: not a mimlkit results file (no 'rows' field)")
    if data.get("format", RESULTS_FORMAT) != RESULTS_FORMAT:
        raise ValueError(f"{p}: format {data.get('format')!r} is not {RESULTS_FORMAT!r}")
    return data


def _table(data: dict[str, Any]) -> pd.DataFrame:
    t = pd.DataFrame(data["rows"])
    need = {"learner", "split", "metric", "value"}
    if not need <= set(t.columns):
        raise ValueError(f"results rows lack columns {sorted(need - set(t.columns))}")
    if "label" not in t.columns:
        t["label"] = None
    return t


def _per_label_frame(table: pd.DataFrame) -> pd.DataFrame:
    t = per_label_rows(table)
    if t.empty:
        return pd.DataFrame(columns=["learner", "metric", "label", "mean", "std"])
    t = t.assign(label=t["label"].astype(str))
    return (t.groupby(["learner", "metric", "label"], sort=False)["value"]
            .agg(mean="mean", std="std").reset_index())


def _env_lines(data: dict[str, Any]) -> list[str]:
    env = data.get("environment") or {}
    out = []
    if data.get("command"):
        out.append(f"command: `{data['command']}`")
    if data.get("date") or env.get("date"):
        out.append(f"date: {data.get('date') or env.get('date')}")
    ds = data.get("dataset") or {}
    if ds:
        bits = [dataset_name(data)]
        for k in ("n_bags", "n_instances", "n_features", "n_labels", "n_images"):
            if k in ds:
                bits.append(f"{k.removeprefix('n_')}={ds[k]}")
        out.append("dataset: " + ", ".join(b for b in bits if b))
    many = data.get("datasets")
    if isinstance(many, dict) and many:
        ran = [k for k, v in many.items() if not (isinstance(v, dict) and v.get("skipped"))]
        left = [k for k in many if k not in ran]
        out.append(f"datasets: {len(ran)} ({', '.join(map(str, ran))})"
                   + (f"; not found: {', '.join(map(str, left))}" if left else ""))
    if data.get("protocol"):
        out.append(f"protocol: {data['protocol']}")
    if data.get("seeds") is not None:
        out.append(f"seeds: {data['seeds']}")
    mach = env.get("machine") or {}
    if mach:
        out.append("machine: " + ", ".join(f"{k}={v}" for k, v in mach.items()
                                           if k in ("n_cpus", "cpu", "memory_gib", "gpu",
                                                    "platform")))
    libs = env.get("versions") or {}
    if libs:
        out.append("versions: " + ", ".join(f"{k} {v}" for k, v in libs.items()))
    return out


def dataset_name(data: dict[str, Any]) -> str:
    """The dataset's name, or one from its file name when the loader gave none (e.g. a
    ``labels.csv`` in the working folder)."""
    ds = data.get("dataset") or {}
    name = str(ds.get("name") or "").strip()
    if name or not ds.get("path"):
        return name
    from mimlkit.evaluation.results_io import dataset_name_from_path

    return dataset_name_from_path(ds["path"])


def _datasets_of(table: pd.DataFrame) -> list[str]:
    if "dataset" not in table.columns:
        return []
    return [str(d) for d in dict.fromkeys(table["dataset"].dropna().tolist())]


def build_report(results: str | os.PathLike | dict[str, Any], out_dir: str | os.PathLike,
                 *, title: str | None = None, explain: str | os.PathLike | None = None,
                 max_explain_bags: int = 6) -> Path:
    """Write the report folder for ``results`` (a path or the loaded dict); returns the
    HTML path. Without matplotlib (the ``report`` extra) the tables are written and the
    plots are left out, with a note saying how to get them. Rows spanning several datasets
    (a ``dataset`` column, e.g. the zoo suite) get per-dataset tables and the
    multi-dataset statistics (average ranks, Friedman, critical difference, W/T/L).
    ``explain``: an instance-score CSV of ``mimlkit predict --explain``: adds an "Instance
    attributions" section with the heatmaps of its first ``max_explain_bags`` bags (also
    written to ``figures/explain_<n>.png``)."""
    data = read_results(results) if not isinstance(results, dict) else results
    table = _table(data)
    out = Path(out_dir)
    figdir = out / "figures"
    title = title or data.get("title") or f"mimlkit results: {data.get('suite', '')}".strip(": ")
    dname = dataset_name(data)
    if dname and "(, " in title:  # results written before the name fallback existed
        title = title.replace("(, ", f"({dname}, ", 1)
    dsets = _datasets_of(table)
    multi = len(dsets) > 1

    # ---------------------------------------------------------------- tables
    md = [f"# {title}\n"]
    md += [f"- {line}" for line in _env_lines(data)]
    if multi:
        for d in dsets:
            md.append(f"\n## Summary: {d} (mean ± std per learner × metric)\n")
            md.append(summary_markdown(table[table["dataset"].astype(str) == d]))
    else:
        md.append("\n## Summary (mean ± std per learner × metric)\n")
        md.append(summary_markdown(table))
    pl = _per_label_frame(table) if not multi else _per_label_frame(table.iloc[0:0])
    support = label_support(data, list(dict.fromkeys(pl["label"]))) if not pl.empty else None
    ts = timing_stats(table)
    if not pl.empty:
        md.append("\n## Per-label results (mean over splits)\n")
        for m, sub in pl.groupby("metric", sort=False):
            wide = sub.pivot(index="label", columns="learner", values="mean")
            wide = wide.reindex(index=list(dict.fromkeys(sub["label"])),
                                columns=list(dict.fromkeys(sub["learner"])))
            if support is not None and len(support.columns):
                sup = support.reindex(wide.index).astype(object).apply(
                    lambda col: [("–" if pd.isna(v) else f"{v:.1f}" if "%" in col.name
                                  else str(int(v))) for v in col])
                wide = pd.concat([sup, wide], axis=1)
            md.append(f"\n### {m}\n")
            md.append(_md_numeric(wide))
    if not ts.empty:
        md.append("\n## Time per split (seconds)\n")
        md.append(_md_numeric(ts.set_index("learner")))
    skipped = data.get("skipped") or {}
    if skipped:
        md.append("\n## Skipped learners\n")
        md += [f"- {k}: {v}" for k, v in skipped.items()]

    from mimlkit._extras import has_extra

    no_plots = None if has_extra("report") else (
        "plots left out: they need the 'report' extra (matplotlib is not installed): "
        "pip install 'mimlkit[report]'")
    figdir.mkdir(parents=True, exist_ok=True)
    multi_html = ""
    if multi:
        multi_html, multi_md = multi_dataset_section(data, table, figdir,
                                                     plots=no_plots is None)
        md.insert(len(_env_lines(data)) + 1, multi_md)
        pair_html = ""
    else:
        pair_html, pair_md = pairwise_section(data, table)
        if pair_md:
            md.append("\n## Paired tests against the best learner\n\n" + pair_md)

    _atomic_write(out / "summary.md", "\n".join(md).rstrip() + "\n")
    _atomic_write(out / "summary.csv", summary_csv(table))
    _atomic_write(out / "per_label.csv", pl.to_csv(index=False))
    _atomic_write(out / "timing.csv", ts.to_csv(index=False))

    # ---------------------------------------------------------------- figures
    figures: list[tuple[str, str, bytes]] = []
    specs = [
        ("metrics", "Metrics per learner (mean ± std over splits, zoomed axis)",
         lambda: plots.metric_dots(table)),
        ("per_label", "Per-label average precision", lambda: plots.per_label_bars(table)),
        ("pr_curves", "Precision-recall curves per label",
         lambda: plots.pr_curves(data.get("test_scores"))),
        ("timing", "Fit / predict time", lambda: plots.timing_bars(table)),
        ("time_vs_size", "Time vs dataset size", lambda: plots.time_vs_size(data.get("sizes"))),
        ("training_curves", "Training curves", lambda: plots.training_curves(
            data.get("histories"))),
        ("tile_heatmaps", "Tile heatmaps", lambda: plots.tile_heatmaps(
            data.get("instance_maps"))),
    ]
    if multi:  # pooled over datasets these would mislead; the section above has its own
        specs = [s for s in specs if s[0] in ("timing", "training_curves", "tile_heatmaps")]
    if no_plots:
        specs = []
    for key, caption, make in specs:
        fig = make()
        if fig is None:
            continue
        png = plots.fig_to_png(fig)
        _atomic_write(figdir / f"{key}.png", png)
        figures.append((key, caption, png))
    # the metric panels again one image each, laid out by the browser (wrap at 800 px)
    panels: list[tuple[str, bytes]] = []
    if any(k == "metrics" for k, _, _ in figures):
        for m in dict.fromkeys(overall_rows(table)["metric"]):
            fig = plots.metric_dots(table, metrics=[m])
            if fig is not None:
                panels.append((str(m), plots.fig_to_png(fig)))

    # ---------------------------------------------------------------- html
    h = ["<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
         "<meta name='viewport' content='width=device-width, initial-scale=1'>",
         f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
         f"<h1>{html.escape(title)}</h1><div class='meta'><ul>"]
    for line in _env_lines(data):
        esc = html.escape(line)
        h.append("<li>" + _code_spans(esc) + "</li>")
    h.append(f"<li>report generated {_dt.datetime.now().isoformat(timespec='seconds')}</li>")
    h.append("</ul></div>")
    note = ("<p>mean ± std over splits; ↑ higher is better, ↓ lower is better; ★ = best per "
            "metric.</p>")
    if multi:
        h.append(multi_html)
        h.append(f"<h2>Summary per dataset</h2>{note}<p class='legend'>one table per "
                 "dataset (click to open).</p>")
        for d in dsets:
            h.append(f"<details><summary><b>{html.escape(d)}</b></summary>"
                     + summary_html(table[table["dataset"].astype(str) == d]) + "</details>")
    else:
        h.append(f"<h2>Summary</h2>{note}")
        h.append(summary_html(table))
    if no_plots:
        h.append(f"<p class='skipped'>{html.escape(no_plots, quote=False)}</p>")
    if skipped:
        h.append("<p class='skipped'>Skipped: " + "; ".join(
            f"<b>{html.escape(k)}</b> ({html.escape(str(v))})" for k, v in skipped.items())
            + "</p>")
    for key, caption, png in figures:
        if key == "metrics" and panels:
            h.append(f"<h2>{html.escape(caption)}</h2><div class='panels'>" + "".join(
                f"<img alt='{html.escape(m)}' src='data:image/png;base64,"
                f"{base64.b64encode(p).decode('ascii')}'>" for m, p in panels) + "</div>")
            continue
        b64 = base64.b64encode(png).decode("ascii")
        h.append(f"<h2>{html.escape(caption)}</h2>"
                 f"<img alt='{html.escape(caption)}' src='data:image/png;base64,{b64}'>")
    if explain is not None and not no_plots:
        from mimlkit.reporting.heatmaps import explain_figures

        shots = explain_figures(explain, max_bags=max_explain_bags)
        h.append(f"<h2>Instance attributions</h2><p class='legend'>per-instance scores of "
                 f"the top-scored labels, from <code>{html.escape(str(explain))}</code> "
                 f"(first {len(shots)} bags).</p><div>")
        for n, (bid, png) in enumerate(shots):
            _atomic_write(figdir / f"explain_{n}.png", png)
            h.append(f"<img alt='bag {html.escape(bid)}' src='data:image/png;base64,"
                     f"{base64.b64encode(png).decode('ascii')}'>")
        h.append("</div>")
    if not multi and pair_html:
        h.append("<h2>Paired tests against the best learner</h2>" + pair_html)
    if not pl.empty:
        h.append("<h2>Per-label table</h2><p class='legend'>mean over splits; support = "
                 "bags with the label in the dataset (and in the stored test split).</p>")
        h.append(per_label_html(pl, support))
    if not ts.empty:
        h.append("<h2>Time per split (seconds)</h2><div class='scroll'>" + ts.to_html(
            float_format="%.3g", border=0, index=False) + "</div>")
    h.append("</body></html>")
    html_path = out / "report.html"
    _atomic_write(html_path, "\n".join(h))
    return html_path


def _code_spans(text: str) -> str:
    parts = text.split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _md_numeric(frame: pd.DataFrame, digits: int = 3) -> str:
    cols = list(frame.columns)
    head = "| " + (frame.index.name or "") + " | " + " | ".join(map(str, cols)) + " |"
    sep = "|---|" + "|".join("---:" for _ in cols) + "|"
    rows = []
    for idx, row in frame.iterrows():
        cells = []
        for c in cols:
            v = row[c]
            if isinstance(v, str):
                cells.append(v)
                continue
            cells.append("–" if pd.isna(v) else (f"{v:.{digits}g}" if abs(v) >= 1000 or
                                                   (v != 0 and abs(v) < 1e-3) else
                                                   f"{v:.{digits}f}"))
        rows.append(f"| {idx} | " + " | ".join(cells) + " |")
    return "\n".join([head, sep, *rows]) + "\n"
