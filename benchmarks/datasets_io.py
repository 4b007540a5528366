"""Reader speed on the shared data + the synthetic demo set's pooled-linear difficulty.

Timings are the best of ``--repeats`` runs (wall clock, one process):
MIML Scene (relational ARFF), emotions / yeast / bibtex (Mulan ARFF; bibtex is sparse, 1836
binary attributes), the MSRC v2 CSV index (lazy), MSRC v2 tiled into 64-px tiles with
colour/texture features (decodes all 591 PNGs; one run), ``make_miml_images()`` (120 images,
features included), ``make_miml_bags()`` and each ``stress_variants()`` parameter set.

``--baseline REF`` also times the ARFF readers of an earlier commit (``git archive REF
src/mimlkit`` into a temporary folder), alternating old and new in separate processes, so
a reader change can be judged before/after on the same (possibly shared) machine.

Difficulty of the synthetic sets: one-vs-rest logistic regression (C=1, standardised) on
mean-pooled bags, trained on a random 2/3 and scored on the other 1/3, average precision
(example-based, = scikit-learn's LRAP) over ``--seeds`` generator seeds; no tuning. For
reference, the same learner fitted on the *instance* ground truth and max-pooled (an oracle
that sees the hidden instance labels) shows what instance-level learning could reach.

    python benchmarks/datasets_io.py [--data ../shared/data] [--repeats 3] [--seeds 5]
        [--baseline d9e6644]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_results  # noqa: E402
from mimlkit.datasets import (  # noqa: E402
    load_dataset,
    make_miml_bags,
    make_miml_images,
)
from mimlkit.datasets.synthetic import stress_variants  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
_TIMER = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
from mimlkit.datasets import load_dataset
out = {}
for name, path, reps in json.loads(sys.argv[1]):
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter(); load_dataset(path); best = min(best, time.perf_counter() - t0)
    out[name] = best
print(json.dumps(out))
"""


