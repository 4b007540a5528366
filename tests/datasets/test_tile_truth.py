"""Tile-level truth from segmentations (``load_dataset(path, tile=N, tile_truth=True)``).

Small synthetic images + MSRC-v2-style ``_GT.mat`` files written in ``tmp_path``; the test
on the real MSRC v2 data (first 10 images) skips when ``/work/shared/data/msrc_v2`` is
absent.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from mimlkit.datasets import TileBagger, extract_tile_truth, load_dataset
from mimlkit.datasets.tile_truth import tile_label_shares

LABELS = ["building", "grass", "tree"]
MSRC = Path("/work/shared/data/msrc_v2")


def _write(root: Path, items, y=None) -> Path:
    """items: (stem, newseg, newlabels); random images of the segmentation's size."""
    (root / "images_png").mkdir(parents=True, exist_ok=True)
    (root / "newsegmentations_mats").mkdir(exist_ok=True)
    rows = ["image," + ",".join(LABELS)]
    rng = np.random.default_rng(0)
    for j, (stem, seg, labs) in enumerate(items):
        img = rng.integers(0, 256, (*seg.shape, 3), dtype=np.uint8)
        Image.fromarray(img).save(root / "images_png" / f"{stem}.png")
        savemat(root / "newsegmentations_mats" / f"{stem}_GT.mat",
                {"newseg": seg.astype(np.uint8), "newlabels": np.array([labs], np.uint8)})
        flags = y[j] if y is not None else [int(k + 1 in labs) for k in range(len(LABELS))]
        rows.append(f"{stem}.png," + ",".join(map(str, flags)))
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def _mixed():
    """64 x 64, tile 32 -> 4 tiles (row-major):
    (0,0): rows 0..9 class 1 (building) = 31 %, rows 10..31 class 2 (grass) = 69 %;
    (0,32): left half class 2, right half class 3 (tree): 50 / 50;
    (32,0): 8 x 32 rows of class 3 (25 %), rest void -> 100 % tree of the labelled pixels;
    (32,32): all void.
    Segment 4 (no entry in newlabels) is void."""
    seg = np.full((64, 64), 4, dtype=np.int64)
    seg[0:10, 0:32] = 1
    seg[10:32, 0:32] = 2
    seg[0:32, 32:48] = 2
    seg[0:32, 48:64] = 3
    seg[32:40, 0:32] = 3
    return seg, [1, 2, 3]


def _truth(ds):
    return {tuple(c): tuple(np.flatnonzero(r)) for c, r in
            zip(ds.bags.instance_meta["coords"].tolist(), ds.instance_labels)}


def test_share_threshold_void_and_two_labels(tmp_path):
    seg, labs = _mixed()
    root = _write(tmp_path, [("a", seg, labs)])
    ds = load_dataset(root, tile=32, tile_truth=True)
    assert ds.instance_labels.dtype == np.int8
    assert ds.instance_labels.shape == (4, 3)
    assert _truth(ds) == {(0, 0): (0, 1),      # 31 % building + 69 % grass, share 0.25
                          (0, 32): (1, 2),     # a tile of two labels (50 / 50)
                          (32, 0): (2,),       # void excluded: 100 % of labelled pixels
                          (32, 32): ()}        # all void: no label
    assert ds.meta["tile_truth"]["share"] == 0.25
    assert ds.meta["tile_truth"]["labels_outside_bag"] == 0
    t = _truth(load_dataset(root, tile=32, tile_truth=True, tile_truth_share=0.35))
    assert t[(0, 0)] == (1,) and t[(0, 32)] == (1, 2)
    t = _truth(load_dataset(root, tile=32, tile_truth=True, tile_truth_share=0.6))
    assert t[(0, 0)] == (1,) and t[(0, 32)] == () and t[(32, 0)] == (2,)
    t = _truth(load_dataset(root, tile=32, tile_truth=True, tile_truth_share=1.0))
    assert t == {(0, 0): (), (0, 32): (), (32, 0): (2,), (32, 32): ()}


def test_shares_exact():
    seg, labs = _mixed()
    classes = np.array([0, *labs, 0])
    w = TileBagger(32).windows(64, 64, np.array([[0, 0], [0, 32], [32, 0], [32, 32]]))
    s = tile_label_shares(seg, classes, w, 3)
    np.testing.assert_allclose(s, [[320 / 1024, 704 / 1024, 0], [0, 0.5, 0.5], [0, 0, 1],
                                   [0, 0, 0]])


