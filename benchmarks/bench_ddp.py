"""Data-parallel SASRec on Amazon Beauty: 2 gloo processes x 1 torch thread against 1 process x 2 threads.

Both runs train the production RecsConfig from the same seed for the same epochs (no early stopping) on the
leave-one-out split of bench_recs_beauty.py and score validation NDCG@10 (full ranking) after each epoch.
The target: the 2-process run's validation NDCG@10 after the last epoch within 0.002 of the 1-process
run's. Epoch time counts the training pass and the validation pass (rank 0 scores it for both ranks).

    .venv/bin/python benchmarks/bench_ddp.py --epochs 4 --write-docs
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

from bench_recs_beauty import load
from common import machine, replace_section
from pipelines.compute import derive_seed, seed_everything
from pipelines.config import apply_overrides
from pipelines.recs.config import RecsConfig
from pipelines.recs.sequences import leave_one_out
from pipelines.recs.train import train
from pipelines.settings import Settings

log = logging.getLogger("bench_ddp")

TITLE = "Data-parallel SASRec training: DDP on Amazon Beauty (bench_ddp.py)"
TOLERANCE = 0.002


def markdown(report: dict) -> str:
    one, two = report["runs"]["1x2"], report["runs"]["2x1"]
    gap = abs(two["history"][-1]["valid_ndcg@10"] - one["history"][-1]["valid_ndcg@10"])
    lines = [
        "What: SASRec trained with `train_processes` 2 (DDP, two gloo processes on the CPU, 1 torch thread each) "
        "against one process with 2 threads, the same seed, the production RecsConfig, "
        f"{report['epochs']} epochs without early stopping; validation NDCG@10 (leave-one-out, full ranking) "
        f"after each epoch. Data: Amazon Beauty, {report['users']:,} users, {report['items']:,} items. "
        f"Target: the last epoch's validation NDCG@10 within {TOLERANCE} of one process's.",
        "",
        f"Machine: {report['machine']}. Command: `.venv/bin/python {report['command']}`.",
        "",
        "| epoch | loss, 1 x 2 threads | loss, 2 x 1 thread | valid NDCG@10, 1 x 2 | valid NDCG@10, 2 x 1 "
        "| s, 1 x 2 | s, 2 x 1 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for a, b in zip(one["history"], two["history"], strict=True):
        lines.append(
            f"| {a['epoch']} | {a['loss']:.4f} | {b['loss']:.4f} | {a['valid_ndcg@10']:.4f} | "
            f"{b['valid_ndcg@10']:.4f} | {a['seconds']:.1f} | {b['seconds']:.1f} |"
        )
    verdict = "met" if gap <= TOLERANCE else "**not met**"
    speed = one["seconds_per_epoch"] / two["seconds_per_epoch"]
    lines += [
        "",
        f"Validation NDCG@10 after epoch {report['epochs']}: {one['history'][-1]['valid_ndcg@10']:.4f} (1 process) "
        f"and {two['history'][-1]['valid_ndcg@10']:.4f} (2 processes), a gap of {gap:.4f}: {verdict}. Median "
        f"epoch: {one['seconds_per_epoch']:.1f} s (1 x 2 threads) and {two['seconds_per_epoch']:.1f} s "
        f"(2 x 1 thread), {speed:.2f}x.",
    ]
    if report["note"]:
        lines += ["", f"Run note: {report['note']}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data", type=Path, default=Settings.from_env().shared_data_dir / "amazon-beauty" / "Beauty.txt"
    )
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--config", default="{}", help="JSON overrides of RecsConfig (both runs)")
    parser.add_argument("--json", type=Path, help="also write the full report here")
    parser.add_argument("--write-docs", action="store_true", help="update this section of docs/benchmarks.md")
    parser.add_argument("--note", default="", help="how the run was scheduled, written under the figures")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    overrides = {"max_epochs": args.epochs, "patience": args.epochs + 1, **json.loads(args.config)}
    config = apply_overrides(RecsConfig(), overrides)
    seqs, n_items = load(args.data)
    split = leave_one_out(seqs)
    seed = derive_seed("sasrec", "beauty-benchmark")
    device = torch.device("cpu")
    torch.set_num_threads(2)  # one process: 2 threads; two processes: the budget shared out, 1 each
    runs = {}
    for label, processes in (("1x2", 1), ("2x1", 2)):
        seed_everything(seed)
        result = train(split, n_items, dataclasses.replace(config, train_processes=processes), device, seed)
        runs[label] = {"history": result.history, "seconds_per_epoch": result.seconds_per_epoch}
        log.info("%s: %s", label, json.dumps(result.history))
    report = {
        "epochs": args.epochs,
        "users": len(seqs),
        "items": n_items,
        "machine": f"{machine()}, load average {os.getloadavg()[1]:.1f} over the last 5 minutes",
        "command": shlex.join(["benchmarks/bench_ddp.py", *(argv if argv is not None else sys.argv[1:])]),
        "note": args.note,
        "runs": runs,
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=float))
    text = markdown(report)
    print(text)
    if args.write_docs:
        replace_section(TITLE, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
