"""`robson backtest` from the command line: what it prints, exports, draws and keeps, and what it refuses."""

from __future__ import annotations

import csv
import json
from decimal import Decimal

import pytest

from tests.cli.conftest import assert_user_error, dump_database, floats_in, parsed

MA_CROSS = ("backtest", "--strategy", "ma-cross-5m", "--symbols", "BTCUSDT", "--from", "2021-07-01", "--to",
            "2021-07-08")


def test_json_is_one_document_with_money_as_text_and_every_part_of_the_result(robson):
    doc = parsed(robson(*MA_CROSS, "--json"))

    assert floats_in(doc) == []
    assert set(doc) >= {"settings", "summary", "by_exit_reason", "by_symbol", "by_month", "equity", "trades",
                        "signals", "refusals"}
    summary = doc["summary"]
    assert summary["trades"] == len(doc["trades"]) > 0
    assert summary["trades"] == summary["wins"] + summary["losses"] + summary["break_even"]
    assert Decimal(summary["total_pnl"]) == sum(Decimal(t["pnl"]) for t in doc["trades"])
    assert Decimal(summary["fees"]) == sum(Decimal(t["fees"]) for t in doc["trades"])
    assert Decimal(summary["final_equity"]) == Decimal(doc["settings"]["capital"]) + Decimal(summary["total_pnl"])
    assert sum(b["trades"] for b in doc["by_exit_reason"]) == summary["trades"]
    assert sum(b["trades"] for b in doc["by_month"]) == summary["trades"]
    assert summary["refused"] == sum(summary["refused_by_guard"].values()) or summary["refused"] > 0
    assert doc["settings"]["every_signal_entered"] is True and doc["settings"]["guards"] == "all"
    assert set(summary["max_drawdown"]) == {"amount", "percent", "start", "end", "duration", "recovered"}
    for key in ("sharpe", "sortino", "calmar", "cagr_percent", "time_in_market_percent", "expectancy"):
        assert key in summary


def test_the_terminal_output_names_the_assumptions_the_summary_breakdowns_chart_and_trades(robson):
    result = robson(*MA_CROSS)

    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert "Backtest ma-cross-5m on BTCUSDT 5m (exits on 5m candles), 2021-07-01 00:00 → 2021-07-08 00:00 UTC" in out
    assert "every confirmed signal is entered here" in out
    for part in ("Summary", "win rate", "profit factor", "max drawdown", "Sharpe / Sortino / Calmar",
                 "time in market", "longest losing streak", "fees paid", "stop and target in one candle",
                 "By exit reason", "By month", "equity   ", "drawdown ", "Trades"):
        assert part in out, part
    assert result.stderr == ""  # no progress bar when stderr is not a terminal


def test_no_guards_is_named_in_the_output(robson):
    result = robson(*MA_CROSS, "--no-guards")

    assert "--no-guards: daily loss, monthly drawdown, cooldown and exposure guards are OFF" in result.stdout


def test_compare_guards_shows_both_runs_side_by_side(robson):
    doc = parsed(robson(*MA_CROSS, "--compare-guards", "--json"))
    shown = robson(*MA_CROSS, "--compare-guards").stdout

    assert set(doc) == {"with_guards", "without_guards", "guards_off"}
    assert doc["with_guards"]["trades"] != doc["without_guards"]["trades"] or \
        doc["with_guards"]["total_pnl"] != doc["without_guards"]["total_pnl"]
    assert "with guards" in shown and "without" in shown and ("The guards saved" in shown or "The guards cost" in shown)


def test_export_writes_every_trade_at_full_precision_as_csv_or_json(robson, tmp_path):
    doc = parsed(robson(*MA_CROSS, "--export", str(tmp_path / "t.csv"), "--json"))
    robson(*MA_CROSS, "--export", str(tmp_path / "t.json"))

    with (tmp_path / "t.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:9] == ["entry_time", "exit_time", "entry_price", "exit_price", "quantity", "fees", "pnl",
                                 "r", "exit_reason"]
    assert rows == [{k: v for k, v in trade.items() if k != "parts"} for trade in doc["trades"]]
    assert all(trade["parts"] == [] for trade in doc["trades"])  # one target: no partial exits
    assert json.loads((tmp_path / "t.json").read_text()) == doc["trades"]
    assert rows[0]["entry_time"].endswith("Z") and "T" in rows[0]["entry_time"]


