"""Bag-to-bag Hausdorff distances and k-medoids on bags.

Definitions (Euclidean instance distance ``d(a, b) = ||a - b||``; specs/classic_miml.md §0.2):

* ``"max"`` (maximal / symmetric Hausdorff, seed 000 Eq. 16)::

      H(A, B) = max( max_{a in A} min_{b in B} d(a, b),  max_{b in B} min_{a in A} d(a, b) )

* ``"min"`` (minimal Hausdorff): ``min_{a in A, b in B} d(a, b)``
* ``"average"``: ``( sum_{a in A} min_b d(a, b) + sum_{b in B} min_a d(a, b) ) / (|A| + |B|)``
* ``"directed"``: the asymmetric ``max_{a in A} min_{b in B} d(a, b)``.

Engine. Bags are grouped by size (sorted, a new group when the size grows by more than 30 %)
and padded inside a group by *repeating* a bag's last instance, which changes neither a
min over instances nor a max over instances (the ``"average"`` sums mask the copies out).
A group is stored instance-major, ``(L, n_bags, d)``, so that instance ``k`` of every bag is
a contiguous slab. One BLAS product of the augmented matrices ``[a, 1] . [-2 b, ||b||^2]``
gives ``||b||^2 - 2 a.b`` for a block of rows; the min over the instances of each column bag
is then an element-wise minimum of ``L_b`` contiguous slabs, ``||a||^2`` is added on the
reduced (``L_b`` times smaller) array, and the reduction over the row bag's instances is
again slab-wise. Square roots are taken only on the reduced values. Row blocks are sized to
stay in cache and within ``memory_budget_mb``; a pair of bags too large for one block is
split over the instances of both bags (running minimum over column chunks, then the row
reduction combined over row chunks), so no array beyond the budget exists whatever the bag
sizes, and a bag is never compared with itself in an all-pairs call. All-pairs matrices are
one directed pass plus a transpose; the reverse pass of an ``A``-to-``B`` matrix is folded
into the output through its transposed view (no second matrix). Data are centred first
(distances are translation invariant), which keeps the float32 cancellation error small.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from mimlkit.bags import Bags, as_bags

__all__ = [
    "hausdorff",
    "HAUSDORFF_VARIANTS",
    "MedoidResult",
    "kmedoids_bags",
    "sampled_medoids",
    "normalize_variant",
]

HAUSDORFF_VARIANTS = ("max", "min", "average", "directed")
_ALIASES = {
    "max": "max", "maximal": "max", "max_hausdorff": "max", "maxhausdorff": "max",
    "hausdorff": "max", "min": "min", "minimal": "min", "min_hausdorff": "min",
    "average": "average", "avg": "average", "avg_hausdorff": "average", "mean": "average",
    "average_hausdorff": "average", "directed": "directed", "directed_hausdorff": "directed",
}

#: target number of float entries of one BLAS output block (about 10 MB in float32): the
#: block and its reductions stay in the last-level cache; tuned on the Scene data.
_CACHE_BLOCK = 2_500_000


def normalize_variant(variant: str) -> str:
    """Canonical variant name (``"max"``, ``"min"``, ``"average"``, ``"directed"``)."""
    key = str(variant).lower().replace("-", "_")
    if key not in _ALIASES:
        raise ValueError(f"unknown Hausdorff variant {variant!r}; use one of {HAUSDORFF_VARIANTS}")
    return _ALIASES[key]


# --------------------------------------------------------------------------- size groups
@dataclass
class _Group:
    idx: np.ndarray       # original bag indices (n_g,)
    L: int                # padded size
    X: np.ndarray         # (L, n_g, d) instance-major, padded by repetition
    sqn: np.ndarray       # (L, n_g) squared norms
    valid: np.ndarray | None  # (L, n_g) bool, True for real instances (None: all real)


def _groups(bags: Bags, X: np.ndarray, growth: float = 1.3) -> list[_Group]:
    """Split bags into groups of similar size, each padded to its largest bag."""
    sizes = bags.sizes
    order = np.argsort(sizes, kind="stable")
    s_sorted = sizes[order]
    uniq, first = np.unique(s_sorted, return_index=True)
    cuts = [0]
    start_size = uniq[0]
    for u, f in zip(uniq[1:], first[1:]):  # loop over the distinct sizes only
        if u > growth * start_size:
            cuts.append(int(f))
            start_size = u
    cuts.append(len(order))
    out = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        idx = order[a:b]
        sz = sizes[idx]
        L = int(sz.max())
        k = np.arange(L)[:, None]
        pos = bags.offsets[idx][None, :] + np.minimum(k, sz[None, :] - 1)  # (L, n_g)
        Xg = X[pos]  # (L, n_g, d)
        sqn = np.einsum("lnd,lnd->ln", Xg, Xg)
        valid = None if np.all(sz == L) else (k < sz[None, :])
        out.append(_Group(idx, L, Xg, sqn, valid))
    return out


# --------------------------------------------------------------------------- numpy engine
def _row_block(Lr: int, Lc: int, nc: int, budget_elems: int) -> int:
    """Number of row bags per block: cache target, capped by the memory budget."""
    per_bag = Lr * Lc * nc
    target = min(_CACHE_BLOCK, budget_elems)
    return max(1, target // max(per_bag, 1))


def _pair_sizes(g: _Group, i: int) -> int:
    """Number of real (unpadded) instances of bag ``i`` of group ``g``."""
    return g.L if g.valid is None else int(g.valid[:, i].sum())


def _directed_pair(p: _Group, i: int, q: _Group, j: int, mode: str, dtype: np.dtype,
                   target: int) -> float:
    """Directed reduction from bag ``i`` of P to bag ``j`` of Q, blocked over the instances
    of *both* bags so that no array beyond ``target`` entries exists: the running minimum
    over column chunks gives ``min_b`` for a chunk of row instances, which is then reduced
    (max / min / sum of square roots) and combined over the row chunks."""
    m_i, m_j = _pair_sizes(p, i), _pair_sizes(q, j)
    d = p.X.shape[2]
    lc = min(m_j, target)
    kr = max(1, min(m_i, target // lc))
    Bj = np.empty((d + 1, m_j), dtype=dtype)
    Bj[:d] = q.X[:m_j, j].T
    Bj[:d] *= -2
    Bj[d] = q.sqn[:m_j, j]
    acc = None
    for k0 in range(0, m_i, kr):
        k1 = min(m_i, k0 + kr)
        A = np.empty((k1 - k0, d + 1), dtype=dtype)
        A[:, :d] = p.X[k0:k1, i]
        A[:, d] = 1
        rmin = None
        for l0 in range(0, m_j, lc):
            mn = (A @ Bj[:, l0:l0 + lc]).min(axis=1)
            rmin = mn if rmin is None else np.minimum(rmin, mn, out=rmin)
        rmin += p.sqn[k0:k1, i]
        if mode == "max":
            v = rmin.max()
            acc = v if acc is None else max(acc, v)
        elif mode == "min":
            v = rmin.min()
            acc = v if acc is None else min(acc, v)
        else:
            np.maximum(rmin, 0, out=rmin)
            v = np.sqrt(rmin, out=rmin).sum()
            acc = v if acc is None else acc + v
    return acc


def _directed_numpy(P: list[_Group], Q: list[_Group], mode: str, out: np.ndarray,
                    budget_elems: int, n_jobs: int, op: Any = None) -> None:
    """Fill ``out[p, q]`` with the directed reduction from bags of P to bags of Q.

    mode ``"max"``: max_a min_b ||a-b||^2 ; ``"min"``: min_{a,b} ||a-b||^2 ;
    ``"sum"``: sum_a min_b ||a-b|| (square roots taken here on the reduced values).
    ``P is Q`` (an all-pairs call) skips a bag against itself (its distance is 0).
    ``op`` (e.g. ``np.maximum``) combines the values with those already in ``out`` (which
    may be a transposed view) instead of overwriting them.
    Each of the ``n_jobs`` workers holds at most ``budget_elems / n_jobs`` entries of
    products and reductions at a time, whatever the bag sizes.
    """
    dtype = out.dtype
    per_job = max(1, budget_elems // max(n_jobs, 1))
    target = min(_CACHE_BLOCK, per_job)

    def run(task):
        if task[0] == "pair":
            _, p, i, q, j = task
            v = _directed_pair(p, i, q, j, mode, dtype, target)
            a, b = p.idx[i], q.idx[j]
            out[a, b] = v if op is None else op(out[a, b], v)
            return
        _, p, q, Bc, c0, c1, r0, r1 = task
        b, nc, d = r1 - r0, c1 - c0, p.X.shape[2]
        A = np.empty((p.L, b, d + 1), dtype=dtype)
        A[:, :, :d] = p.X[:, r0:r1]
        A[:, :, d] = 1
        G = A.reshape(p.L * b, d + 1) @ Bc  # (L_p * b, L_q * nc) = ||b||^2 - 2 a.b
        R = G if q.L == 1 else G.reshape(p.L * b, q.L, nc).min(axis=1)
        R = R.reshape(p.L, b, nc)
        R += p.sqn[:, r0:r1, None]
        if mode == "max":
            val = R.max(axis=0)
        elif mode == "min":
            val = R.min(axis=0)
        else:  # sum of per-instance min distances, copies masked out
            np.maximum(R, 0, out=R)
            np.sqrt(R, out=R)
            if p.valid is not None:
                R *= p.valid[:, r0:r1, None]
            val = R.sum(axis=0)
        ix = np.ix_(p.idx[r0:r1], q.idx[c0:c1])
        out[ix] = val if op is None else op(out[ix], val)

    def pair_tasks(p: _Group, q: _Group):
        for i in range(p.X.shape[1]):  # only for pairs of bags too large for one block
            for j in range(q.X.shape[1]):
                if p is q and i == j and op is None:
                    out[p.idx[i], q.idx[j]] = 0
                else:
                    yield ("pair", p, i, q, j)

    def block_tasks(p: _Group, q: _Group, BT: np.ndarray):
        d, n_q, n_p = BT.shape[0] - 1, q.X.shape[1], p.X.shape[1]
        max_cols = max(1, per_job // max(p.L * q.L, 1))
        for c0 in range(0, n_q, max_cols):
            c1 = min(n_q, c0 + max_cols)
            nc = c1 - c0
            # a view when the chunk spans the group, else one copy shared by its row blocks
            Bc = BT[:, :, c0:c1].reshape(d + 1, q.L * nc)
            blk = _row_block(p.L, q.L, nc, per_job)
            for r0 in range(0, n_p, blk):
                yield ("block", p, q, Bc, c0, c1, r0, min(n_p, r0 + blk))

    # The products have only d + 1 columns: BLAS threading gains little on them and spins
    # badly on a busy machine, so BLAS runs single-threaded and ``n_jobs`` threads share the
    # blocks (numpy releases the GIL in the products and reductions). Tasks are made and run
    # one (P group, Q group) at a time, so the column copies of only one pair are alive.
    from threadpoolctl import threadpool_limits

    ex = ThreadPoolExecutor(max_workers=n_jobs) if n_jobs > 1 else None
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            for q in Q:
                d = q.X.shape[2]
                # columns: instance-major (k * n_q + j), augmented with the squared norms
                BT = np.empty((d + 1, q.L, q.X.shape[1]), dtype=dtype)
                BT[:d] = np.moveaxis(q.X, 2, 0)
                BT[:d] *= -2
                BT[d] = q.sqn
                for p in P:
                    tasks = (pair_tasks(p, q) if p.L * q.L > per_job
                             else block_tasks(p, q, BT))
                    if ex is None:
                        for t in tasks:
                            run(t)
                    else:
                        list(ex.map(run, list(tasks)))
                del BT
    finally:
        if ex is not None:
            ex.shutdown()


# --------------------------------------------------------------------------- torch engine
def _directed_torch(P: list[_Group], Q: list[_Group], mode: str, out: np.ndarray,
                    budget_elems: int, device: Any, op: Any = None) -> None:
    import torch

    tdtype = torch.float64 if out.dtype == np.float64 else torch.float32

    def T(a: np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(a)).to(device=device, dtype=tdtype)

    for q in Q:
        d = q.X.shape[2]
        n_q = q.X.shape[1]
        BT = torch.empty((d + 1, q.L, n_q), dtype=tdtype, device=device)
        BT[:d] = -2 * T(q.X).permute(2, 0, 1)
        BT[d] = T(q.sqn)
        for p in P:
            if p.L * q.L > budget_elems:  # bags too large for one block: instance blocks
                _directed_numpy([p], [q], mode, out, budget_elems, 1, op)
                continue
            n_p = p.X.shape[1]
            PX = T(p.X)
            Psq = T(p.sqn)
            Pvalid = None if p.valid is None else T(p.valid)
            max_cols = max(1, budget_elems // max(p.L * q.L, 1))
            for c0 in range(0, n_q, max_cols):
                c1 = min(n_q, c0 + max_cols)
                nc = c1 - c0
                Bc = BT[:, :, c0:c1].reshape(d + 1, q.L * nc)
                if device.type == "cpu":  # cache-sized blocks, as in the numpy engine
                    blk = _row_block(p.L, q.L, nc, budget_elems)
                else:
                    blk = max(1, budget_elems // max(p.L * q.L * nc, 1))
                for r0 in range(0, n_p, blk):
                    r1 = min(n_p, r0 + blk)
                    b = r1 - r0
                    A = torch.cat([PX[:, r0:r1], torch.ones((p.L, b, 1), dtype=tdtype,
                                                               device=device)], dim=2)
                    G = A.reshape(p.L * b, d + 1) @ Bc
                    R = G.reshape(p.L * b, q.L, nc).amin(dim=1).reshape(p.L, b, nc)
                    R = R + Psq[:, r0:r1, None]
                    if mode == "max":
                        val = R.amax(dim=0)
                    elif mode == "min":
                        val = R.amin(dim=0)
                    else:
                        R = R.clamp_min(0).sqrt()
                        if Pvalid is not None:
                            R = R * Pvalid[:, r0:r1, None]
                        val = R.sum(dim=0)
                    ix = np.ix_(p.idx[r0:r1], q.idx[c0:c1])
                    v = val.cpu().numpy()
                    out[ix] = v if op is None else op(out[ix], v)


# --------------------------------------------------------------------------- public API
def hausdorff(
    A: Any,
    B: Any = None,
    variant: str = "max",
    dtype: Any = np.float32,
    memory_budget_mb: float = 256,
    backend: str = "numpy",
    n_jobs: int | None = None,
) -> np.ndarray:
    """Hausdorff distances between the bags of ``A`` and those of ``B``.

    Parameters
    ----------
    A, B : anything ``as_bags`` accepts. ``B=None`` gives the all-pairs matrix of ``A``
        (symmetric except for ``"directed"``; zero diagonal).
    variant : ``"max"`` (default), ``"min"``, ``"average"`` or ``"directed"`` (see module doc).
    dtype : float32 (default, fastest; absolute error about ``1e-7 * ||x||^2 / d(a, b)``) or
        float64 (matches a direct computation to ~1e-12).
    memory_budget_mb : soft cap on the working memory of one block (per worker).
    backend : ``"numpy"`` or ``"torch"`` (uses CUDA when available, else CPU, where it is
        several times slower than the numpy engine; meant for GPUs).
    n_jobs : worker threads for the numpy backend (row blocks; BLAS is limited to one
        thread per worker). ``None`` = 1. ``-1`` = all cores.

    Returns
    -------
    ndarray (n_A, n_B) of ``dtype``.
    """
    variant = normalize_variant(variant)
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    if backend not in ("numpy", "torch"):
        raise ValueError(f"backend must be 'numpy' or 'torch', got {backend!r}")
    if memory_budget_mb <= 0:
        raise ValueError("memory_budget_mb must be positive")
    bags_a = as_bags(A, dtype=dtype)
    symmetric = B is None
    bags_b = bags_a if symmetric else as_bags(B, dtype=dtype)
    if bags_b.n_features != bags_a.n_features:
        raise ValueError(f"A has {bags_a.n_features} features per instance, "
                         f"B has {bags_b.n_features}: widths must agree")
    if n_jobs is None:
        jobs = 1
    elif n_jobs < 0:
        import os

        jobs = max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    else:
        jobs = max(1, int(n_jobs))

    # centre (translation invariant) in float64, then cast; by row chunks (no float64 copy)
    sa_ = bags_a.instances.sum(axis=0, dtype=np.float64)
    if symmetric:
        mu = sa_ / bags_a.n_instances
    else:
        mu = (sa_ + bags_b.instances.sum(axis=0, dtype=np.float64)) / (
            bags_a.n_instances + bags_b.n_instances)
    ga = _groups(bags_a, _centred(bags_a.instances, mu, dtype))
    gb = ga if symmetric else _groups(bags_b, _centred(bags_b.instances, mu, dtype))

    budget_elems = max(1, int(memory_budget_mb * 2**20 / (3 * dtype.itemsize)))
    if backend == "torch":
        from mimlkit._extras import require

        torch = require("deep", "torch", "backend='torch'")

        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

        def directed(P, Q, mode, out, op=None):
            _directed_torch(P, Q, mode, out, budget_elems, device, op)
    else:
        def directed(P, Q, mode, out, op=None):
            _directed_numpy(P, Q, mode, out, budget_elems, jobs, op)

    n_a, n_b = bags_a.n_bags, bags_b.n_bags
    if variant in ("max", "directed", "min"):
        mode = "min" if variant == "min" else "max"
        D = np.empty((n_a, n_b), dtype=dtype)
        directed(ga, gb, mode, D)
        if variant == "min" and symmetric:
            _symmetrize(D, np.minimum, budget_elems)  # exact symmetry despite rounding order
        if variant == "max":
            if symmetric:
                _symmetrize(D, np.maximum, budget_elems)
            else:  # the reverse pass is folded into D through its transposed view
                directed(gb, ga, "max", D.T, np.maximum)
        np.maximum(D, 0, out=D)
        np.sqrt(D, out=D)
    else:  # average
        S = np.empty((n_a, n_b), dtype=dtype)
        directed(ga, gb, "sum", S)
        if symmetric:
            _symmetrize(S, np.add, budget_elems)
        else:
            directed(gb, ga, "sum", S.T, np.add)
        sa, sb = bags_a.sizes.astype(dtype), bags_b.sizes.astype(dtype)
        rows = max(1, budget_elems // max(n_b, 1))
        for r0 in range(0, n_a, rows):  # by row blocks: no n_a x n_b temporary
            S[r0:r0 + rows] /= sa[r0:r0 + rows, None] + sb[None, :]
        D = S
    if symmetric:
        np.fill_diagonal(D, 0)
    return D


def _centred(X: np.ndarray, mu: np.ndarray, dtype: np.dtype,
             chunk: int = 65536) -> np.ndarray:
    """``(X - mu)`` computed in float64 and cast to ``dtype``, by row chunks."""
    out = np.empty(X.shape, dtype=dtype)
    for s in range(0, X.shape[0], chunk):
        out[s:s + chunk] = np.asarray(X[s:s + chunk], dtype=np.float64) - mu
    return out


def _symmetrize(D: np.ndarray, op: Any, budget_elems: int) -> None:
    """``D <- op(D, D.T)`` in place, tile by tile: ``op(D, D.T, out=D)`` would make numpy
    copy the whole overlapping ``D.T`` (a second n x n matrix beyond the memory budget)."""
    n = D.shape[0]
    t = int(min(1024, max(64, np.sqrt(budget_elems))))
    for i in range(0, n, t):
        i1 = min(n, i + t)
        for j in range(i, n, t):
            j1 = min(n, j + t)
            a = D[i:i1, j:j1]
            op(a, D[j:j1, i:i1].T.copy(), out=a)
            D[j:j1, i:i1] = a.T


# --------------------------------------------------------------------------- k-medoids
class MedoidResult(NamedTuple):
    """k-medoids result: ``medoids`` (k,) int64 bag indices, ``labels`` (n,) int64 cluster
    of each bag (``labels[medoids[c]] == c``), ``cost`` = sum of distances to the nearest
    medoid."""

    medoids: np.ndarray
    labels: np.ndarray
    cost: float


def _check_square(D: np.ndarray) -> np.ndarray:
    D = np.asarray(D)
    if D.ndim != 2 or D.shape[0] != D.shape[1]:
        raise ValueError(f"expected a square distance matrix, got shape {D.shape}")
    for r in range(0, D.shape[0], 1024):  # by row blocks: no n x n temporary
        if not np.isfinite(D[r:r + 1024]).all():
            raise ValueError("distance matrix contains NaN or inf")
    return D


def _lamda_kmedoids(D: np.ndarray, k: int, rng: np.random.Generator,
                    max_iter: int) -> np.ndarray:
    """The LAMDA MIMLSVM routine (spec §0.3): random medoids, random first assignment,
    alternate (assign to nearest medoid / medoid = member with least summed distance);
    stop on no change or on an empty cluster (keeping the previous medoids)."""
    n = D.shape[0]
    medoids = rng.choice(n, size=k, replace=False)
    labels = rng.integers(0, k, size=n)
    labels[medoids] = np.arange(k)

    def update(labels):
        onehot = np.zeros((n, k), dtype=D.dtype)
        onehot[np.arange(n), labels] = 1
        S = D @ onehot  # S[i, c] = sum_{j in c} D[i, j]
        S[onehot == 0] = np.inf
        return S.argmin(axis=0)

    medoids = update(labels)
    for _ in range(max_iter):
        lab = D[:, medoids].argmin(axis=1)
        lab[medoids] = np.arange(k)
        if np.bincount(lab, minlength=k).min() == 0:
            break
        new = update(lab)
        if np.array_equal(np.sort(new), np.sort(medoids)):
            medoids = new
            break
        medoids = new
    return medoids


def kmedoids_bags(
    D: np.ndarray,
    n_clusters: int,
    random_state: Any = None,
    method: str = "fasterpam",
    max_iter: int = 100,
    init: str = "random",
) -> MedoidResult:
    """k-medoids on a precomputed (bag) distance matrix.

    ``method``: ``"fasterpam"`` (default; Schubert & Rousseeuw 2021, via the ``kmedoids``
    package), ``"pam"``, ``"alternate"`` (k-means style) or ``"lamda"`` (the MIMLSVM
    reference routine, spec §0.3). ``init`` is passed to the ``kmedoids`` package
    (``"random"``, ``"first"``, ``"build"``).
    """
    from sklearn.utils import check_random_state

    D = _check_square(D)
    n = D.shape[0]
    k = int(n_clusters)
    if not 1 <= k <= n:
        raise ValueError(f"n_clusters={n_clusters} must be between 1 and the number of bags ({n})")
    rs = check_random_state(random_state)
    seed = int(rs.randint(0, 2**31 - 1))
    if k == n:
        medoids = np.arange(n)
    elif method == "lamda":
        medoids = _lamda_kmedoids(np.asarray(D, dtype=np.float64), k,
                                  np.random.default_rng(seed), max_iter)
    elif method in ("fasterpam", "pam", "alternate"):
        import kmedoids

        # float32 is passed as is (the package sums the loss in float64: same medoids as on
        # a float64 copy, without an n x n float64 copy)
        Dk = np.ascontiguousarray(D, dtype=np.float32 if D.dtype == np.float32 else np.float64)
        if method == "fasterpam":
            res = kmedoids.fasterpam(Dk, k, max_iter=max_iter, init=init, random_state=seed,
                                     n_cpu=1)
        elif method == "pam":
            res = kmedoids.pam(Dk, k, max_iter=max_iter, init=init if init != "random" else
                               "build", random_state=seed)
        else:
            res = kmedoids.alternating(Dk, k, max_iter=max_iter, init=init, random_state=seed)
        medoids = np.asarray(res.medoids)
    else:
        raise ValueError(f"unknown k-medoids method {method!r}; use 'fasterpam', 'pam', "
                         "'alternate' or 'lamda'")
    medoids = np.asarray(medoids, dtype=np.int64)
    labels = np.asarray(D[:, medoids].argmin(axis=1), dtype=np.int64)
    labels[medoids] = np.arange(k)
    cost = float(D[np.arange(n), medoids[labels]].sum(dtype=np.float64))
    return MedoidResult(medoids, labels, cost)


def _nearest(bags: Bags, ref: Bags, variant: str, chunk: int, **kw: Any) -> tuple[np.ndarray,
                                                                                  np.ndarray]:
    """(argmin, min) of the distance from every bag to the bags of ``ref``, in row chunks."""
    n = bags.n_bags
    arg = np.empty(n, dtype=np.int64)
    val = np.empty(n, dtype=np.float64)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        D = hausdorff(bags.take(np.arange(s, e)), ref, variant=variant, **kw)
        arg[s:e] = D.argmin(axis=1)
        val[s:e] = D[np.arange(e - s), arg[s:e]]
    return arg, val


def sampled_medoids(
    bags: Any,
    n_clusters: int,
    sample_size: int | None = None,
    n_samples: int = 5,
    random_state: Any = None,
    variant: str = "max",
    method: str = "fasterpam",
    memory_budget_mb: float = 256,
    dtype: Any = np.float32,
) -> MedoidResult:
    """CLARA-style k-medoids for many bags with bounded memory.

    Draws ``n_samples`` random subsets of ``sample_size`` bags (default
    ``min(n, max(40 + 2 k, 5 k))``), runs k-medoids on each subset's Hausdorff matrix,
    scores each medoid set on *all* bags (distances to the k medoids, in chunks) and keeps
    the cheapest. Memory: ``sample_size^2`` for the subset matrix plus ``chunk x k`` blocks;
    nothing of size ``n^2``. Each later sample contains the best medoids so far (as in
    CLARA), so the cost never increases.
    """
    from sklearn.utils import check_random_state

    bags = as_bags(bags, dtype=dtype)
    n = bags.n_bags
    k = int(n_clusters)
    if not 1 <= k <= n:
        raise ValueError(f"n_clusters={n_clusters} must be between 1 and the number of bags ({n})")
    if sample_size is None:
        sample_size = max(40 + 2 * k, 5 * k)
    sample_size = int(min(n, max(sample_size, k)))
    rs = check_random_state(random_state)
    # chunk of rows so that chunk x k x (instances per bag)^2 stays within the budget
    mean_size = max(1.0, float(bags.sizes.mean()))
    budget_elems = memory_budget_mb * 2**20 / 4
    chunk = int(max(1, min(n, budget_elems // max(k * mean_size * mean_size * 4, 1))))
    chunk = max(chunk, 256) if n > 256 else n
    best: MedoidResult | None = None
    kw = dict(dtype=dtype, memory_budget_mb=memory_budget_mb)
    for _ in range(max(1, int(n_samples))):
        if best is None:
            sample = rs.choice(n, size=sample_size, replace=False)
        else:
            rest = np.setdiff1d(np.arange(n), best.medoids, assume_unique=True)
            extra = rs.choice(rest, size=sample_size - k, replace=False) if sample_size > k \
                else np.empty(0, dtype=np.int64)
            sample = np.concatenate([best.medoids, extra])
        Ds = hausdorff(bags.take(sample), variant=variant, **kw)
        sub = kmedoids_bags(Ds, k, random_state=rs, method=method)
        med = sample[sub.medoids]
        labels, dist = _nearest(bags, bags.take(med), variant, chunk, **kw)
        labels[med] = np.arange(k)
        dist[med] = 0.0
        cost = float(dist.sum())
        if best is None or cost < best.cost:
            best = MedoidResult(np.asarray(med, dtype=np.int64), labels, cost)
        if sample_size >= n:
            break
    assert best is not None
    return best
