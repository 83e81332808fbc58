"""Balanced consistency regularisation of the discriminator (bCR: Zhao et al., "Improved Consistency
Regularization for GANs", AAAI 2021; after Zhang et al., ICLR 2020).

The discriminator is penalised when its score of an image moves under a small shift of that image, for real
and generated images alike. Unlike DiffAugment, the generator is never trained through the shift, so it
cannot leak into the generated products; what changes is how smooth a critic the generator learns from.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F

Critic = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def shift(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Each image moved by up to `ratio` of its size in each direction (CR's translation, 4 pixels on 32).

    The edge pixels are repeated into the uncovered border, so a black (Fashion-MNIST) or white (a product
    photo) background stays the background. Randomness comes from torch's global generator.
    """
    n, _, h, w = x.shape
    s = int(h * ratio + 0.5)
    padded = F.pad(x, [s, s, s, s], mode="replicate")  # [n, c, h + 2s, w + 2s]
    dy = torch.randint(0, 2 * s + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(0, 2 * s + 1, (n, 1, 1), device=x.device)
    rows = (torch.arange(h, device=x.device).view(1, h, 1) + dy).expand(n, h, w)  # [n, h, w]
    cols = (torch.arange(w, device=x.device).view(1, 1, w) + dx).expand(n, h, w)
    batch = torch.arange(n, device=x.device).view(n, 1, 1).expand(n, h, w)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # [n, c, h, w]


def consistency_penalty(
    critic: Critic, images: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor
) -> torch.Tensor:
    """Mean squared change of the critic's logits ([batch], already computed on `images`) under `shift`."""
    return (critic(shift(images), labels).float() - logits).square().mean()
