"""`refresh_recommendations` as a recipe of the model-task lifecycle (`pipelines.modeltask`).

Reads events as of the business date; the candidate is tuned on validation (early stopping), scored on
test beside popularity and beside its parent (the champion of the day before) re-scored on the same split,
and refitted on every event. The date's champion then scores every user, shard by shard, and the staged
shards become the day's `recommendations` partition on the lifecycle's transaction.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from pipelines import registry
from pipelines.compute import derive_seed
from pipelines.errors import DataError
from pipelines.modeltask import Candidate, Checkpoint, Context, Served, Shard
from pipelines.ranking import popularity
from pipelines.recs.config import MODEL_NAME, RecsConfig
from pipelines.recs.infer import aligned, model_topk, popularity_topk, ranking
from pipelines.recs.metrics import evaluate
from pipelines.recs.model import SASRec, SASRecConfig, grow_items
from pipelines.recs.sequences import ItemVocab, LeaveOneOut, Sequences, from_events, leave_one_out
from pipelines.recs.train import TrainResult, refit, save_curves, score_batches, train
from pipelines.warehouse.partitions import publish_shards, shard_members, write_shard
from pipelines.warehouse.prefetch import prefetch
from pipelines.warehouse.reads import day_bounds, events_as_of, read_frame

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

PROTOCOL = {
    "split": "leave-one-out per user with >= 3 interactions: last item test, second-to-last validation",
    "ranking": "full ranking over every item of the mapping; ties scored as their expectation",
    "history": "test_* keep history items, test_excl_* exclude them; validation keeps them",
    "selection": "early stopping on validation NDCG@10, then refit on every event for the best epoch count",
    "promotion": "validation NDCG@10 vs the champion re-scored on the same split, minus a tolerance",
}


@dataclass(frozen=True)
class RecsModel:
    """A recommender rebuilt from a checkpoint, with the item mapping it was trained with."""

    model: SASRec
    vocab: ItemVocab


@dataclass(frozen=True)
class RecsData:
    events: pd.DataFrame
    catalogue: np.ndarray
    counts: dict[str, int]


class RecsRecipe:
    """`refresh_recommendations` as a recipe of the model-task lifecycle (pipelines.modeltask)."""

    model_name = MODEL_NAME
    sharded_tables = ("recommendations",)

    def __init__(self, config: RecsConfig) -> None:
        self.config = config
        self.device_setting = config.device
        self.promotion = registry.PromotionRule("valid_ndcg@10", tolerance=config.promotion_tolerance)

    def read(self, ctx: Context) -> RecsData:
        return RecsData(*_read_inputs(ctx.engine, ctx.as_of, self.config))

    def load(self, checkpoint: Checkpoint) -> RecsModel:
        model = SASRec(SASRecConfig(**checkpoint.model_config))
        model.load_state_dict(checkpoint.weights)
        return RecsModel(model, ItemVocab(np.asarray(checkpoint.extras["item_ids"]).astype(np.int64)))

    def fit(self, data: RecsData, parent: Served[RecsModel] | None, ctx: Context) -> Candidate | str:
        config = self.config
        base = parent.model.vocab if parent is not None else ItemVocab(np.zeros(0, dtype=np.int64))
        events = data.events
        vocab = base.extended(events.loc[events["event_type"].isin(list(config.event_weights)), "item_id"].to_numpy())
        seqs = from_events(events, vocab, config.event_weights)
        split = leave_one_out(seqs)
        skip = _why_not_train(vocab, split, config)
        if skip is not None:
            return skip
        init = _warm_start(parent, config, vocab, ctx.seed)
        result = train(split, vocab.size, config, ctx.device, ctx.seed, init_state=init)
        metrics = _metrics(result, split, vocab.size, ctx.device)
        served = result
        if config.refit and result.best_epoch > 0:
            served = refit(seqs, vocab.size, config, ctx.device, derive_seed(MODEL_NAME, ctx.as_of, "refit"),
                           result.best_epoch, init_state=init)  # fmt: skip
        checkpoint = Checkpoint(
            weights={k: v.detach().cpu() for k, v in served.model.state_dict().items()},
            model_config=served.model.cfg.to_dict(),
            train_config=dataclasses.asdict(config),
            as_of_date=ctx.as_of.isoformat(),
            metrics=metrics,
            extras={"item_ids": torch.from_numpy(vocab.item_ids.copy()), "best_epoch": result.best_epoch},
        )
        parent_metrics = None
        if parent is not None:
            parent_metrics = {"valid_ndcg@10": _rescore(parent.model, split, vocab.size, ctx.device)}
        log.info(
            "candidate: valid NDCG@10 %.4f (parent %s, popularity %.4f), test NDCG@10 %.4f HR@10 %.4f",
            metrics["valid_ndcg@10"],
            "none" if parent_metrics is None else f"{parent_metrics['valid_ndcg@10']:.4f}",
            metrics["popularity_valid_ndcg@10"],
            metrics["test_ndcg@10"],
            metrics["test_hr@10"],
        )
        history = result.history
        return Candidate(
            checkpoint=checkpoint,
            metrics=metrics,
            parent_metrics=parent_metrics,
            params=dataclasses.asdict(config),
            protocol=PROTOCOL,
            training={
                "users_with_history": len(seqs),
                "items": vocab.size,
                "evaluable_users": len(split.test_target),
                "warm_start_from": None if init is None or parent is None else parent.version,
                "epochs": result.epochs,
                "best_epoch": result.best_epoch,
                "seconds_per_epoch": round(result.seconds_per_epoch, 3),
                "refit_epochs": served.epochs if served is not result else 0,
            },
            plot=lambda path, version: save_curves(history, path, f"{version}: best epoch {result.best_epoch}"),
        )

    def score_shard(
        self, data: RecsData, served: Served[RecsModel] | None, ctx: Context, shard: Shard
    ) -> dict[str, object]:
        written = _write(ctx.engine, ctx.as_of, self.config, ctx.device, data, served, shard)
        return {**data.counts, **written}

    def publish(
        self,
        conn: Connection,
        data: Callable[[], RecsData],
        served: Served[RecsModel] | None,
        ctx: Context,
        shards: list[dict[str, Any]],
    ) -> dict[str, object]:
        publish_shards(conn, "recommendations", ctx.as_of, len(shards))
        rows = sum(s["rows_written"] for s in shards)
        seconds = sum(s["write_seconds"] for s in shards)
        return {
            # The counts of the date's events and the served version are the same in every shard.
            **{k: shards[0][k] for k in ("events", "events_on_day", "unknown_item_events", "served_by")},
            **{k: sum(s[k] for s in shards) for k in ("users", "model_users", "rows_written")},
            "rows_by_source": {k: sum(s["rows_by_source"][k] for s in shards) for k in shards[0]["rows_by_source"]},
            "write_seconds": round(seconds, 2),
            "rows_per_second": round(rows / max(seconds, 1e-9)),
            "shards": len(shards),
        }


def _read_inputs(engine: Engine, as_of: dt.date, config: RecsConfig) -> tuple[pd.DataFrame, np.ndarray, dict[str, int]]:
    """Events of the configured types up to the end of `as_of` (events of unknown items are dropped),
    the catalogue's item ids, and counts for the summary."""
    since = None if config.history_days is None else as_of - dt.timedelta(days=config.history_days - 1)
    types = sorted(set(config.event_weights) | set(config.exclude_event_types))
    events = events_as_of(
        engine, as_of, since=since, event_types=types, columns=("user_id", "item_id", "event_type", "event_ts")
    )
    events = events.dropna(subset=["user_id", "item_id"]).astype({"user_id": "int64", "item_id": "int64"})
    known = read_frame(engine, "SELECT item_id FROM items")["item_id"].to_numpy(np.int64)
    unknown = ~np.isin(events["item_id"].to_numpy(), known)
    if unknown.any():
        sample = sorted(set(events.loc[unknown, "item_id"].tolist()))[:5]
        log.warning("%d events name items missing from `items` (e.g. %s); they are ignored", int(unknown.sum()), sample)
    events = events.loc[~unknown].reset_index(drop=True)
    start, _ = day_bounds(as_of)
    on_day = int((events["event_ts"] >= start).sum())
    if on_day == 0:
        log.warning("no %s events on %s itself; training on the history up to it", "/".join(types), as_of)
    if events.empty:
        raise DataError(
            f"no {'/'.join(types)} events of known items up to {as_of}: nothing to learn or recommend from; "
            "load events (or check event_weights) before refreshing recommendations"
        )
    return events, known, {"events": len(events), "events_on_day": on_day, "unknown_item_events": int(unknown.sum())}


