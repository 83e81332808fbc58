"""Reads (and the one review write) behind the Marketing pages. Every value is a bound parameter.

Each read touches one business date's partition through an index, so a page stays fast on a store with
millions of users: recommendations are sampled per segment through `user_profiles_segment_idx` and the
recommendations primary key, never scanned. Image bytes are read one creative at a time, by key.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipelines.creatives.config import MODEL_NAME as CREATIVES_MODEL
from pipelines.creatives.config import banner_size
from pipelines.warehouse.reads import day_bounds

# Prefixes under which a model run stores the same metric measured for a reference on the same split
# (see pipelines.profiles.task._flat_metrics and pipelines.recs.task._metrics).
REFERENCE_PREFIXES = ("parent", "popularity", "ease")
REVIEW_DECISIONS = ("approved", "rejected")


@dataclass(frozen=True)
class CreativeKey:
    """The primary key of one ad creative."""

    campaign_date: dt.date
    campaign_id: int
    segment_id: int
    category: str
    rank: int
    banner_size: str

    def params(self) -> dict[str, Any]:
        return {
            "d": self.campaign_date,
            "c": self.campaign_id,
            "s": self.segment_id,
            "cat": self.category,
            "r": self.rank,
            "b": self.banner_size,
        }


_KEY_WHERE = (
    "campaign_date = :d AND campaign_id = :c AND segment_id = :s AND category = :cat AND rank = :r AND banner_size = :b"
)


@dataclass(frozen=True)
class BusinessDay:
    """A date with outputs and how its run went: `complete` (the quality gate passed and the profiles and
    recommendations it gates were written), `gate failed` (a critical check failed: nothing was trained),
    or `incomplete` (anything else, e.g. a run still going or one that failed in a model task)."""

    day: dt.date
    state: str

    @property
    def complete(self) -> bool:
        return self.state == "complete"


# A date's state by the definition in BusinessDay; {d} names the column that holds the date.
_STATE_OF_DAY = """CASE
    WHEN EXISTS (SELECT 1 FROM dq_results q WHERE q.as_of_date = {d} AND NOT q.success AND q.severity = 'critical')
        THEN 'gate failed'
    WHEN EXISTS (SELECT 1 FROM dq_results q WHERE q.as_of_date = {d})
         AND EXISTS (SELECT 1 FROM segments s WHERE s.as_of_date = {d})
         AND EXISTS (SELECT 1 FROM recommendations r WHERE r.as_of_date = {d})
        THEN 'complete'
    ELSE 'incomplete' END"""


def business_dates(conn: Connection, limit: int = 30) -> list[BusinessDay]:
    """The latest dates that have any output, newest first, each with its run's state (small tables and
    index probes only: no big partition scans)."""
    rows = conn.execute(
        sa.text(
            f"""SELECT d, {_STATE_OF_DAY.format(d="dates.d")} AS state FROM (
                   SELECT DISTINCT as_of_date AS d FROM dq_results
                   UNION SELECT DISTINCT as_of_date FROM model_runs
                   UNION SELECT DISTINCT as_of_date FROM segments
                   UNION SELECT DISTINCT campaign_date FROM ad_creatives
               ) dates ORDER BY d DESC LIMIT :n"""
        ),
        {"n": limit},
    )
    return [BusinessDay(row.d, row.state) for row in rows]


def latest_complete_date(conn: Connection) -> dt.date | None:
    """The newest date whose run is complete (BusinessDay), however many failed dates came after it.

    Every complete date has segments, so their dates (a few rows a day) are the candidates."""
    return conn.execute(
        sa.text(
            f"""SELECT d FROM (SELECT DISTINCT as_of_date AS d FROM segments) dates
                WHERE {_STATE_OF_DAY.format(d="dates.d")} = 'complete'
                ORDER BY d DESC LIMIT 1"""
        )
    ).scalar()


def dq_results(conn: Connection, day: dt.date) -> list[dict[str, Any]]:
    """The gate's results for a day with an outcome each: pass, warn (failed warning) or fail (critical)."""
    rows = conn.execute(
        sa.text(
            """SELECT expectation, expectation_type, table_name, column_name, severity, success,
                      observed_value, unexpected_count, unexpected_sample
               FROM dq_results WHERE as_of_date = :d
               ORDER BY success, severity, expectation"""
        ),
        {"d": day},
    ).mappings()
    out = []
    for row in rows:
        outcome = "pass" if row["success"] else ("fail" if row["severity"] == "critical" else "warn")
        out.append({**row, "outcome": outcome})
    return out


