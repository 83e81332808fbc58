"""Benchmark: off-policy estimates (IPS, SNIPS, DR) against the truth, on the simulator and on real logs.

(a) Simulator: a live policy (epsilon-greedy, epsilon 0.5) and a candidate (Thompson sampling, floor
0.05/k), both planned from the same pilot log of uniform impressions, on a world of --users users, 8
segments and 24 creatives. Logs of 100k and 1M impressions of the live policy (users drawn uniformly, clicks
from `pipelines.sources.response`) are fed to each estimator to value the candidate; the truth is the
candidate's exact expected CTR, sum over segments of share x sum over creatives of pi(c|s) true_ctr[s, c].
DR's reward model is the Beta posterior mean per segment x creative, cross-fitted on two halves of the log.
Repeated over --reps seeds: mean and worst relative error, and how many 95% intervals held the truth.

(b) Real data, Open Bandit Dataset sample: from the uniform-random policy's log only, value the Bernoulli
TS policy whose action probabilities per position come from `bts_prior_all.yaml` by simulation; compare
with the click rate observed when BTS itself ran (bts/all.csv, Wilson interval). Also with BTS's action
frequencies as it actually ran that week (from bts/all.csv's shown items, not its clicks).

    .venv/bin/python benchmarks/bench_ope.py --write-docs
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from pathlib import Path

import numpy as np

from common import hardware, replace_section, wrap_prose
from market import Market, build_market
from pipelines.compute import derive_seed
from pipelines.delivery.policy import beta_posterior, epsilon_greedy_shares, thompson_shares, uniform_shares
from pipelines.effects.estimators import Estimate, doubly_robust, ips, snips, wilson
from pipelines.progress import Progress
from pipelines.settings import Settings
from pipelines.sources import openbandit

log = logging.getLogger("bench_ope")

SECTION = "Off-policy evaluation: IPS, SNIPS, DR (bench_ope.py)"
ESTIMATORS = ("ips", "snips", "dr")
PILOT_IMPRESSIONS = 50_000
LIVE_EPSILON = 0.5  # the live policy explores a lot, so the candidate differs from it
MODEL_STRENGTH = 100.0  # pseudo-impressions of the DR reward model's prior (the slice's pooled rate)


def _draw(shares: np.ndarray, u: np.ndarray) -> np.ndarray:
    """One action per row of `shares` ([rows, actions]) from uniform numbers `u`."""
    return np.minimum((u[:, None] > np.cumsum(shares, axis=1)).sum(axis=1), shares.shape[1] - 1)


def _log(market: Market, policy: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """n impressions of `policy` ([segments, creatives]): (segment, action, reward)."""
    users = rng.integers(1, len(market.user_ids) + 1, size=n)
    seg = market.segment[users - 1]
    action = _draw(policy[seg], rng.random(n))
    p = market.model.click_probability(users, market.category[action], market.quality[action])
    return seg, action, (rng.random(n) < p).astype(np.float64)


def _counts(market: Market, seg: np.ndarray, action: np.ndarray, reward: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    shape = (market.segments, market.creatives)
    clicks, impressions = np.zeros(shape), np.zeros(shape)
    np.add.at(clicks, (seg, action), reward)
    np.add.at(impressions, (seg, action), 1)
    return clicks, impressions


def _reward_model(clicks: np.ndarray, impressions: np.ndarray) -> np.ndarray:
    """Beta posterior mean per row x column, the prior at each row's pooled rate."""
    out = np.empty_like(clicks)
    for row in range(len(clicks)):
        pooled = (clicks[row].sum() + 1.0) / (impressions[row].sum() + 2.0)
        alpha, beta = beta_posterior(clicks[row], impressions[row], pooled, MODEL_STRENGTH)
        out[row] = alpha / (alpha + beta)
    return out


