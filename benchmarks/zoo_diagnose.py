"""Why a zoo cell fails: one learner on one zoo dataset, refitted exactly as the zoo fits it.

``--cell DATASET:LEARNER`` refits the learner on the zoo's split with the zoo's per-job seed
(``mimlkit.evaluation.runner._job_seed``) and reports, for every label it predicts at all,
the calibration (held-out training) and test counts of its threshold, and the spread of the
calibration scores against the test scores. ``--rule before-bh`` runs with the threshold rule
of before the Benjamini-Hochberg margin (cross-check + z = 1.645, no BH) to show what the
margin changed. ``--seeds N`` instead fits random_state 0 .. N-1 (fixed thresholds) and
reports test / training AP and, where the learner has one, its training objective.

These are diagnoses **on the zoo's test part**; nothing here chooses a default (the
selections are ``select_threshold_margin.py`` and ``select_defaults.py``, inner splits only).

    python benchmarks/zoo_diagnose.py --cell stress-many-labels:smipr \
        --cell stress-large-bags:meanmil --name zoo_diagnose
    python benchmarks/zoo_diagnose.py --cell stress-many-labels:pooled-linear \
        --rule before-bh --name zoo_diagnose_before_bh
    python benchmarks/zoo_diagnose.py --cell stress-large-bags:ranklsim --seeds 6 \
        --params init=zero,n_init=1 --params init=mean,n_init=1 --name zoo_diagnose_ranklsim

Writes ``benchmarks/results/<name>.json`` + ``.md``.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402


def _params(text: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in filter(None, text.split(",")):
        k, v = kv.split("=", 1)
        for cast in (int, float):
            try:
                out[k] = cast(v)
                break
            except ValueError:
                continue
        else:
            out[k] = v
    return out


def _data(dname: str):
    from mimlkit.evaluation.zoo import zoo_datasets

    for _name, ds, split, note in zoo_datasets(only=[dname]):
        if ds is None:
            raise SystemExit(f"{dname}: {note}")
        return ds, np.asarray(split.train_idx), np.asarray(split.test_idx)
    raise SystemExit(f"unknown zoo dataset {dname!r}")


def _cell(dname: str, lname: str, params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Refit as the zoo does (seed 0, split 0) and describe the thresholds' behaviour."""
    import torch

    from mimlkit.evaluation.runner import _job_seed, _predict_from_scores
    from mimlkit.metrics import average_precision
    from mimlkit.registry import create

    ds, tr, te = _data(dname)
    seed = _job_seed(0, lname, 0)
    np.random.seed(seed % (2**32))
    random.seed(seed)
    torch.manual_seed(seed)
    est = create(lname, **params)
    if est.get_params(deep=False).get("random_state", 0) is None:
        est.set_params(random_state=seed % (2**31))
    seen: dict[str, np.ndarray] = {}
    orig = est._choose

    def capture(S, Yh, Y, mode, tc):
        seen.update(S=np.asarray(S), Yh=np.asarray(Yh))
        return orig(S, Yh, Y, mode, tc)

    est._choose = capture
    est.fit(ds.bags.take(tr), ds.Y[tr])
    Yte = np.asarray(ds.Y[te])
    Xte = ds.bags.take(te)
    S = np.asarray(est.decision_function(Xte), dtype=np.float64)
    thr = np.broadcast_to(np.asarray(est._threshold(), dtype=np.float64), S.shape[1:])
    P = _predict_from_scores(est, Xte, S)
    prior = np.broadcast_to(ds.Y[tr].mean(axis=0), Yte.shape)
    out = {"dataset": dname, "learner": lname, "params": params, "seed": seed,
           "hamming_loss": float((P != Yte).mean()), "empty_hamming_loss": float(Yte.mean()),
           "average_precision": float(average_precision(Yte, S)),
           "prior_average_precision": float(average_precision(Yte, prior)),
           "t_criterion": bool(est._use_t_criterion()),
           "calibration": getattr(est, "calibration_", None), "labels": []}
    q = (0.1, 0.5, 0.9)
    for k in np.flatnonzero(np.isfinite(thr)):
        y, p = Yte[:, k] == 1, S[:, k] > thr[k]
        row = {"label": int(k), "threshold": float(thr[k]),
               "train_positives": int((ds.Y[tr][:, k] == 1).sum()),
               "test_positives": int(y.sum()), "test_tp": int((p & y).sum()),
               "test_fp": int((p & ~y).sum()),
               "test_score_q10_50_90": np.quantile(S[:, k], q).round(3).tolist()}
        if "S" in seen:
            sc, yc = seen["S"][:, k], seen["Yh"][:, k] == 1
            pc = sc > thr[k]
            row.update(calibration_tp=int((pc & yc).sum()), calibration_fp=int((pc & ~yc).sum()),
                       calibration_score_q10_50_90=np.quantile(sc, q).round(3).tolist())
        out["labels"].append(row)
    md = [f"### {dname} / {lname} {params or ''}", "",
          f"zoo seed {seed}; calibration {out['calibration']}; T-criterion "
          f"{out['t_criterion']}. Test hamming loss {out['hamming_loss']:.4f} (empty "
          f"{out['empty_hamming_loss']:.4f}); AP {out['average_precision']:.3f} (label prior "
          f"{out['prior_average_precision']:.3f}). Labels predicted at all: "
          f"{len(out['labels'])} of {S.shape[1]}.", ""]
    if out["labels"]:
        md += ["| label | train pos. | calibration TP / FP | test pos. | test TP / FP | "
               "calibration scores q10 / q50 / q90 | test scores q10 / q50 / q90 |",
               "|---|---|---|---|---|---|---|"]
        for r in out["labels"]:
            md.append(f"| {r['label']} | {r['train_positives']} | "
                      f"{r.get('calibration_tp', '—')} / {r.get('calibration_fp', '—')} | "
                      f"{r['test_positives']} | {r['test_tp']} / {r['test_fp']} | "
                      f"{r.get('calibration_score_q10_50_90', '—')} | "
                      f"{r['test_score_q10_50_90']} |")
    return out, md + [""]


