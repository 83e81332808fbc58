"""Segments: k-means on profile embeddings, ids kept stable across runs, drift against the previous run.

Campaigns target segment ids, so an id must keep meaning the same customers. The previous run's
segments are re-expressed in today's embedding space (the mean of today's embeddings of their members,
computed from the data as of the previous date, so this works even when the champion model changed),
k-means starts from them, and the Hungarian algorithm matches today's centroids to them by distance:
a matched segment keeps its id, an unmatched new one gets an id never used by the previous run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

if TYPE_CHECKING:
    import pandas as pd

_EPS = 1e-4  # PSI floor for empty bins (the usual choice: ln(0) is undefined)


@dataclass(frozen=True)
class PreviousSegments:
    """The previous run, in today's embedding space: ids, their centroids and sizes."""

    as_of_date: object
    segment_ids: np.ndarray  # [m] int
    centroids: np.ndarray  # [m, latent]
    sizes: np.ndarray  # [m] sizes as written by the previous run


@dataclass(frozen=True)
class Segmentation:
    segment_ids: np.ndarray  # [k] stable id of each cluster
    centroids: np.ndarray  # [k, latent]
    assignment: np.ndarray  # [n_users] stable segment id of each user
    matched: np.ndarray  # [k] bool: the id was carried over from the previous run

    def sizes(self) -> np.ndarray:
        return np.array([(self.assignment == s).sum() for s in self.segment_ids], dtype=np.int64)


def sq_distances(x: np.ndarray, centroids: np.ndarray, x_sq: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances [n, k] without an [n, k, d] temporary."""
    return np.maximum(x_sq[:, None] - 2.0 * (x @ centroids.T) + (centroids**2).sum(axis=1)[None, :], 0.0)


def kmeans_plus_plus(x: np.ndarray, k: int, rng: np.random.Generator, chosen: np.ndarray | None = None) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007), continuing from `chosen` centroids when given."""
    x_sq = (x**2).sum(axis=1)
    centroids = [c for c in (chosen if chosen is not None else np.empty((0, x.shape[1])))]
    if not centroids:
        centroids.append(x[rng.integers(len(x))])
    closest = sq_distances(x, np.asarray(centroids), x_sq).min(axis=1)
    while len(centroids) < k:
        total = closest.sum()
        pick = rng.choice(len(x), p=closest / total) if total > 0 else rng.integers(len(x))
        centroids.append(x[pick])
        closest = np.minimum(closest, sq_distances(x, x[pick][None, :], x_sq)[:, 0])
    return np.asarray(centroids[:k], dtype=np.float64)


def kmeans(x: np.ndarray, init: np.ndarray, iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's algorithm from `init`; an emptied cluster restarts at the point farthest from its centre."""
    x = x.astype(np.float64, copy=False)
    x_sq = (x**2).sum(axis=1)
    centroids = init.astype(np.float64, copy=True)
    k = len(centroids)
    assignment = np.full(len(x), -1)
    for _ in range(iterations):
        distances = sq_distances(x, centroids, x_sq)  # [n, k]
        new_assignment = distances.argmin(axis=1)
        if np.array_equal(new_assignment, assignment):
            break
        assignment = new_assignment
        members = sp.csr_matrix((np.ones(len(x)), (assignment, np.arange(len(x)))), shape=(k, len(x)))
        counts = np.asarray(members.sum(axis=1)).ravel()
        sums = members @ x  # [k, d]
        for empty in np.flatnonzero(counts == 0):
            far = int(distances[np.arange(len(x)), assignment].argmax())
            sums[empty], counts[empty] = x[far], 1
            assignment[far] = empty
        centroids = sums / counts[:, None]
    return centroids, assignment


def match_ids(new_centroids: np.ndarray, previous: PreviousSegments | None) -> tuple[np.ndarray, np.ndarray]:
    """Stable ids for new clusters: Hungarian matching on centroid distance to the previous run's segments.

    Returns (ids, matched). Unmatched clusters (more clusters than before) get ids above every previous id,
    so a retired id is never silently reused for different customers.
    """
    k = len(new_centroids)
    if previous is None or len(previous.segment_ids) == 0:
        return np.arange(k), np.zeros(k, dtype=bool)
    cost = np.sqrt(sq_distances(new_centroids, previous.centroids, (new_centroids**2).sum(axis=1)))  # [k, m]
    rows, cols = linear_sum_assignment(cost)
    ids = np.full(k, -1)
    ids[rows] = previous.segment_ids[cols]
    matched = ids >= 0
    fresh = int(previous.segment_ids.max()) + 1
    for row in np.flatnonzero(~matched):
        ids[row] = fresh
        fresh += 1
    return ids, matched


def segment(
    embeddings: np.ndarray, k: int, iterations: int, seed: int, previous: PreviousSegments | None = None
) -> Segmentation:
    """Cluster the embeddings into min(k, users) segments with ids stable against `previous`."""
    if len(embeddings) == 0:
        raise ValueError("no embeddings to segment")
    k = min(k, len(embeddings))
    rng = np.random.default_rng(seed)
    x = embeddings.astype(np.float64)
    start = previous.centroids[:k] if previous is not None and len(previous.centroids) else None
    init = kmeans_plus_plus(x, k, rng, chosen=start)
    centroids, clusters = kmeans(x, init, iterations)
    ids, matched = match_ids(centroids, previous)
    order = np.argsort(ids)
    return Segmentation(ids[order], centroids[order], ids[clusters], matched[order])


def population_stability(reference: np.ndarray, current: np.ndarray, bins: int) -> float:
    """PSI of a multivariate population: per-dimension PSI over `bins` reference quantiles, averaged.

    Per dimension, sum((cur - ref) * ln(cur / ref)) over the bins; < 0.1 is usually read as stable,
    > 0.25 as a shift worth looking at.
    """
    if len(reference) == 0 or len(current) == 0:
        return float("nan")
    inner = np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1], axis=0)  # [bins-1, d]
    values = []
    for dim in range(reference.shape[1]):
        ref = np.bincount(np.searchsorted(inner[:, dim], reference[:, dim], side="right"), minlength=bins)
        cur = np.bincount(np.searchsorted(inner[:, dim], current[:, dim], side="right"), minlength=bins)
        ref_p = np.maximum(ref / ref.sum(), _EPS)
        cur_p = np.maximum(cur / cur.sum(), _EPS)
        values.append(float(((cur_p - ref_p) * np.log(cur_p / ref_p)).sum()))
    return float(np.mean(values))


