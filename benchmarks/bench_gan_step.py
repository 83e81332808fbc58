"""Benchmark: milliseconds per GAN training step, for configurations side by side on the same machine.

A full Fashion-MNIST run (bench_creatives.py) takes 20-50 minutes on 2 cores; the cost of a change to the
training step is read here in a minute. Each configuration trains a fresh pair on random images: `--warmup`
steps first (oneDNN picks its kernels), then `--steps` timed ones. Configurations run in turn, round after
round, so a machine whose speed drifts during the run shows it as spread between rounds, not as a
difference between configurations.

    .venv/bin/python benchmarks/bench_gan_step.py \
        --threads 2 --rounds 2 '{"consistency_weight": 0}' '{}'

Figures go to standard output only: they compare configurations and are quoted, with the machine line
this prints, where a decision rests on them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import torch

from common import hardware
from pipelines.config import apply_overrides
from pipelines.creatives.config import CreativesConfig
from pipelines.creatives.gan import GanSpec
from pipelines.creatives.train import new_state, train_gan

N_CLASSES = 10
CPU = torch.device("cpu")


def ms_per_step(overrides: dict[str, object], warmup: int, steps: int, scratch: Path) -> float:
    """Mean wall time of `steps` training steps of a fresh pair on random 28x28 images, after `warmup`."""
    config = apply_overrides(CreativesConfig(checkpoint_every=10**9, log_every=10**9), overrides)
    gen = torch.Generator().manual_seed(0)
    size = config.image_size
    images = torch.rand(4096, config.image_channels, size, size, generator=gen) * 2 - 1  # [n, c, h, w]
    labels = torch.arange(4096) % N_CLASSES
    state = new_state(GanSpec.from_task_config(config, N_CLASSES), config, seed=0, device=CPU)
    checkpoint = scratch / "step.pt"

    def train(until: int) -> None:
        train_gan(state, images, labels, config, seed=0, device=CPU, checkpoint=checkpoint, key="t", steps=until)

    train(warmup)
    started = time.perf_counter()
    train(warmup + steps)
    checkpoint.unlink(missing_ok=True)  # the next configuration must not resume this one
    return (time.perf_counter() - started) * 1000 / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="+", help="JSON overrides of CreativesConfig, one per configuration")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before each timed loop")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per configuration and round")
    parser.add_argument("--rounds", type=int, default=2, help="times each configuration is timed, in turn")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    configs = [json.loads(text) for text in args.configs]
    print(
        f"{hardware()}, torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset')}"
    )
    timings: list[list[float]] = [[] for _ in configs]
    with tempfile.TemporaryDirectory() as scratch:
        for round_ in range(1, args.rounds + 1):
            for overrides, times in zip(configs, timings, strict=True):
                times.append(ms_per_step(overrides, args.warmup, args.steps, Path(scratch)))
                print(f"round {round_}: {json.dumps(overrides)}: {times[-1]:.0f} ms per step", flush=True)
    for overrides, times in zip(configs, timings, strict=True):
        print(f"{json.dumps(overrides)}: {' / '.join(f'{t:.0f}' for t in times)} ms per step")


if __name__ == "__main__":
    main()