def _seeds(dname: str, lname: str, params: dict[str, Any], n: int):
    from mimlkit.metrics import average_precision
    from mimlkit.registry import create

    ds, tr, te = _data(dname)
    rows, md = [], [f"### {dname} / {lname} {params}, fixed thresholds, random_state 0..{n - 1}",
                    "", "| random_state | test AP | training AP | training objective |",
                    "|---|---|---|---|"]
    for s in range(n):
        est = create(lname, **{"threshold_mode": "fixed", **params, "random_state": s})
        est.fit(ds.bags.take(tr), ds.Y[tr])
        r = {"random_state": s,
             "test_ap": float(average_precision(ds.Y[te], est.decision_function(ds.bags.take(te)))),
             "train_ap": float(average_precision(ds.Y[tr],
                                                 est.decision_function(ds.bags.take(tr)))),
             "objective": getattr(est, "objective_", None)}
        rows.append(r)
        obj = "—" if r["objective"] is None else f"{r['objective']:.4f}"
        md.append(f"| {s} | {r['test_ap']:.3f} | {r['train_ap']:.3f} | {obj} |")
    return {"dataset": dname, "learner": lname, "params": params, "rows": rows}, md + [""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", action="append", required=True, help="DATASET:LEARNER")
    ap.add_argument("--params", action="append", default=None,
                    help="k=v,k=v learner parameters (repeat for several settings)")
    ap.add_argument("--rule", choices=["current", "before-bh"], default="current")
    ap.add_argument("--seeds", type=int, default=0, help="fit random_state 0..N-1 instead")
    ap.add_argument("--name", default="zoo_diagnose")
    args = ap.parse_args()
    from mimlkit.learners import _thresholds

    if args.rule == "before-bh":  # the rule the second selection chose
        _thresholds.FDR_Q, _thresholds.CROSS_CHECK = 0.0, True
    settings = [_params(p) for p in (args.params or [""])]
    results, md = [], [f"Threshold rule: {args.rule} (FDR_Q = {_thresholds.FDR_Q}, cross-check "
                       f"{_thresholds.CROSS_CHECK}). Diagnosis on the zoo's test part; nothing "
                       "here selects a default.", ""]
    for cell in args.cell:
        dname, lname = cell.split(":", 1)
        for params in settings:
            r, m = (_seeds(dname, lname, params, args.seeds) if args.seeds
                    else _cell(dname, lname, params))
            results.append(r)
            md += m
            print("\n".join(m), flush=True)
    write_results(args.name, {"rule": args.rule, "cells": results}, "\n".join(md),
                  title="Zoo cells diagnosed")


if __name__ == "__main__":
    main()
