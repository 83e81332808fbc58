"""The `train_user_profile_vae` task: train a candidate, promote or keep the champion, write its profiles.

Reads everything as of the business date, trains a Mult-VAE candidate on the non-held-out users, scores
it, the champion, popularity and EASE on the same strong-generalisation split, registers the candidate
through the shared registry, then writes `user_profiles` and `segments` for the date with the champion.
Heavy libraries are imported inside `run`, so a DAG file may import this module at parse time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from pipelines.profiles.config import MODEL_NAME, ProfileConfig

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from sqlalchemy.engine import Engine

    from pipelines.profiles.matrix import Interactions
    from pipelines.profiles.model import MultVAE
    from pipelines.settings import Settings

log = logging.getLogger(__name__)


def run(
    engine: Engine, as_of: dt.date, settings: Settings, config: ProfileConfig, *, force_promote: bool = False
) -> dict[str, object]:
    """Train, evaluate and register a candidate; write the champion's profiles and segments for `as_of`."""
    import numpy as np
    import torch

    from pipelines import registry
    from pipelines.compute import derive_seed, seed_everything, select_device
    from pipelines.errors import DataError
    from pipelines.profiles import evaluation, matrix, training
    from pipelines.warehouse.reads import events_as_of, read_frame

    started = time.perf_counter()
    device = select_device(settings.device)
    seed = derive_seed(MODEL_NAME, as_of)
    seed_everything(seed)

    users = read_frame(engine, "SELECT user_id FROM users")["user_id"].to_numpy(dtype=np.int64)
    items = read_frame(engine, "SELECT item_id, category FROM items").set_index("item_id")["category"]
    previous_date = _previous_run_date(engine, as_of)
    first_day = matrix.window_start(min(as_of, previous_date or as_of), config)
    types = [name for name, weight in config.event_weights.items() if weight > 0]
    events = events_as_of(
        engine, as_of, since=first_day, event_types=types, columns=("user_id", "item_id", "event_type", "event_ts")
    )
    known = events["user_id"].isin(users) & events["item_id"].isin(items.index)
    if (~known).any():
        log.warning("ignoring %d events of unknown users or items (the quality gate reports them)", (~known).sum())
        events = events.loc[known]
    data = matrix.build_interactions(events, as_of, config)
    if data.n_users == 0:
        raise DataError(f"no events between {matrix.window_start(as_of, config)} and {as_of}: nothing to profile")
    log.info(
        "interactions as of %s: %d users x %d items, %d non-zeros", as_of, data.n_users, data.n_items, data.matrix.nnz
    )

    # Candidate: trained on the users outside the fixed held-out set, scored on a strong-generalisation split.
    held = matrix.heldout_users(data.user_ids, config.heldout_fraction)
    train_matrix = data.matrix[~held]
    split = evaluation.strong_generalisation_split(
        data.matrix[held], data.user_ids[held], config.foldin_fraction, config.eval_min_items,
        derive_seed(MODEL_NAME, as_of, "split"),
    )  # fmt: skip
    train_started = time.perf_counter()
    candidate, history = training.train(train_matrix, config, device, seed)
    train_seconds = time.perf_counter() - train_started
    scores: dict[str, dict[str, float]] = {
        "candidate": evaluation.ranking_metrics(_scorer(candidate, data.item_ids, data.item_ids, device), split),
        "popularity": evaluation.ranking_metrics(evaluation.popularity_scorer(train_matrix), split),
    }
    if data.n_items <= config.ease_max_items:
        scores["ease"] = evaluation.ranking_metrics(evaluation.ease_scorer(train_matrix, config.ease_lambda), split)
    else:
        log.warning("EASE skipped: %d items > ease_max_items=%d", data.n_items, config.ease_max_items)
    current = registry.champion(engine, MODEL_NAME)
    champion_model = champion_items = None
    if current is not None:
        champion_model, champion_items = _load(current)
        scores["champion"] = evaluation.ranking_metrics(
            _scorer(champion_model, champion_items, data.item_ids, device), split
        )

    directory = registry.artifact_dir(settings.artifacts, MODEL_NAME, as_of)
    path, sha = registry.save_artifact(
        {
            "model_state": candidate.state_dict(),
            "vae_config": candidate.config.to_dict(),
            "item_ids": torch.from_numpy(data.item_ids),
            "config": dataclasses.asdict(config),
            "as_of_date": as_of.isoformat(),
            "epochs": len(history),
            "metrics": scores["candidate"],
        },
        directory,
    )
    version = registry.version_id(MODEL_NAME, as_of, sha)
    curve = training.plot_history(
        history, directory / f"loss-curve-{sha[:10]}.png", f"{version}: training loss per epoch"
    )
    finite = {name: value for name, value in _flat_metrics(scores).items() if np.isfinite(value)}
    run_record, decision = registry.register_and_decide(
        engine,
        model_name=MODEL_NAME,
        version=version,
        as_of_date=as_of,
        metrics=finite,
        params=dataclasses.asdict(config),
        protocol=_protocol(config, data, split, train_matrix.shape[0]),
        artifact_path=path,
        artifact_sha256=sha,
        rule=registry.PromotionRule(config.promotion_metric, config.promotion_tolerance),
        force=force_promote,
        champion_metrics=scores.get("champion"),
    )
    log.info("candidate %s: %s (%s)", version, run_record.status, decision.reason)
    if decision.promote or current is None or champion_model is None or champion_items is None:
        model, model_items, model_version = candidate, data.item_ids, version
    else:
        model, model_items, model_version = champion_model, champion_items, current.version

    if model is candidate and run_record.status != "champion":
        log.warning(
            "no champion exists and the candidate was not promoted (%s): its outputs are written", decision.reason
        )
    outputs = _write_outputs(engine, as_of, previous_date, events, items, model, model_items, model_version,
                             config, device, seed)  # fmt: skip
    outputs["users_only_on_unknown_items"] = data.n_users - outputs.pop("profiled_users")  # type: ignore[operator]
    outputs["users_without_events"] = int(len(users) - data.n_users)
    summary: dict[str, object] = {
        "as_of_date": as_of.isoformat(),
        "users": data.n_users,
        "items": data.n_items,
        "interactions": int(data.matrix.nnz),
        "train_users": int(train_matrix.shape[0]),
        "eval_users": split.n_users,
        "epochs": len(history),
        "final_loss": round(history[-1].loss, 4),
        "train_seconds": round(train_seconds, 2),
        "device": str(device),
        "candidate_version": version,
        "candidate_status": run_record.status,
        "decision": decision.reason,
        "champion_version": model_version,
        "metrics": {who: {k: round(v, 5) for k, v in m.items()} for who, m in scores.items()},
        "loss_curve": str(curve),
        **outputs,
        "seconds": round(time.perf_counter() - started, 2),
    }
    log.info("user profiles for %s: %s", as_of, json.dumps(summary, default=str))
    return summary


