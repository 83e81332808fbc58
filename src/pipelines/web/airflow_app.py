"""The Marketing app as the Airflow API server runs it: Airflow's login, connection and DAG runs.

Only the plugin imports this module, inside the API server (and Airflow's other components when they
load plugins), so the Airflow imports here are the API server's own and cheap there. The warehouse comes
from the Airflow connection `marketing_db`, like the tasks' (pipelines.airflow_adapter).
"""

import datetime as dt
import functools

from fastapi import FastAPI
from sqlalchemy.engine import Engine

from pipelines.settings import Settings
from pipelines.stack import CONNECTION_ID
from pipelines.web import csrf
from pipelines.web.app import create_app


@functools.cache
def _engine() -> Engine:
    from airflow.models.connection import Connection

    from pipelines.warehouse.engine import get_engine

    return get_engine(Connection.get_connection_from_secrets(CONNECTION_ID).get_uri())


def run_business_date(dag_id: str, run_id: str) -> dt.date | None:
    """The business date a DAG run processes, by the same rules as its tasks (pipelines.dates)."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    from pipelines.dates import resolve_business_date
    from pipelines.errors import ConfigError

    with create_session() as session:
        run = session.scalar(select(DagRun).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        if run is None:
            return None
        try:
            return resolve_business_date(run.run_type, run.data_interval_start, run.conf or {})
        except ConfigError:
            return None


def _csrf_key() -> bytes:
    """Derived from the JWT secret, which every API server of a deployment shares (it must, for logins);
    deployments signing JWTs with a private key share [api] secret_key instead."""
    from airflow.configuration import conf

    return csrf.derive_key(conf.get("api_auth", "jwt_secret", fallback="") or conf.get("api", "secret_key"))


def build() -> FastAPI:
    """The app the plugin mounts at /marketing."""
    from airflow.api_fastapi.core_api.security import GetUserDep

    async def airflow_user_name(user: GetUserDep) -> str:
        return user.get_name()

    return create_app(
        _engine,
        current_user=airflow_user_name,
        csrf_key=_csrf_key(),
        artifacts_dir=Settings.from_env().artifacts,
        run_date=run_business_date,
    )
