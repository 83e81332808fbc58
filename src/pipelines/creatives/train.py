"""GAN training: hinge loss, DiffAugment, consistency regularisation, an auxiliary class loss, generator EMA,
warm start, checkpoints.

A run trains `train_steps` steps on top of its starting point (a fresh pair, or the champion's weights
and optimizer state when warm-starting). Every `checkpoint_every` steps the whole state (weights, EMA,
both optimizers, RNG state, loss history) is written atomically; a rerun with the same inputs loads it
and continues from that step, producing the same weights as an uninterrupted run on the same hardware.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from pipelines.compute import native_bf16
from pipelines.creatives.config import CreativesConfig
from pipelines.creatives.consistency import consistency_penalty
from pipelines.creatives.diffaugment import diff_augment, parse_policy
from pipelines.creatives.gan import Discriminator, GanSpec, Generator, hinge_d_loss, hinge_g_loss, update_ema
from pipelines.errors import ConfigError
from pipelines.progress import Progress

log = logging.getLogger(__name__)

Probe = Callable[[Generator], Mapping[str, float]]


@dataclass
class GanState:
    """The live pair, the EMA generator and both optimizers: what a checkpoint holds."""

    spec: GanSpec
    generator: Generator
    discriminator: Discriminator
    ema: Generator
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    step: int = 0  # steps trained in this run
    history: dict[str, list[float]] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        return {
            "spec": self.spec.to_dict(),
            "generator": self.generator.state_dict(),
            "discriminator": self.discriminator.state_dict(),
            "generator_ema": self.ema.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
        }


def new_state(spec: GanSpec, config: CreativesConfig, seed: int, device: torch.device) -> GanState:
    torch.manual_seed(seed)
    # Channels-last weights make oneDNN (CPU) and cuDNN (tensor cores) pick their faster NHWC kernels.
    generator = Generator(spec).to(device, memory_format=torch.channels_last)
    discriminator = Discriminator(spec).to(device, memory_format=torch.channels_last)
    ema = copy.deepcopy(generator).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    betas = (config.beta1, config.beta2)
    opt_g = torch.optim.Adam(generator.parameters(), lr=config.lr_g, betas=betas)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=config.lr_d, betas=betas)
    return GanState(spec, generator, discriminator, ema, opt_g, opt_d)


def load_weights(state: GanState, payload: Mapping[str, Any]) -> None:
    """Load a checkpoint or a champion artifact's weights and optimizer state into `state`."""
    state.generator.load_state_dict(payload["generator"])
    state.discriminator.load_state_dict(payload["discriminator"])
    state.ema.load_state_dict(payload["generator_ema"])
    state.opt_g.load_state_dict(payload["opt_g"])
    state.opt_d.load_state_dict(payload["opt_d"])


def warm_start_weights(state: GanState, payload: Mapping[str, Any]) -> str | None:
    """Load a champion's weights to continue from; None when its model differs in more than the class head.

    A champion trained without the class head still warm-starts a run that has one (and the other way round):
    the generator, its EMA and its optimizer load whole, the discriminator loads all but the head, and the
    discriminator's optimizer starts afresh, its state being laid out parameter by parameter. Returns what
    was loaded, in words.
    """
    saved = GanSpec(**payload["spec"])
    if dataclasses.replace(saved, class_head=state.spec.class_head) != state.spec:
        return None
    if saved == state.spec:
        load_weights(state, payload)
        return "all weights and both optimizers"
    state.generator.load_state_dict(payload["generator"])
    state.ema.load_state_dict(payload["generator_ema"])
    state.opt_g.load_state_dict(payload["opt_g"])
    # Not strict: the specs differ in the head alone (checked above), so only its keys can be absent or extra.
    state.discriminator.load_state_dict(payload["discriminator"], strict=False)
    return "the generator and the discriminator without its class head (a fresh head and discriminator optimizer)"


