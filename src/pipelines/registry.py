"""Model registry over `model_runs`: candidates, point-in-time champions, hashed artifacts, lineage.

Every training run registers a candidate with its metrics, hyper-parameters, evaluation protocol and
artifact (path + sha256). Champions are per date: the champion of a business date D is the latest
promotion (not revoked) whose as_of_date <= D, so a backfill that promotes at an earlier date never
changes which model serves a later date that has its own promotion. A run's outcome (promotion or not,
and which model served the date) is recorded by `record_outcome` on the transaction that writes the
date's outputs, so a killed write never leaves a new champion behind old outputs. Later dates whose
champion or parent that outcome changed are marked stale in `served_lineage`, never rewritten.
Artifacts are loaded with `torch.load(weights_only=True)` after their hash is checked.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from pipelines.errors import PipelineError


class ArtifactIntegrityError(PipelineError):
    """An artifact's bytes do not match the sha256 recorded when it was registered."""


@dataclass(frozen=True)
class ModelRun:
    model_name: str
    version: str
    as_of_date: dt.date
    status: str
    metrics: dict[str, Any]
    params: dict[str, Any]
    protocol: dict[str, Any]
    artifact_path: str | None
    artifact_sha256: str | None
    parent_version: str | None = None
    decision: str | None = None
    erasure_seen: int | None = None  # the newest completed erasure request its training data reflects


@dataclass(frozen=True)
class PromotionRule:
    """When a candidate may replace the champion.

    `metric` is compared with the champion's: the candidate may be worse by at most `tolerance`
    (absolute). `minimums` are hard gates (metric -> lowest acceptable value) that even a forced
    promotion or a first candidate must pass, e.g. a GAN's conditional accuracy.
    """

    metric: str
    tolerance: float = 0.0
    higher_is_better: bool = True
    minimums: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(
    rule: PromotionRule, candidate: Mapping[str, float], champion: Mapping[str, float] | None, *, force: bool = False
) -> Decision:
    """Pure promotion rule: gates first, then force, then the comparison with the champion."""
    for name, lowest in rule.minimums.items():
        value = candidate.get(name)
        if value is None or not math.isfinite(value) or value < lowest:
            return Decision(False, f"{name}={value} is below the gate {lowest}")
    if force:
        return Decision(True, "promotion forced by the run's parameters")
    value = candidate.get(rule.metric)
    if value is None or not math.isfinite(value):
        return Decision(False, f"candidate has no finite {rule.metric}")
    if champion is None or champion.get(rule.metric) is None:
        return Decision(True, "no champion yet")
    best = float(champion[rule.metric])
    margin = (value - best) if rule.higher_is_better else (best - value)
    if margin >= -rule.tolerance:
        return Decision(True, f"{rule.metric} {value:.4f} vs champion {best:.4f} (tolerance {rule.tolerance})")
    return Decision(False, f"{rule.metric} {value:.4f} is worse than champion {best:.4f} by more than {rule.tolerance}")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_artifact(payload: Mapping[str, Any], directory: Path) -> tuple[Path, str]:
    """Save a checkpoint dict with torch.save under a content-addressed name; return (path, sha256).

    The bytes are serialised in memory first: torch.save names the archive after the file it writes, so
    saving straight to a temporary file would make identical weights hash differently in every process.
    The file name carries the hash, so a rerun never overwrites the file an existing champion points to.
    """
    import io

    import torch

    buffer = io.BytesIO()
    torch.save(dict(payload), buffer)
    data = buffer.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"model-{sha[:10]}.pt"
    tmp = directory / f".{path.name}.{os.getpid()}.tmp"
    tmp.write_bytes(data)
    tmp.replace(path)  # atomic: a reader never sees a half-written artifact
    return path, sha


