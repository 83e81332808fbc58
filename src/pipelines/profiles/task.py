"""`train_user_profile_vae` as a recipe of the model-task lifecycle (`pipelines.modeltask`).

Reads the (user, item) state as of the business date (`profiles.state`), trains a Mult-VAE candidate on the
users outside a fixed held-out set, and scores it, its parent (the champion of the day before), popularity
and EASE on one strong-generalisation split. The date's champion then stages `user_profiles` shard by
shard; publishing attaches them and writes the date's `segments`, whose sizes, labels and drift need every
user.

Segment ids are a property of the model lineage, not of run order: a candidate clusters its users starting
from its parent's segments (re-expressed in its own embedding space) and keeps their ids where the
Hungarian matching pairs them; its segment centroids are saved in its checkpoint, and serving a date
assigns each user to the nearest saved centroid. Campaigns that target a segment id therefore mean the
same kind of customer whichever order or concurrency the dates ran in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pipelines import registry
from pipelines.modeltask import Candidate, Checkpoint, Context, Served, Shard
from pipelines.profiles.config import MODEL_NAME, ProfileConfig

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    import pandas as pd
    from sqlalchemy.engine import Connection

    from pipelines.profiles.matrix import Interactions
    from pipelines.profiles.model import MultVAE
    from pipelines.profiles.segments import PreviousSegments, Segmentation
    from pipelines.profiles.state import PairState

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProfileModel:
    """A VAE rebuilt from a checkpoint: its item vocabulary and its saved segments (None: an old checkpoint)."""

    vae: MultVAE
    item_ids: np.ndarray
    segment_ids: np.ndarray | None
    centroids: np.ndarray | None


@dataclass(frozen=True)
class ProfileData:
    users: np.ndarray
    items: pd.Series  # item_id -> category
    pairs: PairState  # as of the date, known users and items only
    interactions: Interactions  # as of the date
    before: Callable[[], PairState]  # as of the day before (drift compares with it), read when first asked


@dataclass(frozen=True)
class Scored:
    """The served model on the date's data: every user's embedding, category affinities and segment, and
    the same model's segments of the day before (drift compares with them)."""

    key: tuple[str, str]  # (date, served version)
    user_ids: np.ndarray
    embeddings: np.ndarray
    affinity: np.ndarray
    names: list[str]
    segmentation: Segmentation
    before_users: np.ndarray
    previous: Any  # outputs.PreviousRun | None


