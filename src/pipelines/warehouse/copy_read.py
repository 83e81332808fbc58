"""Read a large SELECT of fixed-width, non-null columns into numpy arrays through binary COPY.

A 15M-row read through a DB-API cursor builds 75M Python objects; binary COPY streams fixed-size tuples
that numpy decodes in place, a few MB at a time, so memory is the arrays themselves.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_WIDTH = {"int8": ">i8", "int4": ">i4", "float8": ">f8", "timestamptz": ">i8"}
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01 in microseconds since 1970-01-01
_BATCH_BYTES = 8 << 20


class _Tuples:
    """A file-like sink for COPY TO STDOUT (BINARY) that decodes whole tuples as they arrive."""

    def __init__(self, columns: Sequence[tuple[str, str]]) -> None:
        fields: list[tuple[str, str]] = [("count", ">i2")]
        for name, pg_type in columns:
            if pg_type not in _WIDTH:
                raise ValueError(f"column {name}: binary read supports {sorted(_WIDTH)}, not {pg_type}")
            fields += [(f"{name}_len", ">i4"), (name, _WIDTH[pg_type])]
        self.dtype = np.dtype(fields)
        self.columns = columns
        self.pending: list[bytes] = []  # psycopg2 writes one message (one row) at a time: decode in batches
        self.pending_bytes = 0
        self.rest = b""
        self.header_done = False
        self.parts: list[np.ndarray] = []

    def write(self, data: bytes) -> int:
        self.pending.append(data)
        self.pending_bytes += len(data)
        if self.pending_bytes >= _BATCH_BYTES:
            self.decode()
        return len(data)

    def decode(self) -> None:
        buffer = self.rest + b"".join(self.pending)
        self.pending, self.pending_bytes = [], 0
        if not self.header_done:
            if len(buffer) < 19:
                self.rest = buffer
                return
            if buffer[:11] != _SIGNATURE:
                raise ValueError("not a binary COPY stream")
            buffer = buffer[19 + int.from_bytes(buffer[15:19], "big") :]
            self.header_done = True
        whole = len(buffer) // self.dtype.itemsize * self.dtype.itemsize
        self.rest = buffer[whole:]
        if not whole:
            return
        chunk = np.frombuffer(buffer, dtype=self.dtype, count=whole // self.dtype.itemsize)
        if (chunk["count"] != len(self.columns)).any():
            raise ValueError(f"binary COPY tuples do not have the {len(self.columns)} columns expected")
        for name, _ in self.columns:
            if (chunk[f"{name}_len"] != self.dtype[name].itemsize).any():
                raise ValueError(f"column {name}: a NULL, or another width than declared, in a binary read")
        self.parts.append({name: chunk[name].astype(chunk[name].dtype.newbyteorder("=")) for name, _ in self.columns})

    def arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for name, pg_type in self.columns:
            parts = [part[name] for part in self.parts]
            values = np.concatenate(parts) if parts else np.zeros(0, dtype=np.dtype(_WIDTH[pg_type]).newbyteorder("="))
            if pg_type == "timestamptz":
                values = (values + _PG_EPOCH_US).astype("datetime64[us]")
            out[name] = values
        return out


def copy_arrays(cursor: object, query: str, columns: Sequence[tuple[str, str]]) -> dict[str, np.ndarray]:
    """Run `query` (parameters already bound) as COPY ... TO STDOUT (FORMAT binary) on a psycopg2 cursor.

    `columns` names the query's output columns in order with their PostgreSQL types.
    """
    sink = _Tuples(columns)
    cursor.copy_expert(f"COPY ({query}) TO STDOUT (FORMAT binary)", sink)  # type: ignore[attr-defined]
    sink.decode()
    if len(sink.rest) not in (0, 2):  # what may remain is the two-byte trailer
        raise ValueError(
            f"binary COPY ended inside a tuple ({len(sink.rest)} bytes left): a NULL, or a column of another "
            "width than declared"
        )
    return sink.arrays()
