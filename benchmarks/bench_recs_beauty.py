"""Beauty next-item benchmark: our SASRec against popularity, last-item transitions and EASE, one split.

Protocol (docs/ANCHORS.md): leave-one-out (last item = test, second-to-last = validation, the rest =
training), full ranking over every item, ties scored as their expectation, figures with history items
kept and with them excluded. Every model and baseline is fitted on the training part only and tuned on
validation only. Any file of the same format (one user per line: user id, then item ids in time order)
can be benchmarked with --data.

    .venv/bin/python benchmarks/bench_recs_beauty.py --write-docs
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning threads fight the
# other processes and a step runs up to 10x slower. Must be set before torch loads its OpenMP runtime.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import datetime as dt
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from common import ROOT, replace_section
from pipelines.compute import derive_seed, seed_everything, select_device
from pipelines.config import apply_overrides
from pipelines.profiles.evaluation import ease_weights
from pipelines.ranking import popularity
from pipelines.recs.config import RecsConfig
from pipelines.recs.metrics import batched, evaluate
from pipelines.recs.sequences import LeaveOneOut, Sequences, from_lists, leave_one_out, pad_left
from pipelines.recs.train import refit, score_batches, train
from pipelines.settings import Settings

log = logging.getLogger("bench_recs_beauty")

TITLE = "Transformer recommendations: Amazon Beauty (bench_recs_beauty.py)"
EASE_LAMBDAS = (250.0, 500.0, 1000.0)
# An unmodified public SASRec (pmixer/SASRec.pytorch) after 20 epochs, 7.75 min here (docs/ANCHORS.md).
PEER = {"hr@10": 0.038, "ndcg@10": 0.016, "seconds": 465.0}


def load(path: Path) -> tuple[Sequences, int]:
    """Sequences whose item rows are the file's item ids (already contiguous from 1)."""
    users, seqs = [], []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        parts = line.split()
        if len(parts) < 2:
            raise ValueError(f"{path}, line {number}: expected 'user item item ...'")
        users.append(int(parts[0]))
        seqs.append(np.array(parts[1:], dtype=np.int64))
    n_items = int(max(s.max() for s in seqs))
    return from_lists(np.array(users), seqs), n_items


def batch_scores(inputs: Sequences, targets: np.ndarray, score, exclude: bool):
    """Batches for `evaluate` from a numpy scorer: rows -> [batch, n_items + 1] scores."""
    for rows in batched(len(inputs), 1024):
        history = None
        if exclude:
            history = torch.from_numpy(pad_left(inputs, rows, int(inputs.lengths[rows].max())))
        yield torch.from_numpy(np.asarray(score(rows), dtype=np.float32)), torch.from_numpy(targets[rows]), history


def both(inputs: Sequences, targets: np.ndarray, score, n_items: int) -> dict[str, dict[str, float]]:
    return {
        "kept": evaluate(batch_scores(inputs, targets, score, False), n_items),
        "excluded": evaluate(batch_scores(inputs, targets, score, True), n_items),
    }


def transitions(train: Sequences, n_items: int) -> sp.csr_matrix:
    """Counts of item -> next item inside training sequences."""
    same_user = np.diff(np.repeat(np.arange(len(train)), train.lengths)) == 0
    prev, nxt = train.items[:-1][same_user], train.items[1:][same_user]
    return sp.csr_matrix((np.ones(len(prev), np.float32), (prev, nxt)), shape=(n_items + 1, n_items + 1))


def history_matrix(inputs: Sequences, n_items: int) -> sp.csr_matrix:
    users = np.repeat(np.arange(len(inputs)), inputs.lengths)
    x = sp.csr_matrix((np.ones(len(users), np.float32), (users, inputs.items)), shape=(len(inputs), n_items + 1))
    x.data[:] = 1.0
    return x


