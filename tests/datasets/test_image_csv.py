"""Image folder + label CSV reader: both CSV layouts, groups, lazy decoding, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mimlkit.datasets import ImageSet, load_dataset, load_image_csv


def make_folder(tmp: Path, n: int = 3, folder: str = "images") -> Path:
    d = tmp / folder
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        pixels = rng.integers(0, 256, (20 + i, 30, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(d / f"im{i}.png")
    return d


def test_columns_layout_lazy(tmp_path):
    make_folder(tmp_path)
    csv = tmp_path / "labels.csv"
    csv.write_text("image,cat,dog,patient\nim0.png,1,0,p1\nim1.png,0,1,p1\nim2.png,1,,p2\n")
    ds = load_image_csv(csv, group_column="patient")
    assert ds.bags is None and isinstance(ds.images, ImageSet)
    assert ds.label_names == ["cat", "dog"]
    np.testing.assert_array_equal(ds.Y, [[1, 0], [0, 1], [1, -1]])  # empty cell -> unobserved
    np.testing.assert_array_equal(ds.groups, ["p1", "p1", "p2"])
    img = ds.images[1]
    assert img.shape == (21, 30, 3) and img.dtype == np.uint8
    assert ds.meta["label_layout"] == "columns"
    sub = load_image_csv(csv, labels=["dog"], group_column="patient")
    assert sub.label_names == ["dog"]


def test_names_layout_chestxray_style(tmp_path):
    make_folder(tmp_path, folder="imgs")
    csv = tmp_path / "Data_Entry.csv"
    csv.write_text("Image Index,Finding Labels,Patient ID\n"
                   "im0.png,Effusion|Infiltration,7\nim1.png,No Finding,7\nim2.png,Mass,9\n")
    ds = load_image_csv(csv, label_column="Finding Labels", group_column="Patient ID")
    assert ds.label_names == ["Effusion", "Infiltration", "Mass"]
    np.testing.assert_array_equal(ds.Y, [[1, 1, 0], [0, 0, 0], [0, 0, 1]])
    assert ds.images.sources[0].endswith("imgs/im0.png")
    vocab = ["Mass", "Effusion", "Infiltration", "Nodule"]
    ds2 = load_dataset(csv, label_column="Finding Labels", labels=vocab)
    assert ds2.label_names == vocab
    np.testing.assert_array_equal(ds2.Y[0], [0, 1, 1, 0])


def test_unknown_label_name_names_file_and_line(tmp_path):
    make_folder(tmp_path)
    csv = tmp_path / "labels.csv"
    csv.write_text("image,findings\nim0.png,cat\nim1.png,cat;dog\nim2.png,cat;zebra\n")
    with pytest.raises(ValueError, match=r"labels\.csv, line 4: unknown label name 'zebra'"):
        load_image_csv(csv, label_column="findings", separator=";", labels=["cat", "dog"])
    with pytest.raises(ValueError, match=r"labels\.csv, line 1: unknown label name 'cow'"):
        load_image_csv(tmp_path / "labels.csv", labels=["cow"])


def test_missing_image_names_row_and_path(tmp_path):
    make_folder(tmp_path, n=2)
    csv = tmp_path / "labels.csv"
    csv.write_text("image,cat\nim0.png,1\nim1.png,0\nnope.png,1\n")
    with pytest.raises(ValueError, match=r"labels\.csv, line 4: image 'nope\.png' not found at "
                                         r".*images/nope\.png"):
        load_image_csv(csv)


def test_unreadable_image_names_file(tmp_path):
    d = make_folder(tmp_path, n=1)
    (d / "bad.png").write_bytes(b"this is not a png")
    csv = tmp_path / "labels.csv"
    csv.write_text("image,cat\nim0.png,1\nbad.png,0\n")
    ds = load_image_csv(csv)  # existence is checked eagerly, decoding is lazy
    assert ds.images[0].shape == (20, 30, 3)
    with pytest.raises(ValueError, match=r"bad\.png: cannot read image"):
        ds.images[1]


def test_bad_cells_and_short_rows(tmp_path):
    make_folder(tmp_path, n=2)
    csv = tmp_path / "labels.csv"
    csv.write_text("image,cat\nim0.png,1\nim1.png,maybe\n")
    with pytest.raises(ValueError, match=r"line 3: label 'cat' has value 'maybe'"):
        load_image_csv(csv)
    csv.write_text("image,cat,dog\nim0.png,1,0\nim1.png,1\n")
    with pytest.raises(ValueError, match=r"labels\.csv, line 3: 2 fields, the header has 3"):
        load_image_csv(csv)
    csv.write_text("image,cat\nim0.png,1\nim0.png,0\n")
    with pytest.raises(ValueError, match=r"line 3: image 'im0\.png' is listed twice"):
        load_image_csv(csv)


def test_no_image_folder(tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("image,cat\nim0.png,1\n")
    with pytest.raises(ValueError, match=r"labels\.csv: no image folder"):
        load_image_csv(csv)


def test_directory_dispatch_and_tiling(tmp_path):
    make_folder(tmp_path)
    (tmp_path / "labels.csv").write_text("image,cat\nim0.png,1\nim1.png,0\nim2.png,1\n")
    ds = load_dataset(tmp_path, tile=8)
    assert ds.bags is not None and len(ds.bags) == 3
    assert ds.bags.instance_meta["coords"].shape == (ds.bags.n_instances, 2)
    assert ds.bags.sizes[0] == (20 // 8) * (30 // 8)  # drop border
    assert ds.meta["tiler"]["tile_size"] == 8


def test_msrc(data_root):
    ds = load_dataset(data_root / "msrc_v2")
    s = ds.summary()
    assert (s["n_bags"], s["n_labels"]) == (591, 23)
    assert s["label_counts"][:5] == [150, 242, 144, 45, 3]
    assert round(s["cardinality"], 3) == 2.607
    np.testing.assert_array_equal(ds.Y, np.load(data_root / "msrc_v2" / "labels.npy"))
    assert ds.images[0].shape == (213, 320, 3)
