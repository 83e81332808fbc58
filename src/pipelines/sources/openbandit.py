"""The Open Bandit Dataset sample (ZOZOTOWN, campaign "all") as impressions and outcomes frames.

Files (see `open-bandit/README.txt` in the shared data folder; read in place, never copied):
`{random,bts}/all.csv` with timestamp, item_id (0..79), position (1..3), click, propensity_score and hashed
user features, and `bts_prior_all.yaml` with the Beta(alpha, beta) prior per item of the production BTS
policy. Mapping onto the delivery contract:

- one row = one impression in the recommendation slot `recs_home`; impression_id = 1-based row number
  plus `POLICY_ID_BASE[policy]`, so both files load side by side; item_id = the dataset's item id;
- user_id: the dataset has none, so the hash of the four user features stands in (the same features give
  the same id on every load);
- arm: the two policies ran at the same time on split traffic, so `random` is the non-personalised
  holdout and `bts` the personalised arm; policy_version names the dataset;
- outcomes: one row per click, at the impression's time (the dataset has no click time), no conversions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from pipelines.delivery.arms import HOLDOUT, PERSONALISED
from pipelines.errors import ConfigError, SourceFormatError
from pipelines.settings import Settings

POLICIES = ("random", "bts")
POLICY_ARM = {"random": HOLDOUT, "bts": PERSONALISED}
POLICY_ID_BASE = {"random": 0, "bts": 1_000_000_000}
POLICY_VERSION = "obd-2019-11-all"
PLACEMENT = "recs_home"
N_ITEMS = 80
N_POSITIONS = 3
USER_FEATURES = tuple(f"user_feature_{i}" for i in range(4))
_COLUMNS = ("timestamp", "item_id", "position", "click", "propensity_score", *USER_FEATURES)
_SIM_BLOCK = 20_000  # simulated rounds per block: 20,000 x 80 posterior draws = 12.8 MB


def default_dir(settings: Settings | None = None) -> Path:
    """`open-bandit` under the shared data folder of `settings` (PIPELINES_SHARED_DATA_DIR)."""
    return (settings or Settings.from_env()).shared_data_dir / "open-bandit"


@dataclass(frozen=True)
class OpenBanditLog:
    """One policy's log in the contract's shapes (impressions, outcomes) and the raw file's frame."""

    policy: str
    impressions: pd.DataFrame
    outcomes: pd.DataFrame
    raw: pd.DataFrame


def read_raw(policy: str, data_dir: Path) -> pd.DataFrame:
    """`{policy}/all.csv` with its columns checked: item_id, position, click, propensity_score, user features."""
    if policy not in POLICIES:
        raise ConfigError(f"Open Bandit policy must be one of {', '.join(POLICIES)}, got {policy!r}")
    path = Path(data_dir) / policy / "all.csv"
    if not path.is_file():
        raise ConfigError(f"{path} not found: set PIPELINES_SHARED_DATA_DIR or pass the open-bandit folder")
    frame = pd.read_csv(path, usecols=lambda c: c in _COLUMNS)
    missing = [c for c in _COLUMNS if c not in frame.columns]
    if missing:
        raise SourceFormatError(path, 1, f"missing columns {', '.join(missing)}")
    checks = {
        "item_id outside 0..79": ~frame["item_id"].between(0, N_ITEMS - 1),
        "position outside 1..3": ~frame["position"].between(1, N_POSITIONS),
        "click not 0/1": ~frame["click"].isin([0, 1]),
        "propensity_score outside (0, 1]": ~((frame["propensity_score"] > 0) & (frame["propensity_score"] <= 1)),
    }
    for reason, bad in checks.items():
        if bad.any():
            raise SourceFormatError(path, int(np.flatnonzero(bad.to_numpy())[0]) + 2, reason)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame


def _user_ids(raw: pd.DataFrame) -> np.ndarray:
    keys = raw[list(USER_FEATURES)].astype(str).agg("|".join, axis=1)
    codes, uniques = pd.factorize(keys)
    hashed = np.array(
        [int.from_bytes(hashlib.blake2b(k.encode(), digest_size=8).digest(), "big") >> 1 for k in uniques],
        dtype=np.int64,
    )
    return hashed[codes]


