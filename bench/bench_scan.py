"""Benchmark `robson scan` (prints figures; not a test).

(a) 40 symbols × the four scanning strategies × 500 candles of 15m, in memory: the symbols are
    synthesized from the bundled BTCUSDT 15m series (shifted windows, scaled prices), every strategy
    is scanned on 15m (--timeframe 15m), against a temp SQLite store. Two scans at consecutive
    closes, the second timed (it decides the first one's signals and looks for new ones); wall time,
    and CPU ms per (symbol, strategy) excluding data loading (the candles are already in memory)
    — target ≤ 20 ms.
(b) `robson scan` end to end on the sample market as a cold subprocess (fresh database each run),
    median of N (default 5).
Usage: python bench/bench_scan.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

SYMBOLS = 40
CANDLES = 500
QUARTER_MS = 900_000
BIN = Path(sys.executable).parent / "robson"


class MemoryMarket:
    """MarketData over synthesized 15m series: everything is in memory, so fetching costs nothing."""

    name = "memory"

    def __init__(self, series: dict[str, list], end: int) -> None:
        self.series, self.end = series, end  # end: how many candles have closed (index into each series)

    def now(self):
        from robson.domain.market import ms_to_datetime

        last = next(iter(self.series.values()))[self.end - 1]
        return ms_to_datetime(last.open_time + QUARTER_MS)

    def symbols(self) -> list[str]:
        return sorted(self.series)

    def candles(self, symbol: str, timeframe: str, limit: int):
        return self.series[symbol][max(0, self.end - limit):self.end]


def synthesize() -> dict[str, list]:
    """Return 40 symbols of CANDLES + 1 candles each: BTCUSDT 15m windows shifted by a day, prices scaled."""
    from robson.adapters.market.sample import SampleMarket

    source = SampleMarket().candles("BTCUSDT", "15m", CANDLES + 1 + SYMBOLS * 96)
    last_open = source[-1].open_time
    series = {}
    for n in range(SYMBOLS):
        window = source[n * 96:n * 96 + CANDLES + 1]
        scale = Decimal(1) / Decimal(n + 1)
        shift = last_open - window[-1].open_time  # every symbol ends at the same time
        series[f"S{n:02d}USDT"] = [
            replace(c, open_time=c.open_time + shift, open=c.open * scale, high=c.high * scale, low=c.low * scale,
                    close=c.close * scale) for c in window]
    return series


def bench_in_memory() -> None:
    from robson.adapters.indicators import indicator_arrays
    from robson.adapters.signal_engine import Series, SignalEngine
    from robson.adapters.store import SqlStore
    from robson.adapters.strategies import StrategyCatalog, bundled_strategies_dir
    from robson.application.plan import Account
    from robson.application.scan import ScanRequest, scan
    from robson.domain.guards import RiskLimits

    series = synthesize()
    strategies = tuple(s for s in StrategyCatalog([bundled_strategies_dir()]).all()
                       if s.scan is not None and s.name != "ma-cross-5m")  # the product brief's four
    account = Account(capital=Decimal(1000), fee_rate=Decimal("0.001"), limits=RiskLimits())
    request = ScanRequest(strategies=strategies, symbols=tuple(series), timeframe="15m", entries=False)
    first = Series.from_candles(series["S00USDT"]).prices()
    for strategy in strategies:  # pandas-ta's import (for rsi) is not the per-pair cost measured here
        indicator_arrays(strategy.scan.indicators, first)
    indicator_seconds = [0.0]

    def timed_indicators(specs, prices):
        start = time.process_time()
        try:
            return indicator_arrays(specs, prices)
        finally:
            indicator_seconds[0] += time.process_time() - start

    with tempfile.TemporaryDirectory() as tmp:
        store = SqlStore.for_path(Path(tmp) / "bench.db")
        try:
            pairs = len(series) * len(strategies)
            for end, timed in ((CANDLES, False), (CANDLES + 1, True)):
                market = MemoryMarket(series, end)
                indicator_seconds[0] = 0.0
                wall, cpu = time.perf_counter(), time.process_time()
                report = scan(request, store=store, market=market, exchange=None, account=account, clock=market,
                              engine=SignalEngine(timed_indicators))
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                if timed:
                    print(f"(a) {len(series)} symbols × {len(strategies)} strategies × {CANDLES} candles of 15m "
                          f"(in memory, temp SQLite store):")
                    print(f"    wall {wall * 1000:.0f} ms; CPU {cpu * 1000:.0f} ms = {cpu * 1000 / pairs:.2f} ms per "
                          f"(symbol, strategy) (target ≤ 20 ms), of which indicators "
                          f"{indicator_seconds[0] * 1000 / pairs:.2f} ms")
                    print(f"    scanned {report.scanned} pairs: {len(report.detected)} new signals, "
                          f"{len(report.resolved)} decided, {len(report.failures)} failures")
        finally:
            store.close()


def bench_cold_cli(runs: int) -> None:
    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("ROBSON_", "BINANCE_"))}
            env.update(ROBSON_DB=str(Path(tmp) / "r.db"), ROBSON_AS_OF="2021-06-22T01:30", XDG_CONFIG_HOME=tmp)
            start = time.perf_counter()
            done = subprocess.run([str(BIN), "scan", "--symbols", "BTCUSDT,ETHUSDT"], env=env, cwd=tmp,
                                  capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            if done.returncode != 0:
                raise SystemExit(f"robson scan failed ({done.returncode}): {done.stderr.strip()}")
    print(f"(b) robson scan, cold subprocess, sample market, every scanning strategy × BTCUSDT,ETHUSDT, fresh database: "
          f"median {statistics.median(times):.2f} s of {runs} (min {min(times):.2f}, max {max(times):.2f})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    bench_in_memory()
    bench_cold_cli(args.runs)


if __name__ == "__main__":
    main()
