"""The Marketing app in-process on a real warehouse: pages, images, reviews, anti-forgery, empty states.

Identity comes from the `current_user` dependency the app is built with. Here it is a trusted-header
provider (the shape of a reverse-proxy login); Airflow's real login is checked against a live API server
in test_airflow_plugin.py.
"""

from __future__ import annotations

import datetime as dt
import re
import warnings
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from fastapi import HTTPException, Request
from sqlalchemy.engine import Engine

from pipelines import registry
from pipelines.warehouse.partitions import replace_partition
from pipelines.web import csrf
from pipelines.web.app import create_app
from tests.web.sample import SampleSpec, write_sample

with warnings.catch_warnings():  # starlette asks for `httpx2`, which Airflow's pins do not bring
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration

SPEC = SampleSpec()
KEY = csrf.derive_key("test-secret")
USER_HEADER = "X-Test-User"


async def header_user(request: Request) -> str:
    user = request.headers.get(USER_HEADER)
    if not user:
        raise HTTPException(status_code=401, detail="Not authenticated")
    return user


def _client(engine: Engine, artifacts: Path, user: str | None = "alice") -> TestClient:
    app = create_app(
        lambda: engine,
        current_user=header_user,
        csrf_key=KEY,
        artifacts_dir=artifacts,
        run_date=lambda dag_id, run_id: SPEC.day if run_id == "scheduled__2024-03-31" else None,
    )
    client = TestClient(app, root_path="/marketing")
    if user:
        client.headers[USER_HEADER] = user
    return client


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> TestClient:
    write_sample(engine, SPEC, tmp_path)
    return _client(engine, tmp_path)


def _review_form(token: str, decision: str = "approved", segment_id: int = 1) -> dict[str, str]:
    return {
        "campaign_date": SPEC.day.isoformat(),
        "campaign_id": str(SPEC.campaign_id),
        "segment_id": str(segment_id),
        "category": "shoes",
        "rank": "1",
        "banner_size": "300x250",
        "decision": decision,
        "csrf_token": token,
    }


def _status(engine: Engine, segment_id: int) -> tuple[str, str | None, dt.datetime | None]:
    with engine.connect() as conn:
        return conn.execute(
            sa.text(
                """SELECT status, reviewed_by, reviewed_at FROM ad_creatives
                   WHERE campaign_id = :c AND segment_id = :s AND category = 'shoes' AND banner_size = '300x250'"""
            ),
            {"c": SPEC.campaign_id, "s": segment_id},
        ).one()


def test_date_page_shows_every_section(client: TestClient) -> None:
    page = client.get(f"/dates/{SPEC.day}")
    assert page.status_code == 200
    html = page.text
    assert "events.volume.trailing_mean" in html and 'class="warn"' in html  # failed warning shown as warn
    assert html.count('class="pass"') >= 3
    assert "/marketing/artifacts/data_docs/2024-03-31/index.html" in html
    # metrics against the champion re-measured on the same split and the popularity baseline
    row = re.search(r"<td>valid_ndcg@10</td>(.*?)</tr>", html, re.S)
    assert row is not None and re.findall(r">([\d.]+)<", row.group(1)) == ["0.0610", "0.0500", "0.0120"]
    assert "/marketing/artifacts/models/sasrec/2024-03-31/model-abcdef1234.png" in html
    assert html.count('class="creative"') == 12 and "Campaign 7: Spring sale" in html
    # every card is sized to its banner: 300x250 rectangles and 728x90 leaderboards
    assert html.count('width="300" height="250"') == 6 and html.count('width="728" height="90"') == 6
    assert html.count("width: calc(728px + .8rem + 2px)") == 6
    assert "Segment 2: shirts lovers" in html
    assert html.count('<tr><td class="num">') == 9  # three sampled users per segment


def test_dq_observed_values_read_as_words_not_json(client: TestClient) -> None:
    html = client.get(f"/dates/{SPEC.day}").text
    observed = re.findall(r'<td class="observed">(.*?)</td>', html, re.S)
    assert len(observed) == 4
    assert "4,143 rows, 0.0% unexpected" in observed
    assert "4,143; trailing mean 6,250.50 over 7 days; allowed 4,687.88 to 7,813.13" in observed
    assert any(
        o.startswith("batch_date, event_id, user_id, item_id, event_type, event_ts and 2 more") for o in observed
    )
    assert not any("{" in o or "&#34;" in o or "[" in o for o in observed)