@contextmanager
def frozen(module: torch.nn.Module) -> Iterator[None]:
    """No weight gradients for `module` inside the block. The weights that were trainable are trainable again
    after it, even on an error; weights frozen before stay frozen."""
    trainable = [p for p in module.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in trainable:
            p.requires_grad_(True)


def uses_bf16(config: CreativesConfig, device: torch.device) -> bool:
    """`config.mixed_precision` resolved for `device`."""
    return native_bf16(device) if config.mixed_precision == "auto" else config.mixed_precision == "bf16"


def run_key(spec: GanSpec, config: CreativesConfig, seed: int, data_fingerprint: str, start: str | None) -> str:
    """What a checkpoint must match to be resumed: same model, data, seed, start point and recipe."""
    recipe = {
        "spec": spec.to_dict(),
        "seed": seed,
        "data": data_fingerprint,
        "start": start,
        "recipe": [config.batch_size, config.lr_g, config.lr_d, config.beta1, config.beta2, config.ema_decay],
        "augment": config.diffaugment,
        "consistency": config.consistency_weight,
        "class_loss": config.class_loss_weight,
        "precision": config.mixed_precision,
        "holdout": config.holdout_fraction,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def _save_checkpoint(state: GanState, path: Path, key: str, device: torch.device) -> None:
    payload = state.payload() | {"step": state.step, "key": key, "history": state.history}
    payload["rng_cpu"] = torch.get_rng_state()
    if device.type == "cuda":
        payload["rng_cuda"] = torch.cuda.get_rng_state(device)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(payload, tmp)
    tmp.replace(path)  # atomic: a kill mid-write leaves the previous checkpoint


def _try_resume(state: GanState, path: Path, key: str, device: torch.device) -> bool:
    if not path.exists():
        return False
    payload = torch.load(path, map_location=device, weights_only=True)
    if payload.get("key") != key:
        log.info("ignoring checkpoint %s: it belongs to another run (data, start point or recipe differ)", path)
        return False
    load_weights(state, payload)
    state.step = int(payload["step"])
    state.history = {k: list(v) for k, v in payload["history"].items()}
    torch.set_rng_state(payload["rng_cpu"].cpu())
    if device.type == "cuda" and "rng_cuda" in payload:
        torch.cuda.set_rng_state(payload["rng_cuda"].cpu(), device)
    log.info("resumed GAN training from %s at step %d", path, state.step)
    return True


def _critic(
    d: Discriminator, x: torch.Tensor, y: torch.Tensor, class_weight: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Realism logits [batch] (float32) and the class head's cross-entropy on `y` (0 when the weight is 0)."""
    if not class_weight:
        return d(x, y).float(), torch.zeros((), device=x.device)
    logits, classes = d.scores_and_classes(x, y)
    return logits.float(), F.cross_entropy(classes.float(), y)


def train_gan(
    state: GanState,
    images: torch.Tensor,
    labels: torch.Tensor,
    config: CreativesConfig,
    *,
    seed: int,
    device: torch.device,
    checkpoint: Path,
    key: str,
    steps: int | None = None,
    probe: Probe | None = None,
    probe_every: int = 0,
) -> dict[str, float]:
    """Train `state` up to `steps` (default config.train_steps) on images [n, c, h, w] in [-1, 1].

    Resumes from `checkpoint` when it carries the same `key`. Batches are drawn per step from a generator
    seeded by (seed, step), so a resumed run sees exactly the batches the uninterrupted one would.
    Returns timing figures; the loss (and probe) history stays on `state.history`.
    """
    target = config.train_steps if steps is None else steps
    policy = parse_policy(config.diffaugment)
    class_weight = config.class_loss_weight
    if class_weight and state.discriminator.classify is None:
        raise ConfigError(
            f"CreativesConfig.class_loss_weight is {class_weight} but the discriminator has no class head: "
            "build the model with GanSpec.from_task_config(config, n_classes)"
        )
    resumed_at = state.step if _try_resume(state, checkpoint, key, device) else None
    if resumed_at is None:
        torch.manual_seed(seed)
    images, labels = images.to(device), labels.to(device)
    n = len(images)
    g, d = state.generator.train(), state.discriminator.train()
    # Weights, optimizer state and the EMA stay float32; only the forward passes run in bfloat16.
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=uses_bf16(config, device))
    started, first_step = time.perf_counter(), state.step
    probe_seconds = 0.0  # spent measuring, not training: left out of the timing figures
    window: dict[str, float] = {"d_loss": 0.0, "g_loss": 0.0, "d_real": 0.0, "d_fake": 0.0}
    if class_weight:
        window |= {"class_real": 0.0, "class_fake": 0.0}  # the class head's cross-entropy
    # Curves get about 50 points whatever the run length; the log line comes every `log_every` steps.
    record_every = max(1, min(config.log_every, target // 50))
    last_record = state.step
    progress = Progress(log, "GAN training", target, "steps", start=state.step)
    while state.step < target:
        batch_gen = torch.Generator().manual_seed(seed * 1_000_003 + state.step)
        index = torch.randint(n, (config.batch_size,), generator=batch_gen).to(device)
        real, y = images[index], labels[index]
        z = torch.randn(config.batch_size, state.spec.z_dim, generator=batch_gen).to(device)
        with autocast:
            fake = g(z, y)  # [batch, c, h, w]; its graph is reused for the generator step
            fake_d = fake.detach()
            real_logits, real_class_loss = _critic(d, diff_augment(real, policy), y, class_weight)
            fake_logits = d(diff_augment(fake_d, policy), y).float()
            # The class head learns from real images only: taught on fakes it would learn the generator's
            # mistakes as the category (AC-GAN's known failure) instead of pulling the fakes towards it.
            d_loss = hinge_d_loss(real_logits, fake_logits) + class_weight * real_class_loss
            if config.consistency_weight:
                # With DiffAugment on, the logits are of augmented images: the penalty then ties two random
                # views of each image together (one augmented, one shifted) instead of the image and its shift.
                d_loss = d_loss + config.consistency_weight * (
                    consistency_penalty(d, real, y, real_logits) + consistency_penalty(d, fake_d, y, fake_logits)
                )
        state.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        state.opt_d.step()

        # The generator step needs the discriminator's input gradients only: frozen, its weight gradients
        # (discarded by the next zero_grad anyway) are not computed.
        with frozen(d):
            with autocast:
                fake_logits_g, fake_class_loss = _critic(d, diff_augment(fake, policy), y, class_weight)
            g_loss = hinge_g_loss(fake_logits_g) + class_weight * fake_class_loss
            state.opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
        state.opt_g.step()
        # EMA warm-up (as in timm's ModelEmaV2 / Karras et al.): early averages must not be dominated by the
        # random initial weights, or a short run's EMA generator would still be mostly noise.
        update_ema(state.ema, g, min(config.ema_decay, (1 + state.step) / (10 + state.step)))
        state.step += 1

        window["d_loss"] += float(d_loss.detach())
        window["g_loss"] += float(g_loss.detach())
        window["d_real"] += float(real_logits.detach().mean())
        window["d_fake"] += float(fake_logits.detach().mean())
        if class_weight:
            window["class_real"] += float(real_class_loss.detach())
            window["class_fake"] += float(fake_class_loss.detach())
        if state.step % record_every == 0 or state.step == target:
            count = state.step - last_record
            for k, v in window.items():
                state.history.setdefault(k, []).append(v / count)
            state.history.setdefault("step", []).append(float(state.step))
            window, last_record = dict.fromkeys(window, 0.0), state.step
        if state.step % config.log_every == 0 or state.step == target:
            rate = (state.step - first_step) * config.batch_size / (time.perf_counter() - started - probe_seconds)
            latest = {k: state.history[k][-1] for k in window}
            classes = ""
            if class_weight:
                classes = f" class CE real {latest['class_real']:.3f} fake {latest['class_fake']:.3f}"
            log.info(
                "GAN step %d/%d: d_loss %.3f g_loss %.3f D(real) %.2f D(fake) %.2f%s, %.0f images/s",
                state.step,
                target,
                latest["d_loss"],
                latest["g_loss"],
                latest["d_real"],
                latest["d_fake"],
                classes,
                rate,
            )
        if probe is not None and probe_every and (state.step % probe_every == 0 or state.step == target):
            probe_started = time.perf_counter()
            for k, v in probe(state.ema).items():
                state.history.setdefault(f"probe_{k}", []).append(float(v))
            state.history.setdefault("probe_step", []).append(float(state.step))
            probe_seconds += time.perf_counter() - probe_started
        if state.step % config.checkpoint_every == 0 or state.step == target:
            _save_checkpoint(state, checkpoint, key, device)
        progress.advance()
    seconds = time.perf_counter() - started - probe_seconds
    trained = state.step - first_step
    epochs = trained * config.batch_size / max(n, 1)
    return {
        "steps": float(state.step),
        "steps_this_call": float(trained),
        "resumed_at_step": float(resumed_at) if resumed_at is not None else -1.0,
        "seconds": seconds,
        "epochs": epochs,
        "seconds_per_epoch": seconds / epochs if epochs else 0.0,
        "images_per_second": trained * config.batch_size / seconds if seconds else 0.0,
        "probe_seconds": probe_seconds,
    }