def run_baselines(split: LeaveOneOut, n_items: int, skip_ease: bool) -> dict[str, dict]:
    """Baselines scored on test after fitting on everything before the test item (as ANCHORS.md did)."""
    results: dict[str, dict] = {}
    fit = split.train_valid
    tick = time.perf_counter()
    pop = popularity(fit.items, n_items + 1, fit.weights)
    results["popularity"] = both(split.test_input, split.test_target, lambda r: np.tile(pop, (len(r), 1)), n_items)
    results["popularity"]["seconds"] = time.perf_counter() - tick
    log.info("popularity: %s", results["popularity"]["kept"])

    last = split.test_input.last()
    tie_break = np.nan_to_num(pop / pop[1:].max(), neginf=0.0) * 1e-3
    for name, data in (("transitions", fit), ("transitions_train_only", split.train)):
        tick = time.perf_counter()
        trans = transitions(data, n_items)
        results[name] = both(
            split.test_input, split.test_target, lambda r, t=trans: t[last[r]].toarray() + tie_break, n_items
        )
        results[name]["seconds"] = time.perf_counter() - tick
        log.info("%s: %s", name, results[name]["kept"])

    if not skip_ease:
        tick = time.perf_counter()
        valid_x, test_x = history_matrix(split.valid_input, n_items), history_matrix(split.test_input, n_items)
        best = (-1.0, 0.0)
        for lam in EASE_LAMBDAS:
            b = ease_weights(history_matrix(split.train, n_items), lam)
            valid = evaluate(
                batch_scores(split.valid_input, split.valid_target, lambda r, b=b: valid_x[r] @ b, False), n_items
            )
            log.info("EASE lambda %.0f: valid NDCG@10 %.4f", lam, valid["ndcg@10"])
            best = max(best, (valid["ndcg@10"], lam))
        b = ease_weights(history_matrix(fit, n_items), best[1])
        results["ease"] = both(split.test_input, split.test_target, lambda r: test_x[r] @ b, n_items)
        results["ease"]["lambda"] = best[1]
        results["ease"]["seconds"] = time.perf_counter() - tick
        log.info("EASE (lambda %.0f): %s", best[1], results["ease"]["kept"])
    return results


def run_model(split: LeaveOneOut, n_items: int, config: RecsConfig, device: torch.device) -> dict:
    """Early stopping on validation, then a refit on everything before the test item for the best epoch count."""
    seed = derive_seed("sasrec", "beauty-benchmark")
    seed_everything(seed)
    started = time.perf_counter()
    cpu_started = time.process_time()

    def test_now(model) -> dict[str, float]:
        test = evaluate(score_batches(model, split.test_input, split.test_target, device), n_items)
        return {"test_hr@10": test["hr@10"], "test_ndcg@10": test["ndcg@10"], "elapsed": time.perf_counter() - started}

    tuned = train(split, n_items, config, device, seed, on_epoch=test_now)
    tuned_test = evaluate(score_batches(tuned.model, split.test_input, split.test_target, device), n_items)
    log.info("SASRec before refit (training part only): %s", tuned_test)
    final = refit(split.train_valid, n_items, config, device, derive_seed("sasrec", "beauty-refit"), tuned.best_epoch)
    model = final.model
    out = {
        "kept": evaluate(score_batches(model, split.test_input, split.test_target, device), n_items),
        "excluded": evaluate(
            score_batches(model, split.test_input, split.test_target, device, exclude_history=True), n_items
        ),
        "before_refit": tuned_test,
        "valid": tuned.best_valid,
        "epochs": tuned.epochs,
        "best_epoch": tuned.best_epoch,
        "seconds_per_epoch": tuned.seconds_per_epoch,
        "refit_seconds_per_epoch": final.seconds_per_epoch,
        "tune_seconds": tuned.seconds,
        "refit_seconds": final.seconds,
        "train_seconds": time.perf_counter() - started,
        "train_cpu_seconds": time.process_time() - cpu_started,
        "history": tuned.history,
    }
    reach = [h for h in tuned.history if h["test_hr@10"] >= PEER["hr@10"] and h["test_ndcg@10"] >= PEER["ndcg@10"]]
    out["seconds_to_peer_quality"] = reach[0]["elapsed"] if reach else None
    out["epochs_to_peer_quality"] = reach[0]["epoch"] if reach else None
    log.info("SASRec after refit: %s", out["kept"])
    return out


def row(name: str, figures: dict[str, dict], extra: str = "") -> str:
    k, e = figures["kept"], figures["excluded"]
    return (
        f"| {name} | {k['hr@10']:.4f} | {k['ndcg@10']:.4f} | {k['hr@20']:.4f} | {k['ndcg@20']:.4f} "
        f"| {e['hr@10']:.4f} | {e['ndcg@10']:.4f} | {k['coverage@10']:.3f} | {extra} |"
    )


