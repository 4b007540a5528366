"""Scaling benchmark (issue 16): fit / predict time and peak RSS per learner as the number
of bags grows, and what each learner refuses or cannot finish under a time / memory cap.

Parts (each run is its own subprocess; its peak RSS is sampled by this process every 50 ms
over the whole process tree, so a run that breaks the cap is killed and marked):

* ``bigbag``: ``mimlkit fit`` (the CLI, measured with ``/usr/bin/time -v``) with ``mimlknn``
  and ``mimlsvm`` on 300 Scene bags + one bag of 200,000 instances (15 features; the big bag
  is Scene instances resampled with noise). Only meaningful with the Scene data present.
* ``synth16``: ``make_miml_bags`` (16 features, 5 labels), 20K bags, one 2/3 - 1/3 split,
  ``mimlknn`` and ``mimlsvm`` (the issue's memory figures: 7.4 / 4.45 GiB before).
* ``nih``: NIH-shaped synthetic bags (4-16 instances, 256 features, 14 labels) at the sizes
  of ``--sizes`` for ``--learners``, plus ``--big-sizes`` (default 120K) for
  ``--big-learners`` (default bmiml, mimlfast); a fixed test set of ``--n-test`` bags. A
  learner that hits the cap at one size is not run at larger sizes (marked with the size at
  which it hit it). Fitted log-log exponents of fit time over the sizes each finished.

Library defaults (``mimlkit.registry.create(name)``) unless ``--preset paper``.

    python benchmarks/scale.py                                  # everything
    python benchmarks/scale.py --parts nih --sizes 2000 --learners mimlfast
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SCENE_ARFF, write_results  # noqa: E402

K_NIH, D_NIH = 14, 256
GIB = 2**30


# ----------------------------------------------------------------------------- data
def nih_like(n: int, seed: int):
    """n bags of 4-16 instances x 256 features, 14 labels (prevalence 3-20 %, cardinality
    ~1.3): each relevant label puts one instance near its concept centre, the others are
    background; float32, generated in chunks."""
    import numpy as np

    from mimlkit.bags import Bags

    rng = np.random.default_rng(seed)
    src_rng = np.random.default_rng(12345)  # concepts shared by every size / split
    centres = src_rng.normal(size=(K_NIH, D_NIH)).astype(np.float32) * 0.9
    background = src_rng.normal(size=(8, D_NIH)).astype(np.float32) * 0.9
    prev = np.linspace(0.03, 0.2, K_NIH)
    Y = (rng.random((n, K_NIH)) < prev).astype(np.int8)
    empty = Y.sum(1) == 0
    Y[empty, rng.integers(0, K_NIH, size=int(empty.sum()))] = 1
    sizes = rng.integers(4, 17, size=n)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    X = np.empty((int(offsets[-1]), D_NIH), dtype=np.float32)
    bag_of = np.repeat(np.arange(n), sizes)
    pos = np.arange(X.shape[0]) - offsets[bag_of]
    # instance k of bag i shows the k-th relevant label (random order), else background
    keys = Y + 0.5 * rng.random((n, K_NIH))
    order = np.argsort(-keys, axis=1)
    cnt = Y.sum(1)
    for s in range(0, X.shape[0], 65536):
        e = min(X.shape[0], s + 65536)
        b, k = bag_of[s:e], pos[s:e]
        lab = order[b, np.minimum(k, K_NIH - 1)]
        is_lab = k < cnt[b]
        base = np.where(is_lab[:, None], centres[lab],
                        background[rng.integers(0, 8, size=e - s)])
        X[s:e] = base + rng.standard_normal((e - s, D_NIH), dtype=np.float32)
    return Bags(X, offsets), Y


def synth16(n: int, seed: int):
    from mimlkit.datasets import make_miml_bags

    ds = make_miml_bags(n, random_state=seed)
    return ds.bags, ds.Y


def bigbag_dataset(path: Path, n_small: int = 300, big: int = 200_000) -> None:
    """300 Scene bags + one bag of ``big`` Scene-like instances, as a mimlkit ``.npz``."""
    import numpy as np

    from mimlkit.bags import Bags
    from mimlkit.datasets import load_dataset, save_npz
    from mimlkit.datasets.base import MIMLDataset

    ds = load_dataset(SCENE_ARFF)
    small = ds.bags.take(np.arange(n_small))
    rng = np.random.default_rng(0)
    pool = small.instances
    Xbig = pool[rng.integers(0, len(pool), size=big)] + 0.1 * pool.std(axis=0) * \
        rng.standard_normal((big, pool.shape[1])).astype(np.float32)
    X = np.vstack([small.instances, Xbig.astype(np.float32)])
    offsets = np.concatenate([small.offsets, [small.offsets[-1] + big]])
    Y = np.vstack([ds.Y[:n_small], ds.Y[n_small:n_small + 1]])
    save_npz(MIMLDataset(Y=Y, label_names=ds.label_names, bags=Bags(X, offsets),
                         name="scene300+200k"), path)


# ----------------------------------------------------------------------------- worker
def worker(spec: dict) -> None:
    """Runs in the subprocess: make data, fit, predict; prints one JSON line."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    from mimlkit import registry

    t0 = time.perf_counter()
    make = nih_like if spec["data"] == "nih" else synth16
    if spec["data"] == "nih":
        bags, Y = make(spec["n"], seed=1)
        test, _ = make(spec["n_test"], seed=2)
    else:
        allb, allY = make(spec["n"], seed=0)
        n_tr = (2 * spec["n"]) // 3
        bags, Y = allb.take(np.arange(n_tr)), allY[:n_tr]
        test = allb.take(np.arange(n_tr, spec["n"]))
    gen_s = time.perf_counter() - t0
    est = registry.create(spec["learner"], preset=spec["preset"])
    with threadpool_limits(spec["threads"]):
        t, c = time.perf_counter(), time.process_time()
        est.fit(bags, Y)
        fit_s, fit_cpu = time.perf_counter() - t, time.process_time() - c
        t, c = time.perf_counter(), time.process_time()
        est.predict(test)
        pred_s, pred_cpu = time.perf_counter() - t, time.process_time() - c
    import resource

    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GIB  # Linux: KiB
    print("RESULT " + json.dumps({"fit_s": fit_s, "fit_cpu_s": fit_cpu, "predict_s": pred_s,
                                  "predict_cpu_s": pred_cpu, "gen_s": gen_s,
                                  "maxrss_gib": maxrss, "n_train": int(bags.n_bags),
                                  "n_test": int(test.n_bags),
                                  "n_instances": int(bags.n_instances)}), flush=True)


