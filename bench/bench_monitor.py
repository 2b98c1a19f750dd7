"""Benchmark one `monitor --once` tick over 1,000 ACTIVE paper operations on 20 symbols (prints figures).

Setup (not timed): a real SQLite store, the paper exchange, and 1,000 long operations opened through
the execute use case on 20 synthetic symbols (real BTCUSDT 5m closes, scaled per symbol), half of them
on a trailing strategy. Then an hour passes: every operation has 12 new 5m candles to walk, the price
runs up so every trailing operation moves its stop, and a tenth of the operations are stopped out.
Each run copies the prepared database and times monitor_once in-process (no process start), which is
what the CLI's tick calls. A second, quiet tick an hour later (flat candles: nothing moves or closes,
only the last-check times advance) shows the steady state. Target: ≤ 0.5 s per tick.
Usage: python bench/bench_monitor.py [--runs N] [--operations N] [--symbols N]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from robson.domain.market import Candle, PriceQuote, SymbolInfo, datetime_to_ms  # noqa: E402

T0 = datetime(2021, 7, 1, tzinfo=UTC)
M5 = 5 * 60_000
NEW_CANDLES = 12  # an hour of 5m candles since the last check
HISTORY = 24  # candles before the operations open


class BenchMarket:
    """A 5m market of synthetic symbols; counts candle fetches so one-per-symbol is visible."""

    name = "bench"

    def __init__(self, symbols: int) -> None:
        self.clock = T0
        self.fetches = 0
        self.names = [f"S{i:02d}USDT" for i in range(symbols)]
        self.bars: dict[str, list[Candle]] = {}
        for i, name in enumerate(self.names):
            scale = D(1 + i)  # S00 trades near 100, S19 near 2000
            bars = []
            for k in range(HISTORY + 2 * NEW_CANDLES):
                if k < HISTORY:
                    o, h, low, c = D("100"), D("100.5"), D("99.5"), D("100")
                elif k < HISTORY + NEW_CANDLES:  # a steady climb of 1 per candle to 112: trailing stops move
                    step = D(k - HISTORY)
                    o, h, low, c = 100 + step, 101 + step, D("99.5") + step, 101 + step
                else:  # then a quiet hour at the top: nothing moves, nothing closes
                    o, h, low, c = D("112"), D("112.5"), D("111.5"), D("112")
                bars.append(Candle(datetime_to_ms(T0) + (k - HISTORY) * M5, o * scale, h * scale, low * scale,
                                   c * scale, D("10")))
            self.bars[name] = bars

    def now(self) -> datetime:
        return self.clock

    def symbols(self) -> list[str]:
        return list(self.names)

    def symbol_info(self, symbol: str) -> SymbolInfo:
        return SymbolInfo(symbol=symbol, base_asset=symbol.removesuffix("USDT"), quote_asset="USDT",
                          tick_size=D("0.01"), step_size=D("0.001"), min_qty=D("0.001"), min_notional=D("10"))

    def last_price(self, symbol: str) -> PriceQuote:
        closed = self._closed(symbol)
        return PriceQuote(symbol, closed[-1].close, self.clock)

    def fill_price(self, symbol: str) -> PriceQuote:
        return self.last_price(symbol)

    def holds(self, symbol: str, timeframe: str) -> bool:
        return timeframe == "5m"

    def candles(self, symbol: str, timeframe: str, limit: int) -> list[Candle]:
        from robson.errors import MarketDataError

        if timeframe != "5m":
            raise MarketDataError(f"no {timeframe} candles here")
        self.fetches += 1
        return self._closed(symbol)[-limit:]

    def _closed(self, symbol: str) -> list[Candle]:
        now = datetime_to_ms(self.clock)
        return [c for c in self.bars[symbol] if c.open_time + M5 <= now]


def prepare(path: Path | str, operations: int, symbols: int):
    """Open `operations` paper longs at T0 in the SQLite file or database URL path; return (market, account,
    strategies)."""
    from robson.adapters.paper import PaperExchange
    from robson.adapters.store import SqlStore
    from robson.application.execute import LiveGate, execute
    from robson.application.plan import Account
    from robson.domain.guards import RiskLimits
    from robson.domain.intent import IntentSource, IntentStatus, TradingIntent
    from robson.domain.market import Side
    from robson.domain.strategy import parse_strategy

    market = BenchMarket(symbols)
    strategies = {
        "plain": parse_strategy({"name": "plain", "timeframe": "15m"}, "plain.yaml"),
        "trend": parse_strategy({"name": "trend", "timeframe": "15m", "trailing": "hand_span"}, "trend.yaml"),
    }
    # A book that holds every operation: execute checks the open-positions limits again before each entry.
    account = Account(capital=D("100000000"), fee_rate=D("0.001"),
                      limits=RiskLimits(max_position_percent=D("100"), max_open_positions=operations + 1,
                                        max_positions_per_symbol=operations + 1))
    store = SqlStore(path) if isinstance(path, str) else SqlStore.for_path(path)
    book = PaperExchange(store, market, fee_rate=D("0.001"), slippage_rate=D("0"),
                         starting_balances={"USDT": D("100000000")})
    for n in range(operations):
        symbol = market.names[n % symbols]
        scale = D(1 + n % symbols)
        # A tenth sit just under the market and stop out on the first new candle's dip to 99.5.
        stop = D("99.6") * scale if n % 10 == 0 else D("95") * scale
        intent = TradingIntent(
            id=f"pl-{n:08x}", symbol=symbol, side=Side.BUY, status=IntentStatus.VALIDATED,
            strategy="trend" if n % 2 else "plain", source=IntentSource.MANUAL, timeframe="15m",
            capital=account.capital, risk_percent=D("1"), entry=100 * scale, stop=stop, stop_method="bench",
            quantity=D("1"), target=None, created_at=T0, updated_at=T0, validated_at=T0)
        with store.transaction() as tx:
            tx.add_intent(intent)
        execute(intent.id, strategy=strategies[intent.strategy], store=store, market=market, exchange=book,
                account=account, clock=market, gate=LiveGate(False, False, False, False))
    store.close()
    return market, account, strategies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--operations", type=int, default=1000)
    parser.add_argument("--symbols", type=int, default=20)
    args = parser.parse_args()

    from robson.adapters.paper import PaperExchange
    from robson.adapters.store import SqlStore
    from robson.application.monitor import monitor_once

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.db"
        started = time.perf_counter()
        market, account, strategies = prepare(prepared, args.operations, args.symbols)
        setup = time.perf_counter() - started
        market.clock = T0 + timedelta(minutes=5 * NEW_CANDLES)
        seconds, quiet, report, quiet_report = [], [], None, None
        peak = 0
        for run in range(args.runs + 1):  # the extra run measures memory and is not timed
            path = Path(tmp) / f"run{run}.db"
            shutil.copy(prepared, path)
            store = SqlStore.for_path(path)
            book = PaperExchange(store, market, fee_rate=D("0.001"), slippage_rate=D("0"),
                                 starting_balances={"USDT": D("100000000")})
            market.fetches = 0
            if run == args.runs:
                tracemalloc.start()
            started = time.perf_counter()
            report = monitor_once(store=store, market=market, exchange=book, account=account, clock=market,
                                  strategy_for=strategies.get)
            if run < args.runs:
                seconds.append(time.perf_counter() - started)
                market.clock += timedelta(minutes=5 * NEW_CANDLES)
                started = time.perf_counter()
                quiet_report = monitor_once(store=store, market=market, exchange=book, account=account, clock=market,
                                            strategy_for=strategies.get)
                quiet.append(time.perf_counter() - started)
                market.clock -= timedelta(minutes=5 * NEW_CANDLES)
            else:
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
            store.close()
    assert report is not None
    print(f"monitor tick: {args.operations} ACTIVE paper operations on {args.symbols} symbols, "
          f"{NEW_CANDLES} new 5m candles each (setup {setup:.1f} s, not timed)")
    print(f"  checked {len(report.checks)}, closed {len(report.closed)}, stop moves {report.stop_moves}, "
          f"errors {len(report.errors)}, candle fetches {market.fetches}")
    print(f"  tick median {statistics.median(seconds) * 1000:.0f} ms (min {min(seconds) * 1000:.0f}, "
          f"max {max(seconds) * 1000:.0f}, runs {args.runs})   target ≤ 500 ms")
    assert quiet_report is not None
    print(f"  quiet tick an hour later: checked {len(quiet_report.checks)}, closed {len(quiet_report.closed)}, "
          f"stop moves {quiet_report.stop_moves}: median {statistics.median(quiet) * 1000:.0f} ms")
    print(f"  peak Python memory during a tick {peak / 2**20:.1f} MiB (tracemalloc, separate run)")


if __name__ == "__main__":
    main()
