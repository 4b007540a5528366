"""Image scores, metrics and threshold choice of the self-paced MIML learner
(:mod:`mimlkit.deep.selfpaced`, which re-exports these names).

* :func:`_bag_max`: an image's score for class k = the max over its tiles' probabilities
  (Eq. 7 of Jiang et al. before the threshold τ);
* :func:`paper_metrics`: the paper's metrics of scores thresholded at τ (F1 micro/macro,
  subset accuracy, mAP and their mean, "overall");
* :func:`select_threshold` over :data:`THRESHOLD_GRID`: τ chosen on validation images (an
  extension: the paper fixes τ = 0.5).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["paper_metrics", "select_threshold", "THRESHOLD_GRID"]


def _bag_max(p: np.ndarray, bag: np.ndarray, n_bags: int) -> np.ndarray:
    """Class-wise max over each bag's tiles (Eq. 7 before the threshold)."""
    S = np.full((n_bags, p.shape[1]), -np.inf)
    np.maximum.at(S, bag, p)
    return S


def paper_metrics(Y: np.ndarray, S: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """Seed 002's metrics: F1 micro/macro, subset accuracy, mAP and their mean (overall)."""
    from mimlkit.metrics import (
        macro_f1,
        mean_average_precision,
        micro_f1,
        overall_score,
        subset_accuracy,
    )

    Yp = (S > threshold).astype(np.int8)
    return {"f1_micro": float(micro_f1(Y, Yp)), "f1_macro": float(macro_f1(Y, Yp)),
            "subset_accuracy": float(subset_accuracy(Y, Yp)),
            "map": float(mean_average_precision(Y, S)), "overall": float(overall_score(Y, S, Yp))}


#: τ grid searched by ``threshold="validation"`` (and the ablation benchmark).
THRESHOLD_GRID = np.round(np.arange(0.05, 0.951, 0.05), 2)


def select_threshold(Y: np.ndarray, S: np.ndarray, grid: Sequence[float] | None = None
                     ) -> float:
    """τ maximising F1 macro of ``S > τ`` on validation images (ties: the value closest to
    the paper's 0.5). An extension: the paper fixes τ = 0.5 (Eq. 7)."""
    from mimlkit.metrics import macro_f1

    taus = np.asarray(THRESHOLD_GRID if grid is None else grid, dtype=np.float64)
    f = np.array([macro_f1(Y, (S > t).astype(np.int8)) for t in taus])
    best = np.flatnonzero(f >= f.max() - 1e-12)
    return float(taus[best[np.argmin(np.abs(taus[best] - 0.5))]])