def model_runs(conn: Connection, day: dt.date) -> list[dict[str, Any]]:
    """The day's model runs, each with a metrics table against its parent (the champion of the day before,
    re-measured on the run's split) and the baselines."""
    runs = conn.execute(
        sa.text(
            """SELECT r.model_name, r.version, r.status, r.decision, r.metrics, r.protocol, r.artifact_path,
                      r.artifact_sha256, r.created_at, r.parent_version, p.metrics AS parent_metrics
               FROM model_runs r
               LEFT JOIN model_runs p ON p.model_name = r.model_name AND p.version = r.parent_version
               WHERE r.as_of_date = :d AND r.status <> 'superseded' ORDER BY r.model_name, r.created_at"""
        ),
        {"d": day},
    ).mappings()
    return [{**run, "table": metric_table(run["metrics"], run["parent_metrics"])} for run in runs]


@dataclass(frozen=True)
class ServedModel:
    """Which model version wrote a date's outputs, the date it was trained as of, and why the date is
    stale (a later decision at an earlier date changed its lineage: rerun it), if it is."""

    model_name: str
    version: str | None  # None: no model yet (fallback outputs)
    model_as_of: dt.date | None
    stale_reason: str | None
    policy: str = "champion_of_date"
    dp_epsilon: float | None = None  # the privacy budget its DP-SGD training spent (None: not recorded)
    dp_budget: float | None = None  # the budget it was configured with (None: trained without DP)


def served_models(conn: Connection, day: dt.date) -> list[ServedModel]:
    """Per model, what served `day`, as recorded with the date's outputs in `served_lineage`, with the
    privacy budget its run recorded: `dp_epsilon_spent` in its metrics, `dp_epsilon` in its params."""
    rows = conn.execute(
        sa.text(
            """SELECT l.model_name, l.version, l.model_as_of, l.stale_reason, l.policy,
                      (r.metrics ->> 'dp_epsilon_spent')::float AS dp_epsilon,
                      (r.params ->> 'dp_epsilon')::float AS dp_budget
               FROM served_lineage l
               LEFT JOIN model_runs r ON r.model_name = l.model_name AND r.version = l.version
               WHERE l.as_of_date = :d ORDER BY l.model_name"""
        ),
        {"d": day},
    )
    return [
        ServedModel(r.model_name, r.version, r.model_as_of, r.stale_reason, r.policy, r.dp_epsilon, r.dp_budget)
        for r in rows
    ]


def segments(conn: Connection, day: dt.date) -> list[dict[str, Any]]:
    """The day's segments with the description of their members (None for rows written before there was one)."""
    rows = conn.execute(
        sa.text(
            """SELECT segment_id, label, size, description FROM segments WHERE as_of_date = :d
               ORDER BY segment_id"""
        ),
        {"d": day},
    ).mappings()
    return [dict(row) for row in rows]


def metric_table(metrics: dict[str, float], parent: dict[str, float] | None) -> dict[str, Any]:
    """Rows = the run's own metrics; columns = the run, then each reference measured beside it.

    A run that re-measured its parent on its own split stores `parent_<metric>`; otherwise the parent's
    registered figures are shown.
    """
    references: dict[str, dict[str, float]] = {p: {} for p in REFERENCE_PREFIXES}
    own: dict[str, float] = {}
    for name, value in metrics.items():
        prefix, _, rest = name.partition("_")
        if prefix in references and rest:
            references[prefix][rest] = value
        else:
            own[name] = value
    if not references["parent"] and parent:
        references["parent"] = {k: v for k, v in parent.items() if k in own}
    columns = [p for p in REFERENCE_PREFIXES if references[p]]
    rows = [(name, own[name], [references[p].get(name) for p in columns]) for name in sorted(own)]
    return {"columns": columns, "rows": rows}


