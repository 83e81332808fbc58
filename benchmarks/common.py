"""What every benchmark shares: the machine line, a scratch PostgreSQL, writing its section of the docs."""

from __future__ import annotations

import datetime as dt
import logging
import os
import platform
import socket
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"


def cpu() -> str:
    """The CPU by name, with the matrix units that decide torch's speed on it.

    Two 2-vCPU machines of the same size have run the GAN step 2.4x apart (an AMD Zen 4 and an Intel Xeon
    with AMX), so a speed figure without the CPU's name cannot be compared with another.
    """
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fields = {key.strip(): value.strip() for key, _, value in (line.partition(":") for line in info.splitlines())}
    name = fields.get("model name") or platform.processor() or platform.machine()
    flags = set(fields.get("flags", "").split())
    units = [label for flag, label in (("amx_bf16", "AMX"), ("avx512_bf16", "AVX512-BF16")) if flag in flags]
    return f"{os.cpu_count()} vCPU {name} ({', '.join([platform.machine(), *units])})"


def hardware() -> str:
    """The machine a figure was measured on, in words."""
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu()}, {memory_gib:.0f} GiB RAM, no GPU"


def machine() -> str:
    """`hardware()` and the date."""
    return f"{hardware()}, {dt.date.today()}"


def timed_sql(conn: Any, what: str, statement: str, params: dict | None = None) -> float:
    """Run one SQL statement on a SQLAlchemy connection, log and return its seconds (store builds)."""
    import sqlalchemy as sa

    started = time.perf_counter()
    conn.execute(sa.text(statement), params or {})
    seconds = time.perf_counter() - started
    logging.getLogger("benchmarks").info("%s: %.1f s", what, seconds)
    return seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wrap_prose(text: str, width: int = 110) -> str:
    """Wrap the prose lines of a markdown body to `width`; tables, images and headings stay as they are."""
    keep = ("|", "!", "#", "```")
    return "\n".join(
        line if not line or line.startswith(keep) else textwrap.fill(line, width, break_on_hyphens=False)
        for line in text.split("\n")
    )


def replace_section(title: str, body: str) -> None:
    """Write `## title` + body into docs/benchmarks.md, replacing that section only."""
    write_section(f"## {title}\n\n{body.strip(chr(10))}\n")


def write_section(text: str) -> None:
    """Write a section that starts with its `## ` heading line, replacing the section of that heading only."""
    heading = text.split("\n", 1)[0] + "\n"
    text = text.strip("\n") + "\n"
    current = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    start = current.find(heading)
    if start < 0:
        updated = current.rstrip("\n") + "\n\n" + text
    else:
        end = current.find("\n## ", start + len(heading))
        updated = current[:start] + text + (current[end:] if end >= 0 else "")
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(updated.rstrip("\n") + "\n")
