"""Benchmark: Thompson-sampling delivery vs uniform and epsilon-greedy on the simulated store, 14 days.

Protocol: a world of --users users in --segments segments (the personas) and --creatives creatives, all
eligible everywhere; truth from `pipelines.sources.response` (position 1). Each day every user gets
Poisson(--impressions-per-user) impressions; 5% of users (keyed hash, `holdout_mask`) are the holdout and
see uniform shares in every run; the others see the policy's shares for their segment, recomputed each day
from all clicks and impressions so far (a daily batch, as the DAG plans the next day). The three policies
run on the same users, the same daily impression counts and the same uniform numbers for choices and
clicks (common random numbers), so their differences are the policies'.

Scored: cumulative pseudo-regret of the personalised arm, sum over its impressions of true_ctr[s, best(s)]
- true_ctr[s, shown]; and for Thompson sampling the measured lift of the personalised arm's CTR over the
holdout's (Katz interval) against the true lift: the personalised impressions' expected CTR over what the
same impressions would have got under uniform shares.

    .venv/bin/python benchmarks/bench_delivery.py --write-docs
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common import ROOT, hardware, replace_section, wrap_prose
from market import Market, build_market
from pipelines.compute import derive_seed
from pipelines.delivery.arms import holdout_mask
from pipelines.delivery.policy import epsilon_greedy_shares, group_rates, thompson_shares, uniform_shares
from pipelines.effects.estimators import Estimate, WeightedSums, lift, snips_from_sums
from pipelines.plots import panels, save
from pipelines.progress import Progress

log = logging.getLogger("bench_delivery")

SECTION = "Delivery policy: Thompson sampling vs baselines (bench_delivery.py)"
FIGURE = ROOT / "docs" / "img" / "delivery_regret.png"


@dataclass(frozen=True)
class PolicyConfig:
    """The planning knobs the benchmark uses for every learning policy (see docs/adr/0011)."""

    base_rate: float = 0.02  # global prior click rate before any data
    segment_strength: float = 2_000.0  # pseudo-impressions pulling a segment's rate to base_rate
    category_strength: float = 500.0  # pseudo-impressions pulling a category's rate to its segment's
    creative_strength: float = 100.0  # pseudo-impressions of a creative's Beta prior (its category's rate)
    min_share_of_uniform: float = 0.05  # floor per creative as a fraction of 1/k
    epsilon: float = 0.1
    draws: int = 10_000


@dataclass
class Run:
    policy: str
    daily_regret: list[float] = field(default_factory=list)
    clicks: dict[str, int] = field(default_factory=lambda: {"personalised": 0, "holdout": 0})
    impressions: dict[str, int] = field(default_factory=lambda: {"personalised": 0, "holdout": 0})
    expected_policy: float = 0.0  # sum of true CTR over personalised impressions
    expected_uniform: float = 0.0  # the same impressions under uniform shares
    uniform_ope: WeightedSums = WeightedSums(0, 0.0, 0.0, 0.0, 0.0, 0.0)  # uniform valued from this arm's log

    @property
    def regret(self) -> float:
        return float(np.sum(self.daily_regret))

    def lift(self) -> Estimate:
        c, n = self.clicks, self.impressions
        return lift(c["personalised"], n["personalised"], c["holdout"], n["holdout"])

    def true_lift(self) -> float:
        return self.expected_policy / self.expected_uniform - 1

    def uniform_estimate(self) -> Estimate:
        """SNIPS value of uniform shares from the personalised arm's log and logged propensities."""
        return snips_from_sums(self.uniform_ope)

    def uniform_truth(self) -> float:
        return self.expected_uniform / self.impressions["personalised"]


def _prior_means(clicks: np.ndarray, impressions: np.ndarray, market: Market, cfg: PolicyConfig) -> np.ndarray:
    segment_rate = (clicks.sum() + cfg.base_rate * cfg.segment_strength) / (impressions.sum() + cfg.segment_strength)
    return group_rates(clicks, impressions, market.category, segment_rate, cfg.category_strength)