class ProfileRecipe:
    model_name = MODEL_NAME
    sharded_tables = ("user_profiles",)

    def __init__(self, config: ProfileConfig) -> None:
        self.config = config
        self.promotion = registry.PromotionRule(config.promotion_metric, config.promotion_tolerance)
        self._scored: Scored | None = None  # the last date scored: shards and publish in one process share it

    def read(self, ctx: Context) -> ProfileData:
        import functools

        import numpy as np

        from pipelines.errors import DataError
        from pipelines.profiles import matrix, state
        from pipelines.warehouse.reads import read_frame

        config, as_of, engine = self.config, ctx.as_of, ctx.engine
        spec = state.Spec.of(config)
        state.refresh(engine, as_of, spec)
        users = read_frame(engine, "SELECT user_id FROM users")["user_id"].to_numpy(dtype=np.int64)
        items = read_frame(engine, "SELECT item_id, category FROM items").set_index("item_id")["category"]
        item_ids = items.index.to_numpy(dtype=np.int64)

        def known(pairs: PairState) -> PairState:
            mask = np.isin(pairs.user_id, users) & np.isin(pairs.item_id, item_ids)
            if not mask.all():
                log.warning("ignoring %d (user, item) pairs of unknown users or items as of %s (the quality gate "
                            "reports their events)", (~mask).sum(), pairs.as_of)  # fmt: skip
            return pairs.keep(mask)

        pairs = known(state.pairs_as_of(engine, as_of, spec))
        data = matrix.build_interactions(pairs)
        if data.n_users == 0:
            raise DataError(f"no events between {matrix.window_start(as_of, config)} and {as_of}: nothing to profile")
        log.info("interactions as of %s: %d users x %d items, %d non-zeros", as_of, data.n_users, data.n_items,
                 data.matrix.nnz)  # fmt: skip
        before = functools.cache(
            lambda: known(state.pairs_as_of(engine, as_of - dt.timedelta(days=1), spec, activity=False))
        )
        return ProfileData(users, items, pairs, data, before)

    def load(self, checkpoint: Checkpoint) -> ProfileModel:
        import numpy as np

        from pipelines.profiles.model import MultVAE, VAEConfig

        vae = MultVAE(VAEConfig(**checkpoint.model_config))
        vae.load_state_dict(checkpoint.weights)
        vae.eval()
        extras = checkpoint.extras
        ids = extras.get("segment_ids")
        centroids = extras.get("segment_centroids")
        return ProfileModel(
            vae,
            np.asarray(extras["item_ids"]).astype(np.int64),
            None if ids is None else np.asarray(ids).astype(np.int64),
            None if centroids is None else np.asarray(centroids).astype(np.float64),
        )

    def fit(self, data: ProfileData, parent: Served[ProfileModel] | None, ctx: Context) -> Candidate:
        import numpy as np
        import torch

        from pipelines.compute import derive_seed
        from pipelines.profiles import evaluation, matrix, segments, training

        config, inter = self.config, data.interactions
        held = matrix.heldout_users(inter.user_ids, config.heldout_fraction)
        train_matrix = inter.matrix[~held]
        split = evaluation.strong_generalisation_split(
            inter.matrix[held], inter.user_ids[held], config.foldin_fraction, config.eval_min_items,
            derive_seed(MODEL_NAME, ctx.as_of, "split"),
        )  # fmt: skip
        started = time.perf_counter()
        candidate, history = training.train(train_matrix, config, ctx.device, ctx.seed)
        train_seconds = time.perf_counter() - started
        own = evaluation.ranking_metrics(_scorer(candidate, inter.item_ids, inter.item_ids, ctx.device), split)
        baselines = {"popularity": evaluation.ranking_metrics(evaluation.popularity_scorer(train_matrix), split)}
        if inter.n_items <= config.ease_max_items:
            baselines["ease"] = evaluation.ranking_metrics(
                evaluation.ease_scorer(train_matrix, config.ease_lambda), split
            )
        else:
            log.warning("EASE skipped: %d items > ease_max_items=%d", inter.n_items, config.ease_max_items)
        parent_metrics = None
        if parent is not None:
            scorer = _scorer(parent.model.vae, parent.model.item_ids, inter.item_ids, ctx.device)
            parent_metrics = _finite(evaluation.ranking_metrics(scorer, split))
        metrics = _finite(own | {f"{b}_{k}": v for b, m in baselines.items() for k, v in m.items()})
        if history[-1].epsilon is not None:  # DP-SGD: the budget spent, as Opacus's accountant counts it
            metrics["dp_epsilon_spent"] = history[-1].epsilon

        # The candidate's segments, starting from its parent's so that matched segments keep their ids.
        embeddings, _ = training.infer(candidate, inter.matrix, ctx.device, config.encode_batch_size)
        previous = None if parent is None else _parent_segments(parent, data, embeddings, ctx, config)
        seg = segments.segment(embeddings, config.segments, config.kmeans_iterations, ctx.seed, previous)
        checkpoint = Checkpoint(
            weights=candidate.state_dict(),
            model_config=candidate.config.to_dict(),
            train_config=dataclasses.asdict(config),
            as_of_date=ctx.as_of.isoformat(),
            metrics=own,
            extras={
                "item_ids": torch.from_numpy(inter.item_ids),
                "epochs": len(history),
                "segment_ids": torch.from_numpy(seg.segment_ids.astype(np.int64)),
                "segment_centroids": torch.from_numpy(seg.centroids.astype(np.float32)),
            },
        )
        return Candidate(
            checkpoint=checkpoint,
            metrics=metrics,
            parent_metrics=parent_metrics,
            params=dataclasses.asdict(config),
            protocol=_protocol(config, inter, split, train_matrix.shape[0]),
            training={
                "users": inter.n_users,
                "items": inter.n_items,
                "interactions": int(inter.matrix.nnz),
                "train_users": int(train_matrix.shape[0]),
                "eval_users": split.n_users,
                "epochs": len(history),
                "final_loss": round(history[-1].loss, 4),
                "dp_epsilon_spent": history[-1].epsilon,
                "train_seconds": round(train_seconds, 2),
                "segment_ids_kept_from_parent": int(seg.matched.sum()),
            },
            plot=lambda path, version: training.plot_history(history, path, f"{version}: training loss per epoch"),
        )

    def score_shard(
        self, data: ProfileData, served: Served[ProfileModel] | None, ctx: Context, shard: Shard
    ) -> dict[str, Any]:
        import numpy as np

        from pipelines.profiles import matrix, outputs
        from pipelines.warehouse.partitions import shard_members, write_shard

        served = _required(served, ctx)
        model = served.model
        if shard.count > 1 and model.centroids is not None:
            # A user's embedding, interests and nearest saved segment depend on that user's events alone.
            users = np.unique(data.pairs.user_id)
            mine = users[shard_members(ctx.engine, "user_profiles", ctx.as_of, shard.count, shard.index, users)]
            onehot, names = matrix.category_matrix(model.item_ids, data.items)
            pairs = data.pairs.keep(np.isin(data.pairs.user_id, mine))
            user_ids, embeddings, affinity = _embed(model, pairs, ctx, self.config, onehot)
            assignment = assign(model, embeddings, self.config, served.version).assignment
        else:  # one shard, or a checkpoint without saved centroids: segments need every user
            scored = self._score(data, served, ctx)
            keep = shard_members(ctx.engine, "user_profiles", ctx.as_of, shard.count, shard.index, scored.user_ids)
            user_ids, embeddings, affinity = scored.user_ids[keep], scored.embeddings[keep], scored.affinity[keep]
            assignment, names = scored.segmentation.assignment[keep], scored.names
        frame = outputs.profile_frame(
            ctx.engine, user_ids, embeddings, assignment, affinity, names, self.config, served.version
        )
        return {
            "profiles_written": write_shard(ctx.engine, "user_profiles", ctx.as_of, shard.index, shard.count, frame)
        }

    def publish(
        self,
        conn: Connection,
        data: Callable[[], ProfileData],
        served: Served[ProfileModel] | None,
        ctx: Context,
        shards: list[dict[str, Any]],
    ) -> dict[str, Any]:
        from pipelines.warehouse.partitions import publish_shards

        loaded = data()
        summary = _write_segments(conn, ctx, loaded, self._score(loaded, _required(served, ctx), ctx), self.config)
        publish_shards(conn, "user_profiles", ctx.as_of, len(shards))
        return {"profiles_written": sum(s["profiles_written"] for s in shards), **summary, "shards": len(shards)}

    def _score(self, data: ProfileData, served: Served[ProfileModel], ctx: Context) -> Scored:
        key = (ctx.as_of.isoformat(), served.version)
        if self._scored is None or self._scored.key != key:
            self._scored = _score(ctx, data, served, self.config)
        return self._scored


