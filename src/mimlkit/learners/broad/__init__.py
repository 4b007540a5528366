"""Broad learners: the Broad Learning System and BMIML (Lai et al., TETCI 2024).

``BroadLearningSystem`` (bls), ``AWLEL`` (label enhancement, BMIML stage 2), ``SMIPR``
(medoid-embedding regression, stage 3) and ``BMIML`` (AWLEL -> T -> SMIPR -> IDO).
Submodules are imported lazily so ``import mimlkit.learners.broad`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["BroadLearningSystem", "AWLEL", "SMIPR", "BMIML"]

_WHERE = {"BroadLearningSystem": "bls", "AWLEL": "awlel", "SMIPR": "smipr", "BMIML": "bmiml"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(name)
