"""KISAR (Li, Hu, Jiang & Zhou, "Towards discovering what patterns trigger what labels",
AAAI 2012): key instances shared among related labels.

Spec ``docs/kisar.md`` (equations K1-K8):

1. k-means on the scaled training instances gives K prototypes ``c_k`` (K1);
2. a bag becomes ``phi_k(X) = max_x exp(-gamma ||x - c_k||^2)`` (K2);
3. one linear model per label, ``f_t(X) = w_t^T phi(X) + b_t`` (K3);
4. labels whose co-occurrence exceeds the mean off-diagonal co-occurrence are related (K4);
   label t's group is ``G_t = {t} + related labels``;
5. convex objective (K5): squared-hinge SVM losses plus
   ``1/2 sum_t sum_{s in G_t} (1/m_s) sum_k w_sk^2 / d_tk`` with ``d_t >= 0``,
   ``sum_k d_tk = K``: a group-lasso over prototypes that makes related labels share
   their key prototypes;
6. alternating optimisation: W-step = one ``LinearSVC`` per label on rescaled features (K6),
   D-step in closed form (K7);
7. ``coef_[t, k] > 0``: prototype k triggers label t; instance scores
   ``s_t(x) = w_t^T phi({x}) + b_t`` (K8).

The paper's equation numbers could not be checked; K1-K8 are the spec's. The exact
regulariser and the similarity width are gaps closed in the spec (§3).

Scene, one 2/3-1/3 split (seed 0), defaults: AP .775, HL .188 (published mean of 30
splits: .772 / .194); fit 32 s with the threshold calibration (spec §5).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.svm import LinearSVC
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from mimlkit.bags import Bags
from mimlkit.learners.base import LIBLINEAR_LOCK, MIMLClassifierMixin
from mimlkit.learners.classic._instance_scaling import apply_scaling, fit_scaling

__all__ = ["KISAR", "label_groups", "prototype_similarity"]

_RELATIONS = ("cooccurrence", "none", "all")
_POOLINGS = ("max", "mean")
_BLOCK_ENTRIES = 1 << 22  # instance x prototype entries per embedding block
_MINIBATCH_ABOVE = 20_000  # training instances above which MiniBatchKMeans is used
_MAX_AUTO_PROTOTYPES = 1000
_AUTO_K_FACTOR = 2.5  # "auto" K = ceil(2.5 sqrt(n_instances)) (spec §3)
_AUTO_GAMMA_REF = 1.5  # "auto" gamma = 1.5 / mean squared instance distance (spec §3)


def _sq_dists(A: np.ndarray, C: np.ndarray, c2: np.ndarray) -> np.ndarray:
    """``||a - c||^2`` for all rows (one BLAS product), clipped at 0."""
    D = A @ C.T
    D *= -2.0
    D += (A * A).sum(axis=1)[:, None]
    D += c2[None, :]
    return np.maximum(D, 0.0, out=D)


def _bag_blocks(offsets: np.ndarray, n_cols: int) -> list[tuple[int, int]]:
    """Consecutive bag ranges ``[b0, b1)`` holding at most ``_BLOCK_ENTRIES / n_cols``
    instances each (at least one bag per block)."""
    max_rows = max(1, _BLOCK_ENTRIES // max(n_cols, 1))
    n = offsets.size - 1
    blocks, b0 = [], 0
    while b0 < n:
        b1 = int(np.searchsorted(offsets, offsets[b0] + max_rows, side="right")) - 1
        b1 = min(max(b1, b0 + 1), n)
        blocks.append((b0, b1))
        b0 = b1
    return blocks


def prototype_similarity(instances: np.ndarray, offsets: np.ndarray, centers: np.ndarray,
                         gamma: float, pooling: str = "max",
                         ) -> np.ndarray:
    """Bag embedding (K2): ``(n_bags, K)`` pooled ``exp(-gamma ||x - c_k||^2)``.

    Computed by blocks of whole bags (memory ``O(block x K)``); ``np.maximum.reduceat``
    pools each bag's rows."""
    C = np.asarray(centers, dtype=np.float64)
    c2 = (C * C).sum(axis=1)
    out = np.empty((offsets.size - 1, C.shape[0]))
    for b0, b1 in _bag_blocks(offsets, C.shape[0]):
        r0, r1 = int(offsets[b0]), int(offsets[b1])
        S = _sq_dists(np.asarray(instances[r0:r1], dtype=np.float64), C, c2)
        np.multiply(S, -gamma, out=S)
        np.exp(S, out=S)
        local = offsets[b0:b1] - r0
        if pooling == "max":
            out[b0:b1] = np.maximum.reduceat(S, local, axis=0)
        else:
            out[b0:b1] = np.add.reduceat(S, local, axis=0) / np.diff(offsets[b0:b1 + 1])[:, None]
    return out


