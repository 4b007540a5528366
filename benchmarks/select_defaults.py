"""Choose a learner's default among candidate settings on inner splits of training parts only.

For every zoo dataset (``mimlkit.evaluation.zoo.zoo_datasets``: the official training file,
or the training 2/3 of the zoo's seeded split) the **training part** is split again
(``--inner`` random 2/3–1/3 splits, seeds 101, 102, ...); each candidate is fitted on the
inner-train bags and scored on the inner-validation bags. The zoo's test parts are never
touched. The candidate with the best mean rank (AP, ties averaged) across datasets wins;
ties in rank go to the earlier (simpler) candidate.

    python benchmarks/select_defaults.py --learner bmiml
    python benchmarks/select_defaults.py --learner awlel --only emotions msrc_v2-tiles64

Writes ``benchmarks/results/select_<learner>.json`` + ``.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402

# candidate settings per learner: name -> constructor parameters. The first is the current
# default. Thresholds are irrelevant to AP, so every candidate runs with fixed thresholds.
CANDIDATES: dict[str, dict[str, dict[str, Any]]] = {
    "bmiml": {  # awlel__* / smipr__* build the sub-learner with those parameters
        "AWLEL lambda=1e-3, g only": {"awlel__reg_lambda": 1e-3, "awlel__max_iter": 10},
        "AWLEL lambda=auto, g only": {"awlel__reg_lambda": "auto", "awlel__max_iter": 10},
        "AWLEL auto one solve, g only": {"awlel__reg_lambda": "auto", "awlel__max_iter": 1},
        "AWLEL lambda=auto, fusion 0.5": {"awlel__reg_lambda": "auto", "awlel__max_iter": 10,
                                          "fusion_alpha": 0.5},
        "AWLEL auto one solve, fusion 0.5": {"awlel__reg_lambda": "auto",
                                             "awlel__max_iter": 1, "fusion_alpha": 0.5},
        "AWLEL auto one solve, fusion 0.5, SMIPR average": {
            "awlel__reg_lambda": "auto", "awlel__max_iter": 1, "fusion_alpha": 0.5,
            "smipr__variant": "average"},
        "AWLEL auto one solve, fusion 0.25, SMIPR average": {
            "awlel__reg_lambda": "auto", "awlel__max_iter": 1, "fusion_alpha": 0.25,
            "smipr__variant": "average"},
        "AWLEL auto one solve, fusion 0.75, SMIPR average": {
            "awlel__reg_lambda": "auto", "awlel__max_iter": 1, "fusion_alpha": 0.75,
            "smipr__variant": "average"},
        # round 3, after SMIPR's own selection moved its L2 penalty to alpha = 1
        **{f"round 3: fusion {a}, SMIPR average alpha=1": {
            "awlel__reg_lambda": "auto", "awlel__max_iter": 1, "fusion_alpha": a,
            "smipr__variant": "average", "smipr__alpha": 1.0} for a in (0.25, 0.5, 0.75, 1.0)},
    },
    "awlel": {
        "lambda=1e-3": {"reg_lambda": 1e-3},
        "lambda=auto": {"reg_lambda": "auto"},
        "lambda=auto, one solve (no IRLS re-weighting)": {"reg_lambda": "auto", "max_iter": 1},
    },
    "mimlboost": {
        "paper codes (AIJ Eq. 5)": {"code_scale": "paper"},
        "adjacent-label kernel 0.5": {"code_scale": 0.5},
        "adjacent-label kernel 0.01": {"code_scale": 0.01},
    },
    "mimlfast": {
        "defaults (Scene-era)": {"bias": None, "scale": "auto"},
        "per-feature standardisation": {"bias": None, "scale": "standard"},
        "lr 0.02": {"bias": None, "lr": 0.02},
        "one sub-concept": {"bias": None, "n_subconcepts": 1},
        "standardisation, lr 1e-3, 100 epochs": {"bias": None, "scale": "standard",
                                                 "lr": 1e-3, "n_epochs": 100},
        "standardisation, norm bound 3": {"bias": None, "scale": "standard", "norm_up": 3.0},
        "standardisation, norm bound 1": {"bias": None, "scale": "standard", "norm_up": 1.0},
        "no bias column (paper model)": {"bias": None},
        "bias column": {"bias": 1.0},
        "bias column, standardisation": {"bias": 1.0, "scale": "standard"},
        "standardisation, norm bound 1, bias": {"bias": 1.0, "scale": "standard",
                                                "norm_up": 1.0},
        "standardisation, norm bound 1, 80 epochs": {"bias": None, "scale": "standard",
                                                     "norm_up": 1.0, "n_epochs": 80},
        "standardisation, norm bound 0.5": {"bias": None, "scale": "standard",
                                            "norm_up": 0.5},
    },
    "transmil": {
        "lr 3e-3, 15 epochs": {"max_epochs": 15},
        "lr 1e-3, 15 epochs": {"lr": 1e-3},
        "lr 3e-4, 30 epochs": {"lr": 3e-4, "max_epochs": 30},
        "lr 3e-3, 15 epochs, 10% internal validation": {"validation_fraction": 0.1},
        "lr 1e-3, 15 epochs, 10% internal validation": {"lr": 1e-3,
                                                        "validation_fraction": 0.1},
        # round 2 (yeast: the class token alone overfits single-instance bags)
        "class token + mean token readout": {"readout": "cls+mean"},
        # round 3 (few bags: 8 epochs of 73 bags are 24 optimizer steps)
        "at least 100 optimizer steps": {"min_steps": 100},
        "at least 200 optimizer steps": {"min_steps": 200},
        "8 epochs": {"max_epochs": 8},  # selected in round 2: the default now
        "cls+mean, 30 epochs, 20% internal validation": {
            "readout": "cls+mean", "max_epochs": 30, "validation_fraction": 0.2},
    },
    "bls": {  # enhancement nodes relative to the data size (issue 13, item 3)
        "1000 enhancement nodes": {},
        "enhancement nodes = training bags, within [100, 1000]": {"n_enhancement": "auto"},
        "300 enhancement nodes": {"n_enhancement": 300},
    },
    "meanmil": {  # few bags (73 on stress-large-bags: 3 optimizer steps per epoch)
        "30 epochs": {},
        "at least 200 optimizer steps": {"min_steps": 200},
        "at least 400 optimizer steps": {"min_steps": 400},
    },
    "maxmil": {  # the same class (PoolMIL), max pooling; the same candidates
        "30 epochs": {},
        "at least 200 optimizer steps": {"min_steps": 200},
        "at least 400 optimizer steps": {"min_steps": 400},
    },
    # the learners of paper 001's Table 1 added for issue 18 (their specs: docs/<name>.md)
    "dba": {
        "full covariance, background auto": {},
        "diagonal covariance": {"covariance": "diag"},
        "full covariance + background": {"background": True},
        "diagonal + background": {"covariance": "diag", "background": True},
        "scores = inferred proportions": {"bag_score": "proportion"},
    },
    "kisar": {
        "alternating, shared key prototypes": {},
        "independent label SVMs (n_iter=1)": {"n_iter": 1},
    },
    "ranklsim": {
        # {} = the defaults at run time: per-step support updates from W = 0 in round 1
        # (select_ranklsim.md); defaults changed since (docs/ranklsim.md)
        "bias column, per-step support update": {},
        "no bias (paper)": {"bias": None},
        "paper's alternation (support fixed per epoch)": {"support_update": "heuristic"},
        # round 3 (Eq. 3 is non-convex: the start decides the local optimum)
        "heuristic, W = 0 start (round 3 current)": {"support_update": "heuristic"},
        "heuristic, bag-mean start": {"support_update": "heuristic", "init": "mean"},
        "heuristic, 4 restarts, lowest objective": {"support_update": "heuristic", "n_init": 4},
        "heuristic, bag-mean start, 4 restarts": {"support_update": "heuristic", "init": "mean",
                                                  "n_init": 4},
    },
    # the scale="auto" rule (docs/defaults.md §1) against its alternatives
    "mimlsvm": {
        "scale=auto": {"scale": "auto"},
        "per-feature standardisation": {"scale": "standard"},
        "robust (median / IQR)": {"scale": "robust"},
        "raw features (paper)": {"scale": None},
    },
    "mimlknn": {
        "scale=auto": {"scale": "auto"},
        "per-feature standardisation": {"scale": "standard"},
        "robust (median / IQR)": {"scale": "robust"},
        "raw features (paper)": {"scale": None},
    },
    "smipr": {
        "max Hausdorff": {"variant": "max"},
        "average Hausdorff": {"variant": "average"},
        "average Hausdorff, alpha=1": {"variant": "average", "alpha": 1.0},
        "average Hausdorff, alpha=0.1": {"variant": "average", "alpha": 0.1},
        "average Hausdorff, alpha=100": {"variant": "average", "alpha": 100.0},
    },
}
DEFAULT_DATASETS = ["scene", "emotions", "yeast", "msrc_v2-tiles64", "stress-scales"]


def _resolve(params: dict[str, Any]) -> dict[str, Any]:
    """``sub__param`` entries -> a sub-learner (``create(sub, param=...)``) under ``sub``."""
    from mimlkit.registry import create

    out: dict[str, Any] = {}
    subs: dict[str, dict[str, Any]] = {}
    for k, v in params.items():
        if "__" in k:
            sub, name = k.split("__", 1)
            subs.setdefault(sub, {})[name] = v
        else:
            out[k] = v
    for sub, kw in subs.items():
        out[sub] = create(sub, **kw)
    return out


def _quiet(est: Any) -> None:
    """Seed 0 and fixed thresholds (AP does not depend on them), where the learner has them."""
    names = est.get_params(deep=False)
    est.set_params(**{k: v for k, v in (("random_state", 0), ("threshold_mode", "fixed"))
                      if k in names})


def _ranks(values: np.ndarray) -> np.ndarray:
    """Rank 1 = best (highest) per row, ties averaged."""
    from scipy.stats import rankdata

    return np.vstack([rankdata(-row, method="average") for row in values])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--learner", required=True, choices=sorted(CANDIDATES))
    ap.add_argument("--only", nargs="*", default=DEFAULT_DATASETS)
    ap.add_argument("--inner", type=int, default=1, help="inner splits per dataset")
    ap.add_argument("--max-train", type=int, default=1200,
                    help="subsample the training part to at most this many bags (speed)")
    ap.add_argument("--data", default=None)
    ap.add_argument("--candidates", nargs="*", default=None,
                    help="run only these candidate names (default: all)")
    ap.add_argument("--reference", nargs="*", default=["pooled-linear"],
                    help="learners scored on the same inner splits for comparison (defaults; "
                    "not candidates)")
    ap.add_argument("--name", default=None, help="results name (default select_<learner>)")
    args = ap.parse_args()

    from mimlkit.evaluation.zoo import zoo_datasets
    from mimlkit.metrics import average_precision
    from mimlkit.registry import create

    cands = CANDIDATES[args.learner]
    if args.candidates:
        unknown = set(args.candidates) - set(cands)
        if unknown:
            raise SystemExit(f"unknown candidates: {sorted(unknown)}")
        cands = {k: v for k, v in cands.items() if k in args.candidates}
    names = list(cands)
    refs: dict[str, list[float]] = {}
    rows: list[dict[str, Any]] = []
    table: dict[str, list[float]] = {}
    for dname, ds, split, note in zoo_datasets(args.data, only=args.only, stress=True):
        if ds is None:
            print(f"{dname}: {note}", flush=True)
            continue
        train = np.asarray(split.train_idx)
        scores = np.zeros((args.inner, len(names)))
        for s in range(args.inner):
            rng = np.random.default_rng(101 + s)
            idx = rng.permutation(train)[: args.max_train]
            cut = int(round(2 * len(idx) / 3))
            tr, va = np.sort(idx[:cut]), np.sort(idx[cut:])
            btr, bva = ds.bags.take(tr), ds.bags.take(va)
            for j, cname in enumerate(names):
                est = create(args.learner, **_resolve(cands[cname]))
                _quiet(est)
                t0 = time.perf_counter()
                est.fit(btr, ds.Y[tr])
                fit_s = time.perf_counter() - t0
                ap_ = float(average_precision(ds.Y[va], est.decision_function(bva)))
                scores[s, j] = ap_
                rows.append({"dataset": dname, "inner_split": s, "candidate": cname,
                             "average_precision": ap_, "fit_seconds": fit_s,
                             "n_train": len(tr), "n_validation": len(va)})
                print(f"{dname} inner {s} {cname}: AP {ap_:.4f} ({fit_s:.1f} s)", flush=True)
            for ref in args.reference:
                est = create(ref)
                _quiet(est)
                est.fit(btr, ds.Y[tr])
                ap_ = float(average_precision(ds.Y[va], est.decision_function(bva)))
                refs.setdefault(ref, []).append(ap_)
                rows.append({"dataset": dname, "inner_split": s, "reference": ref,
                             "average_precision": ap_})
        table[dname] = list(scores.mean(axis=0))
    if not table:
        raise SystemExit("no dataset found")
    M = np.array([table[d] for d in table])
    mean_rank = _ranks(M).mean(axis=0)
    best = names[int(np.flatnonzero(mean_rank == mean_rank.min())[0])]
    lines = [f"Inner splits of the training parts only ({args.inner} per dataset, training "
             f"part subsampled to ≤ {args.max_train} bags); AP on the inner validation bags.",
             "", "| candidate | " + " | ".join(table) + " | mean rank |",
             "|---|" + "---|" * (len(table) + 1)]
    for j, c in enumerate(names):
        cells = " | ".join(f"{table[d][j]:.3f}" for d in table)
        lines.append(f"| {c} `{cands[c]}` | {cells} | {mean_rank[j]:.2f} |")
    for ref in args.reference:
        vals = [np.mean([r["average_precision"] for r in rows if r.get("reference") == ref
                         and r["dataset"] == d]) for d in table]
        lines.append(f"| *reference: {ref} (defaults)* | "
                     + " | ".join(f"{v:.3f}" for v in vals) + " | — |")
    lines += ["", f"Selected: **{best}** `{cands[best]}`"]
    write_results(args.name or f"select_{args.learner}",
                  {"learner": args.learner, "candidates": cands, "rows": rows,
                   "mean_rank": dict(zip(names, map(float, mean_rank))), "selected": best},
                  "\n".join(lines) + "\n",
                  title=f"Default selection for {args.learner} (inner splits only)")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
