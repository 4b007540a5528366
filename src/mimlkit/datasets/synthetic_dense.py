"""Dense-evidence synthetic MIML images: ``make_dense_miml_images`` and ``DENSE_KINDS``.

The dense-evidence regime of ``make_miml_images`` (:mod:`mimlkit.datasets.synthetic`): each
label's pattern fills a controllable share of its image's tiles (``evidence_share``;
co-occurring labels split it, in contiguous bands or scattered), and ``noise_share`` of the
tiles are artefacts, pixel noise or the pattern of a label the image lacks; same label
patterns, renderer, return type and per-tile truth. The shared pieces (random state, label
sets, label prototypes, HSV colours, tile renderer) come from
:mod:`mimlkit.datasets.synthetic`; ``make_dense_miml_images`` and ``DENSE_KINDS`` are also
importable from there.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mimlkit.bags import Bags
from mimlkit.datasets.base import ImageSet, MIMLDataset
from mimlkit.datasets.synthetic import (
    _hsv_to_rgb,
    _label_prototypes,
    _render_tiles,
    _rng,
    _sample_labelsets,
)

__all__ = ["make_dense_miml_images", "DENSE_KINDS"]

#: ``kind`` codes of ``make_dense_miml_images`` tiles
DENSE_KINDS = {0: "evidence", 1: "background", 2: "artefact", 3: "pixel-noise", 4: "foreign"}


def _share_range(name: str, value: Any, low: float, high: float) -> tuple[float, float]:
    lo, hi = (value, value) if isinstance(value, (int, float, np.number)) else tuple(value)
    lo, hi = float(lo), float(hi)
    if not (low <= lo <= hi <= high):
        raise ValueError(f"{name} must be a share in [{low:g}, {high:g}] or a range (lo, hi) "
                         f"with lo <= hi inside it, got {value!r}")
    return lo, hi


def make_dense_miml_images(
    n_images: int = 120,
    n_labels: int = 4,
    image_size: int = 96,
    tile_size: int = 16,
    evidence_share: float | tuple[float, float] = 0.7,
    noise_share: float | tuple[float, float] = 0.2,
    random_state: Any = None,
    features: str | None = "colour-texture",
    *,
    noise_mix: tuple[float, float, float] = (1.0, 1.0, 1.0),
    layout: str = "regions",
    cooccurrence: float = 0.3,
    cardinality: float = 1.5,
    noise: float = 0.06,
    pixel_noise: float = 0.3,
) -> MIMLDataset:
    """Dense-evidence regime: label patterns fill most of each image (``make_miml_images``
    places a label in 1-3 tiles; here its evidence is a large share of the bag, as in
    pathology slides or scene photos), with a controllable share of noise tiles.

    Same label patterns (colour + stripe/checker texture per label), renderer, return type
    and per-tile truth as ``make_miml_images``. Per image, with ``G`` grid cells and ``L``
    labels:

    - ``round(noise_share * G)`` **noise tiles** at random cells, each (weights
      ``noise_mix`` = (artefact, pixel-noise, foreign)) an *artefact* (colour of a label with
      another texture, or its texture in a neutral colour: the distractors of
      ``make_miml_images``), *pixel noise* (background colour under strong per-pixel noise,
      ``pixel_noise``) or a *foreign* tile: the exact pattern of a label the image does
      **not** have (an artefact when it has all labels). Foreign tiles look like evidence
      but are not truth: their ``instance_labels`` row is zero, so bag labels stay the OR
      of the tile truth (contamination, not a missed label).
    - ``max(L, round(evidence_share * G))`` **evidence tiles** (at most the cells left),
      split between the image's labels as evenly as possible (each gets
      ``n_evidence // L`` tiles, ``n_evidence % L`` random labels one more; every label at
      least one). ``layout="regions"`` puts them in contiguous bands (cells ordered along a
      random direction with ragged borders: co-occurring labels split the image into
      regions); ``"random"`` scatters them.
    - the other cells are low-contrast **background**.

    A single-label image thus carries its pattern in ``evidence_share`` of its tiles, a
    two-label image in about half of that each.

    Parameters
    ----------
    n_images, n_labels, image_size, tile_size, random_state, features, cooccurrence,
    cardinality, noise : as in ``make_miml_images`` (``n_labels`` <= 12, the grid must have
        at least ``n_labels`` cells).
    evidence_share : share of each image's tiles that are evidence of its labels, in
        (0, 1]; a float, or a range ``(lo, hi)`` drawn uniformly per image.
    noise_share : share of each image's tiles that are noise tiles, in [0, 1); float or
        range. ``evidence_share + noise_share`` must be <= 1 (upper ends of ranges).
    noise_mix : relative weights of the noise kinds (artefact, pixel-noise, foreign).
    layout : ``"regions"`` (contiguous bands) or ``"random"`` (scattered evidence).
    pixel_noise : pixel standard deviation (0..1 units) of pixel-noise tiles.

    Returns an ``MIMLDataset`` named ``synthetic-dense-images``: with
    ``features="colour-texture"``, ``bags`` (coords and ``kind`` in ``instance_meta``;
    kinds in ``DENSE_KINDS``: 0 evidence, 1 background, 2 artefact, 3 pixel noise,
    4 foreign) and ``instance_labels`` (n_tiles x K int8, one-hot on evidence tiles); with
    ``features=None``, images only and the truth in ``meta["tile_labels"]`` /
    ``meta["tile_kind"]``.
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
    if layout not in ("regions", "random"):
        raise ValueError(f"layout must be 'regions' or 'random', got {layout!r}")
    e_lo, e_hi = _share_range("evidence_share", evidence_share, 0.0, 1.0)
    z_lo, z_hi = _share_range("noise_share", noise_share, 0.0, 1.0)
    if e_lo <= 0 or z_hi >= 1 or e_hi + z_hi > 1 + 1e-9:
        raise ValueError(f"need evidence_share in (0, 1], noise_share in [0, 1) and "
                         f"evidence_share + noise_share <= 1, got {evidence_share!r} and "
                         f"{noise_share!r}")
    mix = np.asarray(noise_mix, dtype=np.float64)
    if mix.shape != (3,) or not np.isfinite(mix).all() or (mix < 0).any() or mix.sum() <= 0:
        raise ValueError(f"noise_mix must be 3 non-negative weights (artefact, pixel-noise, "
                         f"foreign), not all zero, got {noise_mix!r}")
    if noise < 0 or pixel_noise < 0:
        raise ValueError("noise and pixel_noise must be >= 0")
    g = S // t
    G = g * g
    if G < K:
        raise ValueError(f"a {g}x{g} grid has fewer cells than the {K} labels")

    hues, lab_type, lab_theta, lab_freq, bg_hues = _label_prototypes(rng, K)
    Y, partner = _sample_labelsets(rng, n, K, cardinality, cooccurrence)
    L = Y.sum(axis=1).astype(np.int64)

    # ---- tile counts per image
    e_share = rng.uniform(e_lo, e_hi, n) if e_hi > e_lo else np.full(n, e_lo)
    z_share = rng.uniform(z_lo, z_hi, n) if z_hi > z_lo else np.full(n, z_lo)
    n_ev = np.minimum(np.maximum(L, np.round(e_share * G).astype(np.int64)), G)
    n_no = np.minimum(np.round(z_share * G).astype(np.int64), G - n_ev)
    # evidence tiles per label: even split, the remainder to random present labels
    key = np.where(Y > 0, rng.random((n, K)), np.inf)
    lab_rank = np.argsort(np.argsort(key, axis=1), axis=1)  # present labels first
    counts = Y * (n_ev // np.maximum(L, 1))[:, None] \
        + (Y > 0) * (lab_rank < (n_ev % np.maximum(L, 1))[:, None])
    # ---- layout: noise cells at random, evidence in order along a (ragged) direction
    cell_rank = np.argsort(np.argsort(rng.random((n, G)), axis=1), axis=1)
    is_noise = cell_rank < n_no[:, None]
    if layout == "regions":
        angle = rng.uniform(0, 2 * np.pi, n)[:, None]
        cy, cx = np.divmod(np.arange(G), g)
        order_key = (np.cos(angle) * cy + np.sin(angle) * cx
                     + rng.normal(0, 0.6, (n, G)))
    else:
        order_key = rng.random((n, G))
    order_key = np.where(is_noise, np.inf, order_key)
    pos = np.argsort(np.argsort(order_key, axis=1), axis=1)  # noise cells last
    is_ev = pos < n_ev[:, None]
    lab_order = np.argsort(np.where(Y > 0, rng.random((n, K)), np.inf), axis=1)
    bounds = np.cumsum(np.take_along_axis(counts, lab_order, axis=1), axis=1)  # (n, K)
    slot = (pos[:, :, None] >= bounds[:, None, :]).sum(axis=2).clip(max=K - 1)
    cell_label = np.where(is_ev, np.take_along_axis(lab_order, slot, axis=1), -1)

    # ---- noise kinds and their labels
    lab = cell_label.ravel()
    N = lab.size
    ev = lab >= 0
    nz = is_noise.ravel()
    kind = np.where(ev, 0, 1).astype(np.int8)
    nkind = rng.choice(3, size=N, p=mix / mix.sum())
    absent = np.repeat(Y == 0, G, axis=0)  # (N, K): labels the tile's image lacks
    fkey = np.where(absent, rng.random((N, K)), -1.0)
    foreign_lab = np.argmax(fkey, axis=1)
    can_foreign = absent.any(axis=1)
    foreign = nz & (nkind == 2) & can_foreign
    pixn = nz & (nkind == 1)
    art = nz & ~foreign & ~pixn
    kind[art], kind[pixn], kind[foreign] = 2, 3, 4
    art_lab = rng.integers(0, K, size=N)
    art_colour = rng.random(N) < 0.5  # True: label colour + wrong texture; False: vice versa

    # ---- per-tile rendering parameters (as in make_miml_images)
    bg_img = rng.integers(0, 4, size=n)
    bg_alt = rng.integers(0, 4, size=n)
    bg_idx = np.where(rng.random(N) < 0.7, np.repeat(bg_img, G), np.repeat(bg_alt, G))
    base = _hsv_to_rgb(bg_hues[bg_idx] + rng.normal(0, 0.02, N),
                       rng.uniform(0.15, 0.35, N), rng.uniform(0.35, 0.7, N))
    ptype = np.full(N, 2, dtype=np.int64)
    theta = rng.uniform(0, np.pi, N)
    freq = rng.uniform(0.02, 0.06, N)
    top = base * rng.uniform(0.75, 1.25, (N, 1))
    pattern = ev | foreign  # the exact pattern of a label (evidence or foreign)
    k = np.where(ev, lab, foreign_lab)
    m = int(pattern.sum())
    ptype[pattern] = lab_type[k[pattern]]
    theta[pattern] = lab_theta[k[pattern]] + rng.normal(0, 0.06, m)
    freq[pattern] = lab_freq[k[pattern]] * rng.uniform(0.9, 1.1, m)
    top[pattern] = _hsv_to_rgb(hues[k[pattern]] + rng.normal(0, 0.015, m),
                               rng.uniform(0.7, 0.9, m), rng.uniform(0.75, 0.95, m))
    base[pattern] *= 0.5
    j = art_lab
    dc = art & art_colour
    dt = art & ~art_colour
    other = (j + rng.integers(1, max(K, 2), size=N)) % K
    ptype[dc] = lab_type[other[dc]] if K > 1 else 1 - lab_type[j[dc]]
    theta[dc] = lab_theta[j[dc]] + rng.choice([-1.0, 1.0], int(dc.sum())) * np.pi / 4
    freq[dc] = rng.uniform(0.14, 0.26, int(dc.sum()))
    top[dc] = _hsv_to_rgb(hues[j[dc]] + rng.normal(0, 0.015, int(dc.sum())),
                          rng.uniform(0.7, 0.9, int(dc.sum())),
                          rng.uniform(0.75, 0.95, int(dc.sum())))
    base[dc] *= 0.5
    ptype[dt] = lab_type[j[dt]]
    theta[dt] = lab_theta[j[dt]] + rng.normal(0, 0.06, int(dt.sum()))
    freq[dt] = lab_freq[j[dt]] * rng.uniform(0.9, 1.1, int(dt.sum()))
    neutral = rng.uniform(0.6, 0.95, (int(dt.sum()), 1)) * np.ones(3)
    top[dt] = neutral + rng.normal(0, 0.03, neutral.shape)
    base[dt] *= 0.5
    sd = np.where(pixn, float(pixel_noise), float(noise))[:, None, None, None]
    tiles = _render_tiles(rng, ptype, theta, freq, base, top, t, sd)
    images = (tiles.reshape(n, g, g, t, t, 3).transpose(0, 1, 3, 2, 4, 5)
              .reshape(n, S, S, 3))
    inst = np.zeros((N, K), dtype=np.int8)
    inst[np.flatnonzero(ev), lab[ev]] = 1
    cells = np.tile(np.arange(G), n)
    coords = np.stack([cells // g * t, cells % g * t], axis=1).astype(np.int32)

    meta: dict[str, Any] = {
        "source": "synthetic",
        "generator": "make_dense_miml_images",
        "tile_size": t,
        "image_size": S,
        "params": {"n_images": n, "n_labels": K, "image_size": S, "tile_size": t,
                   "evidence_share": [e_lo, e_hi], "noise_share": [z_lo, z_hi],
                   "noise_mix": (mix / mix.sum()).tolist(), "layout": layout,
                   "features": features, "cooccurrence": float(cooccurrence),
                   "cardinality": float(cardinality), "noise": float(noise),
                   "pixel_noise": float(pixel_noise),
                   "random_state": random_state if isinstance(random_state, int) else None},
        "cooccurrence_partner": partner.tolist(),
        "kinds": {str(c): name for c, name in DENSE_KINDS.items()},
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
                       name="synthetic-dense-images", meta=meta)
