"""The backtest never sees the future (like freqtrade's lookahead-analysis).

For many cut points T, a backtest over the sample market replayed as of T (only candles closed by
T exist) makes exactly the entries the full run made before T, and every trade the full run had
finished before T is the same trade. And no indicator value at a candle changes when later candles
are added.

Every entry decided at or before T (its price, stop, target, size and the guards' verdict) is the
same. An entry fills at the open of the candle after the deciding close. A cut inside a candle (05:47)
has not seen that candle close, so an entry made at its start (05:45) is compared only from cuts
on or after its close: "before T" means before the start of the 5m candle T falls in.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pytest

from robson.adapters.indicators import indicator_arrays
from robson.adapters.market.sample import SampleMarket
from robson.adapters.signal_engine import SignalEngine
from robson.adapters.strategies import StrategyCatalog, bundled_strategies_dir
from robson.application.backtest import BacktestRequest, backtest
from robson.domain.conditions import parse_indicators
from robson.domain.guards import RiskLimits

CATALOG = StrategyCatalog([bundled_strategies_dir()])
# Cut points across the sample: on a 5m boundary, inside a candle, on an hour, in a data gap.
CUTS = ["2021-01-07T13:37", "2021-02-11T04:20", "2021-03-15T00:00", "2021-04-20T03:00", "2021-05-19T13:05",
        "2021-06-09T05:47", "2021-07-05T11:30"]


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def request(name: str, **changes) -> BacktestRequest:
    base = BacktestRequest(strategy=CATALOG.get(name), symbols=("BTCUSDT",), capital=Decimal(1000),
                           fee_rate=Decimal("0.001"), slippage_rate=Decimal("0.0005"),
                           limits=RiskLimits(max_risk_percent=Decimal(2)))
    return dataclasses.replace(base, **changes)


def run(name: str, as_of: datetime | None = None, **changes):
    return backtest(request(name, **changes), history=SampleMarket(as_of=as_of), engine=SignalEngine())


def entries(result, before: datetime) -> list[tuple]:
    return [(t.operation.opened_at, t.operation.entry_price, t.operation.quantity, t.operation.initial_stop,
             t.operation.target) for t in result.trades if t.operation.opened_at < before]


def decisions(result, until: datetime) -> list[tuple]:
    """Every entry planned and checked at or before until: price, stop, target, size and verdict."""
    return [(d.time, d.entry, d.stop, d.target, d.quantity, d.failed) for d in result.decisions if d.time <= until]


def finished(result, before: datetime) -> list[tuple]:
    """Trades whose exit was known before the cut: the exit candle closed by then."""
    return [(t.operation.opened_at, t.operation.closed_at, t.operation.exit_price, t.operation.realized_pnl)
            for t in result.trades if t.operation.close_reason.value != "end_of_data"
            and t.exit_candle_time.timestamp() + 300 <= before.timestamp()]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "changes"), [
    ("ma-cross-5m", {"stake": Decimal(100), "max_open": 1, "guards": False}),
    ("ma-cross-5m", {}),
    ("rescue-forces", {}),
    ("bounce-back", {}),
])
def test_a_backtest_cut_at_t_makes_the_entries_the_full_run_made_before_t(name, changes):
    full = run(name, **changes)

    for cut in map(at, CUTS):
        truncated = run(name, as_of=cut, **changes)
        known = cut.replace(minute=cut.minute - cut.minute % 5, second=0)
        assert decisions(truncated, cut) == decisions(full, cut), cut
        assert entries(truncated, known) == entries(full, known), cut
        assert finished(truncated, cut) == finished(full, cut), cut
        assert truncated.trades, cut


SPECS = parse_indicators({
    "sma20": {"kind": "sma", "length": 20}, "ema20": {"kind": "ema", "length": 20},
    "rsi14": {"kind": "rsi", "length": 14}, "atr14": {"kind": "atr", "length": 14},
    "macd": {"kind": "macd"}, "bb": {"kind": "bbands", "length": 20, "std": 2},
    "vol20": {"kind": "volume_sma", "length": 20},
})


def test_no_indicator_value_changes_when_later_candles_are_added():
    series = SampleMarket().history("BTCUSDT", "1h").series
    full = indicator_arrays(SPECS, series.prices())

    for cut in (300, 1000, 2500, len(series) - 7):
        shorter = indicator_arrays(SPECS, series.slice(0, cut).prices())
        for name, values in shorter.items():
            assert np.array_equal(values, full[name][:cut], equal_nan=True), (name, cut)


def test_a_signal_is_found_on_a_candle_only_from_candles_closed_by_then():
    strategy = CATALOG.get("rescue-forces")
    series = SampleMarket().history("BTCUSDT", "15m").series
    full = SignalEngine().evaluate(strategy.scan, series).timeline(strategy.scan.setups[0])

    for cut in (2000, 9000, 15000, len(series) - 1):
        shorter = SignalEngine().evaluate(strategy.scan, series.slice(0, cut)).timeline(strategy.scan.setups[0])
        decided_before = [s for s in full if s[0] < cut and (s[2] < cut if s[1] else True)]
        assert [s for s in shorter if s[1] != 0] == [s for s in decided_before if s[1] != 0]
        assert [s[0] for s in shorter] == [s[0] for s in full if s[0] < cut]
