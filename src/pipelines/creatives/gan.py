"""Class-conditional GAN for product images: conditional-BN generator, projection discriminator.

Follows the small-image recipe of Miyato & Koyama, "cGANs with Projection Discriminator" (ICLR 2018)
and Miyato et al., "Spectral Normalization for GANs" (ICLR 2018): the generator conditions every batch
norm on the class (class-conditional batch norm) and also sees a class embedding beside the noise, the
discriminator is spectrally normalised and scores
`psi(h) + <embed(y), h>` (the projection head). The discriminator can also carry an auxiliary class head
(AC-GAN, Odena et al., ICML 2017) on the same features, trained on real images and used by the generator
to make its products recognisable as their category. Deliberate deviations, for 2-core CPU training:
plain (non-residual) upsampling blocks and a 4-conv discriminator; 28x28 or 32x32 images. Before its last
conv the discriminator can append a minibatch-stddev channel (Karras et al., ICLR 2018) computed per
class rather than per group of images, so that a generator drawing one prototype per class is caught.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import spectral_norm

if TYPE_CHECKING:
    from pipelines.creatives.config import CreativesConfig


@dataclass(frozen=True)
class GanSpec:
    """Everything needed to rebuild the pair from a checkpoint alone.

    New models come from `from_task_config`: CreativesConfig holds the one set of defaults.
    """

    n_classes: int
    image_size: int
    image_channels: int
    z_dim: int
    g_channels: int
    d_channels: int
    # Absent from artifacts saved before these settings existed: those models were built without them.
    minibatch_stddev: bool = False  # the discriminator sees each class's spread in the batch
    class_head: bool = False  # an auxiliary class head on the discriminator's features

    @classmethod
    def from_task_config(cls, config: CreativesConfig, n_classes: int) -> GanSpec:
        """The pair a run of `config` trains on `n_classes` categories."""
        return cls(
            n_classes=n_classes,
            image_size=config.image_size,
            image_channels=config.image_channels,
            z_dim=config.z_dim,
            g_channels=config.g_channels,
            d_channels=config.d_channels,
            minibatch_stddev=config.minibatch_stddev,
            class_head=config.class_loss_weight > 0,
        )

    def __post_init__(self) -> None:
        if self.image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4 (two 2x upsamplings), got {self.image_size}")
        if self.n_classes < 1:
            raise ValueError(f"a conditional GAN needs at least one class, got {self.n_classes}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose scale and shift are looked up per class (gamma starts at 1, beta at 0)."""

    def __init__(self, channels: int, n_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gamma = nn.Embedding(n_classes, channels)
        self.beta = nn.Embedding(n_classes, channels)
        nn.init.ones_(self.gamma.weight)
        nn.init.zeros_(self.beta.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gamma = self.gamma(y)[:, :, None, None]  # [batch, channels, 1, 1]
        beta = self.beta(y)[:, :, None, None]
        return gamma * self.bn(x) + beta


def upsample_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """`conv2d(interpolate(x, 2x nearest), weight, bias, padding=1)` for a 3x3 `weight`, computed exactly
    as one stride-2 transposed conv with a 4x4 kernel.

    Each output pixel of the nearest upsampling sees only 2x2 distinct input pixels, so the 3x3 taps fold
    into [w0, w0 + w1, w1 + w2, w2] along each axis: 16 multiply-adds per input pixel and channel pair
    instead of 36, and no upsampled copy. The parameters stay those of the 3x3 conv (checkpoints load as
    before). Timings: docs/model-notes.md.
    """
    if weight.shape[-2:] != (3, 3):  # the folding below is exact for 3x3 kernels only
        raise ValueError(f"upsample_conv2d folds a 3x3 kernel, got {tuple(weight.shape[-2:])}")
    folded = F.pad(weight, (0, 1, 0, 1)) + F.pad(weight, (1, 0, 0, 1))  # columns folded, a zero 4th row
    folded = folded + F.pad(folded[:, :, :-1], (0, 0, 1, 0))  # rows folded the same way
    kernel = folded.flip(2, 3).transpose(0, 1)  # [in, out, 4, 4]: a transposed conv correlates flipped
    return F.conv_transpose2d(x, kernel, bias, stride=2, padding=1)


class UpBlock(nn.Module):
    """CBN -> ReLU -> 2x nearest upsampling -> 3x3 conv (no checkerboard artefacts of learned transposed
    convs: the 4x4 kernel of `upsample_conv2d` is tied to a 3x3 conv)."""

    def __init__(self, c_in: int, c_out: int, n_classes: int) -> None:
        super().__init__()
        self.norm = ConditionalBatchNorm2d(c_in, n_classes)
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return upsample_conv2d(F.relu(self.norm(x, y)), self.conv.weight, self.conv.bias)


class Generator(nn.Module):
    """(noise [batch, z_dim], class [batch]) -> image [batch, channels, size, size] in [-1, 1]."""

    def __init__(self, spec: GanSpec) -> None:
        super().__init__()
        self.spec = spec
        ch, base = spec.g_channels, spec.image_size // 4
        self.base = base
        # The class also enters through an embedding concatenated to the noise: conditional BN alone starts
        # class-blind (gamma 1, beta 0) and takes thousands of steps to pick the class up on a CPU budget.
        self.class_embed = nn.Embedding(spec.n_classes, spec.z_dim)
        self.project = nn.Linear(2 * spec.z_dim, 4 * ch * base * base)
        self.up1 = UpBlock(4 * ch, 2 * ch, spec.n_classes)
        self.up2 = UpBlock(2 * ch, ch, spec.n_classes)
        self.norm = ConditionalBatchNorm2d(ch, spec.n_classes)
        self.to_image = nn.Conv2d(ch, spec.image_channels, 3, padding=1)

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        zy = torch.cat([z, self.class_embed(y)], dim=1)  # [batch, 2 * z_dim]
        h = self.project(zy).view(z.shape[0], -1, self.base, self.base)  # [batch, 4ch, size/4, size/4]
        h = self.up2(self.up1(h, y), y)  # [batch, ch, size, size]
        return torch.tanh(self.to_image(F.relu(self.norm(h, y))))


class MinibatchStddev(nn.Module):
    """Appends one channel: the feature stddev among the batch's images of the same class.

    After Karras et al. (ProGAN, ICLR 2018, sec. 3), but grouped by class: a per-image discriminator
    cannot see that every fake of a class is the same image, and ProGAN's class-blind groups cannot
    either in a conditional GAN, because a group of mixed classes is as spread out with one prototype
    per class as with real images (docs/model-notes.md). An image alone in its class gets ~0.
    """

    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.n_classes = n_classes

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        flat = x.flatten(1)  # [n, c * h * w]
        onehot = F.one_hot(y, self.n_classes).to(x.dtype)  # [n, classes]
        counts = onehot.sum(0).clamp(min=1)[:, None]  # [classes, 1]
        mean = onehot.T @ flat / counts  # [classes, c * h * w]
        var = onehot.T @ (flat - mean[y]).square() / counts  # [classes, c * h * w]
        stat = (var + 1e-8).sqrt().mean(1)[y]  # [n]: the spread of each image's class
        return torch.cat([x, stat[:, None, None, None].expand(n, 1, h, w)], dim=1)  # [n, c + 1, h, w]


class Discriminator(nn.Module):
    """(image, class) -> realism logit [batch]; spectral norm on every weight, projection head."""

    def __init__(self, spec: GanSpec) -> None:
        super().__init__()
        self.spec = spec
        ch = spec.d_channels
        self.blocks = nn.ModuleList(
            [
                spectral_norm(nn.Conv2d(spec.image_channels, ch, 3, padding=1)),
                spectral_norm(nn.Conv2d(ch, 2 * ch, 4, stride=2, padding=1)),
                spectral_norm(nn.Conv2d(2 * ch, 4 * ch, 4, stride=2, padding=1)),
                spectral_norm(nn.Conv2d(4 * ch + int(spec.minibatch_stddev), 4 * ch, 3, padding=1)),
            ]
        )
        # The batch statistic enters before the last conv, at the coarsest resolution, as in ProGAN.
        self.stddev = MinibatchStddev(spec.n_classes) if spec.minibatch_stddev else None
        self.linear = spectral_norm(nn.Linear(4 * ch, 1))
        self.embed = spectral_norm(nn.Embedding(spec.n_classes, 4 * ch))
        self.classify = spectral_norm(nn.Linear(4 * ch, spec.n_classes)) if spec.class_head else None

    def features(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = x
        for block in self.blocks[:-1]:
            h = F.leaky_relu(block(h), 0.1)
        if self.stddev is not None:
            h = self.stddev(h, y)  # [batch, 4ch + 1, size/4, size/4]
        h = F.leaky_relu(self.blocks[-1](h), 0.1)
        return h.sum(dim=(2, 3))  # [batch, 4ch]: global sum pooling as in the projection paper

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.score(self.features(x, y), y)

    def score(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Realism logits [batch] from features [batch, 4ch]: the projection head."""
        return self.linear(h).squeeze(1) + (self.embed(y) * h).sum(dim=1)

    def scores_and_classes(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Realism logits [batch] and the class head's logits [batch, n_classes] from one pass."""
        if self.classify is None:
            raise ValueError("this discriminator was built without a class head (GanSpec.class_head)")
        h = self.features(x, y)
        return self.score(h, y), self.classify(h)


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def hinge_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    return -fake_logits.mean()


@torch.no_grad()
def update_ema(ema: Generator, live: Generator, decay: float) -> None:
    """EMA of the weights and of the floating buffers (the batch-norm running statistics) alike."""
    for target, source in zip(ema.parameters(), live.parameters(), strict=True):
        target.lerp_(source, 1.0 - decay)
    for target, source in zip(ema.buffers(), live.buffers(), strict=True):
        if target.dtype.is_floating_point:
            target.lerp_(source, 1.0 - decay)
        else:
            target.copy_(source)
