"""The request-weight limiter keeps robson under Binance's per-minute budget, as the server counts it."""

from __future__ import annotations

import pytest

from robson.adapters.binance.gateway import WEIGHT_SAFETY, WeightLimiter
from robson.errors import RateLimited


class FakeTime:
    def __init__(self, start: float = 1_000_040.0) -> None:  # 20 s into a minute (1_000_020 is a boundary)
        self.now = start
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def limiter(limit: int = 1200) -> tuple[WeightLimiter, FakeTime]:
    clock = FakeTime()
    return WeightLimiter(limit, now=lambda: clock.now, sleep=clock.sleep), clock


def test_requests_within_the_budget_never_wait() -> None:
    weights, clock = limiter()

    for _ in range(50):
        weights.acquire(20)  # 1000 of 1080 allowed

    assert clock.slept == []


def test_a_request_that_would_cross_the_budget_waits_for_the_next_minute() -> None:
    weights, clock = limiter()
    for _ in range(54):
        weights.acquire(20)  # 1080 = 90 % of 1200

    weights.acquire(20)

    assert clock.slept == [pytest.approx(40.05)]  # from second 20 to the minute boundary
    assert int(clock.now // 60) == int((clock.now - 40.05) // 60) + 1


def test_the_servers_count_of_used_weight_is_adopted_since_other_programs_share_the_ip() -> None:
    weights, clock = limiter()
    weights.observe(1070)

    weights.acquire(5)
    weights.acquire(10)

    assert len(clock.slept) == 1
    assert 1200 * WEIGHT_SAFETY == 1080


def test_after_a_429_every_request_is_refused_until_retry_after_has_passed() -> None:
    weights, clock = limiter()
    weights.back_off(30)

    with pytest.raises(RateLimited, match=r"try again after .* \(in 30 s\)"):
        weights.acquire(1)
    clock.now += 30
    weights.acquire(1)

    assert clock.slept == []


def test_the_budget_comes_from_exchange_info(monkeypatch: pytest.MonkeyPatch) -> None:
    from robson.adapters.binance.gateway import BinanceGateway
    from robson.adapters.binance.market import BinanceMarket

    gateway = BinanceGateway(None, base_url="http://127.0.0.1:9")
    info = {"rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}],
            "symbols": []}
    monkeypatch.setattr(gateway, "call", lambda request, parse=None, **kwargs: parse(info) if parse else info)

    BinanceMarket(gateway).symbols()

    assert gateway.limiter.limit == 6000


def test_threads_acquiring_at_once_lose_no_weight() -> None:
    import threading

    weights, clock = limiter(limit=1_000_000)
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for _ in range(500):
            weights.acquire(2)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert weights._used == 8 * 500 * 2
    assert clock.slept == []


def test_an_answer_read_after_the_minute_turned_does_not_fill_the_new_minute() -> None:
    weights, clock = limiter()
    minute = weights.acquire(20)
    clock.now += 60  # the answer arrives in the next minute, still counting the old one

    weights.observe(1070, minute)
    weights.acquire(20)

    assert clock.slept == []


def test_the_servers_count_for_this_minute_is_adopted() -> None:
    weights, clock = limiter()
    minute = weights.acquire(20)

    weights.observe(1070, minute)
    weights.acquire(20)

    assert len(clock.slept) == 1  # 1070 + 20 > 1080: waits for the next minute
