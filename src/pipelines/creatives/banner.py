"""Ad banners with Pillow: the generated product image, a headline and a call to action, as PNG bytes.

The PNG encoding is deterministic (no timestamps or text chunks, fixed compression), so the same image
and text always give the same bytes: a rerun or backfill of a campaign date is byte-identical.
Wide formats (728x90 leaderboard) put the product on the left and the text beside it; the rest
(300x250 medium rectangle, 336x280, 300x600) put the product above the text.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# (background, accent, text on background, text on accent): dark backgrounds suit the dark product photos.
PALETTES = (
    ((24, 32, 56), (255, 196, 0), (255, 255, 255), (24, 32, 56)),
    ((40, 16, 48), (255, 92, 138), (255, 255, 255), (255, 255, 255)),
    ((12, 52, 48), (120, 230, 170), (255, 255, 255), (12, 52, 48)),
    ((54, 26, 12), (255, 150, 60), (255, 255, 255), (54, 26, 12)),
)


def to_pil(pixels: np.ndarray) -> Image.Image:
    """uint8 [channels, h, w] -> a Pillow image (L or RGB)."""
    if pixels.shape[0] == 1:
        return Image.fromarray(pixels[0], mode="L").convert("RGB")
    return Image.fromarray(np.ascontiguousarray(pixels.transpose(1, 2, 0)), mode="RGB")  # [h, w, c]


def png_bytes(image: Image.Image) -> bytes:
    """Deterministic PNG: Pillow writes no time or text chunks unless asked; compression is fixed."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and draw.textlength(f"{lines[-1]} {word}", font=font) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def _fit_text(
    draw: ImageDraw.ImageDraw, text: str, box: tuple[int, int], largest: int
) -> tuple[ImageFont.FreeTypeFont, list[str], int]:
    """The largest font size (down to 9 px) whose word-wrapped text fits the box; (font, lines, line height)."""
    width, height = box
    for size in range(largest, 8, -1):
        font = ImageFont.load_default(size=size)
        lines = _wrap(draw, text, font, width)
        line_height = math.ceil(size * 1.2)
        fits_width = all(draw.textlength(line, font=font) <= width for line in lines)
        if fits_width and line_height * len(lines) <= height:
            return font, lines, line_height
    font = ImageFont.load_default(size=9)
    return font, _wrap(draw, text, font, width), 11


def compose_banner(
    product: np.ndarray, size: tuple[int, int], headline: str, call_to_action: str, *, palette: int = 0
) -> bytes:
    """One banner as PNG bytes: the product upscaled with Lanczos, the headline fitted, a CTA button."""
    width, height = size
    background, accent, text_colour, accent_text = PALETTES[palette % len(PALETTES)]
    canvas = Image.new("RGB", size, background)
    draw = ImageDraw.Draw(canvas)
    pad = max(4, min(width, height) // 18)
    wide = width >= 2 * height
    side = height - 2 * pad if wide else int(min(height * 0.52, width - 2 * pad))
    tile = to_pil(product).resize((side, side), Image.Resampling.LANCZOS)
    tile_xy = (pad, pad) if wide else ((width - side) // 2, pad)
    canvas.paste(tile, tile_xy)
    draw.rectangle([tile_xy[0] - 1, tile_xy[1] - 1, tile_xy[0] + side, tile_xy[1] + side], outline=accent)

    cta_font = ImageFont.load_default(size=max(10, min(18, height // 6 if wide else height // 14)))
    cta_w = int(draw.textlength(call_to_action, font=cta_font)) + 2 * pad
    cta_h = math.ceil(cta_font.size * 1.2) + pad
    if wide:
        text_box = (pad + side + pad, pad, width - cta_w - 3 * pad, height - pad)
        cta_xy = (width - cta_w - pad, (height - cta_h) // 2)
    else:
        text_box = (pad, pad + side + pad, width - pad, height - cta_h - 2 * pad)
        cta_xy = ((width - cta_w) // 2, height - cta_h - pad)
    box_w, box_h = text_box[2] - text_box[0], text_box[3] - text_box[1]
    font, lines, line_height = _fit_text(draw, headline, (box_w, box_h), largest=max(12, min(26, box_h // 2)))
    y = text_box[1] + (box_h - line_height * len(lines)) // 2
    for line in lines:
        x = text_box[0] + (box_w - int(draw.textlength(line, font=font))) // 2
        draw.text((x, y), line, font=font, fill=text_colour)
        y += line_height
    draw.rounded_rectangle([cta_xy[0], cta_xy[1], cta_xy[0] + cta_w, cta_xy[1] + cta_h], radius=pad, fill=accent)
    draw.text(
        (cta_xy[0] + cta_w // 2, cta_xy[1] + cta_h // 2), call_to_action, font=cta_font, fill=accent_text, anchor="mm"
    )
    return png_bytes(canvas)


def contact_sheet(tiles: Sequence[tuple[str, bytes]], *, columns: int = 4, caption_height: int = 16) -> Image.Image:
    """A grid of banners with a caption above each, for people reviewing a campaign date's creatives."""
    images = [Image.open(io.BytesIO(data)).convert("RGB") for _, data in tiles]
    cell_w = max((im.width for im in images), default=1) + 8
    cell_h = max((im.height for im in images), default=1) + caption_height + 8
    rows = max(1, math.ceil(len(images) / columns))
    sheet = Image.new("RGB", (cell_w * min(columns, max(1, len(images))), cell_h * rows), (245, 245, 245))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=11)
    for i, ((caption, _), image) in enumerate(zip(tiles, images, strict=True)):
        x, y = (i % columns) * cell_w + 4, (i // columns) * cell_h + 4
        draw.text((x, y), caption, font=font, fill=(20, 20, 20))
        sheet.paste(image, (x, y + caption_height))
    return sheet
