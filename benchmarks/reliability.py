"""Reliability under injected faults: kills, tampering, untrusted files, corrupt caches, and
determinism checks (issue 9). Writes ``benchmarks/results/reliability.{json,md}``.

Fault kinds (seeded random kill times; every kill is followed by a rerun):

* SIGKILL during ``mimlkit fit`` (over an existing model half of the time), ``mimlkit bench``,
  ``mimlkit features`` (with a cache; killed once at least one entry is written) and a deep
  training run (``multilabel-head`` with checkpoints; killed after its first checkpoint,
  resumed with ``resume=True`` and compared bitwise with an uninterrupted run);
* SIGKILL inside ``persistence.save`` at its two renames (deterministic worst moments);
* tampered ``estimator.skops`` / ``torch/*.safetensors`` bytes, untrusted skops types, newer
  format versions, truncated / garbage feature-cache entries.

After every fault the outputs are inspected with ``tests/robustness/_faults.py``: a model
folder must be absent or load and predict, ``results.json`` absent or complete, every cache
entry readable; a file that exists under its output name but fails these checks is counted
as *corrupt* (goal 0). Determinism: every registered bag learner is fitted in three fresh
processes (two identical, one with ``n_jobs=2`` and another ``PYTHONHASHSEED``) and the SHA-256
of its scores compared; ``evaluate`` with ``n_jobs`` 1 vs 2 too.

Usage::

    python benchmarks/reliability.py [--kills 10] [--seed 0]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _common import write_results  # noqa: E402

_spec = importlib.util.spec_from_file_location(
    "_robustness_faults", HERE.parent / "tests" / "robustness" / "_faults.py")
F = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(F)


def _row(kind: str, injected: int, killed: int | None = None, recovered: int | None = None,
         refused: int | None = None, corrupt: int = 0, note: str = "") -> dict[str, Any]:
    return {"kind": kind, "injected": injected, "killed_mid_run": killed,
            "recovered": recovered, "refused_clearly": refused, "corrupt": corrupt,
            "note": note}


# ----------------------------------------------------------------------------- kills
def kill_fit(work: Path, n: int, rng: np.random.Generator) -> dict[str, Any]:
    from mimlkit.datasets import load_npz

    data = F.make_bags_npz(work / "d.npz", n_bags=200)
    X = load_npz(data).bags
    target = work / "model"
    cmd = F.cli("fit", "--data", data, "-l", "mimlknn", "--out", target)
    t0 = time.perf_counter()
    F.run(cmd, work)
    full = time.perf_counter() - t0
    killed = recovered = corrupt = absent = 0
    for k in range(n):
        if k % 2 == 0 and target.exists():  # half the kills hit a fresh target
            import shutil

            shutil.rmtree(target)
        r = F.run_killed(cmd, work, delay=float(rng.uniform(0.2, full)))
        killed += r["killed"]
        state = F.check_model(target, X)
        corrupt += state.startswith("corrupt") + len(F.visible_leftovers(work, {"d.npz",
                                                                                "model"}))
        absent += state == "absent"
        F.run(cmd, work)
        recovered += F.check_model(target, X) == "ok"
    return _row("SIGKILL during `mimlkit fit`", n, killed, recovered, None, corrupt,
                f"full run {full:.1f} s; model absent after {absent} kills (fresh target)")





def kill_save_window(work: Path, n: int) -> dict[str, Any]:
    import shutil

    from mimlkit import persistence as P
    from mimlkit.datasets import load_npz
    from mimlkit.registry import create

    data = F.make_bags_npz(work / "d.npz", n_bags=60)
    ds = load_npz(data)
    X = ds.bags
    killed = recovered = corrupt = absent = 0
    for k in range(n):
        target = work / f"m{k}"
        r = F.run_killed([F.PY, "-c", F.SAVE_KILL_SCRIPT, str(data), str(target), str(1 + k % 2)],
                         work, delay=120)
        killed += r["rc"] == -9
        state = F.check_model(target, X)
        corrupt += state.startswith("corrupt")
        absent += state == "absent"
        P.save(create("pooled-linear").fit(ds.bags, ds.Y), target)  # the rerun
        recovered += F.check_model(target, X) == "ok"
        shutil.rmtree(target, ignore_errors=True)
    return _row("SIGKILL inside `persistence.save` (at rename 1 / 2)", n, killed, recovered,
                None, corrupt, f"old model kept at rename 1; target absent (old model in a "
                f"hidden `.old-` folder) at rename 2: {absent}")


def kill_bench(work: Path, n: int, rng: np.random.Generator) -> dict[str, Any]:
    data = F.make_bags_npz(work / "d.npz", n_bags=80)
    cfg = F.suite_yaml(work / "suite.yaml", data, repeats=3)
    t0 = time.perf_counter()
    F.run(F.cli("bench", "--config", cfg, "--out", work / "ref"), work)
    full = time.perf_counter() - t0
    n_rows = len(json.loads((work / "ref" / "results.json").read_text())["rows"])
    killed = recovered = corrupt = present = 0
    for k in range(n):
        out = work / f"run{k}"
        cmd = F.cli("bench", "--config", cfg, "--out", out)
        r = F.run_killed(cmd, work, delay=float(rng.uniform(0.2, full)))
        killed += r["killed"]
        state = F.check_results(out, n_rows)
        corrupt += state.startswith("corrupt") + len(F.visible_leftovers(
            out, {"results.json", "results.md", "report"}))
        present += state == "ok"
        F.run(cmd, work)
        recovered += F.check_results(out, n_rows) == "ok"
    return _row("SIGKILL during `mimlkit bench`", n, killed, recovered, None, corrupt,
                f"full run {full:.1f} s; complete results.json already present after "
                f"{present} kills")


def kill_features(work: Path, n: int, rng: np.random.Generator) -> dict[str, Any]:
    n_img = 48
    imgs, csv = F.make_image_folder(work, n=n_img, size=160)
    killed = recovered = corrupt = 0
    kept_total = reused = 0
    for k in range(n):
        cache, out = work / f"cache{k}", work / f"f{k}.npz"
        cmd = F.cli("features", "--images", imgs, "--labels", csv, "--backbone",
                    "tiny-multilevel", "--tile", "32", "--cache", cache, "--out", out,
                    "--no-progress", "--batch-size", "8")
        r = F.run_killed(cmd, work, delay=float(rng.uniform(0.0, 0.5)),
                         trigger=lambda c=cache: len(F.cache_entries(c)) > 0)
        killed += r["killed"]
        _, bad = F.check_cache(cache)
        corrupt += len(bad) + F.check_npz(out, n_img).startswith("corrupt")
        before = F.cache_entries(cache)
        kept_total += len(before)
        F.run(cmd, work)
        after = F.cache_entries(cache)
        reused += sum(after.get(key) == v for key, v in before.items())
        recovered += (F.check_npz(out, n_img) == "ok" and len(after) == n_img
                      and not F.check_cache(cache)[1])
    return _row("SIGKILL during `mimlkit features` (cache)", n, killed, recovered, None,
                corrupt, f"{kept_total} cache entries finished before the kills, {reused} "
                f"reused unchanged by the reruns (same inode + mtime)")


def kill_deep(work: Path, n: int, rng: np.random.Generator) -> dict[str, Any]:
    epochs, n_bags = 8, 2400
    killed = recovered = corrupt = 0
    at = []
    for k in range(n):
        ck = work / f"ck{k}"
        r = F.run_killed(F.deep_cmd("train", ck, epochs, n_bags), work,
                         delay=float(rng.uniform(0.0, 1.0)),
                         trigger=lambda c=ck: (c / "last.pt").exists())
        killed += r["killed"]
        try:
            at.append(F.checkpoint_epoch(ck))
        except Exception:  # noqa: BLE001 - an unreadable checkpoint is corrupt
            corrupt += 1
        res = json.loads(F.run(F.deep_cmd("resume", ck, epochs, n_bags), work)
                         .stdout.strip().splitlines()[-1])
        recovered += bool(res["equal_weights"] and res["equal_scores"]
                          and res["epochs"] == epochs)
    return _row("SIGKILL during deep training (resume=True)", n, killed, recovered, None,
                corrupt, f"killed after checkpoint of epoch {sorted(at)} of {epochs}; "
                "recovered = resumed weights bitwise equal to an uninterrupted run")


# ----------------------------------------------------------------------------- files
def _resign(folder: Path) -> None:
    from mimlkit import persistence as P

    cfg = json.loads((folder / "config.json").read_text())
    cfg["sha256"]["estimator.skops"] = P._sha256(folder / "estimator.skops")
    (folder / "config.json").write_text(json.dumps(cfg))


def _refused(folder: Path, pattern: str) -> bool:
    import re

    from mimlkit import persistence as P

    try:
        P.load(folder)
    except (P.PersistenceError, FileNotFoundError) as exc:
        return re.search(pattern, str(exc)) is not None
    return False


def tamper(work: Path, n: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    import shutil

    from mimlkit import persistence as P
    from mimlkit.datasets import make_miml_bags
    from mimlkit.registry import create

    ds = make_miml_bags(n_bags=40, n_labels=3, n_features=5, random_state=0)
    rows = []
    # skops bytes: flip / truncate / append at random positions
    base = work / "base"
    P.save(create("mimlsvm", random_state=0).fit(ds.bags, ds.Y), base)
    refused = 0
    for k in range(n):
        m = work / f"t{k}"
        shutil.copytree(base, m)
        f = m / "estimator.skops"
        data = bytearray(f.read_bytes())
        op = k % 3
        if op == 0:
            data[int(rng.integers(len(data)))] ^= int(rng.integers(1, 256))
        elif op == 1:
            data = data[: int(rng.integers(len(data)))]
        else:
            data += bytes(rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8))
        f.write_bytes(bytes(data))
        refused += _refused(m, r"estimator\.skops: SHA-256 mismatch")
    rows.append(_row("tampered `estimator.skops` (flip / truncate / append)", n, None, None,
                     refused))
    # safetensors of a real deep learner
    base_t = work / "base_t"
    P.save(create("multilabel-head", max_epochs=2, batch_size=8).fit(ds.bags, ds.Y), base_t)
    refused = 0
    for k in range(n):
        m = work / f"s{k}"
        shutil.copytree(base_t, m)
        f = next((m / "torch").glob("*.safetensors"))
        data = bytearray(f.read_bytes())
        data[int(rng.integers(len(data)))] ^= int(rng.integers(1, 256))
        f.write_bytes(bytes(data))
        refused += _refused(m, r"\.safetensors: SHA-256 mismatch")
    rows.append(_row("tampered `torch/*.safetensors`", n, None, None, refused))
    # newer format versions
    refused = 0
    for k in range(n):
        m = work / f"v{k}"
        shutil.copytree(base, m)
        cfg = json.loads((m / "config.json").read_text())
        cfg["format_version"] = P.FORMAT_VERSION + 1 + k
        (m / "config.json").write_text(json.dumps(cfg))
        refused += _refused(m, rf"unknown format_version {P.FORMAT_VERSION + 1 + k}; this "
                               r"mimlkit reads versions 1\.\.")
    rows.append(_row("newer model format version", n, None, None, refused))
    rows.append(untrusted(work, n, base))
    return rows


def untrusted(work: Path, n: int, base: Path) -> dict[str, Any]:
    """Payloads that run code when deserialised; a sentinel file shows whether they ran."""
    import gc
    import shutil
    import subprocess as sp

    import skops.io as sio

    from mimlkit import persistence as P

    sentinel = work / "PWNED"
    mod = work / "r2_bench_payload.py"
    mod.write_text(f"SENTINEL = {str(sentinel)!r}\n"
                   "class Payload:\n    def __init__(self):\n        self.x = 1\n"
                   "    def __setstate__(self, s):\n        open(SENTINEL, 'w').write('ran')\n"
                   "        self.__dict__.update(s)\n")
    sys.path.insert(0, str(work))
    import r2_bench_payload

    victim = work / "victim"
    DataSource = type(np.lib.npyio.DataSource())
    payloads = [("custom class with __setstate__", lambda: r2_bench_payload.Payload()),
                ("os.system reference", lambda: os.system),
                ("builtins.exec reference", lambda: exec),
                ("subprocess.Popen reference", lambda: sp.Popen),
                ("numpy DataSource (rmtree in __del__)", None)]
    refused = ran = 0
    for k in range(n):
        label, make = payloads[k % len(payloads)]
        m = work / f"u{k}"
        shutil.copytree(base, m)
        est = P.load(m)
        if make is None:
            victim.mkdir(exist_ok=True)
            (victim / "keep").write_text("x")
            obj = DataSource.__new__(DataSource)
            obj.__dict__.update(_istmpdest=True, _destpath=str(victim))
            est.extra_ = obj
            sio.dump(est, m / "estimator.skops")
            obj._istmpdest = False
            del obj
        else:
            est.extra_ = make()
            sio.dump(est, m / "estimator.skops")
        del est
        _resign(m)
        refused += _refused(m, r"untrusted type \S+ in file .*estimator\.skops")
        gc.collect()
        ran += sentinel.exists() or (make is None and not (victim / "keep").exists())
    return _row("untrusted type in a (re-signed) skops file", n, None, None, refused, ran,
                f"payloads: {', '.join(p[0] for p in payloads)}; payload ran: {ran}")


def corrupt_cache(work: Path, n: int, rng: np.random.Generator) -> dict[str, Any]:
    from mimlkit.datasets.tiling import TileBagger
    from mimlkit.features.extract import extract_features
    from mimlkit.features.multilevel import make_extractor

    ex = make_extractor("tiny-multilevel", None, seed=0)
    imgs = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(max(n, 4))]
    cache = work / "fcache"
    kw = dict(tiler=TileBagger(32), device="cpu", progress=False, cache_dir=cache)
    ref = extract_features(imgs, ex, **kw)
    files = sorted(cache.rglob("*.npz"))
    recovered = corrupt = 0
    for k in range(n):
        f = files[k % len(files)]
        data = f.read_bytes()
        f.write_bytes(data[: int(rng.integers(0, len(data)))] if k % 2 == 0
                      else bytes(rng.integers(0, 256, len(data), dtype=np.uint8)))
        again = extract_features(imgs, ex, **kw)
        recovered += bool(np.allclose(again.instances, ref.instances, atol=1e-6))
        corrupt += len(F.check_cache(cache)[1])
    return _row("truncated / garbage feature-cache entry", n, None, recovered, None, corrupt,
                "entry treated as missing and recomputed")


# ----------------------------------------------------------------------------- determinism
_DET = r"""
import hashlib, json, sys, warnings
warnings.filterwarnings("ignore")
import numpy as np
from mimlkit.registry import get_learner_class, learner_spec, list_learners
n_jobs = int(sys.argv[1])
Q = {"max_iter": 10, "n_epochs": 2, "epochs": 2, "max_epochs": 2, "n_iter": 5,
     "n_estimators": 3, "n_rounds": 3, "hidden_size": 8, "batch_size": 8, "n_medoids": 4,
     "k": 3, "n_enhancement": 40, "n_windows": 3, "sparse_iter": 5}
