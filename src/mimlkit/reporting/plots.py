"""Report figures (matplotlib, Agg backend; each function returns a Figure or None).

- ``metric_dots``: mean ± std (or 95% interval) per learner for every metric, zoomed axis
- ``per_label_bars``: per-label average precision (dot plot; or another per-label metric)
- ``timing_bars``: fit / predict seconds per learner
- ``time_vs_size``: fit seconds against the number of training bags (suites with sizes)
- ``training_curves``: ``history_`` of deep learners (loss / metric per epoch)
- ``tile_heatmaps``: per-tile instance scores over an image, for learners with instance scores
- ``pr_curves``: per-label precision-recall curves from the stored test-split scores

Learners keep one colour + marker across figures (``learner_styles``: distinct at 20+).
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

__all__ = ["metric_dots", "metric_bars", "per_label_bars", "timing_bars", "time_vs_size",
           "training_curves", "tile_heatmaps", "pr_curves", "learner_styles", "fig_to_png"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


def _colors(n: int) -> list:
    """``n`` colours: tab10 up to 10, else the 10 dark then the 10 light tab20 shades (so
    neighbours in a legend differ in hue), then tab20b; pair with ``_markers``."""
    plt = _plt()
    if n <= 10:
        cmap = plt.get_cmap("tab10")
        return [cmap(i) for i in range(n)]
    t20 = plt.get_cmap("tab20")
    t20b = plt.get_cmap("tab20b")
    base = [t20(i) for i in range(0, 20, 2)] + [t20(i) for i in range(1, 20, 2)] + \
        [t20b(i) for i in range(20)]
    return [base[i % len(base)] for i in range(n)]


def _markers(n: int) -> list[str]:
    """Markers that separate learners sharing a hue: learner i and i + 10 (dark / light
    shade of one tab20 hue) get different markers (10 mod 7 = 3)."""
    return [_MARKERS[i % len(_MARKERS)] for i in range(n)]


def learner_styles(learners: list[str]) -> dict[str, tuple[Any, str]]:
    """{learner: (colour, marker)}, distinct for 20+ learners."""
    return dict(zip(learners, zip(_colors(len(learners)), _markers(len(learners)))))


def _linestyles(learners: list[str]) -> dict[str, str]:
    """Solid lines for the first 10 learners (dark shades), dashed for the light shades
    that follow, so lines of one hue stay apart where markers are not drawn."""
    return {lr: "-" if i < 10 else "--" for i, lr in enumerate(learners)}


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


def metric_dots(table: pd.DataFrame, interval: str = "std",
                metrics: list[str] | None = None):
    """One panel per metric: a dot per learner (mean over splits) with its interval
    (``"std"``: ± one standard deviation over splits; ``"ci95"``: the 95% t-interval of
    the mean), on an axis zoomed to the data (not from zero) so close means stay apart;
    best first, dashed line at the best mean. ``metrics``: only these panels (the
    learners keep the colours they have in the full figure)."""
    st = summary_stats(table)
    if st.empty:
        return None
    plt = _plt()
    from scipy import stats as _st

    learners = list(dict.fromkeys(st["learner"]))
    metrics = [m for m in (metrics or list(dict.fromkeys(st["metric"])))
               if m in set(st["metric"])]
    if not metrics:
        return None
    styles = learner_styles(learners)
    ncol = min(3, len(metrics))
    nrow = int(np.ceil(len(metrics) / ncol))
    height = (0.28 * len(learners) + 1.4) * nrow
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.8 * ncol, height), squeeze=False)
    for ax, m in zip(axes.ravel(), metrics):
        sub = st[st["metric"] == m].set_index("learner").reindex(learners)
        sub = sub[np.isfinite(sub["mean"].to_numpy(dtype=float))]
        low = metric_direction(m) == "min"
        sub = sub.sort_values("mean", ascending=low)
        mu = sub["mean"].to_numpy(dtype=float)
        sd = np.nan_to_num(sub["std"].to_numpy(dtype=float))
        n = sub["n"].to_numpy(dtype=float)
        if interval == "ci95":
            half = np.where(n > 1, _st.t.ppf(0.975, np.maximum(n - 1, 1)) * sd
                            / np.sqrt(np.maximum(n, 1)), 0.0)
        else:
            half = sd
        y = np.arange(len(sub))
        for yi, lr, v, h in zip(y, sub.index, mu, half):
            c, mk = styles[lr]
            ax.errorbar(v, yi, xerr=h, fmt=mk, color=c, ecolor=c, elinewidth=1.6,
                        capsize=2.5, markersize=5.5, markeredgecolor="k",
                        markeredgewidth=0.4)
        ax.set_yticks(y, list(sub.index), fontsize=7.5)
        ax.invert_yaxis()
        if len(sub):
            ax.get_yticklabels()[0].set_fontweight("bold")
            ax.axvline(mu[0], color="0.5", lw=0.8, ls="--", zorder=0)
            lo, hi = float(np.min(mu - half)), float(np.max(mu + half))
            span = hi - lo if hi > lo else max(abs(hi), 1e-3) * 0.1
            ax.set_xlim(lo - 0.06 * span, hi + 0.30 * span)
            for yi, v, h in zip(y, mu, half):
                ax.text(v + h + 0.03 * span, yi, f"{v:.3f}", va="center", fontsize=6.5,
                        color="0.25")
        better = "lower" if low else "higher"
        ax.set_title(f"{m} {arrow(m)} ({better} is better)", fontsize=9)
        what = "± std over splits" if interval == "std" else "95% interval of the mean"
        ax.set_xlabel(f"mean {what} (axis zoomed)", fontsize=7.5)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", alpha=0.3)
    for ax in axes.ravel()[len(metrics):]:
        ax.set_visible(False)
    if len(metrics) > 1:
        fig.suptitle("Metrics per learner (best on top, bold)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.98 if len(metrics) > 1 else 1))
    return fig


metric_bars = metric_dots  # former name


def per_label_bars(table: pd.DataFrame, metric: str | None = None):
    """Per-label dot plot: one row per label, one marker per learner (mean over splits),
    axis zoomed to the values; learners keep the colour/marker of the other figures."""
    t = per_label_rows(table)
    if t.empty:
        return None
    metrics = list(dict.fromkeys(t["metric"]))
    if metric is None:
        pref = [m for m in metrics if "precision" in m.lower() or m.lower() in ("ap", "map")
                or m.lower().endswith("_ap")]
        metric = pref[0] if pref else metrics[0]
    t = t[t["metric"] == metric]
    plt = _plt()
    learners = list(dict.fromkeys(t["learner"]))
    labels = list(dict.fromkeys(t["label"].astype(str)))
    mean = t.assign(label=t["label"].astype(str)).groupby(["learner", "label"])["value"].mean()
    styles = learner_styles(learners)
    fig, ax = plt.subplots(figsize=(8.5, 0.42 * len(labels) + 1.6))
    y = np.arange(len(labels))
    offs = (np.arange(len(learners)) - (len(learners) - 1) / 2) * min(0.6 / max(
        len(learners), 1), 0.08)
    for lr, off in zip(learners, offs):
        c, mk = styles[lr]
        vals = np.array([mean.get((lr, lab), np.nan) for lab in labels], dtype=float)
        ax.plot(vals, y + off, mk, color=c, label=lr, markersize=5, markeredgecolor="k",
                markeredgewidth=0.3, linestyle="none")
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    nice = "average precision (AP)" if metric in ("per_label_ap", "ap") else metric
    ax.set_xlabel(f"{nice} {arrow(metric)}, mean over splits (axis zoomed)")
    ax.set_title(f"Per-label {nice}")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              ncol=1 if len(learners) <= 16 else 2, frameon=False)
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
    styles = learner_styles(list(dict.fromkeys(df["learner"])))
    dash = _linestyles(list(styles))
    for lr, sub in df.groupby("learner", sort=False):
        g = sub.groupby("n_bags")["fit_seconds"].mean().sort_index()
        c, mk = styles[lr]
        ax.plot(g.index, g.values, dash[lr], marker=mk, label=lr, color=c)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training bags")
    ax.set_ylabel("fit seconds")
    ax.set_title("Fit time vs dataset size")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def _quantity(key: str) -> str:
    """The quantity a history series measures, so that e.g. ``train_loss`` and
    ``val_loss`` share an axis while ``alpha_mean`` gets its own."""
    k = str(key).lower()
    for pre in ("train_", "val_", "valid_", "validation_", "test_"):
        if k.startswith(pre):
            k = k[len(pre):]
            break
    if "loss" in k:
        return "loss"
    return k.split("_")[0] or k


def training_curves(histories: dict[str, Any] | None, max_panels_per_learner: int = 4):
    """One row per learner, one panel per quantity (loss, alpha, accuracy, ...): series of
    different scales never share an axis. Constant series (bookkeeping) are left out."""
    if not histories:
        return None
    plt = _plt()
    rows = []
    for name, hist in histories.items():
        series = {k: v for k, v in _history_series(hist).items()
                  if len(v) and (np.nanmax(v) > np.nanmin(v) or _quantity(k) == "loss")}
        groups: dict[str, dict[str, list[float]]] = {}
        for k, v in series.items():
            groups.setdefault(_quantity(k), {})[k] = v
        if groups:
            rows.append((name, list(groups.items())[:max_panels_per_learner]))
    if not rows:
        return None
    ncol = max(len(g) for _, g in rows)
    fig, axes = plt.subplots(len(rows), ncol, figsize=(3.6 * ncol + 0.5, 2.5 * len(rows)),
                             squeeze=False)
    for r, (name, groups) in enumerate(rows):
        for c in range(ncol):
            ax = axes[r, c]
            if c >= len(groups):
                ax.set_visible(False)
                continue
            qty, series = groups[c]
            for key, vals in series.items():
                ax.plot(np.arange(1, len(vals) + 1), vals, label=key,
                        marker="." if len(vals) < 30 else None)
            ax.set_title(f"{name}: {qty}", fontsize=8.5)
            ax.set_xlabel("epoch", fontsize=7.5)
            ax.set_ylabel(qty, fontsize=7.5)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            if len(series) > 1 or next(iter(series)) != qty:
                ax.legend(fontsize=6.5)
    fig.suptitle("Training curves (first split; one axis per quantity)", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
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


def _frame(p: dict[str, Any], grid: np.ndarray, img: np.ndarray | None):
    """Pixel frame of a map panel: (H, W) of the original image, grid origin (y, x) and cell
    size (y, x). Older results files (no ``origin`` / ``cell``) had full-size images with
    the grid covering them."""
    shape = p.get("image_shape") or (list(img.shape[:2]) if img is not None else None)
    cell = p.get("cell")
    origin = p.get("origin") or [0, 0]
    if cell is None:
        cell = ([shape[0] / grid.shape[0], shape[1] / grid.shape[1]] if shape else [1, 1])
    if shape is None:
        shape = [origin[0] + grid.shape[0] * cell[0], origin[1] + grid.shape[1] * cell[1]]
    return shape, origin, cell


def tile_heatmaps(maps: dict[str, list[dict[str, Any]]] | None):
    """Top row: example test images with the true object tiles of the shown label outlined
    (cyan, when the dataset has tile truth); one row per learner below: that learner's
    per-tile score for the same label drawn over the image (any tile grid, any image
    size: placed by the tiles' pixel coordinates)."""
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
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.8 * ncol + 0.6, 2.6 * nrow), squeeze=False)

    def outline(ax, truth, origin, cell):
        if truth is None:
            return
        for (i, j) in zip(*np.nonzero(np.asarray(truth))):
            ax.add_patch(Rectangle((origin[1] + j * cell[1], origin[0] + i * cell[0]),
                                   cell[1], cell[0], fill=False, ec="cyan", lw=1.4))

    def image_of(p):
        return None if p.get("image") is None else np.asarray(p["image"], dtype=np.uint8)

    if has_img:
        for c in range(ncol):
            ax = axes[0, c]
            if c >= len(ref) or ref[c].get("image") is None:
                ax.set_visible(False)
                continue
            img = image_of(ref[c])
            grid = np.asarray(ref[c]["grid"], dtype=float)
            (h, w), origin, cell = _frame(ref[c], grid, img)
            ax.imshow(img, extent=(0, w, h, 0), interpolation="nearest")
            outline(ax, ref[c].get("truth"), origin, cell)
            ax.set_xlim(0, w)
            ax.set_ylim(h, 0)
            ax.set_title(f"image {ref[c].get('bag', c)} ({h}x{w} px)\nlabel: "
                         f"{ref[c].get('label', '')}", fontsize=8)
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
            img = image_of(p)
            if img is None and c < len(ref):
                img = image_of(ref[c])
            (h, w), origin, cell = _frame(p, grid, img)
            ext = (origin[1], origin[1] + grid.shape[1] * cell[1],
                   origin[0] + grid.shape[0] * cell[0], origin[0])
            if img is not None:
                grey = img.mean(axis=2) if img.ndim == 3 else img
                ax.imshow(grey, cmap="gray", extent=(0, w, h, 0), interpolation="nearest")
            im = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", extent=ext,
                           interpolation="nearest", alpha=0.65 if img is not None else 1.0)
            outline(ax, p.get("truth"), origin, cell)
            ax.set_xlim(min(0, ext[0]), max(w, ext[1]))
            ax.set_ylim(max(h, ext[2]), min(0, ext[3]))
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
            ax.set_title(f"{name}: score of {p.get('label', '')}", fontsize=7)
            cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
            cb.ax.tick_params(labelsize=6)
    cap = "Per-tile instance scores over the image"
    if any(p.get("truth") is not None for _, v in items for p in v):
        cap += " (cyan = true object tiles of the label)"
    fig.suptitle(cap, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    return fig


def _finite_scores(s: np.ndarray) -> np.ndarray:
    """Missing (NaN) scores rank below every real score."""
    ok = np.isfinite(s)
    low = s[ok].min() - 1.0 if ok.any() else 0.0
    return np.where(ok, s, low)


def pr_curves(test_scores: dict[str, Any] | None, max_labels: int = 12,
              max_learners: int = 8):
    """Per-label precision-recall curves on the stored test split (one panel per label,
    the ``max_labels`` labels with most test positives) for the ``max_learners`` learners
    with the best mean AP over those labels (legend: that AP; colours as in the other
    figures). ``test_scores``: the ``results.json`` field written by ``mimlkit bench``."""
    if not test_scores or not test_scores.get("scores"):
        return None
    from sklearn.metrics import average_precision_score, precision_recall_curve

    Y = np.asarray(test_scores["Y"], dtype=int)
    names = list(test_scores.get("label_names") or range(Y.shape[1]))
    support = (Y == 1).sum(axis=0)
    keep = [k for k in np.argsort(-support, kind="stable") if support[k] > 0][:max_labels]
    if not keep:
        return None
    keep = sorted(keep)
    all_learners = list(test_scores["scores"])
    styles = learner_styles(all_learners)
    S = {lr: _finite_scores(np.array(test_scores["scores"][lr], dtype=float))
         for lr in all_learners}
    aps = {lr: float(np.mean([average_precision_score(Y[:, k] == 1, S[lr][:, k])
                              for k in keep])) for lr in all_learners}
    learners = sorted(all_learners, key=lambda lr: -aps[lr])[:max_learners]
    dash = _linestyles(all_learners)
    plt = _plt()
    ncol = min(len(keep), 2 if len(keep) <= 4 else 4)
    nrow = int(np.ceil(len(keep) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.3 * nrow + 0.4),
                             squeeze=False)
    for ax, k in zip(axes.ravel(), keep):
        y = Y[:, k] == 1
        for lr in learners:
            prec, rec, _ = precision_recall_curve(y, S[lr][:, k])
            ax.step(rec, prec, where="post", color=styles[lr][0], lw=1.3, label=lr,
                    linestyle=dash[lr])
        ax.axhline(y.mean(), color="0.5", ls=":", lw=0.8)
        ax.set_xlim(0, 1.0)
        ax.set_ylim(0, 1.02)
        ax.set_title(f"{names[k]} (test positives {int(support[k])}/{len(y)})", fontsize=8)
        ax.set_xlabel("recall", fontsize=7.5)
        ax.set_ylabel("precision", fontsize=7.5)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes.ravel()[len(keep):]:
        ax.set_visible(False)
    handles = [plt.Line2D([], [], color=styles[lr][0], lw=2, linestyle=dash[lr],
                          label=f"{lr}: {aps[lr]:.3f}") for lr in learners]
    shown = "" if len(learners) == len(all_learners) else \
        f"; best {len(learners)} of {len(all_learners)} learners"
    fig.suptitle(f"Precision-recall per label (test split {test_scores.get('split', 0)}"
                 f"{shown}; dotted = positive rate)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 0.95), fontsize=7.5,
               frameon=False, title="mean AP, shown labels", title_fontsize=7.5)
    return fig


def overall_metric_names(table: pd.DataFrame) -> list[str]:
    return list(dict.fromkeys(overall_rows(table)["metric"]))