def load_artifact(path: str | Path, expected_sha256: str | None) -> dict[str, Any]:
    """Load a checkpoint after checking its hash; only tensors and plain containers are accepted."""
    import torch

    path = Path(path)
    if not path.exists():
        raise ArtifactIntegrityError(f"artifact {path} is missing")
    if expected_sha256 is not None and (actual := file_sha256(path)) != expected_sha256:
        raise ArtifactIntegrityError(
            f"artifact {path} has sha256 {actual[:12]}..., the registry recorded {expected_sha256[:12]}...; "
            "refusing to load a file that changed after registration"
        )
    return torch.load(path, map_location="cpu", weights_only=True)


def _row_to_run(row: sa.Row[Any]) -> ModelRun:
    m = row._mapping
    return ModelRun(
        model_name=m["model_name"],
        version=m["version"],
        as_of_date=m["as_of_date"],
        status=m["status"],
        metrics=dict(m["metrics"] or {}),
        params=dict(m["params"] or {}),
        protocol=dict(m["protocol"] or {}),
        artifact_path=m["artifact_path"],
        artifact_sha256=m["artifact_sha256"],
        parent_version=m["parent_version"],
        decision=m["decision"],
        erasure_seen=m["erasure_seen"],
    )


_COLUMNS = (
    "r.model_name, r.version, r.as_of_date, r.status, r.metrics, r.params, r.protocol, r.artifact_path, "
    "r.artifact_sha256, r.parent_version, r.decision, r.erasure_seen"
)
_CHAMPION_OF = f"""SELECT {_COLUMNS} FROM model_promotions p JOIN model_runs r USING (model_name, version)
                   WHERE p.model_name = :m AND p.revoked_at IS NULL AND p.as_of_date <= :d
                   ORDER BY p.as_of_date DESC, p.id DESC LIMIT 1"""


def _first(engine_or_conn: Engine | Connection, query: str, params: Mapping[str, Any]) -> ModelRun | None:
    if isinstance(engine_or_conn, Engine):
        with engine_or_conn.connect() as conn:
            row = conn.execute(sa.text(query), dict(params)).first()
    else:
        row = engine_or_conn.execute(sa.text(query), dict(params)).first()
    return None if row is None else _row_to_run(row)


def champion_of(engine_or_conn: Engine | Connection, model_name: str, as_of: dt.date) -> ModelRun | None:
    """The champion of business date `as_of`: the latest live promotion with as_of_date <= `as_of`
    (ties: the later promotion); None before the model's first promotion."""
    return _first(engine_or_conn, _CHAMPION_OF, {"m": model_name, "d": as_of})


def champion(engine_or_conn: Engine | Connection, model_name: str) -> ModelRun | None:
    """The current champion: the champion of the newest date."""
    return champion_of(engine_or_conn, model_name, dt.date.max)


def get_run(engine_or_conn: Engine | Connection, model_name: str, version: str) -> ModelRun | None:
    return _first(
        engine_or_conn, f"SELECT {_COLUMNS} FROM model_runs r WHERE model_name = :m AND version = :v",
        {"m": model_name, "v": version},
    )  # fmt: skip


def latest_run_before(engine_or_conn: Engine | Connection, model_name: str, as_of: dt.date) -> ModelRun | None:
    """The newest registered (not superseded) run trained before `as_of`, promoted or not."""
    return _first(
        engine_or_conn,
        f"""SELECT {_COLUMNS} FROM model_runs r
            WHERE model_name = :m AND as_of_date < :d AND status <> 'superseded' AND artifact_path IS NOT NULL
            ORDER BY as_of_date DESC, created_at DESC LIMIT 1""",
        {"m": model_name, "d": as_of},
    )


