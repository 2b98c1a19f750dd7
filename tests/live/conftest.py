"""Live tests: robson's Binance adapter, through the real python-binance client, against the loopback server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.databases import Target, dump, is_postgresql
from tests.live.binance_server import KLINE_INTERVALS_MS, BinanceTestServer
from tests.reliability.helpers import invoke, process_env, run_robson, runner_env

# Canaries: if either ever shows up in output, logs, the database or a traceback, a test fails.
API_KEY = "CANARY-LIVE-KEY-7f3a9c2e1b"
API_SECRET = "CANARY-LIVE-SECRET-5d8e0a4c6f"
PRICE = Decimal("30000")
START_USDT = Decimal("10000")


def seed_candles(server: BinanceTestServer, symbol: str, interval: str, price: Decimal, count: int = 300) -> None:
    """Serve `count` flat-ish closed candles that follow the server's clock, so they never go stale mid-test.

    They are made at each request (plus the candle still forming, as Binance serves it): candles seeded
    once at the fixture's time went stale when the wall clock crossed a 15m boundary during a test.
    """
    step = KLINE_INTERVALS_MS[interval]

    def row_at(open_time: int) -> list[object]:
        wiggle = Decimal(open_time // step % 7) * 10
        return [open_time, price - wiggle, price + 50, price - 80 - wiggle, price, Decimal("12.5")]

    server.serve_kline_series(symbol, interval, row_at, count=count + 1)


@dataclass
class Live:
    """A loopback Binance plus a robson configured for it (database, keys, LIVE enabled)."""

    server: BinanceTestServer
    tmp_path: Path
    settings: dict[str, str]
    db: Target  # a SQLite file in tmp_path, or a PostgreSQL URL (--database postgresql)
    outputs: list[str] = field(default_factory=list)

    def run(self, *args: str, **extra: str) -> Any:
        """Run robson in this process (CliRunner); keep its output for the canary scan."""
        result = invoke(list(args), runner_env(**{**self.settings, **extra}))
        self.outputs += [result.stdout, result.stderr]
        return result

    def run_process(self, *args: str, **extra: str) -> Any:
        """Run the installed robson script in a child process."""
        result = run_robson(list(args), process_env(**{**self.settings, **extra}), cwd=self.tmp_path)
        self.outputs += [result.stdout, result.stderr]
        return result

    def ok(self, *args: str) -> dict[str, Any]:
        result = self.run(*args, "--json")
        assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
        return json.loads(result.stdout)

    def planned_and_validated(self, *plan_args: str) -> dict[str, Any]:
        planned = self.ok("plan", "buy", "BTCUSDT", "--stop", "29000", "--target", "31500", *plan_args)
        validated = self.ok("validate", planned["id"])
        assert validated["verdict"] in ("PASS", "WARN"), validated
        return planned

    def orders(self, order_type: str | None = None) -> list[dict[str, Any]]:
        return [o for o in self.server.orders() if order_type is None or o["type"] == order_type]


@pytest.fixture
def live(tmp_path: Path, robson_db: Target) -> Iterator[Live]:
    with BinanceTestServer(api_key=API_KEY, api_secret=API_SECRET, prices={"BTCUSDT": PRICE}) as server:
        server.set_balance("USDT", START_USDT)
        for interval in ("5m", "15m", "1h"):
            seed_candles(server, "BTCUSDT", interval, PRICE)
        settings = {
            "ROBSON_DB": str(robson_db),
            "ROBSON_CONFIG": str(tmp_path / "none.yaml"),
            "ROBSON_MARKET": "binance",
            "ROBSON_CAPITAL": "10000",
            "ROBSON_LIVE_TRADING": "true",
            "ROBSON_BINANCE__BASE_URL": server.base_url,
            "ROBSON_BINANCE__TIMEOUT_SECONDS": "1",
            "BINANCE_API_KEY": API_KEY,
            "BINANCE_API_SECRET": API_SECRET,
        }
        (tmp_path / "none.yaml").write_text("{}\n", encoding="utf-8")
        session = Live(server, tmp_path, settings, robson_db)
        yield session
    assert_no_canary(session)


def assert_no_canary(session: Live) -> None:
    """The keys never appear in any output, log, traceback or file a live test left (database included)."""
    for text in session.outputs:
        assert API_KEY not in text and API_SECRET not in text, text
    if is_postgresql(session.db):  # the database is not a file here: read every row instead
        rows = repr(dump(session.db))
        assert API_KEY not in rows and API_SECRET not in rows
    for path in session.tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert API_KEY.encode() not in data and API_SECRET.encode() not in data, path
