"""Training loop: length-bucketed batches, cross-entropy, early stopping on validation NDCG@10.

Batches group users of similar length (then the batch order is shuffled) and are trimmed to their
longest sequence, so short histories do not pay for 50 padded positions: on Beauty (mean length 9)
that makes an epoch several times cheaper on a CPU. The best state on validation is kept and returned.

With `train_processes` > 1 each process (`pipelines.distributed`) takes its slice of every batch, DDP
averages the gradients weighted so a step equals the one-process step on the whole batch, and rank 0
scores validation and decides early stopping for all.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from pipelines import distributed
from pipelines.errors import ConfigError
from pipelines.progress import Progress
from pipelines.recs.config import RecsConfig
from pipelines.recs.metrics import batched, evaluate
from pipelines.recs.model import SASRec, SASRecConfig
from pipelines.recs.sequences import LeaveOneOut, Sequences, pad_left, pad_left_weights

log = logging.getLogger(__name__)

EVAL_BATCH = 1024


@dataclass
class TrainResult:
    model: SASRec
    best_epoch: int
    best_valid: dict[str, float]
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def epochs(self) -> int:
        return len(self.history)

    @property
    def seconds_per_epoch(self) -> float:
        return float(np.median([h["seconds"] for h in self.history])) if self.history else 0.0


def _batches(train: Sequences, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Users with at least one (input, next item) pair, bucketed by length with random jitter."""
    lengths = train.lengths
    users = np.flatnonzero(lengths >= 2)
    jitter = rng.random(len(users)) * 0.3
    order = users[np.argsort(np.log(lengths[users]) + jitter, kind="stable")]
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for index in rng.permutation(len(chunks)):
        yield chunks[index]


