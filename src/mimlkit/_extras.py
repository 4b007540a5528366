"""Optional dependency groups ("extras") and the one-line error for a missing one.

The core install (``pip install mimlkit``) has the readers, metrics, classic and broad
learners, evaluation and the CLI. Heavy parts live behind extras declared in
``pyproject.toml``::

    deep    torch, torchvision, safetensors   deep learners, CNN features, torch models
    dask    dask[distributed]                 ``--backend dask``
    report  matplotlib                        the plots of the HTML report
    wsi     tifffile, tiffslide               whole-slide image readers
    store   zarr, h5py                        on-disk bag store; CLAM HDF5 import (h5py)

``require(extra, module)`` imports ``module`` or raises :class:`MissingExtraError`, an
``ImportError`` whose message is one line naming the extra and the pip command, e.g.
``learner 'deepmiml' needs the 'deep' extra (torch is not installed): pip install
'mimlkit[deep]'``. The CLI prints that line and exits with code 2.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXTRAS", "MissingExtraError", "require", "extra_for_module", "has_extra",
           "missing_extra_error"]

#: extra name -> the top-level modules it provides (first = the one checked by ``has_extra``)
EXTRAS: dict[str, tuple[str, ...]] = {
    "deep": ("torch", "torchvision", "safetensors"),
    "dask": ("dask", "distributed"),
    "report": ("matplotlib",),
    "wsi": ("tifffile", "tiffslide"),
    "store": ("zarr", "h5py"),
}


class MissingExtraError(ImportError):
    """A part of mimlkit needs an optional dependency group that is not installed."""

    def __init__(self, message: str, *, extra: str, name: str | None = None) -> None:
        super().__init__(message, name=name)
        self.extra = extra


def extra_for_module(module: str | None) -> str | None:
    """The extra that provides ``module`` (by its top-level package), or None."""
    if not module:
        return None
    top = module.split(".")[0]
    for extra, mods in EXTRAS.items():
        if top in mods:
            return extra
    return None


def missing_extra_error(extra: str, module: str, what: str | None = None) -> MissingExtraError:
    """The one-line error for ``module`` (from ``extra``) missing; ``what`` names the user."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; known: {', '.join(EXTRAS)}")
    top = module.split(".")[0]
    who = what or f"this feature ({module})"
    return MissingExtraError(f"{who} needs the {extra!r} extra ({top} is not installed): "
                             f"pip install 'mimlkit[{extra}]'", extra=extra, name=top)


def require(extra: str, module: str, what: str | None = None) -> ModuleType:
    """Import and return ``module``; if it (or a module it needs from an extra) is missing,
    raise :class:`MissingExtraError` naming ``extra``. Other import failures propagate."""
    if extra not in EXTRAS:
        raise ValueError(f"unknown extra {extra!r}; known: {', '.join(EXTRAS)}")
    try:
        if module.split(".")[0] == "torchvision":  # CPU torch + CUDA torchvision wheels
            from mimlkit._compat import torchvision_ops

            torchvision_ops.ensure()
        return importlib.import_module(module)
    except MissingExtraError:
        raise
    except ImportError as exc:
        missing = getattr(exc, "name", None) or module
        owner = extra_for_module(missing)
        if isinstance(exc, ModuleNotFoundError) and (owner is not None or missing == module):
            raise missing_extra_error(owner or extra, missing, what) from None
        raise


def has_extra(extra: str) -> bool:
    """True when every module of ``extra`` can be found (without importing it)."""
    import importlib.util

    try:
        return all(importlib.util.find_spec(m) is not None for m in EXTRAS[extra])
    except (ImportError, ValueError):
        return False
