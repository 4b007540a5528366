"""Classic MIML learners (specs/classic_miml.md).

Classes load lazily, so importing one learner never imports the others:
``MIMLSVM``, ``MIMLkNN``, ``MIMLNN``, ``MIMLRBF`` (Hausdorff / k-medoids family) and
``MIMLBoost``, ``MIMLfast``, ``MIMLmiSVM``.
"""

from __future__ import annotations

import importlib
from typing import Any

_CLASSES = {
    "MIMLSVM": "mimlsvm",
    "MIMLkNN": "mimlknn",
    "MIMLNN": "mimlnn",
    "MIMLRBF": "mimlrbf",
    "MIMLBoost": "mimlboost",
    "MIMLfast": "mimlfast",
    "MIMLmiSVM": "mimlmisvm",
}

__all__ = list(_CLASSES)


def __getattr__(name: str) -> Any:
    if name in _CLASSES:
        mod = importlib.import_module(f"{__name__}.{_CLASSES[name]}")
        return getattr(mod, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