def _why_not_train(vocab: ItemVocab, split: LeaveOneOut, config: RecsConfig) -> str | None:
    if vocab.size < 2:
        return f"the catalogue has {vocab.size} item(s) with interactions; ranking needs at least 2"
    if len(split.test_target) < config.min_train_users:
        return (
            f"{len(split.test_target)} users have the 3+ interactions leave-one-out needs; "
            f"min_train_users is {config.min_train_users}"
        )
    return None


def _warm_start(
    parent: Served[RecsModel] | None, config: RecsConfig, vocab: ItemVocab, seed: int
) -> dict[str, torch.Tensor] | None:
    if not config.warm_start or parent is None:
        return None
    old = parent.model.model.cfg
    shape = (old.max_len, old.hidden, old.blocks, old.heads, old.norm_first, old.repeat_bias)
    if shape != (config.max_len, config.hidden, config.blocks, config.heads, config.norm_first, config.repeat_bias):
        log.info("warm start skipped: parent %s has another architecture %s", parent.version, shape)
        return None
    log.info("warm start from parent %s (%d new items)", parent.version, vocab.size - parent.model.vocab.size)
    return grow_items(parent.model.model.state_dict(), vocab.size, seed)


def _metrics(result: TrainResult, split: LeaveOneOut, n_items: int, device: torch.device) -> dict[str, float]:
    model = result.model
    test = evaluate(score_batches(model, split.test_input, split.test_target, device), n_items)
    excl = evaluate(score_batches(model, split.test_input, split.test_target, device, exclude_history=True), n_items)
    pop = popularity(split.train.items, n_items + 1, split.train.weights)
    pop_valid = evaluate(_constant(pop, len(split.valid_target), split.valid_target), n_items)
    pop_test = evaluate(_constant(pop, len(split.test_target), split.test_target), n_items)
    metrics = {f"valid_{k}": v for k, v in result.best_valid.items() if k != "users"}
    metrics |= {f"test_{k}": v for k, v in test.items() if k != "users"}
    metrics |= {f"test_excl_{k}": v for k, v in excl.items() if k.startswith(("hr", "ndcg"))}
    metrics |= {f"popularity_valid_{k}": v for k, v in pop_valid.items() if k.startswith(("hr", "ndcg"))}
    metrics |= {f"popularity_test_{k}": v for k, v in pop_test.items() if k.startswith(("hr", "ndcg"))}
    metrics["evaluated_users"] = float(len(split.test_target))
    return metrics


