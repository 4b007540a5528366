"""Cheap colour/texture tile descriptors (numpy only) and ``images_to_bags``.

``colour_texture_features(tiles)`` maps N x t x t x 3 uint8 tiles to N x 40 float32:

=====  ====================================================================
dims   content
=====  ====================================================================
0-5    per-channel mean and standard deviation (RGB, scaled to 0..1)
6-7    opponent colour means (R - G, (R + G)/2 - B)
8-15   hue histogram, 8 bins, weighted by saturation (fractions of pixels)
16-17  mean saturation and mean value (HSV)
18-25  gradient orientation histogram, 8 unsigned bins over [0, pi),
       weighted by gradient magnitude, normalised to sum 1
26-27  mean and standard deviation of the gradient magnitude
28-36  LBP-like histogram: fraction of pixels with k = 0..8 brighter neighbours
37-39  mean |d/dx|, mean |d/dy|, mean |Laplacian| (directional texture energy)
=====  ====================================================================

Everything is vectorised over tiles, processed in chunks to bound memory. These features
let bag learners run on image data without torch (the built-in synthetic demo uses them).

``region_colour_texture_features(image, regions)`` is the masked variant: the same 40
numbers for arbitrarily shaped regions of one image (a region-id map), computed as if each
region were its own tile: pixels outside the region are never seen, so a gradient needs
both neighbours in the region (else 0, like a tile's border rows/columns) and the LBP /
Laplacian use the pixels whose 8 neighbours are all in the region. A full rectangle
region gives the tile descriptor of that rectangle (up to float rounding).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mimlkit.bags import Bags

__all__ = ["colour_texture_features", "region_colour_texture_features", "images_to_bags",
           "N_COLOUR_TEXTURE_FEATURES"]

N_COLOUR_TEXTURE_FEATURES = 40
_CHUNK_PIXELS = 262_144  # pixels per chunk (1 MB per float32 plane: cache friendly)


def colour_texture_features(tiles: np.ndarray) -> np.ndarray:
    """Colour + texture descriptor of each tile: (N, t, t, 3) uint8 -> (N, 40) float32."""
    tiles = np.asarray(tiles)
    if tiles.ndim != 4 or tiles.shape[3] != 3:
        raise ValueError(f"tiles must be N x t x t x 3, got shape {tiles.shape}")
    if tiles.dtype != np.uint8:
        raise ValueError(f"tiles must be uint8, got {tiles.dtype}")
    n = tiles.shape[0]
    out = np.empty((n, N_COLOUR_TEXTURE_FEATURES), dtype=np.float32)
    per = max(1, _CHUNK_PIXELS // max(1, tiles.shape[1] * tiles.shape[2]))
    for a in range(0, n, per):
        out[a : a + per] = _features_chunk(tiles[a : a + per])
    return out


def _features_chunk(tiles: np.ndarray) -> np.ndarray:
    n, h, w, _ = tiles.shape
    hw = h * w
    # channel planes, contiguous: (3, n, hw), values 0..1
    planes = np.ascontiguousarray(tiles.reshape(n, hw, 3).transpose(2, 0, 1), dtype=np.float32)
    planes *= 1.0 / 255.0
    r, g, b = planes[0], planes[1], planes[2]
    mean = planes.mean(axis=2).T
    std = planes.std(axis=2).T
    opp = np.stack([mean[:, 0] - mean[:, 1], (mean[:, 0] + mean[:, 1]) * 0.5 - mean[:, 2]],
                   axis=1)

    # HSV (vectorised): hue sector from the arg-max channel
    mx = np.maximum(np.maximum(r, g), b)
    mn = np.minimum(np.minimum(r, g), b)
    delta = mx - mn
    sat = delta / np.maximum(mx, 1e-6)
    inv = 1.0 / np.maximum(delta, 1e-6)
    is_r, is_g = mx == r, mx == g
    hue = np.where(is_r, g - b, np.where(is_g, b - r, r - g)) * inv
    hue += np.where(is_r, np.float32(0), np.where(is_g, np.float32(2), np.float32(4)))
    hue[hue < 0] += 6.0
    hue *= 8.0 / 6.0  # 0..8
    hbin = np.minimum(hue.astype(np.int64), 7)
    base8 = np.repeat(np.arange(n, dtype=np.int64) * 8, hw).reshape(n, hw)
    hist_h = _seg_hist(base8 + hbin, sat, n, 8) / hw
    sv = np.stack([sat.mean(axis=1), mx.mean(axis=1)], axis=1)

    # gradients on grey (central differences)
    grey = (0.299 * r + 0.587 * g + 0.114 * b).reshape(n, h, w)
    gx = np.zeros_like(grey)
    gy = np.zeros_like(grey)
    gx[:, :, 1:-1] = (grey[:, :, 2:] - grey[:, :, :-2]) * 0.5
    gy[:, 1:-1, :] = (grey[:, 2:, :] - grey[:, :-2, :]) * 0.5
    gx = gx.reshape(n, hw)
    gy = gy.reshape(n, hw)
    mag = np.sqrt(gx * gx + gy * gy)
    ang = np.arctan2(gy, gx)
    ang[ang < 0] += np.pi
    obin = (ang * (8 / np.pi)).astype(np.int64) % 8  # unsigned: angle pi == angle 0
    hist_o = _seg_hist(base8 + obin, mag, n, 8)
    hist_o /= np.maximum(hist_o.sum(axis=1, keepdims=True), 1e-8)
    gstats = np.stack([mag.mean(axis=1), mag.std(axis=1)], axis=1)

    # LBP-like: number of the 8 neighbours brighter than the centre (interior pixels)
    if h >= 3 and w >= 3:
        c = grey[:, 1:-1, 1:-1] + 1e-3
        cnt = np.zeros(c.shape, dtype=np.int8)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if dy or dx:
                    cnt += grey[:, 1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx] > c
        m = c.shape[1] * c.shape[2]
        base9 = np.repeat(np.arange(n, dtype=np.int64) * 9, m)
        hist_l = _seg_hist(base9 + cnt.ravel(), None, n, 9) / m
        lap = np.abs(4 * grey[:, 1:-1, 1:-1] - grey[:, :-2, 1:-1] - grey[:, 2:, 1:-1]
                     - grey[:, 1:-1, :-2] - grey[:, 1:-1, 2:]).reshape(n, -1).mean(axis=1)
    else:
        hist_l = np.zeros((n, 9), dtype=np.float64)
        lap = np.zeros(n)
    energy = np.stack([np.abs(gx).mean(axis=1), np.abs(gy).mean(axis=1), lap], axis=1)
    return np.concatenate([mean, std, opp, hist_h, sv, hist_o, gstats, hist_l, energy],
                          axis=1).astype(np.float32)


def region_colour_texture_features(image: np.ndarray, regions: np.ndarray,
                                   n_regions: int | None = None) -> np.ndarray:
    """Colour + texture descriptor of each region of one image (masked variant).

    ``image``: H x W x 3 uint8; ``regions``: H x W integer map, region id ``0..R-1`` per
    pixel and a negative value for pixels in no region (void). Returns (R, 40) float32 in
    the layout of ``colour_texture_features`` (see the module docstring for how region
    borders are treated). ``n_regions`` (default ``regions.max() + 1``) fixes R; every
    region must own at least one pixel. Vectorised over pixels (bincount per region).
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image must be H x W x 3 uint8, got shape {img.shape} {img.dtype}")
    lab = np.asarray(regions)
    if lab.shape != img.shape[:2]:
        raise ValueError(f"regions map has shape {lab.shape}, the image {img.shape[:2]}")
    if lab.dtype.kind not in "iu":
        raise ValueError(f"regions map must hold integer region ids, got {lab.dtype}")
    lab = lab.astype(np.int64)
    top = int(lab.max()) + 1 if lab.size else 0
    n = top if n_regions is None else int(n_regions)
    if top > n:
        raise ValueError(f"regions map holds region id {top - 1} >= n_regions={n}")
    h, w = lab.shape
    inside = (lab >= 0).ravel()
    ids = lab.ravel()[inside]
    area = np.bincount(ids, minlength=n).astype(np.float64)
    if n and area.min() == 0:
        raise ValueError(f"region {int(np.argmin(area))} has no pixel")

    def rmean(v: np.ndarray) -> np.ndarray:  # per-region mean of a pixel quantity
        return np.bincount(ids, weights=v.ravel()[inside], minlength=n) / area

    def rstd(v: np.ndarray, m: np.ndarray) -> np.ndarray:
        return np.sqrt(np.maximum(rmean(v.astype(np.float64) ** 2) - m * m, 0.0))

    planes = np.ascontiguousarray(img.reshape(h * w, 3).T, dtype=np.float32)
    planes *= 1.0 / 255.0
    r, g, b = planes[0], planes[1], planes[2]
    mean = np.stack([rmean(c) for c in planes], axis=1)
    std = np.stack([rstd(c, mean[:, k]) for k, c in enumerate(planes)], axis=1)
    opp = np.stack([mean[:, 0] - mean[:, 1], (mean[:, 0] + mean[:, 1]) * 0.5 - mean[:, 2]],
                   axis=1)

    mx = np.maximum(np.maximum(r, g), b)
    mn = np.minimum(np.minimum(r, g), b)
    delta = mx - mn
    sat = delta / np.maximum(mx, 1e-6)
    inv = 1.0 / np.maximum(delta, 1e-6)
    is_r, is_g = mx == r, mx == g
    hue = np.where(is_r, g - b, np.where(is_g, b - r, r - g)) * inv
    hue += np.where(is_r, np.float32(0), np.where(is_g, np.float32(2), np.float32(4)))
    hue[hue < 0] += 6.0
    hue *= 8.0 / 6.0
    hbin = np.minimum(hue.astype(np.int64), 7)
    hist_h = _seg_hist(ids * 8 + hbin[inside], sat[inside], n, 8) / area[:, None]
    sv = np.stack([rmean(sat), rmean(mx)], axis=1)

    # gradients: central differences where both neighbours lie in the pixel's region
    grey = (0.299 * r + 0.587 * g + 0.114 * b).reshape(h, w)
    gx = np.zeros_like(grey)
    gy = np.zeros_like(grey)
    ok = (lab[:, 2:] == lab[:, 1:-1]) & (lab[:, :-2] == lab[:, 1:-1])
    gx[:, 1:-1] = np.where(ok, (grey[:, 2:] - grey[:, :-2]) * 0.5, 0)
    ok = (lab[2:, :] == lab[1:-1, :]) & (lab[:-2, :] == lab[1:-1, :])
    gy[1:-1, :] = np.where(ok, (grey[2:, :] - grey[:-2, :]) * 0.5, 0)
    mag = np.sqrt(gx * gx + gy * gy)
    ang = np.arctan2(gy, gx)
    ang[ang < 0] += np.pi
    obin = (ang * (8 / np.pi)).astype(np.int64) % 8
    hist_o = _seg_hist(ids * 8 + obin.ravel()[inside], mag.ravel()[inside], n, 8)
    hist_o /= np.maximum(hist_o.sum(axis=1, keepdims=True), 1e-8)
    mag_mean = rmean(mag)
    gstats = np.stack([mag_mean, rstd(mag, mag_mean)], axis=1)

    # LBP-like count and Laplacian on interior pixels: all 8 neighbours in the same region
    hist_l = np.zeros((n, 9), dtype=np.float64)
    lap = np.zeros(n)
    if h >= 3 and w >= 3:
        centre = lab[1:-1, 1:-1]
        c = grey[1:-1, 1:-1] + 1e-3
        cnt = np.zeros(c.shape, dtype=np.int8)
        interior = centre >= 0
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if dy or dx:
                    cnt += grey[1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx] > c
                    interior &= lab[1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx] == centre
        iid = centre[interior]
        m = np.bincount(iid, minlength=n).astype(np.float64)
        has = m > 0
        hist_l[has] = (_seg_hist(iid * 9 + cnt[interior], None, n, 9)[has] / m[has, None])
        lv = np.abs(4 * grey[1:-1, 1:-1] - grey[:-2, 1:-1] - grey[2:, 1:-1]
                    - grey[1:-1, :-2] - grey[1:-1, 2:])[interior]
        lap[has] = np.bincount(iid, weights=lv, minlength=n)[has] / m[has]
    energy = np.stack([rmean(np.abs(gx)), rmean(np.abs(gy)), lap], axis=1)
    return np.concatenate([mean, std, opp, hist_h, sv, hist_o, gstats, hist_l, energy],
                          axis=1).astype(np.float32)


