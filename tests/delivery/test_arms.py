from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from pipelines.delivery.arms import ARMS, assign_arms, holdout_mask, unit_hash
from pipelines.errors import ConfigError


def test_holdout_takes_about_its_share_of_users() -> None:
    users = np.arange(1, 200_001)
    share = holdout_mask(users, "exp-1", 0.05).mean()
    assert abs(share - 0.05) < 4 * np.sqrt(0.05 * 0.95 / len(users))


def test_holdout_is_stable_across_calls_orders_and_processes() -> None:
    users = np.arange(1, 5_001, dtype=np.int64)
    mask = holdout_mask(users, "exp-1", 0.1)
    shuffled = np.random.default_rng(0).permutation(users)
    assert np.array_equal(holdout_mask(shuffled, "exp-1", 0.1), np.isin(shuffled, users[mask]))
    code = (
        "import numpy as np; from pipelines.delivery.arms import holdout_mask; "
        "print(''.join('1' if m else '0' for m in holdout_mask(np.arange(1, 5001), 'exp-1', 0.1)))"
    )
    other = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()
    assert other == "".join("1" if m else "0" for m in mask)


def test_a_larger_share_keeps_the_users_already_held_out() -> None:
    users = np.arange(1, 50_001)
    assert not (holdout_mask(users, "k", 0.05) & ~holdout_mask(users, "k", 0.10)).any()


def test_another_key_draws_an_independent_holdout() -> None:
    users = np.arange(1, 200_001)
    overlap = (holdout_mask(users, "a", 0.1) & holdout_mask(users, "b", 0.1)).mean()
    assert abs(overlap - 0.01) < 0.002
    assert np.corrcoef(unit_hash(users, "a"), unit_hash(users, "b"))[0, 1] < 0.01


def test_consecutive_ids_hash_uniformly() -> None:
    u = unit_hash(np.arange(1, 100_001), "k")
    counts = np.histogram(u, bins=20, range=(0, 1))[0]
    assert ((u >= 0) & (u < 1)).all()
    assert counts.min() > 4_500 and counts.max() < 5_500


def test_assign_arms_names_the_arms() -> None:
    users = np.arange(1, 1_001)
    arms = assign_arms(users, "k", 0.2)
    assert set(arms) == set(ARMS)
    assert np.array_equal(arms == "holdout", holdout_mask(users, "k", 0.2))


@pytest.mark.parametrize(
    ("ids", "key", "share"),
    [(np.array([1.5]), "k", 0.05), (np.array([1]), "", 0.05), (np.array([1]), "k", 1.0), (np.array([1]), "k", -0.1)],
)
def test_bad_holdout_inputs_are_refused(ids: np.ndarray, key: str, share: float) -> None:
    with pytest.raises(ConfigError):
        holdout_mask(ids, key, share)
