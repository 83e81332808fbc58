"""Real marketing_daily DAG runs (dag.test in a subprocess on the test stack) on a tiny generated store."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.report import OUTPUT_TABLES
from pipelines.settings import PROJECT_ROOT
from pipelines.sources import TINY_STORE, load_synthetic_store
from pipelines.stack import Stack
from pipelines.warehouse.engine import get_engine

pytestmark = [pytest.mark.integration, pytest.mark.airflow]

END = TINY_STORE.end_date
# The demo profile with a shorter GAN run: each date trains every model (a rerun retrains from the same
# parent), and the task's thread budget gives each model task one of the two cores here.
RUN = {"business_date": END.isoformat(), "overrides": {"creatives": {"train_steps": 80}}}

# Runs one DAG run the way `airflow dags test` does and prints the run's and each task's final state.
_DAG_TEST = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
dag = DagBag(dag_folder=sys.argv[1]).get_dag("marketing_daily")
logical_date = None if sys.argv[2] == "none" else __import__("datetime").datetime.fromisoformat(sys.argv[2])
run = dag.test(logical_date=logical_date, run_conf=json.loads(sys.argv[3]))
states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
print("RESULT " + json.dumps({"state": str(run.state), "tasks": states}))
"""


def run_dag(stack: Stack, conf: dict[str, Any], logical_date: str = "none") -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", _DAG_TEST, str(PROJECT_ROOT / "dags"), logical_date, json.dumps(conf)],
        env=stack.airflow_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"the DAG run did not finish:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return {**json.loads(lines[-1][len("RESULT ") :]), "log": done.stdout + done.stderr}


def snapshot(engine: Engine, day: dt.date) -> dict[str, list[tuple]]:
    """Every output row of a business date, sorted, for exact comparison."""
    with engine.connect() as conn:
        return {
            table: sorted(
                (
                    tuple(str(v) for v in row)
                    for row in conn.execute(sa.text(f"SELECT * FROM {table} WHERE {col} = :d"), {"d": day})
                ),
            )
            for table, col in OUTPUT_TABLES.items()
        }


@pytest.fixture(scope="module")
def warehouse(airflow_stack: Stack) -> Engine:
    engine = get_engine(airflow_stack.warehouse_url)
    load_synthetic_store(engine, TINY_STORE, airflow_stack.settings.fashion_mnist_path())
    return engine


@pytest.fixture(scope="module")
def first_run(airflow_stack: Stack, warehouse: Engine) -> dict[str, Any]:
    return run_dag(airflow_stack, RUN)


def test_full_run_writes_the_expected_partitions(
    first_run: dict[str, Any], warehouse: Engine, airflow_stack: Stack
) -> None:
    assert first_run["state"] == "success", first_run["log"][-3000:]
    assert set(first_run["tasks"].values()) == {"success"}
    rows = {table: len(r) for table, r in snapshot(warehouse, END).items()}
    assert rows["dq_results"] > 0
    # The loop's tasks ran in the DAG: the plan for the next day, and an empty effect report (no impressions
    # are logged in this store).
    assert first_run["tasks"]["plan_delivery"] == first_run["tasks"]["evaluate_effects"] == "success"
    assert rows["delivery_plan"] > 0 and rows["effect_reports"] == 0
    assert "no impressions were logged" in first_run["log"]
    report = json.loads((airflow_stack.settings.artifacts / "reports" / f"{END}.json").read_text())
    assert report["rows"] == rows and report["data_quality"]["verdict"] in ("pass", "warn")


def test_rerun_of_a_date_leaves_identical_rows(
    first_run: dict[str, Any], warehouse: Engine, airflow_stack: Stack
) -> None:
    before = snapshot(warehouse, END)
    again = run_dag(airflow_stack, RUN)
    assert again["state"] == "success"
    assert snapshot(warehouse, END) == before


def _stopped_by_the_gate(
    warehouse: Engine, airflow_stack: Stack, add: str, params: dict[str, Any], remove: str
) -> tuple[dict[str, Any], list[str]]:
    """Run RUN with bad rows added by `add` (and taken out by `remove` afterwards): the run must stop in the
    gate with every model output, plan and report as it was. Returns the run and the critical rules it broke."""
    before = snapshot(warehouse, END)
    with warehouse.begin() as conn:
        conn.execute(sa.text(add), params)
    try:
        failed = run_dag(airflow_stack, RUN)
    finally:
        with warehouse.begin() as conn:
            conn.execute(sa.text(remove))
    assert failed["state"] == "failed"
    assert failed["tasks"]["check_data_quality"] == "failed"
    assert all(state == "upstream_failed" for task, state in failed["tasks"].items() if task != "check_data_quality")
    after = snapshot(warehouse, END)
    for table in OUTPUT_TABLES:
        if table != "dq_results":  # the gate records its verdict; every other output stays as it was
            assert after[table] == before[table], table
    with warehouse.connect() as conn:
        query = """SELECT expectation FROM dq_results
                   WHERE as_of_date = :d AND NOT success AND severity = 'critical' ORDER BY 1"""
        rules = list(conn.execute(sa.text(query), {"d": END}).scalars())
    return failed, rules


def test_critical_failure_stops_the_run_and_keeps_the_last_good_outputs(
    first_run: dict[str, Any], warehouse: Engine, airflow_stack: Stack
) -> None:
    failed, rules = _stopped_by_the_gate(
        warehouse,
        airflow_stack,
        """INSERT INTO events (batch_date, event_id, user_id, item_id, event_type, event_ts, price, quantity)
           SELECT batch_date, 999999999, user_id, item_id, 'purchase', event_ts, -5, 1
           FROM events WHERE batch_date = :d LIMIT 1""",
        {"d": END},
        "DELETE FROM events WHERE event_id = 999999999",
    )
    assert "price" in failed["log"] and "999999999" in failed["log"]  # the message names the rule and the row
    assert len(rules) >= 1


def test_a_bad_outcomes_batch_stops_the_run_and_changes_nothing(
    first_run: dict[str, Any], warehouse: Engine, airflow_stack: Stack
) -> None:
    """The delivery log's rules gate the run like the events': an outcome that names no impression and
    carries a negative revenue stops it before any model, plan or report is written."""
    failed, rules = _stopped_by_the_gate(
        warehouse,
        airflow_stack,
        """INSERT INTO outcomes (batch_date, impression_id, click_ts, conversion_ts, revenue)
           VALUES (:d, 999999998, :c, :c + interval '1 minute', -3)""",
        {"d": END, "c": dt.datetime.combine(END, dt.time(12), tzinfo=dt.UTC)},
        "DELETE FROM outcomes WHERE impression_id = 999999998",
    )
    assert "outcomes" in failed["log"] and "999999998" in failed["log"]  # the rule and the bad row are named
    assert rules and all(rule.startswith("outcomes.") for rule in rules), rules


def test_manual_run_without_logical_date_or_param_is_refused(airflow_stack: Stack, warehouse: Engine) -> None:
    refused = run_dag(airflow_stack, {})
    assert refused["state"] == "failed"
    assert "needs the 'business_date' parameter" in refused["log"]
