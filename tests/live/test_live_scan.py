"""`robson scan` with market: binance on the loopback server: 22 symbols, planted setups, weight, failures, no LIVE.

Every symbol serves flat 15m candles (MA4 = MA9, steady volume: nothing to find) except two, where a
Rescue Forces setup is planted on the last closed candle T: a dip at T-1, then a bullish close on 4x
volume at T (MA4 crosses above MA9). At T+1 one of them keeps climbing (the cross holds: CONFIRMED),
the other falls back (MA4 below MA9 again: INVALIDATED).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

import robson.adapters.binance.gateway as gateway_module
from tests.databases import fetch
from tests.live.binance_server import KLINE_INTERVALS_MS, ROUTES, BinanceTestServer, Fault
from tests.live.conftest import Live

STEP = KLINE_INTERVALS_MS["15m"]
MINUTE_MS = 60_000
BASE = Decimal("100")
ADDED = tuple(f"T{i:02d}USDT" for i in range(1, 21))
SYMBOLS = ("BTCUSDT", "ETHUSDT", *ADDED)  # BTCUSDT's flat candles come from the Live fixture
CONFIRMING, INVALIDATED = "T03USDT", "T11USDT"
RESCUE = ("--strategy", "rescue-forces")
ORDER_PATHS = ("/api/v3/order", "/api/v3/orderList/oco")

Row = Callable[[int], list[Any]]


def flat(price: Decimal) -> Row:
    """Candles that never cross: constant close, constant volume."""
    return lambda open_time: [open_time, price, price * Decimal("1.002"), price * Decimal("0.998"), price, 10]


def planted(price: Decimal, signal_open: int, *, holds: bool) -> Row:
    """Flat candles with a Rescue Forces setup at signal_open; the next close keeps (holds) or loses the cross."""
    after = price * (Decimal("1.025") if holds else Decimal("0.95"))

    def row_at(open_time: int) -> list[Any]:
        if open_time < signal_open - STEP:
            return flat(price)(open_time)
        if open_time == signal_open - STEP:  # the dip: MA4 below MA9
            return [open_time, price, price, price * Decimal("0.994"), price * Decimal("0.995"), 10]
        if open_time == signal_open:  # MA4 crosses above MA9 on 4x volume, a bullish candle
            return [open_time, price * Decimal("0.995"), price * Decimal("1.025"), price * Decimal("0.994"),
                    price * Decimal("1.02"), 40]
        return [open_time, price * Decimal("1.02"), max(after, price * Decimal("1.02")), min(after, price), after, 10]

    return row_at


def mid_candle(server: BinanceTestServer) -> int:
    """Move the server whole minutes ahead to 5 minutes into a 15m candle; return the last closed candle's open.

    Five minutes in, no candle closes during the test; whole minutes keep the server's weight minute in
    step with robson's.
    """
    minute_in_candle = int(time.time() * 1000) % STEP // MINUTE_MS
    server.clock_offset_ms = (5 - minute_in_candle) % 15 * MINUTE_MS
    return server.server_time_ms() // STEP * STEP - STEP


def market_of_22(live: Live, *, plant: bool = True) -> int:
    """List 20 more USDT symbols, serve their 15m candles, plant the two setups; return the signal candle's open."""
    server = live.server
    signal_open = mid_candle(server)
    server.serve_kline_series("ETHUSDT", "15m", flat(Decimal("2000")))
    for symbol in ADDED:
        price = BASE * Decimal("1.025") if symbol == CONFIRMING else BASE
        server.add_symbol(symbol, symbol.removesuffix("USDT"), price)
        row = flat(BASE)
        if plant and symbol in (CONFIRMING, INVALIDATED):
            row = planted(BASE, signal_open, holds=symbol == CONFIRMING)
        server.serve_kline_series(symbol, "15m", row)
    return signal_open


def next_candle(live: Live) -> None:
    live.server.clock_offset_ms += STEP


def scan(live: Live, *args: str, symbols: tuple[str, ...] = SYMBOLS) -> dict[str, Any]:
    return live.ok("scan", *RESCUE, "--symbols", ",".join(symbols), *args)


def signal_rows(live: Live) -> list[tuple]:
    rows = fetch(live.db, "SELECT strategy, pattern, symbol, timeframe, candle_open_time, status FROM signals "
                          "ORDER BY symbol")
    return [tuple(row.values()) for row in rows]


