"""Champion/challenger: the promotion rule, the registry's state changes, hashed artifacts."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import sqlalchemy as sa
import torch
from sqlalchemy.engine import Engine

from pipelines.registry import (
    ArtifactIntegrityError,
    PromotionRule,
    champion,
    decide,
    load_artifact,
    register_and_decide,
    save_artifact,
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


def _register(
    engine: Engine,
    tmp_path: Path,
    value: float,
    *,
    weights: float,
    force: bool = False,
    champion_metrics: dict[str, float] | None = None,
):
    path, sha = save_artifact({"w": torch.full((2,), weights)}, tmp_path)
    return register_and_decide(
        engine,
        model_name="toy",
        version=version_id("toy", DAY, sha),
        as_of_date=DAY,
        metrics={"ndcg@10": value},
        params={"lr": 0.1},
        protocol={"split": "loo"},
        artifact_path=path,
        artifact_sha256=sha,
        rule=RULE,
        force=force,
        champion_metrics=champion_metrics,
    )


@pytest.mark.integration
def test_registry_promotes_retires_and_rejects(engine: Engine, tmp_path: Path) -> None:
    first, _ = _register(engine, tmp_path, 0.05, weights=1.0)
    assert first.status == "champion"
    worse, decision = _register(engine, tmp_path, 0.01, weights=2.0)
    assert worse.status == "rejected" and "worse than champion" in decision.reason
    assert champion(engine, "toy").version == first.version
    better, _ = _register(engine, tmp_path, 0.06, weights=3.0)
    assert champion(engine, "toy").version == better.version
    with engine.connect() as conn:
        statuses = dict(conn.execute(sa.text("SELECT version, status FROM model_runs")).all())
    assert statuses == {first.version: "retired", worse.version: "rejected", better.version: "champion"}
    # Re-registering the champion's own version (a rerun of the date) keeps it champion.
    again, decision = _register(engine, tmp_path, 0.06, weights=3.0)
    assert again.status == "champion" and decision.reason == "this version already is the champion"


@pytest.mark.integration
def test_champion_rescored_on_the_candidates_split_is_what_the_candidate_is_compared_with(
    engine: Engine, tmp_path: Path
) -> None:
    first, _ = _register(engine, tmp_path, 0.05, weights=1.0)
    # On its own (harder) split the candidate scores 0.03; the champion re-scored there gets 0.02.
    candidate, decision = _register(engine, tmp_path, 0.03, weights=2.0, champion_metrics={"ndcg@10": 0.02})
    assert candidate.status == "champion" and "vs champion 0.0200" in decision.reason
    # Without re-scored figures the reference is what the champion registered with (0.03).
    third, _ = _register(engine, tmp_path, 0.015, weights=3.0)
    assert third.status == "rejected" and champion(engine, "toy").version == candidate.version


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
