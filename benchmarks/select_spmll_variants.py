"""Single-positive Scene: which OPML variant grid and which training protocol, chosen on inner
splits of the training parts only (issue 15).

Each of the first ``--outer`` Scene outer splits (``attention_mil._splits``) gives its
**training part** only: a third of it is an inner test part, the rest runs the single-positive
protocol exactly as ``attention_mil.py --stage spmll`` does (a fully labelled validation fifth,
``spmll_split``; one positive kept per remaining bag, ``make_single_positive``). The outer test
parts are never read.

Protocols:

* ``fixed`` — the ``abmil`` defaults' 30 epochs (the stage's protocol up to the tenth session);
* ``es``    — the protocol of Cole et al. that OPML follows: the epoch with the best validation
  mAP is kept (``fit(..., eval_set=validation)``), for every loss (full, AN-BCE and OPML).

Pipelines (each chooses per split, on the validation fifth, by the metric reported):

* ``P0`` the stage's grid so far: (a, b) in ``SPMLL_AB`` at lr 1e-2, then label correction
  (``max_total`` 1.0) and soft OPML at the best pair;
* ``P1`` P0 plus a label correction bounded by the hidden positives the validation part implies
  (``hidden_positive_budget``);
* ``P2`` P1 under ``es``;
* ``P3`` P2 with lr in {1e-2, 3e-3};
* ``P4`` P1 with lr in {1e-2, 3e-3} (``fixed``).

Reported per pipeline: inner-test AP / mAP and the share of the AN-BCE -> full gap it closes,
both references trained under the pipeline's protocol. The pipeline with the larger mean share
closed (AP and mAP averaged), ties to the simpler (lower number), becomes the stage's protocol.

Probes (``--probe``): ``grid`` also fits single configurations read one by one (the table at
the end of ``select_spmll_variants.md``); ``early`` fits only the correction spent after two
epochs (``select_spmll_variants_early.md``); ``precision`` measures how well AN-BCE scores
single out the hidden positives a correction would flip (``..._precision.md``).

    python benchmarks/select_spmll_variants.py --outer 8 --jobs 2 --probe grid
    python benchmarks/select_spmll_variants.py --outer 8 --jobs 2 --probe early
    python benchmarks/select_spmll_variants.py --outer 8 --jobs 2 --probe precision
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, write_results  # noqa: E402
from attention_mil import (  # noqa: E402
    SPMLL_AB,
    SPMLL_CORRECTION,
    _scene,
    _splits,
    spmll_pick,
    spmll_protocol,
    spmll_runner,
)

NAME = "select_spmll_variants"
PIPELINES = {
    "P0": {"protocol": "fixed", "lrs": [1e-2], "ext": ["OPML+corr", "softOPML"]},
    "P1": {"protocol": "fixed", "lrs": [1e-2], "ext": ["OPML+corr", "OPML+budget", "softOPML"]},
    "P2": {"protocol": "es", "lrs": [1e-2], "ext": ["OPML+corr", "OPML+budget", "softOPML"]},
    "P3": {"protocol": "es", "lrs": [1e-2, 3e-3],
           "ext": ["OPML+corr", "OPML+budget", "softOPML"]},
    "P4": {"protocol": "fixed", "lrs": [1e-2, 3e-3],
           "ext": ["OPML+corr", "OPML+budget", "softOPML"]},
}
METRICS = ("ap", "map")


def _probe_candidates(budget: list[float], probe: str
                      ) -> list[tuple[tuple, dict[str, Any], str]]:
    """``--probe``: single configurations fitted only to be read one by one (not pipelines).

    ``grid``: the budgeted correction at every pair, weaker pushes on the negatives (b = 0.9),
    soft OPML with a larger power, the correction under AN-BCE. ``early``: the budgeted
    correction spent at once after two epochs (scale 1), before the network has fitted the
    unobserved entries it would rank, and a still weaker negative push (b = 0.97)."""
    corr = {**SPMLL_CORRECTION, "max_total": budget}
    out = []
    if probe == "early":
        early = {"scale": 1.0, "base": "n_j", "warmup_epochs": 2, "max_total": budget}
        for proto in ("fixed", "es"):
            for a, b in ((0.5, 0.5), (0.1, 0.9), (0.1, 0.1)):
                out.append((("OPML+early", a, b, 1e-2, proto),
                            {"loss": "opml", "loss_params": {"a": a, "b": b}, "lr": 1e-2,
                             "label_correction": early}, proto))
            out.append((("an+early", proto), {"loss": "an", "label_correction": early}, proto))
            out.append((("opml", 0.1, 0.97, 1e-2, proto),
                        {"loss": "opml", "loss_params": {"a": 0.1, "b": 0.97}, "lr": 1e-2},
                        proto))
        return out
    for proto in ("fixed", "es"):
        for a, b in SPMLL_AB:
            out.append((("OPML+budget", a, b, 1e-2, proto),
                        {"loss": "opml", "loss_params": {"a": a, "b": b}, "lr": 1e-2,
                         "label_correction": corr}, proto))
        for a, b in ((0.5, 0.9), (0.1, 0.9)):
            out.append((("opml", a, b, 1e-2, proto),
                        {"loss": "opml", "loss_params": {"a": a, "b": b}, "lr": 1e-2}, proto))
        out.append((("softOPML3", 0.5, 0.5, 1e-2, proto),
                    {"loss": "opml_soft", "loss_params": {"a": 0.5, "b": 0.5, "gamma": 3.0},
                     "lr": 1e-2}, proto))
        out.append((("an+budget", proto), {"loss": "an", "label_correction": corr}, proto))
    return out


def _inner_one(ds, i: int, tr: np.ndarray, probe: str | None = None) -> dict[str, Any]:
    perm = np.random.default_rng(7000 + i).permutation(len(tr))
    n_te = len(tr) // 3
    ite, part = np.sort(tr[perm[:n_te]]), np.sort(tr[perm[n_te:]])
    ftr, val, Ysp, budget = spmll_protocol(ds, i, part)
    fit = spmll_runner(ds, ftr, val, ite)

    def run(key: tuple, Y: np.ndarray, protocol: str, **kw) -> dict[str, dict[str, float]]:
        return fit(key, Y, protocol == "es", **kw)

    out: dict[str, Any] = {"split": i, "budget": budget, "refs": {}, "pipelines": {}}
    # the early probe only adds candidates: the pipelines were read from the grid probe
    pipelines = {} if probe == "early" else PIPELINES
    for key, kw, proto in _probe_candidates(budget, probe) if probe else []:
        run(key, Ysp, proto, **kw)
    for protocol in ("fixed", "es"):
        out["refs"][protocol] = {
            "full": run(("full", protocol), ds.Y[ftr], protocol)["test"],
            "an": run(("an", protocol), Ysp, protocol, loss="an")["test"]}
    for pname, p in pipelines.items():
        proto = p["protocol"]

        def run_p(key: tuple, proto: str = proto, **kw) -> dict[str, dict[str, float]]:
            return run(key + (proto,), Ysp, proto, **kw)

        res = {}
        for m in METRICS:
            (a, b, lr, name), r = spmll_pick(run_p, p, m, budget)
            res[m] = {"test": r["test"][m], "choice": [a, b, lr, name]}
        out["pipelines"][pname] = res
    out["candidates"] = {"|".join(map(str, k)): v for k, v in fit.cache.items()}
    print(f"inner split {i}: " + "; ".join(
        f"{k} ap {v['ap']['test']:.4f} map {v['map']['test']:.4f}"
        for k, v in out["pipelines"].items()), flush=True)
    return out


def _summary(outs: list[dict[str, Any]]) -> dict[str, Any]:
    summ: dict[str, Any] = {}
    for pname, p in PIPELINES.items():
        proto = p["protocol"]
        row: dict[str, Any] = {"protocol": proto}
        for m in METRICS:
            full = np.array([o["refs"][proto]["full"][m] for o in outs])
            an = np.array([o["refs"][proto]["an"][m] for o in outs])
            got = np.array([o["pipelines"][pname][m]["test"] for o in outs])
            row[m] = {"full": float(full.mean()), "an": float(an.mean()),
                      "opml": float(got.mean()),
                      "diff_se": float((got - an).std(ddof=1) / np.sqrt(len(outs)))
                      if len(outs) > 1 else None,
                      "closed": float((got.mean() - an.mean()) / (full.mean() - an.mean()))
                      if full.mean() != an.mean() else None}
        closed = [row[m]["closed"] for m in METRICS if row[m]["closed"] is not None]
        row["mean_closed"] = float(np.mean(closed)) if closed else None
        summ[pname] = row
    scored = [(v["mean_closed"], -int(k[1:]), k) for k, v in summ.items()
              if v["mean_closed"] is not None]
    return {"pipelines": summ, "chosen": max(scored)[2] if scored else None}


def _precision_one(ds, i: int, tr: np.ndarray) -> dict[str, Any]:
    """``--probe precision``: how well AN-BCE ``abmil`` scores single out the hidden positives
    among a label's unobserved entries, at the count the correction would flip (the
    validation-implied budget): out-of-fold scores (two halves of the fitted part) and
    in-sample scores (fit on all of it). The protocol's fitted part of outer training part i."""
    from mimlkit.registry import create

    ftr, val, Ysp, budget = spmll_protocol(ds, i, tr)
    hidden = (ds.Y[ftr] == 1) & (Ysp != 1)

    def scores(rows, at):
        est = create("abmil", threshold_mode="fixed", device="cpu", loss="an")
        return est.fit(ds.bags[ftr[rows]], Ysp[rows]).decision_function(ds.bags[ftr[at]])

    perm = np.random.default_rng(i).permutation(len(ftr))
    halves = (perm[: len(ftr) // 2], perm[len(ftr) // 2:])
    oof = np.zeros(Ysp.shape)
    for a, b in (halves, halves[::-1]):
        oof[b] = scores(a, b)
    every = np.arange(len(ftr))
    out: dict[str, Any] = {"split": i, "hidden": int(hidden.sum())}
    for name, S in (("out_of_fold", oof), ("in_sample", scores(every, every))):
        hits = flips = 0
        for j in range(Ysp.shape[1]):
            k = int(np.floor(budget[j] * (Ysp[:, j] == 1).sum()))
            cand = np.flatnonzero(Ysp[:, j] != 1)
            top = cand[np.argsort(-S[cand, j], kind="stable")[:k]]
            hits += int(hidden[top, j].sum())
            flips += k
        out[name] = {"flips": flips, "precision": hits / max(flips, 1)}
    print(f"inner split {i}: {out}", flush=True)
    return out


def _candidates_table(outs: list[dict[str, Any]]) -> list[str]:
    """Mean validation / inner-test AP and mAP of every single configuration fitted."""
    keys = [k for k in outs[0].get("candidates", {})]
    L = ["Single configurations (mean over the inner splits; variant · a · b · lr · protocol; "
         "the references are `full` and `an`):", "",
         "| configuration | val AP | val mAP | inner-test AP | inner-test mAP |",
         "|---|---|---|---|---|"]
    rows = []
    for k in keys:
        v = [o["candidates"][k] for o in outs if k in o.get("candidates", {})]
        if len(v) < len(outs):  # fitted only where a pipeline chose its pair: not comparable
            continue
        rows.append((k.rsplit("|", 1)[-1], k, *(float(np.mean([x[p][m] for x in v]))
                                               for p in ("val", "test") for m in METRICS)))
    for _proto, k, vap, vmap, tap, tmap in sorted(rows, key=lambda r: (r[0], -r[4] - r[5])):
        L.append(f"| {k.replace('|', ' · ')} | {vap:.4f} | {vmap:.4f} | {tap:.4f} | "
                 f"{tmap:.4f} |")
    return L


def _markdown(data: dict[str, Any]) -> str:
    if data.get("probe") == "precision":
        rows = data["splits"]
        L = ["Fitted part of the single-positive protocol on the training parts of Scene outer "
             f"splits 0-{data['outer'] - 1} (outer test parts never read). Per label j, the "
             "unobserved entries with the highest AN-BCE `abmil` scores, as many as the "
             "validation part implies are hidden (`hidden_positive_budget`), are the ones a "
             "label correction would flip; precision = share of them that are hidden "
             "positives.", "", "| split | hidden positives | flips | precision out-of-fold |"
             " precision in-sample |", "|---|---|---|---|---|"]
        for o in rows:
            L.append(f"| {o['split']} | {o['hidden']} | {o['out_of_fold']['flips']} | "
                     f"{o['out_of_fold']['precision']:.2f} | {o['in_sample']['precision']:.2f} |")
        L.append(f"| mean | | | {np.mean([o['out_of_fold']['precision'] for o in rows]):.2f} | "
                 f"{np.mean([o['in_sample']['precision'] for o in rows]):.2f} |")
        return "\n".join(L)
    if not data["summary"]:  # a probe of single configurations only
        return "\n".join([f"Inner splits as in `select_spmll_variants.md` (outer splits 0-"
                          f"{data['outer'] - 1}; outer test parts never read).", "",
                          *_candidates_table(data["splits"])])
    s = data["summary"]
    L = [f"Inner splits: a third of the training part of Scene outer splits 0-{data['outer'] - 1}"
         " as the inner test part; the rest runs the single-positive protocol (validation fifth,"
         " one kept positive per bag). Outer test parts never read. Gap closed = (pipeline −"
         " AN-BCE) / (full − AN-BCE), references under the pipeline's protocol.", "",
         "| pipeline | protocol | AP full | AP AN-BCE | AP OPML | AP closed | mAP full |"
         " mAP AN-BCE | mAP OPML | mAP closed | mean closed |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]
    for k, v in s["pipelines"].items():
        a, m = v["ap"], v["map"]
        L.append(f"| {k} | {v['protocol']} | {a['full']:.4f} | {a['an']:.4f} | "
                 f"{a['opml']:.4f} ± {a['diff_se']:.4f} | {a['closed']:.2f} | {m['full']:.4f} | "
                 f"{m['an']:.4f} | {m['opml']:.4f} ± {m['diff_se']:.4f} | {m['closed']:.2f} | "
                 f"{v['mean_closed']:.2f} |")
    L += ["", "(± : s.e. of the paired OPML − AN-BCE difference.)", "",
          f"**Chosen: {s['chosen']}** ({PIPELINES[s['chosen']]}).", "", "Pipelines: "]
    L += [f"- {k}: {v}" for k, v in PIPELINES.items()]
    L += ["", "Choices per inner split (a, b, lr, variant):", ""]
    for o in data["splits"]:
        L.append(f"- split {o['split']}: " + "; ".join(
            f"{k} {v['ap']['choice']} / {v['map']['choice']}"
            for k, v in o["pipelines"].items()))
    if data["splits"] and "candidates" in data["splits"][0]:
        L += ["", *_candidates_table(data["splits"])]
    return "\n".join(L)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--outer", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--probe", choices=["grid", "early", "precision"], default=None,
                    help="grid: the pipelines plus single configurations; early: the early "
                    "correction only; precision: how well scores find the hidden positives")
    args = ap.parse_args(argv)
    from joblib import Parallel, delayed

    ds = _scene()
    splits = _splits(ds.bags.n_bags, args.outer)
    if args.probe == "precision":
        outs = Parallel(n_jobs=args.jobs)(delayed(_precision_one)(ds, i, tr)
                                          for i, (tr, _te) in enumerate(splits))
    else:
        outs = Parallel(n_jobs=args.jobs)(delayed(_inner_one)(ds, i, tr, args.probe)
                                          for i, (tr, _te) in enumerate(splits))
    data = {"outer": args.outer, "probe": args.probe, "pipelines_def": PIPELINES,
            "opml_ab_grid": SPMLL_AB,
            "splits": outs, "summary": _summary(outs) if outs[0].get("pipelines") else {},
            "machine": machine()}
    titles = {"early": "early label correction probed on inner splits",
              "precision": "how well the scores single out the hidden positives"}
    write_results(NAME + (f"_{args.probe}" if args.probe in titles else ""), data,
                  _markdown(data), title="Single-positive Scene: " + titles.get(
                      args.probe, "OPML grid and protocol chosen on inner splits"))


if __name__ == "__main__":
    main()
