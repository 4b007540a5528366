"""Mulan single-instance ARFF reader: dense/sparse rows, nominal one-hot, labels by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mimlkit.datasets import load_dataset, load_mulan_arff
from mimlkit.datasets._arff import find_label_xml

HEADER = """% a comment
@relation 'toy data'
@attribute x1 numeric
@attribute 'x 2' real
@attribute colour {red,green,blue}
@attribute L2 {0,1}
@attribute L1 {0,1}
@data
"""
XML = """<?xml version="1.0" encoding="utf-8"?>
<labels xmlns="http://mulan.sourceforge.net/labels">
<label name="L1"></label>
<label name="L2"></label>
</labels>
"""


def write(tmp: Path, rows, name="toy", xml=XML, header=HEADER) -> Path:
    p = tmp / f"{name}.arff"
    p.write_text(header + "\n".join(rows) + "\n")
    if xml is not None:
        (tmp / f"{name.split('-')[0]}.xml").write_text(xml)
    return p


def test_dense_sparse_and_nominal(tmp_path):
    rows = ["0.5,2,green,1,0", "{0 1.5,2 blue,4 1}", "{}", "-1,'3',red,0,?"]
    ds = load_mulan_arff(write(tmp_path, rows))
    assert ds.label_names == ["L2", "L1"]  # ARFF order, although the XML lists L1 first
    assert (ds.bags.sizes == 1).all() and len(ds) == 4
    X = ds.bags.instances
    assert ds.meta["feature_names"] == ["x1", "x 2", "colour=red", "colour=green", "colour=blue"]
    np.testing.assert_array_equal(X[0], [0.5, 2, 0, 1, 0])
    np.testing.assert_array_equal(X[1], [1.5, 0, 0, 0, 1])  # omitted sparse values are 0
    np.testing.assert_array_equal(X[2], [0, 0, 1, 0, 0])  # omitted nominal = first category
    np.testing.assert_array_equal(X[3], [-1, 3, 1, 0, 0])
    np.testing.assert_array_equal(ds.Y, [[1, 0], [0, 1], [0, 0], [0, -1]])
    assert ds.meta["relation"] == "toy data"


def test_xml_found_by_stem(tmp_path):
    p = write(tmp_path, ["1,2,red,1,0"], name="toy-train")
    assert find_label_xml(p) == tmp_path / "toy.xml"
    assert load_mulan_arff(p).label_names == ["L2", "L1"]


def test_explicit_xml_and_label_override(tmp_path):
    p = write(tmp_path, ["1,2,red,1,0"], name="other", xml=None)
    with pytest.raises(ValueError, match=r"other\.arff: no Mulan label XML found"):
        load_mulan_arff(p)
    x = tmp_path / "labels.xml"
    x.write_text(XML)
    assert load_mulan_arff(p, labels_xml=x).label_names == ["L2", "L1"]
    assert load_mulan_arff(p, labels=["L1"]).label_names == ["L1"]
    ds = load_mulan_arff(p, labels=1)
    assert ds.label_names == ["L1"] and ds.bags.n_features == 6  # L2 binary: 1 column


@pytest.mark.parametrize(
    "rows, pattern",
    [
        (["1,2,red,1,0", "1,2,red,1"], r"toy\.arff, line 10: 4 values, expected 5"),
        (["1,2,red,1,0", "1,x,red,1,0"], r"toy\.arff, line 10: feature 'x 2': value 'x'"),
        (["?,2,red,1,0"], r"toy\.arff, line 9: feature 'x1': missing value '\?'"),
        (["1,2,pink,1,0"], r"line 9: feature 'colour': value 'pink' is not one of"),
        (["1,2,red,1,2"], r"line 9: label 'L1' has value '2'"),
        (["{0 1,9 1}"], r"line 9: sparse index 9 out of range"),
        (["{0 1,4 1"], r"line 9: unterminated sparse row"),
        (["1,'2,red,1,0"], r"line 9: unterminated ' quote"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, rows, pattern):
    with pytest.raises(ValueError, match=pattern):
        load_mulan_arff(write(tmp_path, rows))


def test_label_count_mismatch_with_xml(tmp_path):
    xml = XML.replace("</labels>", '<label name="L3"></label>\n</labels>')
    with pytest.raises(ValueError, match=r"toy\.arff: 1 of the 3 labels .*'L3'"):
        load_mulan_arff(write(tmp_path, ["1,2,red,1,0"], xml=xml))


def test_malformed_xml(tmp_path):
    p = write(tmp_path, ["1,2,red,1,0"], xml="<labels><label name='L1'>")
    with pytest.raises(ValueError, match=r"toy\.xml: malformed label XML"):
        load_mulan_arff(p)


def test_relational_file_rejected(tmp_path):
    header = "@relation r\n@attribute bag relational\n@attribute f numeric\n@end bag\n" \
             "@attribute L1 {0,1}\n@attribute L2 {0,1}\n@data\n"
    p = write(tmp_path, ['"1",0,1'], header=header)
    with pytest.raises(ValueError, match=r"toy\.arff, line 2: relational"):
        load_mulan_arff(p)
    assert load_dataset(p).bags.n_features == 1  # dispatch picks the MIML reader


def test_emotions(data_root):
    ds = load_dataset(data_root / "mulan" / "emotions" / "emotions.arff")
    s = ds.summary()
    assert (s["n_bags"], s["n_features"], s["n_labels"]) == (593, 72, 6)
    assert s["label_counts"] == [173, 166, 264, 148, 168, 189]
    assert ds.label_names[0] == "amazed-suprised" and ds.label_names[-1] == "angry-aggresive"
    assert round(s["cardinality"], 3) == 1.868
    train = load_mulan_arff(data_root / "mulan" / "emotions" / "emotions-train.arff")
    assert len(train) == 391  # XML found through the dataset stem
    np.testing.assert_array_equal(train.bags.instances, ds.bags.instances[:391])


def test_yeast_labels_by_name(data_root):
    ds = load_mulan_arff(data_root / "mulan" / "yeast" / "yeast.arff")
    assert ds.label_names == [f"Class{k}" for k in range(1, 15)]  # ARFF order, not XML order
    assert ds.summary()["label_counts"] == [762, 1038, 983, 862, 722, 597, 428, 480, 178, 253,
                                            289, 1816, 1799, 34]
    assert ds.bags.n_features == 103
    train = load_mulan_arff(data_root / "mulan" / "yeast" / "yeast-train.arff")
    test = load_mulan_arff(data_root / "mulan" / "yeast" / "yeast-test.arff")
    assert (len(train), len(test)) == (1500, 917)
    assert train.Y[:, 13].sum() == 21 and test.Y[:, 13].sum() == 13
