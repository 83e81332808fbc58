"""What a run wrote for a business date: rows per output partition, the data-quality verdict, models."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

# Output table -> its partition key column.
OUTPUT_TABLES: dict[str, str] = {
    "dq_results": "as_of_date",
    "user_profiles": "as_of_date",
    "segments": "as_of_date",
    "recommendations": "as_of_date",
    "ad_creatives": "campaign_date",
    "delivery_plan": "as_of_date",
    "effect_reports": "as_of_date",
}

# The closed loop's headline: click rate per arm and placement (summed over creatives and segments, from
# the rate rows' counts) and the lift of personalised over holdout, from the date's effect report.
_EFFECTS = """
SELECT kind, placement, arm, value, low, high, n FROM effect_reports
WHERE as_of_date = :d AND metric = 'ctr' AND kind = 'lift'
UNION ALL
SELECT 'ctr', placement, arm, sum(value * n) / nullif(sum(n), 0), NULL, NULL, sum(n)::bigint FROM effect_reports
WHERE as_of_date = :d AND metric = 'ctr' AND kind = 'rate'
GROUP BY placement, arm
ORDER BY 1, 2, 3
"""


def build_report(engine: Engine, as_of: dt.date) -> dict[str, Any]:
    """Row counts of every output partition for `as_of`, the gate's verdict, the day's model runs and, per
    model, which version served the date, from which date it was and whether the date is stale."""
    with engine.connect() as conn:
        rows = {
            table: conn.execute(
                sa.text(f"SELECT count(*) FROM {table} WHERE {column} = :d"),  # names from the constant above
                {"d": as_of},
            ).scalar_one()
            for table, column in OUTPUT_TABLES.items()
        }
        dq = conn.execute(
            sa.text(
                """SELECT count(*) FILTER (WHERE success) AS passed,
                          count(*) FILTER (WHERE NOT success AND severity = 'critical') AS critical_failed,
                          count(*) FILTER (WHERE NOT success AND severity = 'warning') AS warnings
                   FROM dq_results WHERE as_of_date = :d"""
            ),
            {"d": as_of},
        ).one()
        models = conn.execute(
            sa.text(
                """SELECT model_name, version, status FROM model_runs
                   WHERE as_of_date = :d AND status <> 'superseded' ORDER BY model_name, created_at"""
            ),
            {"d": as_of},
        ).all()
        effects = conn.execute(sa.text(_EFFECTS), {"d": as_of}).all()
        served = conn.execute(
            sa.text(
                """SELECT model_name, version, model_as_of, policy, stale_reason FROM served_lineage
                   WHERE as_of_date = :d ORDER BY model_name"""
            ),
            {"d": as_of},
        ).all()
    if rows["dq_results"] == 0:
        verdict = "not run"
    elif dq.critical_failed:
        verdict = "fail"
    else:
        verdict = "warn" if dq.warnings else "pass"
    return {
        "business_date": as_of.isoformat(),
        "rows": rows,
        "data_quality": {
            "verdict": verdict,
            "passed": dq.passed,
            "critical_failed": dq.critical_failed,
            "warnings": dq.warnings,
        },
        "effects": {
            "ctr": [
                {"placement": e.placement, "arm": e.arm, "value": e.value, "n": e.n} for e in effects if e.kind == "ctr"
            ],
            "lift": [
                {"placement": e.placement, "value": e.value, "low": e.low, "high": e.high, "n": e.n}
                for e in effects
                if e.kind == "lift"
            ],
        },
        "models": [{"model": m.model_name, "version": m.version, "status": m.status} for m in models],
        "served_by": [
            {
                "model": r.model_name,
                "version": r.version,
                "model_as_of": None if r.model_as_of is None else r.model_as_of.isoformat(),
                "policy": r.policy,
                "stale": r.stale_reason,
            }
            for r in served
        ],
    }


def write_report(report: dict[str, Any], artifacts: Path) -> Path:
    path = artifacts / "reports" / f"{report['business_date']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    return path


def format_report(report: dict[str, Any]) -> str:
    """A few readable lines for the terminal and the task log."""
    dq = report["data_quality"]
    lines = [
        f"Business date {report['business_date']}",
        f"  data quality: {dq['verdict']} ({dq['passed']} passed, {dq['critical_failed']} critical failed, "
        f"{dq['warnings']} warnings)",
        "  rows written:",
        *(f"    {table:<16} {count:>10,}" for table, count in report["rows"].items()),
    ]
    effects = report.get("effects") or {}
    if effects.get("ctr"):
        lines.append("  click rate by arm:")
        lines += [
            f"    {e['placement']:<16} {e['arm']:<13} {e['value']:.4f} of {e['n']:,} impressions"
            for e in effects["ctr"]
        ]
    for e in effects.get("lift", []):
        lines.append(
            f"  lift over holdout, {e['placement']}: {e['value']:+.1%} "
            f"(95% interval {e['low']:+.1%} to {e['high']:+.1%})"
        )
    if report["models"]:
        lines.append("  models trained for this date:")
        lines += [f"    {m['model']:<16} {m['version']} ({m['status']})" for m in report["models"]]
    if report.get("served_by"):
        lines.append("  served by:")
        for m in report["served_by"]:
            origin = "no model yet" if m["version"] is None else f"{m['version']} (trained as of {m['model_as_of']})"
            if m["policy"] == "current_champion":
                origin += ", today's champion as requested"
            lines.append(f"    {m['model']:<16} {origin}")
            if m["stale"]:
                lines.append(f"      STALE: {m['stale']}")
    return "\n".join(lines)
