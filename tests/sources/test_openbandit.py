"""The Open Bandit reader on small files the tests write, and BTS action probabilities by simulation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, stats

from pipelines.errors import ConfigError, SourceFormatError
from pipelines.sources.openbandit import (
    POLICY_ID_BASE,
    bts_action_probabilities,
    bts_prior,
    read_open_bandit,
)

HEADER = ",timestamp,item_id,position,click,propensity_score," + ",".join(f"user_feature_{i}" for i in range(4))


def _write(tmp_path: Path, policy: str, rows: list[str]) -> Path:
    folder = tmp_path / policy
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "all.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return tmp_path


ROWS = [
    "0,2019-11-24 00:00:34.7+00:00,14,3,0,0.0125,a,b,c,d",
    "1,2019-11-24 00:00:53.9+00:00,3,1,1,0.0125,a,b,c,d",
    "2,2019-11-25 10:00:00.0+00:00,79,2,1,0.0125,a,b,c,e",
]


def test_reader_maps_rows_to_impressions_and_clicks_to_outcomes(tmp_path: Path) -> None:
    log = read_open_bandit("bts", _write(tmp_path, "bts", ROWS))
    imp = log.impressions
    assert list(imp["impression_id"]) == [POLICY_ID_BASE["bts"] + i for i in (1, 2, 3)]
    assert list(imp["item_id"]) == [14, 3, 79] and list(imp["position"]) == [3, 1, 2]
    assert set(imp["arm"]) == {"personalised"} and set(imp["placement"]) == {"recs_home"}
    assert imp["creative_id"].isna().all() and (imp["propensity"] == 0.0125).all()
    assert [d.isoformat() for d in imp["batch_date"]] == ["2019-11-24", "2019-11-24", "2019-11-25"]
    # Same user features, same user id; other features, another id.
    assert imp["user_id"][0] == imp["user_id"][1] != imp["user_id"][2]
    assert list(log.outcomes["impression_id"]) == list(imp["impression_id"][1:])
    assert (log.outcomes["click_ts"].to_numpy() == imp["ts"][1:].to_numpy()).all()
    assert log.outcomes["conversion_ts"].isna().all()


def test_random_policy_is_the_holdout_arm_with_its_own_ids(tmp_path: Path) -> None:
    log = read_open_bandit("random", _write(tmp_path, "random", ROWS))
    assert set(log.impressions["arm"]) == {"holdout"}
    assert log.impressions["impression_id"].min() == POLICY_ID_BASE["random"] + 1


def test_a_bad_propensity_names_the_file_and_line(tmp_path: Path) -> None:
    rows = [*ROWS[:2], "2,2019-11-25 10:00:00.0+00:00,79,2,1,0.0,a,b,c,e"]
    with pytest.raises(SourceFormatError, match=r"all\.csv, line 4: propensity_score"):
        read_open_bandit("bts", _write(tmp_path, "bts", rows))


def test_missing_files_and_unknown_policies_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        read_open_bandit("bts", tmp_path)
    with pytest.raises(ConfigError, match="policy"):
        read_open_bandit("greedy", tmp_path)


def test_bts_prior_reads_the_yaml(tmp_path: Path) -> None:
    alpha, beta = np.arange(1, 81), np.arange(100, 180)
    lines = ["all:", "  alpha:", *[f"    - {a}.0" for a in alpha], "  beta:", *[f"    - {b}.0" for b in beta]]
    (tmp_path / "bts_prior_all.yaml").write_text("\n".join(lines) + "\n")
    got_alpha, got_beta = bts_prior(tmp_path)
    assert np.array_equal(got_alpha, alpha) and np.array_equal(got_beta, beta)
    (tmp_path / "bts_prior_all.yaml").write_text("all:\n  alpha: [1.0]\n  beta: [2.0]\n")
    with pytest.raises(SourceFormatError, match="80"):
        bts_prior(tmp_path)


def test_bts_probabilities_are_a_distribution_per_position_and_one_slot_per_item() -> None:
    rng = np.random.default_rng(0)
    alpha, beta = rng.uniform(1, 50, 80), rng.uniform(1_000, 20_000, 80)
    probs = bts_action_probabilities(alpha, beta, n_sim=20_000, seed=1)
    assert probs.shape == (80, 3)
    assert np.allclose(probs.sum(axis=0), 1.0)
    assert (probs.sum(axis=1) <= 1 + 1e-12).all()


def test_bts_probability_of_ranking_first_matches_the_closed_form() -> None:
    alpha, beta = np.array([30.0, 20.0, 1.0]), np.array([9_000.0, 5_000.0, 1e6])
    # Item 2 is never on top; item 0 is first when its draw beats item 1's: integral of f0 F1.
    exact, _ = integrate.quad(lambda x: stats.beta.pdf(x, 30, 9_000) * stats.beta.cdf(x, 20, 5_000), 0, 0.05)
    n = 100_000
    probs = bts_action_probabilities(alpha, beta, n_positions=2, n_sim=n, seed=2)
    assert abs(probs[0, 0] - exact) < 4 * np.sqrt(exact * (1 - exact) / n)
    assert probs[2, 0] == 0.0 and probs[2, 1] == 0.0
    assert probs[1, 1] == pytest.approx(probs[0, 0])
