"""Synthetic MIML data with instance-level ground truth.

``make_miml_bags``: bags of feature vectors. Each label k owns ``n_concepts_per_label``
Gaussian concepts; a bag has label k **iff** at least one of its instances is drawn from a
concept of k. The other instances come from label-free background clusters or, with
probability ``distractor_rate``, from distractor clusters placed close to a concept (hard
negatives that carry no label).

``make_miml_images``: RGB images made of square textured tiles on a grid. Each label has its
own object pattern (a saturated colour + a stripe or checker texture with its own
orientation and frequency) placed in a few tiles; the other tiles are low-contrast
background textures and distractors that share *either* the colour *or* the texture of a
label but never both. Only the conjunction identifies a label, so a linear model on
mean-pooled colour/texture features is clearly above chance but far from perfect, while an
instance-level learner can do better. With ``features="colour-texture"`` the generator also
fills ``bags`` with ``colour_texture_features`` of the tiles (coords in instance metadata),
exactly what ``images_to_bags(ds.images, TileBagger(tile_size))`` would produce.

``make_dense_miml_images``: the dense-evidence regime of the same images: each label's
pattern fills a controllable share of its image's tiles (``evidence_share``; co-occurring
labels split it, in contiguous bands or scattered), and ``noise_share`` of the tiles are
artefacts, pixel noise or the pattern of a label the image lacks; same return type and
per-tile truth. It lives in :mod:`mimlkit.datasets.synthetic_dense` (with ``DENSE_KINDS``)
and is re-exported here.

Both are deterministic given ``random_state`` (an int, a ``numpy.random.Generator`` or a
``RandomState``), vectorised, and every bag has at least one label (unless ``empty_share`` or
``label_noise`` says otherwise).

Stress options of ``make_miml_bags`` (all off by default, so default data is unchanged):
``feature_scale`` (each feature multiplied by ``10**u``, u spread over a range such as
-6..4), ``density`` (high-dimensional sparse instances: each cluster keeps a random support
of ``density * n_features`` features; returned as a *dense* float32 array), many rare labels
(``n_labels`` >= 50 with a low ``cardinality``), ``single_instance`` (one instance per bag),
large bags (``bag_size=(500, 600)``, with ``witness_share`` so that a positive label keeps
a share of a large bag rather than 1-2 of its instances), ``label_noise`` (bag-label flip rate) and
``empty_share`` (share of bags with no label). ``stress_variants()`` names one small
parameter set for each.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from mimlkit.bags import Bags
from mimlkit.datasets.base import ImageSet, MIMLDataset

if TYPE_CHECKING:  # at run time: the lazy ``__getattr__`` at the end (no import cycle)
    from mimlkit.datasets.synthetic_dense import DENSE_KINDS, make_dense_miml_images

__all__ = ["make_miml_bags", "make_miml_images", "make_dense_miml_images", "stress_variants",
           "DENSE_KINDS"]


def _rng(random_state: Any) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(2**31 - 1))
    if random_state is None or isinstance(random_state, (int, np.integer)):
        return np.random.default_rng(random_state)
    raise ValueError(f"random_state must be None, an int, a Generator or a RandomState, "
                     f"got {random_state!r}")


def _check_range(name: str, value: Any, low: int = 1) -> tuple[int, int]:
    lo, hi = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    lo, hi = int(lo), int(hi)
    if lo < low or hi < lo:
        raise ValueError(f"{name} must be an int >= {low} or a range (lo, hi) with "
                         f"{low} <= lo <= hi, got {value!r}")
    return lo, hi


def _sample_labelsets(rng: np.random.Generator, n: int, K: int, cardinality: float,
                      cooccurrence: float) -> tuple[np.ndarray, np.ndarray]:
    """Y (n x K int8), every row non-empty, plus the co-occurrence partner of each label.

    Each label is switched on independently; then, with probability ``cooccurrence``, an
    active label switches on its partner (a random cyclic permutation of the labels), so
    label pairs co-occur more often than chance. Rows left empty by the first draw get one
    uniformly drawn label before the co-occurrence step.
    """
    if not 0 <= cooccurrence <= 1:
        raise ValueError(f"cooccurrence must be in [0, 1], got {cooccurrence!r}")
    p = float(np.clip(cardinality / max(K, 1) / (1 + cooccurrence), 0.02, 0.9))
    Y = rng.random((n, K)) < p
    empty = ~Y.any(axis=1)
    Y[np.flatnonzero(empty), rng.integers(0, K, size=int(empty.sum()))] = True
    if K > 1:
        perm = rng.permutation(K)
        partner = np.empty(K, dtype=np.int64)
        partner[perm] = np.roll(perm, -1)  # a cycle: nobody is its own partner
        pull = Y & (rng.random((n, K)) < cooccurrence)
        Y[:, partner] |= pull
    else:
        partner = np.zeros(K, dtype=np.int64)
    return Y.astype(np.int8), partner


def _shuffle_within(rng: np.random.Generator, bag_ids: np.ndarray) -> np.ndarray:
    """Permutation that groups rows by bag (ascending) in random order inside each bag."""
    return np.lexsort((rng.random(bag_ids.size), bag_ids))


def make_miml_bags(
    n_bags: int = 200,
    n_labels: int = 5,
    n_features: int = 16,
    bag_size: int | tuple[int, int] = (4, 12),
    n_concepts_per_label: int = 1,
    distractor_rate: float = 0.3,
    cooccurrence: float = 0.3,
    noise: float = 1.0,
    random_state: Any = None,
    *,
    cardinality: float = 1.5,
    n_background: int | None = None,
    separation: float = 3.0,
    feature_scale: tuple[float, float] | None = None,
    density: float | None = None,
    single_instance: bool = False,
    label_noise: float = 0.0,
    empty_share: float = 0.0,
    witness_share: float = 0.0,
) -> MIMLDataset:
    """Bags of vectors with instance-level truth (``instance_labels``, n_instances x K).

    Parameters
    ----------
    n_bags, n_labels, n_features : sizes.
    bag_size : instances per bag (int or inclusive range); grown if a bag needs more
        instances for its positive concepts.
    n_concepts_per_label : Gaussian concepts per label (multi-modal labels when > 1).
    distractor_rate : probability that a non-concept instance comes from a distractor
        cluster (near a concept, label-free) rather than from a background cluster.
    cooccurrence : probability that an active label also switches on its partner label.
    noise : standard deviation of instances around their cluster centre.
    random_state : seed / Generator / RandomState.
    cardinality : target mean number of labels per bag (before co-occurrence/empty fixes).
    n_background : number of background clusters (default ``max(3, n_labels)``).
    separation : scale of the cluster centres (distance between concepts ~ separation*sqrt(2)).
    feature_scale : ``(lo, hi)``: feature j is multiplied by ``10**u_j``, the exponents
        evenly spread over [lo, hi] in a random feature order (e.g. ``(-6, 4)``);
        ``meta["feature_scale"]`` holds the factors.
    density : share of non-zero features per instance (e.g. 0.015 with ``n_features=1000``):
        every cluster (concept, background; a distractor shares its concept's) keeps a
        random support of ``max(1, round(density * n_features))`` features, its centre is
        moved into that support (same norm) and its instances are zero outside it. The
        instances stay a dense float32 array.
    single_instance : every bag holds exactly one instance: the mean of one concept
        instance per label of the bag (a background/distractor instance for a bag without
        labels); ``instance_labels`` is then the bag's label set.
    label_noise : probability that each bag-label entry of ``Y`` is flipped after the
        instances are drawn (``instance_labels`` keep the clean truth).
    empty_share : share of bags drawn with an empty label set (their instances are all
        background / distractors).
    witness_share : a positive label of a bag gets ``max(1-2, round(witness_share * size))``
        concept instances (0 = always 1-2, whatever the bag size: with bags of 500+
        instances that is a witness rate of 0.2-0.4 %).
    """
    rng = _rng(random_state)
    n, K, d, C = int(n_bags), int(n_labels), int(n_features), int(n_concepts_per_label)
    if n < 1 or K < 1 or d < 1 or C < 1:
        raise ValueError("n_bags, n_labels, n_features and n_concepts_per_label must be >= 1")
    lo, hi = _check_range("bag_size", bag_size)
    if not 0 <= distractor_rate <= 1:
        raise ValueError(f"distractor_rate must be in [0, 1], got {distractor_rate!r}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    B = int(n_background) if n_background is not None else max(3, K)
    _check_stress(d, feature_scale, density, label_noise, empty_share)
    if not 0 <= witness_share < 1:
        raise ValueError(f"witness_share must be in [0, 1), got {witness_share!r}")

    def unit(m: int) -> np.ndarray:
        v = rng.standard_normal((m, d))
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    concepts = unit(K * C) * separation * np.sqrt(2.0) * 1.5  # (K*C, d), row k*C + c
    background = unit(B) * separation
    distractors = concepts + unit(K * C) * separation * 1.2  # near, but off, each concept

    Y, partner = _sample_labelsets(rng, n, K, cardinality, cooccurrence)
    if empty_share > 0:
        Y[rng.choice(n, size=int(round(empty_share * n)), replace=False)] = 0
    if single_instance:  # one concept instance per label (merged below), else one other
        m = Y.astype(np.int64)
        n_pos = m.sum(axis=1)
        sizes = np.maximum(n_pos, 1)
    else:
        m = Y.astype(np.int64) * rng.integers(1, 3, size=(n, K))  # 1-2 concept instances
        base = rng.integers(lo, hi + 1, size=n)
        if witness_share > 0:  # a share of the bag per positive label
            w = np.maximum(1, np.rint(witness_share * base)).astype(np.int64)
            m = np.maximum(m, Y.astype(np.int64) * w[:, None])
        n_pos = m.sum(axis=1)
        sizes = np.maximum(base, n_pos)
    n_other = sizes - n_pos

    # concept instances
    pos_bag = np.repeat(np.repeat(np.arange(n), K), m.ravel())
    pos_lab = np.repeat(np.tile(np.arange(K), n), m.ravel())
    pos_cluster = pos_lab * C + rng.integers(0, C, size=pos_lab.size)
    pos_x = concepts[pos_cluster]
    # background / distractor instances
    oth_bag = np.repeat(np.arange(n), n_other)
    is_dis = rng.random(oth_bag.size) < distractor_rate
    dis_idx = rng.integers(0, K * C, size=oth_bag.size)
    bg_idx = rng.integers(0, B, size=oth_bag.size)
    oth_x = np.where(is_dis[:, None], distractors[dis_idx], background[bg_idx])
    bag_ids = np.concatenate([pos_bag, oth_bag])
    E = rng.standard_normal((bag_ids.size, d))
    X = np.concatenate([pos_x, oth_x]) + noise * E
    inst = np.zeros((bag_ids.size, K), dtype=np.int8)
    inst[np.arange(pos_lab.size), pos_lab] = 1
    kind = np.concatenate([np.zeros(pos_lab.size, np.int8),  # 0 concept, 1 background,
                           np.where(is_dis, 2, 1).astype(np.int8)])  # 2 distractor
    if density is not None:  # cluster supports; distractors share their concept's
        cluster = np.concatenate([pos_cluster, np.where(is_dis, dis_idx, K * C + bg_idx)])
        centre = np.concatenate([pos_x, oth_x])
        X = _sparsify(rng, centre, cluster, K * C + B, E * noise, density)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    if single_instance:  # merge each bag's instances (concepts of its labels) into one
        grp = np.argsort(bag_ids, kind="stable")
        X = np.add.reduceat(X[grp], offsets[:-1], axis=0) / sizes[:, None]
        inst = np.maximum.reduceat(inst[grp], offsets[:-1], axis=0)
        kind = np.minimum.reduceat(kind[grp], offsets[:-1])
        bag_ids = np.arange(n)
        offsets = np.arange(n + 1, dtype=np.int64)
    order = _shuffle_within(rng, bag_ids)
    X = X[order]
    extra: dict[str, Any] = {}
    if feature_scale is not None:
        u = rng.permutation(np.linspace(float(feature_scale[0]), float(feature_scale[1]), d))
        factor = 10.0 ** u
        X = X * factor
        extra["feature_scale"] = factor.tolist()
    if label_noise > 0:
        flip = rng.random(Y.shape) < label_noise
        Y = (Y ^ flip).astype(np.int8)
        extra["label_noise_flipped"] = int(flip.sum())
    bags = Bags(X.astype(np.float32), offsets, {"kind": kind[order]})
    meta = {
        "source": "synthetic",
        "generator": "make_miml_bags",
        "params": {"n_bags": n, "n_labels": K, "n_features": d, "bag_size": [lo, hi],
                   "n_concepts_per_label": C, "distractor_rate": float(distractor_rate),
                   "cooccurrence": float(cooccurrence), "noise": float(noise),
                   "cardinality": float(cardinality), "n_background": B,
                   "separation": float(separation),
                   "random_state": random_state if isinstance(random_state, int) else None},
        "cooccurrence_partner": partner.tolist(),
    }
    stress = {"feature_scale": None if feature_scale is None else list(feature_scale),
              "density": density, "single_instance": single_instance or None,
              "label_noise": label_noise or None, "empty_share": empty_share or None,
              "witness_share": witness_share or None}
    meta["params"].update({k: v for k, v in stress.items() if v is not None})
    meta.update(extra)
    return MIMLDataset(Y=Y, label_names=[f"label_{k}" for k in range(K)], bags=bags,
                       instance_labels=inst[order], name="synthetic-bags", meta=meta)


def _check_stress(d: int, feature_scale, density, label_noise: float,
                  empty_share: float) -> None:
    if feature_scale is not None:
        lo, hi = (float(v) for v in feature_scale)
        if not (np.isfinite([lo, hi]).all() and lo <= hi and max(abs(lo), abs(hi)) <= 30):
            raise ValueError(f"feature_scale must be (lo, hi) exponents with lo <= hi, |.| <= 30,"
                             f" got {feature_scale!r}")
    if density is not None and not 0 < density <= 1:
        raise ValueError(f"density must be in (0, 1], got {density!r}")
    if not 0 <= label_noise <= 0.5:
        raise ValueError(f"label_noise must be in [0, 0.5], got {label_noise!r}")
    if not 0 <= empty_share < 1:
        raise ValueError(f"empty_share must be in [0, 1), got {empty_share!r}")


def _sparsify(rng: np.random.Generator, centre: np.ndarray, cluster: np.ndarray,
              n_clusters: int, noise: np.ndarray, density: float) -> np.ndarray:
    """Instances zero outside their cluster's random support of ``density * d`` features;
    each centre is moved into its support with its norm kept (so the signal survives)."""
    d = centre.shape[1]
    s = max(1, int(round(density * d)))
    support = np.zeros((n_clusters, d), dtype=bool)
    cols = np.argsort(rng.random((n_clusters, d)), axis=1)[:, :s]
    support[np.arange(n_clusters)[:, None], cols] = True
    mask = support[cluster]
    kept = centre * mask
    norm = np.linalg.norm(centre, axis=1, keepdims=True)
    knorm = np.linalg.norm(kept, axis=1, keepdims=True)
    kept *= np.where(knorm > 0, norm / np.maximum(knorm, 1e-12), 0.0)
    return (kept + noise) * mask


def stress_variants() -> dict[str, dict[str, Any]]:
    """Named ``make_miml_bags`` parameter sets that stress one property each.

    Each is small (100-500 bags) so that every default learner fits it in about a minute
    on two cores; ``large-bags`` (about 110 bags of 500-600 instances) is the costliest for
    the bag-distance learners. Pass ``random_state`` yourself:
    ``make_miml_bags(random_state=0, **stress_variants()["scales"])``.
    """
    return {
        # features spanning 1e-6 .. 1e4 (a few orders of magnitude per feature)
        "scales": {"n_bags": 400, "n_labels": 5, "n_features": 16,
                   "feature_scale": (-6.0, 4.0)},
        # 1000-dimensional instances, ~1.5 % non-zero (dense float32 array)
        "sparse-highdim": {"n_bags": 300, "n_labels": 5, "n_features": 1000,
                           "bag_size": (2, 6), "density": 0.015},
        # 60 labels, fewer than 2 positives per bag on average
        "many-labels": {"n_bags": 500, "n_labels": 60, "n_features": 24,
                        "cardinality": 1.2, "cooccurrence": 0.1},
        # bags of exactly one instance (multi-label instances)
        "single-instance": {"n_bags": 500, "n_labels": 5, "n_features": 16,
                            "single_instance": True},
        # bags of 500-600 instances; a positive label holds 2 % of its bag (about 11
        # instances: a witness rate of the order of tumour tiles in a positive slide)
        "large-bags": {"n_bags": 110, "n_labels": 4, "n_features": 8,
                       "bag_size": (500, 600), "witness_share": 0.02},
        # 5 % of the bag-label entries flipped
        "label-noise": {"n_bags": 400, "n_labels": 5, "n_features": 16, "label_noise": 0.05},
        # a fifth of the bags with no label at all
        "empty-labels": {"n_bags": 400, "n_labels": 5, "n_features": 16, "empty_share": 0.2},
    }


# ---------------------------------------------------------------------- images
def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV (all 0..1) -> RGB 0..1, shape (..., 3)."""
    h = (np.asarray(h, dtype=np.float64) % 1.0) * 6.0
    s, v = np.asarray(s, dtype=np.float64), np.asarray(v, dtype=np.float64)
    i = np.floor(h).astype(np.int64) % 6
    f = h - np.floor(h)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = np.stack([np.stack(c, axis=-1) for c in
                      [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]])
    return np.take_along_axis(table, i[None, ..., None], axis=0)[0]


def _label_prototypes(rng: np.random.Generator, K: int) -> tuple[np.ndarray, ...]:
    """Per-label colour (hue), texture type (0 stripes, 1 checker), orientation and
    frequency (cycles per pixel), plus 4 background hues."""
    hues = (np.arange(K) + rng.uniform(0.2, 0.8)) / K
    lab_type = np.arange(K) % 2  # 0 stripes, 1 checker
    lab_theta = (np.arange(K) // 2) * np.pi / max(1, (K + 1) // 2) + rng.uniform(0, np.pi / 8)
    lab_theta += (np.arange(K) % 2) * np.pi / 4
    lab_freq = rng.uniform(0.14, 0.26, size=K)  # cycles per pixel
    bg_hues = rng.uniform(0, 1, size=4)
    return hues, lab_type, lab_theta, lab_freq, bg_hues


def _render_tiles(rng: np.random.Generator, ptype: np.ndarray, theta: np.ndarray,
                  freq: np.ndarray, base: np.ndarray, top: np.ndarray, t: int,
                  noise: float | np.ndarray) -> np.ndarray:
    """All tiles at once (N x t x t x 3 uint8): pixel = base + (top - base) * pattern +
    noise; pattern by ``ptype``: 0 stripes, 1 checker, 2 smooth sine (background).
    ``noise`` is a scalar or one standard deviation per tile (N x 1 x 1 x 1)."""
    N = ptype.size
    yy, xx = np.mgrid[0:t, 0:t].astype(np.float32)
    c, s_ = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    u = xx * c + yy * s_
    v = -xx * s_ + yy * c
    phase = rng.uniform(0, 2 * np.pi, (N, 2))
    f = freq[:, None, None] * (2 * np.pi)
    s1 = np.sin(f * u + phase[:, :1, None])
    s2 = np.sin(f * v + phase[:, 1:, None])
    pat = np.where((ptype == 1)[:, None, None], (np.sign(s1 * s2) + 1) * 0.5,
                   np.where((ptype == 0)[:, None, None], np.clip(s1 * 1.5, -1, 1) * 0.5 + 0.5,
                            (s1 + 1) * 0.5))
    pix = (base[:, None, None, :] + (top - base)[:, None, None, :] * pat[..., None]
           + rng.normal(0, noise, (N, t, t, 3)))
    return np.clip(np.round(pix * 255), 0, 255).astype(np.uint8)


def make_miml_images(
    n_images: int = 120,
    n_labels: int = 4,
    image_size: int = 96,
    tile_size: int = 16,
    positive_tiles: int | tuple[int, int] = (1, 3),
    random_state: Any = None,
    features: str | None = "colour-texture",
    *,
    distractor_rate: float = 0.3,
    cooccurrence: float = 0.3,
    cardinality: float = 1.5,
    noise: float = 0.06,
) -> MIMLDataset:
    """RGB images of textured tiles with per-tile truth (see the module docstring).

    Parameters
    ----------
    n_images, n_labels : sizes (``n_labels`` <= 12).
    image_size, tile_size : square image side and tile side in pixels (``image_size`` must
        be a multiple of ``tile_size``); the grid has ``(image_size // tile_size) ** 2`` cells.
    positive_tiles : tiles carrying each present label's object (int or inclusive range).
    random_state : seed / Generator / RandomState.
    features : ``"colour-texture"`` (default) also fills ``bags`` with the tiles' hand-crafted
        descriptors, coords in ``instance_meta["coords"]``, and ``instance_labels``; ``None``
        gives an image-only dataset (the per-tile truth is then in ``meta["tile_labels"]``).
    distractor_rate : probability that a background tile is a distractor (colour of one label
        with another texture, or texture of one label with a neutral colour).
    cooccurrence, cardinality : label-set knobs as in ``make_miml_bags``.
    noise : pixel noise standard deviation (0..1 intensity units).
    """
    rng = _rng(random_state)
    n, K, S, t = int(n_images), int(n_labels), int(image_size), int(tile_size)
    if n < 1 or not 1 <= K <= 12:
        raise ValueError("n_images must be >= 1 and n_labels in 1..12")
    if t < 4 or S < t or S % t:
        raise ValueError(f"image_size ({S}) must be a positive multiple of tile_size ({t}), "
                         "tile_size >= 4")
    if features not in (None, "colour-texture"):
        raise ValueError(f"features must be 'colour-texture' or None, got {features!r}")
    lo, hi = _check_range("positive_tiles", positive_tiles)
    g = S // t
    G = g * g
    if K * hi > G:
        raise ValueError(f"{K} labels x up to {hi} object tiles do not fit in a {g}x{g} grid")
    if not 0 <= distractor_rate <= 1:
        raise ValueError(f"distractor_rate must be in [0, 1], got {distractor_rate!r}")

    # ---- label prototypes: colour (hue), texture type, orientation, frequency
    hues, lab_type, lab_theta, lab_freq, bg_hues = _label_prototypes(rng, K)

    # ---- label sets and tile layout
    Y, partner = _sample_labelsets(rng, n, K, cardinality, cooccurrence)
    m = Y.astype(np.int64) * rng.integers(lo, hi + 1, size=(n, K))
    tot = m.sum(axis=1)
    order = np.argsort(rng.random((n, G)), axis=1)  # random cell order per image
    img_of = np.repeat(np.arange(n), tot)
    rank = np.arange(img_of.size) - np.repeat(np.cumsum(tot) - tot, tot)
    cell_label = np.full((n, G), -1, dtype=np.int64)
    cell_label[img_of, order[img_of, rank]] = np.repeat(np.tile(np.arange(K), n), m.ravel())
    lab = cell_label.ravel()  # (N,)
    N = lab.size
    obj = lab >= 0
    dis = ~obj & (rng.random(N) < distractor_rate)
    dis_lab = rng.integers(0, K, size=N)
    dis_colour = rng.random(N) < 0.5  # True: label colour + wrong texture; False: vice versa

    # ---- per-tile rendering parameters
    bg_img = rng.integers(0, 4, size=n)
    bg_alt = rng.integers(0, 4, size=n)
    bg_idx = np.where(rng.random(N) < 0.7, np.repeat(bg_img, G), np.repeat(bg_alt, G))
    base = _hsv_to_rgb(bg_hues[bg_idx] + rng.normal(0, 0.02, N),
                       rng.uniform(0.15, 0.35, N), rng.uniform(0.35, 0.7, N))  # (N, 3)
    # background: smooth low-frequency, low-contrast pattern
    ptype = np.full(N, 2, dtype=np.int64)
    theta = rng.uniform(0, np.pi, N)
    freq = rng.uniform(0.02, 0.06, N)
    top = base * rng.uniform(0.75, 1.25, (N, 1))
    # objects
    k = np.where(obj, lab, 0)
    ptype[obj] = lab_type[k[obj]]
    theta[obj] = lab_theta[k[obj]] + rng.normal(0, 0.06, int(obj.sum()))
    freq[obj] = lab_freq[k[obj]] * rng.uniform(0.9, 1.1, int(obj.sum()))
    top[obj] = _hsv_to_rgb(hues[k[obj]] + rng.normal(0, 0.015, int(obj.sum())),
                           rng.uniform(0.7, 0.9, int(obj.sum())),
                           rng.uniform(0.75, 0.95, int(obj.sum())))
    base[obj] *= 0.5
    # distractors: colour of label j with another label's texture (or a random one), or
    # texture of label j with a neutral high-contrast colour
    j = dis_lab
    dc = dis & dis_colour
    dt = dis & ~dis_colour
    other = (j + rng.integers(1, max(K, 2), size=N)) % K
    ptype[dc] = lab_type[other[dc]] if K > 1 else 1 - lab_type[j[dc]]
    theta[dc] = lab_theta[j[dc]] + rng.choice([-1.0, 1.0], int(dc.sum())) * np.pi / 4
    freq[dc] = rng.uniform(0.14, 0.26, int(dc.sum()))
    top[dc] = _hsv_to_rgb(hues[j[dc]] + rng.normal(0, 0.015, int(dc.sum())),
                          rng.uniform(0.7, 0.9, int(dc.sum())), rng.uniform(0.75, 0.95,
                                                                           int(dc.sum())))
    base[dc] *= 0.5
    ptype[dt] = lab_type[j[dt]]
    theta[dt] = lab_theta[j[dt]] + rng.normal(0, 0.06, int(dt.sum()))
    freq[dt] = lab_freq[j[dt]] * rng.uniform(0.9, 1.1, int(dt.sum()))
    neutral = rng.uniform(0.6, 0.95, (int(dt.sum()), 1)) * np.ones(3)
    top[dt] = neutral + rng.normal(0, 0.03, neutral.shape)
    base[dt] *= 0.5

    # ---- render all tiles at once: pixel = base + (top - base) * pattern + noise
    tiles = _render_tiles(rng, ptype, theta, freq, base, top, t, noise)
    images = (tiles.reshape(n, g, g, t, t, 3).transpose(0, 1, 3, 2, 4, 5)
              .reshape(n, S, S, 3))
    inst = np.zeros((N, K), dtype=np.int8)
    inst[np.flatnonzero(obj), lab[obj]] = 1
    cells = np.tile(np.arange(G), n)
    coords = np.stack([cells // g * t, cells % g * t], axis=1).astype(np.int32)
    kind = np.where(obj, 0, np.where(dis, 2, 1)).astype(np.int8)  # 0 object 1 bg 2 distractor

    meta: dict[str, Any] = {
        "source": "synthetic",
        "generator": "make_miml_images",
        "tile_size": t,
        "image_size": S,
        "params": {"n_images": n, "n_labels": K, "image_size": S, "tile_size": t,
                   "positive_tiles": [lo, hi], "features": features,
                   "distractor_rate": float(distractor_rate),
                   "cooccurrence": float(cooccurrence), "cardinality": float(cardinality),
                   "noise": float(noise),
                   "random_state": random_state if isinstance(random_state, int) else None},
        "cooccurrence_partner": partner.tolist(),
    }
    bags = None
    inst_labels = None
    if features == "colour-texture":
        from mimlkit.features.handcrafted import colour_texture_features

        offsets = np.arange(0, N + 1, G, dtype=np.int64)
        bags = Bags(colour_texture_features(tiles), offsets, {"coords": coords, "kind": kind})
        inst_labels = inst
        meta["features"] = "colour-texture"
    else:
        meta["tile_labels"] = inst
        meta["tile_kind"] = kind
    return MIMLDataset(Y=Y, label_names=[f"object_{k}" for k in range(K)], bags=bags,
                       images=ImageSet(list(images)), instance_labels=inst_labels,
                       name="synthetic-images", meta=meta)


# ---------------------------------------------------------------------- dense evidence
_DENSE_NAMES = ("make_dense_miml_images", "DENSE_KINDS")


def __getattr__(name: str) -> Any:
    """The dense-evidence generator lives in :mod:`mimlkit.datasets.synthetic_dense` (which
    imports this module's helpers); its names are re-exported here on first access."""
    if name in _DENSE_NAMES:
        from mimlkit.datasets import synthetic_dense

        return getattr(synthetic_dense, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
