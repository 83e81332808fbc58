"""The registered artifact: GAN pair, EMA generator, optimizers and the evaluation classifier in one file.

Keeping the classifier that evaluated a generator inside its artifact makes the artifact self-describing
and makes creative scoring reproducible: a backfill scores with exactly the classifier it was scored with
the first time, whatever has been trained since.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from pipelines.creatives.classifier import ClassifierSpec, ImageClassifier
from pipelines.creatives.gan import Discriminator, GanSpec, Generator


@dataclass
class Bundle:
    """A generator ready for generation and scoring, rebuilt from an artifact's payload."""

    version: str
    spec: GanSpec
    classes: tuple[str, ...]
    generator: Generator  # the EMA weights: the ones that generate
    discriminator: Discriminator
    classifier: ImageClassifier
    payload: Mapping[str, Any]

    def class_index(self, category: str) -> int:
        return self.classes.index(category)


def make_payload(
    gan_payload: Mapping[str, Any],
    classifier: ImageClassifier,
    classes: tuple[str, ...],
    *,
    as_of: str,
    data_fingerprint: str,
    metrics: Mapping[str, float],
    train_config: Mapping[str, Any],
) -> dict[str, Any]:
    return {
        **gan_payload,
        "classifier": classifier.state_dict(),
        "classifier_spec": classifier.spec.to_dict(),
        "classes": list(classes),
        "as_of_date": as_of,
        "data_fingerprint": data_fingerprint,
        "metrics": dict(metrics),
        "train_config": dict(train_config),
    }


def load_bundle(payload: Mapping[str, Any], version: str, device: torch.device) -> Bundle:
    spec = GanSpec(**payload["spec"])
    generator = Generator(spec)
    generator.load_state_dict(payload["generator_ema"])
    discriminator = Discriminator(spec)
    discriminator.load_state_dict(payload["discriminator"])
    classifier = ImageClassifier(ClassifierSpec(**payload["classifier_spec"]))
    classifier.load_state_dict(payload["classifier"])
    for module in (generator, discriminator, classifier):
        module.to(device).eval()
    return Bundle(version, spec, tuple(payload["classes"]), generator, discriminator, classifier, payload)
