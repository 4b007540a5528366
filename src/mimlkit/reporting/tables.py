"""Summary tables from a tidy results table (learner, split, metric, label, value, ...).

``summary_stats`` gives numeric mean / std / n per learner x metric (overall rows only);
``summary_frame`` the same as "mean ± std" strings; ``summary_markdown`` / ``summary_html``
mark the best learner per metric (respecting each metric's direction, shown as ↑ / ↓).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["metric_direction", "overall_rows", "per_label_rows", "summary_stats",
           "summary_frame", "summary_markdown", "summary_html", "summary_csv", "timing_stats",
           "label_support", "per_label_html"]

_LOWER_IS_BETTER = ("hamming", "one_error", "one-error", "coverage", "ranking_loss",
                    "ranking-loss", "loss", "error", "seconds", "time")


def metric_direction(name: str) -> str:
    """"min" when smaller values are better (losses, errors, coverage), else "max".

    Uses ``mimlkit.metrics.METRICS[...].greater_is_better`` for registered metrics and a
    name heuristic for anything else."""
    try:
        from mimlkit.metrics import METRICS, resolve_metric

        return "max" if METRICS[resolve_metric(str(name))].greater_is_better else "min"
    except (ImportError, ValueError, KeyError, AttributeError):
        pass
    n = str(name).lower()
    if "accuracy" in n or "precision" in n or "auc" in n or "f1" in n:
        return "max"
    return "min" if any(k in n for k in _LOWER_IS_BETTER) else "max"


def arrow(name: str) -> str:
    return "↓" if metric_direction(name) == "min" else "↑"


def _is_overall(label: pd.Series) -> pd.Series:
    s = label.astype(object)
    return s.isna() | s.isin(["", "all", "__all__", None])


def _ok(table: pd.DataFrame) -> pd.DataFrame:
    """Without the runner's error rows (``metric == "error"``) and NaN values."""
    t = table[table["metric"] != "error"] if "metric" in table.columns else table
    return t[t["value"].notna()] if "value" in t.columns else t


