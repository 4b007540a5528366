"""RankLSIM: rank-loss support instance machine (Briggs, Fern & Raich, KDD 2012).

Model (spec ``docs/ranklsim.md``): one linear instance scorer per label,
``f_c(x) = w_c . x`` (Eq. 1); the bag score is the score of the bag's *support instance*,
``F_c(X) = max_{x in X} f_c(x)`` (Eq. 2). Training minimises the regularised hinge rank loss
over the (present, absent) label pairs of every bag (Eq. 3)

    J(W) = lambda/2 ||W||^2 + 1/N sum_b 1/P_b sum_{(c, cbar)} [1 - F_c(X_b) + F_cbar(X_b)]_+

with Pegasos-style primal stochastic subgradient steps ``eta_t = 1 / (lambda t)`` and the
projection on the ball ``||W|| <= 1/sqrt(lambda)`` (Eqs. 4-5). A dummy label ranked between the
present and absent labels of every bag (Eq. 3a) learns the decision threshold; instances are
annotated with ``argmax_c f_c(x)``.

Vectorisation: a step scores every instance of a mini-batch of bags at once, takes per-bag maxima
with ``np.maximum.reduceat`` on the bag offsets, builds the (bags, labels, labels) margin tensor
and scatters the pair weights back onto the support-instance rows; Python loops run only over
epochs and mini-batches.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from mimlkit.bags import Bags
from mimlkit.learners.base import (
    MIMLClassifierMixin,
    constant_label_codes,
    pin_constant_labels,
)
from mimlkit.learners.classic._instance_scaling import (
    apply_scaling,
    fit_scaling,
    gather_rows,
    segment_argmax,
    segment_max,
)

__all__ = ["RankLSIM", "auto_epochs", "auto_lambda"]

_SUPPORT_UPDATES = ("step", "heuristic", "cccp")

#: ``n_epochs="auto"``: at most this many bag visits, within these epoch bounds
_AUTO_VISITS = 1_000_000
_AUTO_EPOCHS = (10, 50)
#: ``n_init`` restarts are compared after ``max(_PROBE_EPOCHS, _PROBE_SHARE * n_epochs)``
#: epochs (the winner then runs to the end)
_PROBE_EPOCHS = 5
_PROBE_SHARE = 0.5
#: ``init="mean"``: epochs on the bags' mean instances before the max rule takes over
_INIT_EPOCHS = 5
#: bags per chunk when the full objective (Eq. 3) is evaluated
_OBJECTIVE_CHUNK = 256


def auto_lambda(n_bags: int) -> float:
    """``reg_lambda="auto"``: ``1 / N``, i.e. an SVM cost ``C = 1/(lambda N) = 1`` on any size."""
    return 1.0 / max(int(n_bags), 1)


def auto_epochs(n_bags: int) -> int:
    """``n_epochs="auto"``: ``clip(ceil(1e6 / N), 10, 50)`` passes over the bags.

    With ``lambda = 1/N`` Pegasos needs O(1/lambda) = O(N) steps for a given accuracy, i.e. a
    fixed number of epochs (50); above 20 000 bags the total is capped at 1e6 bag visits."""
    lo, hi = _AUTO_EPOCHS
    return int(min(hi, max(lo, math.ceil(_AUTO_VISITS / max(int(n_bags), 1)))))


class RankLSIM(MIMLClassifierMixin, BaseEstimator):
    """Rank-loss support instance machine with max aggregation (RankLSIM).

    Parameters
    ----------
    reg_lambda : float or "auto", default "auto"
        Regularisation ``lambda`` of Eq. 3. ``"auto"``: ``1 / n_bags`` (SVM cost C = 1).
    n_epochs : int or "auto", default "auto"
        Passes over the training bags. ``"auto"``: ``clip(ceil(1e6 / n_bags), 10, 50)``.
    batch_size : int, default 32
        Bags per subgradient step (1 = the paper's single-bag Pegasos step).
    support_update : {"step", "heuristic", "cccp"}, default "heuristic"
        When the support instances ``x*_bc`` are recomputed: at every step (a plain stochastic
        subgradient of the non-convex Eq. 3), once per epoch for all labels (the paper's
        alternating heuristic), or once per epoch for the present labels only (CCCP: the
        absent labels keep the max).
    average : bool, default True
        Return the mean of the iterates of the second half of the epochs.
    project : bool, default True
        Pegasos projection on the ball ``||W|| <= 1/sqrt(lambda)`` after each step (Eq. 5).
    dummy_label : bool, default True
        Add the threshold label of Eq. 3a; ``decision_function`` is then ``F_c - F_dummy``.
        False = the paper's objective exactly (scores then need calibrated thresholds).
    bias : float or None, default 1.0
        Constant feature appended to the scaled instances (a per-label intercept);
        None = the paper's homogeneous model.
    scale : {"auto", "robust", "standard", "minmax", None}, default "standard"
        Instance feature scaling fitted on the training instances (``_instance_scaling.py``).
    t_criterion : bool or "auto", default "auto"
        Give a bag with no label above its threshold its top label (see ``learners/base.py``).
    threshold_mode : {"hamming", "f1", "rate", "fixed"}, default "hamming"
        Decision thresholds chosen per label on held-out training scores, or the dummy
        label's 0 ("fixed").
    init : {"mean", "zero"}, default "mean"
        Start of the weights. Eq. 3 is non-convex and the support instances of the first
        epochs decide which local optimum a run reaches: from ``W = 0`` every first support
        instance is the bag's first instance (on 73 bags of 550 instances, six seeds gave
        held-out AP 0.59-0.98; ``results/zoo_diagnose_ranklsim.md``). ``"mean"`` (MI-SVM's
        start, Andrews et al. 2003): the first ``min(5, n_epochs)`` epochs see every bag as
        its mean instance (a convex problem), then the max rule takes over (same six seeds:
        0.79-0.99). ``"zero"``: the paper's
        start (the ``paper`` preset).
    n_init : int, default 4
        Restarts (different bag orders): each runs ``max(5, n_epochs // 2)`` epochs, and the
        one with the lowest training objective (Eq. 3 on all bags, true max) runs on to
        ``n_epochs`` (cost ~ ``n_epochs + (n_init - 1) n_epochs / 2`` epochs: 2.5x at 4).
        Both defaults were chosen on inner splits of 9 zoo training parts
        (``benchmarks/results/select_ranklsim_round3.md``: mean rank 2.22 vs 2.89 for a
        single run from ``W = 0``); the ``paper`` preset keeps ``init="zero", n_init=1``.
    random_state : int, RandomState or None
        Seeds the bag order of the epochs and of the restarts.

    Attributes
    ----------
    coef_ : ndarray (n_labels [+ 1], n_features_in_ [+ 1])
        Rows ``w_c`` (the last row is the dummy label when ``dummy_label``); the last column
        multiplies the ``bias`` feature when ``bias`` is set.
    scale_offset_, scale_factor_ : ndarray (n_features_in_,) — fitted instance scaling.
    reg_lambda_ : float — lambda used.
    n_epochs_ : int — epochs run.
    n_steps_ : int — subgradient steps taken.
    objective_ : float — Eq. 3 (with the regulariser) of ``coef_`` on all training bags.
    loss_curve_ : list of float
        Per epoch (of the kept run), the mean over its steps of the mini-batch objective
        (Eq. 3 with the regulariser, at the weights of each step before its update).
    constant_labels_ : ndarray (n_labels_,) int8 — -1 / +1 for a label never / always
        present in training (scored -1 / +1 by ``decision_function``), else 0.
    """

    def __init__(self, reg_lambda: float | str = "auto", n_epochs: int | str = "auto",
                 batch_size: int = 32, support_update: str = "heuristic", average: bool = True,
                 project: bool = True, dummy_label: bool = True, bias: float | None = 1.0,
                 scale: str | None = "standard", t_criterion: bool | str = "auto",
                 threshold_mode: str = "hamming", n_init: int = 4, init: str = "mean",
                 random_state: Any = None) -> None:
        self.reg_lambda = reg_lambda
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.support_update = support_update
        self.average = average
        self.project = project
        self.dummy_label = dummy_label
        self.bias = bias
        self.scale = scale
        self.t_criterion = t_criterion
        self.threshold_mode = threshold_mode
        self.n_init = n_init
        self.init = init
        self.random_state = random_state

    # ------------------------------------------------------------------ checks
    def _resolve_params(self, n_bags: int) -> tuple[float, int, int]:
        """(lambda, epochs, batch size) after validating the hyper-parameters."""
        lam = self.reg_lambda
        if isinstance(lam, str):
            if lam != "auto":
                raise ValueError(f"reg_lambda must be a positive number or 'auto', got {lam!r}")
            lam = auto_lambda(n_bags)
        elif isinstance(lam, bool) or not isinstance(lam, Real) or not lam > 0:
            raise ValueError(f"reg_lambda must be a positive number or 'auto', got {lam!r}")
        ep = self.n_epochs
        if isinstance(ep, str):
            if ep != "auto":
                raise ValueError(f"n_epochs must be a positive integer or 'auto', got {ep!r}")
            ep = auto_epochs(n_bags)
        elif isinstance(ep, bool) or not isinstance(ep, Integral) or ep < 1:
            raise ValueError(f"n_epochs must be a positive integer or 'auto', got {ep!r}")
        bs = self.batch_size
        if isinstance(bs, bool) or not isinstance(bs, Integral) or bs < 1:
            raise ValueError(f"batch_size must be a positive integer, got {bs!r}")
        if self.support_update not in _SUPPORT_UPDATES:
            raise ValueError(f"support_update must be one of {_SUPPORT_UPDATES}, "
                             f"got {self.support_update!r}")
        if self.bias is not None and (isinstance(self.bias, bool)
                                      or not isinstance(self.bias, Real)
                                      or not np.isfinite(self.bias)):
            raise ValueError(f"bias must be a finite number or None, got {self.bias!r}")
        if self.init not in ("zero", "mean"):
            raise ValueError(f"init must be 'zero' or 'mean', got {self.init!r}")
        ni = self.n_init
        if isinstance(ni, bool) or not isinstance(ni, Integral) or ni < 1:
            raise ValueError(f"n_init must be a positive integer, got {ni!r}")
        return float(lam), int(ep), int(bs)

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, Y: Any) -> RankLSIM:
        """Pegasos-style subgradient descent on the regularised rank loss (Eqs. 3-5)."""
        bags, Y = self._validate_fit(X, Y)
        n, K = Y.shape
        # a label never (always) present in training is scored absent (present): its rank
        # terms carry no information about it
        self.constant_labels_ = constant_label_codes(Y)
        lam, n_epochs, B = self._resolve_params(n)
        rng = check_random_state(self.random_state)
        self.scale_offset_, self.scale_factor_ = fit_scaling(bags.instances, self.scale)
        Xs = self._features(bags)
        offsets = bags.offsets
        d = Xs.shape[1]

        # present / absent masks, with the dummy label (Eq. 3a) in both
        dummy = bool(self.dummy_label)
        Kt = K + 1 if dummy else K
        pres = np.zeros((n, Kt), dtype=bool)
        absn = np.zeros((n, Kt), dtype=bool)
        pres[:, :K] = Y == 1
        absn[:, :K] = Y == 0
        if dummy:
            pres[:, K] = absn[:, K] = True
        n_pairs = pres.sum(axis=1) * absn.sum(axis=1) - (1 if dummy else 0)
        inv_pairs = np.where(n_pairs > 0, 1.0 / np.maximum(n_pairs, 1), 0.0)
        self_pair = np.zeros((Kt, Kt), dtype=bool)
        if dummy:
            self_pair[K, K] = True

        radius = 1.0 / math.sqrt(lam)
        avg_from = n_epochs // 2 if self.average else n_epochs
        mode = self.support_update
        data = (Xs, offsets, pres, absn, inv_pairs, self_pair)

        def run(state: dict[str, Any], until: int, Xs: np.ndarray = Xs,
                offsets: np.ndarray = offsets) -> None:
            """Epochs ``state["epoch"]`` .. ``until - 1`` of one run (Eqs. 4-5)."""
            W, r = state["W"], state["rng"]
            for epoch in range(state["epoch"], until):
                support = None
                if mode != "step":  # the support instances of this epoch (global rows)
                    support = segment_argmax(Xs @ W.T, offsets)[1]
                perm = r.permutation(n)
                total, n_batches = 0.0, 0
                for start in range(0, n, B):
                    idx = perm[start:start + B]
                    state["t"] += 1
                    G, loss = self._subgradient(W, Xs, offsets, idx, pres, absn, inv_pairs,
                                                self_pair, support, mode)
                    total += loss + 0.5 * lam * float(np.sum(W * W))
                    n_batches += 1
                    eta = 1.0 / (lam * state["t"])
                    W *= 1.0 - eta * lam
                    W -= eta * G
                    if self.project:
                        norm = float(np.linalg.norm(W))
                        if norm > radius:
                            W *= radius / norm
                    if epoch >= avg_from:
                        state["avg_W"] += W
                        state["n_avg"] += 1
                state["curve"].append(total / max(n_batches, 1))
            state["epoch"] = until

        def weights(state: dict[str, Any]) -> np.ndarray:
            return state["avg_W"] / state["n_avg"] if state["n_avg"] else state["W"]

        # the per-step products are small (batch instances x labels x features): threaded BLAS
        # only adds synchronisation (25x slower on a loaded 2-core machine), so use one thread
        with threadpool_limits(limits=1, user_api="blas"):
            seeds = [rng] + [np.random.RandomState(rng.randint(2**31 - 1))
                             for _ in range(int(self.n_init) - 1)]
            runs = [{"W": np.zeros((Kt, d)), "avg_W": np.zeros((Kt, d)), "n_avg": 0, "t": 0,
                     "curve": [], "epoch": 0, "rng": r} for r in seeds]
            if self.init == "mean":  # MI-SVM's start: each bag seen as its mean instance
                means = np.add.reduceat(Xs, offsets[:-1], axis=0) / np.diff(offsets)[:, None]
                for state in runs:
                    run(state, min(n_epochs, _INIT_EPOCHS), means, np.arange(n + 1))
            if len(runs) > 1:  # probe every restart, keep the lowest objective
                probe = min(n_epochs, max(_PROBE_EPOCHS, int(_PROBE_SHARE * n_epochs)))
                objs = []
                for state in runs:
                    run(state, probe)
                    objs.append(self._objective(weights(state), lam, *data))
                runs = [runs[int(np.argmin(objs))]]
            state = runs[0]
            run(state, n_epochs)
            W = weights(state)
            self.objective_ = self._objective(W, lam, *data)
        t, curve = state["t"], state["curve"]
        self.coef_ = W
        self.reg_lambda_ = lam
        self.n_epochs_ = n_epochs
        self.n_steps_ = t
        self.loss_curve_ = curve
        return self

    @classmethod
    def _objective(cls, W: np.ndarray, lam: float, Xs: np.ndarray, offsets: np.ndarray,
                   pres: np.ndarray, absn: np.ndarray, inv_pairs: np.ndarray,
                   self_pair: np.ndarray) -> float:
        """Eq. 3 on every training bag (true max supports), in chunks of bags."""
        n = offsets.size - 1
        total = 0.0
        for start in range(0, n, _OBJECTIVE_CHUNK):
            idx = np.arange(start, min(n, start + _OBJECTIVE_CHUNK))
            total += cls._subgradient(W, Xs, offsets, idx, pres, absn, inv_pairs, self_pair,
                                      None, "step", grad=False)[1] * idx.size
        return total / max(n, 1) + 0.5 * lam * float(np.sum(W * W))

    @staticmethod
    def _subgradient(W: np.ndarray, Xs: np.ndarray, offsets: np.ndarray, idx: np.ndarray,
                     pres: np.ndarray, absn: np.ndarray, inv_pairs: np.ndarray,
                     self_pair: np.ndarray, support: np.ndarray | None,
                     mode: str, grad: bool = True) -> tuple[np.ndarray | None, float]:
        """Data term of Eq. 4 on the bags ``idx`` and their mean hinge rank loss (Eq. 3);
        ``grad=False``: the loss only (``None`` for the gradient)."""
        Kt = W.shape[0]
        rows, off = gather_rows(offsets, idx)
        Xb = Xs[rows]
        S = Xb @ W.T  # (m, Kt) instance scores, Eq. 1
        Fmax, amax = segment_argmax(S, off)  # Eq. 2: bag scores and support rows (local)
        Fp, ap, Fn, an = Fmax, amax, Fmax, amax
        if support is not None:  # support instances fixed for this epoch
            loc = support[idx] - offsets[idx][:, None] + off[:-1][:, None]
            Ffix = S[loc, np.arange(Kt)]
            Fp, ap = Ffix, loc  # present role (-F_c, the concave part)
            if mode == "heuristic":
                Fn, an = Ffix, loc
        P, A = pres[idx], absn[idx]
        mask = P[:, :, None] & A[:, None, :] & ~self_pair
        margin = 1.0 - Fp[:, :, None] + Fn[:, None, :]  # (b, c present, cbar absent)
        viol = mask & (margin > 0)
        w = inv_pairs[idx]
        loss = float(np.sum(np.where(viol, margin, 0.0).sum(axis=(1, 2)) * w)) / idx.size
        if not grad:
            return None, loss
        cp = viol.sum(axis=2) * w[:, None]  # weight of -x*_bc per (b, c)
        cn = viol.sum(axis=1) * w[:, None]  # weight of +x*_bcbar per (b, cbar)
        cols = np.broadcast_to(np.arange(Kt), cp.shape)
        m = Xb.shape[0]
        C = np.bincount(np.concatenate([(ap * Kt + cols).ravel(), (an * Kt + cols).ravel()]),
                        weights=np.concatenate([-cp.ravel(), cn.ravel()]),
                        minlength=m * Kt).reshape(m, Kt)
        return (C.T @ Xb) / idx.size, loss

    # ------------------------------------------------------------------ scores
    def _features(self, bags: Bags) -> np.ndarray:
        """Scaled instances with the constant ``bias`` column appended when set."""
        Xs = apply_scaling(bags.instances, self.scale_offset_, self.scale_factor_)
        if self.bias is None:
            return Xs
        return np.hstack([Xs, np.full((Xs.shape[0], 1), float(self.bias))])

    def _all_scores(self, X: Any) -> tuple[np.ndarray, Bags]:
        check_is_fitted(self, "coef_")
        bags = self._validate_bags(X, reset=False)
        return self._features(bags) @ self.coef_.T, bags

    def decision_function(self, X: Any) -> np.ndarray:
        """Bag scores ``F_c(X) - F_dummy(X)`` (Eq. 2, 3a), (n_bags, n_labels); > 0 = present."""
        S, bags = self._all_scores(X)
        F = segment_max(S, bags.offsets)
        K = self.n_labels_
        out = F[:, :K] - F[:, K:] if F.shape[1] > K else F
        return pin_constant_labels(out, getattr(self, "constant_labels_", None), -1.0, 1.0)

    def instance_scores(self, X: Any) -> list[np.ndarray]:
        """Per bag, the (n_i, n_labels) instance scores ``f_c(x)`` (Eq. 1); bag max = Eq. 2."""
        S, bags = self._all_scores(X)
        return np.split(S[:, :self.n_labels_], bags.offsets[1:-1])

    def predict_instances(self, X: Any, Y: Any = None) -> list[np.ndarray]:
        """Instance annotation ``argmax_c f_c(x)`` per bag; with bag label sets ``Y`` the
        arg-max runs over each bag's labels only (the paper's training-set annotation)."""
        S, bags = self._all_scores(X)
        S = S[:, :self.n_labels_]
        if Y is not None:
            Yb = np.asarray(Y)
            if Yb.shape != (bags.n_bags, self.n_labels_):
                raise ValueError(f"Y must have shape {(bags.n_bags, self.n_labels_)}, "
                                 f"got {Yb.shape}")
            allowed = np.repeat(Yb == 1, np.diff(bags.offsets), axis=0)
            S = np.where(allowed | ~allowed.any(axis=1, keepdims=True), S, -np.inf)
        return np.split(S.argmax(axis=1), bags.offsets[1:-1])
