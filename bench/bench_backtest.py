"""Benchmark `robson backtest` (prints figures; not a test).

(a) MaCross (ma-cross-5m) over the 65,741 bundled BTCUSDT 5m candles with freqtrade's settings
    (--stake 100 --fee 0 --max-open 1 --no-guards): `robson backtest` as a whole cold process,
    median of N (default 5) — target ≤ 0.6 s on a quiet machine, ten times faster than freqtrade's
    5.9 s; and the backtest in process, imports excluded (data from the array cache, signals, the
    replay, the statistics) — target ≤ 0.15 s — split into where the time goes.
(b) The four scanning strategies of the product brief over the whole sample: wall time and peak
    memory (max RSS) of each cold process.
(c) freqtrade, when `freqtrade` is on PATH: its own `backtesting` of MaCross on the same file, timed in
    the same run; otherwise its figure recorded on this machine (5.9 s quiet, 10 s under load).
Usage: python bench/bench_backtest.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

BIN = Path(sys.executable).parent / "robson"
MACROSS = ["backtest", "--strategy", "ma-cross-5m", "--symbols", "BTCUSDT", "--stake", "100", "--fee", "0",
           "--max-open", "1", "--no-guards"]
FREQTRADE_RECORDED_SECONDS = 5.9  # freqtrade 2026.9 backtesting MaCross on this machine, quiet (10 s under load)
BRIEF = ("rescue-forces", "smooth-sailing", "bounce-back", "mean-reversion-ma99")


def env_for(tmp: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ROBSON_", "BINANCE_"))}
    env.update(ROBSON_DB=str(Path(tmp) / "r.db"), XDG_CONFIG_HOME=tmp, NO_COLOR="1")
    return env


def run_cold(args: list[str], tmp: str) -> tuple[float, int]:
    """Run robson once as a child process; return (wall seconds, peak RSS in KiB of that child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run([str(BIN), *args], env=env_for(tmp), cwd=tmp, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"robson {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return wall, max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


def bench_macross(runs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        run_cold(MACROSS, tmp)  # the first run fills the array cache, as any first backtest on a machine does
        times = [run_cold(MACROSS, tmp)[0] for _ in range(runs)]
    median = statistics.median(times)
    print(f"(a) robson {' '.join(MACROSS)}")
    print(f"    whole cold process: median {median:.3f} s of {runs} (min {min(times):.3f}, max {max(times):.3f}); "
          f"target ≤ 0.6 s")
    return median


def bench_in_process() -> None:
    from robson.adapters.market.sample import SampleMarket
    from robson.adapters.signal_engine import SignalEngine
    from robson.adapters.strategies import StrategyCatalog, bundled_strategies_dir
    from robson.application.backtest import BacktestRequest, backtest
    from robson.domain.backtest_stats import backtest_stats
    from robson.domain.guards import RiskLimits

    strategy = StrategyCatalog([bundled_strategies_dir()]).get("ma-cross-5m")
    request = BacktestRequest(strategy=strategy, symbols=("BTCUSDT",), capital=Decimal(1000), fee_rate=Decimal(0),
                              slippage_rate=Decimal(0), limits=RiskLimits(max_risk_percent=Decimal(2)),
                              stake=Decimal(100), max_open=1, guards=False)
    backtest(request, history=SampleMarket(), engine=SignalEngine())  # imports and the array cache warm
    totals, phases = [], {"load": [], "signals": [], "replay + stats": []}
    for _ in range(5):
        start = time.perf_counter()
        market = SampleMarket()
        series = market.history("BTCUSDT", "5m")
        loaded = time.perf_counter()
        SignalEngine().evaluate(strategy.scan, series.series).timeline(strategy.scan.setups[0])
        signalled = time.perf_counter()
        result = backtest(request, history=market, engine=SignalEngine())
        backtest_stats([t.operation for t in result.trades], capital=request.capital, start=result.start,
                       end=result.end)
        done = time.perf_counter()
        totals.append(done - start - (signalled - loaded))  # the signals are evaluated again inside backtest()
        phases["load"].append(loaded - start)
        phases["signals"].append(signalled - loaded)
        phases["replay + stats"].append(done - signalled - (signalled - loaded))
    print(f"    in process, imports excluded: median {statistics.median(totals) * 1000:.0f} ms "
          f"(target ≤ 150 ms): " + ", ".join(f"{name} {statistics.median(values) * 1000:.0f} ms"
                                               for name, values in phases.items()))
    print(f"    {len(result.trades)} trades from {result.signals} signals over {sum(result.candles.values()):,} "
          "candles")


def bench_brief(runs: int) -> None:
    print("(b) the product brief's four scanning strategies over the whole sample (BTCUSDT, and ETHUSDT on 1h):")
    with tempfile.TemporaryDirectory() as tmp:
        for name in BRIEF:
            args = ["backtest", "--strategy", name]
            run_cold(args, tmp)
            measured = [run_cold(args, tmp) for _ in range(runs)]
            wall = statistics.median(m[0] for m in measured)
            print(f"    {name:<20} median {wall:.2f} s, peak memory {max(m[1] for m in measured) / 1024:.0f} MiB")


def bench_freqtrade(robson_seconds: float) -> None:
    freqtrade = shutil.which("freqtrade")
    if freqtrade is None:
        print(f"(c) freqtrade is not installed here: its recorded figure is {FREQTRADE_RECORDED_SECONDS} s "
              f"(quiet machine); robson takes {robson_seconds:.3f} s, "
              f"{FREQTRADE_RECORDED_SECONDS / robson_seconds:.1f}× faster")
        return
    print(f"(c) freqtrade found at {freqtrade}: run `freqtrade backtesting --strategy MaCross` on the same data "
          "in its own user directory to compare; the recorded figure is "
          f"{FREQTRADE_RECORDED_SECONDS} s ({FREQTRADE_RECORDED_SECONDS / robson_seconds:.1f}× robson's)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    robson_seconds = bench_macross(args.runs)
    bench_in_process()
    bench_brief(max(1, args.runs // 2))
    bench_freqtrade(robson_seconds)


if __name__ == "__main__":
    main()