def _previous_run_date(engine: Engine, as_of: dt.date) -> dt.date | None:
    """The latest earlier date with segments: the run whose ids today's segments must keep."""
    import pandas as pd

    from pipelines.warehouse.reads import read_frame

    frame = read_frame(engine, "SELECT max(as_of_date) AS d FROM segments WHERE as_of_date < :d", {"d": as_of})
    value = frame["d"].iloc[0]
    return None if pd.isna(value) else value


def _scorer(model: MultVAE, model_items: np.ndarray, split_items: np.ndarray, device: Any) -> Any:
    """Score fold-in rows given in `split_items` columns with a model trained on `model_items`.

    A champion trained on an earlier date has another item vocabulary: fold-ins are re-indexed to it and
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


def _load(run: Any) -> tuple[MultVAE, np.ndarray]:
    """Rebuild a registered model from its checkpoint alone (hash checked by the registry)."""
    from pipelines import registry
    from pipelines.profiles.model import MultVAE, VAEConfig

    payload = registry.load_artifact(run.artifact_path, run.artifact_sha256)
    model = MultVAE(VAEConfig(**payload["vae_config"]))
    model.load_state_dict(payload["model_state"])
    model.eval()
    return model, payload["item_ids"].numpy()


def _flat_metrics(scores: dict[str, dict[str, float]]) -> dict[str, float]:
    """The candidate's metrics under their own names, the others prefixed (popularity_ndcg@100, ...)."""
    flat = dict(scores["candidate"])
    for who, metrics in scores.items():
        if who != "candidate":
            flat.update({f"{who}_{name}": value for name, value in metrics.items()})
    return flat


