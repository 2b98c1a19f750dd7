"""Price alerts in the SQL store (SQLite and PostgreSQL): exact round trips, IDs, filters, and firing exactly once
when checks race — compare-and-set ACTIVE → FIRED, shown in one process by interleaving and across processes."""

from __future__ import annotations

import dataclasses
import multiprocessing
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from multiprocessing.queues import Queue
    from multiprocessing.synchronize import Barrier

from tests.databases import Target, fetch, open_store
from robson.adapters.market.sample import SampleMarket
from robson.adapters.store import SqlStore
from robson.application.alerts import check_alerts
from robson.domain.alerts import Alert, AlertStatus, Crossing, Direction
from robson.domain.market import datetime_to_ms
from robson.domain.orders import AuditKind
from robson.errors import AmbiguousId, IllegalTransition, InvalidInput, MarketDataError, NotFound

SET_AT = datetime(2021, 6, 9, 5, 45, tzinfo=UTC)
CHECK_AT = datetime(2021, 6, 9, 6, 35, tzinfo=UTC)  # the 06:25 candle's wick to 33968.70 has closed (06:30)
WICK_CANDLE = datetime_to_ms(datetime(2021, 6, 9, 6, 25, tzinfo=UTC))


def make_alert(alert_id: str = "al-7f3a9c2e", **changes: object) -> Alert:
    alert = Alert(id=alert_id, symbol="BTCUSDT", direction=Direction.ABOVE, price=Decimal("33950.00"),
                  status=AlertStatus.ACTIVE, created_at=SET_AT, updated_at=SET_AT, note="breakout retest")
    return dataclasses.replace(alert, **changes)


@pytest.fixture
def store(robson_db: Target) -> Iterator[SqlStore]:
    store = open_store(robson_db)
    yield store
    store.close()


def stored_alerts(store: SqlStore) -> list[Alert]:
    with store.read() as session:
        return session.list_alerts()


def no_plan(intent_id: str):
    raise AssertionError(f"no alert here arms a plan, yet {intent_id} was to be validated")


# --- round trips, IDs, lists ------------------------------------------------------------------


def test_an_alert_round_trips_with_exact_decimals_times_and_its_verdict(store: SqlStore, robson_db: Target) -> None:
    fired = make_alert(plan_id="pl-12345678").fire(
        Crossing(WICK_CANDLE, WICK_CANDLE + 300_000, Decimal("33968.70"), gapped=False), CHECK_AT)
    fired = dataclasses.replace(fired, verdict={"intent_id": "pl-12345678", "verdict": "WARN", "status": "VALIDATED"})

    with store.transaction() as session:
        session.add_alert(fired)
    with store.read() as session:
        loaded = session.get_alert(fired.id)

    assert loaded == fired
    assert fetch(robson_db, "SELECT price, fired_price, checked_ms FROM alerts")[0] == {
        "price": "33950.00", "fired_price": "33968.70", "checked_ms": WICK_CANDLE + 300_000}


def test_alerts_list_oldest_first_and_by_status(store: SqlStore) -> None:
    with store.transaction() as session:
        session.add_alert(make_alert("al-00000002", created_at=SET_AT + timedelta(minutes=1)))
        session.add_alert(make_alert("al-00000001"))
        session.add_alert(make_alert("al-00000003", status=AlertStatus.REMOVED))

    with store.read() as session:
        every = [a.id for a in session.list_alerts()]
        active = [a.id for a in session.list_alerts([AlertStatus.ACTIVE])]
        none = session.list_alerts([])

    assert every == ["al-00000001", "al-00000003", "al-00000002"]
    assert active == ["al-00000001", "al-00000002"]
    assert none == []


