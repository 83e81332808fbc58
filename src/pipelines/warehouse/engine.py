"""One place for SQLAlchemy engines: URL normalisation, UTC sessions, one cached engine per URL."""

from __future__ import annotations

import functools

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url

from pipelines.errors import ConfigError

_DRIVER = "postgresql+psycopg2"


def normalize_url(url: str | URL) -> URL:
    """Accept postgres://, postgresql:// and postgresql+psycopg2:// URLs; return the psycopg2 form.

    Airflow connection URIs say `postgres://`, libpq says `postgresql://`; SQLAlchemy wants a driver.
    """
    parsed = make_url(str(url)) if not isinstance(url, URL) else url
    if parsed.get_backend_name() not in ("postgres", "postgresql"):
        raise ConfigError(f"the warehouse must be PostgreSQL, got a {parsed.get_backend_name()!r} URL")
    return parsed.set(drivername=_DRIVER)


@functools.cache
def _engine(url: str) -> Engine:
    # Business dates are UTC dates: every session runs in UTC so `event_ts::date` means the same everywhere.
    return sa.create_engine(
        url,
        pool_pre_ping=True,
        connect_args={"options": "-c timezone=UTC", "application_name": "marketing-pipelines"},
    )


def get_engine(url: str | URL) -> Engine:
    """The process-wide engine for `url` (created once; engines own connection pools)."""
    return _engine(normalize_url(url).render_as_string(hide_password=False))


def database_url(server_url: str | URL, database: str) -> URL:
    """The URL of another database on the same server."""
    return normalize_url(server_url).set(database=database)


def ensure_database(server_url: str | URL, database: str) -> bool:
    """Create `database` on the server when it is missing. Returns True when it was created."""
    admin = sa.create_engine(
        database_url(server_url, "postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
    )
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": database}
            ).scalar()
            if exists:
                return False
            quoted = conn.dialect.identifier_preparer.quote(database)
            conn.exec_driver_sql(f"CREATE DATABASE {quoted}")
            return True
    finally:
        admin.dispose()
