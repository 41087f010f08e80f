"""Token guessing is slowed down: after too many unknown tokens from one address, that
address gets 429 with Retry-After (REST and OCCI alike) until its failures age out;
other addresses, and requests that need no token, are not affected."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from sm_fixtures import ServiceManager
from disco.cluster.api.throttle import MAX_CLIENTS, FailedAuthThrottle, TooManyFailedAuthentications

LIMIT = 5
WINDOW_S = 4


class Clock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the limiter alone -------------------------------------------------------------------------

def test_limit_then_retry_after_then_free_again() -> None:
    clock = Clock()
    throttle = FailedAuthThrottle(3, 60, clock)
    for _ in range(3):
        throttle.check("a")
        throttle.record_failure("a")
        clock.now += 10
    with pytest.raises(TooManyFailedAuthentications) as info:
        throttle.check("a")
    # The first failure (at 1000) leaves the window at 1060; it is now 1030.
    assert info.value.headers == {"Retry-After": "30"}
    assert info.value.status == 429 and info.value.code == "too_many_failed_authentications"
    throttle.check("b")           # another address is not held back
    clock.now = 1060.5
    throttle.check("a")           # one failure has aged out: one more try is allowed
    throttle.record_failure("a")
    with pytest.raises(TooManyFailedAuthentications):
        throttle.check("a")


def test_retry_after_is_at_least_one_second() -> None:
    clock = Clock()
    throttle = FailedAuthThrottle(1, 1.0, clock)
    throttle.record_failure("a")
    clock.now += 0.9999
    with pytest.raises(TooManyFailedAuthentications) as info:
        throttle.check("a")
    assert info.value.headers["Retry-After"] == "1"


def test_memory_is_bounded_under_a_flood_of_addresses() -> None:
    throttle = FailedAuthThrottle(3, 60, Clock())
    for i in range(MAX_CLIENTS + 500):
        throttle.record_failure(f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}")
    assert len(throttle._failures) == MAX_CLIENTS
    for _ in range(10):
        throttle.record_failure("a")
    assert len(throttle._failures["a"]) == 3   # never more than the limit per address


# -- through the service manager ---------------------------------------------------------------

@pytest.fixture(scope="module")
def throttled_sm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceManager]:
    manager = ServiceManager(tmp_path_factory.mktemp("disco-throttle"), extra_env={
        "DISCO_AUTH_FAILURE_LIMIT": str(LIMIT), "DISCO_AUTH_FAILURE_WINDOW": str(WINDOW_S)})
    try:
        yield manager.start()
    finally:
        manager.cleanup()


def client_from(sm: ServiceManager, address: str, **headers: str) -> httpx.Client:
    """A client whose connections come from `address` (any 127.x.y.z is this machine)."""
    return httpx.Client(base_url=sm.url, headers=headers, timeout=30, trust_env=False,
                        transport=httpx.HTTPTransport(local_address=address))


def assert_429(response: httpx.Response) -> int:
    assert response.status_code == 429, response.text
    error = response.json()["error"]
    assert error["code"] == "too_many_failed_authentications"
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= WINDOW_S
    assert error["details"] == {"retry_after_s": retry_after}
    return retry_after


def test_failed_authentications_get_429_then_recover(throttled_sm: ServiceManager) -> None:
    sm = throttled_sm
    good = sm.token("tenant-t")
    # From 127.0.0.1, the address a proxy in front would have: a forged X-Forwarded-For still
    # does not make the guesser look like many clients.
    with client_from(sm, "127.0.0.1") as guesser, client_from(sm, "127.0.0.3") as bystander:
        for i in range(LIMIT):
            response = guesser.get("/api/v1/clusters", headers={"X-Auth-Token": f"guess-{i}",
                                                                "X-Forwarded-For": f"10.0.0.{i}"})
            assert response.status_code == 401, response.text
        retry_after = assert_429(guesser.get("/api/v1/clusters", headers={"X-Auth-Token": "guess-x"}))
        # Held back, even a right token is not looked at (its answer would tell a guesser it is right),
        assert_429(guesser.get("/api/v1/clusters", headers={"X-Auth-Token": good}))
        # ... on OCCI as on REST,
        assert_429(guesser.get("/disco/", headers={"X-Auth-Token": good, "X-Tenant-Name": "tenant-t"}))
        assert_429(guesser.post("/disco/", headers={"X-Auth-Token": "guess-y", "X-Tenant-Name": "tenant-t"}))
        # ... but what needs no token still works,
        assert guesser.get("/api/v1/health").status_code == 200
        # ... and another address is not affected, neither its right token nor its wrong one.
        assert bystander.get("/api/v1/clusters", headers={"X-Auth-Token": good}).status_code == 200
        assert bystander.get("/api/v1/clusters", headers={"X-Auth-Token": "wrong"}).status_code == 401
        time.sleep(retry_after + 0.2)
        assert guesser.get("/api/v1/clusters", headers={"X-Auth-Token": good}).status_code == 200


def test_occi_failures_count_too(throttled_sm: ServiceManager) -> None:
    with client_from(throttled_sm, "127.0.0.4", **{"X-Tenant-Name": "x"}) as guesser:
        for i in range(LIMIT):
            assert guesser.get("/-/", headers={"X-Auth-Token": f"guess-{i}"}).status_code == 401
        assert_429(guesser.get("/api/v1/frameworks", headers={"X-Auth-Token": "guess-x"}))


def test_successes_and_missing_tokens_do_not_count(throttled_sm: ServiceManager) -> None:
    sm = throttled_sm
    good = sm.token("tenant-t")
    with client_from(sm, "127.0.0.5") as client:
        for _ in range(3 * LIMIT):
            assert client.get("/api/v1/clusters", headers={"X-Auth-Token": good}).status_code == 200
            assert client.get("/api/v1/clusters").json()["error"]["code"] == "missing_token"
            # A right token with the wrong tenant guesses no secret either.
            occi = client.get("/disco/", headers={"X-Auth-Token": good, "X-Tenant-Name": "other"})
            assert occi.json()["error"]["code"] == "tenant_mismatch"
        for i in range(LIMIT):
            assert client.get("/api/v1/clusters", headers={"X-Auth-Token": f"guess-{i}"}).status_code == 401
        assert_429(client.get("/api/v1/clusters", headers={"X-Auth-Token": good}))


def test_default_limit_is_twenty_a_minute(sm: ServiceManager) -> None:
    with client_from(sm, "127.0.0.6") as client:
        for i in range(20):
            assert client.get("/api/v1/clusters", headers={"X-Auth-Token": f"guess-{i}"}).status_code == 401
        response = client.get("/api/v1/clusters", headers={"X-Auth-Token": "guess-x"})
    assert response.status_code == 429
    assert 55 <= int(response.headers["retry-after"]) <= 60
