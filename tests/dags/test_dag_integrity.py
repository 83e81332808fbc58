"""DAG integrity: every DAG file imports fast, without heavy libraries, and names pools that exist."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.settings import PROJECT_ROOT
from pipelines.stack import Stack, pools

DAG_FILES = sorted((PROJECT_ROOT / "dags").glob("*.py"))
HEAVY = (
    "torch",
    "pandas",
    "great_expectations",
    "sklearn",
    "pipelines.recs",
    "pipelines.profiles",
    "pipelines.creatives",
    "pipelines.quality",
)

_PROBE = """
import importlib.util, json, sys, time
import airflow.sdk  # loaded once per parsing process; what we measure is the DAG file's own cost
path = sys.argv[1]
started = time.perf_counter()
spec = importlib.util.spec_from_file_location("dag_under_test", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
seconds = time.perf_counter() - started
heavy = sorted(m for m in sys.modules if m.split(".")[0] in {h.split(".")[0] for h in json.loads(sys.argv[2])}
               and any(m == h or m.startswith(h + ".") for h in json.loads(sys.argv[2])))
print(json.dumps({"seconds": seconds, "heavy": heavy}))
"""

# The _DAG_INFO probe: the DAG's shape as Airflow sees it.
_DAG_INFO = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
dag = bag.get_dag("marketing_daily")
print(json.dumps({
    "import_errors": {k: str(v) for k, v in bag.import_errors.items()},
    "files": {d.dag_id: d.fileloc for d in bag.dags.values()},
    "timetable": type(dag.timetable).__name__,
    "timezone": str(dag.timetable.timezone) if hasattr(dag.timetable, "timezone") else None,
    "catchup": dag.catchup,
    "max_active_runs": dag.max_active_runs,
    "params": {k: {**dag.params.get_param(k).schema, "description": dag.params.get_param(k).description}
               for k in dag.params},
    "tasks": {t.task_id: {"pool": t.pool, "queue": t.queue, "upstream": sorted(t.upstream_task_ids),
                          "depends_on_past": t.depends_on_past}
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


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_imports_fast_without_heavy_libraries(path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path), json.dumps(HEAVY)], capture_output=True, text=True, check=True
    )
    probe = json.loads(done.stdout.strip().splitlines()[-1])
    assert probe["heavy"] == []
    assert probe["seconds"] < 0.3, f"{path.name} took {probe['seconds']:.3f} s to parse"


@pytest.mark.airflow
def test_marketing_daily_shape(dag_info: dict) -> None:
    assert dag_info["import_errors"] == {}
    assert all(Path(f).stem == dag_id for dag_id, f in dag_info["files"].items()), "one DAG per file, named after it"
    assert dag_info["timetable"] == "CronDataIntervalTimetable" and dag_info["timezone"] == "UTC"
    assert dag_info["catchup"] is False and dag_info["max_active_runs"] == 1 and dag_info["doc_md"]
    tasks = dag_info["tasks"]
    assert "check_data_quality" in tasks and "publish_report" in tasks
    assert tasks["check_data_quality"]["upstream"] == []
    # The loop's daily tasks read and write the warehouse only: the default pool, after the creatives.
    assert tasks["plan_delivery"]["upstream"] == ["generate_ad_creatives"]
    assert tasks["evaluate_effects"]["upstream"] == ["plan_delivery"]
    assert "evaluate_effects" in tasks["publish_report"]["upstream"]
    for name, task in tasks.items():
        if name not in ("check_data_quality", "plan_delivery", "evaluate_effects", "publish_report"):
            assert task["pool"] == "gpu" and task["queue"] == "gpu", f"model task {name} must run in pool gpu"
            # A model's dates run in date order (the parent of D is the champion of D-1), backfills included.
            assert task["depends_on_past"], f"model task {name} must depend on its previous date"
            assert "check_data_quality" in task["upstream"] or task["upstream"], name
        else:
            assert not task["depends_on_past"], name


@pytest.mark.airflow
def test_params_have_titles_and_descriptions(dag_info: dict) -> None:
    params = dag_info["params"]
    assert params["business_date"]["format"] == "date"
    for name, schema in params.items():
        assert schema.get("title") and schema.get("description"), f"param {name} needs a title and description"


@pytest.mark.airflow
def test_every_pool_the_dags_name_exists_after_setup(dag_info: dict, airflow_stack: Stack) -> None:
    existing = pools(airflow_stack)
    named = {task["pool"] for task in dag_info["tasks"].values()}
    assert named <= set(existing), f"pools {named - set(existing)} do not exist: tasks would never be scheduled"
    assert existing["gpu"] == airflow_stack.settings.gpu_pool_slots