@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_plot_draws_the_equity_curve_into_a_picture(robson, tmp_path, suffix):
    picture = tmp_path / f"equity.{suffix}"

    result = robson(*MA_CROSS, "--plot", str(picture))

    assert result.exit_code == 0, result.stderr
    head = picture.read_bytes()[:200]
    assert head.startswith(b"\x89PNG") if suffix == "png" else b"<svg" in picture.read_bytes()[:2000] or b"<?xml" in head


def test_save_keeps_the_result_under_a_bt_id_that_list_and_show_bring_back(robson):
    doc = parsed(robson(*MA_CROSS, "--save", "--json"))

    saved = parsed(robson("backtest", "list", "--json"))
    shown = parsed(robson("backtest", "show", doc["id"][:6], "--json"))
    table = robson("backtest", "show", doc["id"])

    assert doc["id"].startswith("bt-")
    assert [s["id"] for s in saved] == [doc["id"]]
    assert saved[0]["strategy"] == "ma-cross-5m" and saved[0]["trades"] == doc["summary"]["trades"]
    assert shown == json.loads(json.dumps(doc))
    assert table.exit_code == 0 and "Backtest ma-cross-5m" in table.stdout and "Summary" in table.stdout


def test_without_save_nothing_is_stored(robson, db_path):
    robson(*MA_CROSS, "--json")

    assert parsed(robson("backtest", "list", "--json")) == []


def test_show_of_an_unknown_id_is_not_found(robson):
    assert_user_error(robson("backtest", "show", "bt-ffffffff"), 2, "no backtest matches")


@pytest.mark.parametrize(("args", "fragments"), [
    (("--strategy", "nope"), ("unknown strategy 'nope'",)),
    (("--strategy", "all-in"), ("all-in", "no scan section")),
    (("--strategy", "ma-cross-5m", "--symbols", "DOGEUSDT"), ("DOGEUSDT",)),
    (("--strategy", "ma-cross-5m", "--from", "2021-07-08", "--to", "2021-07-01"), ("is not before --to",)),
    (("--strategy", "ma-cross-5m", "--from", "yesterday"), ("--from", "ISO time")),
    (("--strategy", "ma-cross-5m", "--from", "2022-01-01"), ("no 5m candles",)),
    (("--strategy", "ma-cross-5m", "--to", "2019-01-01"), ("no 5m candles", "2019-01-01")),
    (("--strategy", "ma-cross-5m", "--fee", "abc"), ("--fee",)),
    (("--strategy", "ma-cross-5m", "--fee", "75"), ("--fee", "below 50")),
    (("--strategy", "ma-cross-5m", "--stake", "-5"), ("--stake",)),
    (("--strategy", "ma-cross-5m", "--max-open", "0"), ("--max-open",)),
    (("--strategy", "ma-cross-5m", "--timeframe", "7m"), ("unknown timeframe",)),
    (("--strategy", "ma-cross-5m", "--export", "trades.xlsx"), ("--export", ".csv or .json")),
    (("--strategy", "ma-cross-5m", "--plot", "missing/folder/x.png"), ("--plot", "does not exist")),
    (("--strategy", "ma-cross-5m", "--no-guards", "--compare-guards"), ("do not go together",)),
    ((), ("--strategy is required",)),
])
def test_bad_input_is_one_line_exit_2_and_stores_nothing(robson, db_path, args, fragments):
    robson("plan", "list")  # the database exists, so nothing stored can be checked
    before = dump_database(db_path)

    result = robson("backtest", *args, "--save")

    assert_user_error(result, 2, *fragments)
    assert dump_database(db_path) == before


def test_the_default_symbols_are_those_the_market_holds_the_timeframe_for(robson):
    doc = parsed(robson("backtest", "--strategy", "smooth-sailing", "--from", "2021-06-01", "--json"))
    five = parsed(robson("backtest", "--strategy", "ma-cross-5m", "--from", "2021-07-10", "--json"))

    assert doc["settings"]["symbols"] == ["BTCUSDT", "ETHUSDT"]  # 1h: both
    assert five["settings"]["symbols"] == ["BTCUSDT"]  # ETHUSDT has no 5m candles in the sample
