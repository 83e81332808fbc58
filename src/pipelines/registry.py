"""Model registry over `model_runs`: candidates, champion/challenger promotion, hashed artifacts.

Every training run registers a candidate with its metrics, hyper-parameters, evaluation protocol and
artifact (path + sha256). A candidate becomes champion only when `PromotionRule` says it is not worse
than the current champion on the same metric (or the run forces it); outputs are always produced by the
champion. Artifacts are loaded with `torch.load(weights_only=True)` after their hash is checked.
Shared by every model package so promotion means the same thing for all of them.
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
    )


_COLUMNS = "model_name, version, as_of_date, status, metrics, params, protocol, artifact_path, artifact_sha256"


def champion(engine_or_conn: Engine | Connection, model_name: str) -> ModelRun | None:
    """The current champion of `model_name`, or None before the first promotion."""
    query = sa.text(f"SELECT {_COLUMNS} FROM model_runs WHERE model_name = :m AND status = 'champion'")
    if isinstance(engine_or_conn, Engine):
        with engine_or_conn.connect() as conn:
            row = conn.execute(query, {"m": model_name}).first()
    else:
        row = engine_or_conn.execute(query, {"m": model_name}).first()
    return None if row is None else _row_to_run(row)


def get_run(engine: Engine, model_name: str, version: str) -> ModelRun | None:
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(f"SELECT {_COLUMNS} FROM model_runs WHERE model_name = :m AND version = :v"),
            {"m": model_name, "v": version},
        ).first()
    return None if row is None else _row_to_run(row)


def register_and_decide(
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
    rule: PromotionRule,
    force: bool = False,
    champion_metrics: Mapping[str, float] | None = None,
) -> tuple[ModelRun, Decision]:
    """Register a candidate and promote or reject it, in one transaction.

    Re-registering the same version (a rerun of the same date) updates its row; if it already is the
    champion it stays champion. `champion_metrics`, when given, are the champion's metrics re-measured on
    the candidate's own evaluation (same split, same day), compared instead of those it was registered
    with. Returns the registered run (with its final status) and the decision.
    """
    with engine.begin() as conn:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:m))"), {"m": model_name})
        current = champion(conn, model_name)
        if current is not None and current.version == version:
            decision = Decision(True, "this version already is the champion")
        else:
            reference = (
                None if current is None else (champion_metrics if champion_metrics is not None else current.metrics)
            )
            decision = decide(rule, metrics, reference, force=force)
        if decision.promote and current is not None and current.version != version:
            conn.execute(
                sa.text("UPDATE model_runs SET status = 'retired' WHERE model_name = :m AND version = :v"),
                {"m": model_name, "v": current.version},
            )
        status = "champion" if decision.promote else "rejected"
        conn.execute(
            sa.text(
                """INSERT INTO model_runs (model_name, version, as_of_date, status, metrics, params, protocol,
                                           artifact_path, artifact_sha256, promoted_at)
                   VALUES (:m, :v, :d, :s, CAST(:metrics AS jsonb), CAST(:params AS jsonb),
                           CAST(:protocol AS jsonb), :path, :sha, CASE WHEN :s = 'champion' THEN now() END)
                   ON CONFLICT (model_name, version) DO UPDATE SET
                       as_of_date = EXCLUDED.as_of_date, status = EXCLUDED.status, metrics = EXCLUDED.metrics,
                       params = EXCLUDED.params, protocol = EXCLUDED.protocol,
                       artifact_path = EXCLUDED.artifact_path, artifact_sha256 = EXCLUDED.artifact_sha256,
                       promoted_at = COALESCE(model_runs.promoted_at, EXCLUDED.promoted_at)"""
            ),
            {
                "m": model_name,
                "v": version,
                "d": as_of_date,
                "s": status,
                "metrics": json.dumps(dict(metrics), sort_keys=True),
                "params": json.dumps(dict(params), sort_keys=True, default=str),
                "protocol": json.dumps(dict(protocol), sort_keys=True, default=str),
                "path": str(artifact_path),
                "sha": artifact_sha256,
            },
        )
    run = ModelRun(
        model_name,
        version,
        as_of_date,
        status,
        dict(metrics),
        dict(params),
        dict(protocol),
        str(artifact_path),
        artifact_sha256,
    )
    return run, decision


def version_id(model_name: str, as_of_date: dt.date, artifact_sha256: str) -> str:
    """Deterministic version: a rerun that reproduces the same weights gets the same version."""
    return f"{model_name}-{as_of_date:%Y%m%d}-{artifact_sha256[:10]}"


def artifact_dir(artifacts_root: Path, model_name: str, as_of_date: dt.date) -> Path:
    return artifacts_root / "models" / model_name / f"{as_of_date:%Y-%m-%d}"