def _constant(scores: np.ndarray, n: int, targets: np.ndarray):
    for start in range(0, n, 1024):
        rows = slice(start, min(start + 1024, n))
        batch = torch.from_numpy(np.tile(scores, (len(targets[rows]), 1)))
        yield batch, torch.from_numpy(targets[rows]), None


def _rescore(parent: RecsModel, split: LeaveOneOut, n_items: int, device: torch.device) -> float:
    """The parent's validation NDCG@10 on this run's split (items it has never seen score -inf)."""
    known = parent.vocab.size
    inputs = split.valid_input
    masked = Sequences(
        inputs.user_ids, inputs.offsets, np.where(inputs.items <= known, inputs.items, 0), inputs.weights
    )
    model = parent.model.to(device)

    def batches():
        for scores, targets, history in score_batches(model, masked, split.valid_target, device):
            padded = torch.full((scores.shape[0], n_items + 1), float("-inf"), device=scores.device)
            padded[:, : known + 1] = scores
            yield padded, targets, history

    return evaluate(batches(), n_items)["ndcg@10"]


def _write(
    engine: Engine,
    as_of: dt.date,
    config: RecsConfig,
    device: torch.device,
    data: RecsData,
    serving: Served[RecsModel] | None,
    shard: Shard,
) -> dict[str, object]:
    """Score the shard's active users with the date's champion (popularity without history) and stage
    their rows."""
    tick = time.perf_counter()
    events, catalogue = data.events, data.catalogue
    audience = _audience(engine, as_of, config)
    audience = audience[shard_members(engine, "recommendations", as_of, shard.count, shard.index, audience)]
    version = serving.version if serving is not None else f"popularity-{as_of:%Y%m%d}"
    frames: list[Any] = []
    model_users = np.zeros(0, dtype=np.int64)
    if serving is not None:
        vocab = serving.model.vocab
        mine = events if shard.count == 1 else events[np.isin(events["user_id"].to_numpy(), audience)]
        history = from_events(mine, vocab, config.event_weights)
        history = history.select(np.isin(history.user_ids, audience))
        excluded = {t: 1.0 for t in config.exclude_event_types}
        exclude = aligned(from_events(mine, vocab, excluded), history.user_ids)
        model_users = history.user_ids
        if len(history):
            frames.append(
                model_topk(
                    serving.model.model.to(device),
                    vocab,
                    history,
                    exclude,
                    top_k=config.top_k,
                    batch_users=config.infer_batch_users,
                    device=device,
                    unavailable=np.flatnonzero(~np.isin(vocab.item_ids, catalogue)) + 1,
                )
            )
    others = np.setdiff1d(audience, model_users)
    groups, rankings, global_ranking = _popularity(engine, as_of, config, events, others)
    frames.append(popularity_topk(others, groups, rankings, global_ranking, batch_users=config.infer_batch_users))
    counts = {"model": 0, "segment_popularity": 0, "global_popularity": 0}

    def tagged():
        # Scoring the next batches (torch releases the GIL) overlaps the encoding and COPY of this one.
        for frame in prefetch(chain.from_iterable(frames), depth=2):
            for source, n in frame["source"].value_counts().items():
                counts[str(source)] += int(n)
            yield frame.assign(model_version=version)

    rows = write_shard(engine, "recommendations", as_of, shard.index, shard.count, tagged())
    seconds = time.perf_counter() - tick
    log.info(
        "shard %d/%d: wrote %d recommendations for %d users (%d by the model) in %.1f s: %.0f users/s, %.0f rows/s",
        shard.index,
        shard.count,
        rows,
        len(audience),
        len(model_users),
        seconds,
        len(audience) / max(seconds, 1e-9),
        rows / max(seconds, 1e-9),
    )
    return {
        "served_by": version,
        "users": int(len(audience)),
        "model_users": int(len(model_users)),
        "rows_written": rows,
        "rows_by_source": counts,
        "write_seconds": round(seconds, 2),
        "rows_per_second": round(rows / max(seconds, 1e-9)),
    }


