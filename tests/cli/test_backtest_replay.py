"""The backtest is the trade journey replayed: scan + plan + validate + execute + monitor at every candle give its trades.

Each test walks a short window of the real sample market with `--as-of` at every 5m close, as a
trader (or cron) would: the monitor first, then the scan, then plan → validate → execute for each
signal the scan confirmed on that close (a scan of an auto-entry strategy plans and validates by
itself). `robson backtest` over the same window must make the very same trades, to the cent, and
the scans must have recorded exactly the signals the backtest acted on.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.cli.conftest import parsed

STEP = timedelta(minutes=5)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M")


def replay(robson, strategy: str, start: datetime, end: datetime, *, scan_every: timedelta) -> None:
    """Run the journey at every 5m close in [start, end]: monitor, scan, then enter what the scan confirmed."""
    moment = start
    while moment <= end:
        when = stamp(moment)
        assert robson("--as-of", when, "monitor", "--once", "--json").exit_code == 0
        if moment < end and (moment - start) % scan_every == timedelta(0):
            report = parsed(robson("--as-of", when, "scan", "--strategy", strategy, "--symbols", "BTCUSDT", "--json"))
            auto = [entry for entry in report["entries"]]
            intents = [entry["intent_id"] for entry in auto if entry["verdict"] in ("PASS", "WARN")]
            if not auto and not report["skipped"]:  # a manual strategy: the trader plans each confirmed signal
                for signal in report["resolved"]:
                    if signal["status"] == "CONFIRMED" and signal["strategy"] == strategy:
                        plan = parsed(robson("--as-of", when, "plan", "buy", "BTCUSDT", "--strategy", strategy,
                                             "--json"))
                        verdict = robson("--as-of", when, "validate", plan["id"], "--json")
                        if verdict.exit_code == 0:
                            intents.append(plan["id"])
            for intent in intents:
                executed = robson("--as-of", when, "execute", intent, "--json")
                assert executed.exit_code in (0, 1), executed.stderr  # 1: the paper book refused the fill
        moment += STEP


def journey_trades(robson) -> list[dict]:
    operations = parsed(robson("operation", "list", "--json"))["operations"]
    return sorted(operations, key=lambda op: op["opened_at"])


def backtest(robson, strategy: str, start: datetime, end: datetime) -> dict:
    return parsed(robson("backtest", "--strategy", strategy, "--symbols", "BTCUSDT", "--from", stamp(start),
                         "--to", stamp(end), "--slippage", "0.05", "--trades", "0", "--json"))


def assert_same_trades(journey: list[dict], result: dict) -> None:
    trades = result["trades"]
    assert len(journey) == len(trades) > 0
    for op, trade in zip(journey, trades, strict=True):
        assert datetime.fromisoformat(op["opened_at"]) == datetime.fromisoformat(trade["entry_time"])
        assert Decimal(op["entry_price"]) == Decimal(trade["entry_price"])
        assert Decimal(op["quantity"]) == Decimal(trade["quantity"])
        assert Decimal(op["initial_stop"]) == Decimal(trade["initial_stop"])
        if trade["exit_reason"] == "end_of_data":  # still open when the window ends
            assert op["status"] == "ACTIVE"
            continue
        assert op["status"] == "CLOSED"
        assert op["close_reason"] == trade["exit_reason"]
        assert Decimal(op["exit_price"]) == Decimal(trade["exit_price"])
        assert Decimal(op["realized_pnl"]) == Decimal(trade["pnl"])
        assert datetime.fromisoformat(op["closed_at"]) == datetime.fromisoformat(trade["exit_fill_time"])


def assert_same_signals(robson, strategy: str, result: dict, start: datetime, end: datetime) -> None:
    recorded = parsed(robson("signals", "list", "--strategy", strategy, "--json"))["signals"]
    seen = {(s["pattern"], datetime.fromisoformat(s["candle_open"]), s["status"]) for s in recorded}
    acted = {(s["setup"], datetime.fromisoformat(s["candle_time"]), s["status"]) for s in result["signals"]
             if datetime.fromisoformat(s["candle_time"]) < end - STEP}  # the last close is scanned by neither
    assert seen == acted and acted


@pytest.mark.slow
def test_ma_cross_journey_at_every_candle_makes_the_backtests_trades(robson, monkeypatch):
    # 2021-07-05 on BTCUSDT 5m: two stop-outs in the morning (crosses meanwhile refused: a second 50 %
    # position would take exposure past 80 %), then the daily loss guard refuses the crosses of 12:30
    # and 13:10 (2.25 % of capital lost that day ≥ 2 %).
    start, end = at("2021-07-05T00:30"), at("2021-07-05T13:30")

    replay(robson, "ma-cross-5m", start, end, scan_every=STEP)
    result = backtest(robson, "ma-cross-5m", start, end)

    assert_same_trades(journey_trades(robson), result)
    assert_same_signals(robson, "ma-cross-5m", result, start, end)
    failed = parsed(robson("plan", "list", "--status", "FAILED", "--json"))["intents"]
    refused = [r for r in result["refusals"] if r["guards"] != ["end of data"]]
    assert [datetime.fromisoformat(i["created_at"]) for i in failed] == \
        [datetime.fromisoformat(r["time"]) for r in refused]
    assert result["summary"]["refused_by_guard"] == {"open positions": 7, "daily loss": 2}


@pytest.mark.slow
@pytest.mark.parametrize(("start", "end", "exit_reason"), [
    ("2021-01-17T15:00", "2021-01-17T23:30", "trailing"),  # the stop trails to break-even, then fills there
    ("2021-01-05T14:00", "2021-01-05T19:00", "target"),  # one trailing step, then the target
])
def test_rescue_forces_auto_entries_with_trailing_stops_are_the_backtests_trades(robson, start, end, exit_reason):
    # BTCUSDT 15m (exits walk 5m): the scan auto-enters MA4 × MA9 crosses on volume and validates them;
    # the hand-span trail lifts the stop as the move runs.
    start, end = at(start), at(end)

    replay(robson, "rescue-forces", start, end, scan_every=timedelta(minutes=15))
    result = backtest(robson, "rescue-forces", start, end)

    assert_same_trades(journey_trades(robson), result)
    assert_same_signals(robson, "rescue-forces", result, start, end)
    assert [(t["exit_reason"], t["stop_moves"]) for t in result["trades"]] == [(exit_reason, "1")]


LADDER_CROSS = """\
name: ladder-cross
title: Ladder Cross (tests)
entry: manual
timeframe: 5m
risk_percent: 1
stop: {method: fixed_percent, percent: 0.5}
targets:
  - {at: 1R, close: 50%, then_stop: breakeven_plus_fees}
  - {at: 2R, close: 25%, then_stop: previous_target}
  - {at: 3R, close: rest}
