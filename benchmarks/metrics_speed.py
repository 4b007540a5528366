"""Speed of mimlkit's ranking metrics vs scikit-learn on 100,000 x 100 random scores.

Ranking loss, coverage and LRAP (the brief), plus label-based mAP and macro-AUC.

Labels are Bernoulli with a realistic density (default 0.05, i.e. ~5 labels per bag, as in
larger multi-label sets); scores are random normals (float64 and float32) plus a tied variant
(scores rounded to 1 decimal) to exercise the tie handling. Each mimlkit timing is the best
of ``--repeats`` runs, and so is scikit-learn's (same treatment for both sides: a first,
cold call is never compared with a warm best-of-3). Values are checked to agree (sklearn
convention) before timings are recorded.

    python benchmarks/metrics_speed.py [--n 100000] [--q 100] [--density 0.05]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn import metrics as skm

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mimlkit.metrics as M  # noqa: E402
from _common import write_results  # noqa: E402


def _best(fn, repeats: int) -> tuple[float, float]:
    best = float("inf")
    value = float("nan")
    for _ in range(repeats):
        t0 = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t0)
    return best, float(value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--q", type=int, default=100)
    ap.add_argument("--density", type=float, default=0.05)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    Y = (rng.random((args.n, args.q)) < args.density).astype(np.int8)
    S64 = rng.normal(size=(args.n, args.q))
    cases = {"float64": S64, "float32": S64.astype(np.float32),
             "float64-ties": np.round(S64, 1)}
    metrics = {
        "ranking_loss": (lambda Y, S: M.ranking_loss(Y, S, convention="sklearn"),
                         lambda Y, S: M.ranking_loss(Y, S),
                         skm.label_ranking_loss),
        "coverage": (lambda Y, S: M.coverage(Y, S, convention="sklearn"),
                     lambda Y, S: M.coverage(Y, S),
                     skm.coverage_error),
        "average_precision (LRAP)": (
            lambda Y, S: M.average_precision(Y, S, convention="sklearn"),
            lambda Y, S: M.average_precision(Y, S),
            skm.label_ranking_average_precision_score),
        "mAP (label-based)": (M.mean_average_precision, M.mean_average_precision,
                              lambda Y, S: skm.average_precision_score(Y, S, average="macro")),
        "macro-AUC": (M.macro_auc, M.macro_auc,
                      lambda Y, S: skm.roc_auc_score(Y, S, average="macro")),
    }
    rows = []
    for case, S in cases.items():
        for name, (ours_sk, ours_zh, theirs) in metrics.items():
            t_ours, v_ours = _best(lambda: ours_sk(Y, S), args.repeats)  # noqa: B023
            t_zh, _ = _best(lambda: ours_zh(Y, S), args.repeats)  # noqa: B023
            t_sk, v_sk = _best(lambda: theirs(Y, S), args.repeats)  # noqa: B023
            v_sk = float(v_sk)
            diff = abs(v_ours - v_sk)
            if "LRAP" in name and "ties" in case:
                # pessimistic ties (docs/metrics.md): AP <= LRAP on tied scores, by design
                if v_ours > v_sk + 1e-9:
                    raise SystemExit(f"{case} {name}: mimlkit {v_ours} > LRAP {v_sk}")
            elif diff > 1e-9:
                raise SystemExit(f"{case} {name}: mimlkit {v_ours} != sklearn {v_sk}")
            rows.append({"scores": case, "metric": name, "mimlkit_s": t_ours,
                         "mimlkit_zhang_s": t_zh, "sklearn_s": t_sk,
                         "speedup": t_sk / t_ours, "abs_diff": diff})
            print(f"{case:13s} {name:26s} mimlkit {t_ours:7.3f}s (zhang {t_zh:7.3f}s)  "
                  f"sklearn {t_sk:7.3f}s  x{t_sk / t_ours:6.1f}  |diff| {diff:.1e}", flush=True)

    md = [f"Y: {args.n:,} x {args.q} Bernoulli({args.density}) labels; scores N(0,1) "
          "(`float64-ties`: rounded to 1 decimal). mimlkit: best of "
          f"{args.repeats} runs, `convention='sklearn'` (checked equal to scikit-learn "
          "to 1e-9, except AP on tied scores: pessimistic ties, <= LRAP, docs/metrics.md); "
          "the `zhang` column is the default convention. scikit-learn: best of "
          f"{args.repeats} runs too (like for like).",
          "",
          "| scores | metric | mimlkit (s) | mimlkit zhang (s) | scikit-learn (s) | speed-up |",
          "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        md.append(f"| {r['scores']} | {r['metric']} | {r['mimlkit_s']:.3f} | "
                  f"{r['mimlkit_zhang_s']:.3f} | {r['sklearn_s']:.3f} | "
                  f"**{r['speedup']:.1f}x** |")
    write_results("metrics_speed", {"args": vars(args), "rows": rows}, "\n".join(md),
                  title="Ranking metrics: mimlkit vs scikit-learn")


if __name__ == "__main__":
    main()