def creatives(conn: Connection, day: dt.date) -> list[dict[str, Any]]:
    """The day's creatives without their image bytes, with each banner's pixel size, for a gallery by
    campaign and segment; a segment's banners of one size sit together so same-width cards share rows."""
    rows = conn.execute(
        sa.text(
            """SELECT a.campaign_date, a.campaign_id, c.name AS campaign_name, a.segment_id,
                      s.label AS segment_label, a.category, a.rank, a.banner_size, a.headline, a.scores,
                      a.status, a.reviewed_by, a.reviewed_at, a.model_version, m.as_of_date AS model_as_of,
                      (SELECT (t ->> 'lift')::float FROM jsonb_array_elements(s.description -> 'top_categories') t
                       WHERE t ->> 'category' = a.category) AS category_lift
               FROM ad_creatives a
               JOIN campaigns c USING (campaign_id)
               LEFT JOIN segments s ON s.as_of_date = a.campaign_date AND s.segment_id = a.segment_id
               LEFT JOIN model_runs m ON m.model_name = :gan AND m.version = a.model_version
               WHERE a.campaign_date = :d
               ORDER BY a.campaign_id, a.segment_id, a.banner_size, a.category, a.rank"""
        ),
        {"d": day, "gan": CREATIVES_MODEL},
    ).mappings()
    return [{**row, **dict(zip(("width", "height"), banner_size(row["banner_size"]), strict=True))} for row in rows]


def creative_image(conn: Connection, key: CreativeKey) -> bytes | None:
    row = conn.execute(sa.text(f"SELECT image FROM ad_creatives WHERE {_KEY_WHERE}"), key.params()).first()
    return None if row is None else bytes(row.image)


def review_creative(conn: Connection, key: CreativeKey, decision: str, reviewer: str) -> bool:
    """Record a person's decision on one creative; False when no such creative exists."""
    if decision not in REVIEW_DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(REVIEW_DECISIONS)}, got {decision!r}")
    done = conn.execute(
        sa.text(
            f"""UPDATE ad_creatives SET status = :status, reviewed_by = :who, reviewed_at = now()
                WHERE {_KEY_WHERE}"""
        ),
        {**key.params(), "status": decision, "who": reviewer},
    )
    return done.rowcount == 1


def recommendation_sample(
    conn: Connection, day: dt.date, users_per_segment: int = 3, top: int = 5
) -> list[dict[str, Any]]:
    """A few users per segment with their top items; one 'all users' group when there are no segments."""
    rows = conn.execute(
        sa.text(
            """WITH groups AS (
                   SELECT segment_id, label FROM segments WHERE as_of_date = :d
               ), sampled AS (
                   SELECT g.segment_id, g.label, u.user_id
                   FROM groups g
                   CROSS JOIN LATERAL (
                       SELECT p.user_id FROM user_profiles p
                       WHERE p.as_of_date = :d AND p.segment_id = g.segment_id LIMIT :n
                   ) u
                   UNION ALL
                   SELECT NULL, 'all users', r.user_id FROM (
                       SELECT user_id FROM recommendations WHERE as_of_date = :d AND rank = 1 LIMIT :n
                   ) r WHERE NOT EXISTS (SELECT 1 FROM groups)
               )
               SELECT s.segment_id, s.label, s.user_id, r.rank, r.item_id, r.score, r.source,
                      i.title, i.category, r.reason_code, r.reason_item_id, ri.title AS reason_title,
                      done.event_type AS reason_event
               FROM sampled s
               JOIN recommendations r ON r.as_of_date = :d AND r.user_id = s.user_id AND r.rank <= :top
               LEFT JOIN items i ON i.item_id = r.item_id
               LEFT JOIN items ri ON ri.item_id = r.reason_item_id
               -- what the user last did with the reason's item by that date (events_user_ts_idx)
               LEFT JOIN LATERAL (
                   SELECT e.event_type FROM events e
                   WHERE e.user_id = r.user_id AND e.item_id = r.reason_item_id AND e.event_ts < :end
                   ORDER BY e.event_ts DESC LIMIT 1
               ) done ON true
               ORDER BY s.segment_id NULLS FIRST, s.user_id, r.rank"""
        ),
        {"d": day, "n": users_per_segment, "top": top, "end": day_bounds(day)[1]},
    ).mappings()
    groups: dict[Any, dict[str, Any]] = {}
    for row in rows:
        group = groups.setdefault(
            row["segment_id"], {"segment_id": row["segment_id"], "label": row["label"], "users": {}}
        )
        group["users"].setdefault(row["user_id"], []).append(row)
    return [{**g, "users": list(g["users"].items())} for g in groups.values()]
