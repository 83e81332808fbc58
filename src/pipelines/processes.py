"""A long-running command (`airflow standalone`) started as one process group, and stopped as one.

`airflow standalone` starts the scheduler, API server, DAG processor and triggerer, the scheduler's
LocalExecutor starts workers, and each task process takes a process group of its own; SIGTERM to
standalone alone leaves them running. So the command runs in a new session, a pid file in the state
folder records that group and a random token that every process it starts inherits in its environment,
and stopping signals the group and every process carrying the token (TERM, a grace period, then KILL).
Linux only: processes are found through /proc.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipelines.errors import ConfigError

log = logging.getLogger(__name__)

# Not PIPELINES_*: Settings.from_env refuses unknown variables of that prefix in every task process.
TOKEN_ENV = "MARKETING_PIPELINES_GROUP"
GRACE_S = 10.0
_POLL_S = 0.1
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class Process:
    pid: int
    pgid: int
    command: str

    def __str__(self) -> str:
        return f"{self.pid} {self.command}"


def _read_proc(pid: int, token: bytes) -> Process | None:
    """The live process `pid` when its environment carries `token`, else None (gone, a zombie, not ours)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # Fields after the parenthesised command name: state, ppid, pgrp, ...
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] in ("Z", "X"):
            return None
        if token not in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            return None
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, IndexError):
        return None
    command = " ".join(a.decode(errors="replace") for a in argv if a) or stat[stat.index("(") + 1 : stat.rindex(")")]
    return Process(pid, int(fields[2]), command)


def members(token: str) -> list[Process]:
    """Every live process whose environment carries `token`."""
    entry = f"{TOKEN_ENV}={token}".encode()
    own = os.getpid()
    found = (_read_proc(int(name), entry) for name in os.listdir("/proc") if name.isdigit() and int(name) != own)
    return sorted((p for p in found if p is not None), key=lambda p: p.pid)


def _read_pid_file(pid_file: Path) -> tuple[int, str] | None:
    try:
        record = json.loads(pid_file.read_text())
        return int(record["pgid"]), str(record["token"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{pid_file} is not a pid file this project wrote ({exc}); remove it") from None


def running(pid_file: Path) -> list[Process]:
    """The processes of the group recorded in `pid_file` that are still alive."""
    record = _read_pid_file(pid_file)
    return members(record[1]) if record else []


def _signal(pgid: int, processes: Sequence[Process], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
    for process in processes:
        if process.pgid != pgid:  # task processes in groups of their own
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(process.pid, sig)


def stop(pid_file: Path, grace_s: float = GRACE_S) -> list[Process]:
    """Stop the group recorded in `pid_file`: SIGTERM, up to `grace_s` to exit, then SIGKILL.

    Returns the processes that were running. The pid file is removed once none is left.
    """
    record = _read_pid_file(pid_file)
    if record is None:
        return []
    pgid, token = record
    stopped: dict[int, Process] = {}
    deadline = time.monotonic() + grace_s
    sig = signal.SIGTERM
    while alive := members(token):
        # Processes started after the first signal (a worker forking a task) are signalled on the next pass.
        fresh = [p for p in alive if p.pid not in stopped]
        stopped.update((p.pid, p) for p in alive)
        if sig == signal.SIGTERM and time.monotonic() >= deadline:
            sig = signal.SIGKILL
            log.warning("%d process(es) still running after %.0f s: sending SIGKILL", len(alive), grace_s)
            fresh = alive
        if fresh:
            _signal(pgid, fresh, sig)
        if sig == signal.SIGKILL and time.monotonic() >= deadline + grace_s:
            raise ConfigError(f"processes {', '.join(str(p.pid) for p in alive)} survived SIGKILL; see {pid_file}")
        time.sleep(_POLL_S)
    pid_file.unlink(missing_ok=True)
    return sorted(stopped.values(), key=lambda p: p.pid)


def run_group(argv: Sequence[str], env: Mapping[str, str], pid_file: Path, grace_s: float = GRACE_S) -> int:
    """Run `argv` in a new session until it exits; then stop whatever it left. Returns its exit code.

    Ctrl-C reaches only the terminal's foreground group, so SIGINT, SIGTERM and SIGHUP are passed on to
    the command's group.
    """
    if alive := running(pid_file):
        raise ConfigError(
            f"{len(alive)} process(es) of an earlier run are still running ({pid_file}); `make stop` stops them"
        )
    token = uuid.uuid4().hex
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    child = subprocess.Popen(list(argv), env={**env, TOKEN_ENV: token}, start_new_session=True)
    pid_file.write_text(json.dumps({"pgid": child.pid, "token": token, "command": " ".join(argv)}) + "\n")

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in _FORWARDED}
    try:
        code = child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    left = stop(pid_file, grace_s)
    if left:
        log.info("stopped %d process(es) the command left running: %s", len(left), "; ".join(map(str, left)))
    return code
