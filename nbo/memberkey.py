"""The one rule from a club's member key to nbo's internal id, with nothing but the stdlib.

It sits at the bottom of the package so the service can apply it to every request without
importing the data layer (polars readers, the contract): :mod:`nbo.data.keys` builds the
dataset's key table on the same :func:`hash_id`.
"""

from __future__ import annotations

import hashlib

from nbo.errors import NboError

__all__ = ["INT_KEY_MAX", "MAX_KEY_LENGTH", "UnknownMemberError", "hash_id", "member_id_of"]

MAX_KEY_LENGTH = 64
INT_KEY_MAX = 2**63 - 1


class UnknownMemberError(NboError, KeyError):
    """A member key the club's key table does not hold."""


def hash_id(key: str) -> int:
    """A text key's internal id: the first 63 bits of its BLAKE2b digest (stable across runs)."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") & 0x7FFF_FFFF_FFFF_FFFF


def member_id_of(key: str | int, *, keyed: bool, what: str = "member") -> int:
    """The internal id of one club key: the rule every edge (CLI, API) applies.

    A club with string keys (``keyed``): the key's stable hash; its keys are text, so a JSON
    number is refused rather than guessed at (is 157 the card "0000157"?). A club with
    integer member numbers: the number itself, given as a number or as its digits.
    """
    if keyed:
        if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH:
            raise UnknownMemberError(
                f"{what} {key!r}: this club's member keys are text of 1 to {MAX_KEY_LENGTH} "
                "characters (send them as strings)"
            )
        return hash_id(key)
    if isinstance(key, bool) or not isinstance(key, int | str):
        raise UnknownMemberError(f"{what} {key!r}: this club's member ids are whole numbers")
    if isinstance(key, str):
        if not (key.isascii() and key.isdigit()) or len(key) > 19:
            raise UnknownMemberError(f"{what} {key!r}: this club's member ids are whole numbers")
        key = int(key)
    if not 0 <= key <= INT_KEY_MAX:
        raise UnknownMemberError(f"{what} {key}: member ids are 0 to {INT_KEY_MAX}")
    return key
