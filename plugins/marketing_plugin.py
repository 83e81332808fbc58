"""Marketing views in the Airflow UI: a "Marketing" page in the navigation and a tab on each DAG run.

Both are the FastAPI app of `pipelines.web` (built by pipelines.web.airflow_app), mounted on the API
server at /marketing; the UI shows them in an iframe. Airflow's own login protects every route.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from pipelines.web.airflow_app import build

URL_PREFIX = "/marketing"


class MarketingPlugin(AirflowPlugin):
    name = "marketing"
    fastapi_apps = [{"app": build(), "url_prefix": URL_PREFIX, "name": "Marketing"}]
    external_views = [
        {
            "name": "Marketing",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "marketing",
            "category": "browse",
        },
        {
            # The UI fills {DAG_ID} and {RUN_ID}; the page resolves the run's business date.
            "name": "Marketing",
            "href": f"{URL_PREFIX}/runs/{{DAG_ID}}/{{RUN_ID}}",
            "destination": "dag_run",
            "url_route": "marketing_run",
        },
    ]
