"""DAG integrity of forget_users as Airflow parses it: schedule, params, tasks; its import cost is checked with
every DAG file by test_dag_integrity."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pipelines.settings import PROJECT_ROOT
from pipelines.stack import Stack

pytestmark = pytest.mark.airflow

_DAG_INFO = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
dag = bag.get_dag("forget_users")
print(json.dumps({
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


@pytest.fixture(scope="module")
def dag_info(airflow_stack: Stack) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", _DAG_INFO, str(PROJECT_ROOT / "dags")],
        env=airflow_stack.airflow_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


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
