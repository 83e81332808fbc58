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

A recipe that scores users (`ShardedRecipe`) splits step 5 in two: `score_shard` scores and stages one of
N user shards (each its own transaction, out of readers' sight; Settings.score_shards sets N), and
`publish` attaches every staged shard as D's outputs in ONE transaction with the decision and the lineage.
`train`, `score_shard` and `publish` are separate DAG tasks (the shards as mapped task instances, each
loading the served model from the registry by version, its artifact checked against its sha256); `run`
calls the same three in one process.

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
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, runtime_checkable

from pipelines import registry
from pipelines.errors import ConfigError
from pipelines.privacy import models as privacy

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


@dataclass(frozen=True)
class Shard:
    index: int
    count: int


@dataclass(frozen=True)
class Plan:
    """What training decided, for the shards and the publish step. Small and JSON-able (it travels as XCom):
    the served model goes by its registry version, never by value."""

    model: str
    as_of_date: str
    policy: str
    shards: int
    candidate: str | None
    decision: Mapping[str, Any] | None  # registry.Decision as a dict
    serving: str | None
    parent: str | None
    summary: Mapping[str, Any]
    train_seconds: float
    erasure_seen: int | None  # the newest completed erasure when training read its data (pipelines.privacy)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> Plan:
        return cls(**{f.name: value[f.name] for f in dataclasses.fields(cls)})


class Trainable(Protocol[DataT, ModelT]):
    """What every model package supplies: reading, training and loading; `run` does the rest."""

    model_name: str
    promotion: registry.PromotionRule

    def read(self, ctx: Context) -> DataT: ...

    def fit(self, data: DataT, parent: Served[ModelT] | None, ctx: Context) -> Candidate | str:
        """Train and score a candidate; or say in words why none is trained today."""

    def load(self, checkpoint: Checkpoint) -> ModelT: ...


class Recipe(Trainable[DataT, ModelT], Protocol):
    """A model package whose outputs are written in one piece."""

    def write(self, conn: Connection, data: DataT, served: Served[ModelT] | None, ctx: Context) -> dict[str, Any]:
        """Replace the date's outputs on `conn` (the lifecycle commits them) and summarise them."""


@runtime_checkable
class ShardedRecipe(Trainable[DataT, ModelT], Protocol):
    """A recipe whose outputs are rows per user, written in user shards instead of by `write`."""

    sharded_tables: tuple[str, ...]  # partitioned by date; staged by `train` before any shard runs

    def score_shard(self, data: DataT, served: Served[ModelT] | None, ctx: Context, shard: Shard) -> dict[str, Any]:
        """Score the shard's users and stage their rows (partitions.write_shard); summarise them."""

    def publish(
        self,
        conn: Connection,
        data: Callable[[], DataT],
        served: Served[ModelT] | None,
        ctx: Context,
        shards: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """Attach the staged shards (partitions.publish_shards) and write any per-date rows on `conn`; summarise."""


def load(recipe: Trainable[Any, ModelT], run: registry.ModelRun | None) -> Served[ModelT] | None:
    """Rebuild a registered model from its artifact (hash checked)."""
    if run is None or run.artifact_path is None:
        return None
    checkpoint = Checkpoint.from_payload(registry.load_artifact(run.artifact_path, run.artifact_sha256))
    return Served(run, recipe.load(checkpoint), checkpoint)


def run(
    recipe: Recipe[Any, Any] | ShardedRecipe[Any, Any],
    engine: Engine,
    as_of: dt.date,
    settings: Settings,
    *,
    device: torch.device,
    force_promote: bool = False,
    policy: str = "champion_of_date",
) -> dict[str, Any]:
    """Run one model task for `as_of` in this process; returns the summary (the same keys for every model)."""
    plan, data, serving, ctx = _train(recipe, engine, as_of, settings, device, force_promote, policy)
    if not isinstance(recipe, ShardedRecipe):
        started = time.perf_counter()
        outputs, stale = _commit(engine, plan, serving, lambda conn: recipe.write(conn, data, serving, ctx))
        return _finish(plan, serving, stale, outputs, plan.train_seconds + time.perf_counter() - started)
    shards = [
        score_shard(recipe, engine, settings, plan, i, device=device, data=data, served=serving)
        for i in range(plan.shards)
    ]
    return publish(recipe, engine, settings, plan, shards, device=device, data=data, served=serving)


def train(
    recipe: Trainable[Any, Any],
    engine: Engine,
    as_of: dt.date,
    settings: Settings,
    *,
    device: torch.device,
    force_promote: bool = False,
    policy: str = "champion_of_date",
) -> Plan:
    """Steps 1-4 (read, train, register, decide), and empty staging tables for the shards."""
    return _train(recipe, engine, as_of, settings, device, force_promote, policy)[0]


def score_shard(
    recipe: ShardedRecipe[DataT, ModelT],
    engine: Engine,
    settings: Settings,
    plan: Plan,
    shard: int,
    *,
    device: torch.device,
    data: DataT | None = None,
    served: Served[ModelT] | None = None,
) -> dict[str, Any]:
    """Score and stage one user shard with the plan's served model; returns its summary."""
    started = time.perf_counter()
    ctx = _context(recipe, engine, plan, settings, device)
    if data is None:
        data = recipe.read(ctx)
    if served is None:
        served = _served(recipe, engine, plan)
    summary = recipe.score_shard(data, served, ctx, Shard(shard, plan.shards))
    return {"shard": shard, "of": plan.shards, **summary, "seconds": round(time.perf_counter() - started, 2)}


def publish(
    recipe: ShardedRecipe[DataT, ModelT],
    engine: Engine,
    settings: Settings,
    plan: Plan,
    shards: list[dict[str, Any]],
    *,
    device: torch.device,
    data: DataT | None = None,
    served: Served[ModelT] | None = None,
) -> dict[str, Any]:
    """Attach the staged shards as the date's outputs, with the decision and the lineage, in ONE transaction."""
    from pipelines.warehouse.partitions import ShardError

    missing = sorted(set(range(plan.shards)) - {s["shard"] for s in shards})
    if missing or len(shards) != plan.shards:
        raise ShardError(
            f"{plan.model} for {plan.as_of_date}: shard(s) {missing} of {plan.shards} have not reported; "
            "the previous outputs stay until every shard has been written"
        )
    started = time.perf_counter()
    ctx = _context(recipe, engine, plan, settings, device)
    if served is None:
        served = _served(recipe, engine, plan)
    read: list[DataT] = [] if data is None else [data]

    def lazy() -> DataT:
        if not read:
            read.append(recipe.read(ctx))
        return read[0]

    ordered = sorted(shards, key=lambda s: s["shard"])
    outputs, stale = _commit(engine, plan, served, lambda conn: recipe.publish(conn, lazy, served, ctx, ordered))
    publish_seconds = time.perf_counter() - started
    outputs = {**outputs, "publish_seconds": round(publish_seconds, 3)}
    seconds = plan.train_seconds + sum(s["seconds"] for s in ordered) + publish_seconds
    return _finish(plan, served, stale, outputs, seconds)


def _commit(
    engine: Engine, plan: Plan, served: Served[Any] | None, write: Callable[[Connection], dict[str, Any]]
) -> tuple[dict[str, Any], list[dt.date]]:
    """The date's outputs, the decision and the lineage on ONE transaction; refused if a customer was erased
    after training read its data (shards staged rows readers cannot see yet, so nothing of theirs shows)."""
    parent = None if plan.parent is None else registry.get_run(engine, plan.model, plan.parent)
    with engine.begin() as conn:
        privacy.check_no_erasure_since(conn, plan.erasure_seen)
        outputs = write(conn)
        stale = registry.record_outcome(conn, _outcome(plan, served, parent))
    return outputs, stale


def _context(
    recipe: Trainable[Any, Any], engine: Engine, plan: Plan, settings: Settings, device: torch.device
) -> Context:
    from pipelines.compute import derive_seed, seed_everything

    if plan.model != recipe.model_name:
        raise ConfigError(f"a plan of {plan.model} handed to the {recipe.model_name} task")
    as_of = dt.date.fromisoformat(plan.as_of_date)
    seed = derive_seed(recipe.model_name, as_of)
    seed_everything(seed)
    return Context(engine, as_of, settings, device, seed, False, plan.erasure_seen)


def _served(recipe: Trainable[Any, ModelT], engine: Engine, plan: Plan) -> Served[ModelT] | None:
    """The plan's served model, from its registered artifact (load_artifact checks its sha256)."""
    if plan.serving is None:
        return None
    run = registry.get_run(engine, recipe.model_name, plan.serving)
    if run is None:
        raise registry.ArtifactIntegrityError(f"{plan.serving} of {plan.model} is not in the registry")
    return load(recipe, run)


def _train(
    recipe: Trainable[Any, Any],
    engine: Engine,
    as_of: dt.date,
    settings: Settings,
    device: torch.device,
    force_promote: bool,
    policy: str,
) -> tuple[Plan, Any, Served[Any] | None, Context]:
    from pipelines.compute import derive_seed, seed_everything
    from pipelines.warehouse.partitions import begin_shards

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
    shards = 1
    if isinstance(recipe, ShardedRecipe):
        shards = settings.score_shards
        for table in recipe.sharded_tables:
            begin_shards(engine, table, as_of)
    plan = Plan(
        model=name,
        as_of_date=as_of.isoformat(),
        policy=policy,
        shards=shards,
        candidate=candidate_version,
        decision=None if decision is None else dataclasses.asdict(decision),
        serving=None if serving is None else serving.version,
        parent=None if parent_run is None else parent_run.version,
        summary=summary,
        train_seconds=round(time.perf_counter() - started, 2),
        erasure_seen=ctx.erasure_seen,
    )
    return plan, data, serving, ctx


def _outcome(plan: Plan, served: Served[Any] | None, parent: registry.ModelRun | None) -> registry.Outcome:
    decision = None if plan.decision is None else registry.Decision(**plan.decision)
    return registry.Outcome(
        plan.model,
        dt.date.fromisoformat(plan.as_of_date),
        plan.candidate,
        decision,
        None if served is None else served.run,
        parent,
        plan.policy,
    )


def _finish(
    plan: Plan, serving: Served[Any] | None, stale: list[dt.date], outputs: dict[str, Any], seconds: float
) -> dict[str, Any]:
    if stale:
        log.warning("%s: the lineage of %s changed; rerun them to refresh", plan.model, ", ".join(map(str, stale)))
    summary = {
        **plan.summary,
        "served_by": None if serving is None else serving.version,
        "served_model_as_of": None if serving is None else serving.run.as_of_date.isoformat(),
        "marked_stale": [d.isoformat() for d in stale],
        "outputs": outputs,
        "seconds": round(seconds, 2),
    }
    log.info("%s for %s: %s", plan.model, plan.as_of_date, summary)
    return summary


def _register(
    recipe: Trainable[Any, ModelT], fitted: Candidate, parent: Served[ModelT] | None, ctx: Context
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
