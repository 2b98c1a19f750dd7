"""`robson monitor` through the CLI, replaying the real bundled BTCUSDT candles by moving the market clock.

Every expected exit below was found by reading robson/data/market/BTCUSDT/5m/2021-06.csv.gz (rows
`open_time_ms,open,high,low,close,volume`) for the first 5m candle, from the entry candle on, whose low
(or high) reaches the stop (or target); `first_candle` repeats that search here without robson's code.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal as D
from pathlib import Path

import pytest

import robson
from robson.adapters.store.locks import this_process
from tests import databases
from tests.cli.conftest import assert_user_error, dump_database, floats_in, paper_balances, parsed
from tests.lease_rows import put_lease

DATA = Path(robson.__file__).parent / "data" / "market" / "BTCUSDT" / "5m"


def bundled_june() -> list[tuple[datetime, D, D, D, D]]:
    """Return the bundled June 2021 BTCUSDT 5m candles as (open time, open, high, low, close)."""
    with gzip.open(DATA / "2021-06.csv.gz", "rt") as rows:
        return [(datetime.fromtimestamp(int(f[0]) / 1000, UTC), D(f[1]), D(f[2]), D(f[3]), D(f[4]))
                for f in (line.split(",") for line in rows)]


def first_candle(start: datetime, hit: Callable[[D, D], bool]) -> tuple[datetime, D, D]:
    """Return (open time, high, low) of the first candle opening at or after start where hit(high, low)."""
    return next((t, h, low) for t, _, h, low, _ in bundled_june() if t >= start and hit(h, low))


def when(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def open_position(robson, as_of: str, *args: str) -> tuple[dict, dict]:
    """Plan, validate and execute (dry-run) a BTCUSDT buy at as_of; return (intent, operation)."""
    intent = parsed(robson("--as-of", as_of, "plan", "buy", "BTCUSDT", *args, "--json"))
    parsed(robson("--as-of", as_of, "validate", intent["id"], "--json"))
    operation = parsed(robson("--as-of", as_of, "execute", intent["id"], "--json"))["operation"]
    return intent, operation


def monitor(robson, as_of: str) -> dict:
    result = robson("--as-of", as_of, "monitor", "--once", "--json")
    doc = parsed(result)
    assert floats_in(doc) == []
    assert result.stderr == ""
    return doc


# --- the full lifecycle on real data ------------------------------------------------------


def test_a_paper_stop_closes_where_the_real_btcusdt_series_first_crosses_it(robson, db_path):
    # 2021-06-01 12:00 UTC: the last price is the close of the 11:55 5m candle, 36596.62; the paper entry
    # fills at the next trade, the open of the 12:00 candle, 0.05 % worse: 36596.63 × 1.0005 = 36614.928…
    # → tick up → 36614.93. Size: 1 % risk would be 0.0163 BTC, capped by the 50 % max position:
    # 500 / 36596.62 → 0.01366 BTC.
    intent, opened = open_position(robson, "2021-06-01T12:00", "--stop", "36000", "--target", "37500")
    assert (opened["entry_price"], opened["quantity"], opened["stop"]) == ("36614.93", "0.01366", "36000")

    quiet = monitor(robson, "2021-06-01T12:30")
    (check,) = quiet["operations"]
    assert (check["status"], check["candles"], check["exit"]) == ("ACTIVE", 6, None)  # 12:00 … 12:25
    assert check["last_checked_at"] == "2021-06-01T12:30:00+00:00"

    doc = monitor(robson, "2021-06-01T13:30")

    # By hand: 12:55's low was 36121.04; the 13:00–13:05 candle is the first to reach 36000 (low 35970.92).
    # The stop fills at 36000 × (1 − 0.0005) = 35982.00 when that candle closes, 13:05.
    assert first_candle(when("2021-06-01T12:00"), lambda h, low: low <= 36000) == (
        when("2021-06-01T13:00"), D("36230.44"), D("35970.92"))
    (check,) = doc["operations"]
    assert (doc["checked"], doc["closed"], doc["halted"]) == (1, 1, False)
    assert check["status"] == "CLOSED"
    assert check["exit"] == {"reason": "stop", "at": "2021-06-01T13:05:00+00:00", "price": "35982",
                             "trigger_price": "36000", "fee": "0.49151412", "gapped": False,
                             "candle_open": "2021-06-01T13:00:00+00:00"}
    # (35982 − 36614.93) × 0.01366 − 0.5001599438 − 0.49151412 = −8.6458238 − 0.9916740638 = −9.6374978638
    assert check["realized_pnl"] == "-9.6374978638"
    # USDT = 1000 − entry cost 500.1599438 − fee 0.5001599438 + proceeds 491.51412 − fee 0.49151412; BTC 0,
    # nothing locked.
    assert paper_balances(db_path) == {"USDT": (D("990.3625021362"), D("0")), "BTC": (D("0"), D("0"))}
    shown = parsed(robson("operation", "show", opened["id"], "--json"))
    assert (shown["status"], shown["close_reason"], shown["closed_at"]) == ("CLOSED", "stop", "2021-06-01T13:05:00+00:00")
    orders = {o["client_order_id"]: o for o in shown["orders"]}
    assert (orders[f"rb-{intent['id']}-S"]["status"], orders[f"rb-{intent['id']}-S"]["average_price"]) == ("FILLED", "35982")


def test_a_paper_target_fills_where_the_real_series_first_reaches_it(robson, db_path):
    # 2021-06-02 02:00: price 36292.17 (the 01:55 close); entry at the 02:00 open 36292.17 × 1.0005 = 36310.316…
    # → 36310.32; stop 35700, target 37000.
    intent, opened = open_position(robson, "2021-06-02T02:00", "--stop", "35700", "--target", "37000")

    doc = monitor(robson, "2021-06-02T12:00")

    # By hand: no low reached 35700 first; the 07:10 candle is the first whose high reaches 37000 (37176.94).
    assert first_candle(when("2021-06-02T02:00"), lambda h, low: low <= 35700 or h >= 37000)[:2] == (
        when("2021-06-02T07:10"), D("37176.94"))
    (check,) = doc["operations"]
    assert (check["exit"]["reason"], check["exit"]["price"], check["exit"]["at"]) == (
        "target", "37000", "2021-06-02T07:15:00+00:00")
    quantity, entry = D(opened["quantity"]), D(opened["entry_price"])
    entry_fee, exit_fee = entry * quantity * D("0.001"), D("37000") * quantity * D("0.001")
    assert D(check["realized_pnl"]) == (D("37000") - entry) * quantity - entry_fee - exit_fee
    assert paper_balances(db_path) == {
        "USDT": (D("1000") - entry * quantity - entry_fee + D("37000") * quantity - exit_fee, D("0")),
        "BTC": (D("0"), D("0")),
    }


def test_trailing_hand_span_moves_are_recorded_and_the_trailed_stop_closes_the_operation(robson):
    # Smooth Sailing trails. 2021-06-01 20:00: the last price is the 19:55 close 35973.87; the entry fills at the
    # 20:00 open 35973.86 × 1.0005 = 35991.8469… → tick up 35991.85; stop 35700, so one span = 291.85.
    # Target 40000 keeps the target out of the way.
    # 1 span (high ≥ 36283.70) → break-even + fees = 35991.85 × 1.001 / 0.999 = 36063.9097… → tick up 36063.91.
    _, opened = open_position(robson, "2021-06-01T20:00", "--strategy", "smooth-sailing", "--stop", "35700",
                              "--target", "40000")
    assert opened["entry_price"] == "35991.85"

    evening = monitor(robson, "2021-06-01T21:00")
    night = monitor(robson, "2021-06-01T23:00")

    # By hand from the file: 20:40 is the first candle with a high ≥ 36283.70 (36329.96; none fell to 35700
    # before): the stop moves to break-even when it closes, 20:45. From 20:45, the 21:40 candle is the first to
    # reach that stop (low 36040.11) before any high reached 2 spans (36575.55): the stop fills at
    # 36063.91 × 0.9995 = 36045.878… → tick down 36045.87 when it closes, 21:45.
    one_span = first_candle(when("2021-06-01T20:00"), lambda h, low: low <= 35700 or h >= D("36283.70"))
    stopped = first_candle(when("2021-06-01T20:45"), lambda h, low: low <= D("36063.91") or h >= D("36575.55"))
    assert (one_span[:2], stopped) == ((when("2021-06-01T20:40"), D("36329.96")),
                                       (when("2021-06-01T21:40"), D("36266.4"), D("36040.11")))
    assert [(m["at"], m["old_stop"], m["new_stop"], m["reason"]) for m in evening["operations"][0]["moves"]] == [
        ("2021-06-01T20:45:00+00:00", "35700", "36063.91", "trailing")]
    (check,) = night["operations"]
    assert check["moves"] == []
    assert (check["exit"]["reason"], check["exit"]["price"], check["exit"]["at"]) == (
        "trailing", "36045.87", "2021-06-01T21:45:00+00:00")
    trail = parsed(robson("operation", "show", opened["id"], "--json"))["audit"]
    moved = [(e["at"], e["data"]["old_stop"], e["data"]["new_stop"]) for e in trail if e["kind"] == "stop_moved"]
    assert moved == [("2021-06-01T20:45:00+00:00", "35700", "36063.91")]
    assert [e["kind"] for e in trail][-2:] == ["order_filled", "closed"]


def test_bounce_back_exits_on_time_after_48_candles_of_30m(robson):
    # Bounce Back's time exit: 48 full 30m candles from entry. Opened 2021-06-05 00:00 → due 2021-06-06 00:00,
    # where the 5m candle 23:55–00:00 closes; the paper sale fills at its close less 0.05 % slippage.
    _, opened = open_position(robson, "2021-06-05T00:00", "--strategy", "bounce-back", "--stop", "34000",
                              "--target", "39000")
    # By hand: between 5 June 00:00 and 6 June 00:00 BTCUSDT stayed within 34,800–37,925 (no stop, no target);
    # the 23:55 candle closed at 35513.2: 35513.2 × 0.9995 = 35495.4434 → tick down → 35495.44.
    assert first_candle(when("2021-06-05T00:00"), lambda h, low: low <= 34000 or h >= 39000)[0] > when("2021-06-06T00:00")
    last_close = next(c for t, _, _, _, c in bundled_june() if t == when("2021-06-05T23:55"))

    doc = monitor(robson, "2021-06-06T06:00")

    (check,) = doc["operations"]
    assert (check["exit"]["reason"], check["exit"]["at"]) == ("time_exit", "2021-06-06T00:00:00+00:00")
    assert check["exit"]["trigger_price"] == str(last_close)
    assert last_close == D("35513.2")
    assert check["exit"]["price"] == "35495.44"
    orders = parsed(robson("operation", "show", opened["id"], "--json"))["orders"]
    assert sorted((o["client_order_id"][-1], o["status"]) for o in orders) == [("E", "FILLED"), ("S", "CANCELED"),
                                                                               ("X", "FILLED")]


# --- safety -------------------------------------------------------------------------------


def test_running_the_monitor_twice_at_the_same_clock_changes_nothing(robson, db_path):
    open_position(robson, "2021-06-01T20:00", "--strategy", "smooth-sailing", "--stop", "35700", "--target", "40000")
    monitor(robson, "2021-06-01T21:00")  # the stop moved to break-even at 20:45; still open
    before = dump_database(db_path)

    again = monitor(robson, "2021-06-01T21:00")

    assert dump_database(db_path) == before
    assert [(c["candles"], c["moves"]) for c in again["operations"]] == [(0, [])]


def test_a_big_loss_halts_new_entries_until_next_month(robson, monkeypatch):
    # The stop-out above loses 9.64 USDT = 0.96 % of 1000: past a 0.5 % monthly drawdown limit.
    monkeypatch.setenv("ROBSON_RISK__MONTHLY_DRAWDOWN_PERCENT", "0.5")
    open_position(robson, "2021-06-01T12:00", "--stop", "36000", "--target", "37500")

    result = robson("--as-of", "2021-06-01T13:30", "monitor", "--once")

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines()[1] == (
        "HALTED: this month's realized loss 9.64 = 0.96% of capital 1000 ≥ 0.50%: trading HALTED until next "
        "month (validate fails)")
    later = parsed(robson("--as-of", "2021-06-10T12:00", "plan", "buy", "BTCUSDT", "--stop", "36000", "--json"))
    refused = robson("--as-of", "2021-06-10T12:00", "validate", later["id"])
    assert_user_error(refused, 3, "monthly drawdown: this month's realized loss 0.96% ≥ 0.50%: trading HALTED")
    july = parsed(robson("--as-of", "2021-07-01T12:00", "plan", "buy", "BTCUSDT", "--stop", "33000", "--json"))
    assert parsed(robson("--as-of", "2021-07-01T12:00", "validate", july["id"], "--json"))["verdict"] != "FAIL"


def test_the_halt_is_in_the_json_report(robson, monkeypatch):
    monkeypatch.setenv("ROBSON_RISK__MONTHLY_DRAWDOWN_PERCENT", "0.5")
    open_position(robson, "2021-06-01T12:00", "--stop", "36000", "--target", "37500")

    doc = monitor(robson, "2021-06-01T13:30")

    assert doc["halted"] is True
    assert [(h["rule"], h["realized_pnl"], h["limit_percent"]) for h in doc["halts"]] == [
        ("monthly drawdown", "-9.6374978638", "0.5")]


def test_a_second_monitor_on_the_same_database_exits_4(robson, db_path):
    parsed(robson("operation", "list", "--json"))  # creates the database
    store = databases.open_store(db_path)
    me = this_process()
    # Another live robson process on this host holds the monitor lock (this test's process: proven alive).
    put_lease(store, "monitor", host=me.host, pid=os.getpid(), started=me.started, place=me.place, expires_in=60)
    store.close()

    result = robson("monitor", "--once")

    assert_user_error(result, 4, f"robson monitor is already running in process {os.getpid()}")
    assert result.stdout == ""


def test_once_and_interval_together_are_refused(robson):
    assert_user_error(robson("monitor", "--once", "--interval", "5"), 2, "either --once or --interval")
    assert_user_error(robson("monitor", "--interval", "0"), 2, "--interval must be greater than 0")


# --- output -------------------------------------------------------------------------------


def test_a_quiet_one_line_summary_when_not_a_terminal(robson):
    _, opened = open_position(robson, "2021-06-01T12:00", "--stop", "36000", "--target", "37500")

    result = robson("--as-of", "2021-06-01T13:30", "monitor", "--once")

    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"monitor 2021-06-01 13:30 UTC: 1 checked, 0 stop moves, 1 closed ({opened['id']} stop @ 35982 P&L -9.64 USDT)"]
    assert result.stderr == ""


def test_a_terminal_gets_a_table_of_what_happened(robson):
    _, opened = open_position(robson, "2021-06-01T12:00", "--stop", "36000", "--target", "37500")

    result = robson("--as-of", "2021-06-01T13:30", "monitor", "--once",
                    env={"FORCE_COLOR": "1", "NO_COLOR": "1", "COLUMNS": "200"})

    assert result.exit_code == 0
    assert opened["id"] in result.stdout
    assert "13 × 5m" in result.stdout  # 12:00 … 13:00: the walk stops at the exit candle
    assert "CLOSED stop @ 35982, P&L -9.64 USDT" in result.stdout


# --- the loop -----------------------------------------------------------------------------


def test_the_loop_finishes_its_tick_and_stops_on_sigterm(robson, monkeypatch):
    from robson.cli import monitor_cmd

    open_position(robson, "2021-06-01T12:00", "--stop", "36000", "--target", "37500")
    waits = []

    def fake_wait(stop, seconds):  # never sleeps: the second pause is "interrupted" by SIGTERM
        waits.append(seconds)
        if len(waits) == 2:
            signal.raise_signal(signal.SIGTERM)

    monkeypatch.setattr(monitor_cmd, "wait", fake_wait)
    handler = signal.getsignal(signal.SIGTERM)

    result = robson("--as-of", "2021-06-01T12:30", "monitor", "--interval", "30", "--json")

    assert result.exit_code == 0, result.stderr
    assert waits == [30.0, 30.0]
    lines = result.stdout.splitlines()
    assert len(lines) == 2  # one compact JSON document per tick
    assert [json.loads(line)["checked"] for line in lines] == [1, 1]
    assert result.stderr == "monitor: stopped after 2 ticks\n"
    assert signal.getsignal(signal.SIGTERM) is handler


def test_ctrl_c_during_a_tick_lets_the_tick_finish_then_stops(robson, monkeypatch):
    from robson.application import monitor as monitor_module
    from robson.cli import monitor_cmd

    _, opened = open_position(robson, "2021-06-01T12:00", "--stop", "36000", "--target", "37500")
    real_once = monitor_module.monitor_once

    def interrupted_once(**kwargs):
        signal.raise_signal(signal.SIGINT)  # Ctrl-C arrives as the tick starts
        return real_once(**kwargs)

    monkeypatch.setattr(monitor_module, "monitor_once", interrupted_once)
    monkeypatch.setattr(monitor_cmd, "wait", lambda stop, seconds: pytest.fail("slept after Ctrl-C"))

    result = robson("--as-of", "2021-06-01T13:30", "monitor", "--interval", "60")

    assert result.exit_code == 0, result.stderr
    assert "1 closed" in result.stdout  # the tick in progress completed
    assert result.stderr == "monitor: stopped after 1 tick\n"
    assert parsed(robson("operation", "show", opened["id"], "--json"))["status"] == "CLOSED"
