"""Report figures (matplotlib, Agg backend; each function returns a Figure or None).

- ``metric_bars``: mean ± std per learner for every metric (direction in the title)
- ``per_label_bars``: per-label average precision (or another per-label metric)
- ``timing_bars``: fit / predict seconds per learner
- ``time_vs_size``: fit seconds against the number of training bags (suites with sizes)
- ``training_curves``: ``history_`` of deep learners (loss / metric per epoch)
- ``tile_heatmaps``: per-tile instance scores over an image, for learners with instance scores
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mimlkit.reporting.tables import (
    arrow,
    metric_direction,
    overall_rows,
    per_label_rows,
    summary_stats,
    timing_stats,
)

__all__ = ["metric_bars", "per_label_bars", "timing_bars", "time_vs_size", "training_curves",
           "tile_heatmaps", "fig_to_png"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _colors(n: int) -> list:
    plt = _plt()
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def fig_to_png(fig, path=None, dpi: int = 110) -> bytes:
    """PNG bytes of a figure (also written to ``path`` when given); closes the figure."""
    import io

    plt = _plt()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    data = buf.getvalue()
    if path is not None:
        from pathlib import Path

        Path(path).write_bytes(data)
    return data


def metric_bars(table: pd.DataFrame):
    """One panel per metric: bars = learners (mean), whiskers = std over splits."""
    st = summary_stats(table)
    if st.empty:
        return None
    plt = _plt()
    metrics = list(dict.fromkeys(st["metric"]))
    learners = list(dict.fromkeys(st["learner"]))
    ncol = min(3, len(metrics))
    nrow = int(np.ceil(len(metrics) / ncol))
    height = (0.35 * len(learners) + 2.2) * nrow
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.6 * ncol, height), squeeze=False)
    colors = dict(zip(learners, _colors(len(learners))))
    for ax, m in zip(axes.ravel(), metrics):
        sub = st[st["metric"] == m].set_index("learner").reindex(learners)
        y = np.arange(len(learners))
        ax.barh(y, sub["mean"].values, xerr=sub["std"].values,
                color=[colors[lr] for lr in learners], capsize=3, alpha=0.9)
        ax.set_yticks(y, learners, fontsize=8)
        ax.invert_yaxis()
        best = np.nanargmin(sub["mean"].values) if metric_direction(m) == "min" else \
            np.nanargmax(sub["mean"].values)
        ax.get_yticklabels()[best].set_fontweight("bold")
        xmax = np.nanmax(sub["mean"].values + sub["std"].values)
        pad = 0.02 * (xmax if np.isfinite(xmax) and xmax > 0 else 1)
        for yi, v, e in zip(y, sub["mean"].values, sub["std"].values):
            if np.isfinite(v):
                ax.text(v + (e if np.isfinite(e) else 0) + pad, yi, f"{v:.3f}", va="center",
                        fontsize=7)
        better = "lower" if metric_direction(m) == "min" else "higher"
        ax.set_title(f"{m} {arrow(m)} ({better} is better)", fontsize=9)
        ax.set_xlabel("mean ± std over splits", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlim(0, xmax * 1.3 if np.isfinite(xmax) and xmax > 0 else 1)
    for ax in axes.ravel()[len(metrics):]:
        ax.set_visible(False)
    fig.suptitle("Metrics per learner (bold = best)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    return fig


def per_label_bars(table: pd.DataFrame, metric: str | None = None):
    """Grouped bars: x = labels, one bar per learner (mean over splits)."""
    t = per_label_rows(table)
    if t.empty:
        return None
    metrics = list(dict.fromkeys(t["metric"]))
    if metric is None:
        pref = [m for m in metrics if "precision" in m.lower() or m.lower() in ("ap", "map")]
        metric = pref[0] if pref else metrics[0]
    t = t[t["metric"] == metric]
    plt = _plt()
    learners = list(dict.fromkeys(t["learner"]))
    labels = list(dict.fromkeys(t["label"].astype(str)))
    mean = t.assign(label=t["label"].astype(str)).groupby(["learner", "label"])["value"].mean()
    width = 0.8 / max(len(learners), 1)
    fig, ax = plt.subplots(figsize=(max(6, 0.5 * len(labels) * max(1, len(learners) / 3) + 2), 4))
    x = np.arange(len(labels))
    for i, (lr, c) in enumerate(zip(learners, _colors(len(learners)))):
        vals = [mean.get((lr, lab), np.nan) for lab in labels]
        ax.bar(x + (i - (len(learners) - 1) / 2) * width, vals, width, label=lr, color=c)
    ax.set_xticks(x, labels, rotation=30 if len(labels) > 6 else 0, ha="right" if
                  len(labels) > 6 else "center", fontsize=8)
    nice = "average precision (AP)" if metric in ("per_label_ap", "ap") else metric
    ax.set_ylabel(f"{nice} {arrow(metric)}")
    ax.set_xlabel("label")
    ax.set_title(f"Per-label {nice}, mean over splits")
    ax.set_ylim(0, 1.05 if t["value"].max() <= 1 else None)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, ncol=min(4, len(learners)), loc="upper center",
              bbox_to_anchor=(0.5, -0.18 if len(labels) <= 6 else -0.3))
    fig.tight_layout()
    return fig


def timing_bars(table: pd.DataFrame):
    """Fit and predict seconds per learner (log scale when the spread is large)."""
    ts = timing_stats(table)
    if ts.empty or "fit_mean" not in ts:
        return None
    plt = _plt()
    learners = ts["learner"].tolist()
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.35 * len(learners) + 1.8), sharey=True)
    for ax, key, title in ((axes[0], "fit", "fit time"), (axes[1], "predict", "predict time")):
        if f"{key}_mean" not in ts:
            ax.set_visible(False)
            continue
        m = ts[f"{key}_mean"].to_numpy(dtype=float)
        s = ts[f"{key}_std"].to_numpy(dtype=float)
        y = np.arange(len(learners))
        pos = m[m > 0]
        log = bool(pos.size and pos.max() / max(pos.min(), 1e-9) > 50)
        lower = np.minimum(s, 0.9 * m) if log else s  # keep whiskers positive on a log axis
        ax.barh(y, m, xerr=np.vstack([lower, s]), color=_colors(len(learners)), capsize=3)
        ax.set_yticks(y, learners, fontsize=8)
        if key == "fit":
            ax.invert_yaxis()  # shared y axis: invert once
        if log:
            ax.set_xscale("log")
        ax.set_xlabel("seconds per split (mean ± std)" + (", log scale" if log else ""))
        ax.set_title(title)
        ax.grid(axis="x", alpha=0.3)
        right = m + s
        for yi, v, r in zip(y, m, right):
            ax.text(r * 1.15 if log else r + 0.02 * right.max(), yi, f"{v:.2g}s",
                    va="center", fontsize=7)
        ax.set_xlim(right=(right.max() * (4 if log else 1.2)) if right.max() > 0 else 1)
    fig.tight_layout()
    return fig


def time_vs_size(sizes: list[dict[str, Any]] | pd.DataFrame | None):
    """Lines: fit seconds vs number of training bags, one per learner (log-log)."""
    if sizes is None or len(sizes) == 0:
        return None
    df = pd.DataFrame(sizes)
    if not {"learner", "n_bags", "fit_seconds"} <= set(df.columns):
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for (lr, sub), c in zip(df.groupby("learner", sort=False), _colors(df["learner"].nunique())):
        g = sub.groupby("n_bags")["fit_seconds"].mean().sort_index()
        ax.plot(g.index, g.values, "o-", label=lr, color=c)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training bags")
    ax.set_ylabel("fit seconds")
    ax.set_title("Fit time vs dataset size")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def training_curves(histories: dict[str, Any] | None):
    """One panel per learner: each numeric series of its ``history_`` against epochs."""
    if not histories:
        return None
    plt = _plt()
    items = [(k, v) for k, v in histories.items() if v]
    if not items:
        return None
    ncol = min(3, len(items))
    nrow = int(np.ceil(len(items) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.6 * ncol, 3.3 * nrow), squeeze=False)
    for ax, (name, hist) in zip(axes.ravel(), items):
        series = _history_series(hist)
        for key, vals in series.items():
            ax.plot(np.arange(1, len(vals) + 1), vals, label=key, marker="." if len(vals) < 30
                    else None)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("value")
        ax.grid(alpha=0.3)
        if series:
            ax.legend(fontsize=7)
    for ax in axes.ravel()[len(items):]:
        ax.set_visible(False)
    fig.suptitle("Training curves (first split)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


def _skip_series(key: Any) -> bool:
    """Bookkeeping series (epoch, step, learning rate, timings) are not curves to plot."""
    k = str(key).lower()
    return k in ("epoch", "step", "lr", "learning_rate") or "time" in k or k.endswith("_s")


def _history_series(hist: Any) -> dict[str, list[float]]:
    """Normalise a history: dict of lists, or list of per-epoch dicts -> dict of lists."""
    if isinstance(hist, dict):
        out = {}
        for k, v in hist.items():
            if isinstance(v, (list, tuple)) and v and all(isinstance(x, (int, float)) for x in v):
                if not _skip_series(k):
                    out[str(k)] = [float(x) for x in v]
        return out
    if isinstance(hist, (list, tuple)) and hist and isinstance(hist[0], dict):
        keys = [k for k in hist[0] if not _skip_series(k)
                and isinstance(hist[0][k], (int, float))]
        return {k: [float(h.get(k, np.nan)) for h in hist] for k in keys}
    if isinstance(hist, (list, tuple)) and hist and all(isinstance(x, (int, float)) for x in hist):
        return {"loss": [float(x) for x in hist]}
    return {}


def tile_heatmaps(maps: dict[str, list[dict[str, Any]]] | None):
    """Top row: example test images with the true object tiles of the shown label outlined
    (cyan); one row per learner below: that learner's per-tile score for the same label."""
    if not maps:
        return None
    items = [(k, v) for k, v in maps.items() if v]
    if not items:
        return None
    plt = _plt()
    from matplotlib.patches import Rectangle

    ncol = max(len(v) for _, v in items)
    ref = max((v for _, v in items), key=len)
    has_img = any(p.get("image") is not None for p in ref)
    nrow = len(items) + int(has_img)
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.7 * ncol + 0.6, 2.5 * nrow), squeeze=False)

    def outline(ax, truth, th, tw, off):
        if truth is None:
            return
        for (i, j) in zip(*np.nonzero(np.asarray(truth))):
            ax.add_patch(Rectangle((j * tw - off, i * th - off), tw, th, fill=False,
                                   ec="cyan", lw=1.6))

    if has_img:
        for c in range(ncol):
            ax = axes[0, c]
            if c >= len(ref) or ref[c].get("image") is None:
                ax.set_visible(False)
                continue
            img = np.asarray(ref[c]["image"], dtype=np.uint8)
            grid = np.asarray(ref[c]["grid"], dtype=float)
            ax.imshow(img)
            outline(ax, ref[c].get("truth"), img.shape[0] / grid.shape[0],
                    img.shape[1] / grid.shape[1], 0)
            ax.set_title(f"image {ref[c].get('bag', c)}\nlabel: {ref[c].get('label', '')}",
                         fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    for r, (name, panels) in enumerate(items, start=int(has_img)):
        for c in range(ncol):
            ax = axes[r, c]
            if c >= len(panels):
                ax.set_visible(False)
                continue
            p = panels[c]
            grid = np.asarray(p["grid"], dtype=float)
            im = ax.imshow(grid, cmap="viridis", interpolation="nearest")
            outline(ax, p.get("truth"), 1.0, 1.0, 0.5)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
            ax.set_title(f"{name}: score of {p.get('label', '')}", fontsize=7)
            cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
            cb.ax.tick_params(labelsize=6)
    fig.suptitle("Per-tile instance scores (cyan = true object tiles of the label)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return fig


def overall_metric_names(table: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(overall_rows(table)["metric"]))