def candle_iso(open_ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(open_ms / 1000, UTC).isoformat()


def requests_to(server: BinanceTestServer, method: str, path: str) -> list[Any]:
    return [r for r in server.requests if (r.method, r.path) == (method, path)]


# --- detection and the lifecycle over 22 live symbols ------------------------------------------


def test_a_setup_planted_on_two_of_22_symbols_is_detected_on_exactly_those(live: Live) -> None:
    signal_open = market_of_22(live)

    doc = scan(live)

    assert doc["market"] == "binance" and doc["scanned"] == 22 and doc["failures"] == []
    assert sorted(s["symbol"] for s in doc["detected"]) == [CONFIRMING, INVALIDATED]
    for signal in doc["detected"]:
        assert (signal["status"], signal["pattern"], signal["timeframe"]) == (
            "DETECTED", "ma4-crosses-above-ma9", "15m")
        assert signal["candle_open"] == candle_iso(signal_open)
        assert Decimal(signal["confidence"]) >= Decimal("0.6")
    assert len(requests_to(live.server, "GET", "/api/v3/klines")) == 22  # one fetch per symbol


def test_the_next_candle_confirms_one_and_invalidates_the_other_and_nothing_is_recorded_twice(live: Live) -> None:
    market_of_22(live)
    detected = {s["symbol"]: s["id"] for s in scan(live, "--no-entry")["detected"]}
    again = scan(live, "--no-entry")
    next_candle(live)

    decided = scan(live, "--no-entry")
    replayed = scan(live, "--no-entry")

    assert again["detected"] == [] and sorted(s["id"] for s in again["already_recorded"]) == sorted(detected.values())
    assert {s["id"]: s["status"] for s in decided["resolved"]} == {
        detected[CONFIRMING]: "CONFIRMED", detected[INVALIDATED]: "INVALIDATED"}
    assert decided["detected"] == [] and decided["failures"] == []
    assert replayed["detected"] == [] and replayed["resolved"] == []
    rows = signal_rows(live)
    assert [(row[2], row[5]) for row in rows] == [(CONFIRMING, "CONFIRMED"), (INVALIDATED, "INVALIDATED")]
    assert len({row[:5] for row in rows}) == len(rows) == 2


# --- request weight -----------------------------------------------------------------------------


class VirtualMinute:
    """The weight limiter's clock and sleep: a sleep jumps it, and the server's clock, to the wake-up time.

    Threads that found the same full minute all ask to sleep until the same instant; each asks from the
    time it last read, so the clock jumps once, not once per thread.
    """

    def __init__(self, server: BinanceTestServer) -> None:
        self.server = server
        self.shift = 0.0
        self.server_base_ms = server.clock_offset_ms
        self.sleeps: list[float] = []
        self._seen = threading.local()
        self._lock = threading.Lock()

    def now(self) -> float:
        self._seen.at = time.time() + self.shift
        return self._seen.at

    def sleep(self, seconds: float) -> None:
        assert seconds <= 61, f"the limiter wants to sleep {seconds} s"
        with self._lock:
            self.sleeps.append(seconds)
            jump = getattr(self._seen, "at", time.time() + self.shift) + seconds - (time.time() + self.shift)
            if jump > 0:
                self.shift += jump
                self.server.clock_offset_ms = self.server_base_ms + int(self.shift * 1000)


@pytest.fixture
def virtual_minute(live: Live, monkeypatch: pytest.MonkeyPatch) -> VirtualMinute:
    """Give every gateway robson builds a weight limiter on the virtual minute."""
    clock = VirtualMinute(live.server)
    real = gateway_module.WeightLimiter

    def limiter(limit: int = gateway_module.DEFAULT_WEIGHT_LIMIT, **_: Any) -> Any:
        return real(limit, now=clock.now, sleep=clock.sleep)

    monkeypatch.setattr(gateway_module, "WeightLimiter", limiter)
    return clock


def served_weight(server: BinanceTestServer) -> int:
    return sum(ROUTES[(r.method, r.path)].weight for r in server.requests if r.status == 200)


def test_a_scan_over_22_symbols_stays_under_a_small_weight_limit_by_waiting_not_by_429(
        live: Live, virtual_minute: VirtualMinute) -> None:
    market_of_22(live, plant=False)
    virtual_minute.server_base_ms = live.server.clock_offset_ms
    limit = 60  # the scan needs about 65: it cannot fit one minute
    live.server.set_weight_limit(limit)
    # Each klines answer takes 50 ms, so fetches on different workers overlap at the server.
    live.server.inject(Fault.latency(0.05), "GET", "/api/v3/klines", times=len(SYMBOLS))

    result = live.run("scan", *RESCUE, "--symbols", ",".join(SYMBOLS), "--no-entry", "--json",
                      ROBSON_SCAN__MAX_WORKERS="4")

    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["scanned"] == 22 and doc["failures"] == []
    statuses = [r.status for r in live.server.requests]
    assert 429 not in statuses and 418 not in statuses, statuses
    klines = requests_to(live.server, "GET", "/api/v3/klines")
    assert len(klines) == 22 and {r.status for r in klines} == {200}
    assert served_weight(live.server) > limit  # more than one minute's budget was needed ...
    assert virtual_minute.sleeps  # ... so the limiter waited for the next minute
    assert live.server.peak_in_flight["/api/v3/klines"] > 1  # and the fetches did run concurrently
    assert len(requests_to(live.server, "GET", "/api/v3/exchangeInfo")) == 1


# --- failing symbols ----------------------------------------------------------------------------


def test_an_invalid_symbol_and_one_without_klines_are_reported_and_the_rest_scanned(live: Live) -> None:
    market_of_22(live)
    live.server.add_symbol("GONEUSDT", "GONE", BASE, delisted=True)  # in exchangeInfo, -1121 everywhere else
    live.server.add_symbol("EMPTYUSDT", "EMPTY", BASE)  # listed, no klines
    symbols = ("GONEUSDT", *SYMBOLS[:10], "EMPTYUSDT", *SYMBOLS[10:])

    result = live.run("scan", *RESCUE, "--symbols", ",".join(symbols), "--json")

    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["scanned"] == 22
    assert sorted(s["symbol"] for s in doc["detected"]) == [CONFIRMING, INVALIDATED]
    failures = {f["symbol"]: f for f in doc["failures"]}
    assert sorted(failures) == ["EMPTYUSDT", "GONEUSDT"]
    assert "Invalid symbol" in failures["GONEUSDT"]["message"] and "-1121" in failures["GONEUSDT"]["message"]
    assert "no closed 15m candles" in failures["EMPTYUSDT"]["message"]
    assert all(f["strategies"] == ["rescue-forces"] and f["timeframe"] == "15m" for f in failures.values())
    lines = result.stderr.splitlines()
    assert any(line.startswith("scan: GONEUSDT 15m (rescue-forces): ") and "Invalid symbol" in line for line in lines)
    assert any(line.startswith("scan: EMPTYUSDT 15m (rescue-forces): ") for line in lines)
    gone = [r for r in requests_to(live.server, "GET", "/api/v3/klines") if r.params.get("symbol") == "GONEUSDT"]
    assert [r.status for r in gone] == [400]  # asked once: a refusal is not retried


def test_a_symbol_binance_does_not_list_is_reported_without_asking_for_its_klines(live: Live) -> None:
    market_of_22(live)

    result = live.run("scan", *RESCUE, "--symbols", ",".join(("NOPEUSDT", *SYMBOLS)), "--json")

    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["scanned"] == 22
    [failure] = doc["failures"]
    assert failure["symbol"] == "NOPEUSDT" and "not listed on Binance" in failure["message"]
    assert "scan: NOPEUSDT 15m (rescue-forces): " in result.stderr
    assert not [r for r in live.server.requests if r.params.get("symbol") == "NOPEUSDT"]


def test_a_scan_where_every_symbol_fails_exits_1_and_still_reports_each(live: Live) -> None:
    market_of_22(live)
    live.server.add_symbol("GONEUSDT", "GONE", BASE, delisted=True)
    live.server.add_symbol("EMPTYUSDT", "EMPTY", BASE)

    result = live.run("scan", *RESCUE, "--symbols", "GONEUSDT,EMPTYUSDT,NOPEUSDT", "--json")

    assert result.exit_code == 1, result.stderr
    doc = json.loads(result.stdout)
    assert doc["scanned"] == 0 and sorted(f["symbol"] for f in doc["failures"]) == ["EMPTYUSDT", "GONEUSDT", "NOPEUSDT"]
    assert "Error: nothing could be scanned" in result.stderr
    assert sum(line.startswith("scan: ") for line in result.stderr.splitlines()) == 3
    assert "Traceback" not in result.stderr


# --- auto-entry never goes LIVE -------------------------------------------------------------------


def test_a_scan_intent_is_validated_against_binance_but_never_executes_live(live: Live) -> None:
    market_of_22(live)
    scan(live)
    next_candle(live)

    doc = scan(live)
    [entry] = doc["entries"]
    refused = live.run("execute", entry["intent_id"], "--live", "--acknowledge-risk", "--json")

    assert entry["symbol"] == CONFIRMING and entry["status"] == "VALIDATED", entry
    assert entry["verdict"] in ("PASS", "WARN")
    intent = live.ok("plan", "show", entry["intent_id"])
    assert intent["source"] == "pattern"
    order_test = [r for r in intent["validation"]["results"] if r["guard"] == "order test"]
    assert [r["verdict"] for r in order_test] == ["PASS"]
    tested = requests_to(live.server, "POST", "/api/v3/order/test")
    assert [r.params["symbol"] for r in tested] == [CONFIRMING] and tested[0].status == 200

    assert refused.exit_code == 3, refused.stderr
    assert "created by a pattern scan" in refused.stderr and "never execute LIVE" in refused.stderr
    assert live.server.orders() == []
    assert not [r for r in live.server.requests if r.method in ("POST", "DELETE") and r.path in ORDER_PATHS]
    assert live.ok("plan", "show", entry["intent_id"])["status"] == "VALIDATED"