def _tensors(
    train: Sequences, rows: np.ndarray, max_len: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    inputs = pad_left(train, rows, max_len, drop_last=1)
    targets = pad_left(train, rows, max_len, skip_first=1)
    weights = pad_left_weights(train, rows, max_len, skip_first=1)
    width = int(min(max_len, (train.lengths[rows] - 1).max()))  # trim columns that are padding for everyone
    return (
        torch.from_numpy(inputs[:, -width:]).to(device),
        torch.from_numpy(targets[:, -width:]).to(device),
        torch.from_numpy(weights[:, -width:]).to(device),
    )


def score_batches(
    model: SASRec,
    inputs: Sequences,
    targets: np.ndarray,
    device: torch.device,
    *,
    exclude_history: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """(scores, targets, history or None) for `evaluate`, in batches (memory bounded by the batch)."""
    max_len = model.cfg.max_len
    order = np.argsort(inputs.lengths, kind="stable")  # similar lengths together: narrow windows
    model.eval()
    with torch.no_grad(), _autocast(device):
        for chunk in batched(len(inputs), EVAL_BATCH):
            rows = order[chunk]
            width = int(min(max_len, inputs.lengths[rows].max()))
            window = torch.from_numpy(pad_left(inputs, rows, max_len)[:, -width:]).to(device)
            history = None
            if exclude_history:
                # Every item of the history, not only the last max_len: pad to the longest in the batch.
                longest = int(inputs.lengths[rows].max())
                history = torch.from_numpy(pad_left(inputs, rows, longest)).to(device)
            yield model.score_last(window).float(), torch.from_numpy(targets[rows]).to(device), history


def _autocast(device: torch.device) -> torch.autocast:
    # bf16 on GPU for speed; CPU autocast would slow the small matmuls down, so it is disabled there.
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def _optimizer(model: SASRec, config: RecsConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(
        model.parameters(),
        lr=config.learning_rate,
        betas=(0.9, 0.98),
        fused=True,  # one kernel for all parameters: the per-tensor loop dominated small CPU steps
    )


def _start(
    n_items: int,
    config: RecsConfig,
    group: distributed.Group,
    seed: int,
    init_state: dict[str, torch.Tensor] | None,
) -> tuple[SASRec, Callable[..., torch.Tensor], torch.optim.Optimizer, np.random.Generator]:
    """A seeded model (fresh, or from `init_state`), its loss (under DDP with several processes), its
    optimizer and the batch-order generator (the same on every rank: they split the same batches)."""
    torch.manual_seed(seed)
    model = SASRec(SASRecConfig.from_task_config(config, n_items))
    if init_state is not None:
        model.load_state_dict(init_state)
    model.to(group.device)
    group.reseed(seed)
    return model, group.loss_fn(model), _optimizer(model, config), np.random.default_rng(seed)


def _epoch(
    model: SASRec,
    loss_fn: Callable[..., torch.Tensor],
    optimizer: torch.optim.Optimizer,
    seqs: Sequences,
    config: RecsConfig,
    group: distributed.Group,
    rng: np.random.Generator,
    progress: Progress,
    note: str,
) -> float:
    """One pass over every user's (input, next item) pairs; returns the mean batch loss (of whole batches)."""
    model.train()
    total, steps = 0.0, 0
    for batch in _batches(seqs, config.batch_size, rng):
        rows, present = group.slice(batch)
        inputs, targets, weights = _tensors(seqs, rows, config.max_len, group.device)
        share = group.share(float(weights.sum()) * present)  # the loss is a weighted mean over positions
        with _autocast(group.device):
            loss = loss_fn(inputs, targets, weights)
        optimizer.zero_grad(set_to_none=True)
        (loss * share if group.distributed else loss).backward()
        optimizer.step()
        total += float(loss.detach()) * share / group.world_size
        steps += 1
        progress.advance(note=note)
    return float(group.all_sum(np.array([total]))[0]) / max(steps, 1)


def batches_per_epoch(seqs: Sequences, batch_size: int) -> int:
    """How many batches `_batches` yields: users with at least one (input, next item) pair, batched."""
    return -(-int((seqs.lengths >= 2).sum()) // batch_size)


def train(
    split: LeaveOneOut,
    n_items: int,
    config: RecsConfig,
    device: torch.device,
    seed: int,
    *,
    init_state: dict[str, torch.Tensor] | None = None,
    on_epoch: Callable[[SASRec], dict[str, float]] | None = None,
) -> TrainResult:
    """Train from scratch (or from `init_state`), keep the epoch with the best validation NDCG@10.

    `on_epoch` (benchmarks) adds its figures for the current weights to the epoch's history row; it runs
    in this process, so only with one training process.
    """
    if on_epoch is not None and config.train_processes > 1:
        raise ConfigError("on_epoch needs train_processes=1: it runs in the calling process")
    args = (split, n_items, config, seed, init_state, on_epoch)
    return distributed.run(config.train_processes, device, _train, *args)


def _train(
    group: distributed.Group,
    split: LeaveOneOut,
    n_items: int,
    config: RecsConfig,
    seed: int,
    init_state: dict[str, torch.Tensor] | None,
    on_epoch: Callable[[SASRec], dict[str, float]] | None,
) -> TrainResult:
    device = group.device
    model, loss_fn, optimizer, rng = _start(n_items, config, group, seed, init_state)
    result = TrainResult(model=model, best_epoch=0, best_valid={"ndcg@10": -1.0})
    best_state = copy.deepcopy(model.state_dict())
    positions = int(np.maximum(split.train.lengths - 1, 0).clip(max=config.max_len).sum())
    started = time.perf_counter()
    per_epoch = batches_per_epoch(split.train, config.batch_size)
    progress = Progress(log, "SASRec training", config.max_epochs * per_epoch, "batches")
    for epoch in range(1, config.max_epochs + 1):
        tick = time.perf_counter()
        note = f"epoch {epoch}/{config.max_epochs} (ETA for all epochs: early stopping may end sooner)"
        loss = _epoch(model, loss_fn, optimizer, split.train, config, group, rng, progress, note)
        train_seconds = time.perf_counter() - tick
        valid = None
        if group.rank == 0:  # the ranks hold the same weights: one scores, all follow its decision
            valid = evaluate(score_batches(model, split.valid_input, split.valid_target, device), n_items)
        valid = group.from_rank0(valid)
        seconds = time.perf_counter() - tick
        result.history.append({"epoch": epoch, "loss": loss, "valid_ndcg@10": valid["ndcg@10"], "seconds": seconds})
        if on_epoch is not None:
            result.history[-1].update(on_epoch(model))
        improved = valid["ndcg@10"] > result.best_valid["ndcg@10"]
        if improved:
            result.best_epoch, result.best_valid = epoch, valid
            best_state = copy.deepcopy(model.state_dict())
        log.info(
            "epoch %d: loss %.4f, valid NDCG@10 %.4f HR@10 %.4f%s, %.1f s (%.0f positions/s)",
            epoch,
            loss,
            valid["ndcg@10"],
            valid["hr@10"],
            " *" if improved else "",
            seconds,
            positions / max(train_seconds, 1e-9),
        )
        elapsed = group.from_rank0(time.perf_counter() - started)
        if epoch - result.best_epoch >= config.patience:
            log.info("early stop: no better validation NDCG@10 for %d epochs", config.patience)
            break
        if config.max_train_seconds is not None and elapsed >= config.max_train_seconds:
            log.info("stopping at the time cap of %.0f s", config.max_train_seconds)
            break
    model.load_state_dict(best_state)
    result.seconds = time.perf_counter() - started
    return result


def save_curves(history: list[dict[str, float]], path: Path, title: str) -> Path:
    """Training loss and validation NDCG@10 per epoch, as a PNG beside the artifact."""
    from pipelines import plots

    epochs = [h["epoch"] for h in history]
    fig, (left, right) = plots.panels(2, figsize=(9, 3.5))
    left.plot(epochs, [h["loss"] for h in history])
    left.set_xlabel("epoch")
    left.set_ylabel("training loss")
    right.plot(epochs, [h["valid_ndcg@10"] for h in history], color="tab:green")
    right.set_xlabel("epoch")
    right.set_ylabel("validation NDCG@10")
    return plots.save(fig, path, title)


def refit(
    seqs: Sequences,
    n_items: int,
    config: RecsConfig,
    device: torch.device,
    seed: int,
    epochs: int,
    *,
    init_state: dict[str, torch.Tensor] | None = None,
) -> TrainResult:
    """Retrain on `seqs` (the validation items included) for the epoch count early stopping chose.

    Tuning on validation and then refitting on everything before the test item is the textbook protocol;
    on Beauty the validation transitions are worth about 15% NDCG@10 to every model (docs/benchmarks.md).
    """
    return distributed.run(config.train_processes, device, _refit, seqs, n_items, config, seed, epochs, init_state)


def _refit(
    group: distributed.Group,
    seqs: Sequences,
    n_items: int,
    config: RecsConfig,
    seed: int,
    epochs: int,
    init_state: dict[str, torch.Tensor] | None,
) -> TrainResult:
    model, loss_fn, optimizer, rng = _start(n_items, config, group, seed, init_state)
    result = TrainResult(model=model, best_epoch=epochs, best_valid={})
    started = time.perf_counter()
    progress = Progress(log, "SASRec refit", epochs * batches_per_epoch(seqs, config.batch_size), "batches")
    for epoch in range(1, epochs + 1):
        tick = time.perf_counter()
        loss = _epoch(model, loss_fn, optimizer, seqs, config, group, rng, progress, f"epoch {epoch}/{epochs}")
        result.history.append({"epoch": epoch, "loss": loss, "seconds": time.perf_counter() - tick})
        log.info("refit epoch %d/%d: loss %.4f, %.1f s", epoch, epochs, loss, time.perf_counter() - tick)
    result.seconds = time.perf_counter() - started
    return result
