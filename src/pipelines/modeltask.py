"""The one lifecycle every model task follows, point in time.

A run for business date D:
1. reads its data as of D (the recipe's `read`);
2. takes the champion of D-1 as its parent: the model that was serving when D's data arrived;
3. trains a candidate, warm-started from the parent where the recipe does so, and scores it and the parent
   on the same split (the recipe's `fit`);
4. saves the candidate as a self-describing checkpoint (one schema for every model), registers it, and
   decides promotion against the parent's figures on that split;
5. serves D with the champion of D (the candidate if promoted, else the parent) and writes D's outputs,
   the decision and the served lineage in ONE transaction (the recipe's `write` on that connection), so a
   killed write leaves neither new outputs nor a new champion behind;
6. returns a summary with the same keys for every model.

Model tasks of one model serialise by date (the DAG's depends_on_past), and nothing here reads a later
date: the outputs of D depend only on the data up to D and on the promotions at dates before D, whatever
order or concurrency the dates ran in. A recipe is a model package's data reading, training, scoring and
output frames; adding a model task is writing one (docs/architecture.md, "Adding a model task").
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from pipelines import registry
from pipelines.errors import ConfigError

if TYPE_CHECKING:
    import torch
    from sqlalchemy.engine import Connection, Engine

    from pipelines.settings import Settings

log = logging.getLogger(__name__)

POLICIES = ("champion_of_date", "current_champion")

DataT = TypeVar("DataT")
ModelT = TypeVar("ModelT")


@dataclass(frozen=True)
class Checkpoint:
    """The one checkpoint schema: enough to rebuild the model from the file alone.

    `weights` is the model's state dict (or named state dicts for a model of several networks),
    `model_config` the constructor arguments, `train_config` the task config that trained it, `extras`
    what else serving needs (an item vocabulary, class names, saved segment centroids).
    """

    weights: Mapping[str, Any]
    model_config: Mapping[str, Any]
    train_config: Mapping[str, Any]
    as_of_date: str
    metrics: Mapping[str, float]
    extras: Mapping[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        return {"schema": 2, **{f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}}

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Checkpoint:
        """Read a checkpoint of this schema or of the layouts written before it (kept loadable)."""
        if payload.get("schema") == 2:
            return cls(**{f.name: payload.get(f.name, {}) for f in dataclasses.fields(cls)})
        if "state_dict" in payload:  # recommender, schema 1
            extras = {"item_ids": payload["item_ids"], "best_epoch": payload.get("best_epoch")}
            return cls(payload["state_dict"], payload["model_config"], payload.get("train_config", {}),
                       payload["as_of_date"], payload.get("metrics", {}), extras)  # fmt: skip
        if "model_state" in payload:  # user-profile VAE, schema 1
            extras = {"item_ids": payload["item_ids"], "epochs": payload.get("epochs")}
            return cls(payload["model_state"], payload["vae_config"], payload.get("config", {}),
                       payload["as_of_date"], payload.get("metrics", {}), extras)  # fmt: skip
        if "spec" in payload:  # ad-creative GAN, schema 1
            weights = {k: payload[k] for k in ("generator", "discriminator", "generator_ema", "opt_g", "opt_d")}
            weights["classifier"] = payload["classifier"]
            config = {"gan": payload["spec"], "classifier": payload["classifier_spec"]}
            extras = {"classes": list(payload["classes"]), "data_fingerprint": payload.get("data_fingerprint")}
            return cls(weights, config, payload.get("train_config", {}), payload["as_of_date"],
                       payload.get("metrics", {}), extras)  # fmt: skip
        raise registry.ArtifactIntegrityError(f"unknown checkpoint layout with keys {sorted(payload)[:8]}")


@dataclass(frozen=True)
class Served(Generic[ModelT]):
    """A registered model rebuilt for serving."""

    run: registry.ModelRun
    model: ModelT
    checkpoint: Checkpoint

    @property
    def version(self) -> str:
        return self.run.version


@dataclass(frozen=True)
class Candidate:
    """What a recipe's `fit` trained: the checkpoint to register and how it and its parent scored."""

    checkpoint: Checkpoint
    metrics: Mapping[str, float]  # the candidate's, plus baselines as `<baseline>_<metric>`
    parent_metrics: Mapping[str, float] | None  # the parent re-scored on the same split; None: no parent
    params: Mapping[str, Any]
    protocol: Mapping[str, Any]
    training: Mapping[str, Any]  # model-specific summary of the training (epochs, rates, ...)
    plot: Callable[[Path, str], Path | None] | None = None  # draws the training curves beside the artifact


@dataclass(frozen=True)
class Context:
    engine: Engine
    as_of: dt.date
    settings: Settings
    device: torch.device
    seed: int
    force_promote: bool
    erasure_seen: int | None = None  # the newest completed erasure request when the run read its data


class Recipe(Protocol[DataT, ModelT]):
    """What a model package supplies; `run` does the rest."""

    model_name: str
    promotion: registry.PromotionRule

    def read(self, ctx: Context) -> DataT: ...

    def fit(self, data: DataT, parent: Served[ModelT] | None, ctx: Context) -> Candidate | str:
        """Train and score a candidate; or say in words why none is trained today."""

    def load(self, checkpoint: Checkpoint) -> ModelT: ...

    def write(self, conn: Connection, data: DataT, served: Served[ModelT] | None, ctx: Context) -> dict[str, Any]:
        """Replace the date's outputs on `conn` (the lifecycle commits them) and summarise them."""