scan:
  indicators:
    ma4: {kind: sma, length: 4}
    ma9: {kind: sma, length: 9}
  setups:
    - name: sma4-crosses-above-sma9
      side: buy
      when:
        crosses_above: [ma4, ma9]
      confirm: none
"""


@pytest.mark.slow
def test_a_ladder_strategy_journey_at_every_candle_makes_the_backtests_trades_and_parts(robson, tmp_path,
                                                                                         monkeypatch):
    # 2021-07-02 on BTCUSDT 5m: the SMA4 × SMA9 crosses of 04:05, 04:45 and 06:10 enter at the next open
    # with a 0.5 % stop and a three-target ladder: the first takes target 1 then stops at break-even plus
    # fees, the second stops out, the third takes targets 1 and 2 and closes at target 3.
    folder = tmp_path / "strategies"
    folder.mkdir()
    (folder / "ladder-cross.yaml").write_text(LADDER_CROSS)
    monkeypatch.setenv("ROBSON_STRATEGIES_DIR", str(folder))
    start, end = at("2021-07-02T04:00"), at("2021-07-02T08:00")

    replay(robson, "ladder-cross", start, end, scan_every=STEP)
    result = backtest(robson, "ladder-cross", start, end)

    journey = journey_trades(robson)
    assert_same_trades(journey, result)
    assert_same_signals(robson, "ladder-cross", result, start, end)
    for op, trade in zip(journey, result["trades"], strict=True):
        assert [(p["target"], Decimal(p["quantity"]), Decimal(p["price"]), Decimal(p["fee"]), p["reason"],
                 datetime.fromisoformat(p["at"])) for p in op["partial_exits"]] == \
            [(p["target"], Decimal(p["quantity"]), Decimal(p["price"]), Decimal(p["fee"]), p["reason"],
              datetime.fromisoformat(p["at"])) for p in trade["parts"]]
    assert [(t["exit_reason"], [p["target"] for p in t["parts"]]) for t in result["trades"]] == [
        ("stop", [1]), ("stop", []), ("target", [1, 2])]