def policies(market: Market, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(live, candidate) shares [segments, creatives], both planned from one uniform pilot log."""
    rng = np.random.default_rng(derive_seed("bench-ope-pilot", seed))
    uniform = np.tile(uniform_shares(market.creatives), (market.segments, 1))
    clicks, impressions = _counts(market, *_log(market, uniform, PILOT_IMPRESSIONS, rng))
    k = market.creatives
    live, candidate = np.empty_like(uniform), np.empty_like(uniform)
    for s in range(market.segments):
        prior = (clicks[s].sum() + 1.0) / (impressions[s].sum() + 2.0)
        live[s] = epsilon_greedy_shares(clicks[s], impressions[s], LIVE_EPSILON, prior, MODEL_STRENGTH)
        candidate[s] = thompson_shares(clicks[s], impressions[s], prior, MODEL_STRENGTH, 0.05 / k, rng)
    return live, candidate


def estimate_all(
    market: Market, live: np.ndarray, target: np.ndarray, seg: np.ndarray, action: np.ndarray, reward: np.ndarray
) -> dict[str, Estimate]:
    p0, pe = live[seg, action], target[seg, action]
    # Cross-fitting: each half's reward model is fitted on the other half, so DR's correction stays unbiased.
    fold = np.arange(len(seg)) % 2
    q_logged, q_target = np.empty(len(seg)), np.empty(len(seg))
    for f in (0, 1):
        model = _reward_model(*_counts(market, seg[fold != f], action[fold != f], reward[fold != f]))
        rows = fold == f
        q_logged[rows] = model[seg[rows], action[rows]]
        q_target[rows] = (target * model).sum(axis=1)[seg[rows]]
    return {
        "ips": ips(reward, p0, pe),
        "snips": snips(reward, p0, pe),
        "dr": doubly_robust(reward, p0, pe, q_logged, q_target),
    }


def simulator(args: argparse.Namespace) -> dict:
    market = build_market(args.users, 8, 24, args.seed)
    live, candidate = policies(market, args.seed)
    weights = market.segment_weights()
    truth = float(weights @ (candidate * market.true_ctr).sum(axis=1))
    live_truth = float(weights @ (live * market.true_ctr).sum(axis=1))
    sizes = tuple(int(s) for s in args.sizes.split(","))
    progress = Progress(log, "simulated logs", len(sizes) * args.reps, "logs")
    results: dict[int, dict[str, list[Estimate]]] = {}
    for n in sizes:
        results[n] = {name: [] for name in ESTIMATORS}
        for rep in range(args.reps):
            rng = np.random.default_rng(derive_seed("bench-ope-log", args.seed, n, rep))
            for name, est in estimate_all(market, live, candidate, *_log(market, live, n, rng)).items():
                results[n][name].append(est)
            progress.advance(note=f"{n:,} impressions, rep {rep + 1}")
    max_weight = float((candidate / live).max())
    return {"truth": truth, "live_truth": live_truth, "results": results, "max_weight": max_weight}


def real(data_dir: Path, n_sim: int) -> dict:
    random_log = openbandit.read_open_bandit("random", data_dir).raw
    bts_log = openbandit.read_open_bandit("bts", data_dir).raw
    truth = wilson(int(bts_log["click"].sum()), len(bts_log))
    alpha, beta = openbandit.bts_prior(data_dir)
    log.info("simulating %s BTS rounds", f"{n_sim:,}")
    targets = {"prior": openbandit.bts_action_probabilities(alpha, beta, n_sim=n_sim, seed=1)}
    shown = np.zeros((openbandit.N_ITEMS, openbandit.N_POSITIONS))
    np.add.at(shown, (bts_log["item_id"], bts_log["position"] - 1), 1)
    targets["as run"] = shown / shown.sum(axis=0)
    item = random_log["item_id"].to_numpy()
    pos = random_log["position"].to_numpy() - 1
    reward = random_log["click"].to_numpy().astype(np.float64)
    p0 = random_log["propensity_score"].to_numpy()
    fold = np.arange(len(item)) % 2
    out = {"truth": truth, "random": wilson(int(reward.sum()), len(reward)), "estimates": {}}
    for label, target in targets.items():
        q_logged, q_target = np.empty(len(item)), np.empty(len(item))
        for f in (0, 1):
            train = fold != f
            clicks = np.zeros((openbandit.N_POSITIONS, openbandit.N_ITEMS))
            impressions = np.zeros_like(clicks)
            np.add.at(clicks, (pos[train], item[train]), reward[train])
            np.add.at(impressions, (pos[train], item[train]), 1)
            model = _reward_model(clicks, impressions)  # [positions, items]
            rows = fold == f
            q_logged[rows] = model[pos[rows], item[rows]]
            q_target[rows] = (target.T * model).sum(axis=1)[pos[rows]]
        pe = target[item, pos]
        out["estimates"][label] = {
            "ips": ips(reward, p0, pe),
            "snips": snips(reward, p0, pe),
            "dr": doubly_robust(reward, p0, pe, q_logged, q_target),
        }
    return out


def _ci(est: Estimate, digits: int = 4) -> str:
    return f"{est.value:.{digits}f} ({est.low:.{digits}f}, {est.high:.{digits}f})"


def markdown(sim: dict, obd: dict, args: argparse.Namespace) -> str:
    truth = sim["truth"]
    lines = [
        "What: (a) on the simulator, the value (CTR) of a candidate policy (Thompson sampling, floor 0.05/k) "
        f"estimated from logs of the live policy (epsilon-greedy, epsilon {LIVE_EPSILON:g}), both planned from one "
        "pilot log "
        f"of {PILOT_IMPRESSIONS:,} uniform impressions; {args.users:,} users, 8 segments, 24 creatives; "
        f"{args.reps} independent logs per size. DR's reward model: Beta posterior mean per segment x creative "
        "(prior: the segment's pooled rate, 100 pseudo-impressions), cross-fitted on two halves of the log. "
        "(b) on the Open Bandit Dataset sample, the Bernoulli-TS policy's CTR from the uniform-random log "
        "only, against the CTR observed when BTS ran.",
        "",
        f"Run {dt.date.today()} on {hardware()} (quality figures; not timed). Seed {args.seed}.",
        "Command: `.venv/bin/python benchmarks/bench_ope.py --write-docs` (`--data DIR`: the open-bandit folder, "
        "default `open-bandit` under PIPELINES_SHARED_DATA_DIR).",
        "",
        f"(a) Simulator. True candidate CTR {truth:.5f} (live policy's {sim['live_truth']:.5f}); largest "
        f"importance weight {sim['max_weight']:.1f}.",
        "",
        "| logged impressions | estimator | mean abs. relative error | worst | 95% CI held the truth | "
        "first log: estimate (95% CI) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    worst_dr = 0.0
    for n, by_name in sim["results"].items():
        for name, ests in by_name.items():
            errors = np.array([abs(e.value - truth) / truth for e in ests])
            held = sum(e.contains(truth) for e in ests)
            lines.append(
                f"| {n:,} | {name} | {errors.mean():.2%} | {errors.max():.2%} | {held}/{len(ests)} | "
                f"{_ci(ests[0], 5)} |"
            )
            if name == "dr" and n == max(sim["results"]):
                worst_dr = float(errors.max())
    truth_obd, random_ctr = obd["truth"], obd["random"]
    lines += [
        "",
        f"Target: DR within 10% at {max(sim['results']):,} impressions: **{'met' if worst_dr <= 0.1 else 'not met'}**"
        f" (worst of {args.reps}: {worst_dr:.2%}).",
        "",
        f"(b) Open Bandit Dataset (ZOZOTOWN, campaign all, 10,000 rows per policy). Observed on-policy BTS CTR: "
        f"{_ci(truth_obd)} (Wilson, {truth_obd.n:,} impressions); the random policy's own: {_ci(random_ctr)}. "
        f"BTS action probabilities from `bts_prior_all.yaml` by {args.bts_sims:,} simulated rounds.",
        "",
        "| BTS action probabilities | estimator | estimate from random logs (95% CI) | observed BTS CTR inside? |",
        "| --- | --- | --- | --- |",
    ]
    inside_all = True
    for label, ests in obd["estimates"].items():
        for name, est in ests.items():
            inside = est.contains(truth_obd.value)
            inside_all &= inside if label == "prior" else True
            lines.append(f"| {label} | {name} | {_ci(est)} | {'yes' if inside else 'no'} |")
    lines += [
        "",
        "'as run': BTS's per-position frequencies of shown items in bts/all.csv (its clicks unused).",
        f"Target: the observed BTS CTR inside each estimate's interval (prior-simulated policy): "
        f"**{'met' if inside_all else 'not met'}**. With 38 clicks in the random log the intervals are wide: "
        "a real-data sanity check, not a precision figure.",
    ]
    return wrap_prose("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--sizes", default="100000,1000000", help="logged impressions per log, comma-separated")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data", type=Path, default=None, help="the open-bandit folder")
    parser.add_argument("--bts-sims", type=int, default=1_000_000)
    parser.add_argument("--write-docs", action="store_true", help="update this section of docs/benchmarks.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    data_dir = args.data or openbandit.default_dir(Settings.from_env())
    obd = real(data_dir, args.bts_sims)
    sim = simulator(args)
    text = markdown(sim, obd, args)
    print(text)
    if args.write_docs:
        replace_section(SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
