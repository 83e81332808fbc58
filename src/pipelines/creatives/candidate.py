"""Train and evaluate one candidate generator for a business date (the creatives recipe's `fit`).

Warm-starts from the parent (the champion of the day before) when its model and categories match, and
resumes an interrupted run from its checkpoint. The evaluation classifier is trained once per catalogue
(content fingerprint) and cached, so consecutive candidates are judged by the same classifier.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from sqlalchemy.engine import Engine

from pipelines.compute import derive_seed
from pipelines.creatives.bundle import load_bundle, make_payload
from pipelines.creatives.classifier import ClassifierSpec, ImageClassifier, train_classifier
from pipelines.creatives.config import MODEL_NAME, CreativesConfig
from pipelines.creatives.data import ImageSet, holdout_mask, load_item_images
from pipelines.creatives.evaluate import evaluate
from pipelines.creatives.gan import GanSpec
from pipelines.creatives.plots import plot_training_curves
from pipelines.creatives.train import GanState, new_state, run_key, train_gan, uses_bf16, warm_start_weights
from pipelines.errors import DataError
from pipelines.modeltask import Candidate, Checkpoint, Context, Served
from pipelines.registry import PromotionRule, artifact_dir, latest_run_before, load_artifact

log = logging.getLogger(__name__)


def promotion_rule(config: CreativesConfig) -> PromotionRule:
    """Gate on conditional accuracy; compare Frechet distance relative to its real-vs-real floor."""
    return PromotionRule("frechet_ratio", config.promotion_tolerance, higher_is_better=False, minimums=config.gate)


def _classifier(
    data: ImageSet, train: ImageSet, config: CreativesConfig, root: Path, device: torch.device
) -> ImageClassifier:
    """The catalogue's evaluation classifier, trained on the training split once and cached by content."""
    spec = ClassifierSpec(len(data.classes), config.image_size, config.image_channels, config.classifier_channels)
    recipe = json.dumps([spec.to_dict(), config.classifier_epochs, config.classifier_batch_size, config.classifier_lr])
    name = hashlib.sha256(f"{data.fingerprint}{config.holdout_fraction}{recipe}".encode()).hexdigest()[:20]
    path = root / "models" / MODEL_NAME / "classifiers" / f"classifier-{name}.pt"
    model = ImageClassifier(spec)
    if path.exists():
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        log.info("evaluation classifier loaded from %s", path)
        return model.to(device).eval()
    model = train_classifier(
        train.images,
        train.labels,
        spec,
        epochs=config.classifier_epochs,
        batch_size=config.classifier_batch_size,
        lr=config.classifier_lr,
        seed=derive_seed(MODEL_NAME, "classifier", name),
        device=device,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)
    return model


