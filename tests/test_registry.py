"""Champion/challenger point in time: the promotion rule, champions per date, staleness, hashed artifacts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
import torch
from sqlalchemy.engine import Engine

from pipelines.registry import (
    ArtifactIntegrityError,
    ModelRun,
    Outcome,
    PromotionRule,
    champion,
    champion_of,
    decide,
    load_artifact,
    record_outcome,
    register_candidate,
    save_artifact,
    stale_dates,
    version_id,
)

RULE = PromotionRule(metric="ndcg@10", tolerance=0.01)
DAY = dt.date(2026, 6, 30)


def test_first_candidate_becomes_champion() -> None:
    assert decide(RULE, {"ndcg@10": 0.02}, None).promote


@pytest.mark.parametrize(("value", "promote"), [(0.05, True), (0.041, True), (0.039, False)])
def test_candidate_may_trail_the_champion_by_the_tolerance(value: float, promote: bool) -> None:
    assert decide(RULE, {"ndcg@10": value}, {"ndcg@10": 0.05}).promote is promote


def test_lower_is_better_metrics_compare_the_other_way() -> None:
    rule = PromotionRule(metric="frechet", higher_is_better=False)
    assert decide(rule, {"frechet": 1.0}, {"frechet": 2.0}).promote
    assert not decide(rule, {"frechet": 3.0}, {"frechet": 2.0}).promote


def test_force_promotes_a_worse_candidate_but_not_past_a_gate() -> None:
    gated = PromotionRule(metric="fd", higher_is_better=False, minimums={"cond_acc": 0.85})
    assert decide(gated, {"fd": 9.0, "cond_acc": 0.9}, {"fd": 1.0, "cond_acc": 0.9}, force=True).promote
    blocked = decide(gated, {"fd": 0.5, "cond_acc": 0.5}, None, force=True)
    assert not blocked.promote and "cond_acc=0.5 is below the gate 0.85" in blocked.reason


def test_nan_metric_is_never_promoted() -> None:
    assert not decide(RULE, {"ndcg@10": float("nan")}, None).promote


def _candidate(engine: Engine, tmp_path: Path, day: dt.date, value: float, *, weights: float) -> ModelRun:
    path, sha = save_artifact({"w": torch.full((2,), weights)}, tmp_path / str(weights))
    return register_candidate(
        engine,
        model_name="toy",
        version=version_id("toy", day, sha),
        as_of_date=day,
        metrics={"ndcg@10": value},
        params={"lr": 0.1},
        protocol={"split": "loo"},
        artifact_path=path,
        artifact_sha256=sha,
        parent_version=None,
    )


def _run(engine: Engine, tmp_path: Path, day: dt.date, value: float, *, weights: float) -> tuple[ModelRun, list]:
    """One date's run the way the lifecycle does it: register, decide against the champion of the day before,
    record the outcome (served: the candidate if promoted, else that champion)."""
    candidate = _candidate(engine, tmp_path, day, value, weights=weights)
    parent = champion_of(engine, "toy", day - dt.timedelta(days=1))
    decision = decide(RULE, candidate.metrics, None if parent is None else parent.metrics)
    with engine.begin() as conn:
        stale = record_outcome(
            conn, Outcome("toy", day, candidate.version, decision, candidate if decision.promote else parent, parent)
        )
    return candidate, stale


def _statuses(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.text("SELECT version, status FROM model_runs")).all())


@pytest.mark.integration
def test_champion_of_a_date_is_the_latest_promotion_on_or_before_it(engine: Engine, tmp_path: Path) -> None:
    d1, d2, d3 = DAY, DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2)
    first, _ = _run(engine, tmp_path, d1, 0.05, weights=1.0)
    worse, _ = _run(engine, tmp_path, d2, 0.01, weights=2.0)
    better, _ = _run(engine, tmp_path, d3, 0.06, weights=3.0)
    assert _statuses(engine) == {first.version: "promoted", worse.version: "rejected", better.version: "promoted"}
    assert champion_of(engine, "toy", d1 - dt.timedelta(days=1)) is None
    assert champion_of(engine, "toy", d2).version == first.version  # a rejected run keeps the day before's
    assert champion_of(engine, "toy", d3).version == better.version == champion(engine, "toy").version


@pytest.mark.integration
def test_a_backfilled_promotion_marks_later_dates_stale_and_never_changes_their_champion(
    engine: Engine, tmp_path: Path
) -> None:
    d1, d2 = DAY, DAY + dt.timedelta(days=1)
    later, stale = _run(engine, tmp_path, d2, 0.05, weights=2.0)
    assert stale == []
    earlier, stale = _run(engine, tmp_path, d1, 0.04, weights=1.0)  # a backfill after the fact
    assert stale == [d2]
    assert champion_of(engine, "toy", d2).version == later.version  # until d2 reruns
    [(model, day, reason)] = stale_dates(engine)
    assert (model, day) == ("toy", d2) and f"lineage changed by the {d1} run" in reason and "rerun" in reason


@pytest.mark.integration
def test_a_rerun_of_a_date_replaces_its_decision_and_registers_no_new_version(engine: Engine, tmp_path: Path) -> None:
    first, _ = _run(engine, tmp_path, DAY, 0.05, weights=1.0)
    again, _ = _run(engine, tmp_path, DAY, 0.05, weights=1.0)
    assert again.version == first.version and _statuses(engine) == {first.version: "promoted"}
    other, _ = _run(engine, tmp_path, DAY, 0.07, weights=4.0)  # the date's data changed: another model
    assert _statuses(engine) == {first.version: "superseded", other.version: "promoted"}
    assert champion_of(engine, "toy", DAY).version == other.version
    with engine.connect() as conn:
        revoked = conn.execute(
            sa.text("SELECT version, revoked_by FROM model_promotions WHERE revoked_at IS NOT NULL")
        ).all()
    assert revoked == [(first.version, f"rerun of {DAY}")]


@pytest.mark.integration
def test_an_outcome_rolled_back_with_its_outputs_leaves_no_champion(engine: Engine, tmp_path: Path) -> None:
    candidate = _candidate(engine, tmp_path, DAY, 0.05, weights=1.0)
    with pytest.raises(RuntimeError), engine.begin() as conn:
        record_outcome(conn, Outcome("toy", DAY, candidate.version, decide(RULE, candidate.metrics, None),
                                     candidate, None))  # fmt: skip
        raise RuntimeError("the output write was killed")
    assert champion(engine, "toy") is None and _statuses(engine) == {candidate.version: "candidate"}


def test_artifacts_are_content_addressed_and_hash_checked(tmp_path: Path) -> None:
    path, sha = save_artifact({"w": torch.arange(3.0)}, tmp_path)
    assert path.name == f"model-{sha[:10]}.pt"
    assert torch.equal(load_artifact(path, sha)["w"], torch.arange(3.0))
    path.write_bytes(path.read_bytes() + b"tampered")
    with pytest.raises(ArtifactIntegrityError, match="refusing to load a file that changed"):
        load_artifact(path, sha)


def test_identical_payloads_hash_the_same_in_every_process(tmp_path: Path) -> None:
    # A rerun of a date in a new Airflow task process must find the same version, not register a twin.
    import subprocess
    import sys

    code = (
        "import sys, torch, pathlib; from pipelines.registry import save_artifact; "
        "print(save_artifact({'w': torch.arange(4.0)}, pathlib.Path(sys.argv[1]))[1])"
    )
    hashes = {
        subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / str(i))], capture_output=True, text=True, check=True
        ).stdout.strip()
        for i in range(2)
    }
    assert len(hashes) == 1
