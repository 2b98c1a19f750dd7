"""Benchmark the store on SQLite and on PostgreSQL side by side (prints figures; not a test).

PostgreSQL is a throwaway local server started from the installed binaries, as the tests start it
(tests/postgres_server.py: fsync off, on this machine's loopback). Each figure is taken the same way
on both backends:
  operation status --json with 200 operations   console script in a fresh process, median of N runs
  plan buy BTCUSDT --json                        console script in a fresh process, median of N runs
  monitor --once over 1,000 operations           one tick in-process (bench_monitor's book), median of N
  8 concurrent journeys                          8 processes × J plan → validate → execute through the CLI
                                                 in-process (as tests/reliability does): journeys per second
Usage: python bench/bench_pg.py [--runs N] [--journeys J] [--operations N]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_cli import CONFIG, measure, robson_in_process, seed_operations  # noqa: E402

BIN = Path(sys.executable).parent / "robson"
WORKERS = 8


class Backend:
    """Where the figures are taken: a SQLite file in a temporary directory, or databases on the server."""

    def __init__(self, name: str, tmp: Path, server: Any = None) -> None:
        self.name, self.tmp, self.server = name, tmp, server
        self._count = 0

    def new_database(self) -> str:
        """A fresh database (migrated, as robson leaves one after its first command): a path or a URL."""
        self._count += 1
        if self.server is None:
            return str(self.tmp / f"{self.name}-{self._count}.db")
        return self.server.url(self.server.create_database())

    def copy(self, source: str) -> str:
        """A copy of a prepared database, for one timed run."""
        self._count += 1
        if self.server is None:
            target = self.tmp / f"{self.name}-{self._count}.db"
            shutil.copy(source, target)
            return str(target)
        return self.server.url(self.server.create_database(template=source.rsplit("/", 1)[1]))


def env_for(backend: Backend, database: str, config: Path) -> dict[str, str]:
    return {**os.environ, "ROBSON_DB": database, "ROBSON_CONFIG": str(config), "NO_COLOR": "1",
            "XDG_CACHE_HOME": str(backend.tmp / "cache")}


def cli_figures(backend: Backend, config: Path, runs: int, operations: int) -> dict[str, float]:
    database = backend.new_database()
    env = env_for(backend, database, config)
    seed_operations(operations, env)
    robson_in_process(env)("scan", "--symbols", "BTCUSDT")  # fills the array cache, as in bench_cli
    status = measure([str(BIN), "operation", "status", "--json"], env, runs)[0]
    plan = measure([str(BIN), "plan", "buy", "BTCUSDT", "--json"], env, runs)[0]
    return {"status": status, "plan": plan}


def monitor_figure(backend: Backend, runs: int, operations: int) -> tuple[float, str]:
    from bench_monitor import NEW_CANDLES, T0, prepare

    from robson.adapters.paper import PaperExchange
    from robson.adapters.store import SqlStore
    from robson.application.monitor import monitor_once

    prepared = backend.new_database()
    market, account, strategies = prepare(prepared if backend.server else Path(prepared), operations, 20)
    market.clock = T0 + timedelta(minutes=5 * NEW_CANDLES)
    seconds, summary = [], ""
    for _ in range(runs):
        database = backend.copy(prepared)
        store = SqlStore(database) if backend.server else SqlStore.for_path(Path(database))
        book = PaperExchange(store, market, fee_rate=D("0.001"), slippage_rate=D("0"),
                             starting_balances={"USDT": D("100000000")})
        store.schema_version()  # opened (connected) before the clock starts, as the CLI has by its tick
        started = time.perf_counter()
        report = monitor_once(store=store, market=market, exchange=book, account=account, clock=market,
                              strategy_for=strategies.get)
        seconds.append(time.perf_counter() - started)
        store.close()
        summary = f"checked {len(report.checks)}, closed {len(report.closed)}, stop moves {report.stop_moves}"
    return statistics.median(seconds), summary


def journeys(worker: int, database: str, config: str, count: int, start_together: Any, reports: Any) -> None:
    """In a child process: count × (plan → validate → execute) through the CLI in-process."""
    try:
        for key in [k for k in os.environ if k.startswith(("ROBSON_", "BINANCE_"))]:
            del os.environ[key]
        os.environ.update({"ROBSON_DB": database, "ROBSON_CONFIG": config})
        from typer.testing import CliRunner

        from robson.cli.app import app

        runner, failed = CliRunner(), 0
        start_together.wait(timeout=120)
        for _ in range(count):
            planned = runner.invoke(app, ["plan", "buy", "BTCUSDT", "--json"])
            if planned.exit_code != 0:
                failed += 1
                continue
            intent_id = json.loads(planned.stdout)["id"]
            validated = runner.invoke(app, ["validate", intent_id, "--json"])
            executed = runner.invoke(app, ["execute", intent_id, "--json"])
            failed += validated.exit_code != 0 or executed.exit_code != 0
        reports.put((worker, failed, time.perf_counter()))
    except BaseException as e:
        reports.put((worker, f"{type(e).__name__}: {e}", time.perf_counter()))
        raise


def concurrent_figure(backend: Backend, config: Path, per_worker: int) -> tuple[float, int, int | None]:
    """Journeys per second of 8 workers at once, failed journeys, and (PostgreSQL) the most connections open at once."""
    import threading

    database = backend.new_database()
    robson_in_process(env_for(backend, database, config))("plan", "list")  # created and migrated, not timed
    context = multiprocessing.get_context("spawn")
    start_together, reports = context.Barrier(WORKERS + 1), context.Queue()
    processes = [context.Process(target=journeys, args=(w, database, str(config), per_worker, start_together, reports))
                 for w in range(WORKERS)]
    for process in processes:
        process.start()
    most, stop = [0], threading.Event()

    def count_connections() -> None:
        while backend.server is not None and not stop.wait(0.05):
            most[0] = max(most[0], backend.server.connections(database.rsplit("/", 1)[1]))

    counter = threading.Thread(target=count_connections, daemon=True)
    counter.start()
    start_together.wait(timeout=120)  # every worker has imported robson: the clock starts with the first plan
    started = time.perf_counter()
    done = [reports.get(timeout=900) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    stop.set()
    counter.join(timeout=10)
    errors = [failed for _, failed, _ in done if not isinstance(failed, int)]
    if errors:
        raise SystemExit(f"a worker failed: {errors[0]}")
    elapsed = max(finished for _, _, finished in done) - started
    return WORKERS * per_worker / elapsed, sum(failed for _, failed, _ in done), most[0] if backend.server else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--operations", type=int, default=200, help="operations behind `operation status`")
    parser.add_argument("--monitored", type=int, default=1000, help="operations one monitor tick walks")
    parser.add_argument("--journeys", type=int, default=10, help="journeys per worker (8 workers)")
    options = parser.parse_args()

    from tests.postgres_server import PostgresServer

    server = PostgresServer().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "robson.yaml"
            config.write_text(CONFIG)
            rows: dict[str, dict[str, str]] = {}
            for backend in (Backend("sqlite", Path(tmp)), Backend("postgresql", Path(tmp), server)):
                figures = cli_figures(backend, config, options.runs, options.operations)
                tick, summary = monitor_figure(backend, options.runs, options.monitored)
                rate, failed, connections = concurrent_figure(backend, config, options.journeys)
                rows[backend.name] = {
                    f"operation status --json ({options.operations} ops)": f"{figures['status'] * 1000:.0f} ms",
                    "plan buy BTCUSDT --json": f"{figures['plan'] * 1000:.0f} ms",
                    f"monitor --once tick ({options.monitored} ops)": f"{tick * 1000:.0f} ms",
                    f"8 concurrent journeys (8 × {options.journeys})": f"{rate:.1f} journeys/s"
                                                                     + (f" ({failed} failed)" if failed else ""),
                }
                print(f"{backend.name}: monitor tick {summary}"
                      + (f"; most connections open during the 8 journeys: {connections}" if connections else ""),
                      flush=True)
    finally:
        server.stop()
    print(f"\nrobson store, SQLite beside PostgreSQL 15 (local server, loopback), {os.cpu_count()} cores; "
          f"median of {options.runs} runs")
    print(f"  {'':<44} {'SQLite':>18} {'PostgreSQL':>18}")
    for label in rows["sqlite"]:
        print(f"  {label:<44} {rows['sqlite'][label]:>18} {rows['postgresql'][label]:>18}")


if __name__ == "__main__":
    main()