def test_index_shows_the_latest_date_and_run_tab_resolves_its_date(client: TestClient) -> None:
    assert "business date 2024-03-31" in client.get("/").text
    tab = client.get("/runs/marketing_daily/scheduled__2024-03-31")
    assert tab.status_code == 200 and "(run scheduled__2024-03-31)" in tab.text
    assert client.get("/runs/marketing_daily/unknown").status_code == 404


def _gate_results(engine: Engine, day: dt.date, *, critical_failure: bool) -> None:
    """The quality gate's rows for `day`, as a run writes them before it stops or goes on."""
    replace_partition(
        engine,
        "dq_results",
        day,
        pd.DataFrame(
            {
                "expectation": ["events.batch.not_empty"],
                "expectation_type": ["ExpectTableRowCountToBeBetween"],
                "table_name": ["events"],
                "column_name": [None],
                "severity": ["critical"],
                "success": [not critical_failure],
                "observed_value": ["0" if critical_failure else "4143"],
                "unexpected_count": pd.array([None], dtype="Int64"),
                "unexpected_sample": [None],
            }
        ),
    )


def test_index_opens_on_the_newest_complete_date_not_a_newer_failed_run(client: TestClient, engine: Engine) -> None:
    far_future, unfinished = dt.date(2099, 1, 1), SPEC.day + dt.timedelta(days=1)
    _gate_results(engine, far_future, critical_failure=True)  # no events that day: the gate stopped the run
    _gate_results(engine, unfinished, critical_failure=False)  # gate passed, the models never wrote
    html = client.get("/").text
    assert "business date 2024-03-31" in html
    skipped = re.search(r'<p class="notice" id="skipped-dates">(.*?)</p>', html, re.S)
    assert skipped is not None  # the newer dates are one click away, with what went wrong
    assert '<a href="/marketing/dates/2099-01-01">2099-01-01</a> (gate failed)' in skipped.group(1)
    assert '<a href="/marketing/dates/2024-04-01">2024-04-01</a> (incomplete)' in skipped.group(1)
    nav = re.search(r'<nav aria-label="business dates">(.*?)</nav>', html, re.S)
    assert nav is not None
    # (the sample's 03-30 and 03-28 hold only the model runs of earlier champions)
    states = ["gate-failed", "incomplete", "complete current", "incomplete", "incomplete"]
    assert re.findall(r'class="([^"]+)"', nav.group(1)) == states
    failed = client.get("/dates/2099-01-01").text
    assert "business date 2099-01-01" in failed and "The run for 2099-01-01: gate failed." in failed
    assert 'id="skipped-dates"' not in failed


def test_index_falls_back_to_the_newest_date_when_no_run_completed(engine: Engine, tmp_path: Path) -> None:
    _gate_results(engine, dt.date(2099, 1, 1), critical_failure=True)
    _gate_results(engine, dt.date(2098, 1, 1), critical_failure=True)
    html = _client(engine, tmp_path).get("/").text
    assert "business date 2099-01-01" in html and "The run for 2099-01-01: gate failed." in html


def _served(html: str) -> list[list[str]]:
    table = re.search(r'<table id="served-table">(.*?)</table>', html, re.S)
    assert table is not None
    return [
        re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in re.findall(r"<tr>(<td.*?)</tr>", table.group(1), re.S)
    ]


def test_date_page_names_the_serving_versions_and_the_dates_they_were_trained_as_of(client: TestClient) -> None:
    html = client.get(f"/dates/{SPEC.day}").text
    assert _served(html) == [
        ["creative_gan", "cgan-v1", "2024-03-28", "current", "not private"],
        ["sasrec", "sasrec-v1", "2024-03-31", "current", "not private"],
        ["user_profile_vae", "user_profile_vae-v1", "2024-03-31", "current", "DP-SGD, ε = 3.80 spent (budget 4)"],
    ]
    assert 'id="stale"' not in html


