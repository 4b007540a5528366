"""Scene protocol for parameter variants of MIMLfast / MIMLmiSVM / DeepMIML / MIMLBoost.

Same protocol as ``scene_reproduction.py`` (2/3 - 1/3, ``RepeatedRandomSplit(random_state=0)``,
Zhang metrics, coverage / q) but each row is a registry learner with explicit parameters, so
variants chosen by inner validation on training parts can be compared with the defaults.

Usage::

    python benchmarks/scene_part2_variants.py --repeats 30 \
        --variant mimlfast --variant "mimlfast:batch_size=16,n_epochs=40,average_begin=10"
"""

from __future__ import annotations

import argparse
import ast
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "miml_scene" / \
    "miml_03_data.arff"
METRICS = ["hamming_loss", "one_error", "coverage_norm", "ranking_loss", "average_precision"]
SHORT = ["HL ↓", "OE ↓", "Cov/q ↓", "RL ↓", "AP ↑"]


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, rest = text.partition(":")
    params = {}
    for item in filter(None, rest.split(",")):
        k, _, v = item.partition("=")
        try:
            params[k.strip()] = ast.literal_eval(v.strip())
        except (ValueError, SyntaxError):
            params[k.strip()] = v.strip()
    return name.strip(), params


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--variant", action="append", required=True,
                    help='"name" or "name:key=value,key=value"')
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--n-jobs", type=int, default=2)
    ap.add_argument("--name", default="scene_part2_variants")
    args = ap.parse_args(argv)

    from mimlkit.datasets import load_dataset
    from mimlkit.evaluation import RepeatedRandomSplit, evaluate
    from mimlkit.registry import create

    ds = load_dataset(args.data)
    learners = {}
    for text in args.variant:
        name, params = parse_variant(text)
        learners[text] = create(name, **params)
    splitter = RepeatedRandomSplit(n_repeats=args.repeats, train_size=2 / 3, random_state=0)
    t0 = time.perf_counter()
    res = evaluate(learners, ds, splitter, metrics=METRICS, n_jobs=args.n_jobs, progress=False,
                   random_state=0)
    wall = time.perf_counter() - t0
    summ = res.summary(metrics=METRICS)
    table = res.table
    stats: dict = {}
    for row in summ.itertuples(index=False):
        stats.setdefault(row.learner, {})[row.metric] = {
            "mean": float(row.mean), "std": float(row.std) if row.std == row.std else 0.0}
    lines = [f"Protocol: {len(ds.Y)} bags, 2/3 train - 1/3 test, {args.repeats} seeded "
             "repetitions (RepeatedRandomSplit(random_state=0)); Zhang metrics, coverage / q. "
             f"Wall time {wall:.0f} s with n_jobs={args.n_jobs} (busy shared machine).", "",
             "| learner (params) | " + " | ".join(SHORT) + " | mean fit (s) |",
             "|---|" + "---|" * (len(METRICS) + 1)]
    for text in learners:
        cells = []
        for m in METRICS:
            s = stats.get(text, {}).get(m)
            cells.append(f"{s['mean']:.3f} ± {s['std']:.3f}" if s else "error")
        fit = table[table["learner"] == text]["fit_seconds"]
        cells.append(f"{fit.mean():.1f}" if len(fit) else "")
        lines.append(f"| `{text}` | " + " | ".join(cells) + " |")
    write_results(args.name, {"stats": stats, "wall_s": wall, "repeats": args.repeats},
                  "\n".join(lines) + "\n", title="MIML Scene: part-2 learner variants")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