def fit_candidate(ctx: Context, config: CreativesConfig, parent: Served[Any] | None) -> Candidate:
    """Train a candidate for the date, warm-started from `parent`, judged with it on one evaluation."""
    engine, as_of, artifacts, device = ctx.engine, ctx.as_of, ctx.settings.artifacts, ctx.device
    data = load_item_images(engine, size=config.image_size, channels=config.image_channels)
    held_mask = holdout_mask(data.item_ids, config.holdout_fraction)
    train, held = data.subset(~held_mask), data.subset(held_mask)
    if len(held) < 2 or len(train) < len(data.classes):
        raise DataError(
            f"item_images: {len(data)} images in {len(data.classes)} categories are too few to train and "
            f"evaluate a conditional GAN (held out {len(held)}, training {len(train)})"
        )
    classifier = _classifier(data, train, config, artifacts, device)

    spec = GanSpec.from_task_config(config, len(data.classes))
    seed = derive_seed(MODEL_NAME, as_of, "train")
    state = new_state(spec, config, seed, device)
    start, start_reason = _warm_start(engine, as_of, state, parent, data, config)
    checkpoint = artifact_dir(artifacts, MODEL_NAME, as_of) / "resume-checkpoint.pt"
    key = run_key(spec, config, seed, data.fingerprint, start)
    log.info("training the ad-creative GAN on %d images (%s)", len(train), start_reason)
    stats = train_gan(
        state, train.images, train.labels, config, seed=seed, device=device, checkpoint=checkpoint, key=key
    )
    protocol_args = {
        "classifier": classifier,
        "train": (train.images, train.labels),
        "held_out": (held.images, held.labels),
        "eval_samples": config.eval_samples,
        "seed": derive_seed(MODEL_NAME, "eval"),
        "device": device,
    }
    metrics = evaluate(state.ema, **protocol_args)
    parent_metrics = None
    if parent is not None and tuple(parent.model.payload["classes"]) == data.classes:
        # The parent judged by this run's classifier on this run's split: the same evaluation.
        parent_metrics = evaluate(load_bundle(parent.model.payload, parent.version, device).generator, **protocol_args)
    payload = make_payload(
        state.payload(),
        classifier,
        data.classes,
        as_of=as_of.isoformat(),
        data_fingerprint=data.fingerprint,
        metrics=metrics,
        train_config=dataclasses.asdict(config),
    )
    checkpoint.unlink(missing_ok=True)  # trained: a rerun of this date starts from its parent again
    history = state.history
    return Candidate(
        checkpoint=Checkpoint.from_payload(payload),
        metrics=metrics,
        parent_metrics=parent_metrics,
        params=dataclasses.asdict(config)
        | {
            "seed": seed,
            "train_images": len(train),
            "steps": stats["steps"],
            "precision": "bfloat16" if uses_bf16(config, device) else "float32",
        },
        protocol={
            "reference": "held-out real images (hash of item_id), never seen by classifier or GAN",
            "floor": "real training images vs the same reference, same sample size",
            "features": "penultimate layer of a CNN trained on the store's training images (not Inception: not FID)",
            "data_fingerprint": data.fingerprint,
            "warm_start_from": start,
        },
        training={
            "warm_start_from": start,
            "images": len(data),
            "train_images": len(train),
            "held_out_images": len(held),
            "categories": len(data.classes),
            "epochs": round(stats["epochs"], 3),
            "steps": int(stats["steps"]),
            "resumed_at_step": int(stats["resumed_at_step"]),
            "seconds_per_epoch": round(stats["seconds_per_epoch"], 2),
            "images_per_second": round(stats["images_per_second"], 1),
        },
        plot=lambda path, version: plot_training_curves(history, path, f"{MODEL_NAME} {as_of}: {version}"),
    )


def _warm_start(
    engine: Engine,
    as_of: dt.date,
    state: GanState,
    parent: Served[Any] | None,
    data: ImageSet,
    config: CreativesConfig,
) -> tuple[str | None, str]:
    """Load the parent's weights and optimizer state when compatible; (version or None, why).

    Before any generator has passed the gate there is no parent: training then continues the newest
    earlier candidate, so short daily runs add up until one passes instead of restarting from noise.
    """
    if not config.warm_start:
        return None, "cold start: warm_start is off"
    if parent is not None:
        source, payload = parent.run, parent.model.payload
    else:
        source = latest_run_before(engine, MODEL_NAME, as_of)
        if source is None or source.artifact_path is None:
            return None, "cold start: no champion or earlier candidate yet"
        from pipelines.creatives.task import gan_payload

        payload = gan_payload(Checkpoint.from_payload(load_artifact(source.artifact_path, source.artifact_sha256)))
    loaded = warm_start_weights(state, payload) if tuple(payload["classes"]) == data.classes else None
    if loaded is None:
        return None, f"cold start: {source.version} has another model size or category set"
    for optimizer, lr in ((state.opt_g, config.lr_g), (state.opt_d, config.lr_d)):
        for group in optimizer.param_groups:
            group["lr"] = lr  # this run's learning rate, not the one saved with the parent's optimizer
    return source.version, f"warm start from {source.status} {source.version}: {loaded}"
