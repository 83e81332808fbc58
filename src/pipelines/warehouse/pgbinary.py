"""PostgreSQL binary values of whole pandas columns, one NumPy pass per column, no Python per row.

`value_encoder(pg_type)` gives, for a type name as `format_type` spells it, a function from a column and
its null mask to one big-endian value a row: what `COPY ... (FORMAT binary)` expects after each field's
length. Values at null positions are placeholders. A value the type cannot hold raises ValueError: a binary
field has no text for the server to re-parse, so an int2 overflow or a naive timestamp would otherwise be
written wrong instead of failing. Text is not here: it varies in length, and binary_copy groups it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

Encode = Callable[["pd.Series", "np.ndarray"], "np.ndarray"]

PG_EPOCH_DAYS = 10_957  # 2000-01-01 - 1970-01-01: PostgreSQL counts dates and times from 2000
PG_EPOCH_US = PG_EPOCH_DAYS * 86_400 * 1_000_000
NUMERIC_NEG = 0x4000
NUMERIC_MAX_PRECISION = 18  # scaled values stay exact in int64
_NUMERIC = re.compile(r"numeric\((\d+),(\d+)\)")
_TIMESTAMP = re.compile(r"timestamp(?:\(\d\))? with(out)? time zone")
_TEXT = re.compile(r"text|character varying(?:\(\d+\))?")


def is_text(pg_type: str) -> bool:
    return _TEXT.fullmatch(pg_type) is not None


def value_encoder(pg_type: str) -> Encode | None:
    """The encoder for a fixed-size type, or None (text, or a type binary COPY does not cover here)."""
    fixed: dict[str, Encode] = {
        "smallint": lambda s, n: _integer(s, n, 16),
        "integer": lambda s, n: _integer(s, n, 32),
        "bigint": lambda s, n: _integer(s, n, 64),
        "real": lambda s, n: _float(s, n, 4),
        "double precision": lambda s, n: _float(s, n, 8),
        "boolean": _boolean,
        "date": _date,
    }
    if pg_type in fixed:
        return fixed[pg_type]
    if stamp := _TIMESTAMP.fullmatch(pg_type):
        aware = stamp.group(1) is None
        return lambda s, n: _timestamp(s, n, aware=aware)
    if (number := _NUMERIC.fullmatch(pg_type)) and int(number.group(1)) <= NUMERIC_MAX_PRECISION:
        precision, scale = int(number.group(1)), int(number.group(2))
        return lambda s, n: _numeric(s, n, precision, scale)
    return None


def _numbers(series: pd.Series) -> np.ndarray:
    """The column as int64 (or float64 when it holds fractions), nulls as 0."""
    import numpy as np
    import pandas as pd

    if series.dtype == object:
        try:
            series = pd.to_numeric(series, dtype_backend="numpy_nullable")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not a number: {exc}") from exc
    if not pd.api.types.is_numeric_dtype(series.dtype):
        raise ValueError(f"expected numbers, got a {series.dtype} column")
    if pd.api.types.is_float_dtype(series.dtype):
        return series.to_numpy(np.float64, na_value=0.0)
    if pd.api.types.is_unsigned_integer_dtype(series.dtype):
        _check_range(series.to_numpy(np.uint64, na_value=0), 0, 2**63 - 1)
    return series.to_numpy(np.int64, na_value=0)


def _check_range(values: np.ndarray, low: float, high: float) -> None:
    bad = (values < low) | (values > high)
    if bad.any():
        raise ValueError(f"{values[bad][0].item()!r} is out of range [{low}, {high}]")


def _integer(series: pd.Series, nulls: np.ndarray, bits: int) -> np.ndarray:
    import numpy as np

    values = _numbers(series)
    if values.dtype.kind == "f":
        fractional = values != np.trunc(values)  # NaN too (nulls are 0 by now)
        if fractional.any():
            raise ValueError(f"{values[fractional][0].item()!r} is not an integer")
    _check_range(values, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return values.astype(f">i{bits // 8}")


def _float(series: pd.Series, nulls: np.ndarray, width: int) -> np.ndarray:
    import numpy as np

    values = _numbers(series)
    with np.errstate(over="ignore"):  # found below, with the value in the message
        out = values.astype(f">f{width}")
    overflow = np.isinf(out) & np.isfinite(values)
    if overflow.any():
        raise ValueError(f"{values[overflow][0].item()!r} is out of range for a {8 * width}-bit float")
    return out


def _boolean(series: pd.Series, nulls: np.ndarray) -> np.ndarray:
    import numpy as np

    if series.dtype != bool:
        try:
            series = series.astype("boolean")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not a boolean: {exc}") from exc
    return series.to_numpy(np.uint8, na_value=0)


def _date(series: pd.Series, nulls: np.ndarray) -> np.ndarray:
    import numpy as np
    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(series.dtype):
        if getattr(series.dtype, "tz", None) is not None:
            series = series.dt.tz_localize(None)  # the wall-clock date, as PostgreSQL reads a text offset
        days = series.to_numpy("datetime64[D]").view(np.int64)
    else:  # date objects or ISO strings: convert each distinct value once (a date column is mostly constant)
        codes, uniques = pd.factorize(series)
        try:
            distinct = np.array(list(uniques), dtype="datetime64[D]").view(np.int64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not a date: {exc}") from exc
        days = np.append(distinct, 0)[codes]  # code -1 (null) picks the trailing 0
    days = np.where(nulls, 0, days - PG_EPOCH_DAYS)
    _check_range(days, -(2**31), 2**31 - 1)
    return days.astype(">i4")


def _timestamp(series: pd.Series, nulls: np.ndarray, *, aware: bool) -> np.ndarray:
    import numpy as np
    import pandas as pd

    if not pd.api.types.is_datetime64_any_dtype(series.dtype):
        try:
            series = pd.to_datetime(series)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not a timestamp: {exc}") from exc
    has_zone = getattr(series.dtype, "tz", None) is not None
    if aware and not has_zone:
        raise ValueError("timezone-naive timestamps for timestamptz; localize them first (Series.dt.tz_localize)")
    if has_zone:  # timestamptz: the UTC instant; timestamp: the wall-clock time, as PostgreSQL reads an offset
        series = (series.dt.tz_convert("UTC") if aware else series).dt.tz_localize(None)
    micros = series.to_numpy("datetime64[us]").view(np.int64)  # floors nanoseconds, like strftime's %f
    return np.where(nulls, 0, micros - PG_EPOCH_US).astype(">i8")


def _numeric(series: pd.Series, nulls: np.ndarray, precision: int, scale: int) -> np.ndarray:
    """numeric(p, s) as [ndigits, weight, sign, dscale, base-10000 digits...], a fixed count of digits.

    Leading and trailing zero digits are allowed on input; the server normalises them. Floats are rounded
    half away from zero at `scale` digits (the server rounds the same way, from the decimal text).
    """
    import numpy as np

    values = _numbers(series)
    if values.dtype.kind == "f":
        if not np.isfinite(values).all():
            raise ValueError(f"{values[~np.isfinite(values)][0].item()!r} does not fit numeric({precision}, {scale})")
        with np.errstate(over="ignore"):
            magnitude_f = np.floor(np.abs(values) * 10.0**scale + 0.5)
        too_big = magnitude_f >= 10.0**precision
        magnitude = np.where(too_big, 0, magnitude_f).astype(np.int64)
    else:
        too_big = (values >= 10 ** (precision - scale)) | (values <= -(10 ** (precision - scale)))
        magnitude = np.abs(np.where(too_big, 0, values)) * 10**scale
    if too_big.any():
        raise ValueError(f"{values[too_big][0].item()!r} does not fit numeric({precision}, {scale})")
    whole_groups, fraction_groups = -(-(precision - scale) // 4), -(-scale // 4)
    whole, fraction = np.divmod(magnitude, 10**scale)
    fraction = fraction * 10 ** (4 * fraction_groups - scale)  # fraction digits come in groups of four
    out = np.empty((len(values), 4 + whole_groups + fraction_groups), dtype=">i2")  # [rows, header + digits]
    out[:, 0] = whole_groups + fraction_groups
    out[:, 1] = whole_groups - 1
    out[:, 2] = np.where((values < 0) & (magnitude > 0), NUMERIC_NEG, 0)
    out[:, 3] = scale
    for k in range(whole_groups):
        out[:, 4 + k] = whole // 10 ** (4 * (whole_groups - 1 - k)) % 10_000
    for k in range(fraction_groups):
        out[:, 4 + whole_groups + k] = fraction // 10 ** (4 * (fraction_groups - 1 - k)) % 10_000
    return out
