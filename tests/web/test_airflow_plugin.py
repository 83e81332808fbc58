"""The plugin on a real Airflow API server: Airflow's login guards the pages, forged reviews are refused."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request

import pytest
import sqlalchemy as sa

from pipelines.warehouse.engine import get_engine
from tests.web.conftest import PASSWORD, USER, ApiServer
from tests.web.sample import SampleSpec

pytestmark = [pytest.mark.integration, pytest.mark.airflow]

SPEC = SampleSpec()


def _request(
    url: str, *, token: str | None = None, cookie: str | None = None, data: dict[str, str] | None = None
) -> tuple[int, str]:
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if cookie:
        headers["Cookie"] = f"_token={cookie}"
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers=headers)
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def login(server: ApiServer) -> str:
    request = urllib.request.Request(
        f"{server.url}/auth/token",
        data=json.dumps({"username": USER, "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["access_token"]


def test_plugin_registers_the_marketing_views(api_server: ApiServer) -> None:
    token = login(api_server)
    errors = json.loads(_request(f"{api_server.url}/api/v2/plugins/importErrors", token=token)[1])
    assert errors["total_entries"] == 0, errors  # e.g. a bad setting stops the plugin from loading
    status, body = _request(f"{api_server.url}/api/v2/plugins", token=token)
    assert status == 200
    plugin = next(p for p in json.loads(body)["plugins"] if p["name"] == "marketing")
    assert {v["destination"]: v["href"] for v in plugin["external_views"]} == {
        "nav": "/marketing/",
        "dag_run": "/marketing/runs/{DAG_ID}/{RUN_ID}",
    }
    assert plugin["fastapi_apps"][0]["url_prefix"] == "/marketing"


def test_anonymous_requests_are_refused(api_server: ApiServer) -> None:
    for path in (
        "/marketing/",
        f"/marketing/dates/{SPEC.day}",
        f"/marketing/effects/{SPEC.day}",
        "/marketing/artifacts/data_docs/2024-03-31/index.html",
    ):
        assert _request(api_server.url + path)[0] == 401, path
    assert _request(api_server.url + "/marketing/", cookie="forged.jwt.value")[0] in (401, 403)


def test_logged_in_user_sees_the_page(api_server: ApiServer) -> None:
    status, html = _request(f"{api_server.url}/marketing/", cookie=login(api_server))
    assert status == 200
    assert "business date 2024-03-31" in html and "Signed in as alice" in html
    status, html = _request(f"{api_server.url}/marketing/effects/{SPEC.day}", cookie=login(api_server))
    assert status == 200 and "Effects · business date 2024-03-31" in html


def test_review_needs_the_page_token_not_just_the_session_cookie(api_server: ApiServer) -> None:
    session = login(api_server)
    form = {
        "campaign_date": SPEC.day.isoformat(),
        "campaign_id": str(SPEC.campaign_id),
        "segment_id": "0",
        "category": "bags",
        "rank": "1",
        "banner_size": "300x250",
        "decision": "approved",
    }
    engine = get_engine(api_server.stack.warehouse_url)
    query = sa.text(
        """SELECT status, reviewed_by FROM ad_creatives
           WHERE segment_id = 0 AND category = 'bags' AND banner_size = '300x250'"""
    )

    # What a hostile page can make the browser send: the session cookie rides along, the token cannot.
    forged, _ = _request(f"{api_server.url}/marketing/creatives/review", cookie=session, data=form)
    assert forged == 403
    with engine.connect() as conn:
        assert conn.execute(query).one() == ("pending_review", None)

    page = _request(f"{api_server.url}/marketing/dates/{SPEC.day}", cookie=session)[1]
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    status, _ = _request(
        f"{api_server.url}/marketing/creatives/review", cookie=session, data={**form, "csrf_token": token.group(1)}
    )
    assert status == 303
    with engine.connect() as conn:
        assert conn.execute(query).one() == ("approved", USER)
