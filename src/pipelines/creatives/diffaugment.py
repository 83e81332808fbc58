"""DiffAugment (Zhao et al., NeurIPS 2020): the same differentiable augmentation on real and fake images.

Augmenting both what the discriminator sees and what the generator is trained through keeps a small
store's few hundred product images from being memorised by the discriminator, without leaking the
augmentation into the generated images. Translation and cutout as in the paper; colour is left out
because the product images are grey-scale (it is available for RGB stores).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch.nn import functional as F

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
    """'translation,cutout' -> ('translation', 'cutout'); an unknown name is an error, '' means none."""
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise ValueError(f"unknown DiffAugment policy {unknown}; known: {', '.join(POLICIES)}")
    return names


def diff_augment(x: torch.Tensor, policy: tuple[str, ...]) -> torch.Tensor:
    """Apply the policy's augmentations in order; randomness comes from torch's global generator."""
    for name in policy:
        x = _AUGMENTS[name](x)
    return x


def _color(x: torch.Tensor) -> torch.Tensor:
    n = x.shape[0]
    x = x + (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)  # brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) * 2) + mean  # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(n, 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + mean  # contrast


def translate(
    x: torch.Tensor, ratio: float = 0.125, padding: Literal["constant", "replicate"] = "constant"
) -> torch.Tensor:
    """Each image moved by up to `ratio` of its size along each axis (randomness from torch's global generator).

    The uncovered border is zeros with `padding` "constant" (DiffAugment's translation, as in the paper's
    code) or the repeated edge pixels with "replicate" (consistency regularisation's shift).
    """
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    padded = F.pad(x, [sw, sw, sh, sh], mode=padding)  # [n, c, h + 2sh, w + 2sw]
    top = torch.randint(0, 2 * sh + 1, (n, 1, 1), device=x.device)
    left = torch.randint(0, 2 * sw + 1, (n, 1, 1), device=x.device)
    rows = (torch.arange(h, device=x.device).view(1, h, 1) + top).expand(n, h, w)  # [n, h, w]
    cols = (torch.arange(w, device=x.device).view(1, 1, w) + left).expand(n, h, w)
    batch = torch.arange(n, device=x.device).view(n, 1, 1).expand(n, h, w)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # [n, c, h, w]


def _cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (rows >= cy - ch // 2) & (rows < cy - ch // 2 + ch) & (cols >= cx - cw // 2) & (cols < cx - cw // 2 + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)  # [n, c, h, w]


_AUGMENTS = {"color": _color, "translation": translate, "cutout": _cutout}