def load(recipe: Recipe[Any, ModelT], run: registry.ModelRun | None) -> Served[ModelT] | None:
    """Rebuild a registered model from its artifact (hash checked)."""
    if run is None or run.artifact_path is None:
        return None
    checkpoint = Checkpoint.from_payload(registry.load_artifact(run.artifact_path, run.artifact_sha256))
    return Served(run, recipe.load(checkpoint), checkpoint)


def run(
    recipe: Recipe[Any, Any],
    engine: Engine,
    as_of: dt.date,
    settings: Settings,
    *,
    device: torch.device,
    force_promote: bool = False,
    policy: str = "champion_of_date",
) -> dict[str, Any]:
    """Run one model task for `as_of`; returns the summary (the same keys for every model)."""
    from pipelines.compute import derive_seed, seed_everything
    from pipelines.privacy import models as privacy

    if policy not in POLICIES:
        raise ConfigError(f"unknown serving policy {policy!r}; one of {', '.join(POLICIES)}")
    started = time.perf_counter()
    name = recipe.model_name
    seed = derive_seed(name, as_of)
    seed_everything(seed)
    ctx = Context(engine, as_of, settings, device, seed, force_promote, privacy.newest_erasure(engine))
    data = recipe.read(ctx)
    parent_run = registry.champion_of(engine, name, as_of - dt.timedelta(days=1))
    summary: dict[str, Any] = {
        "model": name,
        "as_of_date": as_of.isoformat(),
        "device": str(device),
        "policy": policy,
        "parent": None if parent_run is None else parent_run.version,
    }
    candidate_version: str | None = None
    decision: registry.Decision | None = None
    if policy == "current_champion":
        current = registry.champion(engine, name)
        privacy.refuse_if_trained_before_erasure(engine, current)
        serving = load(recipe, current)
        summary |= {"trained": False, "reason": "serve_with_current_champion: today's champion serves this date"}
    else:
        # A parent that learned from users erased since must not pass its weights on: train cold.
        cold = privacy.trained_before_erasure(engine, parent_run)
        parent = None if cold else load(recipe, parent_run)
        if cold:
            summary["cold_start"] = cold
        fitted = recipe.fit(data, parent, ctx)
        if isinstance(fitted, str):
            log.warning("%s: no candidate trained for %s: %s", name, as_of, fitted)
            summary |= {"trained": False, "reason": fitted}
            serving = parent
        else:
            candidate, decision = _register(recipe, fitted, parent, ctx)
            candidate_version = candidate.version
            serving = candidate if decision.promote else parent
            summary |= {
                "trained": True,
                "candidate": candidate.version,
                "candidate_status": "promoted" if decision.promote else "rejected",
                "decision": decision.reason,
                "metrics": {k: round(float(v), 5) for k, v in fitted.metrics.items()},
                "parent_metrics": None
                if fitted.parent_metrics is None
                else {k: round(float(v), 5) for k, v in fitted.parent_metrics.items()},
                "training": dict(fitted.training),
            }
    with engine.begin() as conn:
        privacy.check_no_erasure_since(conn, ctx.erasure_seen)
        outputs = recipe.write(conn, data, serving, ctx)
        stale = registry.record_outcome(
            conn,
            registry.Outcome(
                name, as_of, candidate_version, decision, None if serving is None else serving.run, parent_run, policy
            ),
        )
    if stale:
        log.warning("%s: the lineage of %s changed; rerun them to refresh", name, ", ".join(map(str, stale)))
    summary |= {
        "served_by": None if serving is None else serving.version,
        "served_model_as_of": None if serving is None else serving.run.as_of_date.isoformat(),
        "marked_stale": [d.isoformat() for d in stale],
        "outputs": outputs,
        "seconds": round(time.perf_counter() - started, 2),
    }
    log.info("%s for %s: %s", name, as_of, summary)
    return summary


def _register(
    recipe: Recipe[Any, ModelT], fitted: Candidate, parent: Served[ModelT] | None, ctx: Context
) -> tuple[Served[ModelT], registry.Decision]:
    """Save the checkpoint, register the candidate, decide against the parent on the same split."""
    directory = registry.artifact_dir(ctx.settings.artifacts, recipe.model_name, ctx.as_of)
    path, sha = registry.save_artifact(fitted.checkpoint.payload(), directory)
    version = registry.version_id(recipe.model_name, ctx.as_of, sha)
    if fitted.plot is not None:
        fitted.plot(path.with_suffix(".png"), version)
    # The parent's figures on this run's split sit beside the candidate's (the registry row, not the artifact:
    # a rerun must hash the same).
    parent_figures = {f"parent_{k}": v for k, v in (fitted.parent_metrics or {}).items()}
    run = registry.register_candidate(
        ctx.engine,
        model_name=recipe.model_name,
        version=version,
        as_of_date=ctx.as_of,
        metrics={**fitted.metrics, **parent_figures},
        params=fitted.params,
        protocol=fitted.protocol,
        artifact_path=path,
        artifact_sha256=sha,
        parent_version=None if parent is None else parent.version,
        erasure_seen=ctx.erasure_seen,
    )
    reference = None
    if parent is not None:
        reference = fitted.parent_metrics if fitted.parent_metrics is not None else parent.run.metrics
    decision = registry.decide(recipe.promotion, fitted.metrics, reference, force=ctx.force_promote)
    log.info("%s candidate %s: %s (%s)", recipe.model_name, version, decision.promote, decision.reason)
    return Served(run, recipe.load(fitted.checkpoint), fitted.checkpoint), decision


def _plain(value: Any) -> Any:
    """Checkpoint fields as torch.save(weights_only) can load them: dicts, lists, tensors, scalars."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}  # keys kept: optimizer states index by int
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value
