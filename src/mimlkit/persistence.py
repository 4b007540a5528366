"""Save and load fitted models safely: a folder, never a bare pickle.

Layout of a saved model ``MODEL_DIR/``::

    config.json          format + version, library versions, "module:Class", params (JSON),
                         label names, user metadata (e.g. the input pipeline written by
                         ``mimlkit fit``), SHA-256 of every other file, and
                         ``config_sha256``: a SHA-256 of each of its own fields
    estimator.skops      the estimator (fitted state) with skops; torch modules removed
    torch/<name>.safetensors   state_dict of each torch module listed in ``_torch_modules``

Loading checks, in order: the folder and ``config.json`` exist, the format version is known,
no field of ``config.json`` was edited after saving (``config_sha256``: reordering
``label_names`` would silently relabel every prediction, so it is refused), every listed
file is present and its SHA-256 matches (tampering / corruption), the class
resolves, and the skops file holds only trusted types (``mimlkit.``, ``sklearn.``, numpy / scipy
data containers — arrays, dtypes, scalars, random generators, sparse matrices — and harmless
builtins); anything else raises ``PersistenceError`` naming the type and
file. Torch modules are rebuilt with ``model._build_torch_module(name)`` and their weights
loaded from safetensors (no code is executed from the files).

Writes go to a temporary sibling folder that is renamed into place; an existing model at the
target is replaced only once the new one is complete.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import importlib
import json
import math
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["save", "load", "read_config", "PersistenceError", "FORMAT_VERSION",
           "TRUSTED_PREFIXES"]

FORMAT_NAME = "mimlkit-model"
FORMAT_VERSION = 2  # 2: config_sha256 (per-field checksums of config.json itself)
CONFIG = "config.json"
ESTIMATOR_FILE = "estimator.skops"
TORCH_DIR = "torch"

#: module prefixes whose types may appear in a skops file
TRUSTED_PREFIXES = ("mimlkit.", "sklearn.", "numpy.", "scipy.", "builtins.")
#: builtins that must never be resolved from a file even though they live in ``builtins``
_DENIED_BUILTINS = {"eval", "exec", "compile", "open", "__import__", "getattr", "setattr",
                    "delattr", "globals", "locals", "vars", "input", "breakpoint", "help",
                    "exit", "quit", "memoryview", "__build_class__", "__loader__"}


class PersistenceError(ValueError):
    """A model folder cannot be read safely: unknown format, tampered or untrusted content."""


# ----------------------------------------------------------------------------- helpers
def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _json_safe(value: Any) -> tuple[Any, bool]:
    """(JSON-safe value, exact?) — non-JSON values become ``{"__repr__": repr(value)}``."""
    if value is None or isinstance(value, (bool, str)):
        return value, True
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), True
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return (v, True) if math.isfinite(v) else ({"__float__": repr(v)}, True)
    if isinstance(value, np.bool_):
        return bool(value), True
    if isinstance(value, (list, tuple)):
        items = [_json_safe(v) for v in value]
        return [v for v, _ in items], all(ok for _, ok in items)
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        items = {k: _json_safe(v) for k, v in value.items()}
        return {k: v for k, (v, _) in items.items()}, all(ok for _, ok in items.values())
    return {"__repr__": repr(value)}, False


def _config_digests(config: dict[str, Any]) -> dict[str, str]:
    """SHA-256 of each field of a config (canonical JSON), except the volatile save time and
    the digests themselves."""
    out = {}
    for key in sorted(config):
        if key in ("config_sha256", "saved_at"):
            continue
        text = json.dumps(config[key], sort_keys=True, separators=(",", ":"))
        out[key] = hashlib.sha256(text.encode()).hexdigest()
    return out


def _class_path(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


def _resolve_class(target: str) -> type:
    module, _, name = target.partition(":")
    if not module or not name:
        raise PersistenceError(f"bad class reference {target!r} in {CONFIG}")
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        from mimlkit._extras import extra_for_module, missing_extra_error

        extra = extra_for_module(getattr(exc, "name", None))
        if extra is not None and isinstance(exc, ModuleNotFoundError):
            raise missing_extra_error(extra, exc.name, f"model class {target}") from None
        raise ImportError(f"model class {target} not found: cannot import {module} ({exc})"
                          ) from exc
    obj: Any = mod
    for part in name.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ImportError(f"model class {target} not found: {module} has no {name}")
    if not isinstance(obj, type):
        raise PersistenceError(f"{target} is not a class")
    return obj


def _is_torch_object(value: Any) -> bool:
    mod = type(value).__module__ or ""
    return mod == "torch" or mod.startswith("torch.")


def _is_trusted(type_name: str) -> bool:
    if type_name.startswith("builtins."):
        return type_name.split(".", 1)[1] not in _DENIED_BUILTINS
    if type_name.startswith(("numpy.", "scipy.")):
        return _is_data_type(type_name)
    return type_name.startswith(TRUSTED_PREFIXES)


def _is_data_type(type_name: str) -> bool:
    """numpy / scipy types are trusted only as data containers: arrays, dtypes, scalars,
    random generators and sparse matrices. A bare ``numpy.`` prefix would admit classes with
    side effects (``numpy.lib.npyio.DataSource.__del__`` deletes a directory named in its
    state), so other numpy / scipy classes are refused."""
    module, _, name = type_name.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return False
    if not isinstance(obj, type) or obj is np.memmap:
        return False
    if module.split(".")[0] == "numpy":
        return issubclass(obj, (np.ndarray, np.generic, np.dtype)) or module == "numpy.dtypes" \
            or module.startswith("numpy.random.") or module == "numpy.random"
    import scipy.sparse as sp

    sparse = tuple(t for t in (getattr(sp, "spmatrix", None), getattr(sp, "sparray", None)) if t)
    return bool(sparse) and issubclass(obj, sparse)


def _versions() -> dict[str, str]:
    import sys

    import mimlkit

    out = {"mimlkit": mimlkit.__version__, "python": sys.version.split()[0],
           "numpy": np.__version__}
    for mod in ("sklearn", "scipy", "skops", "torch", "safetensors"):
        m = sys.modules.get(mod)
        if m is not None:
            out[mod] = getattr(m, "__version__", "?")
    return out


# ----------------------------------------------------------------------------- save
def save(model: Any, path: str | os.PathLike, *, label_names: list[str] | None = None,
         metadata: dict[str, Any] | None = None) -> Path:
    """Save a fitted (or unfitted) estimator to the folder ``path`` atomically.

    ``label_names`` default to ``model.label_names_`` when present; ``metadata`` (JSON-safe)
    is stored verbatim under ``"metadata"`` in ``config.json``. Returns the folder path.
    """
    import skops.io as sio

    target = Path(path)
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()) and not (target / CONFIG).is_file():
        raise FileExistsError(f"{target} is a non-empty folder that is not a mimlkit model; "
                              "refusing to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)

    torch_names = tuple(getattr(model, "_torch_modules", ()) or ())
    stripped = copy.copy(model)  # shallow: the torch modules are detached below, not copied
    modules: dict[str, Any] = {}
    for name in torch_names:
        if name in getattr(stripped, "__dict__", {}):
            modules[name] = stripped.__dict__.pop(name)
    for key, value in getattr(stripped, "__dict__", {}).items():
        if _is_torch_object(value):
            raise TypeError(
                f"{type(model).__name__}.{key} holds a torch object ({type(value).__name__}); "
                "list torch modules in `_torch_modules` and implement `_build_torch_module`, "
                "or store arrays instead"
            )

    params: dict[str, Any] = {}
    inexact: list[str] = []
    if hasattr(model, "get_params"):
        for k, v in model.get_params(deep=False).items():
            params[k], ok = _json_safe(v)
            if not ok:
                inexact.append(k)
    meta_safe, ok = _json_safe(dict(metadata or {}))
    if not ok:
        raise TypeError("metadata must be JSON-serialisable (str, numbers, lists, dicts)")
    names = label_names if label_names is not None else getattr(model, "label_names_", None)

    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        sio.dump(stripped, tmp / ESTIMATOR_FILE)
        files = [ESTIMATOR_FILE]
        if modules:
            from mimlkit._extras import require

            save_file = require("deep", "safetensors.torch", "saving torch modules").save_file

            (tmp / TORCH_DIR).mkdir()
            for name, module in modules.items():
                if module is None:
                    continue
                if not hasattr(module, "state_dict"):
                    raise TypeError(f"{type(model).__name__}.{name} is listed in _torch_modules "
                                    f"but is a {type(module).__name__}, not a torch module")
                state = {k: v.detach().cpu().contiguous().clone()
                         for k, v in module.state_dict().items()}
                rel = f"{TORCH_DIR}/{name}.safetensors"
                save_file(state, str(tmp / rel))
                files.append(rel)
        config = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "class": _class_path(model),
            "params": params,
            "params_inexact": inexact,
            "label_names": [str(x) for x in names] if names is not None else None,
            "torch_modules": sorted(k for k, v in modules.items() if v is not None),
            "versions": _versions(),
            "saved_at": _dt.datetime.now().isoformat(timespec="seconds"),
            "metadata": meta_safe,
            "sha256": {f: _sha256(tmp / f) for f in files},
        }
        config["config_sha256"] = _config_digests(config)
        with open(tmp / CONFIG, "w") as f:
            json.dump(config, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        # swap into place: the old model (if any) is removed only after the new one is complete
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(target, old)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as exc:  # disk full, read-only folder, ...: name the model folder
        shutil.rmtree(tmp, ignore_errors=True)
        if exc.filename is not None and str(target) in str(exc.filename):
            raise
        raise OSError(exc.errno, f"cannot save the model ({exc.strerror or exc})",
                      str(target)) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


# ----------------------------------------------------------------------------- load
def _interrupted_save_hint(folder: Path) -> str:
    """If a save over ``folder`` was killed between its two renames, say where the complete
    model lies (``config.json`` is written last, so a hidden sibling holding it is complete)."""
    if not folder.parent.is_dir():
        return ""
    left = sorted((p for p in folder.parent.glob(f".{folder.name}.*-*")
                   if (p / CONFIG).is_file()), key=lambda p: p.stat().st_mtime, reverse=True)
    if not left:
        return ""
    kind = "new" if ".tmp-" in left[0].name else "previous"
    return (f"; an interrupted save left the complete {kind} model in {left[0]} "
            f"(rename it to {folder.name} to use it)")


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """The validated ``config.json`` of a model folder (no estimator is loaded)."""
    folder = Path(path)
    if not folder.exists():
        raise FileNotFoundError(f"model folder {folder} not found{_interrupted_save_hint(folder)}")
    if not folder.is_dir():
        raise PersistenceError(f"{folder} is not a model folder (expected a directory)")
    cfg_path = folder / CONFIG
    if not cfg_path.is_file():
        raise FileNotFoundError(f"{folder} is not a mimlkit model folder: {CONFIG} is missing")
    try:
        with open(cfg_path) as f:
            config = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PersistenceError(f"{cfg_path}: corrupted, not valid JSON ({exc})") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT_NAME:
        raise PersistenceError(f"{cfg_path}: not a mimlkit model config (format field missing)")
    version = config.get("format_version")
    if version is None:
        raise PersistenceError(f"{cfg_path}: format_version is missing")
    if not isinstance(version, int) or version < 1 or version > FORMAT_VERSION:
        raise PersistenceError(
            f"{cfg_path}: unknown format_version {version!r}; this mimlkit reads "
            f"versions 1..{FORMAT_VERSION} (saved with mimlkit "
            f"{config.get('versions', {}).get('mimlkit', '?')})"
        )
    for key in ("class", "sha256"):
        if key not in config:
            raise PersistenceError(f"{cfg_path}: field {key!r} is missing")
    _verify_config_digests(cfg_path, config, version)
    return config


def _verify_config_digests(cfg_path: Path, config: dict[str, Any], version: int) -> None:
    """Refuse a ``config.json`` whose fields were edited after saving (format 2+)."""
    stored = config.get("config_sha256")
    if stored is None:
        if version >= 2:
            raise PersistenceError(f"{cfg_path}: field 'config_sha256' is missing")
        return  # format 1 models predate the field
    if not isinstance(stored, dict):
        raise PersistenceError(f"{cfg_path}: field 'config_sha256' is malformed")
    now = _config_digests(config)
    changed = sorted(k for k in set(now) | set(stored) if now.get(k) != stored.get(k))
    if changed:
        hint = (" (reordered or renamed label names would relabel every prediction)"
                if "label_names" in changed else "")
        raise PersistenceError(f"{cfg_path}: field(s) {', '.join(changed)} changed after "
                               f"saving; the checksum does not match{hint}")


def _verify_files(folder: Path, config: dict[str, Any]) -> None:
    hashes = config["sha256"]
    if not isinstance(hashes, dict) or ESTIMATOR_FILE not in hashes:
        raise PersistenceError(f"{folder / CONFIG}: no checksum for {ESTIMATOR_FILE}")
    for rel, expected in hashes.items():
        p = (folder / rel).resolve()
        if folder.resolve() not in p.parents:
            raise PersistenceError(f"{folder / CONFIG}: file {rel!r} points outside the folder")
        if not p.is_file():
            raise PersistenceError(f"{folder}: file {rel} listed in {CONFIG} is missing")
        if _sha256(p) != expected:
            raise PersistenceError(
                f"{p}: SHA-256 mismatch; the file was modified or corrupted after saving"
            )


def load(path: str | os.PathLike) -> Any:
    """Load a model saved with :func:`save` (checks version, checksums, trusted types)."""
    import skops.io as sio

    folder = Path(path)
    config = read_config(folder)
    _verify_files(folder, config)
    cls = _resolve_class(config["class"])

    est_file = folder / ESTIMATOR_FILE
    try:
        untrusted = sio.get_untrusted_types(file=est_file)
    except Exception as exc:  # skops raises assorted errors on a broken archive
        raise PersistenceError(f"{est_file}: cannot read ({type(exc).__name__}: {exc})") from None
    bad = [t for t in untrusted if not _is_trusted(t)]
    if bad:
        raise PersistenceError(f"untrusted type {bad[0]} in file {est_file}"
                               + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""))
    try:
        model = sio.load(est_file, trusted=list(untrusted))
    except Exception as exc:
        raise PersistenceError(f"{est_file}: cannot load ({type(exc).__name__}: {exc})") from None
    if type(model) is not cls:
        raise PersistenceError(f"{est_file} holds a {_class_path(model)}, but {CONFIG} says "
                               f"{config['class']}")

    names = config.get("torch_modules") or []
    if names:
        from mimlkit._extras import require

        load_file = require("deep", "safetensors.torch", "loading torch modules").load_file

        if not hasattr(model, "_build_torch_module"):
            raise PersistenceError(f"{config['class']} has no _build_torch_module; cannot "
                                   f"rebuild torch modules {names}")
        for name in names:
            rel = f"{TORCH_DIR}/{name}.safetensors"
            if rel not in config["sha256"]:
                raise PersistenceError(f"{folder / CONFIG}: no checksum for {rel}")
            module = model._build_torch_module(name)
            state = load_file(str(folder / rel))
            try:
                module.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                raise PersistenceError(f"{folder / rel}: weights do not fit the rebuilt "
                                       f"module {name!r} ({exc})") from None
            module.eval()
            setattr(model, name, module)
    return model
