"""Banners: requested size, headline filled from the template and drawn, deterministic PNG bytes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from pipelines.creatives.banner import compose_banner
from pipelines.creatives.plan import Audience, Campaign, Request, check_template, headline
from pipelines.errors import DataError

PRODUCT = (np.indices((28, 28)).sum(axis=0) * 4).astype(np.uint8)[None]  # [1, 28, 28] gradient
CAMPAIGN = Campaign(7, "Summer", ("Bags",), (), "{discount}% off {category} for {segment}", 20.0)


def _open(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


@pytest.mark.parametrize("size", [(300, 250), (728, 90)])
def test_banner_has_the_requested_size_and_draws_the_headline(size: tuple[int, int]) -> None:
    with_text = _open(compose_banner(PRODUCT, size, "20% off Bags for sporty shoppers", "Shop now"))
    other_text = _open(compose_banner(PRODUCT, size, "Bags from $9.99", "Shop now"))
    assert with_text.format == "PNG"
    assert with_text.size == size
    a, b = np.asarray(with_text.convert("RGB")), np.asarray(other_text.convert("RGB"))
    differs = np.argwhere((a != b).any(axis=2))  # [pixels, (y, x)]: only the headline area changes
    assert len(differs) > 100
    if size[0] >= 2 * size[1]:  # leaderboard: text right of the product tile
        assert differs[:, 1].min() > size[1] - 10
    else:  # rectangle: text below the product tile
        assert differs[:, 0].min() > size[1] * 0.5


def test_banner_shows_the_product_upscaled_and_the_bytes_are_deterministic() -> None:
    first = compose_banner(PRODUCT, (300, 250), "Hello", "Shop now", palette=1)
    assert first == compose_banner(PRODUCT, (300, 250), "Hello", "Shop now", palette=1)
    assert b"tIME" not in first and b"tEXt" not in first  # no timestamps or metadata chunks
    tile = np.asarray(_open(first).convert("L"))[13:130, 83:217]  # the product tile of a 300x250 banner
    assert tile.max() - tile.min() > 150  # the gradient product is there, upscaled


def test_headline_fills_the_template_fields() -> None:
    request = Request(CAMPAIGN, Audience(3, "sporty shoppers", {}), "Bags")
    assert headline(request, {"Bags": 12.5}) == "20% off Bags for sporty shoppers"
    priced = Request(Campaign(8, "Low", ("Bags",), (), "{category} from ${price}", None), request.audience, "Bags")
    assert headline(priced, {"Bags": 12.5}) == "Bags from $12.50"


def test_unknown_template_field_names_the_campaign() -> None:
    with pytest.raises(DataError, match=r"campaign 9: headline_template uses unknown field\(s\) \['colour'\]"):
        check_template(9, "{colour} {category}")