def markdown(report: dict) -> str:
    m = report["model"]
    b = report["baselines"]
    lines = [
        f"Dataset `{os.path.relpath(report['data'], ROOT)}`: {report['users']:,} users, {report['items']:,} items, "
        f"{report['interactions']:,} interactions. Protocol: leave-one-out (last item test, second-to-last "
        "validation), **test** figures, full ranking over every item, ties as their expectation. Every model "
        "is tuned on validation (EASE's lambda, our early stopping) and then fitted on everything before the "
        "test item, as the ANCHORS baselines were. `kept` = history items not excluded (the ANCHORS protocol), "
        f"`excl.` = history items excluded. Machine: {report['machine']}, device `{report['device']}`, "
        f"{report['torch_threads']} torch threads, OMP_WAIT_POLICY=PASSIVE. Date: {report['date']}. Command: "
        f"`.venv/bin/python {report['command']}`.",
        "",
        "| model | HR@10 | NDCG@10 | HR@20 | NDCG@20 | HR@10 excl. | NDCG@10 excl. | coverage@10 | cost |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        row("popularity", b["popularity"], f"{b['popularity']['seconds']:.1f} s"),
        row("last-item transitions, popularity tie-break", b["transitions"], f"{b['transitions']['seconds']:.1f} s"),
    ]
    if "ease" in b:
        lines.append(
            row(
                f"EASE (lambda {b['ease']['lambda']:.0f} tuned on validation)",
                b["ease"],
                f"{b['ease']['seconds']:.0f} s",
            )
        )
    lines += [
        row(
            "**ours: SASRec, full-softmax CE, refit**",
            m,
            f"{m['train_seconds']:.0f} s ({m['epochs']} + {m['best_epoch']} epochs)",
        ),
        "",
        "Fitted on the training part only (validation items unseen), test: last-item transitions "
        f"HR@10 {b['transitions_train_only']['kept']['hr@10']:.4f} / NDCG@10 "
        f"{b['transitions_train_only']['kept']['ndcg@10']:.4f}; ours before the refit HR@10 "
        f"{m['before_refit']['hr@10']:.4f} / NDCG@10 {m['before_refit']['ndcg@10']:.4f}.",
        "",
    ]
    peer = m["seconds_to_peer_quality"]
    lines += [
        f"Ours: {m['seconds_per_epoch']:.1f} s per tuning epoch (median, validation and test passes included), "
        f"{m['refit_seconds_per_epoch']:.1f} s per refit epoch; best validation NDCG@10 {m['valid']['ndcg@10']:.4f} "
        f"at epoch {m['best_epoch']} of {m['epochs']} (patience {report['config']['patience']}, time cap "
        f"{report['config']['max_train_seconds']:.0f} s); tuning {m['tune_seconds']:.0f} s + refit "
        f"{m['refit_seconds']:.0f} s = **{m['train_seconds'] / 60:.1f} min** wall to the figures above "
        f"({m['train_cpu_seconds'] / 60:.1f} CPU-minutes of this process; 15-minute load average at the end of "
        f"training {report['load_average']:.1f} on 2 cores). Time to the "
        "quality of an unmodified public SASRec after 20 epochs (HR@10 0.038 / NDCG@10 0.016, 465 s here): "
        + (
            f"**{peer:.0f} s** (epoch {m['epochs_to_peer_quality']}, {PEER['seconds'] / peer:.1f}x sooner)"
            if peer
            else "not reached"
        )
        + ".",
        "",
        f"Config: `{json.dumps(report['config'], sort_keys=True)}`",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    settings = Settings.from_env()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=settings.shared_data_dir / "amazon-beauty" / "Beauty.txt")
    parser.add_argument("--device", default=settings.device)
    parser.add_argument("--config", default="{}", help="JSON overrides of RecsConfig")
    parser.add_argument("--skip-ease", action="store_true")
    parser.add_argument("--skip-model", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the full report (with per-epoch history) here")
    parser.add_argument("--write-docs", action="store_true", help="update this section of docs/benchmarks.md")
    parser.add_argument("--machine", default="2 vCPU, 24 GiB, no GPU")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    config = apply_overrides(RecsConfig(), {"max_train_seconds": 1800.0, **json.loads(args.config)})
    device = select_device(args.device)
    seqs, n_items = load(args.data)
    split = leave_one_out(seqs)
    log.info("%d users, %d items, %d interactions", len(seqs), n_items, len(seqs.items))
    report: dict = {
        "data": str(args.data),
        "users": len(seqs),
        "items": n_items,
        "interactions": len(seqs.items),
        "machine": args.machine,
        "device": str(device),
        "date": dt.date.today().isoformat(),
        "command": " ".join(["benchmarks/bench_recs_beauty.py", *(argv if argv is not None else sys.argv[1:])]),
        "config": {k: v for k, v in vars(config).items()},
        "torch_threads": torch.get_num_threads(),
        "load_average": os.getloadavg()[0],
    }
    if not args.skip_model:
        report["model"] = run_model(split, n_items, config, device)
        report["load_average"] = os.getloadavg()[2]  # 15 minutes: how shared the machine was while training
        if args.json:
            args.json.write_text(json.dumps(report, indent=2, default=str))
    report["baselines"] = run_baselines(split, n_items, args.skip_ease)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    if args.write_docs and not args.skip_model:
        replace_section(TITLE, markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
