"""Generator/discriminator shapes and conditioning, spectral norm, EMA, DiffAugment, metric formulas."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch.nn import functional as F
from torch.nn.utils import parametrize

from pipelines.creatives.config import CreativesConfig
from pipelines.creatives.diffaugment import diff_augment, parse_policy
from pipelines.creatives.gan import (
    Discriminator,
    GanSpec,
    Generator,
    MinibatchStddev,
    update_ema,
    upsample_conv2d,
)
from pipelines.creatives.metrics import (
    frechet_distance,
    kernel_inception_distance,
    precision_recall,
    within_class_spread,
)

SPEC = GanSpec.from_task_config(
    CreativesConfig(z_dim=16, g_channels=8, d_channels=8, minibatch_stddev=False, class_loss_weight=0.0), n_classes=4
)


def test_generator_shapes_range_and_class_conditioning() -> None:
    torch.manual_seed(0)
    g = Generator(SPEC).eval()
    with torch.no_grad():
        for gamma in (g.up1.norm.gamma, g.up2.norm.gamma, g.norm.gamma):
            gamma.weight.normal_(1.0, 0.5)  # trained class embeddings differ; fresh ones are all ones
        z = torch.randn(1, SPEC.z_dim).repeat(4, 1)
        x = g(z, torch.arange(4))
    assert x.shape == (4, 1, 28, 28)
    assert x.abs().max() <= 1.0
    # Same noise, different class: different images.
    assert all((x[i] - x[j]).abs().max() > 1e-3 for i in range(4) for j in range(i + 1, 4))


@pytest.mark.parametrize("size", [(7, 7), (5, 9)])
def test_upsample_conv_equals_nearest_upsampling_then_3x3_conv_in_value_and_gradient(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 4, *size, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(5, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(5, dtype=torch.float64, requires_grad=True)
    reference = F.conv2d(F.interpolate(x, scale_factor=2, mode="nearest"), weight, bias, padding=1)
    folded = upsample_conv2d(x, weight, bias)
    assert folded.shape == (3, 5, 2 * size[0], 2 * size[1])
    torch.testing.assert_close(folded, reference)
    upstream = torch.randn_like(reference)
    grads = torch.autograd.grad(reference, (x, weight, bias), upstream)
    torch.testing.assert_close(torch.autograd.grad(folded, (x, weight, bias), upstream), grads)


def test_upsample_conv_rejects_kernels_it_cannot_fold_exactly() -> None:
    with pytest.raises(ValueError, match="3x3 kernel"):
        upsample_conv2d(torch.zeros(1, 2, 4, 4), torch.zeros(3, 2, 5, 5), None)


def test_discriminator_scores_per_image_and_depends_on_the_class() -> None:
    torch.manual_seed(0)
    d = Discriminator(SPEC)
    x = torch.randn(3, 1, 28, 28)
    same = d(x, torch.tensor([0, 0, 0]))
    other = d(x, torch.tensor([1, 2, 3]))
    assert same.shape == (3,)
    assert (same - other).abs().min() > 0  # the projection head uses the class


def test_minibatch_stddev_appends_the_spread_of_each_images_class() -> None:
    layer = MinibatchStddev(n_classes=3)
    x = torch.zeros(4, 3, 2, 2)
    x[2] = 2.0
    out = layer(x, torch.tensor([0, 1, 0, 2]))  # images 0 and 2 share a class; 1 and 3 are alone in theirs
    assert out.shape == (4, 4, 2, 2)
    assert torch.equal(out[:, :3], x)
    assert torch.allclose(out[[0, 2], 3], torch.ones(2, 2, 2))  # std of {0, 2} is 1 everywhere
    assert torch.allclose(out[[1, 3], 3], torch.full((2, 2, 2), 1e-4))  # alone: sqrt(1e-8)


def test_discriminator_score_depends_on_same_class_images_only_with_minibatch_stddev() -> None:
    x = torch.randn(8, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    y = torch.arange(8) % 4  # image 0 shares class 0 with image 4 only
    for stddev in (True, False):
        torch.manual_seed(0)
        d = Discriminator(dataclasses.replace(SPEC, minibatch_stddev=stddev)).eval()
        same_class, other_class = x.clone(), x.clone()
        same_class[4] = x[0]  # image 0's class now holds two identical images
        other_class[1:4] = x[0]
        with torch.no_grad():
            score = d(x, y)[0]
            assert ((score - d(same_class, y)[0]).abs() > 1e-4) == stddev
            assert torch.allclose(score, d(other_class, y)[0])


def test_a_spec_saved_before_minibatch_stddev_rebuilds_the_discriminator_it_was_trained_with() -> None:
    saved = {k: v for k, v in SPEC.to_dict().items() if k != "minibatch_stddev"}  # an older artifact's spec
    spec = GanSpec(**saved)
    assert not spec.minibatch_stddev
    assert Discriminator(spec).blocks[-1].in_channels == 4 * SPEC.d_channels
    with_stddev = Discriminator(GanSpec(**saved | {"minibatch_stddev": True}))
    assert with_stddev.blocks[-1].in_channels == 4 * SPEC.d_channels + 1
    assert Discriminator(spec).state_dict().keys() == with_stddev.state_dict().keys()


def test_every_discriminator_weight_is_spectrally_normalised() -> None:
    d = Discriminator(SPEC)
    weighted = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear | torch.nn.Embedding)]
    assert len(weighted) == 6
    assert all(parametrize.is_parametrized(m, "weight") for m in weighted)
    d.train()
    for _ in range(30):  # power iteration converges: the conv's spectral norm is ~1 (of its reshaped matrix)
        d(torch.randn(2, 1, 28, 28), torch.zeros(2, dtype=torch.int64))
    sigma = torch.linalg.matrix_norm(d.linear.weight.detach(), ord=2)
    assert sigma == pytest.approx(1.0, abs=0.05)


def test_ema_tracks_weights_and_batch_norm_statistics() -> None:
    torch.manual_seed(0)
    live, ema = Generator(SPEC), Generator(SPEC)
    ema.load_state_dict(live.state_dict())
    live.train()(torch.randn(8, SPEC.z_dim), torch.arange(8) % 4)  # moves BN running stats
    with torch.no_grad():
        live.project.weight.add_(1.0)
    update_ema(ema, live, decay=0.5)
    mean_live, mean_ema = live.up1.norm.bn.running_mean, ema.up1.norm.bn.running_mean
    assert torch.allclose(mean_ema, 0.5 * mean_live)  # halfway from 0 to the live statistics
    assert ema.up1.norm.bn.num_batches_tracked == live.up1.norm.bn.num_batches_tracked


def test_diffaugment_keeps_shape_and_rejects_unknown_policies() -> None:
    x = torch.rand(5, 1, 28, 28)
    out = diff_augment(x, parse_policy("translation,cutout"))
    assert out.shape == x.shape
    assert not torch.equal(out, x)
    assert parse_policy("") == ()
    with pytest.raises(ValueError, match="unknown DiffAugment policy"):
        parse_policy("translation,rotate")


def test_frechet_kid_and_precision_recall_against_hand_computed_values() -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(4000, 3, generator=gen)
    shifted = a + torch.tensor([2.0, 0.0, 0.0])
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, shifted) == pytest.approx(4.0, rel=1e-6)  # same covariance: ||shift||^2
    assert abs(kernel_inception_distance(a[:2000], a[2000:], subsets=5, subset_size=500)) < 0.02
    assert kernel_inception_distance(a, shifted, subsets=5, subset_size=500) > 0.5
    precision, recall = precision_recall(a[:500], a[:500])
    assert (precision, recall) == (1.0, 1.0)
    far_precision, far_recall = precision_recall(a[:500], a[:500] + 100)
    assert (far_precision, far_recall) == (0.0, 0.0)


def test_within_class_spread_averages_same_class_distances_and_is_zero_for_prototypes() -> None:
    features = torch.tensor([[0.0, 0.0], [3.0, 4.0], [10.0, 0.0], [10.0, 2.0], [7.0, 7.0]])
    labels = torch.tensor([0, 0, 1, 1, 2])  # class 2 has a single sample and is left out
    assert within_class_spread(features, labels) == pytest.approx((5.0 + 2.0) / 2)
    assert within_class_spread(torch.ones(4, 2), torch.tensor([0, 0, 1, 1])) == 0.0
