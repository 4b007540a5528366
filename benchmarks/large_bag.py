"""Peak memory of ``mimlkit fit`` with one huge bag (issue 16, acceptance measurement).

The dataset: the first ``--n-bags`` (300) bags of MIML Scene (9 instances of 15 features
each) plus one bag of ``--big`` (200,000) random instances, drawn from a normal distribution
with the per-feature mean and standard deviation of those Scene instances (seeded), labelled
with the first Scene bag's label set. It is written to a temporary relational ARFF (the
Scene header with a new bag-id list; ``--format npz`` writes ``save_npz`` instead), and
``mimlkit fit --data DATA -l LEARNER --memory-budget-mb 512 --seed 0 --out MODEL`` runs once
per learner as a subprocess, serially (the default settings: threshold calibration by
3-fold out-of-fold scores, i.e. four fits per command).

Measured per command: wall time, the exit code, and the peak resident set size twice: the
kernel's high-water mark of the child (``os.wait4``'s ``ru_maxrss``, which also covers the
descendants it waited for) and the largest sum of RSS over the process tree sampled by
psutil every 20 ms. The acceptance limit is ``--limit-gib`` (2 GiB) on the kernel figure.

Usage::

    python benchmarks/large_bag.py [--data PATH] [--n-bags 300] [--big 200000]
        [--budget 512] [--learners mimlknn mimlsvm] [--format arff|npz] [--seed 0]
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SCENE_ARFF, write_results  # noqa: E402

GIB = 2**30


def build_arff(scene: Path, out: Path, n_bags: int, big: int, seed: int) -> dict:
    """Write the first ``n_bags`` Scene bags (verbatim) plus one ``big``-instance bag."""
    lines = scene.read_text().splitlines()
    start = next(i for i, s in enumerate(lines) if s.strip().lower() == "@data") + 1
    data = [s for s in lines[start:] if s.strip() and not s.lstrip().startswith("%")]
    if len(data) < n_bags:
        raise SystemExit(f"{scene}: only {len(data)} bags, asked for {n_bags}")
    rows = data[:n_bags]
    # instances of those bags: the part between the quotes, rows separated by a literal \n
    inst = np.array([[float(v) for v in r.split(",")]
                     for s in rows for r in s.split('"')[1].split("\\n")])
    labels = rows[0].split('"')[2].lstrip(",")
    rng = np.random.default_rng(seed)
    mu, sd = inst.mean(axis=0), inst.std(axis=0)
    header = []
    for s in lines[:start]:
        if s.lower().startswith("@attribute id "):
            s = "@attribute id {" + ",".join(str(i) for i in range(1, n_bags + 2)) + "}"
        header.append(s)
    with open(out, "w") as f:
        f.write("\n".join(header) + "\n")
        for k, s in enumerate(rows):  # renumber the ids (the first n_bags keep theirs)
            f.write(f"{k + 1}," + s.split(",", 1)[1] + "\n")
        f.write(f'{n_bags + 1},"')
        for c0 in range(0, big, 20000):  # in chunks: no 200,000-row text in memory
            X = mu + sd * rng.standard_normal((min(big, c0 + 20000) - c0, inst.shape[1]))
            buf = io.StringIO()
            np.savetxt(buf, X, fmt="%.4f", delimiter=",", newline="\\n")
            chunk = buf.getvalue()
            f.write(("\\n" if c0 else "") + chunk[:-2])  # drop the trailing \n
        f.write(f'",{labels}\n')
    return {"n_bags": n_bags + 1, "n_instances": int(inst.shape[0] + big),
            "n_features": int(inst.shape[1]), "big_bag": big,
            "file_mb": round(out.stat().st_size / 2**20, 1)}


def run_fit(cmd: list[str]) -> dict:
    """Run ``cmd``; wall time, exit code, peak RSS (kernel high-water mark and psutil)."""
    import subprocess

    import psutil

    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         env={**os.environ, "COLUMNS": "200"})
    out_f = tempfile.TemporaryFile()
    import threading

    pump = threading.Thread(target=lambda: out_f.write(p.stdout.read()), daemon=True)
    pump.start()
    proc = psutil.Process(p.pid)
    sampled = 0
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        try:
            rss = proc.memory_info().rss + sum(c.memory_info().rss
                                               for c in proc.children(recursive=True))
            sampled = max(sampled, rss)
        except psutil.Error:
            pass
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    pump.join()
    out_f.seek(0)
    text = out_f.read().decode(errors="replace").strip().splitlines()
    return {"exit_code": p.returncode, "wall_s": round(wall, 1),
            "peak_rss_mib": round(ru.ru_maxrss / 1024, 1),  # Linux: KiB
            "peak_rss_sampled_mib": round(sampled / 2**20, 1),
            "output": text[-3:]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=SCENE_ARFF)
    ap.add_argument("--n-bags", type=int, default=300)
    ap.add_argument("--big", type=int, default=200_000)
    ap.add_argument("--budget", type=float, default=512)
    ap.add_argument("--learners", nargs="+", default=["mimlknn", "mimlsvm"])
    ap.add_argument("--format", choices=["arff", "npz"], default="arff")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit-gib", type=float, default=2.0)
    ap.add_argument("--name", default="large_bag", help="results file stem")
    args = ap.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix="mimlkit_large_bag_") as tmp:
        tmp = Path(tmp)
        data = tmp / "scene_large_bag.arff"
        info = build_arff(args.data, data, args.n_bags, args.big, args.seed)
        if args.format == "npz":
            from mimlkit.datasets import load_dataset, save_npz

            data = save_npz(load_dataset(data), tmp / "scene_large_bag.npz")
            info["file_mb"] = round(data.stat().st_size / 2**20, 1)
        print(f"dataset: {info}", flush=True)
        for name in args.learners:
            cmd = [sys.executable, "-m", "mimlkit.cli", "fit", "--data", str(data),
                   "-l", name, "--memory-budget-mb", f"{args.budget:g}",
                   "--seed", str(args.seed), "--out", str(tmp / f"model_{name}")]
            shown = ("mimlkit fit --data DATA -l " + name + f" --memory-budget-mb "
                     f"{args.budget:g} --seed {args.seed} --out MODEL")
            r = run_fit(cmd)
            r.update(learner=name, command=shown,
                     within_limit=r["exit_code"] == 0
                     and r["peak_rss_mib"] <= args.limit_gib * 1024)
            print(f"{name}: {r}", flush=True)
            rows.append(r)

    lines = ["| learner | exit | wall (s) | peak RSS (MiB, kernel) | peak RSS (MiB, sampled) "
             f"| ≤ {args.limit_gib:g} GiB |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['learner']} | {r['exit_code']} | {r['wall_s']} | "
                     f"{r['peak_rss_mib']} | {r['peak_rss_sampled_mib']} | "
                     f"{'yes' if r['within_limit'] else 'NO'} |")
    body = (f"Dataset: first {args.n_bags} MIML Scene bags + one bag of {args.big:,} random "
            f"instances ({info['n_instances']:,} instances, {info['n_features']} features; "
            f"{args.format.upper()} file of {info['file_mb']} MB). Each learner: "
            f"`{rows[0]['command'] if rows else ''}` (learner name varied), run serially as a "
            "subprocess; peak RSS = the child's `ru_maxrss` (kernel high-water mark) and the "
            "largest psutil sample of the process tree (20 ms polling).\n\n"
            + "\n".join(lines))
    write_results(args.name, {"dataset": info, "budget_mb": args.budget,
                              "format": args.format, "limit_gib": args.limit_gib,
                              "env_threads": {k: os.environ.get(k) for k in
                                              ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                               "MKL_NUM_THREADS")},
                              "runs": rows},
                  body, title="mimlkit fit with one 200,000-instance bag: peak memory")


if __name__ == "__main__":
    main()
