"""Generate candidates for one request from a fixed seed, score them, keep the best diverse few.

score = confidence_weight * P(classifier says the requested category)
      + realism_weight * sigmoid(discriminator logit)
Selection is greedy maximal-marginal-relevance: each next pick maximises its score minus
`diversity_weight` times its highest cosine similarity (classifier features) to those already kept,
so the top k are not k near-copies of the same shirt.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F

from pipelines.creatives.bundle import Bundle
from pipelines.creatives.config import CreativesConfig


@dataclass(frozen=True)
class Pick:
    pixels: np.ndarray  # uint8 [channels, h, w]
    rank: int
    candidate: int  # index among the generated candidates (reproducible from the seed)
    confidence: float
    realism: float
    score: float
    diversity: float  # 1 - highest cosine similarity to the other kept images

    def scores(self) -> dict[str, float]:
        return {
            "candidate": self.candidate,
            "confidence": round(self.confidence, 6),
            "realism": round(self.realism, 6),
            "score": round(self.score, 6),
            "diversity": round(self.diversity, 6),
        }


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[-1, 1] float -> uint8 [n, c, h, w], rounded the same way every time."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).cpu().numpy()


@torch.no_grad()
def generate(bundle: Bundle, class_index: int, n: int, seed: int, device: torch.device) -> torch.Tensor:
    """n images of one class from noise drawn on the CPU with `seed` (the same noise on any device)."""
    z = torch.randn(n, bundle.spec.z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    y = torch.full((n,), class_index, dtype=torch.int64, device=device)
    return bundle.generator(z, y)  # [n, c, h, w]


@torch.no_grad()
def select_top(bundle: Bundle, images: torch.Tensor, class_index: int, config: CreativesConfig) -> list[Pick]:
    """Score `images` (all of class `class_index`) and keep the top `config.top_k` by MMR."""
    # Score the pixels that will be shown (after uint8 rounding), not the float output.
    pixels = to_uint8(images)
    shown = torch.from_numpy(pixels.astype(np.float32) / 127.5 - 1.0).to(images.device)
    y = torch.full((len(shown),), class_index, dtype=torch.int64, device=shown.device)
    features = bundle.classifier.features(shown)  # [n, feature_dim]
    confidence = F.softmax(bundle.classifier.head(features), dim=1)[:, class_index].cpu()
    realism = torch.sigmoid(bundle.discriminator(shown, y)).cpu()
    base = config.confidence_weight * confidence + config.realism_weight * realism  # [n]
    unit = F.normalize(features, dim=1).cpu().double()
    similarity = unit @ unit.T  # [n, n]

    chosen: list[int] = []
    for _ in range(min(config.top_k, len(base))):
        penalty = similarity[:, chosen].max(dim=1).values if chosen else torch.zeros(len(base), dtype=torch.float64)
        gain = base.double() - config.diversity_weight * penalty.clamp(min=0)
        gain[chosen] = -torch.inf
        chosen.append(int(gain.argmax()))
    picks = []
    for rank, index in enumerate(chosen, start=1):
        others = [c for c in chosen if c != index]
        nearest = float(similarity[index, others].max()) if others else 0.0
        picks.append(
            Pick(
                pixels[index],
                rank,
                index,
                float(confidence[index]),
                float(realism[index]),
                float(base[index]),
                1.0 - nearest,
            )
        )
    return picks
