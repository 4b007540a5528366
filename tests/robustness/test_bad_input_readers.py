"""Bad input for every reader: MIML ARFF, Mulan ARFF (+ XML, dense/sparse), npz, image CSV.

Each case must give the correct result or a ``ValueError`` whose message names the file
(and the 1-based line / row where one exists). Property tests truncate or garble a valid file
at a random byte: the reader returns a prefix of the original data or a named error, never
an untyped exception.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mimlkit.datasets import (
    TileBagger,
    load_dataset,
    load_image_csv,
    load_miml_arff,
    load_mulan_arff,
    load_npz,
    make_miml_bags,
    save_npz,
)

# fixed examples in CI (derandomized); MIMLKIT_FUZZ_EXAMPLES=2000 explores at random
_FUZZ = int(os.environ.get("MIMLKIT_FUZZ_EXAMPLES", "0"))
PROP = settings(max_examples=_FUZZ or 30, derandomize=not _FUZZ, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def named_error(fn, path: Path, *, line: int | None = None, match: str | None = None):
    """``fn()`` must raise ``ValueError`` naming ``path`` (and ``line N`` if given)."""
    with pytest.raises(ValueError) as ei:
        fn()
    msg = str(ei.value)
    assert path.name in msg, msg
    if line is not None:
        assert f"line {line}" in msg, msg
    if match is not None:
        assert match in msg, msg
    assert "\n" not in msg.strip(), "error message must be one line"
    return msg


# ----------------------------------------------------------------------------- MIML ARFF
MIML_HEADER = """@relation toy
@attribute id {1,2,3,4}
@attribute bag relational
  @attribute f1 numeric
  @attribute f2 numeric