def register_candidate(
    engine: Engine,
    *,
    model_name: str,
    version: str,
    as_of_date: dt.date,
    metrics: Mapping[str, float],
    params: Mapping[str, Any],
    protocol: Mapping[str, Any],
    artifact_path: Path,
    artifact_sha256: str,
    parent_version: str | None,
    erasure_seen: int | None = None,
) -> ModelRun:
    """Record a trained candidate (status 'candidate'; a rerun that reproduces a version updates its row and
    keeps its status until `record_outcome` decides again). Nothing serves it until then."""
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                """INSERT INTO model_runs (model_name, version, as_of_date, status, metrics, params, protocol,
                                           artifact_path, artifact_sha256, parent_version, erasure_seen)
                   VALUES (:m, :v, :d, 'candidate', CAST(:metrics AS jsonb), CAST(:params AS jsonb),
                           CAST(:protocol AS jsonb), :path, :sha, :parent, :erasure_seen)
                   ON CONFLICT (model_name, version) DO UPDATE SET
                       as_of_date = EXCLUDED.as_of_date, metrics = EXCLUDED.metrics, params = EXCLUDED.params,
                       protocol = EXCLUDED.protocol, artifact_path = EXCLUDED.artifact_path,
                       artifact_sha256 = EXCLUDED.artifact_sha256, parent_version = EXCLUDED.parent_version,
                       erasure_seen = EXCLUDED.erasure_seen"""
            ),
            {
                "m": model_name,
                "v": version,
                "d": as_of_date,
                "metrics": json.dumps(dict(metrics), sort_keys=True),
                "params": json.dumps(dict(params), sort_keys=True, default=str),
                "protocol": json.dumps(dict(protocol), sort_keys=True, default=str),
                "path": str(artifact_path),
                "sha": artifact_sha256,
                "parent": parent_version,
                "erasure_seen": erasure_seen,
            },
        )
        run = get_run(conn, model_name, version)
    assert run is not None
    return run


@dataclass(frozen=True)
class Outcome:
    """What a run for one date decided and served, recorded with the date's outputs."""

    model_name: str
    as_of_date: dt.date
    candidate: str | None  # the date's own candidate, when one was trained
    decision: Decision | None
    served: ModelRun | None  # the model whose outputs were written (None: fallback outputs)
    parent: ModelRun | None  # the champion of the day before, compared with and warm-started from
    policy: str = "champion_of_date"  # or 'current_champion' (a recompute with today's champion)


def record_outcome(conn: Connection, outcome: Outcome) -> list[dt.date]:
    """On the caller's transaction (the one writing the date's outputs): apply the decision, revoke what an
    earlier run of the same date promoted, record which model served the date, and mark later dates whose
    champion or parent changed as stale. Returns those newly stale dates."""
    m, day = outcome.model_name, outcome.as_of_date
    conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:m))"), {"m": m})
    promote = outcome.candidate is not None and outcome.decision is not None and outcome.decision.promote
    keep = outcome.candidate if promote else None
    if outcome.policy == "champion_of_date":
        # A rerun of the date replaces what an earlier run of it decided: one decision per date.
        conn.execute(
            sa.text(
                """UPDATE model_promotions SET revoked_at = now(), revoked_by = :by
                   WHERE model_name = :m AND as_of_date = :d AND revoked_at IS NULL
                     AND version IS DISTINCT FROM :keep"""
            ),
            {"m": m, "d": day, "keep": keep, "by": f"rerun of {day}"},
        )
        conn.execute(
            sa.text(
                """UPDATE model_runs SET status = 'superseded'
                   WHERE model_name = :m AND as_of_date = :d AND version IS DISTINCT FROM :c"""
            ),
            {"m": m, "d": day, "c": outcome.candidate},
        )
    if outcome.candidate is not None and outcome.decision is not None:
        conn.execute(
            sa.text(
                """UPDATE model_runs SET status = :s, decision = :why,
                          promoted_at = CASE WHEN :s = 'promoted' THEN coalesce(promoted_at, now()) END
                   WHERE model_name = :m AND version = :v"""
            ),
            {
                "m": m,
                "v": outcome.candidate,
                "s": "promoted" if promote else "rejected",
                "why": outcome.decision.reason,
            },
        )
        if promote:
            conn.execute(
                sa.text(
                    """INSERT INTO model_promotions (model_name, version, as_of_date)
                       SELECT :m, :v, :d WHERE NOT EXISTS (
                           SELECT 1 FROM model_promotions
                           WHERE model_name = :m AND version = :v AND as_of_date = :d AND revoked_at IS NULL)"""
                ),
                {"m": m, "v": outcome.candidate, "d": day},
            )
    served = outcome.served
    conn.execute(
        sa.text(
            """INSERT INTO served_lineage (model_name, as_of_date, version, model_as_of, parent_version, trained,
                                           policy, written_at, stale_reason, stale_at)
               VALUES (:m, :d, :v, :vd, :p, :t, :policy, now(), NULL, NULL)
               ON CONFLICT (model_name, as_of_date) DO UPDATE SET
                   version = EXCLUDED.version, model_as_of = EXCLUDED.model_as_of,
                   parent_version = EXCLUDED.parent_version, trained = EXCLUDED.trained, policy = EXCLUDED.policy,
                   written_at = EXCLUDED.written_at, stale_reason = NULL, stale_at = NULL"""
        ),
        {
            "m": m,
            "d": day,
            "v": None if served is None else served.version,
            "vd": None if served is None else served.as_of_date,
            "p": None if outcome.parent is None else outcome.parent.version,
            "t": outcome.candidate,
            "policy": outcome.policy,
        },
    )
    return _mark_stale(conn, m, day)


