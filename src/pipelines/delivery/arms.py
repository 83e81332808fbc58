"""Experiment arms: a keyed hash of the user id puts a fixed share of users in the holdout.

The hash is a splitmix64 finaliser of `user_id XOR key_hash`, where `key_hash` is the blake2b digest of the
key: pure integer arithmetic, so a user lands in the same arm on every day, in every process and on every
machine (Python's salted `hash()` would not), and a new key (a new experiment) reshuffles everyone.
"""

from __future__ import annotations

import hashlib

import numpy as np

from pipelines.errors import ConfigError

ARMS = ("personalised", "holdout")
PERSONALISED, HOLDOUT = ARMS

_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def key_hash(key: str) -> np.uint64:
    """The experiment key as 64 bits (blake2b, stable across processes)."""
    if not key:
        raise ConfigError("the holdout key must be a non-empty string")
    return np.uint64(int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big"))


def unit_hash(user_ids: np.ndarray, key: str) -> np.ndarray:
    """A uniform number in [0, 1) per user id, fixed by (key, user id): [users] float64."""
    ids = np.asarray(user_ids)
    if ids.dtype.kind not in "iu":
        raise ConfigError(f"user ids must be integers, got dtype {ids.dtype}")
    x = ids.astype(np.int64).view(np.uint64) ^ key_hash(key)
    # splitmix64's finaliser (Steele et al. 2014): every input bit flips about half of the output bits.
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        x = x ^ (x >> np.uint64(31))
    # The top 53 bits fill a double's mantissa exactly.
    return (x >> np.uint64(11)).astype(np.float64) / float(2**53)


def holdout_mask(user_ids: np.ndarray, key: str, share: float) -> np.ndarray:
    """True for the users in the holdout arm: about `share` of them, the same ones on every call."""
    if not 0.0 <= share < 1.0:
        raise ConfigError(f"the holdout share must be in [0, 1), got {share}")
    return unit_hash(user_ids, key) < share


def assign_arms(user_ids: np.ndarray, key: str, share: float) -> np.ndarray:
    """The arm name of each user: 'holdout' for `holdout_mask`, else 'personalised'. [users] object."""
    return np.where(holdout_mask(user_ids, key, share), HOLDOUT, PERSONALISED).astype(object)
