"""Train, evaluate and register one candidate generator for a business date.

Warm-starts from the champion that was in force on the date when its model and categories match, and
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
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
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
from pipelines.registry import (
    ModelRun,
    PromotionRule,
    artifact_dir,
    champion,
    get_run,
    load_artifact,
    register_and_decide,
    save_artifact,
    version_id,
)

log = logging.getLogger(__name__)


def champion_as_of(engine: Engine, as_of: dt.date) -> ModelRun | None:
    """The generator that was champion for `as_of`: the latest promoted run trained on or before it.

    For the newest date this is the current champion; for a backfill it is the champion of that time,
    so a backfilled campaign date regenerates the creatives (and records the version) it had.
    """
    query = sa.text(
        """SELECT version FROM model_runs
           WHERE model_name = :m AND promoted_at IS NOT NULL AND as_of_date <= :d
           ORDER BY as_of_date DESC, promoted_at DESC LIMIT 1"""
    )
    with engine.connect() as conn:
        version = conn.execute(query, {"m": MODEL_NAME, "d": as_of}).scalar()
    return None if version is None else get_run(engine, MODEL_NAME, version)


def latest_trained_date(engine: Engine) -> dt.date | None:
    with engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT max(as_of_date) FROM model_runs WHERE model_name = :m"), {"m": MODEL_NAME}
        ).scalar()


def _latest_candidate(engine: Engine, as_of: dt.date) -> ModelRun | None:
    query = sa.text(
        """SELECT version FROM model_runs WHERE model_name = :m AND as_of_date < :d AND artifact_path IS NOT NULL
           ORDER BY as_of_date DESC, created_at DESC LIMIT 1"""
    )
    with engine.connect() as conn:
        version = conn.execute(query, {"m": MODEL_NAME, "d": as_of}).scalar()
    return None if version is None else get_run(engine, MODEL_NAME, version)


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


def train_candidate(
    engine: Engine,
    as_of: dt.date,
    artifacts: Path,
    config: CreativesConfig,
    device: torch.device,
    *,
    force_promote: bool = False,
) -> dict[str, Any]:
    """Train a candidate for `as_of`, register it and return the training part of the task summary."""
    started = time.perf_counter()
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
    current = champion(engine, MODEL_NAME)
    current_payload = None if current is None else load_artifact(current.artifact_path, current.artifact_sha256)
    start, start_reason = _warm_start(engine, as_of, state, current, current_payload, data, config)
    out_dir = artifact_dir(artifacts, MODEL_NAME, as_of)
    checkpoint = out_dir / "resume-checkpoint.pt"
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
    champion_metrics = None
    if current_payload is not None and tuple(current_payload["classes"]) == data.classes:
        # The champion judged by this run's classifier on this run's split: the same evaluation.
        champion_metrics = evaluate(load_bundle(current_payload, current.version, device).generator, **protocol_args)

    payload = make_payload(
        state.payload(),
        classifier,
        data.classes,
        as_of=as_of.isoformat(),
        data_fingerprint=data.fingerprint,
        metrics=metrics,
        train_config=dataclasses.asdict(config),
    )
    path, sha = save_artifact(payload, out_dir)
    version = version_id(MODEL_NAME, as_of, sha)
    protocol = {
        "reference": "held-out real images (hash of item_id), never seen by classifier or GAN",
        "floor": "real training images vs the same reference, same sample size",
        "features": "penultimate layer of a CNN trained on the store's training images (not Inception: not FID)",
        "data_fingerprint": data.fingerprint,
        "warm_start_from": start,
    }
    params = dataclasses.asdict(config) | {
        "seed": seed,
        "train_images": len(train),
        "steps": stats["steps"],
        "precision": "bfloat16" if uses_bf16(config, device) else "float32",
    }
    run, decision = register_and_decide(
        engine,
        model_name=MODEL_NAME,
        version=version,
        as_of_date=as_of,
        metrics=metrics,
        params=params,
        protocol=protocol,
        artifact_path=path,
        artifact_sha256=sha,
        rule=promotion_rule(config),
        force=force_promote,
        champion_metrics=champion_metrics,
    )
    curves = plot_training_curves(state.history, out_dir / "training_curves.png", f"{MODEL_NAME} {as_of}")
    checkpoint.unlink(missing_ok=True)  # registered: a rerun of this date no longer trains
    log.info("candidate %s: %s (%s)", version, run.status, decision.reason)
    return {
        "trained": True,
        "candidate": version,
        "status": run.status,
        "decision": decision.reason,
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
        "metrics": {k: round(v, 5) for k, v in metrics.items()},
        "champion_metrics_same_evaluation": None
        if champion_metrics is None
        else {k: round(v, 5) for k, v in champion_metrics.items()},
        "curves": None if curves is None else str(curves),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _warm_start(
    engine: Engine,
    as_of: dt.date,
    state: GanState,
    current: ModelRun | None,
    payload: dict[str, Any] | None,
    data: ImageSet,
    config: CreativesConfig,
) -> tuple[str | None, str]:
    """Load the champion's weights and optimizer state when compatible; (version or None, why).

    Before any generator has passed the gate there is no champion: training then continues the newest
    earlier candidate, so short daily runs add up until one passes instead of restarting from noise.
    """
    if not config.warm_start:
        return None, "cold start: warm_start is off"
    if current is None:
        current = _latest_candidate(engine, as_of)
        if current is None:
            return None, "cold start: no champion or earlier candidate yet"
        payload = load_artifact(current.artifact_path, current.artifact_sha256)
    if payload is None:
        return None, f"cold start: {current.version} has no artifact"
    loaded = warm_start_weights(state, payload) if tuple(payload["classes"]) == data.classes else None
    if loaded is None:
        return None, f"cold start: champion {current.version} has another model size or category set"
    for optimizer, lr in ((state.opt_g, config.lr_g), (state.opt_d, config.lr_d)):
        for group in optimizer.param_groups:
            group["lr"] = lr  # this run's learning rate, not the one saved with the champion's optimizer
    return current.version, f"warm start from {current.status} {current.version}: {loaded}"
