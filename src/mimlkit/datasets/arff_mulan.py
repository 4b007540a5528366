"""Mulan single-instance multi-label ARFF + label XML -> ``MIMLDataset`` of one-instance bags.

- Dense rows (``v1,v2,...``) and sparse rows (``{index value, ...}``; omitted numeric values
  are 0, omitted nominal values take the first declared category, as in Weka), in any ARFF
  dialect (spaces around separators, quoted values, ``%`` comments, CRLF, BOM; see
  ``_arff``).
- Features: numeric kept; a two-valued nominal becomes one 0/1 column, other nominals are
  one-hot encoded (feature names ``attr=value``); string/date and id-like nominal attributes
  are dropped with a warning unless ``keep_ids=True`` (rules in ``_arff_encode``).
- ``?`` in a feature: an error naming file, line and attribute (``missing="error"``), or
  imputed (``missing="mean"`` / ``"zero"``).
- Labels are matched **by name** from the Mulan XML found next to the ARFF by dataset stem
  (``emotions.arff`` -> ``emotions.xml``, ``yeast-train.arff`` -> ``yeast.xml``) or given as
  ``labels_xml``; the ARFF attribute order is the canonical label order. A label value ``?``
  becomes -1 (unobserved).

Dense unquoted rows are tokenised in one vectorised split and sparse rows in one vectorised
fill; only rows with quotes or trailing comments go through the per-row tokenizer. Errors
name the file and the 1-based line.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mimlkit.bags import Bags
from mimlkit.datasets._arff import (
    Attribute,
    dataset_meta,
    label_matrix,
    parse_sparse_row,
    read_arff,
    resolve_label_names,
    tokenize_row,
)
from mimlkit.datasets._arff_encode import check_missing_mode, encode_columns
from mimlkit.datasets.base import MIMLDataset

__all__ = ["load_mulan_arff"]


def load_mulan_arff(
    path: str | Path,
    *,
    labels_xml: str | Path | None = None,
    labels: int | list[str] | None = None,
    dtype: type = np.float32,
    missing: str = "error",
    keep_ids: bool = False,
) -> MIMLDataset:
    """Read a Mulan ARFF; each row becomes a bag of one instance.

    Parameters
    ----------
    path : the ``.arff`` file.
    labels_xml : Mulan label XML; default: found next to the file by dataset stem.
    labels : override: number of trailing label attributes, or their names.
    dtype : feature dtype (float32 by default).
    missing : ``"error"`` (default: a ``?`` feature value is an error naming file, line and
        attribute), ``"mean"`` (column mean over the file) or ``"zero"``.
    keep_ids : keep string/date and id-like nominal attributes instead of dropping them.
    """
    check_missing_mode(missing)
    path, lines, header = read_arff(path)
    attrs = header.attributes
    for a in attrs:
        if a.kind == "relational":
            raise ValueError(f"{path}, line {a.line}: relational attribute {a.name!r}: this is a "
                             "multi-instance ARFF; use load_miml_arff")
    label_pos, label_src = resolve_label_names(attrs, path, labels_xml=labels_xml, labels=labels)
    is_label = np.zeros(len(attrs), dtype=bool)
    is_label[label_pos] = True
    table, linenos, floats = _read_rows(lines, header.data_line, attrs, path)
    if table.shape[0] == 0:
        raise ValueError(f"{path}: no data rows after @data (line {header.data_line})")

    Y = label_matrix(table, attrs, label_pos, path, linenos)
    feat = [int(p) for p in np.flatnonzero(~is_label)]
    if not feat:
        raise ValueError(f"{path}: no feature attributes besides the {len(label_pos)} labels")

    def locate(row: int, name: str) -> str:
        return f"{path}, line {linenos[row]}: feature {name!r}"

    X, names, dropped = encode_columns(table, attrs, feat, locate, missing=missing,
                                       keep_ids=keep_ids, source=str(path), floats=floats)
    if X.shape[1] == 0:
        raise ValueError(f"{path}: no usable feature attributes (dropped: {', '.join(dropped)}; "
                         "pass keep_ids=True to keep them)")
    meta = dataset_meta(path, "arff-mulan", header, label_src, names)
    if dropped:
        meta["dropped_attributes"] = dropped
    return MIMLDataset(Y=Y, label_names=[attrs[p].name for p in label_pos],
                       bags=Bags.from_array(X.astype(dtype, copy=False)), name=path.stem,
                       meta=meta)


_WS_COMMA = re.compile(r"[ \t]*,[ \t]*")


def _read_rows(lines: list[str], start: int, attrs: list[Attribute],
               path: Path) -> tuple[np.ndarray, list[int], np.ndarray | None]:
    """All data rows as an (n_rows, n_attributes) array of unquoted string tokens, plus the
    same as float64 when every row is dense and plain and every token is a number (one
    direct conversion, about twice as fast as converting the string table)."""
    A = len(attrs)
    defaults = ["0" if a.kind == "numeric" else (a.values[0] if a.values else "") for a in attrs]
    simple: list[str] = []  # dense rows without quotes/comments: one vectorised split
    simple_at: list[int] = []
    sparse: list[str] = []  # sparse rows without quotes/comments: one vectorised fill
    sparse_at: list[int] = []
    other: dict[int, list[str]] = {}  # tokenised one by one (dense rows)
    other_sparse: dict[int, tuple[list[int], list[str]]] = {}
    linenos: list[int] = []
    for i in range(start, len(lines)):
        s = lines[i].strip()
        if not s or s[0] == "%":
            continue
        ln = i + 1
        r = len(linenos)
        linenos.append(ln)
        plain = "'" not in s and '"' not in s and "%" not in s
        if s[0] == "{":
            if plain and s[-1] == "}":
                sparse.append(s[1:-1])
                sparse_at.append(r)
            else:
                other_sparse[r] = parse_sparse_row(s, f"{path}, line {ln}")
        elif plain:
            if s.count(",") != A - 1:
                raise ValueError(f"{path}, line {ln}: {s.count(',') + 1} values, expected {A} "
                                 "(file truncated?)")
            simple.append(s)
            simple_at.append(r)
        else:
            vals = tokenize_row(s, f"{path}, line {ln}")
            if len(vals) != A:
                raise ValueError(f"{path}, line {ln}: {len(vals)} values, expected {A} "
                                 "(file truncated?)")
            other[r] = vals
    n = len(linenos)
    if len(simple) == n:  # the common case: all rows dense and unquoted
        tokens = _split_tokens(simple)
        if len(tokens) != n * A:  # pragma: no cover - the comma counts were checked
            raise ValueError(f"{path}: inconsistent value count")
        floats = None
        if all(a.kind == "numeric" or (a.kind == "nominal" and all(map(_is_number, a.values)))
               for a in attrs):
            try:
                floats = np.array(tokens, dtype=np.float64).reshape(n, A)
            except ValueError:
                floats = None
        return np.array(tokens, dtype=str).reshape(n, A), linenos, floats
    parts: list[tuple[np.ndarray, np.ndarray]] = []  # (rows, token block)
    if simple:
        parts.append((np.asarray(simple_at), _split_simple(simple, A)))
    if other:
        parts.append((np.fromiter(other, dtype=np.int64, count=len(other)),
                      np.array(list(other.values()), dtype=str).reshape(len(other), A)))
    rows, cols, vals = _sparse_entries(sparse, sparse_at, other_sparse, A, path, linenos)
    width = max([len(d) for d in defaults] + [b.dtype.itemsize // 4 for _, b in parts]
                + [vals.dtype.itemsize // 4 if vals.size else 1])
    table = np.empty((n, A), dtype=f"<U{max(width, 1)}")
    sp = np.asarray(sparse_at + list(other_sparse), dtype=np.int64)
    table[sp] = np.asarray(defaults, dtype=table.dtype)
    for at, block in parts:
        table[at] = block
    table[rows, cols] = vals
    return table, linenos, None


def _is_number(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def _split_tokens(rows: list[str]) -> list[str]:
    text = ",".join(rows)
    if " " in text or "\t" in text:
        text = _WS_COMMA.sub(",", text)
    return text.split(",")


def _split_simple(rows: list[str], A: int) -> np.ndarray:
    return np.array(_split_tokens(rows), dtype=str).reshape(len(rows), A)


def _sparse_entries(sparse: list[str], sparse_at: list[int],
                    other: dict[int, tuple[list[int], list[str]]], A: int, path: Path,
                    linenos: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, column, token) of every sparse entry; the plain rows are split in one go."""
    rows_l: list[np.ndarray] = []
    cols_l: list[np.ndarray] = []
    vals_l: list[np.ndarray] = []
    if sparse:
        inner = [x.strip() for x in sparse]
        counts = np.array([x.count(",") + 1 if x else 0 for x in inner], dtype=np.int64)
        text = ",".join(x for x in inner if x)
        if " ," in text or ", " in text or "\t" in text:
            text = _WS_COMMA.sub(",", text)
        items = text.split(",") if text else []
        pairs = " ".join(items).split()
        ok = len(pairs) == 2 * len(items)
        if ok:
            try:
                idx = np.array(pairs[0::2], dtype=np.int64)
            except ValueError:
                ok = False
        if not ok:  # locate the bad entry row by row
            for x, r in zip(sparse, sparse_at, strict=True):
                parse_sparse_row("{" + x + "}", f"{path}, line {linenos[r]}")
            raise ValueError(f"{path}: malformed sparse rows")  # pragma: no cover
        rows_l.append(np.repeat(np.asarray(sparse_at, dtype=np.int64), counts))
        cols_l.append(idx)
        vals_l.append(np.array(pairs[1::2], dtype=str))
    for r, (idx_o, vals_o) in other.items():
        rows_l.append(np.full(len(idx_o), r, dtype=np.int64))
        cols_l.append(np.asarray(idx_o, dtype=np.int64))
        vals_l.append(np.asarray(vals_o, dtype=str))
    if not rows_l:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, dtype="<U1")
    rows, cols = np.concatenate(rows_l), np.concatenate(cols_l)
    vals = np.concatenate(vals_l) if vals_l else np.zeros(0, dtype="<U1")
    bad = (cols < 0) | (cols >= A)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{path}, line {linenos[rows[k]]}: sparse index {cols[k]} out of range "
                         f"(0..{A - 1})")
    return rows, cols, vals