def test_a_backfilled_promotion_at_an_earlier_date_shows_the_date_as_stale(client: TestClient, engine: Engine) -> None:
    earlier = SPEC.day - dt.timedelta(days=2)
    with engine.begin() as conn:  # a backfill of 03-29 promotes a model: 03-31's parent changes
        conn.execute(
            sa.text(
                """INSERT INTO model_runs (model_name, version, as_of_date, status, artifact_path)
                   VALUES ('sasrec', 'sasrec-b', :d, 'candidate', 'x')"""
            ),
            {"d": earlier},
        )
        candidate = registry.get_run(conn, "sasrec", "sasrec-b")
        registry.record_outcome(
            conn, registry.Outcome("sasrec", earlier, "sasrec-b", registry.Decision(True, "backfill"), candidate, None)
        )
    html = client.get(f"/dates/{SPEC.day}").text
    stale = re.search(r'<div class="stale" id="stale">(.*?)</div>', html, re.S)
    assert stale is not None and "Stale: rerun 2024-03-31." in stale.group(1)
    assert f"sasrec: lineage changed by the {earlier} run of sasrec" in stale.group(1)
    assert ["sasrec", "sasrec-v1", "2024-03-31", "stale", "not private"] in _served(html)


def test_creative_images_are_served_as_png(client: TestClient) -> None:
    html = client.get(f"/dates/{SPEC.day}").text
    src = re.search(r'class="creative" src="/marketing(/creatives/image\?[^"]+)"', html)
    assert src is not None
    image = client.get(src.group(1).replace("&amp;", "&"))
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")
    missing = src.group(1).replace("&amp;", "&").replace("rank=1", "rank=9")
    assert client.get(missing).status_code == 404


def test_approval_records_who_and_when_and_feeds_the_ad_server_view(client: TestClient, engine: Engine) -> None:
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get(f"/dates/{SPEC.day}").text)
    assert token is not None
    done = client.post("/creatives/review", data=_review_form(token.group(1)), follow_redirects=False)
    assert done.status_code == 303
    status, who, when = _status(engine, 1)
    assert (status, who) == ("approved", "alice") and when is not None
    with engine.connect() as conn:
        served = conn.execute(sa.text("SELECT segment_id, category, approved_by FROM approved_creatives")).all()
    assert served == [(1, "shoes", "alice")]  # pending creatives are not exported
    client.post("/creatives/review", data=_review_form(token.group(1), "rejected"), follow_redirects=False)
    assert _status(engine, 1)[0] == "rejected"
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM approved_creatives")).scalar_one() == 0


def test_forged_review_without_a_valid_token_is_refused(client: TestClient, engine: Engine) -> None:
    # A cross-site form carries the victim's session but cannot read a page to learn the token.
    for token in ("", "not-a-token", csrf.issue(KEY, "mallory"), csrf.issue(csrf.derive_key("other"), "alice")):
        refused = client.post("/creatives/review", data=_review_form(token), follow_redirects=False)
        assert refused.status_code == 403, token
    assert _status(engine, 1)[:2] == ("pending_review", None)


def test_expired_token_is_refused() -> None:
    old = csrf.issue(KEY, "alice", now=1_000_000)
    assert csrf.verify(KEY, "alice", old, now=1_000_000 + 60)
    assert not csrf.verify(KEY, "alice", old, now=1_000_000 + csrf.MAX_AGE_S + 1)


def test_anonymous_requests_are_refused(engine: Engine, tmp_path: Path) -> None:
    write_sample(engine, SPEC, tmp_path)
    anonymous = _client(engine, tmp_path, user=None)
    for path in ("/", f"/dates/{SPEC.day}", "/artifacts/data_docs/2024-03-31/index.html"):
        assert anonymous.get(path).status_code == 401, path
    assert anonymous.post("/creatives/review", data=_review_form("x")).status_code == 401


def test_artifact_route_stays_inside_the_artifacts_folder(client: TestClient, tmp_path: Path) -> None:
    (tmp_path.parent / "secret.txt").write_text("no")
    assert client.get("/artifacts/data_docs/2024-03-31/index.html").status_code == 200
    assert client.get("/artifacts/../secret.txt").status_code == 404
    assert client.get("/artifacts/%2e%2e/secret.txt").status_code == 404


def test_empty_warehouse_and_empty_date_render_gracefully(engine: Engine, tmp_path: Path) -> None:
    client = _client(engine, tmp_path)
    assert "No outputs yet" in client.get("/").text
    page = client.get("/dates/2024-01-01")
    assert page.status_code == 200
    for message in ("No model outputs", "has not run", "No model was trained", "No creatives", "No recommendations"):
        assert message in page.text
    assert client.get("/dates/not-a-date").status_code == 404


def test_queries_bind_values_instead_of_formatting_them(client: TestClient) -> None:
    hostile = "shoes' OR '1'='1"
    url = (
        f"/creatives/image?campaign_date={SPEC.day}&campaign_id=7&segment_id=1&category={hostile}"
        "&rank=1&banner_size=300x250"
    )
    assert client.get(url).status_code == 404