def _required(served: Served[ProfileModel] | None, ctx: Context) -> Served[ProfileModel]:
    if served is None:
        from pipelines.errors import DataError

        raise DataError(
            f"no user-profile model serves {ctx.as_of}: none was promoted on or before it and this date's "
            "candidate was rejected (see its decision in model_runs); force_promote makes it serve"
        )
    return served


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    import math

    return {k: float(v) for k, v in metrics.items() if math.isfinite(v)}


def _embed(model: ProfileModel, pairs: PairState, ctx: Context, config: ProfileConfig, onehot=None):
    """The model's users, embeddings and (with `onehot`) category affinities on the pairs' date."""
    from pipelines.profiles import matrix, training

    inter = matrix.build_interactions(pairs, item_ids=model.item_ids)
    embeddings, affinity = training.infer(model.vae, inter.matrix, ctx.device, config.encode_batch_size, onehot)
    return inter.user_ids, embeddings, affinity


def assign(model: ProfileModel, embeddings: np.ndarray, config: ProfileConfig, version: str) -> Segmentation:
    """Serve-time segments: each user joins the nearest of the model's saved centroids.

    A checkpoint written before centroids were saved clusters afresh, seeded by its version, so its
    segments are at least a function of the model and the date's data.
    """
    import numpy as np

    from pipelines.compute import derive_seed
    from pipelines.profiles import segments

    if model.centroids is None or model.segment_ids is None:
        return segments.segment(embeddings, config.segments, config.kmeans_iterations, derive_seed(version))
    x = embeddings.astype(np.float64)
    distances = segments.sq_distances(x, model.centroids, (x**2).sum(axis=1))
    assignment = model.segment_ids[distances.argmin(axis=1)]
    return segments.Segmentation(
        model.segment_ids, model.centroids, assignment, np.ones(len(model.segment_ids), dtype=bool)
    )


