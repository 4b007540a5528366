"""Significance sections of the report (issue 17 item 3), computed with
``mimlkit.evaluation.stats``:

- ``pairwise_section``: per dataset, every learner against the best one (by mean) over the
  same splits: Nadeau & Bengio's corrected resampled t-test and the Wilcoxon signed-rank
  test, Holm-corrected over the comparisons of that dataset. Needs >= 2 splits.
- ``multi_dataset_section``: when the rows span several datasets (a ``dataset`` column,
  e.g. the zoo suite): per metric the average ranks, the Friedman test (chi^2 and the
  Iman-Davenport F), the Nemenyi critical difference with its diagram
  (``mimlkit.reporting.cd_diagram``), and wins / ties / losses over datasets.

Both return ``(html, markdown)``; figures go to ``figdir`` and are inlined as base64 PNG.
"""

from __future__ import annotations

import base64
import html
import math
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mimlkit.reporting.tables import metric_direction, overall_rows, short_name

__all__ = ["multi_dataset_section", "pairwise_section", "split_sizes", "primary_metric"]

_PRIMARY = ("average_precision", "mean_average_precision", "macro_auc", "ranking_loss")


def primary_metric(metrics: list[str]) -> str | None:
    """The metric the significance sections lead with: AP when present."""
    for m in _PRIMARY:
        if m in metrics:
            return m
    return metrics[0] if metrics else None


def _f(v: Any, digits: int = 3) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(v):
        return "∞" if v > 0 else ("−∞" if v < 0 else "–")
    if v != 0 and abs(v) < 10 ** -digits:
        return f"{v:.1e}"
    return f"{v:.{digits}f}"


def _p(v: Any) -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "–"
    if not math.isfinite(v):
        return "–"
    if v == 0:
        return "0"
    return f"{v:.1e}" if v < 1e-3 else f"{v:.3f}"


def split_sizes(data: dict[str, Any], dataset: str | None = None) -> tuple[int, int, str]:
    """(n_train, n_test, how it was found) for the corrected t-test: a ``FixedSplit``
    protocol string, the dataset's bag count x the configured train fraction, or the
    literature's 2/3 when nothing is recorded."""
    proto = str(data.get("protocol") or "")
    m = re.search(r"n_train=(\d+), n_test=(\d+)", proto)
    if m and dataset is None:
        return int(m.group(1)), int(m.group(2)), "fixed split"
    info: dict[str, Any] = {}
    if dataset is not None:
        d = (data.get("datasets") or {}).get(dataset) or {}
        if d.get("n_train") and d.get("n_test"):
            return int(d["n_train"]), int(d["n_test"]), "recorded"
        info = d.get("summary") or d
    else:
        info = data.get("dataset") or {}
    n = info.get("n_bags")
    frac = (data.get("config") or {}).get("train_size") or 2 / 3
    if n:
        frac = float(frac)
        n_tr = int(round(frac * n)) if frac < 1 else int(frac)
        return n_tr, max(int(n) - n_tr, 1), f"{n} bags x train fraction {_f(frac, 3)}"
    return 2, 1, "assumed 2/3 train (sizes not recorded)"


def _table_html(df: pd.DataFrame, index_name: str, best_cols: dict[str, str] | None = None,
                cls: str = "stats") -> str:
    """A small numeric table in a scroll container (learner names sticky)."""
    out = [f'<div class="scroll" tabindex="0"><table class="{cls}"><thead><tr>'
           f'<th class="sticky">{html.escape(index_name)}</th>']
    out += [f"<th>{html.escape(str(c))}</th>" for c in df.columns]
    out.append("</tr></thead><tbody>")
    best = {}
    for c, how in (best_cols or {}).items():
        col = pd.to_numeric(df[c], errors="coerce")
        if col.notna().any():
            best[c] = col.min() if how == "min" else col.max()
    for idx, row in df.iterrows():
        out.append(f'<tr><th class="sticky">{html.escape(str(idx))}</th>')
        for c in df.columns:
            v = row[c]
            b = c in best and isinstance(v, (int, float, np.floating)) and np.isclose(
                float(v), best[c], rtol=0, atol=1e-12)
            txt = v if isinstance(v, str) else _f(v)
            td = '<td class="best">' if b else "<td>"
            out.append(f"{td}{html.escape(str(txt))}</td>")
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _md_table(df: pd.DataFrame, index_name: str) -> str:
    head = f"| {index_name} | " + " | ".join(map(str, df.columns)) + " |"
    sep = "|---|" + "|".join("---:" for _ in df.columns) + "|"
    rows = [f"| {i} | " + " | ".join(v if isinstance(v, str) else _f(v) for v in r) + " |"
            for i, r in zip(df.index, df.itertuples(index=False))]
    return "\n".join([head, sep, *rows]) + "\n"


def _img(path: Path, alt: str) -> str:
    b64 = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{b64}'>"


