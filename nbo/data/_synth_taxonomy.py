"""The vocabulary of the synthetic club: its category tree, pack sizes, brand syllables and
campaign types. Plain data; :mod:`nbo.data._synth_catalogue` draws the catalogue from it."""

from __future__ import annotations

__all__ = ["CAMPAIGN_TYPES", "PACKS", "SYLLABLES", "TAXONOMY", "VARIANTS"]

# department, category, repurchase cycle in days (0: bought on impulse, never a staple),
# sold by "each" or "kg", median price, share of the assortment and of the shopping.
TAXONOMY: tuple[tuple[str, str, int, str, float, float], ...] = (
    ("DAIRY", "MILK", 7, "each", 1.9, 5.0),
    ("DAIRY", "CHEESE", 14, "each", 4.5, 3.0),
    ("DAIRY", "YOGURT", 7, "each", 1.2, 3.0),
    ("DAIRY", "BUTTER", 21, "each", 3.5, 1.5),
    ("DAIRY", "EGGS", 10, "each", 3.0, 2.5),
    ("BAKERY", "BREAD", 5, "each", 2.8, 4.0),
    ("BAKERY", "PASTRIES", 0, "each", 3.5, 1.5),
    ("BAKERY", "CAKES", 0, "each", 6.0, 0.8),
    ("PRODUCE", "FRUIT", 7, "kg", 3.0, 4.0),
    ("PRODUCE", "VEGETABLES", 5, "kg", 2.5, 4.5),
    ("PRODUCE", "SALADS", 7, "each", 2.9, 1.5),
    ("MEAT & FISH", "BEEF", 14, "kg", 12.0, 2.0),
    ("MEAT & FISH", "POULTRY", 10, "kg", 8.0, 2.5),
    ("MEAT & FISH", "FISH", 21, "kg", 15.0, 1.0),
    ("MEAT & FISH", "SAUSAGES", 14, "each", 3.5, 1.5),
    ("DELI", "COLD CUTS", 10, "each", 3.2, 2.0),
    ("DELI", "READY MEALS", 0, "each", 5.5, 1.5),
    ("PANTRY", "PASTA", 21, "each", 1.5, 2.0),
    ("PANTRY", "RICE", 35, "each", 2.5, 1.0),
    ("PANTRY", "CEREAL", 14, "each", 3.8, 2.0),
    ("PANTRY", "CANNED GOODS", 0, "each", 1.4, 2.0),
    ("PANTRY", "SAUCES", 28, "each", 2.2, 1.5),
    ("PANTRY", "BAKING", 0, "each", 2.0, 0.8),
    ("BEVERAGES", "COFFEE", 21, "each", 6.5, 2.0),
    ("BEVERAGES", "TEA", 30, "each", 3.0, 1.0),
    ("BEVERAGES", "SOFT DRINKS", 7, "each", 1.8, 3.0),
    ("BEVERAGES", "JUICE", 10, "each", 2.6, 2.0),
    ("BEVERAGES", "WATER", 7, "each", 0.9, 2.0),
    ("BEVERAGES", "BEER", 14, "each", 7.0, 1.5),
    ("BEVERAGES", "WINE", 0, "each", 9.0, 1.0),
    ("FROZEN", "FROZEN MEALS", 0, "each", 4.5, 1.5),
    ("FROZEN", "ICE CREAM", 0, "each", 4.0, 1.2),
    ("FROZEN", "FROZEN VEGETABLES", 21, "each", 2.2, 1.0),
    ("SNACKS", "CHIPS", 10, "each", 2.5, 2.0),
    ("SNACKS", "CHOCOLATE", 0, "each", 2.0, 2.0),
    ("SNACKS", "BISCUITS", 14, "each", 2.1, 1.5),
    ("HOUSEHOLD", "DETERGENT", 35, "each", 9.0, 1.0),
    ("HOUSEHOLD", "PAPER GOODS", 21, "each", 6.0, 1.5),
    ("HOUSEHOLD", "CLEANING", 0, "each", 3.5, 1.0),
    ("PERSONAL CARE", "SHAMPOO", 42, "each", 4.5, 0.8),
    ("PERSONAL CARE", "TOOTHPASTE", 35, "each", 2.5, 0.8),
    ("PERSONAL CARE", "DIAPERS", 10, "each", 14.0, 0.5),
    ("PET", "PET FOOD", 14, "each", 8.0, 1.0),
    ("PET", "CAT LITTER", 28, "each", 7.0, 0.4),
)
VARIANTS = ("REGULAR", "VALUE", "PREMIUM", "ORGANIC", "LIGHT", "FAMILY PACK", "SPECIALTY", "LOCAL")
PACKS = ("250 G", "500 G", "1 KG", "330 ML", "1 L", "2 L", "4 PK", "6 PK", "12 PK", "EACH")
SYLLABLES = ("va", "lor", "dun", "mo", "re", "ka", "sel", "tri", "no", "bel", "gar", "fi", "ru")
# campaign type: audience share (before engagement weighting), offers, duration in days
CAMPAIGN_TYPES: dict[str, tuple[float, tuple[int, int], tuple[int, int]]] = {
    "personalised": (0.12, (6, 12), (35, 56)),
    "segment": (0.30, (3, 6), (28, 42)),
    "mass": (0.60, (2, 4), (14, 28)),
}
