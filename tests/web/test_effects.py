"""The Effects page in-process on a real warehouse after two days of the loop: rows, plot and auth."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from pipelines.delivery.config import DeliveryConfig
from pipelines.delivery.task import plan_delivery
from pipelines.effects.task import evaluate_effects
from tests.delivery.logs import PLACEMENT, approve_all, log_day
from tests.web.sample import SampleSpec, write_sample
from tests.web.test_app import TestClient, _client

pytestmark = pytest.mark.integration

SPEC = SampleSpec()
NEXT = SPEC.day + dt.timedelta(days=1)
CONFIG = DeliveryConfig(thompson_draws=500, prior_strength=20.0, bootstrap_samples=100)


@pytest.fixture
def loop(engine: Engine, tmp_path: Path) -> Engine:
    write_sample(engine, SPEC, tmp_path)
    approve_all(engine, SPEC, days=2)
    first = log_day(engine, SPEC, SPEC.day)
    plan_delivery(engine, SPEC.day, CONFIG)
    evaluate_effects(engine, SPEC.day, CONFIG)
    log_day(engine, SPEC, NEXT, first_id=first)
    plan_delivery(engine, NEXT, CONFIG)
    evaluate_effects(engine, NEXT, CONFIG)
    return engine


def test_effects_page_shows_rates_lift_plan_and_ope(loop: Engine, tmp_path: Path) -> None:
    client = _client(loop, tmp_path)
    html = client.get(f"/dates/{NEXT}").text
    assert f'href="/marketing/effects/{NEXT}"' in html
    page = client.get(f"/effects/{NEXT}")
    assert page.status_code == 200
    html = page.text
    rates = re.search(r'<table id="rates-table">(.*?)</table>', html, re.S)
    assert rates is not None
    # per segment: its own 2 creatives in the personalised arm, the campaign's 6 in the holdout
    assert rates.group(1).count(f"<td>{PLACEMENT}</td>") == SPEC.segments * 2 + SPEC.segments * 6
    assert "c7-s1-shoes-r1" in rates.group(1)
    lift = re.search(r'<table id="lift-table">(.*?)</table>', html, re.S)
    assert lift is not None and f"<td>{PLACEMENT}</td><td>ctr</td>" in lift.group(1)
    ope = re.search(r'<table id="ope-table">(.*?)</table>', html, re.S)
    assert ope is not None and ope.group(1).count("<tr>") == 1 + 6  # 2 plans x ips, snips, dr
    plan = re.search(r'<table id="plan-table">(.*?)</table>', html, re.S)
    assert plan is not None and plan.group(1).count("thompson") == 2 * SPEC.segments * 2  # both banner sizes
    assert f'src="/marketing/effects/{NEXT}/ctr.png?segment=0"' in html
    plot = client.get(f"/effects/{NEXT}/ctr.png", params={"segment": 0})
    assert plot.status_code == 200 and plot.content.startswith(b"\x89PNG")


def test_effects_page_of_a_date_without_impressions_says_so(loop: Engine, tmp_path: Path) -> None:
    html = _client(loop, tmp_path).get(f"/effects/{NEXT + dt.timedelta(days=5)}").text
    assert "No impressions were logged" in html and "No delivery plan was written" in html


def test_effects_views_need_a_signed_in_user(loop: Engine, tmp_path: Path) -> None:
    anonymous: TestClient = _client(loop, tmp_path, user=None)
    assert anonymous.get(f"/effects/{NEXT}").status_code == 401
    assert anonymous.get(f"/effects/{NEXT}/ctr.png", params={"segment": 0}).status_code == 401