# ----------------------------------------------------------------------------- pairwise
def _pairwise_frame(rows: list[dict[str, Any]], metric: str, n_train: int, n_test: int,
                    reference: str) -> pd.DataFrame:
    from mimlkit.evaluation.stats import pairwise_comparisons

    hib = metric_direction(metric) == "max"
    res = pairwise_comparisons(rows, metric, hib, n_train, n_test, reference=reference)
    recs = []
    for r in res:
        verdict = "–" if r["better"] is None else (
            "better" if r["better"] == r["learner_a"] else "worse")
        recs.append({"learner": r["learner_a"], "mean": r["mean_a"],
                     f"Δ vs {reference}": r["mean_diff"], "splits": str(r["n_splits"]),
                     "t (corrected)": r["t"], "p": _p(r["p_ttest"]),
                     "p Holm": _p(r["p_ttest_holm"]),
                     "p Wilcoxon Holm": _p(r["p_wilcoxon_holm"]),
                     "verdict (α=.05)": verdict})
    df = pd.DataFrame(recs)
    return df.set_index("learner") if len(df) else df


def pairwise_section(data: dict[str, Any], table: pd.DataFrame, metric: str | None = None,
                     dataset: str | None = None) -> tuple[str, str]:
    """Every learner vs the best (by mean ``metric``) on one dataset, over shared splits."""
    t = overall_rows(table)
    if dataset is not None and "dataset" in t.columns:
        t = t[t["dataset"].astype(str) == dataset]
    metric = metric or primary_metric(list(dict.fromkeys(t["metric"])))
    t = t[t["metric"] == metric]
    if t.empty or t["split"].nunique() < 2 or t["learner"].nunique() < 2:
        return "", ""
    means = t.groupby("learner", sort=False)["value"].mean()
    ref = str(means.idxmin() if metric_direction(metric) == "min" else means.idxmax())
    n_tr, n_te, how = split_sizes(data, dataset)
    cols = ["learner", "split", "metric", "value", "label"]
    rows = t.drop(columns=["dataset"], errors="ignore")[
        [c for c in cols if c in t.columns]].to_dict("records")
    try:
        df = _pairwise_frame(rows, metric, n_tr, n_te, ref)
    except (ValueError, ImportError) as exc:
        return f"<p class='skipped'>pairwise tests not computed: {html.escape(str(exc))}</p>", ""
    if df.empty:
        return "", ""
    where = f" on {dataset}" if dataset else ""
    note = (f"{metric} {'↓' if metric_direction(metric) == 'min' else '↑'}: each learner "
            f"against the best ({ref}){where} over the same {t['split'].nunique()} splits; "
            f"corrected resampled t-test (Nadeau & Bengio; n_train={n_tr}, n_test={n_te}: "
            f"{how}) and Wilcoxon signed-rank, Holm-corrected over the {len(df)} "
            "comparisons. Repeated random splits overlap, so the plain t-test would be "
            "anti-conservative.")
    h = f"<p class='legend'>{html.escape(note)}</p>" + _table_html(df, "learner")
    md = f"{note}\n\n" + _md_table(df, "learner")
    return h, md


# ----------------------------------------------------------------------------- datasets
def _summaries(rows: list[dict[str, Any]], metrics: list[str]) -> dict[str, dict[str, Any]]:
    from mimlkit.evaluation.stats import multi_dataset_summary

    out = {}
    for m in metrics:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                s = multi_dataset_summary(rows, m, metric_direction(m) == "max")
            s["warnings"] = [str(w.message) for w in caught]
            out[m] = s
        except ValueError:
            continue
    return out


def _cd_png(summary: dict[str, Any], path: Path, title: str) -> Path | None:
    try:
        from mimlkit.reporting.cd_diagram import plot_cd_diagram
    except ImportError:
        return None
    cd = summary.get("cd")
    if cd is None or not math.isfinite(float(cd)):
        return None
    plot_cd_diagram(summary["avg_ranks"], float(cd), path, title=title)
    return path if path.is_file() else None


