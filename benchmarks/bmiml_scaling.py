"""BMIML scaling on synthetic bags shaped like the paper's largest set (NIH: 14 labels,
4 instances per bag, 256 features), at 2K ... 120K training bags.

Each size runs in its own subprocess (clean peak-memory numbers) with the BLAS thread count
given by ``--threads``. Reported: fit seconds (AWLEL and SMIPR stages), predict seconds on a
fixed test set, peak RSS (psutil sampling thread, whole process), test average precision
(sanity only), and the fitted exponent b of ``fit_seconds ~ n^b``.

    python benchmarks/bmiml_scaling.py                       # 2K, 10K, 30K, 60K, 120K
    python benchmarks/bmiml_scaling.py --sizes 2000 10000    # a quick look
    python benchmarks/bmiml_scaling.py --sizes 2000 120000 --keep-previous   # add rows

By default BMIML runs with the **library defaults** (``BMIML(random_state=0)``: N3 = 1000
enhancement nodes, SMIPR medoids capped at 256, data-chosen thresholds) and 2 BLAS threads.
``--n-enhancement 500`` is a reduced setting and is labelled as such in the table.
``--keep-previous`` keeps the rows of the existing results file (each row says its setting,
thread count and date) and adds the new ones, so a defaults row stands beside an older
reduced-setting row.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

K, M, D = 14, 4, 256


def make_data(n: int, seed: int):
    """n bags x 4 instances x 256 features, 14 labels (imbalanced, cardinality ~1.3).

    Each positive label puts one instance near its concept centre; other instances are
    background. Generated in chunks, float32."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(K, D)).astype(np.float32) * 0.9
    background = rng.normal(size=(8, D)).astype(np.float32) * 0.9
    sources = np.vstack([centres, background])
    prev = np.linspace(0.03, 0.2, K)
    Y = (rng.random((n, K)) < prev).astype(np.int8)
    empty = Y.sum(1) == 0
    Y[empty, rng.integers(0, K, size=int(empty.sum()))] = 1
    keys = Y + 0.5 * rng.random((n, K))
    order = np.argsort(-keys, axis=1)[:, :M]
    cnt = np.minimum(Y.sum(1), M)
    src = np.where(np.arange(M)[None, :] < cnt[:, None], order,
                   K + rng.integers(0, background.shape[0], size=(n, M)))
    X = np.empty((n, M, D), dtype=np.float32)
    for s in range(0, n, 8192):
        e = min(n, s + 8192)
        X[s:e] = sources[src[s:e]] + rng.standard_normal((e - s, M, D), dtype=np.float32)
    return X, Y


class PeakRSS:
    """Samples the process RSS every 50 ms in a thread; ``peak`` in bytes."""

    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.05)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


