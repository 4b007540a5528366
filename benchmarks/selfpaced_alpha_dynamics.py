"""How far Adam moves a self-paced weight α per use, and whether the loss size matters.

Under the authors' update rule (spec ``self_paced_miml.md`` §2.5) α is a parameter in the same
Adam as the network, and its gradient is the cell's loss ``-log p`` while the tile is in the
batch (0 otherwise). This script isolates that rule: one α element receives a gradient of size
``g`` at one step in ``every`` (a tile drawn about once per epoch of ``every`` steps), a second
element of the same tensor keeps the tensor in every step, ``torch.optim.Adam(lr)`` runs
``steps`` steps, and the script records α's total and per-use decrease. If the decrease per use
does not depend on ``g``, α cannot tell a high-loss (background) tile from a low-loss (evidence)
tile of the same image.

    python benchmarks/selfpaced_alpha_dynamics.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402


def drop_per_use(every: int, g: float, lr: float, steps: int) -> tuple[int, float]:
    import torch

    a = torch.nn.Parameter(torch.tensor([0.5, 0.5], dtype=torch.float64))
    opt = torch.optim.Adam([a], lr=lr)
    uses = 0
    for t in range(steps):
        opt.zero_grad()
        grad = torch.zeros(2, dtype=torch.float64)
        if t % every == 0:
            grad[0] = g
            uses += 1
        grad[1] = 1e-3
        a.grad = grad
        opt.step()
    return uses, (0.5 - float(a.detach()[0])) / uses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--steps", type=int, default=2000)
    args = ap.parse_args()
    rows = []
    for every in (1, 10, 100):
        for g in (0.05, 0.5, 5.0):
            uses, d = drop_per_use(every, g, args.lr, args.steps)
            rows.append({"every": every, "gradient": g, "uses": uses, "drop_per_use": d})
    lines = [f"Adam(lr={args.lr}), {args.steps} steps, α starts at 0.5; gradient g at one step in "
             "`every` (the loss of the cell), 0 otherwise.", "",
             "| used every N steps | g = 0.05 | g = 0.5 | g = 5 |", "|---|---|---|---|"]
    for every in (1, 10, 100):
        cells = [f"{r['drop_per_use']:.4f}" for r in rows if r["every"] == every]
        lines.append(f"| {every} | " + " | ".join(cells) + " |")
    lines += ["", "Cells: decrease of α per use. It depends on how often the tile is used, not "
              "on the size of its loss, so evidence and background tiles of one image lose "
              "weight at the same rate (docs/selfpaced.md)."]
    write_results("selfpaced_alpha_dynamics", {"args": vars(args), "rows": rows},
                  "\n".join(lines), title="Self-paced α under Adam: decrease per use")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
