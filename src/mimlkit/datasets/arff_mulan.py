"""Mulan single-instance multi-label ARFF + label XML -> ``MIMLDataset`` of one-instance bags.

- Dense rows (``v1,v2,...``) and sparse rows (``{index value, ...}``; omitted numeric values
  are 0, omitted nominal values take the first declared category, as in Weka).
- Numeric features are kept; nominal features are one-hot encoded (declared category order,
  feature names ``attr=value``; ``?`` gives an all-zero block). String/date features are
  rejected. A missing numeric feature value ``?`` is an error (impute first).
- Labels are matched **by name** from the Mulan XML found next to the ARFF by dataset stem
  (``emotions.arff`` -> ``emotions.xml``, ``yeast-train.arff`` -> ``yeast.xml``) or given as
  ``labels_xml``; the ARFF attribute order is the canonical label order. A label value ``?``
  becomes -1 (unobserved).

Errors name the file and the 1-based line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mimlkit.bags import Bags
from mimlkit.datasets._arff import (
    Attribute,
    dataset_meta,
    label_matrix,
    read_arff,
    resolve_label_names,
    split_values,
    unquote,
)
from mimlkit.datasets.base import MIMLDataset

__all__ = ["load_mulan_arff"]


def load_mulan_arff(
    path: str | Path,
    *,
    labels_xml: str | Path | None = None,
    labels: int | list[str] | None = None,
    dtype: type = np.float32,
) -> MIMLDataset:
    """Read a Mulan ARFF; each row becomes a bag of one instance.

    Parameters
    ----------
    path : the ``.arff`` file.
    labels_xml : Mulan label XML; default: found next to the file by dataset stem.
    labels : override: number of trailing label attributes, or their names.
    dtype : feature dtype (float32 by default).
    """
    path, lines, header = read_arff(path)
    attrs = header.attributes
    for a in attrs:
        if a.kind == "relational":
            raise ValueError(f"{path}, line {a.line}: relational attribute {a.name!r}: this is a "
                             "multi-instance ARFF; use load_miml_arff")
    label_pos, label_src = resolve_label_names(attrs, path, labels_xml=labels_xml, labels=labels)
    is_label = np.zeros(len(attrs), dtype=bool)
    is_label[label_pos] = True
    for p in np.flatnonzero(~is_label):
        a = attrs[p]
        if a.kind in ("string", "date"):
            raise ValueError(f"{path}, line {a.line}: feature {a.name!r} has type {a.kind}; "
                             "only numeric and nominal features are supported")
    table, linenos = _read_rows(lines, header.data_line, attrs, path)
    if table.shape[0] == 0:
        raise ValueError(f"{path}: no data rows after @data (line {header.data_line})")

    Y = label_matrix(table, attrs, label_pos, path, linenos)
    feat = np.flatnonzero(~is_label)
    if feat.size == 0:
        raise ValueError(f"{path}: no feature attributes besides the {len(label_pos)} labels")
    num = [int(p) for p in feat if attrs[p].kind == "numeric"]
    num_vals: dict[int, np.ndarray] = {}
    if num:
        try:  # one vectorised conversion for all numeric columns
            block = table[:, num].astype(np.float64)
            num_vals = {p: block[:, j] for j, p in enumerate(num)}
        except ValueError:
            num_vals = {p: _numeric_column(table[:, p], attrs[p], path, linenos) for p in num}
        allv = np.stack([num_vals[p] for p in num], axis=1)
        bad = ~np.isfinite(allv)
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise ValueError(f"{path}, line {linenos[r]}: feature {attrs[num[c]].name!r} is "
                             "NaN/inf")
    blocks: list[np.ndarray] = []
    names: list[str] = []
    for p in feat:
        a = attrs[p]
        if a.kind == "numeric":
            blocks.append(num_vals[int(p)][:, None])
            names.append(a.name)
        else:
            blocks.append(_one_hot(table[:, p], a, path, linenos))
            names.extend(f"{a.name}={v}" for v in a.values)
    X = np.concatenate(blocks, axis=1).astype(dtype, copy=False)
    meta = dataset_meta(path, "arff-mulan", header, label_src, names)
    return MIMLDataset(Y=Y, label_names=[attrs[p].name for p in label_pos],
                       bags=Bags.from_array(X), name=path.stem, meta=meta)


def _read_rows(lines: list[str], start: int, attrs: list[Attribute],
               path: Path) -> tuple[np.ndarray, list[int]]:
    """All data rows as an (n_rows, n_attributes) array of raw string tokens."""
    A = len(attrs)
    defaults = ["0" if a.kind == "numeric" else (a.values[0] if a.values else "?") for a in attrs]
    rows: list[list[str]] = []
    simple: list[str] = []  # dense rows without quotes: tokenised in one vectorised split
    simple_at: list[int] = []
    linenos: list[int] = []
    for i in range(start, len(lines)):
        s = lines[i].strip()
        if not s or s[0] == "%":
            continue
        ln = i + 1
        where = f"{path}, line {ln}"
        if s[0] == "{":
            if not s.endswith("}"):
                raise ValueError(f"{where}: unterminated sparse row (file truncated?)")
            vals = list(defaults)
            inner = s[1:-1].strip()
            for item in split_values(inner, where) if inner else []:
                idx, _, val = item.strip().partition(" ")
                try:
                    k = int(idx)
                except ValueError:
                    raise ValueError(f"{where}: bad sparse entry {item!r} "
                                     "(expected 'index value')") from None
                if not 0 <= k < A:
                    raise ValueError(f"{where}: sparse index {k} out of range (0..{A - 1})")
                vals[k] = val.strip()
            rows.append(vals)
        elif "'" in s or '"' in s:
            vals = split_values(s, where)
            if len(vals) != A:
                raise ValueError(f"{where}: {len(vals)} values, expected {A} (file truncated?)")
            rows.append(vals)
        else:
            if s.count(",") != A - 1:
                raise ValueError(f"{where}: {s.count(',') + 1} values, expected {A} "
                                 "(file truncated?)")
            simple.append(s)
            simple_at.append(len(rows))
            rows.append([])  # placeholder, filled from the vectorised split
        linenos.append(ln)
    if len(simple) == len(rows):  # the common case: all rows dense and unquoted
        flat = ",".join(simple).split(",") if simple else []
        return np.array(flat, dtype=str).reshape(len(rows), A), linenos
    table = np.empty((len(rows), A), dtype=object)
    if simple:
        flat = np.array(",".join(simple).split(","), dtype=object).reshape(len(simple), A)
        table[np.asarray(simple_at)] = flat
    others = [j for j, r in enumerate(rows) if r]
    if others:
        table[np.asarray(others)] = np.array([rows[j] for j in others], dtype=object)
    return table.astype(str), linenos


def _numeric_column(col: np.ndarray, a: Attribute, path: Path, linenos: list[int]) -> np.ndarray:
    try:
        out = col.astype(np.float64)
    except ValueError:
        for r, tok in enumerate(col):
            try:
                float(unquote(tok))
            except ValueError:
                what = "missing value '?'" if tok == "?" else f"value {str(tok)!r}"
                raise ValueError(f"{path}, line {linenos[r]}: feature {a.name!r}: {what} is not "
                                 "numeric" + (" (impute missing values first)" if tok == "?"
                                              else "")) from None
        out = np.array([float(unquote(t)) for t in col])
    return out


def _one_hot(col: np.ndarray, a: Attribute, path: Path, linenos: list[int]) -> np.ndarray:
    col = np.array([unquote(t) for t in col]) if any("'" in t or '"' in t for t in col) else col
    lut = {v: j for j, v in enumerate(a.values)}
    uniq, inv = np.unique(col, return_inverse=True)
    codes = np.empty(uniq.size, dtype=np.int64)
    for j, u in enumerate(uniq):
        if u == "?":
            codes[j] = -1
        elif u in lut:
            codes[j] = lut[u]
        else:
            r = int(np.flatnonzero(inv == j)[0])
            raise ValueError(f"{path}, line {linenos[r]}: feature {a.name!r}: value {str(u)!r} is "
                             f"not one of its declared categories {a.values}")
    c = codes[inv.reshape(-1)]
    out = np.zeros((col.shape[0], len(a.values)), dtype=np.float64)
    ok = c >= 0
    out[np.flatnonzero(ok), c[ok]] = 1.0
    return out