def time_in_subprocess(src: Path, cases: list[tuple[str, str, int]]) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(src))
    res = subprocess.run([sys.executable, "-c", _TIMER, json.dumps(cases)], env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def before_after(ref: str, cases: list[tuple[str, str, int]], rounds: int = 2) -> dict:
    """Best time per ARFF case for commit ``ref`` and for this tree (alternating)."""
    with tempfile.TemporaryDirectory() as tmp:
        arch = subprocess.run(["git", "-C", str(REPO), "archive", ref, "src/mimlkit"],
                              capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", tmp], input=arch, check=True)
        old_src, new_src = Path(tmp) / "src", REPO / "src"
        best: dict[str, dict[str, float]] = {c[0]: {"before": float("inf"),
                                                     "after": float("inf")} for c in cases}
        for _ in range(rounds):
            for label, src in (("before", old_src), ("after", new_src)):
                for name, t in time_in_subprocess(src, cases).items():
                    best[name][label] = min(best[name][label], t)
    return best


def best_of(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def pooled_ap(ds, seed: int) -> tuple[float, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import label_ranking_average_precision_score as lrap
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(1000 + seed)
    perm = rng.permutation(len(ds))
    ntr = len(ds) * 2 // 3
    tr, te = perm[:ntr], perm[ntr:]
    X = ds.bags.pool("mean")
    sc = StandardScaler().fit(X[tr])
    S = np.column_stack([
        LogisticRegression(C=1.0, max_iter=2000).fit(sc.transform(X[tr]), ds.Y[tr, k])
        .decision_function(sc.transform(X[te])) for k in range(ds.n_labels)])
    bi = ds.bags.bag_index
    trm = np.isin(bi, tr)
    Xi = ds.bags.instances
    sc2 = StandardScaler().fit(Xi[trm])
    Si = np.column_stack([
        LogisticRegression(C=1.0, max_iter=2000).fit(sc2.transform(Xi[trm]),
                                                     ds.instance_labels[trm, k])
        .decision_function(sc2.transform(Xi)) for k in range(ds.n_labels)])
    Sb = np.maximum.reduceat(Si, ds.bags.offsets[:-1], axis=0)
    return float(lrap(ds.Y[te], S)), float(lrap(ds.Y[te], Sb[te]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--baseline", default=None,
                    help="git ref whose ARFF readers to time too (before/after table)")
    args = ap.parse_args()
    root = Path(args.data)

    timings: dict[str, dict] = {}
    cases = [
        ("miml_scene (2000 bags, relational ARFF)", root / "miml_scene" / "miml_03_data.arff"),
        ("emotions (593, Mulan ARFF)", root / "mulan" / "emotions" / "emotions.arff"),
        ("yeast (2417, Mulan ARFF)", root / "mulan" / "yeast" / "yeast.arff"),
        ("bibtex (7395, sparse Mulan ARFF)", root / "mulan" / "bibtex" / "bibtex.arff"),
        ("msrc_v2 CSV index (591 images, lazy)", root / "msrc_v2"),
    ]
    for name, path in cases:
        if not path.exists():
            print(f"skip {name}: {path} not found")
            continue
        reps = 1 if "bibtex" in name else args.repeats
        t, ds = best_of(lambda p=path: load_dataset(p), reps)
        s = ds.summary()  # type: ignore[union-attr]
        timings[name] = {"seconds": t, "n_bags": s["n_bags"], "n_labels": s["n_labels"]}
        print(f"{name}: {t:.3f} s")
    if (root / "msrc_v2").exists():
        t, ds = best_of(lambda: load_dataset(root / "msrc_v2", tile=64), 1)
        timings["msrc_v2 tiled 64 px + colour/texture features"] = {
            "seconds": t, "n_bags": len(ds), "n_instances": ds.bags.n_instances}  # type: ignore
        print(f"msrc tiled: {t:.2f} s")
    t, _ = best_of(lambda: make_miml_images(random_state=0), args.repeats)
    timings["make_miml_images() 120 x 96 px + features"] = {"seconds": t}
    t, _ = best_of(lambda: make_miml_bags(random_state=0), args.repeats)
    timings["make_miml_bags() 200 bags"] = {"seconds": t}
    for vname, params in stress_variants().items():
        t, ds = best_of(lambda p=params: make_miml_bags(random_state=0, **p), args.repeats)
        timings[f"make_miml_bags stress {vname}"] = {
            "seconds": t, "n_bags": len(ds), "n_instances": ds.bags.n_instances}  # type: ignore

    compare = {}
    if args.baseline:
        arff_cases = [(name, str(path), 1 if "bibtex" in name else args.repeats)
                      for name, path in cases if str(path).endswith(".arff") and path.exists()]
        compare = before_after(args.baseline, arff_cases)
        for k, v in compare.items():
            print(f"{k}: before {v['before']:.3f} s, after {v['after']:.3f} s")

    difficulty = {}
    for gen_name, gen in (("make_miml_images", make_miml_images),
                          ("make_miml_bags", make_miml_bags)):
        pooled, oracle = zip(*[pooled_ap(gen(random_state=s), s) for s in range(args.seeds)])
        difficulty[gen_name] = {"pooled_linear_ap_mean": float(np.mean(pooled)),
                                "pooled_linear_ap_std": float(np.std(pooled)),
                                "instance_oracle_ap_mean": float(np.mean(oracle)),
                                "seeds": args.seeds}
        print(gen_name, difficulty[gen_name])

    lines = ["## Reader / generator speed (best of runs)", "", "| case | seconds |", "|---|---|"]
    lines += [f"| {k} | {v['seconds']:.3f} |" for k, v in timings.items()]
    if compare:
        lines += ["", f"## ARFF readers before / after (baseline `{args.baseline}`; best of "
                      "alternating runs in separate processes)", "",
                  "| file | before (s) | after (s) | after / before |", "|---|---|---|---|"]
        lines += [f"| {k} | {v['before']:.3f} | {v['after']:.3f} | "
                  f"{v['after'] / v['before']:.2f} |" for k, v in compare.items()]
        lines += ["", "bibtex's 1836 binary `{0,1}` attributes were two one-hot columns each "
                      "before (3672 features) and are one 0/1 column each after (1836); the "
                      "other files give identical arrays before and after."]
    lines += ["", "## Synthetic difficulty (average precision, 2/3 train - 1/3 test)", "",
              "| generator (defaults) | pooled linear AP (mean ± std) | instance-oracle AP |",
              "|---|---|---|"]
    lines += [f"| {k} | {v['pooled_linear_ap_mean']:.3f} ± {v['pooled_linear_ap_std']:.3f} | "
              f"{v['instance_oracle_ap_mean']:.3f} |" for k, v in difficulty.items()]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines += ["", "Timings were taken on a shared machine (other jobs running; 1-min load "
              f"average {load:.1f} at the end); treat them as upper bounds."]
    write_results("datasets_io", {"timings": timings, "difficulty": difficulty,
                                  "arff_before_after": compare, "baseline": args.baseline},
                  "\n".join(lines), title="Dataset readers and synthetic generators")


if __name__ == "__main__":
    main()
