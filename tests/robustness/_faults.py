"""Fault-injection harness shared by ``test_interrupted.py`` and ``benchmarks/reliability.py``.

Starts ``mimlkit`` commands (or a small training script) as subprocesses, SIGKILLs them at a
chosen moment, and inspects what they left behind: a model folder must be absent or load and
predict, ``results.json`` absent or complete JSON, every features-cache entry readable and
complete, a dataset ``.npz`` absent or loadable; temporary files may remain but only as hidden
``.<name>...`` siblings, never under an output's own name.

Not a test module (no ``test_`` prefix); load it by path::

    spec = importlib.util.spec_from_file_location("_faults", Path(__file__).with_name(...))
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

PY = sys.executable


def env() -> dict[str, str]:
    """Subprocess environment: one thread per BLAS/torch, headless plots, offline."""
    e = dict(os.environ)
    e.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1",
             MPLBACKEND="Agg", HF_HUB_OFFLINE="1", PYTHONHASHSEED="0")
    return e


def cli(*args: str) -> list[str]:
    return [PY, "-m", "mimlkit.cli", *map(str, args)]


def run(cmd: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run to completion; raises with the captured stderr when it fails."""
    r = subprocess.run(cmd, cwd=cwd, env=env(), capture_output=True, text=True,
                       timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return r


def run_killed(cmd: list[str], cwd: Path, delay: float,
               trigger: Callable[[], bool] | None = None, timeout: float = 300
               ) -> dict[str, Any]:
    """Start ``cmd``; SIGKILL it ``delay`` seconds after start (or after ``trigger()`` first
    returns True, when given). Returns ``{"killed": bool, "seconds": t, "rc": rc}``;
    ``killed`` is False when the process finished before the kill time."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, env=env(), stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        if trigger is not None:
            while p.poll() is None and not trigger():
                if time.perf_counter() - t0 > timeout:
                    break
                time.sleep(0.005)
        t_kill = time.perf_counter() + delay
        while p.poll() is None and time.perf_counter() < t_kill:
            time.sleep(0.005)
        killed = p.poll() is None
        if killed:
            os.kill(p.pid, signal.SIGKILL)
        rc = p.wait(timeout=30)
    finally:
        if p.poll() is None:  # pragma: no cover - never leave a child behind
            p.kill()
            p.wait()
    return {"killed": killed, "seconds": round(time.perf_counter() - t0, 3), "rc": rc}


# ----------------------------------------------------------------------------- inputs
def make_bags_npz(path: Path, n_bags: int = 60, seed: int = 1) -> Path:
    from mimlkit.datasets import make_miml_bags, save_npz

    return save_npz(make_miml_bags(n_bags=n_bags, n_labels=3, n_features=5,
                                   random_state=seed), path)


def make_image_folder(root: Path, n: int = 24, size: int = 96, seed: int = 0
                      ) -> tuple[Path, Path]:
    """``root/imgs/*.png`` (random RGB) + ``root/labels.csv``; returns (folder, csv)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    imgs = root / "imgs"
    imgs.mkdir(parents=True, exist_ok=True)
    rows = ["image,cat,dog"]
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(
            imgs / f"im{i:03d}.png")
        rows.append(f"im{i:03d}.png,{i % 2},{(i // 2) % 2}")
    csv = root / "labels.csv"
    csv.write_text("\n".join(rows) + "\n")
    return imgs, csv


def suite_yaml(path: Path, data: Path, repeats: int = 2) -> Path:
    path.write_text(f"name: tiny\ndataset: {data}\nprotocol: repeat:{repeats}\nseed: 3\n"
                    "metrics: [hamming_loss, average_precision]\n"
                    "learners:\n  - pooled-linear\n  - {name: pooled-linear, params: "
                    "{pool: max}, label: pooled-max}\n")
    return path


# ----------------------------------------------------------------------------- checks
def visible_leftovers(parent: Path, expected: set[str]) -> list[str]:
    """Names in ``parent`` that are neither expected outputs/inputs nor hidden temp files."""
    if not parent.is_dir():
        return []
    return sorted(p.name for p in parent.iterdir()
                  if p.name not in expected and not p.name.startswith("."))


def check_model(target: Path, X: Any) -> str:
    """``"absent"``, ``"ok"`` (loads and predicts finite scores) or ``"corrupt: ..."``."""
    from mimlkit import persistence

    if not target.exists():
        return "absent"
    try:
        est = persistence.load(target)
        s = np.asarray(est.decision_function(X))
        if s.shape[0] != len(X) or not np.isfinite(s).all():
            return f"corrupt: bad scores {s.shape}"
    except Exception as exc:  # noqa: BLE001 - any failure is a corrupt model
        return f"corrupt: {type(exc).__name__}: {exc}"
    return "ok"


def check_results(out: Path, n_rows: int | None = None) -> str:
    """``results.json`` in ``out``: ``"absent"``, ``"ok"`` or ``"corrupt: ..."`` (invalid
    JSON, missing fields, or fewer rows than a complete run's ``n_rows``)."""
    p = out / "results.json"
    if not p.exists():
        return "absent"
    try:
        data = json.loads(p.read_text())
        rows = data["rows"]
        if not rows or "environment" not in data:
            return "corrupt: empty"
        if n_rows is not None and len(rows) != n_rows:
            return f"corrupt: {len(rows)} rows, expected {n_rows}"
        md = out / "results.md"
        if md.exists() and "|" not in md.read_text():
            return "corrupt: results.md has no table"
    except Exception as exc:  # noqa: BLE001
        return f"corrupt: {type(exc).__name__}: {exc}"
    return "ok"


def cache_entries(cache: Path) -> dict[str, tuple[int, int]]:
    """Visible feature files under ``cache`` -> (inode, mtime_ns)."""
    out = {}
    if cache.is_dir():
        for p in cache.rglob("*"):
            if p.suffix in (".npy", ".npz") and not p.name.startswith("."):
                st = p.stat()
                out[str(p.relative_to(cache))] = (st.st_ino, st.st_mtime_ns)
    return out


def check_cache(cache: Path, n_features: int | None = None) -> tuple[int, list[str]]:
    """(readable entries, corrupt entry messages): each entry must load without pickle and
    hold a complete, finite 2-D feature array (with matching coords when tiled)."""
    ok, bad = 0, []
    for rel in cache_entries(cache):
        p = cache / rel
        try:
            if p.suffix == ".npz":
                with np.load(p, allow_pickle=False) as z:
                    f, c = z["features"], z["coords"]
                if len(c) != len(f):
                    raise ValueError("coords/features length mismatch")
            else:
                f = np.load(p, allow_pickle=False)
            if f.ndim != 2 or len(f) == 0 or not np.isfinite(f).all():
                raise ValueError(f"bad feature array {f.shape}")
            if n_features is not None and f.shape[1] != n_features:
                raise ValueError(f"{f.shape[1]} features, expected {n_features}")
            ok += 1
        except Exception as exc:  # noqa: BLE001
            bad.append(f"{rel}: {type(exc).__name__}: {exc}")
    return ok, bad


def check_npz(path: Path, n_bags: int) -> str:
    from mimlkit.datasets import load_npz

    if not path.exists():
        return "absent"
    try:
        ds = load_npz(path)
        if len(ds) != n_bags or not np.isfinite(ds.bags.instances).all():
            return f"corrupt: {len(ds)} bags"
    except Exception as exc:  # noqa: BLE001
        return f"corrupt: {type(exc).__name__}: {exc}"
    return "ok"


# ----------------------------------------------------------------------------- deep training
# save a model, then save another over it, SIGKILLed at the N-th os.replace of the save
SAVE_KILL_SCRIPT = r"""
import os, signal, sys
from mimlkit import persistence
from mimlkit.datasets import load_npz
from mimlkit.registry import create
ds = load_npz(sys.argv[1])
est = create("pooled-linear").fit(ds.bags, ds.Y)
persistence.save(est, sys.argv[2])
calls = [0]
real = os.replace
def replace(a, b):
    calls[0] += 1
    if calls[0] == int(sys.argv[3]):
        os.kill(os.getpid(), signal.SIGKILL)
    return real(a, b)
persistence.os.replace = replace
persistence.save(create("pooled-linear", pool="max").fit(ds.bags, ds.Y), sys.argv[2])
"""

DEEP_SCRIPT = r"""
import json, sys
import numpy as np, torch
torch.set_num_threads(1)
from mimlkit.datasets import make_miml_bags
from mimlkit.registry import create
mode, ck, epochs, n_bags = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ds = make_miml_bags(n_bags=n_bags, n_labels=4, n_features=16, random_state=0)
kw = dict(max_epochs=epochs, batch_size=8, lr=0.01, hidden=(32,), dropout=0.2,
          random_state=3, device="cpu")
if mode == "train":
    create("multilabel-head", checkpoint_dir=ck, **kw).fit(ds.bags, ds.Y)
else:
    a = create("multilabel-head", checkpoint_dir=ck, resume=True, **kw).fit(ds.bags, ds.Y)
    b = create("multilabel-head", **kw).fit(ds.bags, ds.Y)
    sa, sb = a.decision_function(ds.bags), b.decision_function(ds.bags)
    wa = {k: v for k, v in a.module_.state_dict().items()}
    wb = {k: v for k, v in b.module_.state_dict().items()}
    same_w = wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    print(json.dumps({"equal_scores": bool(np.array_equal(sa, sb)), "equal_weights": same_w,
                      "max_diff": float(np.abs(sa - sb).max()), "epochs": a.n_epochs_}))
"""


def deep_cmd(mode: str, ck: Path, epochs: int, n_bags: int) -> list[str]:
    return [PY, "-c", DEEP_SCRIPT, mode, str(ck), str(epochs), str(n_bags)]


def checkpoint_epoch(ck: Path) -> int | None:
    """Epoch stored in ``ck/last.pt`` (None if absent); raises if it is unreadable."""
    p = ck / "last.pt"
    if not p.exists():
        return None
    from mimlkit.deep.trainer import load_checkpoint

    return int(load_checkpoint(p)["epoch"])