# ----------------------------------------------------------------------------- parent
def _tree_usage(proc) -> tuple[int, float]:
    """(RSS bytes, CPU seconds user + system) of a process and its children."""
    import psutil

    rss, cpu = 0, 0.0
    try:
        for p in [proc, *proc.children(recursive=True)]:
            try:
                rss += p.memory_info().rss
                t = p.cpu_times()
                cpu += t.user + t.system
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return rss, cpu


def monitored(cmd: list[str], cap_s: float, cap_bytes: float, env: dict | None = None,
              cap_wall: float = 3600.0) -> dict:
    """Run ``cmd``; sample its process-tree RSS; kill it at the caps: ``cap_s`` CPU seconds
    (user + system; the machine is shared, so wall time says little), ``cap_bytes`` RSS,
    ``cap_wall`` wall seconds."""
    import psutil

    with tempfile.TemporaryFile("w+") as out:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        ps = psutil.Process(p.pid)
        peak, killed, cpu = 0, None, 0.0
        while p.poll() is None:
            rss, cpu = _tree_usage(ps)
            peak = max(peak, rss)
            el = time.perf_counter() - t0
            if cpu > cap_s or peak > cap_bytes or el > cap_wall:
                killed = ("CPU time" if cpu > cap_s else "memory" if peak > cap_bytes
                          else "wall time")
                for c in ps.children(recursive=True):
                    c.kill()
                p.kill()
                p.wait()
                break
            time.sleep(0.2)
        wall = time.perf_counter() - t0
        out.seek(0)
        text = out.read()
    return {"rc": p.returncode, "wall_s": wall, "peak_rss_gib": peak / GIB, "killed": killed,
            "cpu_s": cpu, "output": text}