def _mark_stale(conn: Connection, model_name: str, changed: dt.date) -> list[dt.date]:
    """Later dates (served by the champion of their date) whose champion or parent is no longer what they ran with."""
    rows = conn.execute(
        sa.text(
            """SELECT as_of_date, version, parent_version FROM served_lineage
               WHERE model_name = :m AND as_of_date > :d AND policy = 'champion_of_date' AND stale_reason IS NULL
               ORDER BY as_of_date"""
        ),
        {"m": model_name, "d": changed},
    ).all()
    stale = []
    for day, version, parent_version in rows:
        now_serving = champion_of(conn, model_name, day)
        now_parent = champion_of(conn, model_name, day - dt.timedelta(days=1))
        serving_version = None if now_serving is None else now_serving.version
        parent = None if now_parent is None else now_parent.version
        if serving_version == version and parent == parent_version:
            continue
        reason = (
            f"lineage changed by the {changed} run of {model_name}: the champion of this date is now "
            f"{serving_version or 'none'} (parent {parent or 'none'}); rerun {day} to refresh"
        )
        conn.execute(
            sa.text(
                """UPDATE served_lineage SET stale_reason = :r, stale_at = now()
                   WHERE model_name = :m AND as_of_date = :d"""
            ),
            {"r": reason, "m": model_name, "d": day},
        )
        stale.append(day)
    return stale


def stale_dates(engine: Engine, model_name: str | None = None) -> list[tuple[str, dt.date, str]]:
    """(model, date, reason) of every date whose outputs are stale, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                """SELECT model_name, as_of_date, stale_reason FROM served_lineage
                   WHERE stale_reason IS NOT NULL AND (CAST(:m AS text) IS NULL OR model_name = :m)
                   ORDER BY as_of_date, model_name"""
            ),
            {"m": model_name},
        ).all()
    return [(r.model_name, r.as_of_date, r.stale_reason) for r in rows]


def version_id(model_name: str, as_of_date: dt.date, artifact_sha256: str) -> str:
    """Deterministic version: a rerun that reproduces the same weights gets the same version."""
    return f"{model_name}-{as_of_date:%Y%m%d}-{artifact_sha256[:10]}"


def artifact_dir(artifacts_root: Path, model_name: str, as_of_date: dt.date) -> Path:
    return artifacts_root / "models" / model_name / f"{as_of_date:%Y-%m-%d}"
