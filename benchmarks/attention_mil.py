"""Attention MIL on MIML data (issue 15): selection, Scene AP, localisation, single positive.

Stages (each adds its section to ``results/attention_mil.json`` / ``.md``; rerun any):

* ``select``  — settings of ``abmil`` / ``dsmil`` / ``transmil`` chosen on **inner** splits of
  the training part of Scene outer split 0 (the test part is never touched): a small grid of
  (lr, max_epochs, dropout); the winner (mean inner AP) became the library default.
* ``scene``   — Scene (2000 bags, 2/3 train - 1/3 test, ``RepeatedRandomSplit(random_state=0)``,
  ``--splits`` repetitions): AP and fit time of the attention models with their defaults next to
  ``deepmiml``, ``mimlfast``, ``bls`` and ``pooled-linear`` (defaults), on the same splits.
* ``msrc``    — MSRC v2 with the hand-crafted 64-px tile features (591 images, same split
  scheme, ``--splits``): the Scene table's learners, bag AP, fit time and the tile-level ROC
  AUC of ``instance_scores`` against the segmentation tile truth (test images; macro mean).
* ``localise`` — synthetic bags with instance truth (``make_miml_bags``; 1-2 label-carrying
  instances per positive label among 4-12): instance-level ROC AUC and AP of ``instance_scores``
  per label (macro mean) for every bag learner that defines instance scores.
* ``spmll``   — single-positive Scene (one positive per training bag, ``make_single_positive``):
  ``abmil`` with assume-negative BCE vs OPML vs full labels; the OPML variant ((a, b), label
  correction, soft OPML; ``SPMLL_AB``) is chosen on a fully labelled validation fifth of the
  training part (``spmll_split``), never the test part.
* ``torchmil`` — peer check: torchmil's ABMIL, one binary model per label, same splits and
  scaled features, our ``abmil`` defaults' epochs / lr; AP and fit time next to ``abmil``.

Usage::

    python benchmarks/attention_mil.py --stage select
    python benchmarks/attention_mil.py --stage scene --splits 5
    python benchmarks/attention_mil.py --stage localise
    python benchmarks/attention_mil.py --stage spmll --splits 3
    PYTHONPATH=/tmp/tm python benchmarks/attention_mil.py --stage torchmil --splits 3
      (torchmil installed with ``pip install --no-deps --target /tmp/tm torchmil tensordict
      torchmetrics einops h5py lightning-utilities pyvers cloudpickle orjson``)
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    RESULTS,
    SCENE_ARFF,
    SHARED_DATA,
    _atomic_write,
    machine,
    write_results,
)

NAME = "attention_mil"
ATTN = ["abmil", "transmil", "dsmil"]
PEERS = ["deepmiml", "mimlfast", "bls", "pooled-linear"]
GRID = {
    "abmil": {"lr": [1e-3, 3e-3], "max_epochs": [15, 30], "dropout": [0.1, 0.3]},
    # second round, run because round one's best sat on the grid's edge (lr 3e-3, dropout .3)
    "abmil+": {"lr": [3e-3, 1e-2], "max_epochs": [30], "dropout": [0.3, 0.5]},
    "dsmil": {"lr": [1e-3, 3e-3], "max_epochs": [15, 30], "dropout": [0.1, 0.3]},
    "transmil": {"lr": [1e-3, 3e-3], "max_epochs": [15, 30]},
}


def _load_json() -> dict[str, Any]:
    p = RESULTS / f"{NAME}.json"
    return json.loads(p.read_text()) if p.exists() else {}


def _scene():
    from mimlkit.datasets import load_dataset

    if not SCENE_ARFF.exists():
        raise SystemExit(f"Scene data not found at {SCENE_ARFF}")
    return load_dataset(SCENE_ARFF)


def _splits(n_bags: int, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from mimlkit.evaluation import RepeatedRandomSplit

    return list(RepeatedRandomSplit(n_repeats=n, train_size=2 / 3, random_state=0)
                .split(np.zeros(n_bags)))


def _fit_ap(est, ds, tr, te) -> tuple[float, float]:
    from mimlkit.metrics import average_precision

    t0 = time.perf_counter()
    est.fit(ds.bags[tr], ds.Y[tr])
    fit_s = time.perf_counter() - t0
    return float(average_precision(ds.Y[te], est.decision_function(ds.bags[te]))), fit_s


# ----------------------------------------------------------------------------- stages
def stage_select(args) -> dict[str, Any]:
    from mimlkit.registry import create

    ds = _scene()
    tr0, _ = _splits(ds.bags.n_bags, 1)[0]  # outer split 0: only its training part is used
    inner = [(tr0[a], tr0[b]) for a, b in _splits(len(tr0), args.inner)]
    out: dict[str, Any] = {}
    for key in args.models or list(GRID):
        grid, name = GRID[key], key.rstrip("+")  # "abmil+": a second round for abmil
        rows = []
        for values in itertools.product(*grid.values()):
            params = dict(zip(grid, values))
            aps, times = [], []
            for itr, iva in inner:
                ap, fs = _fit_ap(create(name, **params), ds, itr, iva)
                aps.append(ap)
                times.append(fs)
            rows.append({"params": params, "inner_ap": aps, "mean_ap": float(np.mean(aps)),
                         "fit_s": float(np.mean(times))})
            print(name, params, round(rows[-1]["mean_ap"], 4), f"{np.mean(times):.1f}s",
                  flush=True)
        best = max(rows, key=lambda r: r["mean_ap"])
        out[key] = {"rows": rows, "best": best["params"]}  # rounds kept apart ("abmil+")
        print("best", key, best["params"], flush=True)
    return {"n_inner": args.inner, "models": out}


def stage_scene(args) -> dict[str, Any]:
    from mimlkit.registry import create

    ds = _scene()
    names = args.models or ATTN + PEERS
    res: dict[str, Any] = {n: {"ap": [], "fit_s": [], "splits": []} for n in names}
    for i, (tr, te) in enumerate(_splits(ds.bags.n_bags, args.splits)):
        if i < args.first:  # --first: add splits first..splits-1 to an earlier run's rows
            continue
        for n in names:
            ap, fs = _fit_ap(create(n), ds, tr, te)
            res[n]["ap"].append(ap)
            res[n]["fit_s"].append(fs)
            res[n]["splits"].append(i)
            print(f"split {i} {n}: AP {ap:.4f} fit {fs:.1f}s", flush=True)
    return {"n_splits": args.splits, "learners": res}  # n_splits: of the latest run


def _instance_scores(est, bags) -> np.ndarray:
    if hasattr(est, "instance_scores"):
        return np.concatenate(est.instance_scores(bags))
    return np.asarray(est.decision_function_instances(bags))


LOCALISERS = ["abmil", "transmil", "dsmil", "meanmil", "maxmil", "deepmiml", "mimlfast",
              "mimlmisvm", "pooled-linear"]


def stage_localise(args) -> dict[str, Any]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    from mimlkit.datasets import make_miml_bags
    from mimlkit.metrics import average_precision
    from mimlkit.registry import create

    out: dict[str, Any] = {}
    kinds = {"abmil": ["contribution", "attention", "logit"],
             "transmil": ["contribution", "attention", "logit"],
             "dsmil": ["contribution", "attention", "logit"]}
    for seed in range(args.seeds):
        ds = make_miml_bags(n_bags=600, n_labels=5, n_features=16, bag_size=(4, 12),
                            random_state=seed)
        tr, te = np.arange(400), np.arange(400, 600)
        lo = int(ds.bags.offsets[400])
        truth = ds.instance_labels[lo:]
        for name in args.models or LOCALISERS:
            est = create(name)
            t0 = time.perf_counter()
            est.fit(ds.bags[tr], ds.Y[tr])
            fs = time.perf_counter() - t0
            bag_ap = float(average_precision(ds.Y[te], est.decision_function(ds.bags[te])))
            for kind in kinds.get(name, [None]):
                S = (np.concatenate(est.instance_scores(ds.bags[te], kind=kind)) if kind
                     else _instance_scores(est, ds.bags[te]))
                auc = [float(roc_auc_score(truth[:, k], S[:, k])) for k in range(truth.shape[1])]
                ap = [float(average_precision_score(truth[:, k], S[:, k]))
                      for k in range(truth.shape[1])]
                key = name if kind in (None, "contribution") else f"{name} ({kind})"
                r = out.setdefault(key, {"auc": [], "ap": [], "bag_ap": [], "fit_s": []})
                r["auc"].append(auc)
                r["ap"].append(ap)
                r["bag_ap"].append(bag_ap)
                r["fit_s"].append(fs)
                print(f"seed {seed} {key}: inst AUC {np.mean(auc):.3f} AP {np.mean(ap):.3f} "
                      f"bag AP {bag_ap:.3f} fit {fs:.1f}s", flush=True)
    return {"n_seeds": args.seeds, "learners": out,
            "data": "make_miml_bags(n_bags=600, n_labels=5, n_features=16, bag_size=(4, 12), "
                    "random_state=seed); train bags 0-399, test bags 400-599"}


def _msrc():
    from mimlkit.datasets import load_dataset

    root = SHARED_DATA / "msrc_v2"
    if not root.exists():
        raise SystemExit(f"MSRC v2 not found at {root}")
    return load_dataset(root, tile=64, tile_truth=True)


def stage_msrc(args) -> dict[str, Any]:
    """MSRC v2 tiles (64 px, the 40-d colour/texture descriptor per tile, tile truth from the
    segmentations): bag AP and tile-level AUC of ``instance_scores`` on the test images."""
    from sklearn.metrics import roc_auc_score

    from mimlkit.registry import create

    ds = _msrc()
    truth_all = np.asarray(ds.instance_labels) == 1
    names = args.models or ATTN + PEERS
    res: dict[str, Any] = {n: {"ap": [], "fit_s": [], "splits": [], "tile_auc": []}
                           for n in names}
    for i, (tr, te) in enumerate(_splits(ds.bags.n_bags, args.splits)):
        bte = ds.bags[te]
        rows = np.concatenate([np.arange(ds.bags.offsets[b], ds.bags.offsets[b + 1])
                               for b in te])
        truth = truth_all[rows]
        for n in names:
            est = create(n)
            ap, fs = _fit_ap(est, ds, tr, te)
            auc = float("nan")
            if hasattr(est, "instance_scores") or hasattr(est, "decision_function_instances"):
                S = _instance_scores(est, bte)
                ks = [k for k in range(truth.shape[1]) if 0 < truth[:, k].sum() < len(truth)]
                auc = float(np.mean([roc_auc_score(truth[:, k], S[:, k]) for k in ks]))
            r = res[n]
            r["ap"].append(ap)
            r["fit_s"].append(fs)
            r["splits"].append(i)
            r["tile_auc"].append(auc)
            print(f"msrc split {i} {n}: AP {ap:.4f} tile AUC {auc:.3f} fit {fs:.1f}s",
                  flush=True)
    return {"n_splits": args.splits, "learners": res,
            "data": "MSRC v2, 591 images, 64-px tiles (40-d colour/texture descriptor), tile "
                    "truth at share 0.25; 2/3-1/3 splits of RepeatedRandomSplit(random_state=0)"}


#: single-positive OPML variants tried on the validation part (eighth session, declared
#: before the run): (a, b) pairs off the b = 1 - a line (the Mulan selections landed at
#: a = 0.01-0.02 with b = 0.01 or 0.97), then, at the best pair, the AP-based label
#: correction and the smoothed (soft) OPML of paper 003
SPMLL_AB = [(0.3, 0.7), (0.5, 0.5), (0.7, 0.3), (0.1, 0.1), (0.05, 0.5), (0.5, 0.05)]
SPMLL_CORRECTION = {"scale": 0.1, "base": "n_j", "warmup_epochs": 1, "max_total": 1.0}
#: the protocol and grid chosen on inner splits of the training parts (eleventh session,
#: ``select_spmll_variants.py``, pipeline P3): every loss (full, AN-BCE, OPML) keeps the epoch
#: with the best validation mAP; OPML (a, b) x lr, then three extensions at the best triple
SPMLL_PIPELINE = {"protocol": "es", "lrs": [1e-2, 3e-3],
                  "ext": ["OPML+corr", "OPML+budget", "softOPML"]}


def spmll_ext_kw(name: str, ab: dict[str, float], lr: float, budget: list[float]
                 ) -> dict[str, Any]:
    """``abmil`` settings of an OPML extension at the pair ``ab``: the AP-based correction
    (``OPML+corr``), the same bounded by the hidden positives the validation part implies
    (``OPML+budget``, ``hidden_positive_budget``), soft OPML with γ 1 (``softOPML``)."""
    if name == "OPML+corr":
        return {"loss": "opml", "loss_params": ab, "lr": lr,
                "label_correction": SPMLL_CORRECTION}
    if name == "OPML+budget":
        return {"loss": "opml", "loss_params": ab, "lr": lr,
                "label_correction": {**SPMLL_CORRECTION, "max_total": budget}}
    if name == "softOPML":
        return {"loss": "opml_soft", "loss_params": {**ab, "gamma": 1.0}, "lr": lr}
    raise ValueError(f"unknown OPML extension {name!r}")


def spmll_pick(run, pipeline: dict[str, Any], metric: str, budget: list[float]):
    """The OPML variant a pipeline chooses on validation by ``metric``: the best (a, b, lr)
    of the grid, then each extension at it when its validation score is higher.
    ``run(key, **abmil_kw)`` returns ``{"val": {...}, "test": {...}}`` (cached by key);
    returns ``((a, b, lr, variant), scores)``."""
    cands = []
    for lr in pipeline["lrs"]:
        for a, b in SPMLL_AB:
            r = run(("opml", a, b, lr), loss="opml", loss_params={"a": a, "b": b}, lr=lr)
            cands.append(((a, b, lr, "OPML"), r))
    best = max(cands, key=lambda c: c[1]["val"][metric])  # first of equals: the earlier one
    a, b, lr, _ = best[0]
    for name in pipeline["ext"]:
        r = run((name, a, b, lr), **spmll_ext_kw(name, {"a": a, "b": b}, lr, budget))
        if r["val"][metric] > best[1]["val"][metric]:
            best = ((a, b, lr, name), r)
    return best


def spmll_protocol(ds, i: int, rows: np.ndarray):
    """The single-positive protocol on ``rows`` (split ``i``'s seeds): fitted rows, the fully
    labelled validation fifth, the kept positives and the validation-implied correction
    budget."""
    from mimlkit.deep.spmll import hidden_positive_budget, make_single_positive, spmll_split

    fit_idx, val_idx = spmll_split(len(rows), val_frac=0.2, split_seed=1200 + i)
    ftr, val = rows[fit_idx], rows[val_idx]
    Ysp = make_single_positive(ds.Y[ftr], random_state=1200 + i)
    return ftr, val, Ysp, hidden_positive_budget(Ysp, ds.Y[val])


def spmll_runner(ds, ftr: np.ndarray, val: np.ndarray, held: np.ndarray):
    """``run(key, Y, es, **abmil_kw)``: fit ``abmil`` on ``ftr`` (``es``: keep the epoch of
    best validation mAP), score AP and mAP on the validation and ``held`` rows; cached by key.
    Thresholds play no part in either metric: fixed, no calibration clones."""
    from mimlkit.deep.spmll import mean_ap
    from mimlkit.metrics import average_precision
    from mimlkit.registry import create

    metrics = {"ap": average_precision, "map": mean_ap}
    cache: dict[tuple, dict[str, dict[str, float]]] = {}

    def run(key: tuple, Y: np.ndarray, es: bool, **kw) -> dict[str, dict[str, float]]:
        if key not in cache:
            est = create("abmil", threshold_mode="fixed", device="cpu", **kw)
            est.fit(ds.bags[ftr], Y, **({"eval_set": (ds.bags[val], ds.Y[val])} if es else {}))
            cache[key] = {part: {m: float(f(ds.Y[r], est.decision_function(ds.bags[r])))
                                 for m, f in metrics.items()}
                          for part, r in (("val", val), ("test", held))}
        return cache[key]

    run.cache = cache
    return run


def _spmll_one(ds, i: int, tr: np.ndarray, te: np.ndarray) -> dict[str, Any]:
    """One outer split of the single-positive stage (CPU: the same arithmetic everywhere).

    Two metrics, each with its own validation choice of the OPML variant: the MIML ranking AP
    (``"ap"``) and the single-positive protocol's mAP (``"map"``, mean per-label AP as in
    ``deep/spmll.py`` and ``spmll_mulan.py``). ``SPMLL_PIPELINE`` says the protocol."""
    metrics = ("ap", "map")
    ftr, val, Ysp, budget = spmll_protocol(ds, i, tr)
    es = SPMLL_PIPELINE["protocol"] == "es"
    fit = spmll_runner(ds, ftr, val, te)

    def run(key: tuple, Y: np.ndarray | None = None, **kw) -> dict[str, dict[str, float]]:
        return fit(key, Ysp if Y is None else Y, es, **kw)

    out: dict[str, Any] = {}
    for m in metrics:
        (a, b, lr, name), r = spmll_pick(run, SPMLL_PIPELINE, m, budget)
        out[m] = {"single-positive OPML": r["test"][m],
                  "opml_variant": {"a": a, "b": b, "lr": lr, "variant": name}}
    ref = {"full (bce)": run(("full",), ds.Y[ftr])["test"],
           "single-positive AN-BCE": run(("an",), loss="an")["test"]}
    for m in metrics:
        out[m].update({k: v[m] for k, v in ref.items()})
    print(f"split {i}: " + "; ".join(f"{m}: " + ", ".join(
        f"{k} {v}" for k, v in out[m].items()) for m in metrics), flush=True)
    return out


def stage_spmll(args) -> dict[str, Any]:
    """Single-positive Scene: ``--splits`` outer splits, ``--jobs`` of them at a time (one
    process each, one CPU thread per fit)."""
    from joblib import Parallel, delayed

    ds = _scene()
    splits = _splits(ds.bags.n_bags, args.splits)
    outs = Parallel(n_jobs=args.jobs)(delayed(_spmll_one)(ds, i, tr, te)
                                      for i, (tr, te) in enumerate(splits))
    keys = ["full (bce)", "single-positive AN-BCE", "single-positive OPML", "opml_variant"]
    res = {k: [o["ap"][k] for o in outs] for k in keys}
    res_map = {k: [o["map"][k] for o in outs] for k in keys}
    return {"n_splits": args.splits, "opml_ab_grid": SPMLL_AB,
            "opml_correction": SPMLL_CORRECTION, "pipeline": SPMLL_PIPELINE,
            "results": res, "results_map": res_map,
            "machine": machine()}


def _torchmil_fit_predict(Xtr, Ytr, Xte, epochs: int, lr: float, seed: int) -> np.ndarray:
    """K binary torchmil ABMIL models (gated, MLP feature extractor like ours); bag logits."""
    import torch
    from torchmil.models import ABMIL as TMABMIL

    from mimlkit.learners.classic._instance_scaling import apply_scaling, fit_scaling

    off, fac = fit_scaling(Xtr.instances, "standard")

    def padded(b):
        x, m = b.with_instances(apply_scaling(b.instances, off, fac, np.float32)).padded()
        return torch.from_numpy(x), torch.from_numpy(m)

    xtr, mtr = padded(Xtr)
    xte, mte = padded(Xte)
    d = xtr.shape[-1]
    torch.set_num_threads(1)
    out = []
    for k in range(Ytr.shape[1]):
        torch.manual_seed(seed + k)
        feat = torch.nn.Sequential(torch.nn.Linear(d, 128), torch.nn.ReLU(),
                                   torch.nn.Dropout(0.3))
        model = TMABMIL(in_shape=(d,), att_dim=64, gated=True, feat_ext=feat)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
        y = torch.from_numpy(Ytr[:, k].astype(np.float32))
        rng = np.random.default_rng(seed + k)
        for _ in range(epochs):
            model.train()
            for idx in np.array_split(rng.permutation(len(y)), max(1, len(y) // 32)):
                i = torch.from_numpy(idx)
                _, losses = model.compute_loss(y[i], xtr[i], mtr[i])
                loss = sum(losses.values())
                opt.zero_grad()
                loss.backward()
                opt.step()
        model.eval()
        with torch.no_grad():
            pred = model(xte, mte)  # bag logits (B,) (a tuple when attention is returned)
            pred = pred[0] if isinstance(pred, tuple) else pred
            out.append(pred.float().numpy().reshape(-1))
    return np.stack(out, 1)


def stage_torchmil(args) -> dict[str, Any]:
    from mimlkit.metrics import average_precision
    from mimlkit.registry import create

    ds = _scene()
    ours = create("abmil")
    epochs, lr = int(ours.max_epochs), float(ours.lr)
    res: dict[str, Any] = {"torchmil ABMIL (K binary)": {"ap": [], "fit_s": []},
                           "mimlkit abmil (multi-label)": {"ap": [], "fit_s": []}}
    for i, (tr, te) in enumerate(_splits(ds.bags.n_bags, args.splits)):
        t0 = time.perf_counter()
        S = _torchmil_fit_predict(ds.bags[tr], ds.Y[tr], ds.bags[te], epochs, lr, i)
        fs = time.perf_counter() - t0  # fit + predict of the K models
        r = res["torchmil ABMIL (K binary)"]
        r["ap"].append(float(average_precision(ds.Y[te], S)))
        r["fit_s"].append(fs)
        ap, fs2 = _fit_ap(create("abmil"), ds, tr, te)
        res["mimlkit abmil (multi-label)"]["ap"].append(ap)
        res["mimlkit abmil (multi-label)"]["fit_s"].append(fs2)
        print(f"split {i}: torchmil AP {r['ap'][-1]:.4f} {fs:.1f}s; ours {ap:.4f} {fs2:.1f}s",
              flush=True)
    from importlib.metadata import version

    return {"n_splits": args.splits, "torchmil_version": version("torchmil"),
            "settings": f"gated, att_dim 64, Linear(d,128)+ReLU+Dropout(0.3) feature extractor, "
                        f"AdamW lr {lr} wd 1e-4, {epochs} epochs, batch 32, standardised "
                        "instances (our abmil defaults' epochs and lr; our dropout is 0.5)",
            "learners": res}


# ----------------------------------------------------------------------------- report
def _ms(v) -> str:
    v = np.asarray(v, dtype=float)
    return f"{v.mean():.3f} ± {v.std():.3f}" if v.size > 1 else f"{v.mean():.3f}"


def _markdown(data: dict[str, Any]) -> str:
    L = ["Machine shared with other jobs (2 CPU cores, ~9 agents): fit times are upper bounds.",
         ""]
    sel = data.get("select")
    if sel:
        L += ["## Selection of the defaults (inner splits of Scene outer split 0's training "
              "part)", "",
              f"{sel['n_inner']} inner 2/3-1/3 splits of the 1333 training bags; mean inner AP.",
              "", "| model | params | inner AP | fit s |", "|---|---|---|---|"]
        chosen: dict[str, dict] = {}  # best over every round of a model ("abmil", "abmil+")
        for m, d in sel["models"].items():
            for r in d["rows"]:
                c = chosen.get(m.rstrip("+"))
                if c is None or r["mean_ap"] > c["mean_ap"]:
                    chosen[m.rstrip("+")] = r
        for m, d in sel["models"].items():
            for r in d["rows"]:
                star = " **(chosen)**" if r is chosen[m.rstrip("+")] else ""
                L.append(f"| {m} | {r['params']}{star} | {r['mean_ap']:.4f} | "
                         f"{r['fit_s']:.1f} |")
        L += ["", "`abmil+`: a second abmil round, run because round one's best sat on its "
              "grid's edge. The chosen settings are the library defaults."]
        L.append("")
    sc = data.get("scene")
    if sc:
        L += ["## Scene AP (2/3-1/3 splits of `RepeatedRandomSplit(random_state=0)`, library "
              "defaults)", "",
              "| learner | splits | AP ↑ (mean ± std) | fit s per split (mean) |",
              "|---|---|---|---|"]
        for n, r in sorted(sc["learners"].items(), key=lambda kv: -np.mean(kv[1]["ap"])):
            L.append(f"| {n} | {len(r['ap'])} | {_ms(r['ap'])} | {np.mean(r['fit_s']):.1f} |")
        L.append("")
    ms = data.get("msrc")
    if ms:
        L += ["## MSRC v2, hand-crafted tile features (same split scheme, library defaults)", "",
              f"Data: {ms['data']}. Tile AUC: instance-level ROC AUC of `instance_scores` "
              "against the tile truth on the test images, macro mean over labels (— where the "
              "learner has no instance scores).", "",
              "| learner | splits | AP ↑ (mean ± std) | tile AUC ↑ | fit s per split (mean) |",
              "|---|---|---|---|---|"]
        for n, r in sorted(ms["learners"].items(), key=lambda kv: -np.mean(kv[1]["ap"])):
            auc = np.asarray(r["tile_auc"], dtype=float)
            cell = f"{np.nanmean(auc):.3f}" if np.isfinite(auc).any() else "—"
            L.append(f"| {n} | {len(r['ap'])} | {_ms(r['ap'])} | {cell} | "
                     f"{np.mean(r['fit_s']):.1f} |")
        L.append("")
    lo = data.get("localise")
    if lo:
        L += [f"## Instance localisation on synthetic bags ({lo['n_seeds']} seeds)", "",
              f"Data: {lo['data']}. Instance-level ROC AUC / AP of `instance_scores` against "
              "the true instance labels, macro mean over the 5 labels (then mean over seeds); "
              "kind in brackets where a model offers several (default kind unbracketed).", "",
              "| learner | instance AUC ↑ | instance AP ↑ | bag AP ↑ | fit s |",
              "|---|---|---|---|---|"]
        for n, r in sorted(lo["learners"].items(), key=lambda kv: -np.mean(kv[1]["auc"])):
            L.append(f"| {n} | {np.mean(r['auc']):.3f} | {np.mean(r['ap']):.3f} | "
                     f"{np.mean(r['bag_ap']):.3f} | {np.mean(r['fit_s']):.1f} |")
        L.append("")
    sp = data.get("spmll")
    if sp:
        pl = sp.get("pipeline")
        L += [f"## Single-positive Scene with abmil ({sp['n_splits']} splits)", "",
              "Training part: 80% fitted with one positive per bag (others unobserved), 20% "
              "fully labelled validation (the OPML variant chosen there, by the metric that is "
              f"reported: (a, b) from {sp['opml_ab_grid']}"
              + (f" × lr {pl['lrs']}, then {', '.join(pl['ext'])} at the best triple; "
                 "every loss — full, AN-BCE, OPML — keeps the epoch of best validation mAP "
                 "(the protocol of Cole et al.; chosen on inner splits of the training parts, "
                 "`select_spmll_variants.md`)" if pl and pl["protocol"] == "es" else
                 f", then label correction {sp['opml_correction']} and soft OPML (γ 1) at the "
                 "best pair")
              + "); test part only for the reported figures. Fixed thresholds (neither "
              "metric depends on them).", ""]
        metrics = [("results", "AP (MIML label-ranking average precision)")]
        if "results_map" in sp:
            metrics.append(("results_map", "mAP (mean per-label AP, the single-positive "
                            "protocol's metric: `deep/spmll.py`, `spmll_mulan.py`)"))
        for key, title in metrics:
            r = sp[key]
            L += [f"### {title}", "", "| labels / loss | test ↑ |", "|---|---|"]
            for k in ("full (bce)", "single-positive AN-BCE", "single-positive OPML"):
                L.append(f"| {k} | {_ms(r[k])} |")
            full, an, op = (np.mean(r[k]) for k in ("full (bce)", "single-positive AN-BCE",
                                                    "single-positive OPML"))
            if full > an:
                L += ["", f"OPML closes {100 * (op - an) / (full - an):.0f}% of the gap "
                      "between assume-negative BCE and full labels (chosen per split: "
                      f"{r['opml_variant']})."]
            d_op = np.asarray(r["single-positive OPML"]) - np.asarray(
                r["single-positive AN-BCE"])
            d_full = np.asarray(r["full (bce)"]) - np.asarray(r["single-positive AN-BCE"])
            if len(d_op) > 1:
                se = np.sqrt(len(d_op))
                L += ["", f"Paired over splits: OPML − AN-BCE {d_op.mean():+.4f} ± "
                      f"{d_op.std(ddof=1) / se:.4f} (s.e.; OPML higher on {(d_op > 0).sum()} "
                      f"of {len(d_op)}); full − AN-BCE {d_full.mean():+.4f} ± "
                      f"{d_full.std(ddof=1) / se:.4f}."]
            L.append("")
        m = sp.get("machine")
        if m:
            L += [f"Run on: {m.get('n_cpus')} CPUs, {m.get('platform')} (CPU fits, one "
                  "thread each).", ""]
    tm = data.get("torchmil")
    if tm:
        L += [f"## Peer check: torchmil {tm['torchmil_version']} ABMIL, one binary model per "
              f"label ({tm['n_splits']} Scene splits)", "",
              f"torchmil settings: {tm['settings']}. Installed only in a throw-away folder "
              "(`pip install --no-deps --target`), never a mimlkit dependency. Time = fit of "
              "all K models.", "", "| model | AP ↑ | fit s per split |", "|---|---|---|"]
        for n, r in tm["learners"].items():
            L.append(f"| {n} | {_ms(r['ap'])} | {np.mean(r['fit_s']):.1f} |")
        L.append("")
    else:
        L += ["torchmil peer comparison: not run."]
    return "\n".join(L)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--stage", required=True,
                    choices=["select", "scene", "msrc", "localise", "spmll", "torchmil",
                             "report", "merge"])
    ap.add_argument("--splits", type=int, default=5)
    ap.add_argument("--first", type=int, default=0,
                    help="scene: start at this split and add to the stored rows")
    ap.add_argument("--inner", type=int, default=2)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--models", nargs="*", default=None)
    ap.add_argument("--jobs", type=int, default=1,
                    help="spmll: outer splits run in parallel processes")
    ap.add_argument("--from", dest="source", default=None,
                    help="merge: an attention_mil.json written on another machine")
    ap.add_argument("--sections", nargs="*", default=None,
                    help="merge: the stages to take from --from (their commands come along)")
    args = ap.parse_args(argv)
    new = None
    if args.stage == "merge":  # a stage run elsewhere (e.g. a machine with more cores)
        if not args.source or not args.sections:
            raise SystemExit("--stage merge needs --from FILE and --sections STAGE ...")
        other = json.loads(Path(args.source).read_text())
        data = _load_json()
        for sec in args.sections:
            if sec not in other:
                raise SystemExit(f"{args.source} has no {sec!r} section")
            data[sec] = {**other[sec], "machine": other[sec].get("machine",
                                                                 other.get("machine"))}
            data.setdefault("commands", {})[sec] = other.get("commands", {}).get(
                sec, other.get("command", "?"))
        _atomic_write(RESULTS / f"{NAME}.json", json.dumps(data, indent=2, default=str) + "\n")
        args.stage = "report"
    if args.stage != "report":
        fn = {"select": stage_select, "scene": stage_scene, "msrc": stage_msrc,
              "localise": stage_localise,
              "spmll": stage_spmll, "torchmil": stage_torchmil}[args.stage]
        new = fn(args)
    data = _load_json()  # read after the run: other stages may have finished meanwhile
    for k in ("name", "machine", "command", "date"):
        data.pop(k, None)
    commands = data.pop("commands", {})
    if new is not None:
        merging = (args.stage in ("select", "scene", "localise", "msrc") and args.stage in data
                   and (args.models or (args.stage == "scene" and args.first > 0)))
        if merging:
            key = "models" if args.stage == "select" else "learners"
            merged = dict(data[args.stage].get(key, {}))
            for m, v in new[key].items():
                if args.stage == "scene" and args.first > 0 and m in merged:
                    o = merged[m]
                    have = set(o.get("splits", range(len(o["ap"]))))
                    keep = [j for j, i in enumerate(v["splits"]) if i not in have]
                    v = {k: list(o.get(k, range(len(o["ap"])))) + [v[k][j] for j in keep]
                         for k in ("ap", "fit_s", "splits")}
                merged[m] = v
            new[key] = merged
        data[args.stage] = new
        from _common import command

        # a merged run adds its command to the stage's earlier ones
        commands[args.stage] = (f"{commands[args.stage]} ; {command()}"
                                if merging and commands.get(args.stage) else command())
    data["commands"] = commands
    body = "Stage commands: " + "; ".join(f"{k}: `{v}`" for k, v in commands.items()) + \
        "\n\n" + _markdown(data)
    write_results(NAME, data, body, title="Attention MIL (abmil, transmil, dsmil) on MIML data")


if __name__ == "__main__":
    main()