def _protocol(config: ProfileConfig, data: Interactions, split: Any, train_users: int) -> dict[str, object]:
    return {
        "evaluation": "strong generalisation (Liang et al. 2018)",
        "heldout": f"fixed hash of user_id, fraction {config.heldout_fraction}",
        "foldin_fraction": config.foldin_fraction,
        "eval_min_items": config.eval_min_items,
        "ranking": "full ranking over all items, fold-in items excluded",
        "metrics": "Recall@20, Recall@50 (divided by min(k, targets)), NDCG@100",
        "baselines": f"popularity; EASE lambda {config.ease_lambda}",
        "champion": "re-scored on the same split",
        "users": data.n_users,
        "items": data.n_items,
        "train_users": train_users,
        "eval_users": split.n_users,
    }


def _write_outputs(
    engine: Engine,
    as_of: dt.date,
    previous_date: dt.date | None,
    events: pd.DataFrame,
    items: pd.Series,
    model: MultVAE,
    model_items: np.ndarray,
    model_version: str,
    config: ProfileConfig,
    device: Any,
    seed: int,
) -> dict[str, object]:
    """Profiles and segments of the champion for `as_of`; segments are written last (the run's marker)."""
    import numpy as np

    from pipelines.profiles import matrix, outputs, segments, training
    from pipelines.warehouse.partitions import replace_partition

    data = matrix.build_interactions(events, as_of, config, item_ids=model_items)
    onehot, names = matrix.category_matrix(model_items, items)
    embeddings, affinity = training.infer(model, data.matrix, device, config.encode_batch_size, onehot)
    assert affinity is not None
    previous = None
    if previous_date is not None:
        before = matrix.build_interactions(events, previous_date, config, item_ids=model_items)
        before_embeddings, _ = training.infer(model, before.matrix, device, config.encode_batch_size)
        previous = outputs.previous_segments(engine, previous_date, before.user_ids, before_embeddings)
    seg = segments.segment(
        embeddings, config.segments, config.kmeans_iterations, seed, previous.segments if previous else None
    )
    tops, labels = segments.describe(affinity, seg.assignment, seg.segment_ids, names, config.top_categories)
    drift = outputs.drift(seg, embeddings, previous, config, seed)
    profiles = outputs.profile_frame(
        engine, data.user_ids, embeddings, seg.assignment, affinity, names, config, model_version
    )
    table = outputs.segment_frame(seg, labels, tops, drift, model_version)
    profile_rows = replace_partition(engine, "user_profiles", as_of, profiles)
    segment_rows = replace_partition(engine, "segments", as_of, table)
    new_users = 0 if previous is None else int((~np.isin(data.user_ids, previous.member_users)).sum())
    summary_segments = [
        {
            "segment_id": int(row.segment_id),
            "label": row.label,
            "size": int(row.size),
            "drift": drift.get(int(row.segment_id)),
        }
        for row in table.itertuples()
    ]
    for entry in summary_segments:
        log.info(
            "segment %s %r: %d users, drift %s", entry["segment_id"], entry["label"], entry["size"], entry["drift"]
        )
    return {
        "profiles_written": profile_rows,
        "profiled_users": data.n_users,
        "segments_written": segment_rows,
        "users_new_since_previous": new_users,
        "previous_run_date": None if previous_date is None else previous_date.isoformat(),
        "segments": summary_segments,
    }
