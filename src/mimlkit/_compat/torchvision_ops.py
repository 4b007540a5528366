"""Guarded step that lets torchvision's pure-Python parts import on a CPU-only torch.

torchvision 0.28.0 wheels are CUDA builds; against torch 2.13.0+cpu their compiled ops fail
to load and ``import torchvision`` then dies registering fake kernels for ``nms``/``qnms``
(``specs/environment.md`` §3.1). Defining the two operator schemas first makes the import
succeed. No-op where the real extension loads. Idempotent. Call ``ensure()`` right before
the first torchvision import (``mimlkit.features`` and ``mimlkit.deep`` do).
"""

from __future__ import annotations

import logging

_LIB = None  # keep the Library alive: registrations vanish if it is garbage-collected
_DONE = False
log = logging.getLogger(__name__)


def _greedy_nms(dets, scores, iou_threshold: float):  # pragma: no cover - tiny fallback
    import torch

    order = torch.argsort(scores, descending=True)
    keep = []
    x1, y1, x2, y2 = dets.unbind(1)
    area = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    for a in range(len(order)):
        i = order[a]
        if suppressed[a]:
            continue
        keep.append(int(i))
        rest = order[a + 1 :]
        xx1 = torch.maximum(x1[i], x1[rest])
        yy1 = torch.maximum(y1[i], y1[rest])
        xx2 = torch.minimum(x2[i], x2[rest])
        yy2 = torch.minimum(y2[i], y2[rest])
        inter = (xx2 - xx1).clamp(min=0) * (yy2 - yy1).clamp(min=0)
        iou = inter / (area[i] + area[rest] - inter)
        suppressed[a + 1 :] |= iou > iou_threshold
    return torch.tensor(keep, dtype=torch.int64)


def ensure() -> bool:
    """Make ``import torchvision`` work. Returns True when the shim was installed."""
    global _LIB, _DONE
    if _DONE:
        return _LIB is not None
    import torch

    try:
        import torchvision  # noqa: F401  (normal import: GPU machines, matching builds)

        _DONE = True
        return False
    except RuntimeError as exc:
        if "torchvision::nms" not in str(exc):
            raise
    # a failed import leaves partial modules behind; drop them before retrying
    import sys

    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.impl("nms", _greedy_nms, "CPU")
    _LIB = lib
    _DONE = True
    log.debug("torchvision compiled ops missing; defined nms/qnms schemas (CPU torch build)")
    import torchvision  # noqa: F401,F811

    return True


def import_torchvision():
    """``ensure()`` then return the ``torchvision`` module."""
    ensure()
    import torchvision

    return torchvision