def multi_dataset_section(data: dict[str, Any], table: pd.DataFrame, figdir: Path,
                          plots: bool = True) -> tuple[str, str]:
    """Average ranks, Friedman, CD diagram and W/T/L across datasets, then per dataset
    the pairwise corrected t-tests. Returns ``(html, markdown)``."""
    t = overall_rows(table)
    t = t[t["dataset"].notna()]
    cols = [c for c in ("dataset", "learner", "split", "metric", "value", "label")
            if c in t.columns]
    rows = t[cols].to_dict("records")
    metrics = list(dict.fromkeys(t["metric"]))
    summ = _summaries(rows, metrics)
    if not summ:
        return "<p class='skipped'>multi-dataset statistics: no metric has values for " \
               "every learner on two or more datasets</p>", ""
    main = primary_metric(list(summ))
    s = summ[main]
    h = ["<h2>Across datasets</h2>"]
    md = ["\n## Across datasets\n"]
    ds_list = ", ".join(map(str, s["datasets"]))
    intro = (f"{len(s['datasets'])} datasets ({ds_list}), {len(s['learners'])} learners; "
             f"ranks per dataset on the mean over splits (1 = best); Friedman test and "
             f"Nemenyi critical difference at α = {s['alpha']} (Demšar 2006).")
    if s.get("dropped_datasets"):
        intro += (" Left out (a learner has no value there): "
                  + ", ".join(map(str, s["dropped_datasets"])) + ".")
    h.append(f"<p>{html.escape(intro)}</p>")
    md.append(intro + "\n")
    # per-metric overview: Friedman p and CD
    over = []
    for m, sm in summ.items():
        f = sm.get("friedman") or {}
        best = min(sm["avg_ranks"], key=sm["avg_ranks"].get)
        over.append({"metric": f"{short_name(m)} {'↓' if metric_direction(m) == 'min' else '↑'}",
                     "datasets": str(len(sm["datasets"])),
                     "Friedman χ²": f.get("chi2", math.nan), "p (χ²)": _p(f.get("p_chi2")),
                     "Iman-Davenport F": f.get("f", math.nan), "p (F)": _p(f.get("p_f")),
                     "CD": sm.get("cd", math.nan), "best rank": f"{best} "
                     f"({_f(sm['avg_ranks'][best], 2)})"})
    odf = pd.DataFrame(over).set_index("metric")
    h.append("<h3>Friedman test per metric</h3>" + _table_html(odf, "metric"))
    md.append("### Friedman test per metric\n\n" + _md_table(odf, "metric"))
    # average ranks (learners x metrics), sorted by the main metric
    ranks = pd.DataFrame({f"{short_name(m)} {'↓' if metric_direction(m) == 'min' else '↑'}":
                          pd.Series(sm["avg_ranks"]) for m, sm in summ.items()})
    main_col = f"{short_name(main)} {'↓' if metric_direction(main) == 'min' else '↑'}"
    ranks = ranks.sort_values(main_col)
    h.append("<h3>Average ranks (lower is better)</h3>"
             + _table_html(ranks, "learner", {c: "min" for c in ranks.columns}))
    md.append("\n### Average ranks (lower is better)\n\n" + _md_table(ranks, "learner"))
    # CD diagram of the main metric
    if plots:
        png = _cd_png(s, figdir / f"cd_{main}.png",
                      f"{main}: average ranks, Nemenyi CD = {_f(s['cd'], 2)}")
        if png is not None:
            h.append(f"<h3>Critical-difference diagram ({html.escape(main)})</h3>"
                     "<p class='legend'>learners joined by a bar do not differ "
                     "significantly (Nemenyi, α = .05).</p>" + _img(png, f"CD diagram {main}"))
        else:
            h.append("<p class='skipped'>critical-difference diagram not drawn "
                     "(mimlkit.reporting.cd_diagram unavailable)</p>")
    # wins / ties / losses
    tot = pd.DataFrame(s["wtl_total"]).T.reindex(ranks.index)[["wins", "ties", "losses"]]
    h.append(f"<h3>Wins / ties / losses over datasets ({html.escape(main)})</h3>"
             "<p class='legend'>summed over every other learner; one comparison per "
             "(dataset, other learner).</p>" + _table_html(tot.astype(int).astype(str),
                                                          "learner"))
    md.append(f"\n### Wins / ties / losses over datasets ({main})\n\n"
              + _md_table(tot.astype(int).astype(str), "learner"))
    order = list(ranks.index)
    pair = pd.DataFrame("", index=order, columns=order)
    for a in order:
        for b, v in s["wtl"][a].items():
            pair.at[a, b] = f"{v['wins']}/{v['ties']}/{v['losses']}"
    h.append("<details><summary>pairwise wins/ties/losses (row vs column)</summary>"
             + _table_html(pair, "learner", cls="stats pair") + "</details>")
    # datasets x learners matrix of the main metric
    mat = pd.DataFrame(s["matrix"], index=s["datasets"], columns=s["learners"])[order]
    how = "min" if metric_direction(main) == "min" else "max"
    h.append(f"<details><summary>{html.escape(main)} per dataset (mean over splits)"
             "</summary>" + _table_html(mat.T, "learner", {c: how for c in mat.index})
             + "</details>")
    # per dataset pairwise tests
    parts = []
    for d in s["datasets"]:
        ph, pm = pairwise_section(data, table, main, dataset=str(d))
        if ph:
            parts.append((d, ph, pm))
    if parts:
        h.append("<h3>Per dataset: paired tests against the best learner</h3>")
        md.append("\n### Per dataset: paired tests against the best learner\n")
        h.append("<p class='legend'>one block per dataset (click to open).</p>")
        for d, ph, pm in parts:
            n_sig = ph.count(">worse</td>") + ph.count(">better</td>")
            h.append(f"<details><summary><b>{html.escape(str(d))}</b>: {n_sig} significant "
                     f"difference(s) from the best</summary>{ph}</details>")
            md.append(f"\n#### {d}\n\n{pm}")
    else:
        h.append("<p class='legend'>Per-dataset paired tests need at least 2 splits per "
                 "dataset; these results have one.</p>")
    return "".join(h), "\n".join(md)