def run_one(n: int, n_test: int, seed: int, n_enhancement: int | None) -> dict:

    from mimlkit.bags import as_bags
    from mimlkit.learners.broad.awlel import AWLEL
    from mimlkit.learners.broad.bmiml import BMIML
    from mimlkit.metrics import average_precision

    X, Y = make_data(n + n_test, seed)
    tr = as_bags(X[:n])
    te = as_bags(X[n:])
    Ytr, Yte = Y[:n], Y[n:]
    del X
    model = (BMIML(random_state=0) if n_enhancement is None
             else BMIML(awlel=AWLEL(n_enhancement=n_enhancement), random_state=0))
    with PeakRSS() as mem:
        t0 = time.perf_counter()
        model.fit(tr, Ytr)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        S = model.decision_function(te)
        pred_s = time.perf_counter() - t0
    return {"n_bags": n, "n_test": n_test, "fit_seconds": fit_s,
            "awlel_seconds": model.fit_seconds_.get("awlel"),
            "smipr_seconds": model.fit_seconds_.get("smipr"),
            "awlel_iterations": int(model.awlel_.n_iter_),
            "n_medoids": int(model.smipr_.n_clusters_),
            "mlp_solver": model.smipr_.mlp_.solver,
            "predict_seconds": pred_s, "peak_rss_gib": mem.peak / 2**30,
            "test_average_precision": float(average_precision(Yte, S))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000, 30000, 60000, 120000])
    ap.add_argument("--n-test", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-enhancement", type=int, default=None,
                    help="AWLEL enhancement nodes N3 (default: the library default, 1000; "
                         "anything else is a reduced/changed setting, labelled as such)")
    ap.add_argument("--keep-previous", action="store_true",
                    help="keep the rows of the existing results file and add the new ones")
    ap.add_argument("--name", default="bmiml_scaling")
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(run_one(args.one, args.n_test, args.seed, args.n_enhancement)))
        return
    import numpy as np

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "benchmarks"))
    from _common import write_results

    env = dict(os.environ)
    for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[v] = str(args.threads)
    import datetime as _dt

    setting = ("library defaults (N3 = 1000)" if args.n_enhancement is None else
               f"reduced: N3 = {args.n_enhancement} (not the default)")
    previous = []
    old_path = root / "benchmarks" / "results" / f"{args.name}.json"
    if args.keep_previous and old_path.is_file():
        old = json.loads(old_path.read_text())
        for r in old.get("rows", []):
            r.setdefault("setting", "reduced: N3 = 500 (not the default)")
            r.setdefault("threads", old.get("threads"))
            r.setdefault("date", old.get("date"))
            previous.append(r)
    rows = []
    for n in args.sizes:
        extra = [] if args.n_enhancement is None else ["--n-enhancement",
                                                       str(args.n_enhancement)]
        out = subprocess.run([sys.executable, __file__, "--one", str(n), "--n-test",
                              str(args.n_test), "--seed", str(args.seed), *extra],
                             env=env, capture_output=True, text=True, check=False)
        if out.returncode != 0:
            print(out.stderr, file=sys.stderr)
            raise SystemExit(f"size {n} failed")
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row["setting"] = setting
        row["threads"] = args.threads
        row["date"] = _dt.datetime.now().isoformat(timespec="seconds")
        rows.append(row)
        print(f"n={n}: fit {row['fit_seconds']:.1f}s (AWLEL {row['awlel_seconds']:.1f}, "
              f"SMIPR {row['smipr_seconds']:.1f}), predict {row['predict_seconds']:.1f}s, "
              f"peak {row['peak_rss_gib']:.2f} GiB, AP {row['test_average_precision']:.3f}",
              flush=True)
    all_rows = previous + rows
    ns = np.array([r["n_bags"] for r in rows], dtype=float)
    ts = np.array([r["fit_seconds"] for r in rows])
    expo = float(np.polyfit(np.log(ns), np.log(ts), 1)[0]) if len(rows) > 1 else float("nan")
    big = [r for r in rows if r["n_bags"] >= 10000]
    expo_big = (float(np.polyfit(np.log([r["n_bags"] for r in big]),
                                 np.log([r["fit_seconds"] for r in big]), 1)[0])
                if len(big) > 1 else float("nan"))
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    lines = [
        f"Synthetic bags: {K} labels, {M} instances/bag, {D} features; "
        "`BMIML(random_state=0)` (library defaults) unless the row's setting says otherwise "
        f"(p = 512 + 100 + N3 + N3//2 nodes); predict on {args.n_test} test bags. This run: "
        f"{setting}, BLAS threads = {args.threads}; load average at its end: {load}.",
        "",
        "| setting | threads | date | bags | fit s | AWLEL s | SMIPR s | AWLEL iters | medoids "
        "| MLP | predict s | peak RSS GiB | test AP |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in all_rows:
        lines.append(f"| {r['setting']} | {r['threads']} | {str(r['date'])[:10]} "
                     f"| {r['n_bags']:,} | {r['fit_seconds']:.1f} | {r['awlel_seconds']:.1f} "
                     f"| {r['smipr_seconds']:.1f} | {r['awlel_iterations']} | {r['n_medoids']} "
                     f"| {r['mlp_solver']} | {r['predict_seconds']:.2f} "
                     f"| {r['peak_rss_gib']:.2f} | {r['test_average_precision']:.3f} |")
    lines += ["", f"Fitted exponent of fit time vs n (this run's sizes): **{expo:.2f}**; "
                  f"over n >= 10K: **{expo_big:.2f}**.",
              "", "Paper (Table VII, NIH 120K, i7-9700K): BMIML 68,459.3 s."]
    write_results(args.name, {"rows": all_rows, "exponent": expo, "exponent_ge_10k": expo_big,
                              "threads": args.threads, "load_average": load},
                  "\n".join(lines), title="BMIML scaling (synthetic NIH-shaped bags)")


if __name__ == "__main__":
    main()
