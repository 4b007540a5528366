"""Results files: the environment record and ``results.json`` (schema mimlkit-results v1)
with its Markdown summary."""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["RESULTS_FORMAT", "environment", "write_results", "dataset_name_from_path",
           "split_scores_payload"]

RESULTS_FORMAT = "mimlkit-results"


def environment(seeds: Any = None, command: str | None = None) -> dict[str, Any]:
    """Library versions, CPU/GPU, seeds and command (no heavy imports)."""
    from importlib import metadata

    versions: dict[str, str] = {"python": platform.python_version()}
    for dist in ("mimlkit", "numpy", "scipy", "scikit-learn", "pandas", "joblib", "torch",
                 "torchvision", "dask", "distributed", "skops", "matplotlib"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    mach: dict[str, Any] = {"platform": platform.platform(),
                            "cpu": platform.processor() or platform.machine(),
                            "n_cpus": os.cpu_count()}
    try:
        import psutil

        mach["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            mach["cuda"] = bool(torch.cuda.is_available())
            if mach["cuda"]:
                mach["gpu"] = torch.cuda.get_device_name(0)
        except Exception:  # pragma: no cover - broken CUDA set-ups
            mach["cuda"] = False
    else:
        mach["cuda"] = None  # torch not loaded in this run
    return {"versions": versions, "machine": mach, "seeds": seeds, "command": command,
            "date": _dt.datetime.now().isoformat(timespec="seconds"),
            "threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                       "OPENBLAS_NUM_THREADS")
                        if os.environ.get(k)}}



@dataclass
class _Table:
    table: Any


def _rows(table) -> list[dict[str, Any]]:
    import pandas as pd

    t = table.copy()
    t = t.astype(object).where(pd.notna(t), None)
    out = []
    for rec in t.to_dict("records"):
        out.append({k: _jsonable(v) for k, v in rec.items()})
    return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v) if np.isfinite(v) else None
    if isinstance(v, float) and not np.isfinite(v):
        return None
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, (np.bool_,)):
        return bool(v)
    return v


def _atomic_json(path: Path, payload: dict[str, Any]) -> None:
    from mimlkit.reporting.report import _atomic_write

    _atomic_write(path, json.dumps(payload, indent=1, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (np.integer, np.floating, np.bool_)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    return repr(o)


def write_results(result: Any, out: str | os.PathLike, *, environment: dict[str, Any],
                  title: str | None = None, extra: dict[str, Any] | None = None
                  ) -> tuple[Path, Path]:
    """Write ``out`` (results JSON, schema mimlkit-results v1) and ``out`` with ``.md``
    (mean ± std table, best marked). Returns both paths."""
    from mimlkit.reporting.report import _atomic_write
    from mimlkit.reporting.tables import summary_markdown

    out = Path(out)
    table = result.table if hasattr(result, "table") else result
    payload = {"format": RESULTS_FORMAT, "version": 1, "title": title,
               "command": environment.get("command"), "date": environment.get("date"),
               "seeds": environment.get("seeds"), "protocol": environment.get("protocol"),
               "environment": environment, **(extra or {}), "rows": _rows(table)}
    _atomic_json(out, payload)
    md_path = out.with_suffix(".md")
    head = f"# {title or out.stem}\n\n"
    if environment.get("command"):
        head += f"- command: `{environment['command']}`\n"
    head += f"- date: {environment.get('date')}\n"
    mach = environment.get("machine", {})
    head += (f"- machine: {mach.get('n_cpus')} CPUs ({mach.get('cpu')}), "
             f"{mach.get('memory_gib', '?')} GiB\n\n")
    _atomic_write(md_path, head + summary_markdown(table))
    return out, md_path


def dataset_name_from_path(path: Any) -> str:
    """A display name for a dataset whose loader gave none: the file stem, or the folder's
    name for generic stems (``labels.csv``, ``data.npz`` ...); relative paths are resolved
    so ``labels.csv`` in the working folder still gets a name."""
    if path is None or str(path).strip() == "":
        return "dataset"
    p = Path(str(path))
    stem = p.stem if p.suffix else p.name
    if stem.lower() in ("labels", "data", "dataset", "train", "index", "") or p.is_dir():
        parent = (p if p.is_dir() else p.parent).resolve().name
        return parent or stem or "dataset"
    return stem


def split_scores_payload(scores: dict[str, dict[int, dict[str, Any]]], Y: np.ndarray,
                        label_names: list[str], max_values: int = 2_000_000,
                        digits: int = 5) -> dict[str, Any] | None:
    """Test-set scores of every learner on ONE split (the first split all learners share),
    for per-label precision-recall curves in the report; ``None`` when there are none or
    when they would hold more than ``max_values`` numbers (keeps results.json small)."""
    per = {k: v for k, v in (scores or {}).items() if v}
    if not per:
        return None
    common = set.intersection(*(set(v) for v in per.values()))
    if not common:
        return None
    split = min(common)
    test_idx = np.asarray(next(iter(per.values()))[split]["test_idx"])
    n_vals = test_idx.size * Y.shape[1] * len(per)
    if n_vals > max_values:
        return None
    out = {}
    for k, v in per.items():
        if not np.array_equal(np.asarray(v[split]["test_idx"]), test_idx):
            continue
        s = np.asarray(v[split]["scores"], dtype=float)
        out[k] = np.where(np.isfinite(s), np.round(s, digits), None).tolist()  # JSON null
    return {"split": int(split), "test_idx": test_idx.tolist(),
            "Y": np.asarray(Y)[test_idx].astype(int).tolist(),
            "label_names": [str(x) for x in label_names], "scores": out}
