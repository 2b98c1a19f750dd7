"""`robson scan` through the CLI, moving the sample market's clock over real BTCUSDT candles.

Times used (hand-checked in tests/integration/test_bundled_strategies_on_real_data.py and by replay):
Rescue Forces (15m, auto entry) detects on the 2021-06-22 01:00 candle (scan at 01:15), the 01:15 candle
confirms it (scan at 01:30); again on 10:30 (confirmed by the 11:00 scan); the 2021-06-16 18:15 detection
is invalidated by the next close (scan at 18:45). Bounce Back (30m) detects on 2021-06-17 17:30 and that
signal expires after three closed candles without a verdict (scan at 19:30).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from robson.adapters.store.locks import this_process
from tests import databases
from tests.cli.conftest import (
    CANARY_KEY,
    CANARY_SECRET,
    assert_user_error,
    count_rows,
    dump_database,
    floats_in,
    parsed,
)
from tests.lease_rows import put_lease

BTC = ("--symbols", "BTCUSDT")
RESCUE = ("--strategy", "rescue-forces")
STRATEGIES_DIR = Path(__file__).resolve().parents[2] / "strategies"


def scan(robson, as_of: str, *args: str) -> dict:
    return parsed(robson("--as-of", as_of, "scan", *args, "--json"))


def rescue_forces_with(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **auto_entry) -> None:
    """Override the bundled Rescue Forces with a user copy whose auto_entry differs."""
    data = yaml.safe_load((STRATEGIES_DIR / "rescue-forces.yaml").read_text())
    data["auto_entry"].update(auto_entry)
    folder = tmp_path / "my-strategies"
    folder.mkdir(exist_ok=True)
    (folder / "rescue-forces.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.setenv("ROBSON_STRATEGIES_DIR", str(folder))


# --- detection and idempotency ------------------------------------------------------------


def test_a_setup_on_the_last_closed_candle_is_recorded_as_detected(robson):
    doc = scan(robson, "2021-06-22T01:15", *RESCUE, *BTC)

    [signal] = doc["detected"]
    assert (signal["strategy"], signal["pattern"], signal["symbol"], signal["timeframe"]) == (
        "rescue-forces", "ma4-crosses-above-ma9", "BTCUSDT", "15m")
    assert signal["candle_open"] == "2021-06-22T01:00:00+00:00"
    assert signal["status"] == "DETECTED"
    assert signal["confidence"] == "0.75"
    assert signal["values"]["ma4"] == "31876.6175"
    assert doc["scanned"] == 1 and doc["failures"] == []


def test_scanning_twice_at_the_same_time_records_nothing_twice(robson, db_path):
    first = scan(robson, "2021-06-22T01:15", *BTC)
    before = dump_database(db_path)

    second = scan(robson, "2021-06-22T01:15", *BTC)

    assert len(first["detected"]) == 1
    assert second["detected"] == [] and second["resolved"] == []
    assert [s["id"] for s in second["already_recorded"]] == [first["detected"][0]["id"]]
    assert dump_database(db_path) == before


def test_a_setup_is_looked_for_on_the_last_closed_candle_only(robson):
    # At 01:20 the 01:15 candle is still forming: the last closed one is 01:00's, where the cross is.
    doc = scan(robson, "2021-06-22T01:29", *RESCUE, *BTC)

    assert [s["candle_open"] for s in doc["detected"]] == ["2021-06-22T01:00:00+00:00"]
    assert scan(robson, "2021-06-22T01:30", *RESCUE, *BTC, "--no-entry")["detected"] == []


# --- the lifecycle --------------------------------------------------------------------------


def test_the_next_close_confirms_a_signal_whose_cross_still_holds(robson):
    detected = scan(robson, "2021-06-22T01:15", *RESCUE, *BTC)["detected"][0]

    doc = scan(robson, "2021-06-22T01:30", *RESCUE, *BTC, "--no-entry")

    [resolved] = doc["resolved"]
    assert (resolved["id"], resolved["status"]) == (detected["id"], "CONFIRMED")
    assert resolved["resolution"].startswith("ma4 crosses above ma9 still holds on the next close")
    assert "2021-06-22 01:15 UTC candle" in resolved["resolution"]


def test_the_next_close_invalidates_a_signal_whose_cross_failed(robson):
    detected = scan(robson, "2021-06-16T18:30", *RESCUE, *BTC)["detected"][0]

    doc = scan(robson, "2021-06-16T18:45", *RESCUE, *BTC)

    [resolved] = doc["resolved"]
    assert (resolved["id"], resolved["status"]) == (detected["id"], "INVALIDATED")
    assert "no longer holds" in resolved["resolution"]
    assert doc["entries"] == [] and doc["skipped"] == []


def test_a_signal_without_a_verdict_expires_after_its_window(robson):
    bounce = ("--strategy", "bounce-back", *BTC)
    detected = scan(robson, "2021-06-17T18:00", *bounce)["detected"][0]
    waiting = scan(robson, "2021-06-17T19:00", *bounce)

    doc = scan(robson, "2021-06-17T19:30", *bounce)

    assert detected["id"] not in [s["id"] for s in waiting["resolved"]]
    [resolved] = [s for s in doc["resolved"] if s["id"] == detected["id"]]
    assert resolved["status"] == "EXPIRED"
    assert resolved["resolution"] == "not confirmed within 3 closed candles"


# --- auto-entry --------------------------------------------------------------------------------


def test_auto_entry_turns_a_confirmed_signal_into_a_validated_pattern_intent(robson):
    signal_id = scan(robson, "2021-06-22T01:15", *RESCUE, *BTC)["detected"][0]["id"]

    doc = scan(robson, "2021-06-22T01:30", *RESCUE, *BTC)

    [entry] = doc["entries"]
    assert entry["signal_id"] == signal_id and entry["verdict"] in ("PASS", "WARN")
    intent = parsed(robson("plan", "show", entry["intent_id"], "--json"))
    assert (intent["status"], intent["source"], intent["signal_id"]) == ("VALIDATED", "pattern", signal_id)
    assert (intent["strategy"], intent["confidence"], intent["stop_method"]) == ("rescue-forces", "0.75", "moving_average")
    assert parsed(robson("signals", "show", signal_id, "--json"))["intent_id"] == entry["intent_id"]
    assert [e["kind"] for e in intent["audit"]][:2] == ["planned", "validated"]


def test_a_scan_never_executes_anything(robson, db_path):
    scan(robson, "2021-06-22T01:15", *RESCUE, *BTC)
    scan(robson, "2021-06-22T01:30", *RESCUE, *BTC)

    assert count_rows(db_path, "intents") == 1
    assert count_rows(db_path, "orders") == 0
    assert count_rows(db_path, "operations") == 0


def test_an_intent_from_the_scan_is_refused_live_with_nothing_sent(robson, db_path):
    scan(robson, "2021-06-22T01:15", *RESCUE, *BTC)
    intent_id = scan(robson, "2021-06-22T01:30", *RESCUE, *BTC)["entries"][0]["intent_id"]
    env = {"BINANCE_API_KEY": CANARY_KEY, "BINANCE_API_SECRET": CANARY_SECRET, "ROBSON_LIVE_TRADING": "true"}

    result = robson("--as-of", "2021-06-22T01:30", "execute", intent_id, "--live", "--acknowledge-risk", env=env)

    assert_user_error(result, 3, "created by a pattern scan", "never execute LIVE")
    assert count_rows(db_path, "orders") == 0 and count_rows(db_path, "operations") == 0
    assert parsed(robson("plan", "show", intent_id, "--json"))["status"] == "VALIDATED"


def test_no_entry_only_detects_and_decides(robson, db_path):
    scan(robson, "2021-06-22T01:15", *RESCUE, *BTC, "--no-entry")

    doc = scan(robson, "2021-06-22T01:30", *RESCUE, *BTC, "--no-entry")

    assert [s["status"] for s in doc["resolved"]] == ["CONFIRMED"]
    assert doc["entries"] == [] and doc["entry"] is False
    assert [s["reason"] for s in doc["skipped"]] == ["--no-entry: detection only"]
    assert count_rows(db_path, "intents") == 0


def test_a_confidence_below_the_strategy_minimum_is_skipped_with_the_numbers(robson, db_path, tmp_path, monkeypatch):
    rescue_forces_with(tmp_path, monkeypatch, min_confidence=0.8)
    scan(robson, "2021-06-22T01:15", *RESCUE, *BTC)

    doc = scan(robson, "2021-06-22T01:30", *RESCUE, *BTC)

    assert [s["reason"] for s in doc["skipped"]] == ["confidence 0.75 < min 0.8"]
    assert count_rows(db_path, "intents") == 0


def test_entries_beyond_the_daily_maximum_are_skipped(robson, db_path, tmp_path, monkeypatch):
    rescue_forces_with(tmp_path, monkeypatch, max_entries_per_day=1, cooldown_minutes=0)
    for as_of in ("2021-06-22T01:15", "2021-06-22T01:30", "2021-06-22T10:45"):
        scan(robson, as_of, *RESCUE, *BTC)

    doc = scan(robson, "2021-06-22T11:00", *RESCUE, *BTC)

    assert [s["status"] for s in doc["resolved"]] == ["CONFIRMED"]
    assert [s["reason"] for s in doc["skipped"]] == ["max entries per day reached: 1 of 1 today (UTC)"]
    assert count_rows(db_path, "intents") == 1


def test_a_new_day_allows_entries_again(robson, db_path, tmp_path, monkeypatch):
    rescue_forces_with(tmp_path, monkeypatch, max_entries_per_day=1, cooldown_minutes=0)
    for as_of in ("2021-06-22T01:15", "2021-06-22T01:30", "2021-06-23T00:45"):
        scan(robson, as_of, *RESCUE, *BTC)

    doc = scan(robson, "2021-06-23T01:00", *RESCUE, *BTC)  # the 00:30 signal, confirmed the next day

    assert len(doc["entries"]) == 1 and doc["skipped"] == []


def test_an_entry_inside_the_cooldown_is_skipped(robson, db_path, tmp_path, monkeypatch):
    rescue_forces_with(tmp_path, monkeypatch, max_entries_per_day=3, cooldown_minutes=600)
    for as_of in ("2021-06-22T01:15", "2021-06-22T01:30", "2021-06-22T10:45"):
        scan(robson, as_of, *RESCUE, *BTC)

    doc = scan(robson, "2021-06-22T11:00", *RESCUE, *BTC)

    assert [s["reason"] for s in doc["skipped"]] == ["cooldown: last rescue-forces entry on BTCUSDT 570 min ago < 600 min"]
    assert count_rows(db_path, "intents") == 1


def test_a_confirmation_found_late_is_not_entered_at_todays_price(robson, db_path):
    scan(robson, "2021-06-22T01:15", *RESCUE, *BTC)

    doc = scan(robson, "2021-06-22T01:45", *RESCUE, *BTC)  # the 01:30 scan was missed

    assert [s["status"] for s in doc["resolved"]] == ["CONFIRMED"]
    assert "not the last closed one: too late to enter" in doc["skipped"][0]["reason"]
    assert count_rows(db_path, "intents") == 0


def test_a_manual_strategy_records_signals_but_never_enters(robson, db_path):
    bounce = ("--strategy", "bounce-back", *BTC)
    scan(robson, "2021-06-22T14:00", *bounce)

    doc = scan(robson, "2021-06-22T15:00", *bounce)

    assert "CONFIRMED" in [s["status"] for s in doc["resolved"]]
    assert doc["entries"] == [] and doc["skipped"] == []
    assert count_rows(db_path, "intents") == 0


# --- symbols and failures ----------------------------------------------------------------------


def test_a_failing_symbol_is_reported_and_the_others_are_scanned(robson):
    result = robson("--as-of", "2021-06-22T01:15", "scan", *RESCUE, "--symbols", "NOPEUSDT,BTCUSDT", "--json")

    doc = parsed(result)
    assert [s["symbol"] for s in doc["detected"]] == ["BTCUSDT"]
    [failure] = doc["failures"]
    assert failure["symbol"] == "NOPEUSDT" and "unknown symbol 'NOPEUSDT'" in failure["message"]
    assert "scan: NOPEUSDT 15m (rescue-forces): unknown symbol" in result.stderr


def test_when_every_symbol_fails_the_scan_exits_1(robson):
    result = robson("--as-of", "2021-06-22T01:15", "scan", *RESCUE, "--symbols", "NOPEUSDT,ETHUSDT")

    assert_user_error(result, 1, "nothing could be scanned: every symbol failed")
    assert "ETHUSDT has no 15m candles" in result.stderr


def test_a_plain_scan_on_the_default_config_scans_what_the_sample_market_holds(robson, db_path):
    result = robson("scan")
    doc = parsed(robson("scan", "--json"))

    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout.strip() == (
        "scan 2021-07-17 21:10 UTC: 6 of 10 pairs scanned, 0 new signals, 0 intents, 4 not in the sample market")
    # 5 scanning strategies × BTCUSDT and ETHUSDT; the sample's ETHUSDT starts at 1h.
    assert (doc["pairs"], doc["scanned"], doc["failed"], doc["failures"]) == (10, 6, 0, [])
    assert [(n["symbol"], n["timeframe"], n["strategies"]) for n in doc["not_held"]] == [
        ("ETHUSDT", "15m", ["mean-reversion-ma99", "rescue-forces"]), ("ETHUSDT", "30m", ["bounce-back"]),
        ("ETHUSDT", "5m", ["ma-cross-5m"])]


def test_symbols_named_on_the_command_line_fail_loudly_where_the_market_has_no_series(robson):
    result = robson("scan", "--symbols", "BTCUSDT,ETHUSDT", "--json")

    doc = parsed(result)
    assert (doc["pairs"], doc["scanned"], doc["failed"], doc["not_held"]) == (10, 6, 4, [])
    assert len(doc["failures"]) == 3  # one per (symbol, timeframe) fetched; 4 pairs in them
    assert "scan: ETHUSDT 5m (ma-cross-5m): ETHUSDT has no 5m candles in the sample market" in result.stderr


def test_quote_scans_every_trading_symbol_quoted_in_that_asset(robson):
    doc = scan(robson, "2021-06-22T01:15", "--strategy", "smooth-sailing", "--quote", "usdt")

    assert doc["symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert doc["scanned"] == 2


def test_the_config_names_the_default_symbols_and_strategies(robson, monkeypatch):
    monkeypatch.setenv("ROBSON_SCAN__SYMBOLS", "btcusdt")
    monkeypatch.setenv("ROBSON_SCAN__STRATEGIES", "rescue-forces,smooth-sailing")

    doc = scan(robson, "2021-06-22T01:15")

    assert doc["symbols"] == ["BTCUSDT"]
    assert doc["strategies"] == ["rescue-forces", "smooth-sailing"]


def test_by_default_every_strategy_with_a_scan_section_runs(robson):
    doc = scan(robson, "2021-06-22T01:15", *BTC)

    assert doc["strategies"] == ["bounce-back", "ma-cross-5m", "mean-reversion-ma99", "rescue-forces", "smooth-sailing"]


@pytest.mark.parametrize(("args", "fragment"), [
    (["--symbols", "BTCUSDT", "--quote", "USDT"], "either --symbols or --quote"),
    (["--symbols", " , "], "--symbols needs at least one symbol"),
    (["--strategy", "all-in"], "all-in has no scan section"),
    (["--strategy", "nope"], "unknown strategy 'nope'"),
    (["--timeframe", "7m"], "unknown timeframe '7m'"),
    (["--quote", "XYZ"], "no trading symbol of the sample market is quoted in XYZ"),
])
def test_bad_options_exit_2_and_change_nothing(robson, db_path, args, fragment):
    scan(robson, "2021-06-22T01:15", *BTC)
    before = dump_database(db_path)

    result = robson("--as-of", "2021-06-22T01:30", "scan", *args)

    assert_user_error(result, 2, fragment)
    assert result.stdout == ""
    assert dump_database(db_path) == before


def test_a_second_scan_on_the_same_database_exits_4(robson, db_path):
    parsed(robson("signals", "list", "--json"))  # creates the database
    store = databases.open_store(db_path)
    me = this_process()
    # Another live robson process on this host holds the scan lock (this test's process: proven alive).
    put_lease(store, "scan", host=me.host, pid=os.getpid(), started=me.started, place=me.place, expires_in=60)
    store.close()

    result = robson("--as-of", "2021-06-22T01:15", "scan", *BTC)

    assert_user_error(result, 4, f"robson scan is already running in process {os.getpid()}")
    assert result.stdout == ""
    assert count_rows(db_path, "signals") == 0


# --- output ----------------------------------------------------------------------------------------


def test_a_quiet_one_line_summary_when_not_a_terminal(robson):
    scan(robson, "2021-06-22T01:15", *RESCUE, *BTC)

    result = robson("--as-of", "2021-06-22T01:30", "scan", *RESCUE, *BTC)

    assert result.exit_code == 0, result.stderr
    [line] = result.stdout.splitlines()
    assert line.startswith("scan 2021-06-22 01:30 UTC: 1 pair scanned, 0 new signals, 1 confirmed, 1 intent (pl-")
    assert "VALIDATED from sg-" in line
    assert result.stderr == ""


def test_the_summary_gives_each_skip_its_reason(robson):
    scan(robson, "2021-06-22T01:15", *RESCUE, *BTC)

    result = robson("--as-of", "2021-06-22T01:45", "scan", *RESCUE, *BTC)

    assert "1 skipped" in result.stdout and "too late to enter" in result.stdout


def test_the_json_document_has_every_part_and_no_floats(robson):
    scan(robson, "2021-06-22T01:15", *BTC)

    doc = scan(robson, "2021-06-22T01:30", *BTC)

    assert set(doc) == {"at", "market", "strategies", "symbols", "timeframe", "entry", "scanned", "detected",
                        "already_recorded", "resolved", "entries", "skipped", "failures", "pairs", "failed", "not_held"}
    assert (doc["at"], doc["market"], doc["timeframe"], doc["entry"]) == ("2021-06-22T01:30:00+00:00", "sample", None, True)
    assert set(doc["entries"][0]) == {"signal_id", "intent_id", "symbol", "strategy", "status", "verdict", "problem"}
    assert floats_in(doc) == []


def test_a_terminal_gets_a_table_of_signals_and_intents(robson):
    scan(robson, "2021-06-22T01:15", *RESCUE, *BTC)

    result = robson("--as-of", "2021-06-22T01:30", "scan", *RESCUE, *BTC,
                    env={"FORCE_COLOR": "1", "NO_COLOR": "1", "COLUMNS": "200"})

    assert result.exit_code == 0, result.stderr
    assert "CONFIRMED" in result.stdout and "Intents created (never executed by a scan)" in result.stdout
    assert result.stdout.rstrip().splitlines()[-1].startswith("scan 2021-06-22 01:30 UTC:")


def test_a_timeframe_override_scans_every_strategy_on_it(robson):
    doc = scan(robson, "2021-06-22T02:00", *RESCUE, *BTC, "--timeframe", "1h", "--no-entry")

    assert doc["timeframe"] == "1h" and doc["scanned"] == 1
    assert all(s["timeframe"] == "1h" for s in doc["detected"])
