"""Hand-crafted colour/texture tile features and images_to_bags."""

from __future__ import annotations

import numpy as np
import pytest

from mimlkit.datasets import TileBagger
from mimlkit.datasets.base import ImageSet
from mimlkit.features.handcrafted import (
    N_COLOUR_TEXTURE_FEATURES,
    colour_texture_features,
    images_to_bags,
)


def stripes(theta: float, size: int = 16, colour=(255, 0, 0)) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size]
    p = (np.sin(2 * np.pi * 0.2 * (xx * np.cos(theta) + yy * np.sin(theta))) > 0)[..., None]
    return (p * np.array(colour)).astype(np.uint8)


def test_shape_dtype_and_flat_tile_values():
    flat = np.zeros((2, 8, 8, 3), np.uint8)
    flat[0] = (255, 0, 0)
    flat[1] = (0, 0, 255)
    f = colour_texture_features(flat)
    assert f.shape == (2, N_COLOUR_TEXTURE_FEATURES) and f.dtype == np.float32
    np.testing.assert_allclose(f[0, :3], [1, 0, 0])  # channel means
    np.testing.assert_allclose(f[:, 3:6], 0, atol=1e-6)  # flat: no std
    np.testing.assert_allclose(f[:, 26:28], 0, atol=1e-6)  # no gradient
    assert f[0, 8] == pytest.approx(1.0)  # red hue bin, full saturation
    assert f[1, 8 + 5] == pytest.approx(1.0)  # blue: hue 2/3 -> bin 5
    assert f[0, 28] == pytest.approx(1.0)  # LBP: no brighter neighbour anywhere


def test_orientation_histogram_distinguishes_stripes():
    tiles = np.stack([stripes(0.0), stripes(np.pi / 2)])
    f = colour_texture_features(tiles)
    h0, h1 = f[0, 18:26], f[1, 18:26]
    assert h0.sum() == pytest.approx(1, abs=1e-5) and h1.sum() == pytest.approx(1, abs=1e-5)
    assert int(np.argmax(h0)) == 0  # vertical stripes: gradient along x (angle 0)
    assert int(np.argmax(h1)) == 4  # horizontal stripes: gradient along y (angle pi/2)
    assert f[0, 37] > f[0, 38] and f[1, 38] > f[1, 37]  # |d/dx| vs |d/dy| energy


def test_vectorised_equals_per_tile_and_chunking():
    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 256, (50, 12, 12, 3), dtype=np.uint8)
    full = colour_texture_features(tiles)
    one = np.concatenate([colour_texture_features(tiles[i : i + 1]) for i in range(50)])
    np.testing.assert_allclose(full, one, rtol=1e-5, atol=1e-6)
    assert np.isfinite(full).all()


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="N x t x t x 3"):
        colour_texture_features(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        colour_texture_features(np.zeros((1, 8, 8, 3), np.float32))


def test_images_to_bags_coords_and_errors():
    rng = np.random.default_rng(1)
    ims = ImageSet([rng.integers(0, 256, (16, 24, 3), dtype=np.uint8),
                    rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)])
    bags = images_to_bags(ims, TileBagger(8))
    assert bags.sizes.tolist() == [6, 1] and bags.n_features == N_COLOUR_TEXTURE_FEATURES
    np.testing.assert_array_equal(bags.instance_meta["coords"][:6],
                                  [[0, 0], [0, 8], [0, 16], [8, 0], [8, 8], [8, 16]])
    tiles, _ = TileBagger(8)(ims[0])
    np.testing.assert_allclose(bags[0], colour_texture_features(tiles))
    custom = images_to_bags(ims, TileBagger(8), featurize=lambda t: t.reshape(len(t), -1)[:, :5])
    assert custom.n_features == 5
    bad = ImageSet([np.zeros((4, 4, 3), np.float64)])
    with pytest.raises(ValueError, match=r"<array 0>: .*uint8"):
        images_to_bags(bad, TileBagger(2))
    with pytest.raises(ValueError, match="one row per tile"):
        images_to_bags(ims, TileBagger(8), featurize=lambda t: np.ones((1, 3)))


def test_import_is_torch_free():
    import subprocess
    import sys

    code = ("import sys, mimlkit.datasets, mimlkit.features.handcrafted; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