def test_an_alert_id_resolves_from_a_prefix_and_refuses_ambiguous_or_unknown_ones(store: SqlStore) -> None:
    with store.transaction() as session:
        session.add_alert(make_alert("al-0a000001"))
        session.add_alert(make_alert("al-0a000002"))
        session.add_alert(make_alert("al-7f3a9c2e"))

    with store.read() as session:
        assert [session.resolve_alert_id(t) for t in ("al-7f", "7F3A", "AL7f3a9c2e")] == ["al-7f3a9c2e"] * 3
        with pytest.raises(AmbiguousId, match="ID prefix 'al-0a' is ambiguous: it matches 2"):
            session.resolve_alert_id("0a")
        with pytest.raises(NotFound, match="no alert matches 'al-ff'"):
            session.resolve_alert_id("ff")
        with pytest.raises(InvalidInput, match="an alert ID is required"):
            session.resolve_alert_id(" ")
        with pytest.raises(NotFound, match="alert al-00000000 not found"):
            session.get_alert("al-00000000")


def test_a_symbol_longer_than_its_column_is_refused_before_the_database(store: SqlStore) -> None:
    with pytest.raises(InvalidInput, match=r"symbol 'X{21}' is 21 characters long; robson keeps at most 20"):
        with store.transaction() as session:
            session.add_alert(make_alert(symbol="X" * 21))

    assert stored_alerts(store) == []


# --- compare-and-set -------------------------------------------------------------------------


def test_the_second_of_two_fires_read_while_active_is_refused(store: SqlStore) -> None:
    with store.transaction() as session:
        session.add_alert(make_alert())
    read_by_both = stored_alerts(store)[0]
    crossing = Crossing(WICK_CANDLE, WICK_CANDLE + 300_000, Decimal("33968.70"), gapped=False)

    with store.transaction() as session:
        session.update_alert(read_by_both.fire(crossing, CHECK_AT), expected_status=AlertStatus.ACTIVE)
    with pytest.raises(IllegalTransition, match="alert al-7f3a9c2e is FIRED, expected ACTIVE"):
        with store.transaction() as session:
            session.update_alert(read_by_both.fire(crossing, CHECK_AT + timedelta(minutes=5)),
                                 expected_status=AlertStatus.ACTIVE)

    assert stored_alerts(store)[0].fired_at == CHECK_AT


def test_the_last_check_moves_only_forward_and_only_on_an_active_alert(store: SqlStore) -> None:
    with store.transaction() as session:
        session.add_alert(make_alert("al-00000001"))
        session.add_alert(make_alert("al-00000002", status=AlertStatus.REMOVED))

    with store.transaction() as session:
        moved = [session.mark_alert_checked("al-00000001", 2_000, CHECK_AT),
                 session.mark_alert_checked("al-00000001", 1_000, CHECK_AT),  # a replay further back
                 session.mark_alert_checked("al-00000002", 3_000, CHECK_AT)]

    assert moved == [True, False, False]
    assert [(a.checked_ms, a.updated_at) for a in stored_alerts(store)] == [(2_000, CHECK_AT), (None, SET_AT)]


# --- checks racing ---------------------------------------------------------------------------


class RacedMarket:
    """The sample market at CHECK_AT that, when the first check fetches its candles, lets a whole second check run."""

    def __init__(self, race) -> None:
        self._market = SampleMarket(as_of=CHECK_AT)
        self._race = race
        self.name = self._market.name

    def __getattr__(self, name: str):
        return getattr(self._market, name)

    def candles(self, symbol: str, timeframe: str, limit: int):
        race, self._race = self._race, None
        if race is not None:
            race()
        return self._market.candles(symbol, timeframe, limit)