def read_open_bandit(policy: str, data_dir: Path | None = None) -> OpenBanditLog:
    """One policy's log as `impressions` and `outcomes` frames with the delivery contract's columns."""
    raw = read_raw(policy, data_dir or default_dir())
    n = len(raw)
    impression_id = POLICY_ID_BASE[policy] + np.arange(1, n + 1, dtype=np.int64)
    ts = raw["timestamp"]
    impressions = pd.DataFrame(
        {
            "batch_date": ts.dt.date,
            "impression_id": impression_id,
            "ts": ts,
            "user_id": _user_ids(raw),
            "placement": PLACEMENT,
            "position": raw["position"].astype(np.int16),
            "creative_id": pd.Series([None] * n, dtype=object),
            "item_id": raw["item_id"].astype(np.int64),
            "campaign_id": pd.Series([pd.NA] * n, dtype="Int64"),
            "segment_id": pd.Series([pd.NA] * n, dtype="Int32"),
            "policy": policy,
            "policy_version": POLICY_VERSION,
            "propensity": raw["propensity_score"].astype(np.float64),
            "arm": POLICY_ARM[policy],
        }
    )
    clicked = raw["click"].to_numpy() == 1
    outcomes = pd.DataFrame(
        {
            "batch_date": impressions["batch_date"][clicked].to_numpy(),
            "impression_id": impression_id[clicked],
            "click_ts": ts[clicked].to_numpy(),
            "conversion_ts": pd.Series([pd.NaT] * int(clicked.sum()), dtype="datetime64[us, UTC]"),
            "revenue": pd.Series([None] * int(clicked.sum()), dtype=object),
        }
    )
    outcomes["click_ts"] = pd.to_datetime(outcomes["click_ts"], utc=True)
    return OpenBanditLog(policy, impressions, outcomes, raw)


def bts_prior(data_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(alpha, beta) per item of the production BTS policy, from `bts_prior_all.yaml`."""
    path = Path(data_dir or default_dir()) / "bts_prior_all.yaml"
    if not path.is_file():
        raise ConfigError(f"{path} not found: set PIPELINES_SHARED_DATA_DIR or pass the open-bandit folder")
    doc = yaml.safe_load(path.read_text())
    try:
        alpha = np.asarray(doc["all"]["alpha"], dtype=np.float64)
        beta = np.asarray(doc["all"]["beta"], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise SourceFormatError(path, None, f"expected all: {{alpha: [...], beta: [...]}} ({exc})") from exc
    if alpha.shape != (N_ITEMS,) or beta.shape != (N_ITEMS,) or (alpha <= 0).any() or (beta <= 0).any():
        raise SourceFormatError(path, None, f"expected {N_ITEMS} positive alpha and beta values")
    return alpha, beta


def bts_action_probabilities(
    alpha: np.ndarray, beta: np.ndarray, n_positions: int = N_POSITIONS, n_sim: int = 100_000, seed: int = 0
) -> np.ndarray:
    """P(item i at position k) of Bernoulli Thompson sampling with these priors: [items, positions].

    Each simulated round draws one click rate per item from its Beta and shows the `n_positions` highest in
    order (how `obp.policy.BernoulliTS` ranks a list), so column k counts how often each item came k-th.
    """
    if n_sim < 1 or not 1 <= n_positions <= len(alpha):
        raise ConfigError(f"need n_sim >= 1 and 1 <= n_positions <= {len(alpha)}, got {n_sim} and {n_positions}")
    rng = np.random.default_rng(seed)
    counts = np.zeros((len(alpha), n_positions))
    for start in range(0, n_sim, _SIM_BLOCK):
        draws = rng.beta(alpha, beta, size=(min(_SIM_BLOCK, n_sim - start), len(alpha)))  # [rounds, items]
        top = np.argpartition(-draws, n_positions - 1, axis=1)[:, :n_positions]
        order = np.take_along_axis(top, np.argsort(-np.take_along_axis(draws, top, axis=1), axis=1), axis=1)
        for k in range(n_positions):
            counts[:, k] += np.bincount(order[:, k], minlength=len(alpha))
    return counts / n_sim