def _parent_segments(
    parent: Served[ProfileModel], data: ProfileData, embeddings: np.ndarray, ctx: Context, config: ProfileConfig
) -> PreviousSegments:
    """The parent's segments of the date's users, re-expressed as centroids of the candidate's embeddings."""
    import numpy as np

    from pipelines.profiles import matrix, segments

    user_ids, parent_embeddings, _ = _embed(parent.model, data.pairs, ctx, config)
    membership = assign(parent.model, parent_embeddings, config, parent.version)
    where = matrix.positions(data.interactions.user_ids, user_ids)  # parent's users in the candidate's rows
    ids, centroids, sizes = [], [], []
    for seg_id in membership.segment_ids:
        rows = where[(membership.assignment == seg_id) & (where >= 0)]
        if len(rows):
            ids.append(int(seg_id))
            centroids.append(embeddings[rows].mean(axis=0))
            sizes.append(len(rows))
    latent = embeddings.shape[1]
    return segments.PreviousSegments(
        ctx.as_of,
        np.array(ids, dtype=np.int64),
        np.array(centroids, dtype=np.float64).reshape(len(ids), latent),
        np.array(sizes, dtype=np.int64),
    )


def _scorer(model: MultVAE, model_items: np.ndarray, split_items: np.ndarray, device: Any) -> Any:
    """Score fold-in rows given in `split_items` columns with a model trained on `model_items`.

    A parent trained on an earlier date has another item vocabulary: fold-ins are re-indexed to it and
    items it never saw score -inf (it cannot recommend them).
    """
    import numpy as np

    from pipelines.profiles import matrix, training

    if np.array_equal(model_items, split_items):
        return lambda rows: training.score_rows(model, rows, device)
    to_split = matrix.positions(split_items, model_items)  # model column -> split column, -1 if absent
    seen = to_split >= 0

    def score(rows: Any) -> np.ndarray:
        aligned = matrix.align_columns(matrix.Interactions(rows, np.arange(rows.shape[0]), split_items), model_items)
        model_scores = training.score_rows(model, aligned.matrix, device)  # [b, n_model_items]
        out = np.full((rows.shape[0], len(split_items)), -np.inf, dtype=np.float32)
        out[:, to_split[seen]] = model_scores[:, seen]
        return out

    return score


