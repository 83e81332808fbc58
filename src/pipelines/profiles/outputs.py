"""Rows for `user_profiles` and `segments`, the previous run they are compared with, and segment drift."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from pipelines.profiles.segments import PreviousSegments, Segmentation, describe_members, population_stability

if TYPE_CHECKING:
    import datetime as dt

    import pandas as pd
    from sqlalchemy.engine import Engine

    from pipelines.profiles.config import ProfileConfig
    from pipelines.profiles.state import PairState


@dataclass(frozen=True)
class PreviousRun:
    """The previous run's segments re-expressed with today's model, and who was in them."""

    segments: PreviousSegments
    member_users: np.ndarray  # [n] user ids profiled by the previous run
    member_segments: np.ndarray  # [n] their segment ids
    member_embeddings: np.ndarray  # [n, latent] today's model on the data as of the previous date (NaN: no data)


def drift(
    seg: Segmentation, embeddings: np.ndarray, previous: PreviousRun | None, config: ProfileConfig, seed: int
) -> dict[int, dict[str, object] | None]:
    """Per segment id: size change and PSI of its members' embeddings, previous run vs today.

    None on a first run; {"new_segment": true} for an id the previous run did not have.
    """
    if previous is None:
        return {int(s): None for s in seg.segment_ids}
    rng = np.random.default_rng(seed)
    sizes = dict(zip(previous.segments.segment_ids.tolist(), previous.segments.sizes.tolist(), strict=True))
    out: dict[int, dict[str, object] | None] = {}
    for seg_id, size in zip(seg.segment_ids.tolist(), seg.sizes().tolist(), strict=True):
        if seg_id not in sizes:
            out[seg_id] = {"new_segment": True, "previous_date": str(previous.segments.as_of_date)}
            continue
        before = previous.member_embeddings[previous.member_segments == seg_id]
        before = before[~np.isnan(before).any(axis=1)]
        now = embeddings[seg.assignment == seg_id]
        psi = population_stability(
            _sample(before, config.psi_sample, rng), _sample(now, config.psi_sample, rng), config.psi_bins
        )
        out[seg_id] = {
            "previous_date": str(previous.segments.as_of_date),
            "previous_size": sizes[seg_id],
            "size_change": size - sizes[seg_id],
            "size_change_pct": round(100.0 * (size - sizes[seg_id]) / max(sizes[seg_id], 1), 2),
            "psi": round(psi, 4) if np.isfinite(psi) else None,
        }
    return out


def _sample(rows: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    return rows if len(rows) <= limit else rows[np.sort(rng.choice(len(rows), limit, replace=False))]


def embedding_column_type(engine: Engine) -> str:
    """'vector' where migration 003 installed pgvector, else 'real[]'."""
    from pipelines.warehouse.reads import read_frame

    frame = read_frame(
        engine,
        "SELECT udt_name FROM information_schema.columns"
        " WHERE table_name = 'user_profiles' AND column_name = 'embedding'",
    )
    return "vector" if frame["udt_name"].iloc[0] == "vector" else "real[]"


def format_embeddings(embeddings: np.ndarray, column_type: str) -> list[str]:
    """Text literals COPY accepts: '[x,y,...]' for pgvector, '{x,y,...}' for real[]."""
    opening, closing = ("[", "]") if column_type == "vector" else ("{", "}")
    row_format = opening + ",".join(["%.7g"] * embeddings.shape[1]) + closing
    return [row_format % tuple(row) for row in embeddings.tolist()]


def profile_frame(
    engine: Engine,
    user_ids: np.ndarray,
    embeddings: np.ndarray,
    assignment: np.ndarray,
    affinity: np.ndarray,
    names: list[str],
    config: ProfileConfig,
    model_version: str,
) -> pd.DataFrame:
    import pandas as pd

    n = min(config.top_categories, len(names))
    best = np.argsort(-affinity, axis=1, kind="stable")[:, :n]  # [users, n]
    best_scores = np.take_along_axis(affinity, best, axis=1)
    tops = [
        json.dumps([{"category": names[c], "affinity": round(float(s), 4)} for c, s in zip(cols, vals, strict=True)])
        for cols, vals in zip(best.tolist(), best_scores.tolist(), strict=True)
    ]
    return pd.DataFrame(
        {
            "user_id": user_ids,
            "embedding": format_embeddings(embeddings, embedding_column_type(engine)),
            "segment_id": assignment.astype(np.int64),
            "top_categories": tops,
            "model_version": model_version,
        }
    )


def segment_descriptions(
    engine: Engine,
    as_of: dt.date,
    config: ProfileConfig,
    pairs: PairState,
    item_category: pd.Series,
    user_ids: np.ndarray,
    assignment: np.ndarray,
) -> dict[int, dict[str, object]]:
    """`segments.describe_members` over the profile window ending with `as_of`, with the users' demographics."""
    import pandas as pd

    from pipelines.warehouse.reads import day_bounds, read_frame

    assert pairs.events is not None and pairs.last_ts is not None, "descriptions need the pairs' activity"
    window = pd.DataFrame(
        {
            "user_id": pairs.user_id,
            "category": pd.Series(pairs.item_id).map(item_category).fillna("unknown").to_numpy(),
            "event_ts": pd.to_datetime(pairs.last_ts, utc=True),
            "count": pairs.events,
        }
    )
    demographics = read_frame(engine, "SELECT user_id, age_group, region FROM users").set_index("user_id")
    members = pd.Series(assignment, index=pd.Index(user_ids, name="user_id"))
    return describe_members(members, window, demographics, pd.Timestamp(day_bounds(as_of)[1]), config.top_categories)


def segment_frame(
    seg: Segmentation,
    labels: list[str],
    tops: list[list[dict[str, float | str]]],
    drift_by_id: dict[int, dict[str, object] | None],
    model_version: str,
    descriptions: dict[int, dict[str, object]],
) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame(
        {
            "segment_id": seg.segment_ids.astype(np.int64),
            "label": labels,
            "size": seg.sizes(),
            "centroid": format_embeddings(seg.centroids, "real[]"),
            "top_categories": [json.dumps(t) for t in tops],
            "drift": [
                None if drift_by_id[int(s)] is None else json.dumps(drift_by_id[int(s)]) for s in seg.segment_ids
            ],
            "model_version": model_version,
            "description": [json.dumps(descriptions[int(s)]) for s in seg.segment_ids],
        }
    )
