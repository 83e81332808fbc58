"""The fashion store's vocabulary: categories (the Fashion-MNIST classes), price ranges, title words.

Light on purpose (stdlib only): the quality gate and the DAG read these constants without paying for
numpy or pandas. `CATEGORIES[label]` is the Fashion-MNIST class `label`, so the GAN conditions on the
same index the generator used to pick an item's picture.
"""

from __future__ import annotations

CATEGORIES: tuple[str, ...] = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# List prices (EUR) of the store's items per category: (lowest, highest).
LIST_PRICE_RANGES: dict[str, tuple[float, float]] = {
    "T-shirt/top": (7.99, 39.99),
    "Trouser": (24.99, 119.99),
    "Pullover": (24.99, 129.99),
    "Dress": (24.99, 199.99),
    "Coat": (59.99, 399.99),
    "Sandal": (14.99, 89.99),
    "Shirt": (19.99, 99.99),
    "Sneaker": (39.99, 199.99),
    "Bag": (19.99, 299.99),
    "Ankle boot": (49.99, 249.99),
}

# Campaign discounts never exceed this, so an event price is always within
# [low * (1 - MAX_DISCOUNT_PCT / 100), high] of its category's list-price range.
MAX_DISCOUNT_PCT = 50


def plausible_price_range(category: str) -> tuple[float, float]:
    """The range every generated event price of `category` lies in (list prices and campaign discounts)."""
    low, high = LIST_PRICE_RANGES[category]
    return round(low * (1 - MAX_DISCOUNT_PCT / 100), 2), high


# Share of the assortment per category (sums to 1).
CATEGORY_SHARES: tuple[float, ...] = (0.16, 0.11, 0.10, 0.12, 0.07, 0.07, 0.12, 0.11, 0.08, 0.06)

# The category a shopper often looks at next (planted cross-category "next item" affinities).
COMPLEMENTS: dict[str, str] = {
    "T-shirt/top": "Trouser",
    "Trouser": "Shirt",
    "Pullover": "Trouser",
    "Dress": "Sandal",
    "Coat": "Ankle boot",
    "Sandal": "Bag",
    "Shirt": "Trouser",
    "Sneaker": "T-shirt/top",
    "Bag": "Dress",
    "Ankle boot": "Coat",
}

# Title words: "{colour} {style} {material} {noun}", e.g. "Navy Slim Denim Trousers".
COLOURS = ("Black", "White", "Navy", "Grey", "Beige", "Olive", "Burgundy", "Camel", "Sky Blue", "Rose")
STYLES: dict[str, tuple[str, ...]] = {
    "T-shirt/top": ("Classic", "Oversized", "Cropped", "Fitted", "Striped"),
    "Trouser": ("Slim", "Wide-Leg", "Straight", "Tapered", "Relaxed"),
    "Pullover": ("Chunky", "Fine-Knit", "Cable-Knit", "Relaxed", "Turtleneck"),
    "Dress": ("Wrap", "Midi", "Maxi", "Shift", "Slip"),
    "Coat": ("Double-Breasted", "Belted", "Longline", "Hooded", "Tailored"),
    "Sandal": ("Strappy", "Flat", "Platform", "Slide", "Block-Heel"),
    "Shirt": ("Oxford", "Slim", "Relaxed", "Button-Down", "Short-Sleeve"),
    "Sneaker": ("Low-Top", "High-Top", "Retro", "Running", "Chunky"),
    "Bag": ("Tote", "Crossbody", "Mini", "Shoulder", "Bucket"),
    "Ankle boot": ("Chelsea", "Lace-Up", "Heeled", "Zip", "Western"),
}
MATERIALS: dict[str, tuple[str, ...]] = {
    "T-shirt/top": ("Cotton", "Jersey", "Linen", "Organic Cotton"),
    "Trouser": ("Denim", "Chino", "Wool", "Linen", "Corduroy"),
    "Pullover": ("Merino", "Cashmere", "Cotton", "Wool-Blend"),
    "Dress": ("Satin", "Cotton", "Linen", "Jersey", "Floral"),
    "Coat": ("Wool", "Trench", "Puffer", "Teddy"),
    "Sandal": ("Leather", "Suede", "Woven", "Rubber"),
    "Shirt": ("Poplin", "Flannel", "Linen", "Denim"),
    "Sneaker": ("Leather", "Canvas", "Suede", "Mesh"),
    "Bag": ("Leather", "Canvas", "Nylon", "Faux-Leather"),
    "Ankle boot": ("Leather", "Suede", "Faux-Leather"),
}
NOUNS: dict[str, str] = {
    "T-shirt/top": "T-Shirt",
    "Trouser": "Trousers",
    "Pullover": "Pullover",
    "Dress": "Dress",
    "Coat": "Coat",
    "Sandal": "Sandals",
    "Shirt": "Shirt",
    "Sneaker": "Sneakers",
    "Bag": "Bag",
    "Ankle boot": "Ankle Boots",
}

AGE_GROUPS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
AGE_GROUP_SHARES = (0.17, 0.30, 0.22, 0.15, 0.10, 0.06)
REGIONS = ("North", "South", "East", "West", "Central", "Islands")
REGION_SHARES = (0.22, 0.24, 0.16, 0.18, 0.15, 0.05)

# Sessions per weekday, Monday first (mean 1): weekends busier.
WEEKDAY_FACTORS = (0.93, 0.90, 0.94, 0.97, 1.04, 1.13, 1.09)
# When sessions start, by UTC hour (relative weights): quiet nights, lunch bump, evening peak.
HOUR_WEIGHTS = (2, 1, 1, 1, 1, 2, 3, 5, 6, 6, 6, 7, 8, 7, 6, 6, 7, 8, 10, 12, 12, 10, 7, 4)

HEADLINE_TEMPLATES = (
    "{segment}: {discount}% off {category}",
    "{category} you'll love - now {discount}% off",
    "New season {category}: save {discount}%",
    "Only this week: {discount}% off {category}",
)
CAMPAIGN_THEMES = ("Spring Edit", "Weekend Deals", "Style Week", "Flash Sale", "Season Opener", "Members' Days")
DISCOUNTS_PCT = (10, 15, 20, 25, 30, 40)
