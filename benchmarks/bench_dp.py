"""What privacy costs the profile VAE: NDCG@100 on Amazon Beauty at epsilon 1, 4, 8 and without DP-SGD,
beside popularity and EASE on the same split, with the time per epoch.

The protocol of bench_profiles.py (`real`): users split 80/10/10, strong generalisation, full ranking, the
VAE's epoch chosen on validation users, test figures read once. Every variant trains the same epochs with
the production defaults; DP-SGD calibrates its noise to spend the budget over exactly those epochs, at
delta 1e-6 (below 1 / training users) and clipping norm 1 unless --config says otherwise.

    .venv/bin/python benchmarks/bench_dp.py --threads 2 --write-docs
    .venv/bin/python benchmarks/bench_dp.py --threads 2 --dp-config '{"batch_size": 2000}' --write-docs
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle OpenMP threads sleep: the cores are shared

import argparse
import dataclasses
import json
import logging
import shlex
import sys
from pathlib import Path

import torch

from bench_profiles import Result, beauty, benchmark
from common import machine, replace_section
from pipelines.compute import select_device
from pipelines.config import apply_overrides
from pipelines.profiles.config import ProfileConfig
from pipelines.settings import Settings

log = logging.getLogger("bench_dp")

TITLE = "Profile VAE with a privacy budget: DP-SGD on Amazon Beauty (bench_dp.py)"
# With --dp-config the private VAEs train with other settings than the non-private one: another section.
TITLE_DP_SETTINGS = "Profile VAE with a privacy budget: DP-SGD with its own batch and learning rate (bench_dp.py)"
METRICS = ("recall@20", "recall@50", "ndcg@100")


def markdown(
    results: dict[str, Result], config: ProfileConfig, dp_config: ProfileConfig, command: str, threads: int, note: str
) -> str:
    plain = results["none"]
    lines = [
        "What: the cost of differentially private training (DP-SGD with Opacus, `dp_epsilon`) to the profile "
        "VAE's quality and speed. Protocol of `bench_profiles.py real`: Amazon Beauty (5-core S3-Rec file, "
        f"{plain.users:,} users x {plain.items:,} items, {plain.interactions:,} interactions), users split "
        f"80/10/10, {plain.test_users:,} test users, 80% of each held-out user's items folded in, full ranking, "
        "the VAE's epoch chosen on validation NDCG@100, EASE's lambda fixed at the production default. Every "
        f"VAE trains {config.epochs} epochs with the production defaults (batch {config.batch_size}, Adam "
        f"{config.learning_rate}); DP-SGD "
        + (
            ""
            if dp_config == config
            else f"trains with batch {dp_config.batch_size} and Adam {dp_config.learning_rate} instead, "
        )
        + f"clips each training user's gradient to {config.dp_max_grad_norm}, "
        f"delta {config.dp_delta:g}, its noise calibrated to spend epsilon over the {config.epochs} epochs; "
        "epsilon spent is Opacus's PRV accountant's.",
        "",
        f"Machine: {machine()}, {threads} torch threads. Command: `.venv/bin/python {command}`.",
        "",
        "| model | epsilon spent | Recall@20 | Recall@50 | NDCG@100 | NDCG@100 vs no DP | s per epoch | best epoch |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    base = plain.metrics["Mult-VAE"]["ndcg@100"]
    for name in ("popularity", "EASE"):
        m = plain.metrics[name]
        figures = " | ".join(f"{m[k]:.4f}" for k in METRICS)
        lines.append(f"| {name} | no DP | {figures} | {m['ndcg@100'] / base:.0%} | | |")
    for key, result in results.items():
        m = result.metrics["Mult-VAE"]
        figures = " | ".join(f"{m[k]:.4f}" for k in METRICS)
        label = "Mult-VAE, no DP" if key == "none" else f"Mult-VAE, DP-SGD epsilon {key}"
        spent = "no DP" if key == "none" else f"{result.chosen['epsilon_spent']:.2f}"
        lines.append(
            f"| {label} | {spent} | {figures} | {m['ndcg@100'] / base:.0%} | "
            f"{result.seconds['vae_epoch_median']:.1f} | {result.chosen['vae_epoch']} |"
        )
    private = {k: r for k, r in results.items() if k != "none"}
    if private:
        popularity = plain.metrics["popularity"]["ndcg@100"]
        slowest = max(r.seconds["vae_epoch_median"] for r in private.values()) / plain.seconds["vae_epoch_median"]
        kept = ", ".join(
            f"{r.metrics['Mult-VAE']['ndcg@100'] / base:.0%} at epsilon {k} "
            f"({r.metrics['Mult-VAE']['ndcg@100'] / popularity:.2f}x popularity)"
            for k, r in private.items()
        )
        lines += [
            "",
            f"What privacy costs here: the private VAE keeps {kept} of the non-private VAE's NDCG@100 "
            f"({base / popularity:.2f}x popularity), and an epoch takes up to {slowest:.1f}x as long (two "
            "backward passes and per-user norms).",
        ]
    if note:
        lines += ["", f"Run note: {note}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Settings.from_env().shared_data_dir, help="shared data folder")
    parser.add_argument("--epsilons", default="1,4,8")
    parser.add_argument("--config", default="{}", help="ProfileConfig overrides as JSON (every variant)")
    parser.add_argument("--dp-config", default="{}", help="further overrides for the private VAEs only")
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads; 0: torch's default")
    parser.add_argument("--write-docs", action="store_true", help="update this section of docs/benchmarks.md")
    parser.add_argument("--note", default="", help="how the run was scheduled, written under the figures")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = select_device(Settings.from_env().device)
    config = apply_overrides(ProfileConfig(), {"epochs": 30, **json.loads(args.config)})
    dp_config = apply_overrides(config, json.loads(args.dp_config))
    matrix = beauty(args.data)
    results: dict[str, Result] = {}
    for epsilon in [None, *(float(e) for e in args.epsilons.split(","))]:
        key = "none" if epsilon is None else f"{epsilon:g}"
        variant = dataclasses.replace(config if epsilon is None else dp_config, dp_epsilon=epsilon)
        # The same split each time (seeded by the dataset's name): the comparators are scored with the first.
        lambdas = () if results else (config.ease_lambda,)
        results[key] = benchmark("Amazon Beauty", matrix, variant, device, args.eval_every, lambdas)
        log.info("%s: %s", key, json.dumps(results[key].metrics["Mult-VAE"]))
    command = shlex.join(["benchmarks/bench_dp.py", *(argv if argv is not None else sys.argv[1:])])
    text = markdown(results, config, dp_config, command, torch.get_num_threads(), args.note)
    print(text)
    if args.write_docs:
        replace_section(TITLE if dp_config == config else TITLE_DP_SETTINGS, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
