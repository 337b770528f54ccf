"""API keys (issue 18, item 4): given as SHA-256 digests, rotated by /admin/reload without a
restart, and /v1/metrics only for a key of the ``metrics`` role (or ``admin``)."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from nbo.settings import Settings
from tests.serving.conftest import ADMIN, KEYS, READER, planned_members

pytestmark = pytest.mark.slow  # the registry fixture trains a model

DIGEST = "sha256:" + hashlib.sha256(b"hashed-reader").hexdigest()


def _answers(client: TestClient, key: str) -> tuple[int, int]:
    """(fast path, FastAPI route) status codes for ``key``."""
    headers = {"X-API-Key": key}
    fast = client.get(f"/v1/members/{planned_members(client)[0]}/offers", headers=headers)
    return fast.status_code, client.get("/v1/offers", headers=headers).status_code


def _write_keys(path: Path, keys: dict[str, str]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(keys))
    tmp.replace(path)


def test_a_key_given_as_its_digest_is_accepted(make_client: Callable[..., TestClient]) -> None:
    client = make_client(api_keys={DIGEST: "reader", "admin-key": "admin"})
    assert _answers(client, "hashed-reader") == (200, 200)
    assert _answers(client, DIGEST) == (401, 401)  # the digest is not the key
    with pytest.raises(ValidationError, match="64 lowercase hex digits"):
        Settings(api_keys={"sha256:12ab": "reader"})


def test_keys_are_rotated_without_a_restart(
    make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    keys = tmp_path / "keys.json"
    _write_keys(keys, {"old-reader": "reader"})
    client = make_client(api_keys={"admin-key": "admin"}, api_keys_file=keys)
    assert _answers(client, "old-reader") == (200, 200)

    _write_keys(keys, {"new-reader": "reader"})
    assert client.post("/v1/admin/reload", headers=ADMIN).status_code == 200
    assert _answers(client, "old-reader") == (401, 401)
    assert _answers(client, "new-reader") == (200, 200)

    keys.write_text("{not json")
    refused = client.post("/v1/admin/reload", headers=ADMIN)
    assert refused.status_code == 422 and str(keys) in refused.json()["detail"]
    assert _answers(client, "new-reader") == (200, 200)  # the keys in force stay

    _write_keys(keys, {"newer-reader": "reader"})  # another worker: follows the file by itself
    time.sleep(1.1)
    assert _answers(client, "newer-reader") == (200, 200)
    assert _answers(client, "new-reader") == (401, 401)


def test_metrics_need_a_metrics_key(make_client: Callable[..., TestClient]) -> None:
    client = make_client(api_keys=KEYS | {"scraper": "metrics"})
    assert client.get("/v1/metrics").status_code == 401
    assert client.get("/v1/metrics", headers=READER).status_code == 403
    for key in ("scraper", "admin-key"):
        scraped = client.get("/v1/metrics", headers={"X-API-Key": key})
        assert scraped.status_code == 200 and "nbo_request_seconds" in scraped.text
    assert _answers(client, "scraper") == (403, 403)  # a scraper's key reads no offers
