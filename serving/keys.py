"""The API keys a worker accepts: plain or SHA-256 digests, rotated without a restart.

Every key is kept as its SHA-256 digest only: a key given plain in ``NBO_API_KEYS`` is hashed
when read, one given as ``"sha256:<hex>"`` is taken as it is, so the plain keys need not sit in
the environment. A request's key is hashed once and compared with every digest in constant
time. Keys from ``NBO_API_KEYS_FILE`` are read again on ``/admin/reload`` and whenever the
file changes (a worker looks at most once a second), so a key is rotated by editing the file.
A file that does not read keeps the keys in force (and ``/admin/reload`` says why).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import time
from dataclasses import dataclass

from nbo.errors import NboError
from nbo.settings import DIGEST_PREFIX, ROLES, Role, Settings, read_api_keys_file

__all__ = ["Holder", "KeyRing", "allows", "digest_of"]

log = logging.getLogger("nbo.serving")
_CHECK_SECONDS = 1.0  # how often a worker looks at the keys file


def digest_of(key: str) -> str:
    """The hex SHA-256 digest of a key as sent (UTF-8)."""
    return hashlib.sha256(key.encode()).hexdigest()


def allows(found: Role, needed: Role) -> bool:
    """Whether a key of role ``found`` may do what needs ``needed``: the roles of
    :data:`~nbo.settings.ROLES` include the ones before them; ``metrics`` is allowed only
    ``metrics``, which ``admin`` is allowed too."""
    if needed == "metrics":
        return found in ("metrics", "admin")
    return found != "metrics" and ROLES.index(found) >= ROLES.index(needed)


@dataclass(frozen=True, slots=True)
class Holder:
    """Who sent a request: the key's digest (what the rate limit counts by) and its role."""

    digest: str
    role: Role


def _digests(keys: dict[str, Role]) -> dict[bytes, Role]:
    out: dict[bytes, Role] = {}
    for key, role in keys.items():
        digest = key[len(DIGEST_PREFIX) :] if key.startswith(DIGEST_PREFIX) else digest_of(key)
        out[digest.encode()] = role
    return out


def _stamp(path: os.PathLike[str] | None) -> tuple[int, int, int] | None:
    if path is None:
        return None
    try:
        found = os.stat(path)
    except OSError:
        return None
    return (found.st_ino, found.st_size, found.st_mtime_ns)


class KeyRing:
    """A worker's keys (see the module docstring); ``holder`` is all a request needs."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._stamp = _stamp(settings.api_keys_file)
        self._digests = self._read()
        self._checked = time.monotonic()

    def _read(self) -> dict[bytes, Role]:
        keys = dict(self._settings.api_keys)
        if self._settings.api_keys_file is not None:
            keys |= read_api_keys_file(self._settings.api_keys_file)
        if not keys:
            raise NboError("no API keys left: NBO_API_KEYS and NBO_API_KEYS_FILE are empty")
        return _digests(keys)

    def reload(self) -> int:
        """Read the keys again (``/admin/reload``); how many are in force. Raises NboError, and
        keeps the keys in force, when the file does not read."""
        stamp = _stamp(self._settings.api_keys_file)
        self._digests = self._read()
        self._stamp, self._checked = stamp, time.monotonic()
        return len(self._digests)

    def _follow_file(self) -> None:
        now = time.monotonic()
        if self._settings.api_keys_file is None or now - self._checked < _CHECK_SECONDS:
            return
        self._checked = now
        stamp = _stamp(self._settings.api_keys_file)
        if stamp == self._stamp:
            return
        try:
            self.reload()
        except NboError as exc:  # the keys in force stay; the next change is tried again
            self._stamp = stamp
            log.error("API keys not rotated: %s", exc)
        else:
            log.info("API keys read again from %s", self._settings.api_keys_file)

    def holder(self, key: str) -> Holder | None:
        """The holder of ``key``, or None for a key not in force."""
        self._follow_file()
        given = digest_of(key).encode()
        found: Holder | None = None
        for digest, role in self._digests.items():  # every one, each in constant time
            if hmac.compare_digest(given, digest):
                found = Holder(digest.decode(), role)
        return found

    def digests(self) -> frozenset[str]:
        """The digests of the keys in force."""
        return frozenset(d.decode() for d in self._digests)