def _error_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    for ln in reversed(lines):
        if re.match(r"^[A-Za-z_.]*(Error|Exception)\b", ln) or ln.startswith("Error"):
            return ln[:300]
    return lines[-1][:300] if lines else ""


def run_worker(spec: dict, cap_s: float, cap_gib: float) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(spec["threads"]))
    r = monitored([sys.executable, __file__, "--worker", json.dumps(spec)], cap_s,
                  cap_gib * GIB, env)
    row = {**spec, "peak_rss_gib": round(r["peak_rss_gib"], 3), "wall_s": round(r["wall_s"], 1)}
    m = re.search(r"^RESULT (.*)$", r["output"], flags=re.M)
    if m and r["killed"] is None:
        row.update(json.loads(m.group(1)))
        row["sampled_peak_rss_gib"] = row["peak_rss_gib"]
        row["peak_rss_gib"] = round(row.pop("maxrss_gib"), 3)  # exact (getrusage)
        row["status"] = "ok"
    elif r["killed"]:
        row["status"] = f"cap: {r['killed']}"
        row["reason"] = (f"killed after {r['cpu_s']:.0f} CPU s ({r['wall_s']:.0f} s wall) at "
                         f"{r['peak_rss_gib']:.2f} GiB (caps {cap_s:.0f} CPU s / "
                         f"{cap_gib:.0f} GiB)")
    else:
        row["status"] = "error"
        row["reason"] = _error_line(r["output"])
    print(json.dumps({k: v for k, v in row.items() if k != "output"}), flush=True)
    return row


def run_bigbag(args, rows: list) -> None:
    if not SCENE_ARFF.exists():
        rows.append({"part": "bigbag", "status": "skipped", "reason": f"{SCENE_ARFF} absent"})
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "big.npz"
        bigbag_dataset(data)
        exe = Path(sys.executable).with_name("mimlkit")
        for learner in ("mimlknn", "mimlsvm"):
            cmd = ["/usr/bin/time", "-v", str(exe), "fit", "--data", str(data), "-l", learner,
                   "--out", str(Path(tmp) / learner)]
            cmd += [a for p in args.bigbag_params for a in ("-p", p)]
            r = monitored(cmd, args.cap_s_big, args.cap_gib * GIB)
            m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r["output"])
            cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)",
                                                     r["output"]))
            row = {"part": "bigbag", "learner": learner, "n": 301, "rc": r["rc"],
                   "wall_s": round(r["wall_s"], 1),
                   "peak_rss_gib": round(int(m.group(1)) * 1024 / GIB, 3) if m else None,
                   "sampled_peak_rss_gib": round(r["peak_rss_gib"], 3),
                   "cpu_s": round(cpu, 1),
                   "command": "mimlkit fit --data <300 Scene + 1 x 200k> -l " + learner
                   + "".join(f" -p {p}" for p in args.bigbag_params)}
            row["status"] = "ok" if r["rc"] == 0 and not r["killed"] else (
                f"cap: {r['killed']}" if r["killed"] else "error")
            if row["status"] != "ok":
                row["reason"] = _error_line(r["output"])
            print(json.dumps(row), flush=True)
            rows.append(row)
            _save(args, rows)


def run_grid(args, rows: list) -> None:
    base = dict(preset=args.preset, threads=args.threads)
    if "synth16" in args.parts:
        for learner in args.synth_learners:
            spec = dict(part="synth16", data="synth16", learner=learner, n=args.synth_n,
                        n_test=0, **base)
            rows.append(run_worker(spec, args.cap_s_big, args.cap_gib))
            _save(args, rows)
    if "nih" not in args.parts:
        return
    hit: dict[str, str] = {}
    plan = [(n, lr) for n in sorted(args.sizes) for lr in args.learners]
    plan += [(n, lr) for n in sorted(args.big_sizes) for lr in args.big_learners]
    for n, learner in plan:
        spec = dict(part="nih", data="nih", learner=learner, n=n, n_test=args.n_test, **base)
        if learner in hit:
            rows.append({**spec, "status": "not run", "reason": hit[learner]})
            _save(args, rows)
            continue
        cap_s = args.cap_s_big if n in args.big_sizes else args.cap_s
        row = run_worker(spec, cap_s, args.cap_gib)
        if row["status"] != "ok":
            hit[learner] = f"{row['status']} at {n:,} bags"
        rows.append(row)
        _save(args, rows)