def overall_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of bag-level (not per-label) metrics."""
    t = _ok(table)
    if "label" not in t.columns:
        return t
    return t[_is_overall(t["label"])]


def per_label_rows(table: pd.DataFrame) -> pd.DataFrame:
    t = _ok(table)
    if "label" not in t.columns:
        return t.iloc[0:0]
    return t[~_is_overall(t["label"])]


def _order(values: pd.Series) -> list:
    return list(dict.fromkeys(values.tolist()))


def summary_stats(table: pd.DataFrame) -> pd.DataFrame:
    """Long frame: learner, metric, mean, std, n (over splits), in first-seen order."""
    t = overall_rows(table)
    if t.empty:
        return pd.DataFrame(columns=["learner", "metric", "mean", "std", "n"])
    g = t.groupby(["learner", "metric"], sort=False)["value"]
    out = g.agg(mean="mean", std=lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                n="count").reset_index()
    return out


def _wide(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list, list]:
    st = summary_stats(table)
    t = overall_rows(table)
    learners = _order(t["learner"]) if not t.empty else []
    metrics = _order(t["metric"]) if not t.empty else []
    mean = st.pivot(index="learner", columns="metric", values="mean").reindex(
        index=learners, columns=metrics)
    std = st.pivot(index="learner", columns="metric", values="std").reindex(
        index=learners, columns=metrics)
    return mean, std, learners, metrics


def _best(mean: pd.DataFrame) -> dict[str, set]:
    best: dict[str, set] = {}
    for m in mean.columns:
        col = mean[m].dropna()
        if col.empty:
            best[m] = set()
            continue
        v = col.min() if metric_direction(m) == "min" else col.max()
        best[m] = set(col.index[np.isclose(col.values, v, rtol=0, atol=1e-12)])
    return best


def _fmt(mu: float, sd: float, digits: int = 3) -> str:
    if mu is None or (isinstance(mu, float) and np.isnan(mu)):
        return "–"
    return f"{mu:.{digits}f} ± {sd:.{digits}f}"


def summary_frame(table: pd.DataFrame, digits: int = 3, arrows: bool = True) -> pd.DataFrame:
    """Wide frame of "mean ± std" strings (index learner, columns "metric ↑/↓")."""
    mean, std, learners, metrics = _wide(table)
    data = {(f"{m} {arrow(m)}" if arrows else m):
            [_fmt(mean.at[lr, m], std.at[lr, m], digits) for lr in learners] for m in metrics}
    return pd.DataFrame(data, index=pd.Index(learners, name="learner"))


def summary_markdown(table: pd.DataFrame, digits: int = 3) -> str:
    """Markdown mean ± std table; the best value per metric in bold; ↑/↓ = direction."""
    mean, std, learners, metrics = _wide(table)
    if not learners:
        return "_no results_\n"
    best = _best(mean)
    head = "| learner | " + " | ".join(f"{m} {arrow(m)}" for m in metrics) + " |"
    sep = "|---|" + "|".join("---:" for _ in metrics) + "|"
    rows = []
    for lr in learners:
        cells = []
        for m in metrics:
            s = _fmt(mean.at[lr, m], std.at[lr, m], digits)
            cells.append(f"**{s}**" if lr in best[m] else s)
        rows.append(f"| {lr} | " + " | ".join(cells) + " |")
    n = summary_stats(table)["n"]
    foot = (f"\nmean ± std over {int(n.max())} split(s); ↑ higher is better, ↓ lower is "
            "better; **bold** = best.\n") if len(n) else ""
    return "\n".join([head, sep, *rows]) + "\n" + foot


def summary_html(table: pd.DataFrame, digits: int = 3) -> str:
    """Responsive HTML summary: a horizontally scrolling container (learner column sticky),
    metric headers that wrap, and each cell as mean over a smaller "± std" line, so 8+
    metrics fit at 1,400 px and stay readable at 800 px."""
    import html

    mean, std, learners, metrics = _wide(table)
    if not learners:
        return "<p><em>no results</em></p>"
    best = _best(mean)
    out = ['<p class="scroll-hint">on a narrow screen the table scrolls sideways</p>'
           '<div class="scroll" role="region" aria-label="summary table" tabindex="0">'
           '<table class="summary"><thead><tr><th class="sticky">learner</th>']
    for m in metrics:
        d = "lower is better" if metric_direction(m) == "min" else "higher is better"
        out.append(f'<th title="{html.escape(m)}: {d}">{html.escape(short_name(m))} '
                   f'{arrow(m)}</th>')
    out.append("</tr></thead><tbody>")
    for lr in learners:
        out.append(f'<tr><th class="sticky">{html.escape(str(lr))}</th>')
        for m in metrics:
            mu, sd = mean.at[lr, m], std.at[lr, m]
            cls = ' class="best"' if lr in best[m] else ""
            if mu is None or not np.isfinite(mu):
                out.append("<td>–</td>")
                continue
            out.append(f'<td{cls}><span class="m">{mu:.{digits}f}</span>'
                       f'<span class="s">{"★ " if cls else ""}± {sd:.{digits}f}</span></td>')
        out.append("</tr>")
    out.append("</tbody></table></div>")
    legend = ", ".join(f"{html.escape(short_name(m))} = {html.escape(m)}" for m in metrics
                       if short_name(m) != m)
    if legend:
        out.append(f'<p class="legend">{legend}</p>')
    return "".join(out)


def label_support(data: dict[str, Any], labels: list[str]) -> pd.DataFrame:
    """Per-label support: positives in the dataset (``dataset.label_counts``) and in the
    stored test split (``test_scores``), where the results file has them."""
    out = pd.DataFrame(index=pd.Index([str(x) for x in labels], name="label"))
    ds = data.get("dataset") or {}
    names, counts = ds.get("label_names"), ds.get("label_counts")
    if names and counts and len(names) == len(counts):
        n = ds.get("n_bags")
        c = pd.Series(counts, index=[str(x) for x in names], dtype=float)
        out["support"] = c.reindex(out.index)
        if n:
            out["support %"] = 100.0 * out["support"] / float(n)
    ts = data.get("test_scores") or {}
    if ts.get("Y") and ts.get("label_names"):
        Y = np.asarray(ts["Y"])
        c = pd.Series((Y == 1).sum(axis=0), index=[str(x) for x in ts["label_names"]])
        out["test support"] = c.reindex(out.index)
    return out


def _support_cell(col: str, v: Any) -> str:
    if v is None or pd.isna(v):
        return "–"
    return f"{v:.1f}" if "%" in col else str(int(v))


def per_label_html(pl: pd.DataFrame, support: pd.DataFrame | None = None,
                   digits: int = 3) -> str:
    """Per-label tables (one per per-label metric), mean over splits, best per label
    marked, with the labels' support. The longer side goes down the page: labels as rows
    (support as columns) when there are more labels than learners, else learners as rows
    and the support as the first (shaded) rows."""
    import html

    if pl.empty:
        return ""
    out = []
    for m, sub in pl.groupby("metric", sort=False):
        wide = sub.pivot(index="label", columns="learner", values="mean")
        wide = wide.reindex(index=list(dict.fromkeys(sub["label"])),
                            columns=list(dict.fromkeys(sub["learner"])))
        low = metric_direction(str(m)) == "min"
        vals = wide.to_numpy(dtype=float)
        with np.errstate(all="ignore"):
            best = np.nanmin(vals, axis=1) if low else np.nanmax(vals, axis=1)
        is_best = np.isclose(vals, best[:, None], rtol=0, atol=1e-12) & np.isfinite(vals)
        sup = support.reindex(wide.index) if support is not None and len(support.columns) \
            else None
        labels_down = len(wide.index) >= len(wide.columns)
        out.append(f"<h3>{html.escape(str(m))} {arrow(str(m))}</h3>")
        out.append('<div class="scroll" tabindex="0"><table class="per-label"><thead><tr>')

        best_td = '<td class="best">'
        cells = [[("<td>–</td>" if not np.isfinite(v) else
                   f"{best_td if b else '<td>'}{v:.{digits}f}</td>")
                  for v, b in zip(vr, br)] for vr, br in zip(vals, is_best)]

        if labels_down:
            out.append('<th class="sticky">label</th>')
            if sup is not None:
                out += [f"<th>{html.escape(c)}</th>" for c in sup.columns]
            out += [f"<th>{html.escape(str(c))}</th>" for c in wide.columns]
            out.append("</tr></thead><tbody>")
            for i, lab in enumerate(wide.index):
                out.append(f'<tr><th class="sticky">{html.escape(str(lab))}</th>')
                if sup is not None:
                    out += [f"<td>{_support_cell(c, sup.at[lab, c])}</td>"
                            for c in sup.columns]
                out += cells[i]
                out.append("</tr>")
        else:
            out.append('<th class="sticky">learner</th>')
            out += [f"<th>{html.escape(str(lab))}</th>" for lab in wide.index]
            out.append("</tr></thead><tbody>")
            if sup is not None:
                for c in sup.columns:
                    out.append(f'<tr class="support"><th class="sticky">{html.escape(c)}</th>')
                    out += [f"<td>{_support_cell(c, sup.at[lab, c])}</td>"
                            for lab in wide.index]
                    out.append("</tr>")
            for j, lr in enumerate(wide.columns):
                out.append(f'<tr><th class="sticky">{html.escape(str(lr))}</th>')
                out += [row[j] for row in cells]
                out.append("</tr>")
        out.append("</tbody></table></div>")
    return "".join(out)


def short_name(metric: str) -> str:
    """Short column name of a registered metric (``mimlkit.metrics.METRICS[...].short``)."""
    try:
        from mimlkit.metrics import METRICS, resolve_metric

        return METRICS[resolve_metric(str(metric))].short
    except (ImportError, ValueError, KeyError, AttributeError):
        return str(metric)


def summary_csv(table: pd.DataFrame) -> str:
    """CSV with numeric mean, std, n, direction and best flag per learner x metric."""
    st = summary_stats(table)
    if st.empty:
        return "learner,metric,mean,std,n,direction,best\n"
    mean, _, _, _ = _wide(table)
    best = _best(mean)
    st = st.assign(direction=[metric_direction(m) for m in st["metric"]],
                   best=[lr in best.get(m, set()) for lr, m in zip(st["learner"], st["metric"])])
    return st.to_csv(index=False)


def timing_stats(table: pd.DataFrame) -> pd.DataFrame:
    """Mean/std fit and predict seconds per learner (one value per split)."""
    table = _ok(table)
    cols = [c for c in ("fit_seconds", "predict_seconds") if c in table.columns]
    if not cols or table.empty:
        return pd.DataFrame(columns=["learner", "fit_mean", "fit_std", "predict_mean",
                                     "predict_std"])
    keys = ["learner", "split"] + (["dataset"] if "dataset" in table.columns else [])
    per_split = table.groupby(keys, sort=False, dropna=False)[cols].first().reset_index()
    g = per_split.groupby("learner", sort=False)
    out: dict[str, Any] = {"learner": list(g.groups.keys())}
    out = pd.DataFrame({"learner": _order(per_split["learner"])})
    for c, short in (("fit_seconds", "fit"), ("predict_seconds", "predict")):
        if c in cols:
            m = g[c].mean()
            s = g[c].std(ddof=1).fillna(0.0)
            out[f"{short}_mean"] = out["learner"].map(m)
            out[f"{short}_std"] = out["learner"].map(s)
    return out
