"""Sampled (CLARA-style) medoid search whose cost does not grow with the number of bags.

``mimlkit.distances.sampled_medoids`` scores every candidate medoid set on *all* n bags (one
O(n · S) Hausdorff pass per candidate). SMIPR needs one such pass anyway (the embedding), so
here candidates are scored on a fixed random evaluation subset of ``eval_size`` bags instead:
medoid search costs O(n_samples · (sample_size² + eval_size · S)) distances, independent of n,
and the only O(n · S) pass left is the embedding itself.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mimlkit.bags import Bags

__all__ = ["clara_medoids"]


def clara_medoids(bags: Bags, n_clusters: int, *, sample_size: int | None = None,
                  n_samples: int = 3, eval_size: int = 20000, random_state: Any = None,
                  variant: str = "max", memory_budget_mb: float = 256) -> np.ndarray:
    """Indices (sorted) of ``n_clusters`` medoid bags.

    Each round draws ``sample_size`` bags (default ``max(40 + 2k, 5k)``; rounds after the
    first contain the best medoids so far, as in CLARA), runs FasterPAM on the subset's
    Hausdorff matrix and scores the medoids by the summed distance of the evaluation subset
    to its nearest medoid; the cheapest set wins.
    """
    from sklearn.utils import check_random_state

    from mimlkit.distances import hausdorff, kmedoids_bags

    n = bags.n_bags
    k = int(n_clusters)
    if not 1 <= k <= n:
        raise ValueError(f"n_clusters={n_clusters} must be between 1 and the number of bags ({n})")
    rs = check_random_state(random_state)
    size = max(40 + 2 * k, 5 * k) if sample_size is None else int(sample_size)
    size = int(min(n, max(size, k)))
    ev = np.sort(rs.choice(n, size=min(n, int(eval_size)), replace=False))
    ev_bags = bags.take(ev)
    best, best_cost = None, np.inf
    for _ in range(max(1, int(n_samples))):
        if best is None:
            sample = rs.choice(n, size=size, replace=False)
        else:
            rest = np.setdiff1d(np.arange(n), best, assume_unique=True)
            sample = np.concatenate([best, rs.choice(rest, size=size - k, replace=False)])
        Ds = hausdorff(bags.take(sample), variant=variant, memory_budget_mb=memory_budget_mb)
        med = np.sort(sample[kmedoids_bags(Ds, k, random_state=rs).medoids])
        cost = float(hausdorff(ev_bags, bags.take(med), variant=variant,
                               memory_budget_mb=memory_budget_mb).min(axis=1).sum())
        if cost < best_cost:
            best, best_cost = med, cost
        if size >= n:
            break
    return np.asarray(best, dtype=np.int64)