def shares_function(
    policy: str, market: Market, cfg: PolicyConfig, seed: int
) -> Callable[[int, int, np.ndarray, np.ndarray], np.ndarray]:
    """(day, segment, clicks, impressions) -> shares over the creatives for that segment's next day."""
    k = market.creatives
    if policy == "uniform":
        return lambda day, s, clicks, impressions: uniform_shares(k)
    if policy == "epsilon_greedy":
        return lambda day, s, clicks, impressions: epsilon_greedy_shares(
            clicks, impressions, cfg.epsilon, _prior_means(clicks, impressions, market, cfg), cfg.creative_strength
        )
    if policy == "thompson":
        return lambda day, s, clicks, impressions: thompson_shares(
            clicks,
            impressions,
            _prior_means(clicks, impressions, market, cfg),
            cfg.creative_strength,
            cfg.min_share_of_uniform / k,
            np.random.default_rng(derive_seed("bench-delivery", seed, policy, day, s)),
            draws=cfg.draws,
        )
    raise ValueError(f"unknown policy {policy!r}")


def simulate(
    market: Market, policies: tuple[str, ...], days: int, per_user: float, cfg: PolicyConfig, seed: int
) -> list[Run]:
    held_out = holdout_mask(market.user_ids, f"bench-delivery-{seed}", 0.05)
    best = market.true_ctr.max(axis=1)  # [segments]
    uniform_ctr = market.true_ctr.mean(axis=1)  # [segments]
    k, segments = market.creatives, market.segments
    progress = Progress(log, "simulated days", len(policies) * days, "days")
    runs = []
    for policy in policies:
        run, choose = Run(policy), shares_function(policy, market, cfg, seed)
        clicks = np.zeros((segments, k))
        impressions = np.zeros((segments, k))
        for day in range(days):
            # Common random numbers: the same day draws the same users, choices and click thresholds per policy.
            rng = np.random.default_rng(derive_seed("bench-delivery-day", seed, day))
            shown_users = np.repeat(market.user_ids, rng.poisson(per_user, size=len(market.user_ids)))
            u_choice, u_click = rng.random(len(shown_users)), rng.random(len(shown_users))
            seg = market.segment[shown_users - 1]
            hold = held_out[shown_users - 1]
            plan = np.stack([choose(day, s, clicks[s], impressions[s]) for s in range(segments)])  # [segments, k]
            cum = np.cumsum(np.where(hold[:, None], uniform_shares(k), plan[seg]), axis=1)  # [impressions, k]
            shown = np.minimum((u_choice[:, None] > cum).sum(axis=1), k - 1)
            p = market.model.click_probability(shown_users, market.category[shown], market.quality[shown])
            clicked = u_click < p
            np.add.at(impressions, (seg, shown), 1)
            np.add.at(clicks, (seg, shown), clicked)
            pers = ~hold
            run.daily_regret.append(float((best[seg[pers]] - market.true_ctr[seg[pers], shown[pers]]).sum()))
            for arm, mask in (("personalised", pers), ("holdout", hold)):
                run.clicks[arm] += int(clicked[mask].sum())
                run.impressions[arm] += int(mask.sum())
            run.expected_policy += float(market.true_ctr[seg[pers], shown[pers]].sum())
            run.expected_uniform += float(uniform_ctr[seg[pers]].sum())
            propensity = plan[seg[pers], shown[pers]]
            run.uniform_ope += WeightedSums.from_arrays(clicked[pers], propensity, np.full(int(pers.sum()), 1 / k))
            progress.advance(note=f"{policy} day {day + 1}, regret so far {run.regret:.0f} clicks")
        runs.append(run)
    return runs


def plot(runs: list[Run], path: Path) -> Path:
    fig, ax = panels(1, (6.0, 3.6))
    for run in runs:
        ax.plot(range(1, len(run.daily_regret) + 1), np.cumsum(run.daily_regret), marker="o", ms=3, label=run.policy)
    ax.set_xlabel("day")
    ax.set_ylabel("cumulative regret (expected clicks lost)")
    ax.legend()
    ax.grid(alpha=0.3)
    return save(fig, path, "Delivery policies on the simulated store", dpi=80)


