"""Whole-slide reader (``mimlkit.datasets.wsi``) on small pyramidal TIFFs written here."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tiffslide")
tifffile = pytest.importorskip("tifffile")

from mimlkit.datasets.wsi import (  # noqa: E402
    iter_slide_tiles,
    load_slides,
    plan_tiles,
    tile_slide,
)

# level-0 tissue rectangle: rows 256..768, columns 512..1024 of a 1024 x 1024 slide
TISSUE = (256, 768, 512, 1024)


def _slide_image(size: int = 1024, colour=(190, 60, 150), box=TISSUE, seed: int = 0
                 ) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.full((size, size, 3), 255, dtype=np.uint8)
    y0, y1, x0, x1 = box
    patch = np.array(colour, dtype=np.int16) + rng.integers(-25, 25, (y1 - y0, x1 - x0, 1))
    img[y0:y1, x0:x1] = np.clip(patch, 0, 255).astype(np.uint8)
    return img


def _write_slide(path: Path, img: np.ndarray, levels: int = 3, mpp: float | None = 0.5
                 ) -> Path:
    """Tiled pyramidal TIFF: level 0 + (levels - 1) reduced SubIFDs, mpp in the tags."""
    def res(k):
        if mpp is None:
            return {}
        return {"resolution": (1e4 / (mpp * 2 ** k), 1e4 / (mpp * 2 ** k)),
                "resolutionunit": "CENTIMETER"}

    with tifffile.TiffWriter(str(path)) as tw:
        tw.write(img, tile=(128, 128), photometric="rgb", subifds=levels - 1, **res(0))
        for k in range(1, levels):
            tw.write(img[:: 2 ** k, :: 2 ** k], tile=(64, 64), photometric="rgb",
                     subfiletype=1, **res(k))
    return path


@pytest.fixture(scope="module")
def slide(tmp_path_factory) -> tuple[Path, np.ndarray]:
    img = _slide_image()
    return _write_slide(tmp_path_factory.mktemp("wsi") / "s.tif", img), img


def _tissue_corners(step: int) -> set[tuple[int, int]]:
    y0, y1, x0, x1 = TISSUE
    return {(y, x) for y in range(y0, y1, step) for x in range(x0, x1, step)}


def test_level0_tiles_skip_background_and_match_pixels(slide):
    path, img = slide
    st = tile_slide(path, tile_size=256, level=0)
    assert st.level == 0 and st.tiles.shape[1:] == (256, 256, 3)
    assert {tuple(c) for c in st.coords.tolist()} == _tissue_corners(256)  # 4 of 16
    for t, (y, x) in zip(st.tiles, st.coords):
        np.testing.assert_array_equal(t, img[y : y + 256, x : x + 256])
    assert (st.tissue >= 0.5).all()
    everything = plan_tiles(path, tile_size=256, level=0, min_tissue=0.0)
    assert len(everything) == 16


def test_level1_coords_are_level0_and_content_matches(slide):
    path, img = slide
    st = tile_slide(path, tile_size=128, level=1)
    assert st.level == 1 and st.downsample == 2.0 and st.mpp == pytest.approx(1.0)
    assert {tuple(c) for c in st.coords.tolist()} == _tissue_corners(256)
    low = img[::2, ::2]
    for t, (y, x) in zip(st.tiles, st.coords):
        np.testing.assert_array_equal(t, low[y // 2 : y // 2 + 128, x // 2 : x // 2 + 128])


def test_mpp_selects_nearest_level(slide):
    path, _ = slide
    assert plan_tiles(path, 64, mpp=0.45).level == 0
    assert plan_tiles(path, 64, mpp=1.1).level == 1
    assert plan_tiles(path, 64, mpp=8.0).level == 2


def test_batches_bound_memory_and_concatenate(slide):
    path, _ = slide
    batches = list(iter_slide_tiles(path, tile_size=128, level=0, batch_size=5))
    assert [len(b) for b in batches] == [5, 5, 5, 1]  # 16 tissue tiles of 128
    whole = tile_slide(path, tile_size=128, level=0)
    np.testing.assert_array_equal(np.concatenate([b.tiles for b in batches]), whole.tiles)
    np.testing.assert_array_equal(np.concatenate([b.coords for b in batches]), whole.coords)


def test_blank_slide_keeps_one_tile(tmp_path):
    path = _write_slide(tmp_path / "blank.tif", np.full((512, 512, 3), 255, np.uint8), 2)
    assert len(plan_tiles(path, 128, level=0)) == 1


def test_errors_name_the_file(slide, tmp_path):
    path, img = slide
    no_mpp = _write_slide(tmp_path / "nompp.tif", img[:512, :512], levels=2, mpp=None)
    with pytest.raises(ValueError, match=r"nompp\.tif: mpp=0\.5 requested.*no microns"):
        plan_tiles(no_mpp, 64, mpp=0.5)
    with pytest.raises(ValueError, match=r"s\.tif: level=5 out of range"):
        plan_tiles(path, 64, level=5)
    bad = tmp_path / "broken.svs"
    bad.write_bytes(b"not a tiff at all")
    with pytest.raises(ValueError, match=r"broken\.svs: cannot open as a slide"):
        tile_slide(bad)
    with pytest.raises(ValueError, match=r"missing\.svs: no such slide"):
        tile_slide(tmp_path / "missing.svs")


# ----------------------------------------------------------------------------- datasets
COLOURS = {"red": (200, 40, 40), "blue": (40, 60, 200)}


@pytest.fixture(scope="module")
def slide_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("slides")
    rows = []
    for i, labs in enumerate([("red",), ("blue",), ("red", "blue"), ("red",), ("blue",),
                              ("red", "blue")]):
        img = _slide_image(256, COLOURS[labs[0]], (64, 192, 0, 128), seed=i)
        if len(labs) == 2:
            img[64:192, 128:256] = _slide_image(256, COLOURS[labs[1]], (64, 192, 128, 256),
                                                seed=i)[64:192, 128:256]
        _write_slide(folder / f"slide{i}.tif", img, levels=2)
        rows.append([f"slide{i}.tif", int("red" in labs), int("blue" in labs)])
    with (folder / "labels.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "red", "blue"])
        w.writerows(rows)
    return folder


def test_load_slides_dataset(slide_folder):
    from mimlkit.datasets import load_dataset

    ds = load_slides(slide_folder, tile_size=64, level=0)
    assert len(ds) == 6 and ds.label_names == ["red", "blue"]
    assert ds.bags.instances.shape[1] == 40
    assert ds.meta["bag_ids"][0] == "slide0.tif" and ds.meta["tile_size"] == 64.0
    c = ds.bags.instance_meta["coords"]
    assert c.shape == (ds.bags.n_instances, 2) and (ds.bags.instance_meta["level"] == 0).all()
    o = ds.bags.offsets
    assert {tuple(x) for x in c[o[0] : o[1]].tolist()} == {(64, 0), (64, 64), (128, 0),
                                                           (128, 64)}
    assert o[3] - o[2] == 8  # two labelled blobs -> 8 tissue tiles
    via = load_dataset(slide_folder, tile=32, level=1)  # folder of slides + labels.csv
    assert via.meta["format"] == "wsi" and via.meta["tile_size"] == 64.0
    assert (via.bags.instance_meta["level"] == 1).all()
    lst = load_slides([slide_folder / "slide3.tif", slide_folder / "slide1.tif"],
                      slide_folder / "labels.csv", tile_size=64, mpp=0.5)
    assert lst.meta["bag_ids"] == ["slide3.tif", "slide1.tif"]
    assert lst.Y.tolist() == [[1, 0], [0, 1]]


def test_cli_fit_predict_explain(slide_folder, tmp_path):
    from typer.testing import CliRunner

    from mimlkit.cli import app

    def run(*args):
        r = CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        return r

    model, pred, exp = tmp_path / "model", tmp_path / "pred.csv", tmp_path / "inst.csv"
    run("fit", "--data", slide_folder, "-o", "tile=64", "-l", "mimlfast", "-p", "n_epochs=3",
        "--seed", 0, "--out", model)
    run("predict", "--model", model, "--data", slide_folder, "-o", "tile=64", "--out", pred,
        "--explain", exp)
    rows = list(csv.reader(pred.open()))
    assert len(rows) == 7 and rows[1][0] == "slide0.tif"
    inst = list(csv.reader(exp.open()))
    assert len(inst) > 6 and any("slide2.tif" in r for r in inst[1:])