def test_default_off_and_old_behaviour(tmp_path):
    seg, labs = _mixed()
    root = _write(tmp_path, [("a", seg, labs)])
    ds = load_dataset(root, tile=32)
    assert ds.instance_labels is None and "tile_truth" not in ds.meta
    ds2 = load_dataset(root, tile=32, tile_truth=True)
    np.testing.assert_array_equal(ds.bags.instances, ds2.bags.instances)
    np.testing.assert_array_equal(ds.bags.instance_meta["coords"],
                                  ds2.bags.instance_meta["coords"])


def _blocks(h, w, cell, seed=0):
    """Segmentation of cell x cell blocks with random classes 1..3 or void (segment 4)."""
    rng = np.random.default_rng(seed)
    grid = rng.integers(1, 5, size=(-(-h // cell), -(-w // cell)))
    return np.kron(grid, np.ones((cell, cell), dtype=np.int64))[:h, :w]


@pytest.mark.parametrize("tile,stride,border", [(16, None, "drop"), (32, None, "drop"),
                                                (64, None, "drop"), (16, 8, "drop"),
                                                (32, None, "pad"), (32, None, "fit")])
def test_coords_align_with_truth(tmp_path, tile, stride, border):
    """Every tile's truth = the classes of the pixels under its coords window."""
    h, w = 100, 136
    seg = _blocks(h, w, 8, seed=tile)
    root = _write(tmp_path, [("a", seg, [1, 2, 3])])
    ds = load_dataset(root, tile=tile, stride=stride, border=border, tile_truth=True)
    coords = ds.bags.instance_meta["coords"]
    assert len(coords) == ds.bags.n_instances == len(ds.instance_labels)
    lab = np.array([0, 1, 2, 3, 0])[seg] - 1
    scale = (1.0, 1.0)
    if border == "fit":
        ny, nx = TileBagger(tile, border="fit").grid_shape(h, w)
        scale = (h / (ny * tile), w / (nx * tile))
    for (y, x), row in zip(coords, ds.instance_labels):
        y1 = min(h, round(y + tile * scale[0]))
        x1 = min(w, round(x + tile * scale[1]))
        win = lab[y:y1, x:x1]
        win = win[win >= 0]
        expect = np.zeros(3, np.int8)
        if win.size:
            share = np.bincount(win, minlength=3) / win.size
            expect = (share >= 0.25).astype(np.int8)
        if border == "fit":  # window ends are rounded through the resize: 1 px tolerance
            assert np.abs(row.astype(int) - expect).sum() <= 1
        else:
            np.testing.assert_array_equal(row, expect)


def test_tile_sizes_and_single_label_blocks(tmp_path):
    """Blocks aligned with the 32 grid: at tile=16 and 32 every tile is one pure block."""
    seg = _blocks(96, 128, 32, seed=3)
    root = _write(tmp_path, [("a", seg, [1, 2, 3])])
    lab = np.array([0, 1, 2, 3, 0])[seg] - 1
    for tile in (16, 32):
        ds = load_dataset(root, tile=tile, tile_truth=True)
        for (y, x), row in zip(ds.bags.instance_meta["coords"], ds.instance_labels):
            c = lab[y, x]
            assert row.tolist() == ([int(k == c) for k in range(3)])
    ds64 = load_dataset(root, tile=64, tile_truth=True)
    assert ds64.bags.n_instances == 2 and ds64.instance_labels.sum(axis=1).min() >= 1


def test_foreground_filter_keeps_alignment(tmp_path):
    seg, labs = _mixed()
    root = _write(tmp_path, [("a", seg, labs)])
    def top_half(im):
        return np.broadcast_to(np.arange(im.shape[0])[:, None] < 32, im.shape[:2])

    ds = load_dataset(root, tile=32, foreground=top_half, min_foreground=0.5, tile_truth=True)
    assert _truth(ds) == {(0, 0): (0, 1), (0, 32): (1, 2)}


def test_several_images_and_bag_consistency(tmp_path):
    seg, labs = _mixed()
    seg2 = np.full((48, 80), 2, dtype=np.int64)
    seg2[:, 48:] = 1  # segment 1 = class 3 (tree), segment 2 = class 1 (building)
    root = _write(tmp_path, [("a", seg, labs), ("b", seg2, [3, 1])])
    ds = load_dataset(root, tile=16, tile_truth=True)
    assert ds.bags.sizes.tolist() == [16, 15]
    bag = np.repeat(np.arange(2), ds.bags.sizes)
    assert ((ds.instance_labels == 1) <= (ds.Y[bag] == 1)).all()
    b = ds.instance_labels[16:]
    cx = ds.bags.instance_meta["coords"][16:, 1]
    assert (b[cx < 48] == [1, 0, 0]).all() and (b[cx >= 48] == [0, 0, 1]).all()
    sub = ds.subset([1])
    np.testing.assert_array_equal(sub.instance_labels, b)


def test_disagreeing_label_row_warns(tmp_path):
    seg, labs = _mixed()
    root = _write(tmp_path, [("a", seg, labs)], y=[[0, 1, 1]])  # building missing
    with pytest.warns(UserWarning, match="not in their image's label row"):
        ds = load_dataset(root, tile=32, tile_truth=True)
    assert ds.meta["tile_truth"]["labels_outside_bag"] == 1


def test_errors(tmp_path):
    seg, labs = _mixed()
    root = _write(tmp_path, [("a", seg, labs)])
    with pytest.raises(ValueError, match="needs tile="):
        load_dataset(root, tile_truth=True)
    with pytest.raises(ValueError, match="drop labels="):
        load_dataset(root, tile=32, tile_truth=True, labels=["grass"])
    for bad in (0, 1.5, -0.1, True):
        with pytest.raises(ValueError, match="tile_truth_share"):
            load_dataset(root, tile=32, tile_truth=True, tile_truth_share=bad)
    with pytest.raises(ValueError, match="segmentation folder not found"):
        load_dataset(root, tile=32, tile_truth=True, segmentation_dir=tmp_path / "nope")
    with pytest.raises(ValueError, match="tile bags"):
        extract_tile_truth(load_dataset(root))
    with pytest.raises(ValueError, match="own tile=16"):
        load_dataset("synthetic", tile=32, tile_truth=True)
    assert load_dataset("synthetic", tile_truth=True).instance_labels is not None
    # class id beyond the label columns, and a size mismatch: errors name the file
    savemat(root / "newsegmentations_mats" / "a_GT.mat",
            {"newseg": seg.astype(np.uint8), "newlabels": np.array([[1, 2, 7]], np.uint8)})
    with pytest.raises(ValueError, match=r"a_GT\.mat: class id 7"):
        load_dataset(root, tile=32, tile_truth=True)
    savemat(root / "newsegmentations_mats" / "a_GT.mat",
            {"newseg": seg[:60].astype(np.uint8), "newlabels": np.array([labs], np.uint8)})
    with pytest.raises(ValueError, match=r"a_GT\.mat: segmentation is 60 x 64"):
        load_dataset(root, tile=32, tile_truth=True)
    (root / "newsegmentations_mats" / "a_GT.mat").unlink()
    with pytest.raises(ValueError, match="a_GT.mat"):
        load_dataset(root, tile=32, tile_truth=True)


def test_cli_option_keys():
    from mimlkit.cli_models import parse_data_options

    assert parse_data_options(["tile=32", "tile_truth=true", "tile_truth_share=0.4"]) == {
        "tile": 32, "tile_truth": True, "tile_truth_share": 0.4}


@pytest.mark.skipif(not (MSRC / "labels.csv").is_file(), reason="MSRC v2 data not present")
def test_msrc_v2_first_images(tmp_path):
    lines = (MSRC / "labels.csv").read_text().splitlines()
    (tmp_path / "labels.csv").write_text("\n".join(lines[:11]) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # segment classes agree with labels.csv
        ds = load_dataset(tmp_path / "labels.csv", image_dir=MSRC / "images_png",
                          segmentation_dir=MSRC / "newsegmentations_mats", tile=64,
                          tile_truth=True)
    assert len(ds) == 10 and ds.Y.shape[1] == 23
    assert ds.instance_labels.shape == (ds.bags.n_instances, 23)
    bag = np.repeat(np.arange(10), ds.bags.sizes)
    assert ((ds.instance_labels == 1) <= (ds.Y[bag] == 1)).all()
    assert ds.instance_labels.any(axis=1).mean() > 0.7
    # every bag label with enough area shows up in some tile
    per_bag = np.maximum.reduceat(ds.instance_labels, ds.bags.offsets[:-1], axis=0)
    assert (per_bag <= (ds.Y == 1)).all() and per_bag.sum() >= 0.6 * (ds.Y == 1).sum()
    ds32 = load_dataset(tmp_path / "labels.csv", image_dir=MSRC / "images_png",
                        segmentation_dir=MSRC / "newsegmentations_mats", tile=32,
                        tile_truth=True)
    assert ds32.bags.n_instances > 3 * ds.bags.n_instances
    assert ds32.instance_labels.any(axis=1).mean() > 0.7
