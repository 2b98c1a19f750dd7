"""Benchmark robson's command latency and peak memory on the sample market (prints figures; not a test).

Each command runs as the real console script in a fresh process, median of N runs (default 10),
after one untimed run to warm the OS file cache. Peak memory is the process's maximum resident
set (wait4's ru_maxrss). Targets (issue 11):
  robson --help                                                ≤ 0.06 s
  robson operation status --json (200 operations)             ≤ 0.25 s and ≥ 6× faster than freqtrade show-trades
  robson operation list / report / plan buy --json / validate  ≤ 0.25 s
  robson scan (BTCUSDT,ETHUSDT × the four scanning strategies) ≤ 0.6 s
freqtrade's `show-trades --print-json` on 200 trades and its `--help` are run beside robson's when a
freqtrade executable is found (FREQTRADE=/path/to/freqtrade, or on PATH; its own interpreter seeds
its database); otherwise the figures recorded on this kind of machine are printed, marked as such.
Usage: python bench/bench_cli.py [--runs N] [--operations N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BIN = Path(sys.executable).parent / "robson"
CONFIG = """\
capital: 1000000
paper:
  balances: {USDT: 1000000000}
risk:
  max_open_positions: 1000
  max_positions_per_symbol: 1000
  max_total_exposure_percent: 100000
"""
# freqtrade 2026.9 on this kind of machine (2 cores), median of 5, when no freqtrade is installed here.
RECORDED_FREQTRADE = {"help": 0.105, "show-trades": 1.70}
FREQTRADE_SEED = """
import sys
from datetime import datetime, timedelta, timezone
from freqtrade.persistence import Trade, init_db
init_db(sys.argv[1])
start = datetime(2021, 6, 1, tzinfo=timezone.utc)
for i in range(int(sys.argv[2])):
    opened = start + timedelta(hours=i)
    trade = Trade(pair="BTC/USDT", base_currency="BTC", stake_currency="USDT", stake_amount=100, amount=0.003,
                  open_rate=33000, open_date=opened, fee_open=0.001, fee_close=0.001, exchange="binance",
                  is_open=False, strategy="MaCross", timeframe="5m")
    trade.close_rate, trade.close_date, trade.exit_reason = 33300, opened + timedelta(minutes=30), "roi"
    trade.close_profit, trade.close_profit_abs, trade.realized_profit = 0.007, 0.7, 0.7
    Trade.session.add(trade)
Trade.commit()
"""


# Runs one command to its end in a tiny interpreter (no site, nothing imported): a child's peak
# memory counts its parent's resident set at the moment it was spawned, so the spawner must be small.
SPAWNER = """
import json, os, sys, time
command, cwd = json.loads(sys.argv[1]), sys.argv[2] or None
if cwd:
    os.chdir(cwd)
