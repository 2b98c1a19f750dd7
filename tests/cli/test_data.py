"""`robson data import|list`: candle files in, all or nothing."""

import json

from tests import databases
from tests.cli.conftest import assert_user_error, count_rows, dump_database, floats_in, parsed

# Three 1h candles right after the bundled data ends (2021-07-17 21:10 UTC), freqtrade JSON layout.
FREQTRADE_ROWS = [
    [1626562800000, 31700.0, 31800.5, 31650.1, 31750.25, 12.5],
    [1626566400000, 31750.25, 31900, 31700, 31880.0, 10],
    [1626570000000, 31880.0, 31950, 31800, 31900.1, 8.25],
]
BAD_CSV = (
    "open_time,open,high,low,close,volume\n"
    "1626562800000,1,2,0.5,1.5,10\n"
    "1626566400000,abc,2,0.5,1.5,10\n"
    "1626570000000,1,2,0.5\n"
    "1626573600000,1,0.5,2,1.5,10\n"
)


def test_a_freqtrade_json_file_imports_and_is_listed(robson, tmp_path):
    (tmp_path / "BTCUSDT-1h.json").write_text(json.dumps(FREQTRADE_ROWS))

    result = robson("data", "import", "BTCUSDT-1h.json", "--symbol", "btcusdt", "--timeframe", "1h", "--json")

    doc = parsed(result)
    assert result.stderr == ""
    assert floats_in(doc) == []
    assert doc == {"symbol": "BTCUSDT", "timeframe": "1h", "candles": 3,
                   "first": "2021-07-17T23:00:00+00:00", "last": "2021-07-18T01:00:00+00:00"}
    listed = parsed(robson("data", "list", "--json"))
    assert listed == {"series": [{"symbol": "BTCUSDT", "timeframe": "1h", "candles": 3}]}
    human = robson("data", "list")
    assert human.exit_code == 0 and "BTCUSDT" in human.stdout and "1h" in human.stdout


def test_imported_candles_keep_their_exact_prices(robson, tmp_path, db_path):
    (tmp_path / "c.json").write_text(json.dumps(FREQTRADE_ROWS))
    parsed(robson("data", "import", "c.json", "--symbol", "BTCUSDT", "--timeframe", "1h", "--json"))

    stored = [tuple(row.values()) for row in databases.fetch(db_path, "SELECT * FROM candles")]
    assert len(stored) == 3
    assert any("31800.5" in map(str, row) for row in stored)


def test_a_csv_with_bad_rows_imports_nothing_and_lists_the_line_numbers(robson, tmp_path, db_path):
    parsed(robson("data", "list", "--json"))  # create the database
    (tmp_path / "bad.csv").write_text(BAD_CSV)
    before = dump_database(db_path)

    result = robson("data", "import", "bad.csv", "--symbol", "ETHUSDT", "--timeframe", "1h")

    stderr = assert_user_error(result, 2, "bad.csv", "nothing imported")
    assert "line 2" not in stderr  # the good row is not blamed
    for line in ("line 3: open 'abc' is not a number", "line 4: expected 12 or 6 columns, got 4", "line 5: high 0.5",
                 "line 5: low 2"):
        assert line in stderr
    assert result.stdout == ""
    assert count_rows(db_path, "candles") == 0
    assert dump_database(db_path) == before
    assert parsed(robson("data", "list", "--json")) == {"series": []}


def test_importing_a_missing_file_exits_2(robson):
    assert_user_error(robson("data", "import", "nowhere.json", "--symbol", "BTCUSDT", "--timeframe", "1h"), 2,
                      "no such file: nowhere.json")


def test_importing_with_an_unknown_timeframe_exits_2(robson, tmp_path):
    (tmp_path / "c.json").write_text(json.dumps(FREQTRADE_ROWS))

    assert_user_error(robson("data", "import", "c.json", "--symbol", "BTCUSDT", "--timeframe", "7m"), 2,
                      "unknown timeframe '7m'")


def test_importing_invalid_json_exits_2_with_the_position(robson, tmp_path):
    (tmp_path / "c.json").write_text("[[1626562800000, 1, 2,")

    assert_user_error(robson("data", "import", "c.json", "--symbol", "BTCUSDT", "--timeframe", "1h"), 2,
                      "c.json is not valid JSON", "line 1")
