"""Test set-up: offline, CPU, small threads, real data located through MIMLKIT_DATA."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
_TMP_HOME = tempfile.mkdtemp(prefix="mimlkit-test-home-")
os.environ.setdefault("TORCH_HOME", os.path.join(_TMP_HOME, "torch"))
os.environ.setdefault("HF_HOME", os.path.join(_TMP_HOME, "hf"))
os.environ.setdefault("MPLBACKEND", "Agg")

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MIMLKIT_DATA", ROOT.parent / "shared" / "data"))


def pytest_configure(config):
    # torchvision on a CPU torch needs the guarded shim before any import of it
    try:
        from mimlkit._compat import torchvision_ops

        torchvision_ops.ensure()
    except ImportError:  # torch absent: deep tests skip themselves
        pass
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any test that opens a non-local socket fails (the build machines are offline)."""
    real_connect = socket.socket.connect

    def guarded(self, address):
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and not (
            host.startswith("127.") or host in ("localhost", "::1", "0.0.0.0") or "/" in host
        ):
            raise RuntimeError(f"test tried to open a network connection to {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The shared real-data folder; tests that need it skip when it is absent."""
    if not DATA.is_dir():
        pytest.skip(f"real data folder {DATA} not found (set MIMLKIT_DATA)")
    return DATA


def need_data(*parts: str) -> Path:
    """Path under the data root, or skip the calling test with a reason."""
    p = DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} not found (set MIMLKIT_DATA to ../shared/data)")
    return p


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="session")
def load_benchmark():
    """Import a script of ``benchmarks/`` by name (its folder on ``sys.path`` for
    ``_common``), as a module under ``<name>_script``."""
    import importlib.util
    import sys

    def _load(name: str):
        if str(BENCHMARKS) not in sys.path:
            sys.path.insert(0, str(BENCHMARKS))
        spec = importlib.util.spec_from_file_location(f"{name}_script",
                                                      BENCHMARKS / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    return _load
