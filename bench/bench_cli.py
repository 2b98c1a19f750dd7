"""Benchmark robson's command latency on the sample market (prints figures; not a test).

Median of N runs each (default 10) of:
  robson --help                                   target ≤ 0.06 s (issue 11)
  robson operation status --json (50 operations)  target ≤ 0.6 s
  robson plan buy BTCUSDT --strategy all-in --json  target ≤ 1.5 s
Usage: python bench/bench_cli.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
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


def run(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"robson {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
    return elapsed


def seed_operations(count: int, env: dict[str, str]) -> None:
    """Plan, validate and execute `count` dry-run intents in-process (fast setup)."""
    import json

    from typer.testing import CliRunner

    from robson.cli.app import app

    runner = CliRunner()
    for _ in range(count):
        planned = runner.invoke(app, ["plan", "buy", "BTCUSDT", "--json"], env=env)
        intent_id = json.loads(planned.stdout)["id"]
        for step in (["validate", intent_id], ["execute", intent_id]):
            result = runner.invoke(app, step, env=env)
            assert result.exit_code == 0, result.stderr


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "robson.yaml"
        config.write_text(CONFIG)
        env = {**os.environ, "ROBSON_DB": str(Path(tmp) / "bench.db"), "ROBSON_CONFIG": str(config), "NO_COLOR": "1"}
        seed_operations(50, env)
        cases = [
            ("robson --help", ["--help"], 0.06),
            ("robson operation status --json (50 ops)", ["operation", "status", "--json"], 0.6),
            ("robson plan buy BTCUSDT --strategy all-in --json", ["plan", "buy", "BTCUSDT", "--strategy", "all-in", "--json"], 1.5),
        ]
        print(f"robson CLI latency, median of {runs} runs (sample market, {os.cpu_count()} cores)")
        for label, args, target in cases:
            run(args, env)  # warm the OS file cache once
            times = [run(args, env) for _ in range(runs)]
            median = statistics.median(times)
            verdict = "ok" if median <= target else "OVER TARGET"
            print(f"  {label:<52} median {median * 1000:7.1f} ms  min {min(times) * 1000:7.1f} ms  "
                  f"target {target * 1000:.0f} ms  {verdict}")


if __name__ == "__main__":
    main()