rng = np.random.default_rng(0)
X = [rng.normal(size=(int(rng.integers(1, 6)), 5)).astype(np.float32) for _ in range(40)]
Y = (rng.random((40, 3)) > 0.6).astype(np.int8)
Y[np.arange(40), rng.integers(0, 3, 40)] = 1
out = {}
for name in list_learners(input="bags"):
    est = get_learner_class(name)(**learner_spec(name).params)
    p = set(est.get_params(deep=False))
    over = {k: v for k, v in Q.items() if k in p}
    over.update({k: v for k, v in {"random_state": 7, "device": "cpu", "n_jobs": n_jobs}.items()
                 if k in p})
    est.set_params(**over)
    s = np.ascontiguousarray(est.fit(X, Y).decision_function(X), dtype=np.float64)
    out[name] = {"sha": hashlib.sha256(s.tobytes()).hexdigest(), "n_jobs": "n_jobs" in p,
                 "family": learner_spec(name).family}
print(json.dumps(out))
"""


def determinism(work: Path) -> dict[str, Any]:
    def run(n_jobs: int, hashseed: str) -> dict[str, Any]:
        env = F.env()
        env["PYTHONHASHSEED"] = hashseed
        r = subprocess.run([F.PY, "-c", _DET, str(n_jobs)], cwd=work, env=env,
                           capture_output=True, text=True, timeout=600, check=True)
        return json.loads(r.stdout.strip().splitlines()[-1])

    a, a2, b = run(1, "0"), run(1, "0"), run(2, "1234")
    checks = []
    for name in a:
        checks.append({"learner": name, "family": a[name]["family"], "check": "two runs",
                       "passed": a[name]["sha"] == a2[name]["sha"]})
        what = "n_jobs 1 vs 2 + PYTHONHASHSEED" if a[name]["n_jobs"] else "PYTHONHASHSEED"
        checks.append({"learner": name, "family": a[name]["family"], "check": what,
                       "passed": a[name]["sha"] == b[name]["sha"]})
    # evaluate(n_jobs=1) vs (n_jobs=2)
    import pandas as pd

    from mimlkit.datasets import make_miml_bags
    from mimlkit.evaluation import RepeatedRandomSplit, evaluate
    from mimlkit.registry import create

    ds = make_miml_bags(n_bags=60, n_labels=3, n_features=5, random_state=2)
    learners = {"pooled-linear": create("pooled-linear", random_state=0),
                "mimlknn": create("mimlknn"), "bls": create("bls", random_state=0,
                                                             n_enhancement=50)}
    split = RepeatedRandomSplit(n_repeats=3, train_size=0.7, random_state=0)
    keys = ["learner", "split", "metric", "label"]
    t1, t2 = (evaluate(learners, ds, split, n_jobs=j, progress=False).table
              .sort_values(keys).reset_index(drop=True)[keys + ["value"]] for j in (1, 2))
    try:
        pd.testing.assert_frame_equal(t1, t2, check_exact=True, check_dtype=False)
        ok = True
    except AssertionError:
        ok = False
    checks.append({"learner": "evaluate()", "family": "-", "check": "n_jobs 1 vs 2",
                   "passed": ok})
    return {"checks": checks, "passed": sum(c["passed"] for c in checks),
            "total": len(checks)}


# ----------------------------------------------------------------------------- main
def _md(rows: list[dict[str, Any]], det: dict[str, Any], seconds: float) -> str:
    def cell(v):
        return "–" if v is None else str(v)

    lines = ["## Faults injected", "",
             "| fault kind | injected | killed mid-run | runs recovered | refused with a clear "
             "error | files found corrupt | note |", "|---|--:|--:|--:|--:|--:|---|"]
    for r in rows:
        lines.append(f"| {r['kind']} | {r['injected']} | {cell(r['killed_mid_run'])} | "
                     f"{cell(r['recovered'])} | {cell(r['refused_clearly'])} | {r['corrupt']} "
                     f"| {r['note']} |")
    tot = sum(r["injected"] for r in rows)
    bad = sum(r["corrupt"] for r in rows)
    lines += ["", f"**{tot} faults injected, {bad} files found corrupt (goal 0).** "
              "*killed mid-run*: the process was still running at the kill time (the rest had "
              "finished); *runs recovered*: the rerun completed with valid output (deep: "
              "resumed weights bitwise equal to an uninterrupted run; cache: recomputed "
              "features equal the originals); *files found corrupt*: an output present under "
              "its own name that does not load / parse / hold complete content, a visible "
              "temp file, or a payload that ran.", "",
              "## Determinism", "",
              f"**{det['passed']} / {det['total']} checks passed.** Each registered bag "
              "learner is fitted with `random_state=7` in three fresh processes (two identical; "
              "one with `n_jobs=2` where the learner has it and another `PYTHONHASHSEED`), "
              "SHA-256 of the float64 scores compared; `evaluate()` n_jobs 1 vs 2 compares "
              "every metric value exactly.", "",
              "| learner | family | check | passed |", "|---|---|---|---|"]
    for c in det["checks"]:
        lines.append(f"| {c['learner']} | {c['family']} | {c['check']} | "
                     f"{'yes' if c['passed'] else '**NO**'} |")
    lines += ["", f"Total wall time {seconds:.0f} s (2 shared cores)."]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=10, help="faults per kind")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default=None, help="comma list: fit,save,bench,features,deep,"
                    "files,cache,determinism")
    args = ap.parse_args()
    only = set(args.only.split(",")) if args.only else None
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    rows: list[dict[str, Any]] = []
    det: dict[str, Any] = {"checks": [], "passed": 0, "total": 0}
    with tempfile.TemporaryDirectory(prefix="mimlkit-reliability-") as tmp:
        root = Path(tmp)
        steps = [("fit", lambda w: [kill_fit(w, args.kills, rng)]),
                 ("save", lambda w: [kill_save_window(w, args.kills)]),
                 ("bench", lambda w: [kill_bench(w, args.kills, rng)]),
                 ("features", lambda w: [kill_features(w, args.kills, rng)]),
                 ("deep", lambda w: [kill_deep(w, args.kills, rng)]),
                 ("files", lambda w: tamper(w, 2 * args.kills, rng)),
                 ("cache", lambda w: [corrupt_cache(w, args.kills, rng)])]
        for name, fn in steps:
            if only and name not in only:
                continue
            w = root / name
            w.mkdir()
            t = time.perf_counter()
            rows += fn(w)
            print(f"{name}: {time.perf_counter() - t:.1f} s -> {rows[-1]}", flush=True)
        if not only or "determinism" in only:
            w = root / "det"
            w.mkdir()
            det = determinism(w)
            print(f"determinism: {det['passed']}/{det['total']}", flush=True)
    seconds = time.perf_counter() - t0
    data = {"seed": args.seed, "kills_per_kind": args.kills, "faults": rows,
            "faults_injected": sum(r["injected"] for r in rows),
            "files_corrupt": sum(r["corrupt"] for r in rows), "determinism": det,
            "seconds": round(seconds, 1),
            "sha256_of_this_script": hashlib.sha256(Path(__file__).read_bytes()).hexdigest()}
    write_results("reliability", data, _md(rows, det, seconds),
                  title="Reliability: injected faults, recovery, corruption, determinism")


if __name__ == "__main__":
    main()
