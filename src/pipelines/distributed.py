"""Data-parallel training over several processes with torch.distributed: DDP, one process per GPU (gloo on CPU).

A model task whose config sets `train_processes` = N > 1 spawns N worker processes itself (torch
multiprocessing, what `torchrun` does, without a second entry point inside an Airflow task): rank r trains
on its slice of every global batch, DDP averages the gradients, and rank 0's result returns to the task,
which registers and serves it through the usual lifecycle (`pipelines.modeltask`). N = 1 runs in the
task's own process, exactly as before (ADR 0014).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from pipelines.compute import derive_seed
from pipelines.errors import ConfigError

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Group:
    """This process's place among the training processes: its rank, their number, its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def reseed(self, seed: int) -> None:
        """Call after building the model: ranks > 0 draw their own dropout masks, rank 0 keeps the single
        process's random stream."""
        if self.rank > 0:
            torch.manual_seed(derive_seed(seed, "rank", self.rank))

    def slice(self, rows: np.ndarray) -> tuple[np.ndarray, float]:
        """This rank's rows of a global batch, and 1.0; or, when the batch is too small to give this rank
        any, the batch's first row and 0.0 (every rank must still step, so DDP's collectives stay aligned)."""
        mine = rows[self.rank :: self.world_size]
        return (mine, 1.0) if len(mine) else (rows[:1], 0.0)

    def share(self, local: float) -> float:
        """`local` / the sum over ranks * world size: a rank's mean loss times this makes DDP's average of
        the ranks' gradients the gradient of the whole batch's mean, as one process would compute it."""
        if not self.distributed:
            return 1.0
        total = float(self.all_sum(np.array([local]))[0])
        return local * self.world_size / total if total > 0 else 0.0

    def all_sum(self, values: np.ndarray) -> np.ndarray:
        """Element-wise sum over ranks (float64)."""
        if not self.distributed:
            return values
        tensor = torch.as_tensor(values, dtype=torch.float64, device=self._collective_device)
        dist.all_reduce(tensor)
        return tensor.cpu().numpy()

    def from_rank0(self, value: T) -> T:
        """Rank 0's `value` on every rank (decisions that must agree: early stopping, time caps)."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, device=self._collective_device)
        return box[0]

    def loss_fn(self, model: nn.Module) -> Callable[..., Any]:
        """`model.loss`, under DDP when there are several processes (the gradients are averaged in the
        backward pass, bucketed and overlapped with it)."""
        if not self.distributed:
            return model.loss
        return nn.parallel.DistributedDataParallel(_Loss(model))

    @property
    def _collective_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


class _Loss(nn.Module):
    """DDP synchronises through `forward`: this makes a model's `loss(...)` its forward."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model.loss(*args, **kwargs)


def run(processes: int, device: torch.device, fn: Callable[..., T], *args: Any) -> T:
    """`fn(group, *args)` in this process when `processes` is 1; else in `processes` spawned processes
    (one per GPU on CUDA, gloo on CPU), returning rank 0's result. `fn` and `args` must pickle."""
    if processes == 1:
        return fn(Group(0, 1, device), *args)
    if device.type == "cuda" and torch.cuda.device_count() < processes:
        raise ConfigError(
            f"train_processes={processes} needs as many GPUs; this machine has {torch.cuda.device_count()}"
        )
    import torch.multiprocessing as mp

    # The task's CPU thread budget is shared out, so N processes use the cores one process would have.
    threads = max(1, torch.get_num_threads() // processes)
    level = logging.getLogger("pipelines").getEffectiveLevel()
    deterministic = torch.are_deterministic_algorithms_enabled()
    with tempfile.TemporaryDirectory(prefix="pipelines-ddp-") as folder:
        result = Path(folder) / "rank0.pt"
        settings = (processes, device.type, f"file://{folder}/rendezvous", threads, level, deterministic)
        log.info("training in %d processes (%s, %d torch threads each)", processes, device.type, threads)
        try:
            mp.start_processes(_worker, args=(settings, folder, fn, args), nprocs=processes, start_method="spawn")
        except mp.ProcessRaisedException as error:
            # The first rank to fail is often a bystander whose collective lost its peer: name the cause.
            causes = sorted(Path(folder).glob("rank*.error"))
            if causes:
                raise RuntimeError(min(causes, key=lambda p: p.stat().st_mtime).read_text()) from error
            raise
        return torch.load(result, map_location=device, weights_only=False)


def _worker(rank: int, settings: tuple, folder: str, fn: Callable[..., Any], args: tuple) -> None:
    processes, device_type, rendezvous, threads, level, deterministic = settings
    logging.basicConfig(level=level if rank == 0 else logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    device = torch.device(device_type, rank) if device_type == "cuda" else torch.device(device_type)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # the ranks of one task share one machine
    dist.init_process_group(backend, init_method=rendezvous, rank=rank, world_size=processes)
    try:
        out = fn(Group(rank, processes, device), *args)
        if rank == 0:
            torch.save(out, Path(folder) / "rank0.pt")
        dist.barrier()
    except Exception as error:
        Path(folder, f"rank{rank}.error").write_text(f"training rank {rank} failed: {type(error).__name__}: {error}")
        raise
    finally:
        dist.destroy_process_group()
