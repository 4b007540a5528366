"""Relational (multi-instance) ARFF reader: real MIML Scene files and malformed inputs."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from mimlkit.datasets import load_dataset, load_miml_arff

HEADER = """@relation toy
@attribute id {1,2,3}
@attribute bag relational
  @attribute f1 numeric
  @attribute f2 numeric
@end bag
@attribute a {0,1}
@attribute b {0,1}

@data
"""
XML = """<?xml version="1.0" encoding="utf-8"?>
<labels xmlns="http://mulan.sourceforge.net/labels">
<label name="a"></label>
<label name="b"></label>
</labels>
"""
ROWS = ['1,"1,2\\n3,4",1,0', '2,"5,6",0,1', '3,"7,8\\n9,10\\n11,12",1,1']


def write(tmp: Path, rows=ROWS, xml=XML, header=HEADER, name="toy") -> Path:
    p = tmp / f"{name}.arff"
    p.write_text(header + "\n".join(rows) + "\n")
    if xml is not None:
        (tmp / f"{name}.xml").write_text(xml)
    return p


def test_toy_file_parsed_exactly(tmp_path):
    ds = load_miml_arff(write(tmp_path))
    assert ds.label_names == ["a", "b"]
    np.testing.assert_array_equal(ds.bags.sizes, [2, 1, 3])
    np.testing.assert_array_equal(ds.bags[2], [[7, 8], [9, 10], [11, 12]])
    np.testing.assert_array_equal(ds.Y, [[1, 0], [0, 1], [1, 1]])
    assert ds.Y.dtype == np.int8 and ds.bags.instances.dtype == np.float32
    assert ds.meta["bag_ids"] == ["1", "2", "3"]
    assert ds.meta["feature_names"] == ["f1", "f2"]


def test_labels_matched_by_name_and_arff_order(tmp_path):
    xml = XML.replace('"a"', '"TMP"').replace('"b"', '"a"').replace('"TMP"', '"b"')
    ds = load_miml_arff(write(tmp_path, xml=xml))  # XML lists b, a: ARFF order wins
    assert ds.label_names == ["a", "b"]
    np.testing.assert_array_equal(ds.Y[0], [1, 0])


def test_without_xml_labels_are_attributes_after_bag(tmp_path):
    ds = load_miml_arff(write(tmp_path, xml=None))
    assert ds.label_names == ["a", "b"]


def test_question_mark_label_is_unobserved(tmp_path):
    ds = load_miml_arff(write(tmp_path, rows=['1,"1,2",?,1']))
    np.testing.assert_array_equal(ds.Y, [[-1, 1]])


@pytest.mark.parametrize(
    "rows, pattern",
    [
        (ROWS[:2] + ['3,"7,8\\n9,10\\n11'], r"toy\.arff, line 13: unterminated quoted bag"),
        (ROWS[:2] + ['3,"7,8\\n9,10",1'], r"toy\.arff, line 13: expected 2 value\(s\) after"),
        (['1,"1,2\\n3",1,0'], r"toy\.arff, line 11: instance 1 of the bag has 1 values, expe"),
        (['1,"1,2",1,0', '2,"5,x",0,1'], r"toy\.arff, line 12: instance 0, attribute 'f2'.*'x'"),
        (['1,"1,?",1,0'], r"line 11: .*missing value '\?'"),
        (['1,"1,nan",1,0'], r"line 11: instance 0, attribute 'f2': value 'nan' is NaN/inf"),
        (['1,"1,2",1,7'], r"line 11: label 'b' has value '7'"),
        (['1,2,1,0'], r"line 11: expected 1 value\(s\), then a quoted bag"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, rows, pattern):
    with pytest.raises(ValueError, match=pattern):
        load_miml_arff(write(tmp_path, rows=rows))


def test_truncated_in_header(tmp_path):
    p = tmp_path / "cut.arff"
    p.write_text(HEADER.split("@end")[0])
    with pytest.raises(ValueError, match=r"cut\.arff.*(not closed|no @data)"):
        load_miml_arff(p)


def test_label_count_mismatch_with_xml(tmp_path):
    xml = XML.replace("</labels>", '<label name="c"></label>\n</labels>')
    with pytest.raises(ValueError, match=r"toy\.arff: 1 of the 3 labels of the label XML .*toy\.xml"
                                         r".*'c'"):
        load_miml_arff(write(tmp_path, xml=xml))


def test_no_rows(tmp_path):
    with pytest.raises(ValueError, match=r"toy\.arff: no data rows"):
        load_miml_arff(write(tmp_path, rows=[]))


def test_scene_toy_file(data_root):
    ds = load_miml_arff(data_root / "miml_scene" / "miml_04_data.arff")
    assert len(ds) == 11 and ds.bags.n_features == 15
    assert (ds.bags.sizes == 9).all()
    assert ds.label_names == ["desert", "mountains", "sea", "sunset", "trees"]
    full = load_miml_arff(data_root / "miml_scene" / "miml_03_data.arff")
    # README: miml_04 is byte-identical to the first 11 data lines of miml_03
    np.testing.assert_array_equal(ds.bags.instances, full.bags[np.arange(11)].instances)
    np.testing.assert_array_equal(ds.Y, full.Y[:11])


def test_scene_full_counts_and_speed(data_root):
    path = data_root / "miml_scene" / "miml_03_data.arff"
    t0 = time.perf_counter()
    ds = load_dataset(path)
    elapsed = time.perf_counter() - t0
    s = ds.summary()
    assert (s["n_bags"], s["n_instances"], s["n_features"], s["n_labels"]) == (2000, 18000, 15, 5)
    assert s["label_counts"] == [409, 458, 580, 465, 560]
    assert s["n_distinct_labelsets"] == 20
    assert ds.bags.instances.min() == pytest.approx(-248.5)
    assert ds.bags.instances.max() == pytest.approx(255)
    assert elapsed < 3.0  # ~0.1 s idle; generous bound for a loaded CI machine


def test_truncated_scene_file(data_root, tmp_path):
    src = data_root / "miml_scene" / "miml_03_data.arff"
    data = src.read_bytes()
    cut = tmp_path / "miml_03_data.arff"
    cut.write_bytes(data[: len(data) // 2])  # stops in the middle of a bag line
    (tmp_path / "miml_03_data.xml").write_bytes(src.with_suffix(".xml").read_bytes())
    n_lines = data[: len(data) // 2].count(b"\n") + 1
    with pytest.raises(ValueError, match=rf"miml_03_data\.arff, line {n_lines}: "):
        load_dataset(cut)


def test_subset_keeps_instance_rows(tmp_path):
    ds = load_miml_arff(write(tmp_path))
    sub = ds.subset(np.array([2, 0]))
    np.testing.assert_array_equal(sub.bags[0], ds.bags[2])
    np.testing.assert_array_equal(sub.Y, ds.Y[[2, 0]])