def test_a_check_that_loses_the_race_reports_nothing_and_the_alert_fires_once(store: SqlStore, robson_db: Target):
    with store.transaction() as session:
        session.add_alert(make_alert())
    second: list = []

    def other_check() -> None:  # a monitor tick, say, reading and firing while this check fetches candles
        market = SampleMarket(as_of=CHECK_AT)
        second.append(check_alerts(store=store, market=market, clock=market, validate_plan=no_plan))

    market = RacedMarket(other_check)
    first = check_alerts(store=store, market=market, clock=market, validate_plan=no_plan)

    (won,) = second[0].fired
    assert (first.watched, first.fired, first.errors) == (1, (), ())
    assert (won.alert.fired_candle_ms, won.alert.fired_price, won.timeframe) == (WICK_CANDLE, Decimal("33968.7"), "5m")
    assert [a.status for a in stored_alerts(store)] == [AlertStatus.FIRED]
    with store.read() as session:
        assert [e.kind for e in session.audit_trail()] == [AuditKind.ALERT_FIRED]


class MarketWithout:
    """The sample market at CHECK_AT, with one symbol's candles out of reach (delisted, Binance down for it)."""

    def __init__(self, symbol: str) -> None:
        self._market = SampleMarket(as_of=CHECK_AT)
        self._symbol = symbol
        self.name = self._market.name

    def __getattr__(self, name: str):
        return getattr(self._market, name)

    def candles(self, symbol: str, timeframe: str, limit: int):
        if symbol == self._symbol:
            raise MarketDataError(f"no {symbol} {timeframe} candles")
        return self._market.candles(symbol, timeframe, limit)


def test_a_symbol_whose_candles_cannot_be_had_is_an_error_of_its_alerts_alone(store: SqlStore) -> None:
    with store.transaction() as session:
        session.add_alert(make_alert("al-00000001", symbol="ETHUSDT", price=Decimal("5000")))
        session.add_alert(make_alert("al-00000002"))
    market = MarketWithout("ETHUSDT")

    report = check_alerts(store=store, market=market, clock=market, validate_plan=no_plan)

    assert [f.alert.id for f in report.fired] == ["al-00000002"]
    assert [(p.alert_id, p.message) for p in report.errors] == [
        ("al-00000001", "ETHUSDT above 5000 not checked: no ETHUSDT 5m candles")]
    assert [(a.id, a.status, a.checked_ms) for a in stored_alerts(store)] == [
        ("al-00000001", AlertStatus.ACTIVE, None), ("al-00000002", AlertStatus.FIRED, WICK_CANDLE + 300_000)]


PROCESSES = 4


def check_in_a_process(url: str, worker: int, start_together: Barrier, results: Queue[str]) -> None:
    """In a child process: check the alerts at CHECK_AT, as a cron `alert check --once` or a monitor tick would."""
    try:
        store = SqlStore(url)
        market = SampleMarket(as_of=CHECK_AT)
        market.candles("BTCUSDT", "5m", 1)  # the sample files read before the start, so the checks overlap
        start_together.wait(timeout=60)
        report = check_alerts(store=store, market=market, clock=market, validate_plan=no_plan)
        store.close()
        results.put(f"fired {worker}" if report.fired else f"nothing {worker}")
    except BaseException as e:  # report everything: the parent asserts there was nothing
        results.put(f"error {worker}: {type(e).__name__}: {e}")
        raise


@pytest.mark.slow
def test_processes_checking_at_once_fire_the_alert_exactly_once(store: SqlStore, robson_db: Target) -> None:
    with store.transaction() as session:
        session.add_alert(make_alert())
    context = multiprocessing.get_context("spawn")
    start_together = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [context.Process(target=check_in_a_process, args=(store.url, worker, start_together, results))
                 for worker in range(PROCESSES)]

    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)

    reported = sorted(results.get(timeout=10) for _ in processes)
    assert [process.exitcode for process in processes] == [0] * PROCESSES, reported
    assert sum(line.startswith("fired") for line in reported) == 1, reported
    assert sum(line.startswith("nothing") for line in reported) == PROCESSES - 1, reported
    assert [a.status for a in stored_alerts(store)] == [AlertStatus.FIRED]
    assert fetch(robson_db, "SELECT count(*) AS n FROM audit_events WHERE kind = 'alert_fired'") == [{"n": 1}]
