"""Attention MIL on a GPU (issue 15): Scene fit time and AP with the defaults on CUDA, and
whole-slide-sized bags with and without mixed precision.

Two parts, each a section of ``results/attention_gpu.json`` / ``.md``:

* ``scene`` — Scene, the 2/3-1/3 splits of ``attention_mil.py`` (``RepeatedRandomSplit(
  random_state=0)``, ``--splits``): ``abmil``, ``transmil``, ``dsmil``, ``meanmil`` and
  ``deepmiml`` with their defaults (``device="auto"`` = CUDA, ``amp="auto"`` = bf16, data-chosen
  thresholds included in the fit time) — AP and fit seconds; the same learners on the same
  machine's CPU (``device="cpu"``) for the first split, like with like.
* ``wsi`` — synthetic whole-slide-sized bags (``--wsi-bags`` bags of ``--wsi-size`` instances of
  ``--wsi-dim`` features, a few label-carrying instances per positive label): ``abmil`` (all
  instances) and ``transmil`` (``attention="linear"``) for ``--wsi-epochs`` epochs, fixed
  thresholds, on CUDA with bf16, with fp16 + grad scaler and in fp32, and on the CPU (one epoch,
  scaled): seconds per epoch, peak GPU memory, test AP.

    python benchmarks/attention_gpu.py --splits 5

Needs CUDA (refuses in one line without it). Shared data: Scene at ``../shared/data``.
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
from attention_mil import _scene, _splits  # noqa: E402

SCENE_MODELS = ["abmil", "transmil", "dsmil", "meanmil", "deepmiml"]


def _warm_up() -> None:
    """One tiny CUDA fit first, so that no timed row pays for CUDA's start (context, kernels)."""
    from mimlkit.datasets import make_miml_bags
    from mimlkit.registry import create

    ds = make_miml_bags(40, n_labels=2, random_state=0)
    for amp in ("bf16", "fp16"):
        create("abmil").set_params(device="cuda", amp=amp, max_epochs=1,
                                   threshold_mode="fixed").fit(ds.bags, ds.Y)


def _scene_part(args, save=None) -> dict[str, Any]:
    import torch

    from mimlkit.metrics import average_precision
    from mimlkit.registry import create

    ds = _scene()
    res: dict[str, Any] = {}
    for i, (tr, te) in enumerate(_splits(ds.bags.n_bags, args.splits)):
        devices = ["cuda", "cpu"] if i == 0 else ["cuda"]
        for name in SCENE_MODELS:
            for dev in devices:
                est = create(name)
                est.set_params(device=dev)
                torch.cuda.synchronize()
                t0 = time.perf_counter()
                est.fit(ds.bags[tr], ds.Y[tr])
                torch.cuda.synchronize()
                fs = time.perf_counter() - t0
                ap = float(average_precision(ds.Y[te], est.decision_function(ds.bags[te])))
                r = res.setdefault(f"{name}@{dev}", {"ap": [], "fit_s": [], "splits": []})
                r["ap"].append(ap)
                r["fit_s"].append(fs)
                r["splits"].append(i)
                print(f"scene split {i} {name} {dev}: AP {ap:.4f} fit {fs:.1f}s", flush=True)
        if save is not None:  # after each split: a run stopped later keeps the finished ones
            save({"n_splits": i + 1, "learners": res})
    return {"n_splits": args.splits, "learners": res}


