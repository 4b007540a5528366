"""Self-paced deep MIML (seed 002, full method = Table III row 21) on MSRC v2, end to end.

MSRC v2 images (about 320 x 213) are cut into 106-px tiles (3 x 2 per image, remainder
dropped), resized to ``--input`` px and fed to a **randomly initialised** ResNet-18 trained end
to end on the CPU (no pretrained weights on the build machines). This is a short smoke-scale
run: a subset of the images and 1-2 epochs, so the figures show that the pipeline trains and
give the time per epoch; they are not comparable with the paper (ImageNet weights, ANA data).

    python benchmarks/selfpaced_msrc.py                       # 240 train / 120 test, 2 epochs
    python benchmarks/selfpaced_msrc.py --n-train 394 --n-test 197 --epochs 5   # full split
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "src"))

from _common import write_results  # noqa: E402

DATA = Path(os.environ.get("MIMLKIT_DATA", ROOT.parent / "shared" / "data")) / "msrc_v2"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-train", type=int, default=240)
    ap.add_argument("--n-test", type=int, default=120)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--tile", type=int, default=106)
    ap.add_argument("--input", type=int, default=112)
    ap.add_argument("--backbone", default="resnet18")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="selfpaced_msrc")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from mimlkit.datasets import load_dataset
    from mimlkit.deep.selfpaced import SelfPacedMIML, paper_metrics

    ds = load_dataset(DATA)
    n = len(ds.Y)
    rng = np.random.default_rng(args.seed)
    perm = rng.permutation(n)
    n_tr_all = 2 * n // 3
    tr = np.sort(perm[:n_tr_all][: args.n_train])
    te = np.sort(perm[n_tr_all:][: args.n_test])
    images = ds.inputs("images")
    t0 = time.perf_counter()
    m = SelfPacedMIML(tile_size=args.tile, backbone=args.backbone, weights=None,
                      image_size=args.input, max_epochs=args.epochs,
                      batch_size=args.batch_size, device=args.device, random_state=args.seed,
                      verbose=False)
    m.fit(images[tr], ds.Y[tr])
    fit_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    S = m.decision_function(images[te])
    pred_s = time.perf_counter() - t1
    res = paper_metrics(ds.Y[te], S, 0.5)
    # reference: label-frequency prior (every test image scored by training label frequency)
    prior = np.tile(ds.Y[tr].mean(axis=0), (len(te), 1))
    res_prior = paper_metrics(ds.Y[te], prior, 0.5)
    epochs = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in h.items()}
              for h in m.history_]
    per_epoch = [h["time_s"] for h in m.history_]
    support = ds.Y[te].sum(axis=0).astype(int).tolist()
    print(res, per_epoch, flush=True)
    keys = ["f1_micro", "f1_macro", "subset_accuracy", "map", "overall"]
    body = "\n".join([
        f"MSRC v2 ({n} images, {ds.Y.shape[1]} labels), random 2/3 - 1/3 split (seed "
        f"{args.seed}); **subset**: first {len(tr)} training and {len(te)} test images of that "
        f"split. Full method (Table III row 21: label-level α, init 'sample', weighted "
        f"sampler, Bernoulli pseudo-labels, label-aware coefficients), {args.tile}-px tiles "
        f"({m.n_train_tiles_} training tiles) resized to {args.input} px, {args.backbone} "
        f"**random init**, {args.epochs} epoch(s), batch {args.batch_size}, Adam lr = α-lr = "
        f"1e-3, device {args.device}, {args.threads} threads on a shared machine (timings "
        f"noisy).",
        "",
        "| model | " + " | ".join(keys) + " |",
        "|---|" + "---|" * len(keys),
        "| SelfPacedMIML (row 21) | " + " | ".join(f"{res[k]:.3f}" for k in keys) + " |",
        "| label-frequency prior (reference) | "
        + " | ".join(f"{res_prior[k]:.3f}" for k in keys) + " |",
        "",
        f"Time per epoch (s): {', '.join(f'{t:.1f}' for t in per_epoch)}; fit total "
        f"{fit_s:.1f} s (incl. tiling); prediction on {len(te)} images {pred_s:.1f} s.",
        "",
        "Per-epoch history: " + "; ".join(
            f"epoch {h['epoch']}: loss {h['train_loss']:.2f}, mean α {h.get('alpha_mean', 0):.3f}"
            for h in epochs),
        "",
        f"Test support per label (macro metrics are unstable for rare labels, e.g. horse): "
        f"{dict(zip(ds.label_names, support))}.",
        "",
        "A short random-init CPU run: it shows that training runs end to end, not the "
        "method's accuracy; with ImageNet weights (`--weights`-style files, see "
        "`mimlkit.features.backbones`) and more epochs the figures would differ.",
    ])
    write_results(args.name, {"args": vars(args), "metrics": res, "prior_metrics": res_prior,
                              "history": epochs, "seconds_per_epoch": per_epoch,
                              "fit_seconds": fit_s, "predict_seconds": pred_s,
                              "n_train_tiles": m.n_train_tiles_, "test_support": support},
                  body, title="Self-paced deep MIML on MSRC v2 (short CPU run)")


if __name__ == "__main__":
    main()
