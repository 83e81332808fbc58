"""Balanced consistency regularisation of the discriminator (bCR: Zhao et al., "Improved Consistency
Regularization for GANs", AAAI 2021; after Zhang et al., ICLR 2020).

The discriminator is penalised when its score of an image moves under a small shift of that image, for real
and generated images alike. Unlike DiffAugment, the generator is never trained through the shift, so it
cannot leak into the generated products; what changes is how smooth a critic the generator learns from.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pipelines.creatives.diffaugment import translate

Critic = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def shift(x: torch.Tensor) -> torch.Tensor:
    """Each image moved by up to an eighth of its size (CR's translation, 4 pixels on 32).

    The edge pixels are repeated into the uncovered border, so a black (Fashion-MNIST) or white (a product
    photo) background stays the background.
    """
    return translate(x, padding="replicate")


def consistency_penalty(
    critic: Critic, images: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor
) -> torch.Tensor:
    """Mean squared change of the critic's logits ([batch], already computed on `images`) under `shift`."""
    return (critic(shift(images), labels).float() - logits).square().mean()
