"""Frames as `COPY ... (FORMAT binary)` payloads, laid out by NumPy a whole frame at a time.

Why: pandas' CSV writer costs ~5 us a row and the server then parses the text; binary records skip both.
A binary row is fixed-size when every field is: numbers, dates and timestamps always are, and a text
column with few distinct values is too once rows are grouped by their text values (and by which fields
are null, since a null field is a bare length of -1). Each group is then one NumPy structured array:
a template record with the constant fields, then one strided copy per value column.

The column types come from the catalog, not from pandas dtypes: binary input must match the exact width
(int2/int4/int8, float4/float8). `binary_encoders` says which columns this module can write; callers take
the CSV path for a frame with any other column (bytea, json, arrays, vector) or with text too varied to
group (`encode_frame` returns None). Rows of one frame come out grouped, not in frame order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipelines.warehouse.pgbinary import Encode, is_text, value_encoder

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
TRAILER = (-1).to_bytes(2, "big", signed=True)
TEXT = "text"  # the encoder entry of a text column
MAX_GROUPS = 64  # each group costs a pass over the frame: varied text (titles, names) goes to CSV


def column_types(cursor: object, table: str) -> dict[str, str]:
    """`table`'s columns and their types as `format_type` spells them (e.g. 'numeric(12,2)')."""
    from psycopg2 import sql

    cursor.execute(  # type: ignore[attr-defined]
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
        (sql.Identifier(table).as_string(cursor),),
    )
    return dict(cursor.fetchall())  # type: ignore[attr-defined]


def binary_encoders(types: Mapping[str, str]) -> dict[str, Encode | str]:
    """The columns binary COPY can write, each with its value encoder (or TEXT)."""
    encoders: dict[str, Encode | str] = {}
    for column, pg_type in types.items():
        encode = TEXT if is_text(pg_type) else value_encoder(pg_type)
        if encode is not None:
            encoders[column] = encode
    return encoders


@dataclass(frozen=True)
class _Column:
    """One column of a frame, encoded: fixed-size values and a null mask, or text codes into `texts`."""

    values: np.ndarray | None = None
    nulls: np.ndarray | None = None
    codes: np.ndarray | None = None
    texts: Sequence[bytes] = ()


def encode_frame(frame: pd.DataFrame, table: str, encoders: Mapping[str, Encode | str]) -> bytes | None:
    """`frame`'s rows as a binary COPY payload, or None when its text is too varied to group.

    Every column must be in `encoders`. Raises ValueError naming the column for a value its type cannot hold.
    """
    columns = [_encode_column(frame[name], table, name, encoders[name]) for name in frame.columns]
    groups = _groups(columns, len(frame))
    if groups is None:
        return None
    return b"".join([HEADER, *(_records(columns, rows, len(frame)).data for rows in groups), TRAILER])


def _encode_column(series: pd.Series, table: str, name: str, encode: Encode | str) -> _Column:
    import pandas as pd

    if encode == TEXT:
        codes, uniques = pd.factorize(series)
        return _Column(codes=codes, texts=[str(u).encode() for u in uniques])
    nulls = series.isna().to_numpy()
    try:
        values = encode(series, nulls)  # type: ignore[operator]
    except ValueError as exc:
        raise ValueError(f"{table}.{name}: {exc}") from exc
    return _Column(values=values, nulls=nulls if nulls.any() else None)


def _groups(columns: Sequence[_Column], n_rows: int) -> list[np.ndarray | None] | None:
    """Row indexes of each group of rows with the same text values and null fields ([None]: all rows)."""
    import numpy as np
    import pandas as pd

    keys = np.zeros(n_rows, dtype=np.int64)
    n_keys = 1
    for column in columns:
        if len(column.texts) > MAX_GROUPS:
            return None
        if column.codes is not None:
            keys, n_keys = keys * (len(column.texts) + 1) + column.codes + 1, n_keys * (len(column.texts) + 1)
        elif column.nulls is not None:
            keys, n_keys = keys * 2 + column.nulls, n_keys * 2
        if n_keys > 2**31:  # keep the combined key small: number the distinct keys seen so far
            keys, uniques = pd.factorize(keys)
            n_keys = len(uniques)
    if n_keys == 1:
        return [None]
    codes, uniques = pd.factorize(keys)
    if len(uniques) > MAX_GROUPS:
        return None
    return [np.flatnonzero(codes == g) for g in range(len(uniques))] if len(uniques) > 1 else [None]


def _records(columns: Sequence[_Column], rows: np.ndarray | None, n_rows: int) -> np.ndarray:
    """One group's rows as records: field count, then each field's length and (unless null) its value.

    The group's first row says which fields are null and what its text is; all its rows agree.
    """
    import numpy as np

    first = 0 if rows is None else int(rows[0])
    fields: list[tuple] = [("count", ">i2")]
    constants: dict[str, object] = {"count": len(columns)}
    fixed = []
    for i, column in enumerate(columns):
        fields.append((f"n{i}", ">i4"))
        if column.codes is not None:
            code = column.codes[first]
            text = column.texts[code] if code >= 0 else None
            constants[f"n{i}"] = -1 if text is None else len(text)
            if text:
                fields.append((f"v{i}", f"S{len(text)}"))
                constants[f"v{i}"] = text
        elif column.nulls is not None and column.nulls[first]:
            constants[f"n{i}"] = -1
        else:
            value = np.dtype((column.values.dtype, column.values.shape[1:]))  # numeric: a row of digits
            fields.append((f"v{i}", value))
            constants[f"n{i}"] = value.itemsize
            fixed.append(i)
    template = np.zeros((), dtype=fields)
    for name, value in constants.items():
        template[name] = value
    n = n_rows if rows is None else len(rows)
    out = np.frombuffer(bytearray(template.tobytes()) * n, dtype=template.dtype)  # memcpy-fast, writable
    for i in fixed:
        values = columns[i].values
        out[f"v{i}"] = values if rows is None else values[rows]
    return out