def markdown(runs: list[Run], market: Market, args: argparse.Namespace, cfg: PolicyConfig) -> str:
    by = {r.policy: r for r in runs}
    uniform = by["uniform"].regret
    gaps = market.true_ctr.max(axis=1) - market.true_ctr.mean(axis=1)
    lines = [
        f"What: {args.days} days of daily-batched delivery on the simulated store ({args.users:,} users, "
        f"{market.segments} segments, {market.creatives} creatives, Poisson({args.impressions_per_user:g}) "
        "impressions per user a day, 5% uniform holdout), the same random numbers for every policy. Regret: "
        "expected clicks lost on the personalised arm against each segment's best creative.",
        "",
        f"Truth: best creative's CTR per segment {market.true_ctr.max(axis=1).min():.4f}..."
        f"{market.true_ctr.max(axis=1).max():.4f}, gap to uniform {gaps.min():.4f}...{gaps.max():.4f} per "
        f"impression. Policies: Thompson sampling with the category prior, floor {cfg.min_share_of_uniform:g}/k "
        f"(ADR 0011); epsilon-greedy (epsilon {cfg.epsilon:g}) on the same posterior means; uniform.",
        "",
        f"Run {dt.date.today()} on {hardware()} (quality figures; not timed). Seed {args.seed}.",
        "Command: `.venv/bin/python benchmarks/bench_delivery.py --write-docs`",
        "",
        "| policy | cumulative regret (clicks) | vs uniform | personalised CTR | measured lift vs holdout "
        "(95% CI) | true lift | uniform's CTR by SNIPS from this log (95% CI) | its truth |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        est, ope = run.lift(), run.uniform_estimate()
        ctr = run.clicks["personalised"] / run.impressions["personalised"]
        lines.append(
            f"| {run.policy} | {run.regret:,.0f} | {run.regret / uniform:.1%} | {ctr:.4f} | "
            f"{est.value:+.1%} ({est.low:+.1%}, {est.high:+.1%}) | {run.true_lift():+.1%} | "
            f"{ope.value:.5f} ({ope.low:.5f}, {ope.high:.5f}) | {run.uniform_truth():.5f} |"
        )
    ts, eg = by["thompson"], by["epsilon_greedy"]
    met = ts.regret <= 0.3 * uniform and ts.regret < eg.regret and ts.lift().contains(ts.true_lift())
    lines += [
        "",
        f"Impressions: {ts.impressions['personalised']:,} personalised, {ts.impressions['holdout']:,} holdout "
        f"per policy. Target: Thompson regret <= 30% of uniform's and below epsilon-greedy's, true lift inside "
        f"the measured interval: **{'met' if met else 'not met'}** ({ts.regret / uniform:.1%} of uniform, "
        f"{ts.regret / eg.regret:.1%} of epsilon-greedy's). The last two columns value the holdout's uniform "
        "policy off-policy from each arm's logged propensities.",
        "",
        f"![cumulative regret](img/{FIGURE.name})",
    ]
    return wrap_prose("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--segments", type=int, default=8)
    parser.add_argument("--creatives", type=int, default=24)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--impressions-per-user", type=float, default=1.0)
    parser.add_argument("--min-share-of-uniform", type=float, default=PolicyConfig.min_share_of_uniform)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--write-docs", action="store_true", help="update this section of docs/benchmarks.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = PolicyConfig(min_share_of_uniform=args.min_share_of_uniform)
    market = build_market(args.users, args.segments, args.creatives, args.seed)
    log.info("market built: best CTR per segment %s", np.round(market.true_ctr.max(axis=1), 4))
    runs = simulate(
        market, ("thompson", "epsilon_greedy", "uniform"), args.days, args.impressions_per_user, cfg, args.seed
    )
    text = markdown(runs, market, args, cfg)
    print(text)
    if args.write_docs:
        plot(runs, FIGURE)
        replace_section(SECTION, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