def describe(
    affinity: np.ndarray, assignment: np.ndarray, segment_ids: np.ndarray, names: list[str], n: int
) -> tuple[list[list[dict[str, float | str]]], list[str]]:
    """Per segment: the categories that set it apart, and a label built from them, e.g. 'Sneaker & Bag'.

    Categories are ranked by their term share * ln(lift) in the KL divergence of the segment's category
    mix from the whole audience's: raw share would name the store's biggest category for every segment,
    raw lift a rare category few members buy.
    """
    overall = np.maximum(affinity.mean(axis=0), 1e-12)
    tops, labels = [], []
    for seg in segment_ids:
        share = affinity[assignment == seg].mean(axis=0)
        lift = share / overall
        best = np.argsort(-(share * np.log(np.maximum(lift, 1e-12))), kind="stable")[:n]
        tops.append(
            [
                {"category": names[i], "affinity": round(float(share[i]), 4), "lift": round(float(lift[i]), 3)}
                for i in best
            ]
        )
        labels.append(" & ".join(names[i] for i in best[:2]))
    seen: dict[str, int] = {}
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
    labels = [f"{label} #{seg}" if seen[label] > 1 else label for label, seg in zip(labels, segment_ids, strict=True)]
    return tops, labels


def describe_members(
    members: pd.Series, events: pd.DataFrame, demographics: pd.DataFrame, end: pd.Timestamp, top: int
) -> dict[int, dict[str, object]]:
    """Per segment, what its members did: a description a marketer can read beside the label.

    `members` maps user_id -> segment id; `events` (user_id, category, event_ts) are the whole store's events of
    the profile window (with a `count` column, a row stands for that many events whose latest is event_ts), so a
    category's lift is its share of the members' events over its share of the store's; recency is days from a
    member's last event to `end`, frequency their events in the window (median and quartiles: typical, not mean,
    as a few heavy buyers skew a mean); `demographics` (indexed by user_id) gives each column's most common
    values, for columns where any member has one.
    """
    events = events.assign(events=events["count"] if "count" in events.columns else 1)
    store = events.groupby("category")["events"].sum()
    store = store / store.sum()
    segment_of = events["user_id"].map(members)
    mine = events.assign(segment_id=segment_of).dropna(subset=["segment_id"]).astype({"segment_id": "int64"})
    counts = {int(seg_id): part.groupby("category")["events"].sum() for seg_id, part in mine.groupby("segment_id")}
    activity = events.groupby("user_id").agg(size=("events", "sum"), max=("event_ts", "max")).reindex(members.index)
    frequency = activity["size"].fillna(0).astype(float)
    recency = (end - activity["max"]).dt.total_seconds() / 86_400.0  # NaN: no event in the window
    known = demographics.reindex(members.index)
    out: dict[int, dict[str, object]] = {}
    for seg_id, users in members.groupby(members):
        ids = users.index
        description: dict[str, object] = {
            "size": len(ids),
            "top_categories": _lifts(counts.get(int(seg_id)), store, top),
            "recency_days": _quartiles(recency[ids]),
            "events_per_member": _quartiles(frequency[ids]),
        }
        columns = {c: _shares(known.loc[ids, c], top) for c in known.columns if known.loc[ids, c].notna().any()}
        if columns:
            description["demographics"] = columns
        out[int(seg_id)] = description
    return out


def _lifts(counts: pd.Series | None, store: pd.Series, top: int) -> list[dict[str, object]]:
    """The segment's `top` categories by share of its events (ties by name), each with its lift over the store."""
    if counts is None or counts.empty:
        return []
    share = counts / counts.sum()
    ranked = sorted(share.items(), key=lambda kv: (-kv[1], str(kv[0])))[:top]
    return [{"category": str(c), "share": round(float(v), 4), "lift": round(float(v / store[c]), 3)} for c, v in ranked]


def _quartiles(values: pd.Series) -> dict[str, float] | None:
    values = values.dropna()
    if values.empty:
        return None
    q1, median, q3 = np.quantile(values.to_numpy(np.float64), [0.25, 0.5, 0.75])
    return {"p25": round(float(q1), 2), "median": round(float(median), 2), "p75": round(float(q3), 2)}


def _shares(values: pd.Series, top: int) -> dict[str, object]:
    """The most common values among members who have one (ties by value) and how many members have one."""
    share = values.dropna().astype(str).value_counts(normalize=True)
    ranked = sorted(share.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return {
        "known_share": round(float(values.notna().mean()), 4),
        "top": [{"value": v, "share": round(float(s), 4)} for v, s in ranked],
    }