def _wsi_data(n: int, size: int, d: int, seed: int = 0):
    from mimlkit.bags import Bags

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n * size, d)).astype(np.float32)
    Y = (rng.random((n, 4)) < 0.4).astype(np.int8)
    for b in range(n):
        for k in np.flatnonzero(Y[b]):
            rows = b * size + rng.choice(size, max(4, size // 100), replace=False)
            X[rows, k * 8:(k + 1) * 8] += 1.5
    return Bags.from_instances(X, np.repeat(np.arange(n), size)), Y


def _wsi_part(args, save=None) -> dict[str, Any]:
    import torch

    from mimlkit.metrics import average_precision
    from mimlkit.registry import create

    bags, Y = _wsi_data(args.wsi_bags, args.wsi_size, args.wsi_dim)
    n_tr = int(0.75 * args.wsi_bags)
    tr, te = np.arange(n_tr), np.arange(n_tr, args.wsi_bags)
    btr, bte = bags.take(tr), bags.take(te)
    configs = [("cuda", "bf16"), ("cuda", "fp16"), ("cuda", False), ("cpu", False)]
    rows = []
    for name, extra in (("abmil", {}), ("transmil", {"attention": "linear", "min_steps": None})):
        for dev, amp in configs:
            epochs = 1 if dev == "cpu" else args.wsi_epochs
            est = create(name)
            est.set_params(device=dev, amp=amp, max_epochs=epochs, threshold_mode="fixed",
                           n_threads=args.cpu_threads, **extra)
            if dev == "cuda":
                torch.cuda.reset_peak_memory_stats()
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            est.fit(btr, Y[tr])
            if dev == "cuda":
                torch.cuda.synchronize()
            fs = time.perf_counter() - t0
            ap = float(average_precision(Y[te], est.decision_function(bte)))
            peak = torch.cuda.max_memory_allocated() / 2**20 if dev == "cuda" else None
            rows.append({"learner": name, "device": dev, "amp": amp, "epochs": epochs,
                         "fit_s": fs, "s_per_epoch": fs / epochs, "test_ap": ap,
                         "peak_gpu_mib": peak, "cpu_threads": args.cpu_threads})
            print(f"wsi {name} {dev} amp={amp}: {fs / epochs:.2f} s/epoch, AP {ap:.3f}, "
                  f"peak {peak} MiB", flush=True)
    return {"bags": args.wsi_bags, "instances_per_bag": args.wsi_size, "dim": args.wsi_dim,
            "train_bags": int(n_tr), "rows": rows}


def _markdown(data: dict[str, Any]) -> str:
    L = []
    sc = data.get("scene")
    if sc:
        L += [f"## Scene, defaults ({sc['n_splits']} splits on CUDA; the first split also on "
              "this machine's CPU)", "",
              "Fit time includes the data-chosen thresholds (three calibration clones + the "
              "final fit), as in `attention_mil.md`.", "",
              "| learner | device | splits | AP ↑ | fit s |", "|---|---|---|---|---|"]
        for key, r in sc["learners"].items():
            name, dev = key.split("@")
            ap, fs = np.asarray(r["ap"]), np.asarray(r["fit_s"])
            sd = f" ± {ap.std(ddof=1):.3f}" if len(ap) > 1 else ""
            L.append(f"| {name} | {dev} | {len(ap)} | {ap.mean():.3f}{sd} | {fs.mean():.1f} |")
        L.append("")
    w = data.get("wsi")
    if w:
        L += [f"## Whole-slide-sized bags: {w['bags']} bags x {w['instances_per_bag']} "
              f"instances x {w['dim']} features ({w['train_bags']} to train)", "",
              "Fixed thresholds; CPU rows: one epoch with "
              f"{w['rows'][0]['cpu_threads']} threads.", "",
              "| learner | device | precision | s / epoch | peak GPU MiB | test AP |",
              "|---|---|---|---|---|---|"]
        for r in w["rows"]:
            prec = {"bf16": "bf16 autocast", "fp16": "fp16 + grad scaler",
                    False: "fp32"}[r["amp"]]
            peak = f"{r['peak_gpu_mib']:.0f}" if r["peak_gpu_mib"] is not None else "–"
            L.append(f"| {r['learner']} | {r['device']} | {prec} | {r['s_per_epoch']:.2f} | "
                     f"{peak} | {r['test_ap']:.3f} |")
    return "\n".join(L) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--splits", type=int, default=5)
    ap.add_argument("--parts", nargs="+", default=["scene", "wsi"], choices=["scene", "wsi"])
    ap.add_argument("--wsi-bags", type=int, default=200)
    ap.add_argument("--wsi-size", type=int, default=2000)
    ap.add_argument("--wsi-dim", type=int, default=512)
    ap.add_argument("--wsi-epochs", type=int, default=5)
    ap.add_argument("--cpu-threads", type=int, default=8)
    ap.add_argument("--name", default="attention_gpu")
    args = ap.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("attention_gpu.py needs a CUDA device (none visible)")
    data: dict[str, Any] = {}

    def save(part: str, value: dict[str, Any]) -> None:
        data[part] = value
        write_results(args.name, data, _markdown(data),
                      title="Attention MIL on a GPU: Scene defaults and whole-slide-sized bags")

    _warm_up()
    for part, fn in (("wsi", _wsi_part), ("scene", _scene_part)):
        if part in args.parts:  # written after each part (and Scene split): a later failure
            save(part, fn(args, lambda v, part=part: save(part, v)))  # keeps what finished


if __name__ == "__main__":
    main()