start = time.perf_counter()
pid = os.posix_spawnp(command[0], command, os.environ, file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)])
_, status, usage = os.wait4(pid, 0)
print(json.dumps([time.perf_counter() - start, usage.ru_maxrss, os.waitstatus_to_exitcode(status)]))
"""


def run(command: list[str], env: dict[str, str], cwd: str | None = None) -> tuple[float, int]:
    """Run command to its end; return its wall time in seconds and its peak resident memory in KiB."""
    done = subprocess.run([sys.executable, "-S", "-c", SPAWNER, json.dumps(command), cwd or ""], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0 or not done.stdout:
        raise SystemExit(f"could not run {' '.join(command)}: {done.stderr.strip()}")
    elapsed, peak, code = json.loads(done.stdout)
    if code != 0:
        raise SystemExit(f"{' '.join(command)} failed ({code}): {done.stderr.strip()}")
    return elapsed, peak


def measure(command: list[str], env: dict[str, str], runs: int, before=None, cwd: str | None = None) -> tuple[float, float, int]:
    """Return the median and minimum wall time and the largest peak memory over runs (before() untimed each time)."""
    if before:
        before()
    run(command, env, cwd)  # warm the OS file cache once
    times, peaks = [], []
    for _ in range(runs):
        if before:
            before()
        elapsed, peak = run(command, env, cwd)
        times.append(elapsed)
        peaks.append(peak)
    return statistics.median(times), min(times), max(peaks)


def robson_in_process(env: dict[str, str]):
    """Return a function running robson in this process against env (for fast seeding)."""
    from typer.testing import CliRunner

    from robson.cli.app import app

    runner = CliRunner()

    def invoke(*args: str) -> str:
        result = runner.invoke(app, list(args), env=env)
        if result.exit_code != 0:
            raise SystemExit(f"robson {' '.join(args)} failed: {result.stderr}")
        return result.stdout

    return invoke


def seed_operations(count: int, env: dict[str, str]) -> None:
    """Plan, validate and execute count dry-run intents (one operation each)."""
    robson = robson_in_process(env)
    for _ in range(count):
        intent_id = json.loads(robson("plan", "buy", "BTCUSDT", "--json"))["id"]
        robson("validate", intent_id)
        robson("execute", intent_id)


def freqtrade_figures(runs: int, trades: int) -> dict[str, tuple[float, str]]:
    """Time freqtrade beside robson when it is installed; else return the recorded figures."""
    found = os.environ.get("FREQTRADE") or shutil.which("freqtrade")
    if not found:
        return {name: (seconds, "recorded") for name, seconds in RECORDED_FREQTRADE.items()}
    freqtrade = Path(found)
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ}
        db_url = f"sqlite:///{tmp}/trades.sqlite"
        subprocess.run([str(freqtrade.parent / "python"), "-c", FREQTRADE_SEED, db_url, str(trades)], check=True, cwd=tmp,
                       env=env, capture_output=True)
        subprocess.run([str(freqtrade), "create-userdir", "--userdir", "user_data"], check=True, cwd=tmp, env=env,
                       capture_output=True)
        show = measure([str(freqtrade), "show-trades", "--db-url", db_url, "--print-json"], env, runs, cwd=tmp)
        helped = measure([str(freqtrade), "--help"], env, runs, cwd=tmp)
    return {"show-trades": (show[0], "measured"), "help": (helped[0], "measured")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--operations", type=int, default=200)
    options = parser.parse_args()
    runs = options.runs
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "robson.yaml"
        config.write_text(CONFIG)
        env = {**os.environ, "ROBSON_DB": str(Path(tmp) / "bench.db"), "ROBSON_CONFIG": str(config), "NO_COLOR": "1",
               "XDG_CACHE_HOME": str(Path(tmp) / "cache")}
        seed_operations(options.operations, env)
        robson = robson_in_process(env)
        pending: list[str] = []

        def plan_one() -> None:  # validate needs a new intent every run
            pending.append(json.loads(robson("plan", "buy", "BTCUSDT", "--json"))["id"])

        robson("scan", "--symbols", "BTCUSDT,ETHUSDT")  # the first scan fills the array cache, as cron's first run does
        ops = options.operations
        cases = [
            ("--help", ["--help"], 0.06, None),
            (f"operation status --json ({ops} ops)", ["operation", "status", "--json"], 0.25, None),
            (f"operation list ({ops} ops)", ["operation", "list"], 0.25, None),
            (f"report ({ops} ops)", ["report"], 0.25, None),
            ("plan buy BTCUSDT --json", ["plan", "buy", "BTCUSDT", "--json"], 0.25, None),
            ("validate ID", None, 0.25, plan_one),
            ("scan --symbols BTCUSDT,ETHUSDT (4 strategies)", ["scan", "--symbols", "BTCUSDT,ETHUSDT"], 0.6, None),
        ]
        print(f"robson CLI, console script in a fresh process, median of {runs} runs "
              f"(sample market, {os.cpu_count()} cores)")
        results = {}
        for label, args, target, before in cases:
            if args is None:  # validate: the intent planned just before
                median, fastest, peak = _measure_validate(env, runs, plan_one, pending)
            else:
                median, fastest, peak = measure([str(BIN), *args], env, runs, before)
            results[label] = median
            verdict = "ok" if median <= target else "OVER TARGET"
            print(f"  robson {label:<46} median {median * 1000:6.0f} ms  min {fastest * 1000:6.0f} ms  "
                  f"peak {peak / 1024:5.1f} MiB  target {target * 1000:4.0f} ms  {verdict}")
    freqtrade = freqtrade_figures(runs, options.operations)
    print("freqtrade beside robson:")
    for label, name in ((f"operation status --json ({ops} ops)", "show-trades"), ("--help", "help")):
        seconds, how = freqtrade[name]
        ratio = seconds / results[label]
        print(f"  freqtrade {name:<12} {seconds * 1000:6.0f} ms ({how})   robson {results[label] * 1000:6.0f} ms   "
              f"robson is {ratio:.1f}× faster" + ("  (target ≥ 6×)" if name == "show-trades" else ""))


def _measure_validate(env: dict[str, str], runs: int, plan_one, pending: list[str]) -> tuple[float, float, int]:
    times, peaks = [], []
    for index in range(runs + 1):
        plan_one()
        elapsed, peak = run([str(BIN), "validate", pending.pop()], env)
        if index:  # the first run warms the file cache
            times.append(elapsed)
            peaks.append(peak)
    return statistics.median(times), min(times), max(peaks)


if __name__ == "__main__":
    main()
