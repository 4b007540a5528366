"""ARFF dialects: our readers against independent parsers over generated file variants.

A seeded generator writes small Mulan-style and MIML relational ARFF files in many dialects
(spacing around separators and inside quoted bags, quote styles, ``%`` comments, blank
lines, BOM, CRLF, keyword case, sparse rows / sparse instances, ``?``). Our readers must
agree value for value with liac-arff (``import arff``; dense + sparse Mulan files) and with
``scipy.io.arff.loadarff`` (relational files). Where the oracle does not accept a feature
of the grammar (trailing comments for both, a BOM for liac-arff, sparse instances for scipy),
it reads the same data written without that feature.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest

from mimlkit.datasets import load_dataset, load_miml_arff, load_mulan_arff

SEEDS = range(40)
_PAIRS = {("0", "1"): 1, ("NO", "YES"): 1}  # recognised false/true pairs used below


# ----------------------------------------------------------------------------- rendering
def _kw(rng, word: str) -> str:
    return [word.lower(), word.upper(), word.capitalize()][rng.integers(3)]


def _num(rng, kind: str) -> str:
    if rng.random() < 0.25:
        return "0"
    v = rng.normal(0, 10) * 10.0 ** rng.integers(-3, 3)
    if kind == "integer":
        return str(int(round(v)))
    return [f"{v:.4f}", f"{v:.3e}", f"{v:.6g}", repr(float(np.float32(v)))][rng.integers(4)]


class Dialect:
    """Random layout choices for one file."""

    def __init__(self, rng, *, sparse: bool):
        self.rng = rng
        self.seps = [",", ", ", " , ", ",\t", " ,  "]
        self.sep = self.seps[rng.integers(len(self.seps))]
        self.bom = rng.random() < 0.3
        self.crlf = rng.random() < 0.3
        self.comments = rng.random() < 0.6
        self.trailing = rng.random() < 0.4
        self.blank = rng.random() < 0.5
        self.sparse = sparse and rng.random() < 0.7
        self.p_quote = [0.0, 0.3][rng.integers(2)]

    def quote(self, v: str, force: bool = False) -> str:
        if v == "?":
            return v
        if force or " " in v or "," in v or self.rng.random() < self.p_quote:
            q = "'" if self.rng.random() < 0.5 else '"'
            return f"{q}{v}{q}"
        return v

    def join(self, vals: list[str]) -> str:
        return self.sep.join(vals)

    def noise(self) -> list[tuple[str, str]]:
        """Comment / blank lines to insert somewhere (each: (ours, oracle))."""
        out = []
        if self.comments and self.rng.random() < 0.3:
            c = ["% a comment", "  %indented, with 'quote", "%"][self.rng.integers(3)]
            out.append((c, c.lstrip()))  # scipy: a comment line starts with %
        if self.blank and self.rng.random() < 0.3:
            out.append(("", ""))
        return out

    def data_line(self, line: str) -> tuple[str, str]:
        if self.trailing and self.rng.random() < 0.4:
            return line + [" % trailing, comment", "\t%x", "%"][self.rng.integers(3)], line
        return line, line

    def texts(self, lines: list[tuple[str, str]], *, oracle_bom: bool) -> tuple[str, str]:
        nl = "\r\n" if self.crlf else "\n"
        ours = nl.join(a for a, _ in lines) + nl
        oracle = nl.join(b for _, b in lines) + nl
        if self.bom:
            ours = "\ufeff" + ours
            oracle = ("\ufeff" if oracle_bom else "") + oracle
        return ours, oracle


# ----------------------------------------------------------------------------- Mulan files
def mulan_case(seed: int, missing: bool):
    """(our text, oracle text, attributes [(name, kind, values)], label names)."""
    rng = np.random.default_rng(seed)
    dl = Dialect(rng, sparse=True)
    # (a quoted attribute name before a nominal list with quoted values trips liac-arff's
    # greedy name pattern: names are quoted only when they hold a space, on numeric attributes)
    attrs = [(f"x {j}", ["numeric", "real", "integer", "NUMERIC", "Real"][rng.integers(5)], None)
             for j in range(rng.integers(1, 4))]
    if rng.random() < 0.7:
        attrs.append(("colour", "nominal", ["red", "dark green", "blue,ish"]))
    if rng.random() < 0.7:
        attrs.append(("flag", "nominal", ["lo", "hi"]))
    if rng.random() < 0.5:
        attrs.append(("ok", "nominal", ["NO", "YES"]))
    q = int(rng.integers(2, 5))
    labels = [f"L{k}" for k in range(q)]
    attrs += [(name, "nominal", ["0", "1"]) for name in labels]
    rng.shuffle(attrs[:-q])  # features in random order, labels last
    n = int(rng.integers(4, 12))
    rows = []
    for _ in range(n):
        row = []
        for name, kind, values in attrs:
            if missing and name not in labels and rng.random() < 0.15:
                row.append("?")
            elif values is None:
                row.append(_num(rng, kind.lower()))
            else:
                row.append(values[rng.integers(len(values))])
        rows.append(row)
    lines: list[tuple[str, str]] = [(f"{_kw(rng, '@relation')} 'dialect {seed}'",) * 2]
    lines += dl.noise()
    for name, kind, values in attrs:
        typ = kind if values is None else "{" + dl.join(dl.quote(v) for v in values) + "}"
        qname = dl.quote(name, force=True) if " " in name else name
        lines.append((f"{_kw(rng, '@attribute')} {qname} {typ}",) * 2)
        lines += dl.noise()
    lines.append((_kw(rng, "@data"),) * 2)
    lines += dl.noise()
    for row in rows:
        if dl.sparse and rng.random() < 0.5:
            items = [f"{j} {dl.quote(v)}" for j, (v, (_, _, values)) in
                     enumerate(zip(row, attrs, strict=True))
                     if not (v == "0" if values is None else v == values[0])]
            line = "{" + dl.join(items) + "}"
        else:
            line = dl.join(dl.quote(v) for v in row)
        lines.append(dl.data_line(line))
        lines += dl.noise()
    ours, oracle = dl.texts(lines, oracle_bom=False)
    return ours, oracle, attrs, labels


def encode_oracle(data, attrs, labels, missing: str):
    """liac-arff rows -> (X, Y) with the documented encoding (binary nominal -> one column)."""
    cols, ycols = [], []
    for j, (name, _, values) in enumerate(attrs):
        col = [r[j] for r in data]
        if name in labels:
            ycols.append([-1 if v is None else int(v) for v in col])
        elif values is None:
            cols.append(np.array([np.nan if v is None else float(v) for v in col])[:, None])
        elif len(values) == 2:
            t = _PAIRS.get(tuple(values), 1)
            cols.append(np.array([np.nan if v is None else float(v == values[t])
                                  for v in col])[:, None])
        else:
            oh = np.array([[np.nan] * len(values) if v is None else
                           [float(v == c) for c in values] for v in col])
            cols.append(oh)
    X = np.concatenate(cols, axis=1)
    nan = np.isnan(X)
    fill = np.zeros(X.shape[1]) if missing == "zero" else np.nan_to_num(np.nanmean(
        np.where(nan, np.nan, X), axis=0)) if nan.any() else np.zeros(X.shape[1])
    X = np.where(nan, fill, X)
    return X, np.array(ycols).T


def _write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_bytes(text.encode("utf-8"))
    return p


@pytest.mark.parametrize("seed", SEEDS)
def test_mulan_dialects_match_liac_arff(tmp_path, seed):
    arff = pytest.importorskip("arff")
    ours, oracle, attrs, labels = mulan_case(seed, missing=False)
    ref = arff.loads(oracle)["data"]
    X_ref, Y_ref = encode_oracle(ref, attrs, labels, "zero")
    p = _write(tmp_path, "d.arff", ours)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing here is id-like
        ds = load_mulan_arff(p, labels=labels)
    np.testing.assert_array_equal(ds.bags.instances, X_ref.astype(np.float32))
    np.testing.assert_array_equal(ds.Y, Y_ref)
    assert ds.label_names == labels
    assert ds.bags.n_features == X_ref.shape[1]


@pytest.mark.parametrize("seed", SEEDS[:20])
@pytest.mark.parametrize("missing", ["mean", "zero"])
def test_mulan_dialects_missing_values_match_liac_arff(tmp_path, seed, missing):
    arff = pytest.importorskip("arff")
    ours, oracle, attrs, labels = mulan_case(1000 + seed, missing=True)
    X_ref, Y_ref = encode_oracle(arff.loads(oracle)["data"], attrs, labels, missing)
    p = _write(tmp_path, "m.arff", ours)
    ds = load_mulan_arff(p, labels=labels, missing=missing)
    np.testing.assert_allclose(ds.bags.instances, X_ref.astype(np.float32), rtol=1e-6)
    np.testing.assert_array_equal(ds.Y, Y_ref)
    if "?" in oracle.split("@data")[-1].split("@DATA")[-1].split("@Data")[-1]:
        with pytest.raises(ValueError, match=r"m\.arff, line \d+: feature '.+': missing value"):
            load_mulan_arff(p, labels=labels)


# ----------------------------------------------------------------------------- MIML files
def miml_case(seed: int, missing: bool):
    """(our text, oracle text, d, label names)."""
    rng = np.random.default_rng(seed)
    dl = Dialect(rng, sparse=True)
    d = int(rng.integers(1, 5))
    q = int(rng.integers(2, 5))
    n = int(rng.integers(3, 9))
    labels = [f"lab{k}" for k in range(q)]
    bags = []
    for _ in range(n):
        m = int(rng.integers(1, 6))
        bags.append([["?" if missing and rng.random() < 0.1 else _num(rng, "real")
                      for _ in range(d)] for _ in range(m)])
    Y = rng.integers(0, 2, size=(n, q))
    lines: list[tuple[str, str]] = [(f"{_kw(rng, '@relation')} miml{seed}",) * 2]
    lines += dl.noise()
    # scipy keeps the spaces of a nominal declaration: its copy gets compact lists
    ids = [str(i + 1) for i in range(n)]
    lines.append((f"{_kw(rng, '@attribute')} id {{{dl.join(ids)}}}",
                  f"@attribute id {{{','.join(ids)}}}"))
    lines.append((f"{_kw(rng, '@attribute')} bag {_kw(rng, 'relational')}",) * 2)
    for j in range(d):
        lines.append((f"  {_kw(rng, '@attribute')} f{j} {_kw(rng, 'numeric')}",) * 2)
        lines += dl.noise()
    lines.append((f"{_kw(rng, '@end')} bag",) * 2)
    for lab in labels:
        lines.append((f"{_kw(rng, '@attribute')} {lab} {{0{dl.sep}1}}",
                      f"@attribute {lab} {{0,1}}"))
    lines.append((_kw(rng, "@data"),) * 2)
    lines += dl.noise()
    inst_sep = ["\\n", " \\n ", "\\n  "][rng.integers(3)]
    bq = "'" if rng.random() < 0.3 else '"'
    for i, bag in enumerate(bags):
        dense = inst_sep.join(dl.join(inst) for inst in bag)
        sparse = inst_sep.join(
            ("{" + dl.join(f"{j} {v}" for j, v in enumerate(inst) if v != "0") + "}"
             if dl.sparse and rng.random() < 0.5 else dl.join(inst)) for inst in bag)
        labs = [dl.quote(str(v)) for v in Y[i]]
        top = [str(i + 1)]
        ours = dl.join(top + [f"{bq}{sparse}{bq}"] + labs)
        # scipy keeps spaces before a comma and quotes around a top-level nominal value
        oracle = ",".join(top + [f"{bq}{dense}{bq}"] + [str(v) for v in Y[i]])
        a, _ = dl.data_line(ours)
        lines.append((a, oracle))
        lines += dl.noise()
    ours, oracle = dl.texts(lines, oracle_bom=True)
    return ours, oracle, d, labels


def scipy_bags(text: str, d: int, labels: list[str]):
    from scipy.io import arff as sarff

    data, _ = sarff.loadarff(io.StringIO(text))
    bags = [np.array(r[1].tolist(), dtype=np.float64).reshape(-1, d) for r in data]
    Y = np.array([[int(r[lab].decode()) for lab in labels] for r in data])
    return bags, Y


@pytest.mark.parametrize("seed", SEEDS)
def test_miml_dialects_match_scipy(tmp_path, seed):
    ours, oracle, d, labels = miml_case(seed, missing=False)
    ref_bags, Y_ref = scipy_bags(oracle, d, labels)
    ds = load_miml_arff(_write(tmp_path, "r.arff", ours))
    assert ds.label_names == labels and len(ds) == len(ref_bags)
    np.testing.assert_array_equal(ds.bags.sizes, [len(b) for b in ref_bags])
    np.testing.assert_array_equal(ds.bags.instances,
                                  np.concatenate(ref_bags).astype(np.float32))
    np.testing.assert_array_equal(ds.Y, Y_ref)
    assert ds.meta["bag_ids"] == [str(i + 1) for i in range(len(ds))]


@pytest.mark.parametrize("seed", SEEDS[:20])
@pytest.mark.parametrize("missing", ["mean", "zero"])
def test_miml_dialects_missing_values_match_scipy(tmp_path, seed, missing):
    ours, oracle, d, labels = miml_case(500 + seed, missing=True)
    ref_bags, _ = scipy_bags(oracle, d, labels)
    ref = np.concatenate(ref_bags)
    nan = np.isnan(ref)
    fill = np.zeros(d) if missing == "zero" else np.nan_to_num(np.nanmean(ref, axis=0)) \
        if nan.any() else np.zeros(d)
    ref = np.where(nan, fill, ref)
    p = _write(tmp_path, "r.arff", ours)
    ds = load_miml_arff(p, missing=missing)
    np.testing.assert_allclose(ds.bags.instances, ref.astype(np.float32), rtol=1e-6)
    if nan.any():
        with pytest.raises(ValueError, match=r"r\.arff, line \d+: instance \d+, attribute "
                                             r"'f\d': missing value '\?'"):
            load_miml_arff(p)


# ----------------------------------------------------------------------------- fixed cases
def test_issue_examples_parse(tmp_path):
    rel = ("@relation r\n@attribute id {1,2}\n@attribute bag relational\n"
           "@attribute f1 numeric\n@attribute f2 numeric\n@attribute f3 numeric\n@end bag\n"
           "@attribute a {0,1}\n@attribute b {0,1}\n@data\n"
           '2,"0.95, 0.93, 1.2\\n0.4, 0.5, 0.6",0,1\n'
           "1, '1, 2, 3' , 1, 0 % a trailing comment\n")
    ds = load_miml_arff(_write(tmp_path, "r.arff", "\ufeff" + rel.replace("\n", "\r\n")))
    np.testing.assert_allclose(ds.bags[0], [[0.95, 0.93, 1.2], [0.4, 0.5, 0.6]], rtol=1e-6)
    np.testing.assert_array_equal(ds.bags[1], [[1, 2, 3]])
    np.testing.assert_array_equal(ds.Y, [[0, 1], [1, 0]])
    assert ds.meta["bag_ids"] == ["2", "1"]
    mul = ("@RELATION prot\n@ATTRIBUTE acc STRING\n@ATTRIBUTE f1 {NO, YES}\n"
           "@ATTRIBUTE f2 {NO,YES}\n@ATTRIBUTE x NUMERIC\n@ATTRIBUTE L1 {0,1}\n"
           "@ATTRIBUTE L2 {0,1}\n@DATA\n"
           "O00060, NO, YES, 0.5, 1, 0\nO00061, YES, NO, 1.5, 0, 1\n")
    with pytest.warns(UserWarning, match=r"dropped 1 attribute.*'acc' \(string\)"):
        ds = load_mulan_arff(_write(tmp_path, "m.arff", mul), labels=2)
    assert ds.meta["feature_names"] == ["f1", "f2", "x"]  # NO/YES: one 0/1 column each
    np.testing.assert_array_equal(ds.bags.instances, [[0, 1, 0.5], [1, 0, 1.5]])
    np.testing.assert_array_equal(ds.Y, [[1, 0], [0, 1]])
    assert ds.meta["dropped_attributes"] == ["acc"]


def test_sparse_instances_inside_bags_and_nominal_instance_attributes(tmp_path):
    rel = ("@relation r\n@attribute bag relational\n@attribute f1 numeric\n"
           "@attribute c {'a b', c, d}\n@attribute f3 numeric\n@end bag\n@attribute L {0,1}\n"
           "@data\n"
           "\"{0 1.5, 2 2}\\n{1 c}\\n3,'a b',4\",1\n")
    ds = load_miml_arff(_write(tmp_path, "s.arff", rel))
    assert ds.meta["feature_names"] == ["f1", "c=a b", "c=c", "c=d", "f3"]
    np.testing.assert_array_equal(ds.bags[0], [[1.5, 1, 0, 0, 2], [0, 0, 1, 0, 0],
                                               [3, 1, 0, 0, 4]])


def test_binary_nominal_columns_and_id_like_attributes(tmp_path):
    n = 30
    rows = "\n".join(f"id{i},{'hi' if i % 3 else 'lo'},{'t' if i % 2 else 'f'},{i % 3},"
                     f"{i}.5,{i % 2}" for i in range(n))
    text = ("@relation ids\n@attribute rid {" + ",".join(f"id{i}" for i in range(n)) + "}\n"
            "@attribute level {lo,hi}\n@attribute flag {t,f}\n@attribute tri {0,1,2}\n"
            "@attribute x numeric\n@attribute L {0,1}\n@data\n" + rows + "\n")
    p = _write(tmp_path, "ids.arff", text)
    with pytest.warns(UserWarning, match=r"ids\.arff: dropped 1 attribute.*'rid' \(id-like "
                                         r"nominal, 30 distinct values in 30 rows\).*keep_ids"):
        ds = load_mulan_arff(p, labels=1)
    assert ds.meta["feature_names"] == ["level=hi", "flag", "tri=0", "tri=1", "tri=2", "x"]
    X = ds.bags.instances
    np.testing.assert_array_equal(X[:, 0], [float(i % 3 != 0) for i in range(n)])
    np.testing.assert_array_equal(X[:, 1], [float(i % 2 == 1) for i in range(n)])  # t = true
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kept = load_dataset(p, labels=1, keep_ids=True)
    assert kept.bags.n_features == ds.bags.n_features + n
    assert kept.meta["feature_names"][:2] == ["rid=id0", "rid=id1"]


def test_missing_values_named_error_and_imputation(tmp_path):
    text = ("@relation m\n@attribute x numeric\n@attribute c {r,g,b}\n@attribute L {0,1}\n"
            "@data\n1,r,1\n% note\n?,g,0\n3,?,1\n{0 5, 1 b}\n")
    p = _write(tmp_path, "miss.arff", text)
    with pytest.raises(ValueError, match=r"miss\.arff, line 8: feature 'x': missing value '\?'"
                                         r".*missing='mean'"):
        load_mulan_arff(p, labels=1)
    mean = load_mulan_arff(p, labels=1, missing="mean").bags.instances
    np.testing.assert_allclose(mean[:, 0], [1, 3, 3, 5])  # mean of 1, 3, 5
    np.testing.assert_allclose(mean[2, 1:], [1 / 3, 1 / 3, 1 / 3])  # category frequencies
    zero = load_dataset(p, labels=1, missing="zero").bags.instances
    np.testing.assert_array_equal(zero[:, 0], [1, 0, 3, 5])
    np.testing.assert_array_equal(zero[2, 1:], [0, 0, 0])
    with pytest.raises(ValueError, match="missing must be one of"):
        load_mulan_arff(p, labels=1, missing="median")


def test_quoted_values_with_escapes_and_percent(tmp_path):
    text = ("@relation q % comment after the relation\n"
            "@attribute 'odd name' {'it\\'s', \"50% off\", plain}\n"
            "@attribute x numeric % unit: metres\n@attribute L {0,1}\n@data\n"
            "'it\\'s', 1, 1\n\"50% off\",2,0 % the % inside quotes is not a comment\n"
            "plain , 3 , 1\n")
    ds = load_mulan_arff(_write(tmp_path, "q.arff", text), labels=1)
    assert ds.meta["feature_names"] == ["odd name=it's", "odd name=50% off", "odd name=plain",
                                        "x"]
    np.testing.assert_array_equal(ds.bags.instances, [[1, 0, 0, 1], [0, 1, 0, 2], [0, 0, 1, 3]])