def _audience(engine: Engine, as_of: dt.date, config: RecsConfig) -> np.ndarray:
    """Registered users as of the date (and, with active_days, only those with a recent event)."""
    params: dict[str, object] = {"d": as_of}
    query = "SELECT user_id FROM users WHERE signup_date <= :d"
    if config.active_days is not None:
        params["start"] = day_bounds(as_of - dt.timedelta(days=config.active_days - 1))[0]
        params["end"] = day_bounds(as_of)[1]
        query += " AND user_id IN (SELECT user_id FROM events WHERE event_ts >= :start AND event_ts < :end)"
    return read_frame(engine, query + " ORDER BY user_id", params)["user_id"].to_numpy(np.int64)


def _popularity(
    engine: Engine, as_of: dt.date, config: RecsConfig, events: pd.DataFrame, users: np.ndarray
) -> tuple[np.ndarray, dict[int, tuple[np.ndarray, np.ndarray]], tuple[np.ndarray, np.ndarray]]:
    """Each user's segment (-1: none), per-segment and global top-K over the popularity window."""
    weighted = events[events["event_type"].isin(list(config.event_weights))]
    weighted = weighted.assign(w=weighted["event_type"].map(config.event_weights))
    recent = weighted[weighted["event_ts"] >= day_bounds(as_of - dt.timedelta(days=config.popularity_days - 1))[0]]
    if recent.empty:
        recent = weighted  # a quiet window: fall back to all history rather than to nothing
    global_ranking = ranking(recent.groupby("item_id")["w"].sum(), config.top_k)
    profiles = read_frame(
        engine,
        """SELECT user_id, segment_id FROM user_profiles
           WHERE as_of_date = (SELECT max(as_of_date) FROM user_profiles WHERE as_of_date <= :d)""",
        {"d": as_of},
    )
    segment_of = dict(
        zip(profiles["user_id"].to_numpy(np.int64), profiles["segment_id"].to_numpy(np.int64), strict=True)
    )
    groups = np.array([segment_of.get(int(u), -1) for u in users], dtype=np.int64)
    rankings: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    if len(profiles):
        joined = recent.merge(profiles, on="user_id")
        for segment, part in joined.groupby("segment_id"):
            rankings[int(segment)] = ranking(part.groupby("item_id")["w"].sum(), config.top_k)
    return groups, rankings, global_ranking