def label_groups(Y: np.ndarray, relation: str = "cooccurrence") -> np.ndarray:
    """(q, q) boolean group matrix ``G[t, s] = s in G_t`` (K4); the diagonal is True.

    ``"cooccurrence"``: ``s != t`` joins ``G_t`` when ``M_ts = (Y^T Y)_ts`` exceeds the mean
    off-diagonal co-occurrence; ``"none"``: singletons; ``"all"``: one group of all labels."""
    if relation not in _RELATIONS:
        raise ValueError(f"relation must be one of {_RELATIONS}, got {relation!r}")
    q = Y.shape[1]
    if relation == "none" or q == 1:
        return np.eye(q, dtype=bool)
    if relation == "all":
        return np.ones((q, q), dtype=bool)
    Yf = (np.asarray(Y) == 1).astype(np.float64)
    M = Yf.T @ Yf
    off = ~np.eye(q, dtype=bool)
    G = (M > M[off].mean()) & off
    G |= np.eye(q, dtype=bool)
    return G


class KISAR(MIMLClassifierMixin, BaseEstimator):
    """KISAR: prototype embedding + label models sharing key prototypes (AAAI 2012).

    Parameters
    ----------
    n_prototypes : int, float or "auto", default "auto"
        K in (K1). int: that many; float in (0, 1]: that share of the training instances;
        "auto": ``ceil(2.5 sqrt(n_instances))`` clipped to ``[min(20, n_instances), 1000]``
        (spec §3). Capped at the distinct instances.
    gamma : float or "auto", default "auto"
        Width in (K2). "auto": ``1.5 / E||x - x'||^2`` over the scaled training instances
        (``E||x - x'||^2 = 2 sum_j Var(x_j)``), so the width follows the data's spread.
    C : float, default 0.1
        SVM cost in (K5), on the scale of an ordinary SVM on the embedding (``d = 1``).
    n_iter : int, default 20
        Alternating rounds (K6)-(K7); 1 = independent SVMs on the embedding.
    tol : float, default 1e-3
        Stop when the objective (K5) falls by less than this share.
    relation : {"cooccurrence", "none", "all"}, default "cooccurrence"
        Label groups (K4).
    smoothing : float, default 1e-3
        epsilon in the D-step (K7); keeps every prototype weight positive.
    pooling : {"max", "mean"}, default "max"
        Pooling of the instance similarities in (K2) ("max" is the paper's).
    scale : {"auto", "robust", "standard", "minmax", None}, default "auto"
        Instance scaling fitted on the training instances (``_instance_scaling.py``).
    t_criterion : bool or "auto", default "auto"
        Give a bag with no label above its threshold its top label (see ``base.py``).
    threshold_mode : {"hamming", "f1", "rate", "fixed"}, default "hamming"
        Thresholds chosen on held-out training scores, or "fixed" (0, the SVM sign rule;
        the ``paper`` preset).
    random_state : int, RandomState or None
        k-means initialisation and the SVM coordinate order.

    Attributes
    ----------
    prototypes_ : (K, d) prototypes in the original feature units.
    centers_ : (K, d) prototypes in the scaled space (used for scoring).
    gamma_ : float, the width used in (K2).
    coef_ : (q, K) label weights ``w_t`` (K3); > 0 means the prototype triggers the label.
    intercept_ : (q,) biases ``b_t``.
    groups_ : (q, q) bool, ``groups_[t, s]`` = label s is in label t's group (K4).
    prototype_relevance_ : (q, K) the group weightings ``d_t`` (K7), mean 1 per row.
    objective_ : list of (K5) values, one per round; ``n_iter_`` rounds were run.
    """

    def __init__(self, n_prototypes: int | float | str = "auto", gamma: float | str = "auto",
                 C: float = 0.1, n_iter: int = 20, tol: float = 1e-3,
                 relation: str = "cooccurrence", smoothing: float = 1e-3,
                 pooling: str = "max", scale: str | None = "auto",
                 t_criterion: bool | str = "auto", threshold_mode: str = "hamming",
                 random_state: Any = None) -> None:
        self.n_prototypes = n_prototypes
        self.gamma = gamma
        self.C = C
        self.n_iter = n_iter
        self.tol = tol
        self.relation = relation
        self.smoothing = smoothing
        self.pooling = pooling
        self.scale = scale
        self.t_criterion = t_criterion
        self.threshold_mode = threshold_mode
        self.random_state = random_state

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        if isinstance(self.n_iter, bool) or int(self.n_iter) != self.n_iter or self.n_iter < 1:
            raise ValueError(f"n_iter must be a positive integer, got {self.n_iter!r}")
        if not (isinstance(self.C, (int, float)) and self.C > 0):
            raise ValueError(f"C must be positive, got {self.C!r}")
        if not (isinstance(self.tol, (int, float)) and self.tol >= 0):
            raise ValueError(f"tol must be >= 0, got {self.tol!r}")
        if not (isinstance(self.smoothing, (int, float)) and self.smoothing > 0):
            raise ValueError(f"smoothing must be positive, got {self.smoothing!r}")
        if self.relation not in _RELATIONS:
            raise ValueError(f"relation must be one of {_RELATIONS}, got {self.relation!r}")
        if self.pooling not in _POOLINGS:
            raise ValueError(f"pooling must be one of {_POOLINGS}, got {self.pooling!r}")
        g = self.gamma
        if isinstance(g, str) and g != "auto" or not isinstance(g, str) and not (
                isinstance(g, (int, float)) and g > 0):
            raise ValueError(f"gamma must be a positive number or 'auto', got {g!r}")

    def _resolve_k(self, n_inst: int, n_bags: int, n_distinct: int) -> int:
        """K for (K1) from ``n_prototypes`` (spec §2), capped at the distinct instances."""
        k = self.n_prototypes
        if isinstance(k, str):
            if k != "auto":
                raise ValueError(f"n_prototypes must be a positive int, a share in (0, 1] "
                                 f"or 'auto', got {k!r}")
            raw = math.ceil(_AUTO_K_FACTOR * math.sqrt(n_inst))
            K = min(max(raw, min(20, n_inst)), _MAX_AUTO_PROTOTYPES)
        elif isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, float, np.number)):
            raise ValueError(f"n_prototypes must be a positive int, a share in (0, 1] or "
                             f"'auto', got {k!r}")
        elif isinstance(k, (float, np.floating)):
            if not 0 < k <= 1:
                raise ValueError(f"a float n_prototypes must lie in (0, 1], got {k!r}")
            K = max(1, int(round(k * n_inst)))
        else:
            if k < 1:
                raise ValueError(f"n_prototypes must be >= 1, got {k!r}")
            K = int(k)
        return max(1, min(K, n_distinct))

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, Y: Any) -> KISAR:
        """Prototypes (K1), embedding (K2), alternating W-/D-steps (K5)-(K7)."""
        bags, Y = self._validate_fit(X, Y)
        self._check_params()
        rng = check_random_state(self.random_state)
        self.scale_offset_, self.scale_factor_ = fit_scaling(bags.instances, self.scale)
        Xs = apply_scaling(bags.instances, self.scale_offset_, self.scale_factor_)
        n_distinct = self._count_distinct(Xs)
        K = self._resolve_k(Xs.shape[0], bags.n_bags, n_distinct)
        centers = self._kmeans(Xs, K, rng)
        self.centers_ = centers
        self.prototypes_ = centers / self.scale_factor_ + self.scale_offset_
        if isinstance(self.gamma, str):  # E||x - x'||^2 = 2 sum_j Var(x_j)
            spread = 2.0 * float(np.asarray(Xs, dtype=np.float64).var(axis=0).sum())
            self.gamma_ = _AUTO_GAMMA_REF / spread if spread > 1e-12 else 1.0
        else:
            self.gamma_ = float(self.gamma)
        Phi = prototype_similarity(Xs, bags.offsets, centers, self.gamma_, self.pooling)
        self.groups_ = label_groups(Y, self.relation)
        self._alternate(Phi, Y, rng)
        return self

    @staticmethod
    def _count_distinct(Xs: np.ndarray) -> int:
        """Distinct instances (exact below 200k rows; a bound above is the row count)."""
        if Xs.shape[0] > 200_000:
            return Xs.shape[0]
        return int(np.unique(Xs, axis=0).shape[0])

    def _kmeans(self, Xs: np.ndarray, K: int, rng: np.random.RandomState) -> np.ndarray:
        """(K1): the K centres."""
        seed = int(rng.randint(np.iinfo(np.int32).max))
        if Xs.shape[0] > _MINIBATCH_ABOVE:
            km: Any = MiniBatchKMeans(n_clusters=K, n_init=3, batch_size=4096,
                                      random_state=seed)
        else:
            km = KMeans(n_clusters=K, n_init=1, max_iter=100, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            km.fit(Xs)
        return np.asarray(km.cluster_centers_, dtype=np.float64)

    def _alternate(self, Phi: np.ndarray, Y: np.ndarray, rng: np.random.RandomState) -> None:
        """Alternating minimisation of (K5): W-step (K6), D-step (K7)."""
        n, K = Phi.shape
        q = Y.shape[1]
        G = self.groups_.astype(np.float64)  # G[t, s]: s in G_t
        m = G.sum(axis=0)  # groups each label belongs to
        Ypm = np.where(Y == 1, 1.0, -1.0)
        pos = (Y == 1).sum(axis=0)
        trainable = (pos > 0) & (pos < n)
        W = np.zeros((q, K))
        b = np.where(pos > 0, 1.0, -1.0).astype(np.float64)
        Dm = np.ones((q, K))
        seed = int(rng.randint(np.iinfo(np.int32).max))
        objective: list[float] = []
        for _ in range(int(self.n_iter)):
            # W-step (K6): a_sk = (1/m_s) sum_{t: s in G_t} 1/d_tk
            A = (G.T @ (1.0 / Dm)) / m[:, None]
            for s in np.flatnonzero(trainable):
                sa = 1.0 / np.sqrt(A[s])
                svm = LinearSVC(C=float(self.C), loss="squared_hinge", dual=True,
                                max_iter=2000, random_state=seed)
                with LIBLINEAR_LOCK, warnings.catch_warnings():  # process-global rand()
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    svm.fit(Phi * sa, Ypm[:, s])
                W[s] = svm.coef_[0] * sa
                b[s] = svm.intercept_[0]
            # objective (K5) at (W, D)
            F = Phi @ W.T + b
            loss = np.maximum(0.0, 1.0 - Ypm * F)[:, trainable] ** 2
            pen = 0.5 * float((A * W**2).sum())
            objective.append(pen + float(self.C) * float(loss.sum()))
            if len(objective) > 1 and (objective[-2] - objective[-1]
                                       <= self.tol * abs(objective[-2])):
                break
            if len(objective) == int(self.n_iter):
                break
            # D-step (K7), closed form on the simplex sum_k d_tk = K
            rho = np.sqrt(G @ (W**2 / m[:, None]))
            rho += self.smoothing * rho.mean(axis=1, keepdims=True) + 1e-300
            Dm = K * rho / rho.sum(axis=1, keepdims=True)
        self.coef_ = W
        self.intercept_ = b
        self.prototype_relevance_ = Dm
        self.objective_ = objective
        self.n_iter_ = len(objective)

    # ------------------------------------------------------------------ scores
    def _scaled(self, X: Any) -> Bags:
        check_is_fitted(self, "coef_")
        bags = self._validate_bags(X, reset=False)
        Xs = apply_scaling(bags.instances, self.scale_offset_, self.scale_factor_)
        return Bags(Xs, bags.offsets, validate=False)

    def transform(self, X: Any) -> np.ndarray:
        """The bag embedding ``phi(X)`` (K2), (n_bags, K)."""
        bags = self._scaled(X)
        return prototype_similarity(bags.instances, bags.offsets, self.centers_,
                                    self.gamma_, self.pooling)

    def decision_function(self, X: Any) -> np.ndarray:
        """SVM margins ``f_t(X) = w_t^T phi(X) + b_t`` (K3), (n_bags, q); > 0 = relevant."""
        return self.transform(X) @ self.coef_.T + self.intercept_

    def instance_scores(self, X: Any) -> list[np.ndarray]:
        """Per bag, (n_i, q) instance scores ``s_t(x) = w_t^T phi({x}) + b_t`` (K8)."""
        bags = self._scaled(X)
        sizes = np.diff(bags.offsets)
        single = np.arange(bags.n_instances + 1, dtype=np.int64)
        S = prototype_similarity(bags.instances, single, self.centers_, self.gamma_, "max")
        S = S @ self.coef_.T + self.intercept_
        return np.split(S, np.cumsum(sizes)[:-1])

    def key_prototypes(self, top_k: int | None = 5) -> list[np.ndarray]:
        """Per label, the indices of the prototypes that trigger it (``coef_ > 0``), by
        decreasing weight; at most ``top_k`` (all when ``None``)."""
        check_is_fitted(self, "coef_")
        order = np.argsort(-self.coef_, axis=1, kind="stable")
        out = []
        for t in range(self.coef_.shape[0]):
            idx = order[t][self.coef_[t, order[t]] > 0]
            out.append(idx if top_k is None else idx[: int(top_k)])
        return out
