"""Critical-difference diagram (Demšar, JMLR 7, 2006, Fig. 1 style).

A rank axis (1 = best, on the left), each learner joined to the axis at its average rank and
named on the left (better half) or the right (worse half), thick bars joining learners whose
average ranks differ by less than the critical difference (not significantly different), and
a bar of length CD above the axis. Ranks and CD come from ``mimlkit.evaluation.stats``
(``multi_dataset_summary`` gives ``avg_ranks`` and ``cd``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

from mimlkit.evaluation.stats import cd_cliques

__all__ = ["plot_cd_diagram"]

_ROW = 0.28  # inches between two learner lines
_CHAR = 0.075  # approximate width of one character at fontsize 9 (inches)


def plot_cd_diagram(avg_ranks: Mapping[str, float], cd: float, path: str | os.PathLike,
                    title: str | None = None) -> Path:
    """Draw the CD diagram of ``avg_ranks`` ({learner: average rank}) with critical
    difference ``cd`` and save it to ``path`` (PNG, or any format matplotlib infers from the
    suffix). Returns the path. Needs >= 2 learners, finite ranks and a finite ``cd >= 0``."""
    from matplotlib.figure import Figure  # lazy: matplotlib is only needed for plots

    ranks = {str(k): float(v) for k, v in avg_ranks.items()}
    if len(ranks) < 2:
        raise ValueError(f"a CD diagram needs at least 2 learners, got {len(ranks)}")
    bad = [k for k, v in ranks.items() if not math.isfinite(v)]
    if bad:
        raise ValueError(f"average rank of {bad[0]!r} is not finite")
    if not (math.isfinite(cd) and cd >= 0):
        raise ValueError(f"cd must be a finite number >= 0, got {cd}")
    items = sorted(ranks.items(), key=lambda kv: kv[1])
    k = len(items)
    lo, hi = 1, max(k, math.ceil(max(v for _, v in items)))
    cliques = cd_cliques(ranks, cd)
    n_left = (k + 1) // 2
    left, right = items[:n_left], items[n_left:]
    labels = [f"{n} ({r:.2f})" for n, r in items]

    # geometry in inches: x from the left edge, y downwards from the top
    margin = 0.25 + _CHAR * max(len(s) for s in labels)
    axis_w = max(3.0, 0.55 * (hi - lo))
    W = 2 * margin + axis_w
    y_title = 0.3 if title else 0.0
    y_cd = y_title + 0.35
    y_axis = y_cd + 0.55
    y_cl = y_axis + 0.25  # first clique bar
    y_first = y_cl + 0.16 * len(cliques) + 0.25  # first learner line
    H = y_first + _ROW * max(len(left), len(right)) + 0.15

    def x(r: float) -> float:
        return margin + (r - lo) / (hi - lo) * axis_w

    fig = Figure(figsize=(W, H))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, W)
    ax.set_ylim(H, 0)
    ax.axis("off")
    line = {"color": "black", "linewidth": 0.9}
    if title:
        ax.text(W / 2, y_title, title, ha="center", va="center", fontsize=10)
    # rank axis with integer (long) and half (short) ticks, labels above
    ax.plot([x(lo), x(hi)], [y_axis, y_axis], **line)
    for t2 in range(2 * lo, 2 * hi + 1):
        t = t2 / 2
        ax.plot([x(t), x(t)], [y_axis, y_axis - (0.1 if t2 % 2 == 0 else 0.05)], **line)
        if t2 % 2 == 0:
            ax.text(x(t), y_axis - 0.14, str(int(t)), ha="center", va="bottom", fontsize=9)
    # CD bar from rank 1
    if cd > 0:
        x1 = x(lo)
        x2 = x(min(lo + cd, hi + 0.5))
        ax.plot([x1, x2], [y_cd, y_cd], color="black", linewidth=1.6)
        for xe in (x1, x2):
            ax.plot([xe, xe], [y_cd - 0.06, y_cd + 0.06], **line)
        ax.text((x1 + x2) / 2, y_cd - 0.08, f"CD = {cd:.2f}", ha="center", va="bottom",
                fontsize=9)
    # learners: elbow lines from the axis to the names
    for i, (name, r) in enumerate(left):
        y = y_first + i * _ROW
        ax.plot([x(r), x(r), margin - 0.1], [y_axis, y, y], **line)
        ax.text(margin - 0.15, y, f"{name} ({r:.2f})", ha="right", va="center", fontsize=9)
    for i, (name, r) in enumerate(reversed(right)):
        y = y_first + i * _ROW
        ax.plot([x(r), x(r), W - margin + 0.1], [y_axis, y, y], **line)
        ax.text(W - margin + 0.15, y, f"({r:.2f}) {name}", ha="left", va="center",
                fontsize=9)
    # cliques: learners not significantly different
    for j, group in enumerate(cliques):
        y = y_cl + j * 0.16
        ax.plot([x(ranks[group[0]]) - 0.05, x(ranks[group[-1]]) + 0.05], [y, y],
                color="black", linewidth=3.0, solid_capstyle="round")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    fig.savefig(tmp, dpi=150, format=path.suffix.lstrip(".").lower() or "png")
    os.replace(tmp, path)  # atomic: no half-written figure
    return path
