"""The zoo: every default bag learner on every dataset in ``../shared/data`` and on the
generated stress variants, next to the ``prior`` / ``empty`` baselines and
``pooled-linear`` (``mimlkit.evaluation.zoo``; same as ``mimlkit bench --suite zoo``).

Writes ``benchmarks/results/zoo.json`` + ``zoo.md``. Datasets can run in separate
processes and be merged::

    python benchmarks/zoo.py                                  # everything, one process
    python benchmarks/zoo.py --only scene emotions --out runs/zoo-a
    python benchmarks/zoo.py --merge runs/zoo-a runs/zoo-b    # -> benchmarks/results/zoo.*
    # (a later folder's (dataset, learner) results replace an earlier one's)
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="data root (default $MIMLKIT_DATA or "
                    "../shared/data)")
    ap.add_argument("--only", nargs="*", default=None, help="dataset names to run")
    ap.add_argument("--learners", nargs="*", default=None)
    ap.add_argument("--no-stress", action="store_true")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", default=None, help="output folder (default: results here)")
    ap.add_argument("--merge", nargs="*", default=None,
                    help="merge these zoo folders (or zoo results JSON files, e.g. "
                    "benchmarks/results/zoo.json); a later one replaces an earlier one's "
                    "rows of the same dataset and learner")
    args = ap.parse_args()
    from mimlkit.evaluation.zoo import _write, data_root, run_zoo

    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    if args.merge:
        rows, datasets, names, commands = [], {}, [], []
        for d in args.merge:
            src = Path(d)  # a zoo folder, or a results file such as results/zoo.json
            p = json.loads((src if src.is_file() else src / "results.json").read_text())
            # a later folder replaces the same (dataset, learner) of an earlier one
            new = {(r["dataset"], r["learner"]) for r in p["rows"]}
            gone = [r for r in rows if (r["dataset"], r["learner"]) in new]
            rows = [r for r in rows if (r["dataset"], r["learner"]) not in new] + p["rows"]
            # fit + predict seconds of the replaced runs (one per dataset, learner, split)
            spent: dict[str, float] = {}
            for key in {(r["dataset"], r["learner"], r["split"]): r for r in gone}.values():
                spent[key["dataset"]] = spent.get(key["dataset"], 0.0) + float(
                    (key.get("fit_seconds") or 0) + (key.get("predict_seconds") or 0))
            for k, v in p["datasets"].items():
                if "skipped" in v and k in datasets:
                    continue
                if "seconds" in v and "seconds" in datasets.get(k, {}):
                    # parts ran different learners: the dataset's time is their sum, less
                    # the fit and predict time of the runs a later part replaced
                    v = {**v, "seconds": round(max(0.0, datasets[k]["seconds"]
                                                   - spent.get(k, 0.0)) + v["seconds"], 1)}
                datasets[k] = v
            names += [n for n in p["learners"] if n not in names]
            commands.append(p.get("command") or "")
        out = Path(args.out) if args.out else RESULTS / "_zoo_tmp"
        _write(out, rows, datasets, names, 0, command + "  # parts: " + " ; ".join(commands))
    else:
        root = args.data or str(data_root())
        out = Path(args.out) if args.out else RESULTS / "_zoo_tmp"
        run_zoo(root, learners=args.learners, out_dir=out, jobs=args.jobs,
                stress=not args.no_stress, only=args.only, command=command, report=False)
    if args.out is None:
        shutil.move(str(out / "results.json"), RESULTS / "zoo.json")
        shutil.move(str(out / "results.md"), RESULTS / "zoo.md")
        shutil.rmtree(out, ignore_errors=True)
        print((RESULTS / "zoo.md").read_text())


if __name__ == "__main__":
    main()
