"""TileBagger: border policies, stride, coords, foreground filter, validation."""

from __future__ import annotations

import numpy as np
import pytest

from mimlkit.datasets import TileBagger


def img(h=10, w=13, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_drop_tiles_match_pixels_and_coords():
    im = img()
    tiles, coords = TileBagger(4)(im)
    assert tiles.shape == (2 * 3, 4, 4, 3) and tiles.dtype == np.uint8
    assert coords.dtype == np.int64
    np.testing.assert_array_equal(coords, [[0, 0], [0, 4], [0, 8], [4, 0], [4, 4], [4, 8]])
    for t, (y, x) in zip(tiles, coords):
        np.testing.assert_array_equal(t, im[y : y + 4, x : x + 4])


def test_stride_overlap():
    im = img(9, 9)
    tiles, coords = TileBagger(5, stride=2)(im)
    assert len(tiles) == 3 * 3
    np.testing.assert_array_equal(np.unique(coords[:, 0]), [0, 2, 4])
    np.testing.assert_array_equal(tiles[4], im[2:7, 2:7])


def test_pad_covers_image_with_mean_or_zero():
    im = img()
    tiles, coords = TileBagger(4, border="pad")(im)
    assert len(tiles) == 3 * 4
    assert coords[:, 0].max() + 4 >= 10 and coords[:, 1].max() + 4 >= 13
    last = tiles[-1]  # rows 8..11, cols 12..15: image pixels at [0:2, 0:1]
    np.testing.assert_array_equal(last[:2, :1], im[8:10, 12:13])
    mean = im.reshape(-1, 3).mean(axis=0).round()
    np.testing.assert_array_equal(last[3, 3], mean)
    tz, _ = TileBagger(4, border="pad", fill=0)(im)
    assert (tz[-1][2:] == 0).all()


def test_fit_resizes_and_maps_coords_back():
    im = img(10, 13)
    tb = TileBagger(4, border="fit")
    tiles, coords = tb(im)
    ny, nx = tb.grid_shape(10, 13)
    # nearest grid: (10-4)/4 = 1.5 -> 2 steps (12 px), (13-4)/4 = 2.25 -> 2 steps (12 px)
    assert (ny, nx) == (3, 3) and len(tiles) == 9
    np.testing.assert_array_equal(coords[-1], [round(8 * 10 / 12), round(8 * 13 / 12)])
    flat = np.full((10, 13, 3), 77, np.uint8)
    assert (tb(flat)[0] == 77).all()  # resizing keeps a flat colour
    exact = img(12, 8)  # grid already fits: same as drop, no resampling
    np.testing.assert_array_equal(tb(exact)[0], TileBagger(4)(exact)[0])


def test_small_image_under_drop_is_padded_to_one_tile():
    tiles, coords = TileBagger(16)(img(5, 7))
    assert tiles.shape == (1, 16, 16, 3)
    np.testing.assert_array_equal(coords, [[0, 0]])


def test_foreground_threshold_and_callable():
    im = np.full((8, 8, 3), 255, np.uint8)
    im[4:, :4] = 30  # one dark (tissue) quadrant
    tiles, coords = TileBagger(4, foreground=0.8)(im)
    np.testing.assert_array_equal(coords, [[4, 0]])
    _, coords = TileBagger(4, foreground=lambda a: a[..., 0] > 100, min_foreground=0.9)(im)
    assert len(coords) == 3
    # nothing passes: the best tile is kept so the bag is never empty
    _, c = TileBagger(4, foreground=0.01)(im)
    assert len(c) == 1


def test_grey_and_validation():
    tiles, _ = TileBagger(4)(np.zeros((8, 8), np.uint8))
    assert tiles.shape == (4, 4, 4, 3)
    with pytest.raises(ValueError, match="tile_size"):
        TileBagger(0)
    with pytest.raises(ValueError, match="border"):
        TileBagger(4, border="wrap")
    with pytest.raises(ValueError, match="foreground"):
        TileBagger(4, foreground=2.0)
    with pytest.raises(ValueError, match="uint8"):
        TileBagger(4)(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="foreground callable returned shape"):
        TileBagger(4, foreground=lambda a: np.ones(3, bool))(img())
    assert TileBagger(4, stride=2).get_config()["stride"] == 2


def test_vectorised_speed():
    import time

    im = img(1024, 1024)
    t0 = time.perf_counter()
    tiles, _ = TileBagger(32, stride=16, border="pad")(im)
    assert len(tiles) == 63 * 63  # (1024 - 32) / 16 + 1 positions per axis
    assert time.perf_counter() - t0 < 2.0