def _protocol(config: ProfileConfig, data: Interactions, split: Any, train_users: int) -> dict[str, object]:
    return {
        "evaluation": "strong generalisation (Liang et al. 2018)",
        "heldout": f"fixed hash of user_id, fraction {config.heldout_fraction}",
        "foldin_fraction": config.foldin_fraction,
        "eval_min_items": config.eval_min_items,
        "ranking": "full ranking over all items, fold-in items excluded",
        "metrics": "Recall@20, Recall@50 (divided by min(k, targets)), NDCG@100",
        "baselines": f"popularity; EASE lambda {config.ease_lambda}",
        "parent": "the champion of the day before, re-scored on the same split",
        "users": data.n_users,
        "items": data.n_items,
        "train_users": train_users,
        "eval_users": split.n_users,
    }


def _score(ctx: Context, data: ProfileData, served: Served[ProfileModel], config: ProfileConfig) -> Scored:
    """The date's champion on every user of the date and of the day before.

    Drift compares the date's segments with the same model's segments of the data as of the day before,
    so it too depends on the lineage only.
    """
    import numpy as np

    from pipelines.profiles import matrix, outputs, segments

    model, version = served.model, served.version
    onehot, names = matrix.category_matrix(model.item_ids, data.items)
    user_ids, embeddings, affinity = _embed(model, data.pairs, ctx, config, onehot)
    assert affinity is not None
    seg = _non_empty(assign(model, embeddings, config, version))
    yesterday = ctx.as_of - dt.timedelta(days=1)
    before_users, before_embeddings, _ = _embed(model, data.before(), ctx, config)
    previous = None
    if len(before_users):
        before = assign(model, before_embeddings, config, version)
        sizes = np.array([(before.assignment == s).sum() for s in before.segment_ids], dtype=np.int64)
        previous = outputs.PreviousRun(
            segments.PreviousSegments(yesterday, before.segment_ids, before.centroids, sizes),
            before_users,
            before.assignment,
            before_embeddings,
        )
    return Scored((ctx.as_of.isoformat(), version), user_ids, embeddings, affinity, names, seg, before_users, previous)


def _write_segments(
    conn: Connection, ctx: Context, data: ProfileData, scored: Scored, config: ProfileConfig
) -> dict[str, object]:
    """The date's segments (labels, sizes, drift over every user) on the lifecycle's transaction."""
    import numpy as np

    from pipelines.profiles import outputs, segments
    from pipelines.warehouse.partitions import replace_partition

    seg, user_ids = scored.segmentation, scored.user_ids
    tops, labels = segments.describe(scored.affinity, seg.assignment, seg.segment_ids, scored.names,
                                     config.top_categories)  # fmt: skip
    drift = outputs.drift(seg, scored.embeddings, scored.previous, config, ctx.seed)
    descriptions = outputs.segment_descriptions(
        ctx.engine, ctx.as_of, config, data.pairs, data.items, user_ids, seg.assignment
    )
    table = outputs.segment_frame(seg, labels, tops, drift, scored.key[1], descriptions)
    segment_rows = replace_partition(conn, "segments", ctx.as_of, table)
    summary_segments = [
        {"segment_id": int(r.segment_id), "label": r.label, "size": int(r.size), "drift": drift.get(int(r.segment_id))}
        for r in table.itertuples()
    ]
    for entry in summary_segments:
        log.info("segment %s %r: %d users, drift %s", entry["segment_id"], entry["label"], entry["size"],
                 entry["drift"])  # fmt: skip
    return {
        "segments_written": segment_rows,
        "users_without_events": int(len(data.users) - data.interactions.n_users),
        "users_only_on_unknown_items": int(data.interactions.n_users - len(user_ids)),
        "users_new_since_yesterday": int((~np.isin(user_ids, scored.before_users)).sum()),
        "segments": summary_segments,
    }


def _non_empty(seg: Segmentation) -> Segmentation:
    """Only segments with members are written (a saved centroid may find nobody on a given day)."""
    import numpy as np

    from pipelines.profiles import segments

    keep = np.isin(seg.segment_ids, seg.assignment)
    return segments.Segmentation(seg.segment_ids[keep], seg.centroids[keep], seg.assignment, seg.matched[keep])
