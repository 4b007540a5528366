"""Runtime helpers of the training loop (``mimlkit.deep.trainer``): seeding, devices,
moving batches, RNG-state capture/restore and checkpoint files (atomic save, safe load)."""

from __future__ import annotations

import contextlib
import copy
import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["seed_everything", "resolve_device", "move_to_device", "atomic_torch_save",
           "load_checkpoint", "preserve_rng_state"]


def seed_everything(seed: int) -> None:
    """Seed python ``random``, numpy's global RNG and torch (CPU and CUDA)."""
    seed = int(seed) % (2**32)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolve_device(device: str | torch.device = "auto", local_rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:<local_rank>`` when CUDA is available, else CPU."""
    if isinstance(device, torch.device):
        return device
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device(f"cuda:{local_rank}")
        return torch.device("cpu")
    if device == "cuda" and torch.cuda.is_available():
        return torch.device(f"cuda:{local_rank}")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} requested but CUDA is not available")
    return dev


def move_to_device(obj: Any, device: torch.device, non_blocking: bool = False) -> Any:
    """Recursively move tensors in tuples/lists/dicts to ``device``."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=non_blocking)
    if isinstance(obj, tuple):
        return tuple(move_to_device(o, device, non_blocking) for o in obj)
    if isinstance(obj, list):
        return [move_to_device(o, device, non_blocking) for o in obj]
    if isinstance(obj, dict):
        return {k: move_to_device(v, device, non_blocking) for k, v in obj.items()}
    return obj


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, then ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)``: tensors, plain python values
    and numpy arrays only (the RNG states and sampler weights); never arbitrary pickle code."""
    numpy_types = [np.zeros(1).__reduce__()[0], np.ndarray, np.dtype]
    numpy_types += sorted({type(np.dtype(t)) for t in "?bBhHiIlLqQefdg"}, key=str)
    with torch.serialization.safe_globals(numpy_types):
        return torch.load(path, map_location="cpu", weights_only=True)


def _atomic_write_text(path: str | os.PathLike, text: str) -> None:
    from mimlkit._io import atomic_write

    atomic_write(path, text)


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"].cpu())
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])


def _clone_state(state: Any) -> Any:
    """Deep copy of a state dict (tensors detached and cloned, other values deep-copied)."""
    if isinstance(state, torch.Tensor):
        return state.detach().clone()
    if isinstance(state, dict):
        out = type(state)() if not hasattr(state, "_metadata") else copy.copy(state)
        for k, v in state.items():
            out[k] = _clone_state(v)
        return out
    return copy.deepcopy(state)


@contextlib.contextmanager
def preserve_rng_state() -> Iterator[None]:
    """Restore python / numpy / torch (and CUDA) global RNG states on exit, so a learner's
    ``fit`` (which seeds everything) leaves the caller's random streams untouched."""
    state = _rng_state()
    try:
        yield
    finally:
        _set_rng_state(state)


def _to_float(v: Any) -> Any:
    if isinstance(v, torch.Tensor):
        return float(v.detach().float().mean().cpu())
    if isinstance(v, np.generic):
        return v.item()
    return v
