"""ARFF token columns -> numeric feature matrix (private; used by both ARFF readers).

Rules (documented in ``docs/data_formats.md``):

- numeric attributes are kept as they are;
- a nominal attribute with two declared values becomes **one** 0/1 column: 1 for the "true"
  value of a recognised pair (``0/1``, ``no/yes``, ``false/true``, ``n/y``, ``f/t``, ``-1/+1``;
  the column keeps the attribute's name), otherwise 1 for the second declared value (column
  ``name=value``); a nominal attribute with one or more than two values is one-hot encoded
  (declared order, columns ``name=value``);
- string and date attributes, and *id-like* nominal attributes (more than half of the rows
  hold distinct values and at least ``ID_MIN_DISTINCT`` distinct values occur), are dropped
  with one ``UserWarning`` naming them; ``keep_ids=True`` keeps them (strings and id-like
  nominals one-hot over the observed / declared values, dates as seconds since 1970 from
  ISO-8601 text);
- ``?`` is a missing value: ``missing="error"`` (default) raises an error naming the file,
  line and attribute; ``"mean"`` replaces it by the column mean over the file's rows (for a
  nominal attribute: the category frequencies); ``"zero"`` by 0 (an all-zero one-hot block).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np

from mimlkit.datasets._arff import MISSING_MODES, Attribute

__all__ = ["encode_columns", "check_missing_mode", "impute", "ID_MIN_DISTINCT"]

ID_MIN_DISTINCT = 20  # an id-like nominal attribute has at least this many distinct values
ID_FRACTION = 0.5  # ... and more distinct values than this share of the rows
_PAIRS = [("0", "1"), ("no", "yes"), ("false", "true"), ("n", "y"), ("f", "t"), ("-1", "1"),
          ("-1", "+1"), ("0.0", "1.0")]
_FEW = 16  # nominal attributes with at most this many values are coded by comparisons

Locate = Callable[[int, str], str]  # (row, attribute name) -> "file, line N: feature 'x'"


def check_missing_mode(missing: str) -> str:
    if missing not in MISSING_MODES:
        raise ValueError(f"missing must be one of {', '.join(map(repr, MISSING_MODES))}, got "
                         f"{missing!r}")
    return missing


def _missing_error(locate: Locate, row: int, name: str) -> ValueError:
    return ValueError(f"{locate(row, name)}: missing value '?' (pass missing='mean' or "
                      "missing='zero' to impute it; CLI: -o missing=mean)")


def _numeric(table: np.ndarray, cols: list[int], attrs: list[Attribute],
             locate: Locate) -> np.ndarray:
    """(n, len(cols)) float64, NaN where the token is ``?``; errors name the bad token."""
    block = table[:, cols]
    try:
        out = block.astype(np.float64)
        miss = None
    except ValueError:
        miss = np.char.strip(block) == "?"
        fixed = np.where(miss, "nan", block)
        try:
            out = fixed.astype(np.float64)
        except ValueError:
            for j, p in enumerate(cols):
                col = fixed[:, j]
                try:
                    col.astype(np.float64)
                except ValueError:
                    for r, tok in enumerate(col.tolist()):
                        try:
                            float(tok)
                        except ValueError:
                            raise ValueError(f"{locate(r, attrs[p].name)}: value {tok!r} is not "
                                             "numeric") from None
            raise  # pragma: no cover - one column must have failed
    bad = ~np.isfinite(out)
    if miss is not None:
        bad &= ~miss
    if bad.any():
        r, j = np.argwhere(bad)[0]
        raise ValueError(f"{locate(int(r), attrs[cols[j]].name)}: value {str(block[r, j])!r} is "
                         "NaN/inf (write a missing value as '?')")
    return out


def _equal(block: np.ndarray, v: str) -> np.ndarray:
    """``block == v`` for a fixed-width unicode array, compared as integer code points (numpy's
    string comparison is ~20x slower on the millions of cells of a wide sparse file)."""
    w = block.dtype.itemsize // 4
    if block.dtype.kind != "U" or w == 0 or not block.flags.c_contiguous:
        return block == v
    if len(v) > w:
        return np.zeros(block.shape, dtype=bool)
    view = block.view(np.uint32).reshape(*block.shape, w)
    target = np.array([v], dtype=block.dtype).view(np.uint32)
    if w == 1:
        return view[..., 0] == target[0]
    return (view == target).all(axis=-1)


def _nominal_codes(table: np.ndarray, cols: list[int], values: list[str], attrs: list[Attribute],
                   locate: Locate) -> np.ndarray:
    """(n, len(cols)) int codes in declared order, -1 for ``?``; unknown values are errors."""
    block = table[:, cols]
    codes = np.full(block.shape, -2, dtype=np.int32)
    if len(values) <= _FEW:
        for j, v in enumerate(values):
            codes[_equal(block, v)] = j
        codes[(codes == -2) & _equal(block, "?")] = -1
    else:
        lut = {v: j for j, v in enumerate(values)}
        lut.setdefault("?", -1)
        uniq, inv = np.unique(block, return_inverse=True)
        codes = np.array([lut.get(u, -2) for u in uniq.tolist()],
                         dtype=np.int32)[inv.reshape(block.shape)]
    if (codes == -2).any():
        r, j = np.argwhere(codes == -2)[0]
        a = attrs[cols[j]]
        raise ValueError(f"{locate(int(r), a.name)}: value {str(block[r, j])!r} is not one of its "
                         f"declared categories {a.values[:20]}")
    return codes


def _binary_true(values: list[str]) -> tuple[int, bool]:
    """(index of the value coded 1, whether the pair is a recognised false/true pair)."""
    low = [v.lower() for v in values]
    for f, t in _PAIRS:
        if low == [f, t]:
            return 1, True
        if low == [t, f]:
            return 0, True
    return 1, False


def _one_hot(codes: np.ndarray, k: int) -> np.ndarray:
    out = np.zeros((codes.size, k), dtype=np.float64)
    ok = codes >= 0
    out[np.flatnonzero(ok), codes[ok]] = 1.0
    out[~ok] = np.nan
    return out


def impute(X: np.ndarray, missing: str, first_missing: Callable[[int, int], ValueError]
           ) -> np.ndarray:
    """Fill the NaN cells of ``X`` (missing values) by ``missing``; ``"error"`` raises
    ``first_missing(row, column)`` for the first one."""
    nan = np.isnan(X)
    if not nan.any():
        return X
    if missing == "error":
        r, c = np.argwhere(nan)[0]
        raise first_missing(int(r), int(c))
    if missing == "zero":
        fill = np.zeros(X.shape[1])
    else:
        cnt = (~nan).sum(axis=0)
        fill = np.where(cnt > 0, np.nansum(X, axis=0) / np.maximum(cnt, 1), 0.0)
    X = X.copy()
    r, c = np.nonzero(nan)
    X[r, c] = fill[c]
    return X


def encode_columns(
    table: np.ndarray,
    attrs: list[Attribute],
    cols: list[int],
    locate: Locate,
    *,
    missing: str = "error",
    keep_ids: bool = False,
    source: str = "",
    floats: np.ndarray | None = None,
) -> tuple[np.ndarray, list[str], list[str]]:
    """Features of the token columns ``table[:, cols]`` (attributes ``attrs[p]``, p in cols).

    Returns ``(X float64 n x m, feature names, dropped attribute names)``; see the module
    docstring for the encoding, the dropping rule and ``missing``. ``floats`` (optional): the
    whole table already converted to float64 (used for the numeric columns when finite).
    """
    n = table.shape[0]
    blocks: dict[int, tuple[np.ndarray, list[str]]] = {}
    dropped: list[tuple[str, str]] = []
    num = [p for p in cols if attrs[p].kind == "numeric"]
    if num:
        V = floats[:, num] if floats is not None else None
        if V is None or not np.isfinite(V).all():
            V = _numeric(table, num, attrs, locate)
        for j, p in enumerate(num):
            blocks[p] = (V[:, j:j + 1], [attrs[p].name])
    groups: dict[tuple[str, ...], list[int]] = {}
    for p in cols:
        if attrs[p].kind == "nominal":
            groups.setdefault(tuple(attrs[p].values), []).append(p)
    for values, ps in groups.items():
        codes = _nominal_codes(table, ps, list(values), attrs, locate)
        k = len(values)
        if k == 2:  # the whole group at once (a sparse text file has thousands of these)
            t, plain = _binary_true(list(values))
            B = (codes == t).astype(np.float64)
            B[codes < 0] = np.nan
            for j, p in enumerate(ps):
                a = attrs[p]
                blocks[p] = (B[:, j:j + 1], [a.name if plain else f"{a.name}={a.values[t]}"])
            continue
        for j, p in enumerate(ps):
            a, c = attrs[p], codes[:, j]
            if k > 2 and not keep_ids:
                seen = np.unique(c[c >= 0]).size
                if seen >= ID_MIN_DISTINCT and seen > ID_FRACTION * n:
                    dropped.append((a.name, f"id-like nominal, {seen} distinct values in "
                                            f"{n} rows"))
                    continue
            blocks[p] = (_one_hot(c, k), [f"{a.name}={v}" for v in a.values])
    for p in cols:
        a = attrs[p]
        if a.kind not in ("string", "date"):
            continue
        if not keep_ids:
            dropped.append((a.name, a.kind))
            continue
        col = table[:, p]
        miss = col == "?"
        if a.kind == "date":
            try:
                v = np.where(miss, "NaT", col).astype("datetime64[s]").astype(np.float64)
            except ValueError:
                raise ValueError(f"{locate(0, a.name)}: date values must be ISO-8601 "
                                 "(yyyy-MM-ddTHH:mm:ss) to be kept") from None
            v[miss] = np.nan
            blocks[p] = (v[:, None], [a.name])
        else:
            uniq, inv = np.unique(col[~miss], return_inverse=True)
            codes = np.full(n, -1, dtype=np.int64)
            codes[~miss] = inv
            blocks[p] = (_one_hot(codes, uniq.size), [f"{a.name}={u}" for u in uniq.tolist()])
    if dropped:
        what = ", ".join(f"{name!r} ({why})" for name, why in dropped)
        warnings.warn(f"{source + ': ' if source else ''}dropped {len(dropped)} attribute(s) "
                      f"that cannot serve as features: {what}; pass keep_ids=True to keep them",
                      UserWarning, stacklevel=3)
    order = [p for p in cols if p in blocks]
    if not order:
        return np.zeros((n, 0)), [], [d for d, _ in dropped]
    X = np.concatenate([blocks[p][0] for p in order], axis=1) if len(order) > 1 \
        else blocks[order[0]][0]
    names = [nm for p in order for nm in blocks[p][1]]
    owner = [p for p in order for _ in blocks[p][1]]
    X = impute(X, missing, lambda r, c: _missing_error(locate, r, attrs[owner[c]].name))
    return X, names, [d for d, _ in dropped]
