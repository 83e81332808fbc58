"""Why a page shows what it shows: recommendation reasons, segment descriptions, creative lineage, DP budgets."""

from __future__ import annotations

import html as html_lib
import re
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.web.test_app import SPEC, _client, _served, client  # noqa: F401  (client is a fixture)

pytestmark = pytest.mark.integration

VERBS = {"purchase": "bought {}", "cart": "put {} in your cart", "view": "viewed {}"}


def _user_cells(page: str) -> dict[int, str]:
    table = dict(re.findall(r'<tr><td class="num">(\d+)</td><td>(.*?)</td></tr>', page, re.S))
    return {int(user): html_lib.unescape(cell) for user, cell in table.items()}


def test_each_sampled_recommendation_says_why_in_words(client, engine: Engine) -> None:  # noqa: F811
    cells = _user_cells(client.get(f"/dates/{SPEC.day}").text)
    assert len(cells) == 9
    with engine.connect() as conn:
        rows = pd.read_sql_query(
            sa.text(
                """SELECT r.user_id, r.rank, r.reason_code, ri.title AS reason_title, e.event_type
                   FROM recommendations r
                   LEFT JOIN items ri ON ri.item_id = r.reason_item_id
                   LEFT JOIN events e ON e.user_id = r.user_id AND e.item_id = r.reason_item_id
                   WHERE r.as_of_date = :d AND r.rank <= 5 AND r.user_id = ANY(:users)"""
            ),
            conn,
            params={"d": SPEC.day, "users": list(cells)},
        )
    kinds = set()
    for row in rows.itertuples():
        reason = {
            "history_item": "because you " + VERBS.get(row.event_type, "").format(row.reason_title),
            "popular_in_segment": "popular in your segment",
            "popular_in_store": "popular in the store",
        }[row.reason_code]
        ranked = re.search(rf"(?:^|; ){row.rank}: [^;]*?<span class=\"reason\">(.*?)</span>", cells[row.user_id])
        assert ranked is not None and ranked.group(1) == reason, (row.user_id, row.rank, cells[row.user_id])
        kinds.add(reason.split(" ")[0] if row.reason_code == "history_item" else row.reason_code)
    assert kinds == {"because", "popular_in_segment", "popular_in_store"}
    verbs = " ".join(cells.values())
    assert "because you bought Item" in verbs and "in your cart" in verbs and "because you viewed Item" in verbs


def test_rows_written_before_reasons_existed_show_none(client, engine: Engine) -> None:  # noqa: F811
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE recommendations SET reason_code = NULL, reason_item_id = NULL"))
    page = client.get(f"/dates/{SPEC.day}").text
    assert 'class="reason"' not in page and len(_user_cells(page)) == 9


def test_segments_are_described_by_their_members(client) -> None:  # noqa: F811
    page = client.get(f"/dates/{SPEC.day}").text
    table = re.search(r'<table id="segments-table">(.*?)</table>', page, re.S)
    assert table is not None
    rows = {
        int(seg): [
            html_lib.unescape(re.sub(r"\s+", " ", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        for seg, row in re.findall(r'<tr id="segment-(\d+)">(.*?)</tr>', table.group(1), re.S)
    }
    assert sorted(rows) == [0, 1, 2]
    assert rows[1] == [
        "1: bags lovers",
        "14",
        "shoes (60%, ×2.50); bags (25%, ×0.80)",
        "2.5 (1.0–6.0)",
        "3.0 (2.0–5.0)",
        "age group: 25-34 100%; region: north 100%",
    ]


def test_segments_without_a_description_say_so(client, engine: Engine) -> None:  # noqa: F811
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE segments SET description = NULL WHERE segment_id = 2"))
    page = client.get(f"/dates/{SPEC.day}").text
    row = re.search(r'<tr id="segment-2">(.*?)</tr>', page, re.S)
    assert row is not None and "written before descriptions existed" in row.group(1)


def test_creative_cards_link_campaign_segment_category_and_the_model_that_made_them(client) -> None:  # noqa: F811
    page = client.get(f"/dates/{SPEC.day}").text
    lineage = [
        html_lib.unescape(re.sub(r"\s+", " ", x)) for x in re.findall(r'<span class="lineage">(.*?)</span>', page, re.S)
    ]
    assert len(lineage) == 12
    shoes = [x for x in lineage if 'href="#segment-1">shoes' in x]
    assert len(shoes) == 2  # one per banner size
    assert shoes[0] == (
        'campaign <a href="#campaign-7">Spring sale</a> · segment <a href="#segment-1">bags lovers</a> '
        '· category <a href="#segment-1">shoes</a> (×2.50 in this segment) '
        '· model <a href="/marketing/dates/2024-03-28#model-cgan-v1">cgan-v1</a> (trained as of 2024-03-28)'
    )
    # Every link lands: the anchors exist on this page, the model's on the page of its training date.
    for anchor in set(re.findall(r'href="#([\w-]+)"', "".join(lineage))):
        assert f'id="{anchor}"' in page, anchor
    assert 'id="model-cgan-v1"' in client.get("/dates/2024-03-28").text


def test_models_serving_the_date_show_their_privacy_budget(client, engine: Engine) -> None:  # noqa: F811
    def privacy() -> dict[str, str]:
        return {row[0]: row[-1] for row in _served(client.get(f"/dates/{SPEC.day}").text)}

    assert privacy() == {
        "creative_gan": "not private",
        "sasrec": "not private",
        "user_profile_vae": "DP-SGD, ε = 3.80 spent (budget 4)",
    }
    with engine.begin() as conn:  # a run that recorded its budget but not what it spent
        conn.execute(
            sa.text(
                "UPDATE model_runs SET metrics = metrics - 'dp_epsilon_spent' WHERE version = 'user_profile_vae-v1'"
            )
        )
    assert privacy()["user_profile_vae"] == "DP-SGD, ε ≤ 4"


def test_explanations_are_behind_the_login(engine: Engine, tmp_path: Path, client) -> None:  # noqa: F811
    page = _client(engine, tmp_path, user=None).get(f"/dates/{SPEC.day}")
    assert page.status_code == 401 and "because you" not in page.text and "segments-table" not in page.text
