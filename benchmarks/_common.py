"""Shared helpers for benchmark scripts: machine description and result writing.

Every benchmark writes ``benchmarks/results/<name>.json`` (raw figures + environment) and
``benchmarks/results/<name>.md`` (a short table headed by the command, date and machine).
Writes are atomic (temporary file + rename).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SCENE_ARFF = SHARED_DATA / "miml_scene" / "miml_03_data.arff"

# the five MIML metrics of the literature's Scene tables, with their short headers
MIML_METRICS = ["hamming_loss", "one_error", "coverage_norm", "ranking_loss", "average_precision"]
MIML_SHORT = {"hamming_loss": "HL ↓", "one_error": "OE ↓", "coverage_norm": "Cov/q ↓",
              "ranking_loss": "RL ↓", "average_precision": "AP ↑"}


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": platform.processor() or platform.machine(),
        "n_cpus": os.cpu_count(),
    }
    try:
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    for mod in ("numpy", "scipy", "sklearn", "torch"):
        m = sys.modules.get(mod)
        if m is not None:
            info[mod] = getattr(m, "__version__", "?")
    torch = sys.modules.get("torch")
    if torch is not None:
        info["cuda"] = bool(torch.cuda.is_available())
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


def command() -> str:
    return "python " + " ".join(shlex.quote(a) for a in sys.argv)


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_results(name: str, data: dict[str, Any], markdown_body: str, *,
                  title: str | None = None, results_dir: Path | None = None) -> tuple[Path, Path]:
    """Write ``<name>.json`` and ``<name>.md``; returns both paths."""
    out = Path(results_dir) if results_dir else RESULTS
    now = _dt.datetime.now().isoformat(timespec="seconds")
    env = machine()
    payload = {"name": name, "command": command(), "date": now, "machine": env, **data}
    _atomic_write(out / f"{name}.json", json.dumps(payload, indent=2, default=str) + "\n")
    head = (
        f"# {title or name}\n\n"
        f"- command: `{command()}`\n"
        f"- date: {now}\n"
        f"- machine: {env.get('n_cpus')} CPUs ({env.get('cpu')}), "
        f"{env.get('memory_gib', '?')} GiB, {env.get('platform')}"
        + (f", GPU {env['gpu']}" if env.get("gpu") else "")
        + "\n\n"
    )
    _atomic_write(out / f"{name}.md", head + markdown_body.rstrip() + "\n")
    return out / f"{name}.json", out / f"{name}.md"
