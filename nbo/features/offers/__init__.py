"""Point-in-time features of (member, offer) pairs for the offer response model.

Three groups, all read through a :class:`~nbo.features.history.History` (so nothing at or after
``as_of`` is seen), plus the offer's definition:

* ``m_*``  the member: shopping in the last 8/26 weeks, coupon use on receipts, past audiences
  and redemptions;
* ``mo_*`` the member and this offer: purchases of the offer's products and categories, coupon
  use on them, earlier redemptions of the same coupon or of offers sharing its products;
* ``o_*``  the offer: its campaign's length and size, its product count and the products'
  recent popularity and coupon use in the whole club.

The offer's definition (campaign, type, dates, products) is read from the full club tables: an
offer being scored usually belongs to a campaign that has not started yet, and its definition is
an input, not history. A member with no history gets zeros for every ``m_*`` and ``mo_*`` feature
(recencies are encoded as ``1 / (1 + weeks since)``, so zero means "never").

Every function returns a LazyFrame; joins are against the pairs, never a loop per pair. A batch
scorer passes ``receipts`` (one chunk of members' receipt lines from ``history.transactions``,
read once) and a club-wide :func:`offer_table` (computed once per run), so a chunk's features
cost a pass over its own members' lines, not over the club's.
"""

from nbo.features.offers.columns import (
    FEATURES,
    MEMBER_FEATURES,
    OFFER_FEATURES,
    PAIR_FEATURES,
)
from nbo.features.offers.members import member_features, pair_features
from nbo.features.offers.response import features_at_starts, response_features
from nbo.features.offers.table import offer_definitions, offer_features, offer_table

__all__ = [
    "FEATURES",
    "MEMBER_FEATURES",
    "OFFER_FEATURES",
    "PAIR_FEATURES",
    "features_at_starts",
    "member_features",
    "offer_definitions",
    "offer_features",
    "offer_table",
    "pair_features",
    "response_features",
]
