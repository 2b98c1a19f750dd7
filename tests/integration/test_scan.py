"""The scan use case over the real SQLite store and the sample market: threads, failures, staleness, progress."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tests.databases import Target, open_store

from robson.adapters.indicators import indicator_arrays
from robson.adapters.market.sample import SampleMarket
from robson.adapters.paper import PaperExchange
from robson.adapters.signal_engine import SignalEngine
from robson.adapters.store import SqlStore
from robson.adapters.strategies import StrategyCatalog, bundled_strategies_dir
from robson.application.plan import Account
from robson.application.scan import ScanReport, ScanRequest, candles_to_fetch, scan
from robson.domain.guards import RiskLimits
from robson.domain.signals import SignalStatus
from robson.errors import InvalidInput, TemporaryExchangeError

CATALOG = StrategyCatalog([bundled_strategies_dir()])
RESCUE = CATALOG.get("rescue-forces")
ACCOUNT = Account(capital=Decimal(1000), fee_rate=Decimal("0.001"), limits=RiskLimits())


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.moment = now

    def now(self) -> datetime:
        return self.moment


class RecordingMarket:
    """The sample market, recording which thread fetched what, failing on chosen symbols."""

    def __init__(self, inner: SampleMarket, failing: dict[str, Exception] | None = None) -> None:
        self.inner, self.failing, self.name = inner, failing or {}, inner.name
        self.fetch_threads: list[str] = []

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def candles(self, symbol: str, timeframe: str, limit: int):
        self.fetch_threads.append(threading.current_thread().name)
        if symbol in self.failing:
            raise self.failing[symbol]
        return self.inner.candles(symbol, timeframe, limit)


# The scanning strategies of the product brief (ma-cross-5m, freqtrade's reference rules, is left out).
FOUR_SCANNING = [s for s in CATALOG.all() if s.scan is not None and s.name != "ma-cross-5m"]


@pytest.fixture
def store(robson_db: Target) -> Iterator[SqlStore]:
    store = open_store(robson_db)
    yield store
    store.close()


def run(store: SqlStore, when: str, *, strategies=(RESCUE,), symbols=("BTCUSDT",), market=None, clock=None,
        entries: bool = True, **options) -> ScanReport:
    market = market or SampleMarket(as_of=at(when))
    exchange = PaperExchange(store, market, fee_rate=ACCOUNT.fee_rate, slippage_rate=Decimal("0.0005"),
                             starting_balances={"USDT": Decimal(1000)})
    options.setdefault("engine", SignalEngine())
    return scan(ScanRequest(strategies=tuple(strategies), symbols=tuple(symbols), entries=entries),
                store=store, market=market, exchange=exchange, account=ACCOUNT, clock=clock or Clock(at(when)),
                **options)


def test_candles_are_fetched_on_worker_threads_and_indicators_computed_on_the_caller(store):
    market = RecordingMarket(SampleMarket(as_of=at("2021-06-22T01:15")))
    computed_on: list[str] = []

    def indicators(specs, prices):
        computed_on.append(threading.current_thread().name)
        return indicator_arrays(specs, prices)

    report = run(store, "2021-06-22T01:15", strategies=FOUR_SCANNING, market=market,
                 engine=SignalEngine(indicators))

    assert report.scanned == 4
    assert all(name.startswith("scan-fetch") for name in market.fetch_threads)
    assert set(computed_on) == {threading.current_thread().name}


def test_each_symbol_and_timeframe_is_fetched_once_for_every_strategy_on_it(store):
    market = RecordingMarket(SampleMarket(as_of=at("2021-06-22T01:15")))
    strategies = [CATALOG.get("rescue-forces"), CATALOG.get("mean-reversion-ma99")]  # both 15m

    report = run(store, "2021-06-22T01:15", strategies=strategies, market=market)

    assert len(market.fetch_threads) == 1
    assert report.scanned == 2


def test_a_symbol_the_exchange_fails_on_is_reported_and_the_others_are_scanned(store):
    market = RecordingMarket(SampleMarket(as_of=at("2021-06-22T01:15")),
                             failing={"ETHUSDT": TemporaryExchangeError("Binance answered 503")})

    report = run(store, "2021-06-22T01:15", symbols=("ETHUSDT", "BTCUSDT"), market=market)

    assert [(f.symbol, f.message) for f in report.failures] == [("ETHUSDT", "Binance answered 503")]
    assert [s.symbol for s in report.detected] == ["BTCUSDT"]
    assert not report.failed


def test_a_series_whose_last_candle_is_old_is_reported_stale_and_not_scanned(store):
    # The market's data stop at 01:15 while the clock says 03:00: a delisted or halted symbol looks like this.
    report = run(store, "2021-06-22T03:00", market=SampleMarket(as_of=at("2021-06-22T01:15")))

    [failure] = report.failures
    assert failure.message.startswith("no fresh 15m candle: the last one closed 2021-06-22 01:15 UTC")
    assert report.detected == [] and report.failed


def test_a_candle_closed_seconds_ago_and_not_served_yet_is_not_stale(store):
    # The exchange has not published the 01:00 candle yet, 20 s after it closed by our clock.
    report = run(store, "2021-06-22T01:15:20", market=SampleMarket(as_of=at("2021-06-22T01:14:30")))

    assert report.failures == [] and report.scanned == 1


def test_progress_is_reported_once_per_symbol_and_timeframe(store):
    seen: list[tuple[int, int, str]] = []

    run(store, "2021-06-22T01:15", strategies=FOUR_SCANNING, symbols=("BTCUSDT", "ETHUSDT"),
        on_progress=lambda done, total, label: seen.append((done, total, label)))

    assert [done for done, _, _ in seen] == [1, 2, 3, 4, 5, 6]
    assert {total for _, total, _ in seen} == {6}
    assert sorted(label for _, _, label in seen) == ["BTCUSDT 15m", "BTCUSDT 1h", "BTCUSDT 30m", "ETHUSDT 15m",
                                                     "ETHUSDT 1h", "ETHUSDT 30m"]


def test_a_signal_whose_setup_left_the_strategy_expires_with_that_reason(store):
    [signal] = run(store, "2021-06-22T01:15").detected
    renamed = dataclasses.replace(RESCUE.scan.setups[0], name="renamed-setup")
    changed = dataclasses.replace(RESCUE, scan=dataclasses.replace(RESCUE.scan, setups=(renamed,)))

    report = run(store, "2021-06-22T01:30", strategies=(changed,))

    [resolved] = report.resolved
    assert (resolved.id, resolved.status) == (signal.id, SignalStatus.EXPIRED)
    assert resolved.resolution == "the strategy no longer has the setup 'ma4-crosses-above-ma9'"


def test_a_signal_missed_for_longer_than_its_window_expires(store):
    [signal] = run(store, "2021-06-22T01:15").detected

    report = run(store, "2021-06-22T09:00")

    assert [(s.id, s.status) for s in report.resolved] == [(signal.id, SignalStatus.EXPIRED)]
    assert "signal candle no longer in the data" in report.resolved[0].resolution


def test_a_replay_moved_back_in_time_leaves_later_signals_alone(store):
    [signal] = run(store, "2021-06-22T01:15").detected

    report = run(store, "2021-06-21T12:00")

    assert report.resolved == [] and report.failures == []
    with store.read() as session:
        assert session.get_signal(signal.id).status is SignalStatus.DETECTED


def test_the_fetch_covers_the_indicators_and_the_longest_confirmation_window():
    bounce = CATALOG.get("bounce-back")

    assert candles_to_fetch(bounce.scan) == bounce.scan.candles_needed + 3
    assert candles_to_fetch(RESCUE.scan) == RESCUE.scan.candles_needed + 1


def test_a_strategy_without_a_scan_section_is_refused(store):
    with pytest.raises(InvalidInput, match="all-in.*entered by hand"):
        run(store, "2021-06-22T01:15", strategies=(CATALOG.get("all-in"),))
