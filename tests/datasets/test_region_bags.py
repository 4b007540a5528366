"""Region bags (``load_dataset(path, regions=True)``): one instance per ground-truth region.

Synthetic images + MSRC-v2-style segmentation .mat files written in ``tmp_path``; the test
on the real MSRC v2 data skips when ``/work/shared/data/msrc_v2`` is absent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from mimlkit.datasets import extract_region_features, load_dataset, load_image_csv
from mimlkit.datasets.regions import image_regions, read_segmentation
from mimlkit.features.handcrafted import colour_texture_features, region_colour_texture_features

LABELS = ["building", "grass", "tree"]
MSRC = Path("/work/shared/data/msrc_v2")


def _image(h=48, w=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _write(root: Path, items: list[tuple[str, np.ndarray, np.ndarray, list[int]]],
           y: list[list[int]] | None = None) -> Path:
    """items: (stem, image, newseg, newlabels); writes images_png/, the .mat files and
    labels.csv (labels from newlabels unless ``y``)."""
    (root / "images_png").mkdir(parents=True, exist_ok=True)
    (root / "newsegmentations_mats").mkdir(exist_ok=True)
    rows = ["image," + ",".join(LABELS)]
    for j, (stem, img, seg, labs) in enumerate(items):
        Image.fromarray(img).save(root / "images_png" / f"{stem}.png")
        savemat(root / "newsegmentations_mats" / f"{stem}_GT.mat",
                {"newseg": seg.astype(np.uint8),
                 "newlabels": np.array([labs], dtype=np.uint8)})
        flags = y[j] if y is not None else [int(k + 1 in labs) for k in range(len(LABELS))]
        rows.append(f"{stem}.png," + ",".join(map(str, flags)))
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def _scene():
    """48 x 64: segment 1 (class 2 = grass) = a block rows 0..7, cols 48..63 plus a separate
    square rows 16..31, cols 16..31 (regions come in raster order of their first pixel);
    segment 2 (class 1) = a 3 x 3 speck; segment 3 (class 3) = rows 40..47 (full width);
    segment 4 = void (no entry in newlabels) elsewhere."""
    seg = np.full((48, 64), 4, dtype=np.int64)
    seg[16:32, 16:32] = 1
    seg[0:8, 48:64] = 1
    seg[2:5, 2:5] = 2
    seg[40:48, :] = 3
    return seg, [2, 1, 3]


# ----------------------------------------------------------------------------- regions
def test_region_count_void_and_min_pixels(tmp_path):
    seg, labs = _scene()
    root = _write(tmp_path, [("a", _image(), seg, labs)])
    ds = load_dataset(root, regions=True, min_region_pixels=20)
    assert ds.bags is not None and len(ds) == 1
    # segment 1 -> 2 regions, speck (9 px) dropped, segment 3 -> 1 region, void excluded
    assert ds.bags.sizes.tolist() == [3]
    assert ds.bags.n_features == 40
    m = ds.bags.instance_meta
    assert m["segment_id"].tolist() == [1, 1, 3]
    assert m["class_id"].tolist() == [2, 2, 3]
    assert m["area"].tolist() == [128, 256, 512]
    ds2 = load_dataset(root, regions=True, min_region_pixels=5)
    assert ds2.bags.sizes.tolist() == [4]
    assert 2 in ds2.bags.instance_meta["segment_id"].tolist()
    assert ds2.meta["regions"]["min_pixels"] == 5


def test_metadata_bbox_centroid_and_instance_labels(tmp_path):
    seg, labs = _scene()
    root = _write(tmp_path, [("a", _image(), seg, labs)])
    ds = load_dataset(root, regions=True, min_region_pixels=20)
    m = ds.bags.instance_meta
    np.testing.assert_array_equal(m["bbox"], [[0, 48, 8, 64], [16, 16, 32, 32],
                                              [40, 0, 48, 64]])
    np.testing.assert_allclose(m["centroid"], [[3.5, 55.5], [23.5, 23.5], [43.5, 31.5]])
    assert "coords" not in m  # regions are no tile grid
    # region classes (1-based label columns) agree with the bag labels -> instance labels
    np.testing.assert_array_equal(ds.instance_labels, [[0, 1, 0], [0, 1, 0], [0, 0, 1]])
    np.testing.assert_array_equal(ds.Y, [[1, 1, 1]])  # the dropped speck's class stays


def test_instance_labels_skipped_when_classes_disagree_with_bag_labels(tmp_path):
    seg, labs = _scene()
    root = _write(tmp_path, [("a", _image(), seg, labs)], y=[[1, 0, 0]])
    ds = load_dataset(root, regions=True, min_region_pixels=20)
    assert ds.instance_labels is None


def test_connectivity_4_vs_8():
    seg = np.zeros((6, 6), dtype=np.int64)
    seg[0:2, 0:2] = 1
    seg[2:4, 2:4] = 1  # touches the first block diagonally only
    classes = np.array([0, 5])
    r8, m8 = image_regions(seg, classes, min_pixels=1, connectivity=8)
    r4, m4 = image_regions(seg, classes, min_pixels=1, connectivity=4)
    assert len(m8["area"]) == 1 and len(m4["area"]) == 2
    assert (r8 == -1).sum() == 36 - 8 and m4["area"].tolist() == [4, 4]
    with pytest.raises(ValueError, match="connectivity"):
        image_regions(seg, classes, connectivity=6)


def test_all_regions_tiny_keeps_the_largest(tmp_path):
    seg = np.full((20, 20), 3, dtype=np.int64)  # 3 = void
    seg[0:3, 0:3] = 1
    seg[10:14, 10:14] = 2
    root = _write(tmp_path, [("a", _image(20, 20), seg, [1, 2])])
    ds = load_dataset(root, regions=True, min_region_pixels=1000)
    assert ds.bags.sizes.tolist() == [1]
    assert ds.bags.instance_meta["area"].tolist() == [16]


def test_class_zero_and_unlisted_ids_are_void():
    seg = np.array([[0, 1, 1], [2, 2, 3], [4, 4, 4]])
    seg_class = np.array([0, 7, 0, 9, 0])  # id 0, class-0 segment 2 and id 4: void
    regions, meta = image_regions(seg, seg_class, min_pixels=1)
    assert meta["segment_id"].tolist() == [1, 3]
    np.testing.assert_array_equal(regions, [[-1, 0, 0], [-1, -1, 1], [-1, -1, -1]])


# ----------------------------------------------------------------------------- descriptor
def test_rectangle_region_equals_tile_descriptor(tmp_path):
    seg, labs = _scene()
    img = _image(seed=3)
    root = _write(tmp_path, [("a", img, seg, labs)])
    reg = load_dataset(root, regions=True, min_region_pixels=20)
    til = load_dataset(root, tile=16)
    coords = til.bags.instance_meta["coords"].tolist()
    tile_row = til.bags.instances[coords.index([16, 16])]
    np.testing.assert_allclose(reg.bags.instances[1], tile_row, rtol=1e-5, atol=1e-6)
    # the full-width band rows 40..47 is an 8 x 64 rectangle: same as that patch's descriptor
    band = colour_texture_features(img[None, 40:48, :])[0]
    np.testing.assert_allclose(reg.bags.instances[2], band, rtol=1e-5, atol=1e-6)


def test_masked_descriptor_ignores_pixels_outside_the_region():
    img = _image(30, 30, seed=1)
    lab = np.full((30, 30), -1)
    lab[5:20, 5:12] = 0
    lab[12:25, 10:28] = np.where(lab[12:25, 10:28] == 0, 0, 1)  # L-shaped neighbour
    f = region_colour_texture_features(img, lab)
    other = img.copy()
    other[lab != 0] = 255 - other[lab != 0]  # change every pixel outside region 0
    g = region_colour_texture_features(other, lab)
    np.testing.assert_allclose(f[0], g[0], rtol=1e-6, atol=1e-7)
    assert not np.allclose(f[1], g[1])
    assert f.shape == (2, 40) and f.dtype == np.float32
    np.testing.assert_allclose(f[:, 28:37].sum(axis=1), 1.0, atol=1e-6)  # LBP histogram
    np.testing.assert_allclose(f[:, 18:26].sum(axis=1), 1.0, atol=1e-6)  # orientations


def test_masked_descriptor_validation():
    img = _image(8, 8)
    with pytest.raises(ValueError, match="shape"):
        region_colour_texture_features(img, np.zeros((8, 9), int))
    with pytest.raises(ValueError, match="no pixel"):
        region_colour_texture_features(img, np.zeros((8, 8), int), n_regions=2)
    with pytest.raises(ValueError, match="integer"):
        region_colour_texture_features(img, np.zeros((8, 8)))
    thin = np.full((8, 8), -1)
    thin[3, :] = 0  # one-pixel line: no interior pixel -> LBP/Laplacian zero, like a 1-row tile
    np.testing.assert_allclose(region_colour_texture_features(img, thin)[0],
                               colour_texture_features(img[None, 3:4, :])[0],
                               rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- errors
def test_missing_segmentation_file_is_named(tmp_path):
    seg, labs = _scene()
    root = _write(tmp_path, [("a", _image(), seg, labs), ("b", _image(seed=2), seg, labs)])
    (root / "newsegmentations_mats" / "b_GT.mat").unlink()
    with pytest.raises(ValueError, match=r"b_GT\.mat: segmentation file not found"):
        load_dataset(root, regions=True)


def test_unreadable_segmentation_file_is_named(tmp_path):
    seg, labs = _scene()
    root = _write(tmp_path, [("a", _image(), seg, labs)])
    (root / "newsegmentations_mats" / "a_GT.mat").write_bytes(b"not a mat file at all" * 20)
    with pytest.raises(ValueError, match=r"a_GT\.mat: cannot read segmentation file"):
        load_dataset(root, regions=True)


def test_wrong_variables_and_size_mismatch(tmp_path):
    seg, labs = _scene()
    root = _write(tmp_path, [("a", _image(), seg, labs)])
    mat = root / "newsegmentations_mats" / "a_GT.mat"
    savemat(mat, {"seg": seg.astype(np.uint8)})
    with pytest.raises(ValueError, match=r"a_GT\.mat: no 'newseg' variable \(variables: seg\)"):
        load_dataset(root, regions=True)
    savemat(mat, {"newseg": seg[:40].astype(np.uint8), "newlabels": np.array([labs])})
    with pytest.raises(ValueError, match=r"a_GT\.mat: segmentation is 40 x 64, image .*a\.png "
                                         r"is 48 x 64"):
        load_dataset(root, regions=True)
    savemat(mat, {"newseg": np.full((48, 64), 9, np.uint8), "newlabels": np.array([labs])})
    with pytest.raises(ValueError, match=r"a_GT\.mat: no labelled pixel"):
        load_dataset(root, regions=True)
    with pytest.raises(ValueError, match="not found"):
        read_segmentation(tmp_path / "nope.mat")


def test_option_errors(tmp_path):
    seg, labs = _scene()
    root = _write(tmp_path, [("a", _image(), seg, labs)])
    with pytest.raises(ValueError, match="exclude each other"):
        load_dataset(root, tile=16, regions=True)
    with pytest.raises(ValueError, match="built-in"):
        load_dataset("synthetic", regions=True)
    with pytest.raises(ValueError, match="min_region_pixels"):
        load_dataset(root, regions=True, min_region_pixels=0)
    (root / "newsegmentations_mats").rename(root / "elsewhere")
    with pytest.raises(ValueError, match="no segmentation folder"):
        load_dataset(root, regions=True)
    ds = load_dataset(root, regions=True, segmentation_dir=root / "elsewhere")
    assert ds.bags.sizes.tolist() == [3]
    with pytest.raises(ValueError, match="segmentation folder not found"):
        load_dataset(root, regions=True, segmentation_dir=root / "missing")


def test_cli_reader_options_accept_regions():
    from mimlkit.cli_models import data_option_keys, parse_data_options

    keys = data_option_keys()
    assert {"regions", "min_region_pixels", "segmentation_dir"} <= set(keys)
    opts = parse_data_options(["regions=true", "min_region_pixels=50",
                               "segmentation-dir=/data/123"])
    assert opts == {"regions": True, "min_region_pixels": 50, "segmentation_dir": "/data/123"}


def test_npz_round_trip_keeps_region_metadata(tmp_path):
    from mimlkit.datasets import load_npz, save_npz

    seg, labs = _scene()
    root = _write(tmp_path / "d", [("a", _image(), seg, labs)])
    ds = load_dataset(root, regions=True, min_region_pixels=20)
    save_npz(ds, tmp_path / "r.npz")
    back = load_npz(tmp_path / "r.npz")
    for k in ("bbox", "centroid", "area", "segment_id", "class_id"):
        np.testing.assert_array_equal(back.bags.instance_meta[k], ds.bags.instance_meta[k])


# ----------------------------------------------------------------------------- real data
@pytest.mark.skipif(not (MSRC / "newsegmentations_mats").is_dir(),
                    reason="MSRC v2 data not available")
def test_real_msrc_v2_first_images():
    full = load_image_csv(MSRC / "labels.csv")
    ds = extract_region_features(full.subset(np.arange(12)), min_pixels=100)
    assert len(ds) == 12 and ds.bags.n_features == 40
    assert ds.bags.sizes.min() >= 1
    assert np.isfinite(ds.bags.instances).all()
    # every region's class is one of its image's labels (MSRC v2 class order = CSV columns)
    assert ds.instance_labels is not None
    bag = np.repeat(np.arange(len(ds)), ds.bags.sizes)
    assert (ds.Y[bag, ds.bags.instance_meta["class_id"] - 1] == 1).all()
