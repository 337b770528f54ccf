"""No key can exhaust the service (issue 18, item 4): a per-key token bucket, one for the fast
path and the routes, answering 429 with Retry-After."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient

from nbo.serving.ratelimit import RateLimiter
from nbo.settings import RateLimit, Settings
from tests.serving.conftest import KEYS, READER, planned_members

OTHER = {"X-API-Key": "other-reader"}


@pytest.mark.slow  # the registry fixture trains a model
def test_fast_path_and_routes_share_one_bucket_per_key(
    make_client: Callable[..., TestClient],
) -> None:
    limited = make_client(rate_limit_per_key="4/minute", api_keys=KEYS | {"other-reader": "reader"})
    fast = f"/v1/members/{planned_members(limited)[0]}/offers"  # answered by the fast path
    route = "/v1/offers"  # by FastAPI's route
    granted = [limited.get(url, headers=READER).status_code for url in (fast, route, fast, route)]
    assert granted == [200, 200, 200, 200]  # each request took one token, not two
    by_fast_path = limited.get(fast, headers=READER)
    by_route = limited.get(route, headers=READER)
    for refused in (by_fast_path, by_route):
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 15  # a token back every 15 s
        assert "4 requests per 60 seconds" in refused.json()["detail"]
    assert by_fast_path.content == by_route.content
    assert limited.get(fast, headers=OTHER).status_code == 200  # another key has its own


def test_tokens_come_back_at_the_rate() -> None:
    now = [1000.0]
    limiter = RateLimiter(RateLimit(2, 1.0), clock=lambda: now[0])
    assert [limiter.take("k"), limiter.take("k")] == [0.0, 0.0]  # a burst of one period
    assert limiter.take("k") == pytest.approx(0.5)  # one token every half second
    now[0] += 0.25
    assert limiter.take("k") == pytest.approx(0.25)  # refused requests take nothing
    now[0] += 0.25
    assert limiter.take("k") == 0.0
    now[0] += 60.0
    assert [limiter.take("k") for _ in range(3)][:2] == [0.0, 0.0]  # the bucket holds only 2
    assert limiter.take("k") > 0.0
    limiter.keep_only(frozenset({"j"}))
    assert limiter.take("k") == 0.0  # a rotated-out key's bucket is forgotten


def test_the_rate_setting_is_checked() -> None:
    assert Settings(rate_limit_per_key="200/second").rate_limit == RateLimit(200, 1.0)
    assert Settings(rate_limit_per_key="1000/10 seconds").rate_limit == RateLimit(1000, 10.0)
    assert Settings().rate_limit is None
    with pytest.raises(ValueError, match="not a rate"):
        Settings(rate_limit_per_key="fast")