def _seg_hist(idx: np.ndarray, weights: np.ndarray | None, n: int, k: int) -> np.ndarray:
    """Per-tile histograms from flat bin ids ``tile * k + bin`` (one bincount call)."""
    return np.bincount(idx.ravel(), weights=None if weights is None else weights.ravel(),
                       minlength=n * k).reshape(n, k)


def images_to_bags(
    images,
    tiler,
    featurize: Callable[[np.ndarray], np.ndarray] = colour_texture_features,
) -> Bags:
    """Tile every image with ``tiler`` and describe each tile: one bag per image.

    ``images`` is an ``ImageSet`` (or any sequence of H x W x 3 uint8 arrays); ``tiler`` a
    ``TileBagger``. The result carries ``instance_meta["coords"]`` (y, x) per tile.
    Errors name the image (its path) at fault.
    """
    sources = getattr(images, "sources", None)
    feats: list[np.ndarray] = []
    coords: list[np.ndarray] = []
    for i in range(len(images)):
        where = sources[i] if sources is not None else f"image {i}"
        img = images[i]
        try:
            tiles, xy = tiler(img)
        except ValueError as exc:
            msg = str(exc)
            raise ValueError(msg if msg.startswith(str(where)) else f"{where}: {msg}") from None
        f = np.asarray(featurize(tiles))
        if f.ndim != 2 or f.shape[0] != tiles.shape[0]:
            raise ValueError(f"{where}: featurize returned shape {f.shape} for "
                             f"{tiles.shape[0]} tiles (expected one row per tile)")
        feats.append(f)
        coords.append(xy)
    if not feats:
        raise ValueError("no images to convert into bags")
    return Bags.from_list(feats, dtype=np.float32,
                          instance_meta={"coords": [c.astype(np.int32) for c in coords]})
