"""`make airflow` / `make stop` on one machine: the whole process tree stops, the UI stays local and private.

The process tests start a real tree in place of `airflow standalone`: a parent that dies on SIGTERM and
SIGINT, and two children that ignore both, one in a process group of its own (as Airflow's task
processes are), the others Airflow's scheduler and workers once standalone has exited.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines import processes
from pipelines.errors import ConfigError
from pipelines.settings import PROJECT_ROOT, Settings
from pipelines.stack import Stack, secure_passwords_file

CHILD = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
if sys.argv[1] == "own-group":
    os.setpgid(0, 0)
time.sleep(600)
"""

PARENT = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGINT, signal.SIG_DFL)  # die of Ctrl-C quietly, as of SIGTERM
children = [subprocess.Popen([sys.executable, "-c", sys.argv[2], kind]) for kind in ("same-group", "own-group")]
with open(sys.argv[1] + ".tmp", "w") as out:
    out.write(" ".join(str(pid) for pid in [os.getpid(), *(c.pid for c in children)]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(600)
"""

# What `make airflow` runs, with the command and the pid file from its arguments.
WRAPPER = """
import os, sys
from pathlib import Path
from pipelines.processes import run_group
sys.exit(run_group(sys.argv[2:], os.environ, Path(sys.argv[1]), grace_s=1.0))
"""


def _alive(pid: int) -> bool:
    """Running, not a zombie that nobody reaped (a container's init may never reap orphans)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def _wait(condition, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, list[int]]]:
    """The wrapper `make airflow` runs, its pid file, and the pids of the tree it started."""
    pid_file, pids_out = tmp_path / "standalone.pid", tmp_path / "pids"
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT / "src")}
    command = [sys.executable, "-c", PARENT, str(pids_out), CHILD]
    wrapper = subprocess.Popen([sys.executable, "-c", WRAPPER, str(pid_file), *command], env=env)
    _wait(pids_out.exists, "the process tree to start")
    pids = [int(p) for p in pids_out.read_text().split()]
    yield wrapper, pid_file, pids
    for pid in pids:  # a failed test must not leave sleeping processes behind
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
    if wrapper.poll() is None:
        wrapper.kill()
    wrapper.wait()


def test_stop_ends_the_whole_tree_and_says_what_it_stopped(tree) -> None:
    wrapper, pid_file, pids = tree
    assert {p.pid for p in processes.running(pid_file)} == set(pids)
    with pytest.raises(ConfigError, match="still running.*make stop"):
        processes.run_group([sys.executable, "-c", "pass"], os.environ, pid_file)

    stopped = processes.stop(pid_file, grace_s=1.0)

    assert {p.pid for p in stopped} == set(pids)
    assert any("own-group" in p.command for p in stopped)
    assert not any(_alive(pid) for pid in pids)
    assert not pid_file.exists()
    assert wrapper.wait(timeout=30) != 0  # its command was killed


def test_ctrl_c_on_the_wrapper_stops_what_the_command_left(tree) -> None:
    wrapper, pid_file, pids = tree
    wrapper.send_signal(signal.SIGINT)
    wrapper.wait(timeout=30)
    assert not any(_alive(pid) for pid in pids)
    assert not pid_file.exists()


def test_a_stale_pid_file_stops_nothing(tmp_path: Path) -> None:
    pid_file = tmp_path / "standalone.pid"
    pid_file.write_text('{"pgid": 1, "token": "not-a-running-group"}\n')
    assert processes.stop(pid_file) == []
    assert not pid_file.exists()
    pid_file.write_text("12345\n")
    with pytest.raises(ConfigError, match="not a pid file this project wrote"):
        processes.stop(pid_file)


def test_generated_passwords_are_readable_by_their_owner_only(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path)
    path = secure_passwords_file(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    path.chmod(0o644)  # a file an earlier version left world-readable
    path.write_text('{"admin": "secret"}\n')
    assert stat.S_IMODE(secure_passwords_file(settings).stat().st_mode) == 0o600
    assert path.read_text() == '{"admin": "secret"}\n'
    env = Stack("postgresql://w", "postgresql://a", settings).airflow_env({})
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"] == str(path)


def test_the_api_server_listens_on_loopback_unless_told_otherwise(tmp_path: Path) -> None:
    local = Stack("postgresql://w", "postgresql://a", Settings(state_dir=tmp_path)).airflow_env({})
    assert local["AIRFLOW__API__HOST"] == "127.0.0.1"
    exposed = Settings.from_env({"PIPELINES_STATE_DIR": str(tmp_path), "PIPELINES_API_HOST": "0.0.0.0"})
    assert Stack("postgresql://w", "postgresql://a", exposed).airflow_env({})["AIRFLOW__API__HOST"] == "0.0.0.0"
    with pytest.raises(ConfigError, match="PIPELINES_API_HOST"):
        Settings(api_host=" ")