# ----------------------------------------------------------------------------- report
def exponents(rows: list) -> dict:
    """Fitted exponent of fit CPU seconds vs n per learner, over the sizes it finished under
    one setting (rows of different presets are not mixed; the key names a non-default one)."""
    import numpy as np

    out = {}
    nih = [r for r in rows if r.get("part") == "nih" and r["status"] == "ok"]
    for learner, preset in sorted({(r["learner"], r.get("preset") or "") for r in nih}):
        ok = sorted((r["n"], r.get("fit_cpu_s", r["fit_s"])) for r in nih
                    if r["learner"] == learner and (r.get("preset") or "") == preset)
        if len({n for n, _ in ok}) >= 2:
            n, t = np.log([o[0] for o in ok]), np.log([o[1] for o in ok])
            out[f"{learner} ({preset})" if preset else learner] = round(
                float(np.polyfit(n, t, 1)[0]), 2)
    return out


def _row_key(r: dict) -> tuple:
    return (r.get("part"), r.get("learner"), r.get("n"), r.get("preset"))


def _fmt(v, spec="{:.1f}"):
    return "–" if v is None else spec.format(v)


def _save(args, rows: list) -> None:
    import psutil

    exps = exponents(rows)
    md = [f"Parts: {', '.join(args.parts)} (run as separate concurrent streams; see the JSON "
          "for each part's command)" if args.merge else f"Parts: {', '.join(args.parts)}", ""]
    setting = ("preset (`paper` = fixed thresholds, one fit) and CPU caps: per stream, see "
               "the commands below; " if args.merge else
               f"preset: `{args.preset or 'library defaults'}`; caps: {args.cap_s:.0f} CPU s "
               f"per grid run, {args.cap_s_big:.0f} CPU s for the big-size / bigbag / synth16 "
               "runs; ")
    md = [md[0] + f"; {setting}BLAS threads per run: {args.threads}; "
          f"{args.cap_gib:.0f} GiB RSS cap, 1 h wall. Peak RSS = the whole process (Python, data, "
          "model; `getrusage` max RSS, or `/usr/bin/time -v` for the CLI runs). CPU s = user + "
          "system seconds of the process (all threads): on an idle 2-core machine wall time is "
          "between CPU s / 2 and CPU s. "
          "**The 2 CPUs were shared with other jobs during the runs** (load average at the "
          f"end: {tuple(round(x, 1) for x in psutil.getloadavg())}), so times are upper "
          "bounds and vary run to run; memory figures are not affected.", ""]
    for src, cmd in getattr(args, "sources", {}).items():
        md.insert(-1, f"- stream `{src}`: `{cmd}`")
    big = [r for r in rows if r.get("part") == "bigbag"]
    if big:
        md += ["## One 200,000-instance bag (300 Scene bags + 1; `mimlkit fit`)", "",
               "| learner | status | CPU s | wall s | peak RSS GiB (`/usr/bin/time -v`) | note |",
               "|---|---|---|---|---|---|"]
        md += [f"| {r.get('learner', '–')} | {r['status']} | {_fmt(r.get('cpu_s'))} | "
               f"{_fmt(r.get('wall_s'))} | {_fmt(r.get('peak_rss_gib'), '{:.2f}')} | "
               f"{r.get('reason', '')} |" for r in big]
        if big and big[0].get("command"):
            md += ["", f"Command: `{big[0]['command']}` (and the same with mimlsvm)."]
        md.append("")
    grid = [r for r in rows if r.get("part") in ("synth16", "nih")]
    for part, title in (("synth16", "Synthetic bags, 16 features, 5 labels (2/3 train, 1/3 "
                                    "test)"),
                        ("nih", f"NIH-shaped bags (4-16 instances, {D_NIH} features, "
                                f"{K_NIH} labels; {args.n_test:,} test bags)")):
        sel = [r for r in grid if r["part"] == part]
        if not sel:
            continue
        md += [f"## {title}", "", "| learner | train bags | instances | status | fit CPU s | "
               "fit wall s | predict CPU s | predict wall s | peak RSS GiB | note |",
               "|---|---|---|---|---|---|---|---|---|---|"]
        for r in sorted(sel, key=lambda r: (r["learner"], r["n"])):
            md.append(f"| {r['learner']} | {r.get('n_train', r['n']):,} | "
                      f"{_fmt(r.get('n_instances'), '{:,}')} | {r['status']} | "
                      f"{_fmt(r.get('fit_cpu_s'))} | {_fmt(r.get('fit_s'))} | "
                      f"{_fmt(r.get('predict_cpu_s'))} | {_fmt(r.get('predict_s'))} | "
                      f"{_fmt(r.get('peak_rss_gib'), '{:.2f}')} | {r.get('reason', '')} |")
        md.append("")
    for note in getattr(args, "note", None) or []:
        md += [note, ""]
    if exps:
        md += ["Fitted exponent b of fit CPU seconds ~ n^b (sizes each learner finished): "
               + ", ".join(f"{k} **{v}**" for k, v in exps.items()) + ".", ""]
    write_results(args.name, {"rows": rows, "exponents": exps, "args": vars(args)},
                  "\n".join(md), title="Scaling: time and peak memory vs number of bags")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--parts", nargs="+", default=["bigbag", "synth16", "nih"])
    ap.add_argument("--sizes", nargs="*", type=int, default=[2000, 5000, 20000])
    ap.add_argument("--learners", nargs="+", default=[
        "mimlfast", "bmiml", "bls", "mimlknn", "mimlsvm", "mimlnn", "mimlrbf", "mimlmisvm",
        "mimlboost"])
    ap.add_argument("--big-sizes", nargs="*", type=int, default=[120000])
    ap.add_argument("--big-learners", nargs="+", default=["bmiml", "mimlfast"])
    ap.add_argument("--synth-n", type=int, default=20000)
    ap.add_argument("--synth-learners", nargs="+", default=["mimlknn", "mimlsvm"])
    ap.add_argument("--n-test", type=int, default=2000)
    ap.add_argument("--preset", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cap-s", type=float, default=300.0, help="CPU seconds per grid run")
    ap.add_argument("--cap-s-big", type=float, default=1200.0,
                    help="CPU seconds per big-size / bigbag / synth16 run")
    ap.add_argument("--cap-gib", type=float, default=8.0)
    ap.add_argument("--bigbag-params", nargs="*", default=[],
                    help="KEY=VALUE passed as -p to `mimlkit fit` in the bigbag part")
    ap.add_argument("--name", default="scale")
    ap.add_argument("--note", action="append", help="a paragraph added to the report")
    ap.add_argument("--merge", nargs="*", default=None,
                    help="only merge the rows of these result JSON files into --name")
    ap.add_argument("--supersede", action="store_true",
                    help="with --merge: a row of a later file replaces the earlier rows of the "
                         "same part, learner, size and preset (a re-measurement)")
    args = ap.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    rows: list = []
    if args.merge is not None:
        args.sources = {}
        superseded: list[str] = []
        for f in args.merge:
            res = json.loads(Path(f).read_text())
            new = res["rows"]
            if args.supersede:  # a re-measured point replaces every earlier row of its key
                keys = {_row_key(r) for r in new}
                old = [r for r in rows if _row_key(r) in keys]
                superseded += [f"{r['part']}/{r.get('learner')}/{r['n']:,} "
                               f"({r['status']}, {r.get('peak_rss_gib', '–')} GiB)" for r in old]
                rows = [r for r in rows if _row_key(r) not in keys]
            rows += new
            # a merged file carries the streams it was merged from
            inner = (res.get("args") or {}).get("sources")
            if inner:
                args.sources.update(inner)
            else:
                args.sources[Path(f).name] = f"{res['command']} ({res['date']})"
        if superseded:
            args.note = (args.note or []) + [
                "Rows replaced by a later measurement of the same learner and size "
                "(`--supersede`): " + "; ".join(superseded) + "."]
        args.parts = sorted({r["part"] for r in rows})
        _save(args, rows)
        return
    if "bigbag" in args.parts:
        run_bigbag(args, rows)
    run_grid(args, rows)
    _save(args, rows)


if __name__ == "__main__":
    main()
