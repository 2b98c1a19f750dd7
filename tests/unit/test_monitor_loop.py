"""The monitor loop and its lock: it looks at its lease before every tick, and a lost lease ends the loop."""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, datetime

import pytest

from robson.application.watching import MONITOR_LOCK, MonitorReport, run_monitor
from robson.errors import LeaseLost, MarketDataError

REPORT = MonitorReport(datetime(2026, 11, 21, tzinfo=UTC), ())


class FakeLease:
    """A lease that holds for `good` looks, then is lost."""

    def __init__(self, good: int) -> None:
        self.good, self.looks = good, 0

    def ensure(self) -> None:
        self.looks += 1
        if self.looks > self.good:
            raise LeaseLost("lost the lock monitor: not renewed for 45 s of its 60 s lease")


class FakeStore:
    lease_seconds = 60.0

    def __init__(self, lease: FakeLease) -> None:
        self.lease, self.held = lease, []

    @contextmanager
    def lock(self, name: str, *, what: str, wait_seconds: float = 0):
        self.held.append(name)
        yield self.lease


def loop(store: FakeStore, tick, errors: list) -> list:
    reports: list = []
    with pytest.raises(LeaseLost):
        run_monitor(tick, store=store, on_report=reports.append, interval=60, sleep=lambda _: None,
                    stopping=lambda: False, on_error=errors.append)
    return reports


def test_the_loop_stops_before_the_first_tick_its_lease_no_longer_covers():
    store, errors = FakeStore(FakeLease(good=3)), []

    reports = loop(store, lambda: REPORT, errors)

    assert len(reports) == 3 and errors == []
    assert store.held == [MONITOR_LOCK] and store.lease.looks == 4


def test_a_lease_lost_inside_a_tick_ends_the_loop_and_is_not_reported_as_a_failed_tick():
    store, errors, ticks = FakeStore(FakeLease(good=10)), [], []

    def tick() -> MonitorReport:
        ticks.append(1)
        if len(ticks) == 1:
            raise MarketDataError("no candles")  # a failed tick: reported, and the loop goes on
        raise LeaseLost("lost the lock monitor: another process took it over, or robson unlock removed it")

    reports = loop(store, tick, errors)

    assert reports == [] and len(ticks) == 2
    assert [type(e) for e in errors] == [MarketDataError]
