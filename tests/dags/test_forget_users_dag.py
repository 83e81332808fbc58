"""DAG integrity of forget_users as Airflow parses it: schedule, params, tasks; its import cost is checked with
every DAG file by test_dag_integrity."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import sqlalchemy as sa

from pipelines.settings import PROJECT_ROOT
from pipelines.stack import Stack
from pipelines.warehouse.engine import get_engine

pytestmark = pytest.mark.airflow

_DAG_INFO = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
dag = bag.get_dag("forget_users")
print("RESULT " + json.dumps({
    "import_errors": {k: str(v) for k, v in bag.import_errors.items()},
    "fileloc": dag.fileloc,
    "timetable": type(dag.timetable).__name__,
    "timezone": str(dag.timetable.timezone),
    "catchup": dag.catchup,
    "max_active_runs": dag.max_active_runs,
    "params": {k: {**dag.params.get_param(k).schema, "value": dag.params.get_param(k).value,
                   "description": dag.params.get_param(k).description} for k in dag.params},
    "tasks": {t.task_id: {"pool": t.pool, "upstream": sorted(t.upstream_task_ids), "retries": t.retries}
              for t in dag.tasks},
    "doc_md": bool(dag.doc_md),
}))
"""


def _in_airflow(stack: Stack, script: str, *args: str) -> tuple[dict, str]:
    """Run `script` with the stack's Airflow over the dags folder; its RESULT line and the whole output."""
    done = subprocess.run(
        [sys.executable, "-c", script, str(PROJECT_ROOT / "dags"), *args],
        env=stack.airflow_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"no result from Airflow:\n{output[-4000:]}"
    return json.loads(lines[-1][len("RESULT ") :]), output


@pytest.fixture(scope="module")
def dag_info(airflow_stack: Stack) -> dict:
    return _in_airflow(airflow_stack, _DAG_INFO)[0]


def test_forget_users_is_a_daily_utc_sweep_with_two_independent_tasks(dag_info: dict) -> None:
    assert dag_info["import_errors"] == {}
    assert dag_info["fileloc"].endswith("dags/forget_users.py") and dag_info["doc_md"]
    assert dag_info["timetable"] == "CronDataIntervalTimetable" and dag_info["timezone"] == "UTC"
    assert dag_info["catchup"] is False and dag_info["max_active_runs"] == 1
    tasks = dag_info["tasks"]
    assert set(tasks) == {"erase_users", "enforce_retention"}
    # A failed erasure must not hold back retention, nor the reverse; neither needs the GPU pool.
    assert all(t["upstream"] == [] and t["pool"] == "default_pool" and t["retries"] == 1 for t in tasks.values())


def test_the_form_takes_a_list_of_integer_ids_and_retention_windows(dag_info: dict) -> None:
    params = dag_info["params"]
    assert set(params) == {"user_ids", "retention"}
    ids = params["user_ids"]
    assert ids["type"] == "array" and ids["items"]["type"] == "integer" and ids["value"] == []
    assert params["retention"]["additionalProperties"] == {"type": "integer", "minimum": 1}
    for name, schema in params.items():
        assert schema.get("title") and schema.get("description"), f"param {name} needs a title and description"


_DAG_TEST = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(dag_folder=sys.argv[1]).get_dag("forget_users")
run = dag.test(run_conf=json.loads(sys.argv[2]))
states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
print("RESULT " + json.dumps({"state": str(run.state), "tasks": states}))
"""


@pytest.mark.integration
def test_a_manual_run_with_an_unknown_id_fails_saying_so_and_records_nothing(airflow_stack: Stack) -> None:
    result, log = _in_airflow(airflow_stack, _DAG_TEST, json.dumps({"user_ids": [424242424242]}))
    assert result["state"] == "failed"
    # Bad input fails without a retry; retention belongs to the scheduled run, so a manual run skips it.
    assert result["tasks"] == {"erase_users": "failed", "enforce_retention": "skipped"}, log[-3000:]
    assert "unknown user id(s) 424242424242" in log and "cannot succeed on retry" in log
    with get_engine(airflow_stack.warehouse_url).connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM erasure_requests")).scalar_one() == 0