@end bag
@attribute a {0,1}
@attribute b {0,1}
@data
"""  # data starts on line 10
MIML_XML = """<?xml version="1.0" encoding="utf-8"?>
<labels xmlns="http://mulan.sourceforge.net/labels">
<label name="a"></label>
<label name="b"></label>
</labels>
"""
MIML_ROWS = ['1,"1,2\\n3,4",1,0', '2,"5,6",0,1', '3,"7,8\\n9,10\\n11,12",1,1', '4,"0,1",0,0']
MIML_BAGS = [[[1, 2], [3, 4]], [[5, 6]], [[7, 8], [9, 10], [11, 12]], [[0, 1]]]
MIML_Y = [[1, 0], [0, 1], [1, 1], [0, 0]]


def write_miml(tmp: Path, rows=MIML_ROWS, xml=MIML_XML, header=MIML_HEADER,
               name="toy") -> Path:
    p = tmp / f"{name}.arff"
    p.write_text(header + "\n".join(rows) + "\n")
    if xml is not None:
        (tmp / f"{name}.xml").write_text(xml)
    return p


def _check_prefix(ds, bags_ref, Y_ref):
    n = len(ds)
    assert 1 <= n <= len(bags_ref)
    for i in range(n):
        np.testing.assert_array_equal(ds.bags[i], bags_ref[i])
    np.testing.assert_array_equal(ds.Y, Y_ref[:n])


@PROP
@given(cut=st.integers(min_value=0, max_value=10_000))
def test_miml_arff_truncated_anywhere(tmp_path, cut):
    """A file cut at any byte: a correct prefix of the bags, or an error naming the file."""
    full = (MIML_HEADER + "\n".join(MIML_ROWS) + "\n").encode()
    cut = cut % (len(full) + 1)
    p = tmp_path / "cut.arff"
    p.write_bytes(full[:cut])
    (tmp_path / "cut.xml").write_text(MIML_XML)
    try:
        ds = load_dataset(p)
    except ValueError as exc:
        assert "cut.arff" in str(exc) or "cut.xml" in str(exc), str(exc)
        return
    # a cut inside the last number ("0,1" -> "0,") cannot parse; any accepted file is a
    # prefix of the original rows, with the values unchanged
    _check_prefix(ds, MIML_BAGS, np.array(MIML_Y))


@PROP
@given(pos=st.integers(min_value=0, max_value=10_000),
       junk=st.sampled_from(["\x00", "'", '"', ",", "\\", "{", "}", "@", "?", "x", "\n",
                             "\ufffd", "-", "\t", "%"]))
def test_miml_arff_garbled_byte(tmp_path, pos, junk):
    """One character replaced by junk: parse or a ValueError naming the file, nothing else."""
    text = MIML_HEADER + "\n".join(MIML_ROWS) + "\n"
    pos = pos % len(text)
    p = tmp_path / "garbled.arff"
    p.write_text(text[:pos] + junk + text[pos + 1:], encoding="utf-8")
    (tmp_path / "garbled.xml").write_text(MIML_XML)
    try:
        ds = load_dataset(p)
    except ValueError as exc:
        assert "garbled" in str(exc), str(exc)
        return
    assert len(ds) >= 1 and np.isfinite(ds.bags.instances).all()
    assert set(np.unique(ds.Y)) <= {-1, 0, 1}


@pytest.mark.parametrize("rows, line, match", [
    (['1,"1,2\\n3,4",1,0', '2,"5,6', '3,"7,8",1,1'], 11, "unterminated"),  # truncated quote
    (['1,"1,2\\n3",1,0'], 10, "values, expected 2"),  # instance with one value
    (['1,"1,2\\n3,4,5",1,0'], 10, "values, expected 2"),  # instance with three values
    (['1,"1,zz",1,0'], 10, "not numeric"),
    (['1,"1,?",1,0'], 10, "missing value"),
    (['1,"1,nan",1,0'], 10, "NaN/inf"),
    (['1,"inf,1",1,0'], 10, "NaN/inf"),
    (['1,"1,2",1'], 10, "after the bag"),  # label missing
    (['1,"1,2",1,0,1'], 10, "after the bag"),  # one value too many
    (['1,"1,2",2,0'], 10, "expected 0/1"),  # non-binary label
    (['1,"1,2",yes?,0'], 10, "expected 0/1"),
    (['{0 1,1 "1,2"}'], 10, "sparse"),
    (['1,1,2,1,0'], 10, "quoted"),  # bag not quoted
    (['1,"1,2\\n3,4",1\',0'], 10, "unterminated quoted bag"),  # stray quote after the bag
    (["1',\"1,2\",1,0"], 10, "unterminated quoted bag"),  # stray quote before the bag
])
def test_miml_arff_malformed_rows(tmp_path, rows, line, match):
    p = write_miml(tmp_path, rows=rows)
    named_error(lambda: load_miml_arff(p), p, line=line, match=match)


@pytest.mark.parametrize("header, match", [
    ("", "no @data"),  # zero-byte file
    (MIML_HEADER.replace("@data\n", ""), "unexpected header line"),  # no @data line
    (MIML_HEADER.replace("@end bag\n", ""), "not closed"),
    (MIML_HEADER.replace("numeric", "nmeric", 1), "unknown attribute type"),
    (MIML_HEADER.replace("@attribute f2 numeric", "@attribute f2 string"), "only numeric"),
    (MIML_HEADER.replace("@attribute a {0,1}", "@attribute a {0,1"), "unterminated"),
    (MIML_HEADER.replace("@attribute a {0,1}", "@attribute a {0,'1}"), "unterminated '"),
    ("garbage line\n" + MIML_HEADER, "unexpected header line"),
])
def test_miml_arff_malformed_header(tmp_path, header, match):
    p = tmp_path / "bad.arff"
    p.write_text(header + ("\n".join(MIML_ROWS) + "\n" if header else ""))
    (tmp_path / "bad.xml").write_text(MIML_XML)
    named_error(lambda: load_dataset(p), p, match=match)


def test_miml_arff_no_rows_and_binary_garbage(tmp_path):
    p = write_miml(tmp_path, rows=[])
    named_error(lambda: load_miml_arff(p), p, match="no data rows")
    g = tmp_path / "noise.arff"
    g.write_bytes(np.random.default_rng(0).integers(0, 256, 2000, dtype=np.uint8).tobytes())
    named_error(lambda: load_dataset(g), g)


@pytest.mark.parametrize("xml, match", [
    (MIML_XML.replace('"b"', '"zebra"'), "not attributes of the ARFF"),  # unknown label
    (MIML_XML.replace("</labels>", '<label name="c"></label></labels>'),
     "not attributes of the ARFF"),  # XML has one label more than the ARFF
    (MIML_XML.replace("</labels>", ""), "malformed label XML"),  # truncated XML
    ("", "malformed label XML"),  # zero-byte XML
    ('<labels xmlns="http://mulan.sourceforge.net/labels"></labels>', "no <label"),
    (MIML_XML.replace('"b"', '"a"'), "listed twice"),
    (MIML_XML.replace('name="b"', 'nome="b"'), "no 'name'"),
])
def test_miml_arff_xml_label_mismatch(tmp_path, xml, match):
    p = write_miml(tmp_path, xml=xml)
    msg = named_error(lambda: load_miml_arff(p), p.with_suffix(".xml"), match=match)
    assert "toy" in msg


def test_miml_arff_xml_subset_of_labels_is_used_by_name(tmp_path):
    """An XML naming fewer labels than the ARFF has: only those are labels (Mulan rule)."""
    p = write_miml(tmp_path, xml=MIML_XML.replace('<label name="a"></label>\n', ""))
    ds = load_miml_arff(p)
    assert ds.label_names == ["b"]
    np.testing.assert_array_equal(ds.Y[:, 0], np.array(MIML_Y)[:, 1])


def test_miml_arff_missing_explicit_xml(tmp_path):
    p = write_miml(tmp_path, xml=None)
    x = tmp_path / "nope.xml"
    named_error(lambda: load_miml_arff(p, labels_xml=x), x, match="not found")
    named_error(lambda: load_miml_arff(p, labels=7), p, match="labels=7")


# ----------------------------------------------------------------------------- Mulan ARFF
MULAN_HEADER = """@relation mulan
@attribute x1 numeric
@attribute x2 numeric
@attribute colour {red,green}
@attribute L1 {0,1}
@attribute L2 {0,1}
@data
"""  # data starts on line 8
MULAN_XML = MIML_XML.replace('"a"', '"L1"').replace('"b"', '"L2"')
MULAN_DENSE = ["0.5,2,green,1,0", "1,3,red,0,1", "-2,0.25,green,1,1"]
MULAN_SPARSE = ["{0 0.5,1 2,2 green,3 1}", "{0 1,1 3,4 1}", "{0 -2,1 0.25,2 green,3 1,4 1}"]
MULAN_X = [[0.5, 2, 1], [1, 3, 0], [-2, 0.25, 1]]  # colour: binary -> one 0/1 column
MULAN_Y = np.array([[1, 0], [0, 1], [1, 1]])


def write_mulan(tmp: Path, rows, xml=MULAN_XML, name="mul") -> Path:
    p = tmp / f"{name}.arff"
    p.write_text(MULAN_HEADER + "\n".join(rows) + "\n")
    if xml is not None:
        (tmp / f"{name}.xml").write_text(xml)
    return p


@pytest.mark.parametrize("layout", ["dense", "sparse"])
def test_mulan_reference_files_parse(tmp_path, layout):
    p = write_mulan(tmp_path, MULAN_DENSE if layout == "dense" else MULAN_SPARSE)
    ds = load_mulan_arff(p)
    np.testing.assert_array_equal(ds.bags.instances, MULAN_X)
    np.testing.assert_array_equal(ds.Y, MULAN_Y)


@PROP
@given(layout=st.sampled_from(["dense", "sparse"]),
       cut=st.integers(min_value=0, max_value=10_000))
def test_mulan_arff_truncated_anywhere(tmp_path, layout, cut):
    rows = MULAN_DENSE if layout == "dense" else MULAN_SPARSE
    full = (MULAN_HEADER + "\n".join(rows) + "\n").encode()
    cut = cut % (len(full) + 1)
    p = tmp_path / "trunc.arff"
    p.write_bytes(full[:cut])
    (tmp_path / "trunc.xml").write_text(MULAN_XML)
    try:
        ds = load_mulan_arff(p)
    except ValueError as exc:
        assert "trunc.arff" in str(exc), str(exc)
        return
    n = len(ds)
    # a cut right after a digit can shorten the last number ("0.25" -> "0.2"): only whole
    # rows that survived intact are compared
    np.testing.assert_array_equal(ds.bags.instances[: n - 1], np.array(MULAN_X)[: n - 1])
    np.testing.assert_array_equal(ds.Y[: n - 1], MULAN_Y[: n - 1])


@pytest.mark.parametrize("rows, line, match", [
    (["0.5,2,green,1"], 8, "values, expected 5"),
    (["0.5,2,green,1,0,7"], 8, "values, expected 5"),
    (["0.5,'2,green,1,0"], 8, "unterminated"),
    (["0.5,?,green,1,0"], 8, "missing value"),
    (["0.5,nan,green,1,0"], 8, "NaN/inf"),
    (["0.5,-inf,green,1,0"], 8, "NaN/inf"),
    (["0.5,abc,green,1,0"], 8, "not numeric"),
    (["0.5,2,purple,1,0"], 8, "declared categories"),
    (["0.5,2,green,1,5"], 8, "expected 0/1"),
    (["{0 0.5,1 2,3 1"], 8, "unterminated sparse"),
    (["{0 0.5,9 2}"], 8, "out of range"),
    (["{x 0.5}"], 8, "bad sparse entry"),
    (["{0 0.5,1 nan}"], 8, "NaN/inf"),
    (["{0 0.5,4 2}"], 8, "expected 0/1"),
])
def test_mulan_arff_malformed_rows(tmp_path, rows, line, match):
    p = write_mulan(tmp_path, MULAN_DENSE[:0] + rows)
    named_error(lambda: load_mulan_arff(p), p, line=line, match=match)


@pytest.mark.parametrize("xml, match", [
    (None, "no Mulan label XML"),
    (MULAN_XML.replace('"L2"', '"L3"'), "not attributes"),
    (MULAN_XML.replace("</labels>", '<label name="L9"></label></labels>'), "not attributes"),
    ("<labels><label name='L1'>", "malformed"),
])
def test_mulan_arff_xml_mismatch(tmp_path, xml, match):
    p = write_mulan(tmp_path, MULAN_DENSE, xml=xml)
    at_fault = p.with_suffix(".xml") if match == "malformed" else p  # the file at fault
    named_error(lambda: load_mulan_arff(p), at_fault, match=match)


def test_mulan_arff_relational_file_is_redirected(tmp_path):
    p = write_miml(tmp_path)
    named_error(lambda: load_mulan_arff(p), p, match="load_miml_arff")


# ----------------------------------------------------------------------------- npz
@pytest.fixture()
def good_npz(tmp_path) -> Path:
    return save_npz(make_miml_bags(n_bags=6, n_labels=2, n_features=3, random_state=0),
                    tmp_path / "good.npz")


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


def test_npz_zero_byte_garbage_and_truncated(tmp_path, good_npz):
    z = tmp_path / "zero.npz"
    z.write_bytes(b"")
    named_error(lambda: load_npz(z), z, match="not a readable")
    g = tmp_path / "garbage.npz"
    g.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    named_error(lambda: load_dataset(g), g)
    data = good_npz.read_bytes()
    for frac in (0.1, 0.5, 0.9, 0.99):
        t = tmp_path / f"trunc{int(frac * 100)}.npz"
        t.write_bytes(data[: int(len(data) * frac)])
        named_error(lambda t=t: load_npz(t), t)


def test_npz_corrupted_member_crc(tmp_path, good_npz):
    """Flip bytes inside a compressed member: zip CRC / zlib errors become a named error."""
    raw = bytearray(good_npz.read_bytes())
    with zipfile.ZipFile(io.BytesIO(bytes(raw))) as zf:
        info = zf.getinfo("bag_instances.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for k in range(start + 5, start + 25):
        raw[k] ^= 0xFF
    bad = tmp_path / "flipped.npz"
    bad.write_bytes(bytes(raw))
    named_error(lambda: load_npz(bad), bad)


@pytest.mark.parametrize("case, match", [
    ("no_Y", "no 'Y'"),
    ("no_bags", "no bags"),
    ("Y_rows", "rows"),
    ("Y_values", "bag 1"),
    ("X_nan", "bag 2"),
    ("object", "allow_pickle"),
    ("offsets_bad", "offsets"),
    ("empty_bag", "bag 1 is empty"),
    ("names_count", "label names"),
    ("X_1d", "1-D"),
])
def test_npz_plain_arrays_bad(tmp_path, case, match):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(4, 3))
    Y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]])
    p = tmp_path / f"{case}.npz"
    if case == "no_Y":
        _npz(p, X=X)
    elif case == "no_bags":
        _npz(p, Y=Y)
    elif case == "Y_rows":
        _npz(p, X=X, Y=Y[:3])
    elif case == "Y_values":
        Y2 = Y.copy()
        Y2[1, 0] = 7
        _npz(p, X=X, Y=Y2)
    elif case == "X_nan":
        X2 = X.copy()
        X2[2, 1] = np.nan
        _npz(p, X=X2, Y=Y)
    elif case == "object":
        np.savez(p, X=np.array([X[:2], X[:3]], dtype=object), Y=Y[:2])
    elif case == "offsets_bad":
        _npz(p, instances=X, offsets=np.array([0, 2, 9]), Y=Y[:2])
    elif case == "empty_bag":
        _npz(p, instances=X, offsets=np.array([0, 2, 2, 4]), Y=Y[:3])
    elif case == "names_count":
        _npz(p, X=X, Y=Y, label_names=np.array(["a", "b", "c"]))
    elif case == "X_1d":
        _npz(p, X=X[:, 0], Y=Y)
    named_error(lambda: load_npz(p), p, match=match)


def test_npz_mimlkit_format_tampered(tmp_path, good_npz):
    with np.load(good_npz) as z:
        arrays = {k: z[k] for k in z.files}
    a = dict(arrays, mimlkit_npz_version=np.array(99))
    p = _npz(tmp_path / "newer.npz", **a)
    named_error(lambda: load_npz(p), p, match="newer")
    a = dict(arrays, bag_offsets=arrays["bag_offsets"][:-1])
    p = _npz(tmp_path / "offsets.npz", **a)
    named_error(lambda: load_npz(p), p, match="offsets")
    a = dict(arrays, meta_json=np.array("{not json"))
    p = _npz(tmp_path / "meta.npz", **a)
    named_error(lambda: load_npz(p), p, match="JSON")
    a = {k: v for k, v in arrays.items() if k != "Y"}
    p = _npz(tmp_path / "noy.npz", **a)
    named_error(lambda: load_npz(p), p, match="'Y'")


def test_npz_single_bag_and_one_instance_bags_are_fine(tmp_path):
    p = _npz(tmp_path / "one.npz", X=np.ones((1, 4)), Y=np.array([[1, 0]]))
    ds = load_npz(p)
    assert len(ds) == 1 and ds.bags.n_features == 4
    np.testing.assert_array_equal(ds.Y, [[1, 0]])


# ----------------------------------------------------------------------------- image CSV
def _img_folder(tmp: Path, n: int = 3, size=(20, 24)) -> Path:
    d = tmp / "images"
    d.mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(d / f"im{i}.png")
    return d


def _csv(tmp: Path, text: str) -> Path:
    p = tmp / "labels.csv"
    p.write_text(text)
    return p


@pytest.mark.parametrize("text, line, match", [
    ("image,Finding Labels\nim0.png,cat\nim1.png,cat|zebra\nim2.png,\n", 3, "unknown label"),
    ("image,cat,dog\nim0.png,1,0\nim1.png,1\nim2.png,0,1\n", 3, "fields"),
    ("image,cat,dog\nim0.png,1,0\nim1.png,yes please,0\n", 3, "expected 1, 0"),
    ("image,cat,dog\nim0.png,1,0\nim0.png,0,1\n", 3, "listed twice"),
    ("image,cat,dog\nim0.png,1,0\n,0,1\n", 3, "empty image name"),
    ("image,cat,dog\nim0.png,1,0\nim7.png,0,1\n", 3, "not found"),
    ("image,cat,dog\nim0.png,1,0\nim1.png,2,1\n", 3, "expected 1, 0"),
])
def test_image_csv_bad_rows(tmp_path, text, line, match):
    _img_folder(tmp_path)
    p = _csv(tmp_path, text)
    lc = "Finding Labels" if "Finding" in text else None
    kw = {"labels": ["cat", "dog"]} if lc else {}
    named_error(lambda: load_image_csv(p, label_column=lc, **kw), p, line=line, match=match)


@pytest.mark.parametrize("text, kw, match", [
    ("", {}, "empty CSV"),
    ("image,cat,dog\n", {}, "no data rows"),
    ("image,cat\nim0.png,1\n", {"labels": ["cat", "dog"]}, "unknown label name 'dog'"),
    ("image,cat\nim0.png,1\n", {"label_column": "Finding"}, "no label column"),
    ("image\nim0.png\n", {}, "no label columns"),
    ("image,Finding Labels\nim0.png,\n", {"label_column": "Finding Labels"}, "no label names"),
])
def test_image_csv_bad_header(tmp_path, text, kw, match):
    _img_folder(tmp_path)
    p = _csv(tmp_path, text)
    named_error(lambda: load_image_csv(p, **kw), p, match=match)


def test_image_csv_missing_images_counted_and_folder_missing(tmp_path):
    _img_folder(tmp_path, n=1)
    p = _csv(tmp_path, "image,cat\nim0.png,1\nim1.png,0\nim2.png,1\n")
    named_error(lambda: load_image_csv(p), p, line=3, match="1 more missing")
    named_error(lambda: load_image_csv(p, tmp_path / "nowhere"), tmp_path / "nowhere")


@pytest.mark.parametrize("content", ["zero", "garbage", "truncated", "text"])
def test_image_csv_corrupt_image_files(tmp_path, content):
    """The CSV loads (files exist); decoding the bad image raises an error naming it, and so
    do the consumers (tiling to bags)."""
    d = _img_folder(tmp_path)
    bad = d / "im1.png"
    data = bad.read_bytes()
    bad.write_bytes({"zero": b"", "garbage": bytes(range(256)),
                     "truncated": data[: len(data) // 2], "text": b"hello"}[content])
    p = _csv(tmp_path, "image,cat\nim0.png,1\nim1.png,0\nim2.png,1\n")
    ds = load_image_csv(p)
    assert ds.images[0].shape == (20, 24, 3)
    named_error(lambda: ds.images[1], bad)
    named_error(lambda: load_dataset(p, tile=8), bad)


def _save(tmp: Path, name: str, arr: np.ndarray, mode: str | None = None) -> Path:
    d = tmp / "images"
    d.mkdir(exist_ok=True)
    im = Image.fromarray(arr) if mode is None else Image.fromarray(arr).convert(mode)
    im.save(d / name)
    return d / name


def _one_image_ds(tmp: Path, name: str):
    return load_image_csv(_csv(tmp, f"image,cat\n{name},1\n"))


def test_grayscale_image_replicated_to_rgb(tmp_path):
    g = np.arange(12 * 10, dtype=np.uint8).reshape(12, 10)
    _save(tmp_path, "g.png", g)
    img = _one_image_ds(tmp_path, "g.png").images[0]
    assert img.shape == (12, 10, 3) and img.dtype == np.uint8
    for c in range(3):
        np.testing.assert_array_equal(img[:, :, c], g)


def test_rgba_image_alpha_dropped(tmp_path):
    a = np.zeros((6, 7, 4), np.uint8)
    a[..., 0], a[..., 1], a[..., 2], a[..., 3] = 200, 10, 99, 0  # fully transparent
    _save(tmp_path, "a.png", a)
    img = _one_image_ds(tmp_path, "a.png").images[0]
    assert img.shape == (6, 7, 3)
    np.testing.assert_array_equal(img[0, 0], [200, 10, 99])


def test_16bit_grey_image_scaled_not_clipped(tmp_path):
    """16-bit PNG: 0..65535 maps linearly to 0..255 (PIL's own convert clips at 255)."""
    v = np.array([[0, 257, 4000, 32768], [40000, 65535, 1000, 20000]], dtype=np.uint16)
    _save(tmp_path, "h.png", v)
    with Image.open(tmp_path / "images" / "h.png") as im:
        assert im.mode.startswith("I;16")
    img = _one_image_ds(tmp_path, "h.png").images[0]
    assert img.dtype == np.uint8 and img.shape == (2, 4, 3)
    np.testing.assert_array_equal(img[:, :, 0], np.rint(v / 257.0).astype(np.uint8))
    np.testing.assert_array_equal(img[:, :, 0], img[:, :, 2])


def test_palette_and_bilevel_images(tmp_path):
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[:2] = (255, 0, 0)
    rgb[2:] = (0, 0, 255)
    _save(tmp_path, "p.png", rgb, mode="P")
    np.testing.assert_array_equal(_one_image_ds(tmp_path, "p.png").images[0], rgb)
    b = np.zeros((3, 5), bool)
    b[1] = True
    _save(tmp_path, "b.png", b)
    img = load_image_csv(_csv(tmp_path, "image,cat\nb.png,1\n")).images[0]
    np.testing.assert_array_equal(img[:, :, 1], b.astype(np.uint8) * 255)


def test_float_tiff_is_a_named_error(tmp_path):
    _save(tmp_path, "f.tiff", np.full((4, 4), 0.5, np.float32))
    ds = _one_image_ds(tmp_path, "f.tiff")
    named_error(lambda: ds.images[0], tmp_path / "images" / "f.tiff", match="floating-point")


# ----------------------------------------------------------------------------- tiling
@pytest.mark.parametrize("border", ["drop", "pad", "fit"])
@pytest.mark.parametrize("shape", [(5, 7, 3), (1, 1, 3), (3, 40, 3), (5, 7)])
def test_image_smaller_than_one_tile(border, shape):
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    tiles, coords = TileBagger(16, border=border)(img)
    h, w = shape[:2]
    assert tiles.shape[0] >= 1 and tiles.shape[1:] == (16, 16, 3) and tiles.dtype == np.uint8
    assert (coords >= 0).all() and (coords[:, 0] < h).all() and (coords[:, 1] < w).all()
    rgb = img if img.ndim == 3 else np.repeat(img[:, :, None], 3, axis=2)
    if border != "fit" and h <= 16 and w <= 16:
        np.testing.assert_array_equal(tiles[0, :h, :w], rgb)  # image kept, padded around


@pytest.mark.parametrize("bad, match", [
    (np.zeros((0, 5, 3), np.uint8), "empty image"),
    (np.zeros((4, 4, 3), np.float32), "uint8"),
    (np.full((4, 4, 3), 300, np.uint16), "uint8"),
    (np.zeros((4, 4, 2), np.uint8), "H x W x 3"),
    (np.zeros((4,), np.uint8), "H x W x 3"),
])
def test_tiler_rejects_bad_arrays(bad, match):
    with pytest.raises(ValueError, match=match):
        TileBagger(4)(bad)


def test_small_images_through_load_dataset_tile(tmp_path):
    """Images smaller than the tile: one padded tile each, finite features, correct count."""
    d = _img_folder(tmp_path, n=2, size=(6, 5))
    _save(tmp_path, "g.png", np.full((3, 3), 90, np.uint8))
    assert d.is_dir()
    p = _csv(tmp_path, "image,cat,dog\nim0.png,1,0\nim1.png,0,1\ng.png,1,1\n")
    ds = load_dataset(p, tile=32)
    assert len(ds) == 3 and (ds.bags.sizes == 1).all()
    assert np.isfinite(ds.bags.instances).all()
