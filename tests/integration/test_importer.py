"""Parsing candle files for import: freqtrade JSON and Binance kline CSV, every bad row reported."""

from decimal import Decimal
from pathlib import Path

import pytest

from robson.adapters.market.importer import parse_candle_file
from robson.domain.market import Candle
from robson.errors import DataImportError, InvalidInput, NotFound

FREQTRADE_JSON = (
    "[[1606780800000,19695.87,19720.0,19578.96,19607.03,794.500517],"
    "[1606781100000,19607.02,19607.02,19505.9,19537.95,710.941254],"
    "[1606781400000,19539.64,19601.0,19530.03,19567.99,251.34441]]"
)
BINANCE_HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
    "taker_buy_volume,taker_buy_quote_volume,ignore\n"
)
# Laid out like Binance's 2025+ spot kline files (times in microseconds); the values are illustrative.
BINANCE_MICROSECOND_ROWS = (
    "1735689600000000,93576.00000000,93610.93000000,93537.50000000,93610.93000000,8.21827000,"
    "1735689659999999,768978.16950570,1435,3.98165000,372610.52037780,0\n"
    "1735689660000000,93610.93000000,93610.94000000,93558.00000000,93558.01000000,10.67820000,"
    "1735689719999999,999483.49007150,2225,3.25389000,304576.12513090,0\n"
)
CSV_ROW = "{time},{open},{high},{low},{close},{volume},0,0,0,0,0,0\n"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def csv_file(tmp_path: Path, *rows: str, header: bool = True) -> Path:
    return write(tmp_path, "candles.csv", (BINANCE_HEADER if header else "") + "".join(rows))


def row(time: int, open_: str = "10", high: str = "12", low: str = "9", close: str = "11", volume: str = "1") -> str:
    return CSV_ROW.format(time=time, open=open_, high=high, low=low, close=close, volume=volume)


def problems_of(path: Path, timeframe: str = "1m") -> list[str]:
    with pytest.raises(DataImportError) as raised:
        parse_candle_file(path, timeframe)
    return raised.value.problems


MINUTE = 60_000
T0 = 1_735_689_600_000  # 2025-01-01 00:00 UTC


# --- good files -------------------------------------------------------------


def test_freqtrade_json_numbers_become_exact_decimals_of_their_text(tmp_path):
    path = write(tmp_path, "BTC_USDT-5m.json", FREQTRADE_JSON)

    candles = parse_candle_file(path, "5m")

    assert len(candles) == 3
    assert candles[0] == Candle(
        1606780800000,
        Decimal("19695.87"),
        Decimal("19720.0"),
        Decimal("19578.96"),
        Decimal("19607.03"),
        Decimal("794.500517"),
    )
    assert str(candles[0].high) == "19720.0"


def test_freqtrade_json_may_hold_numbers_as_strings(tmp_path):
    path = write(tmp_path, "c.json", '[["1606780800000", "19695.87", "19720.0", "19578.96", "19607.03", "0.1"]]')

    (candle,) = parse_candle_file(path, "5m")

    assert (candle.open_time, candle.volume) == (1606780800000, Decimal("0.1"))


def test_binance_csv_with_a_header_in_microseconds_is_normalised_to_milliseconds(tmp_path):
    path = csv_file(tmp_path, BINANCE_MICROSECOND_ROWS)

    candles = parse_candle_file(path, "1m")

    assert [c.open_time for c in candles] == [T0, T0 + MINUTE]
    assert candles[1].close == Decimal("93558.01000000")


def test_binance_csv_without_a_header_in_milliseconds(tmp_path):
    path = csv_file(tmp_path, row(T0), row(T0 + MINUTE, close="12"), header=False)

    candles = parse_candle_file(path, "1m")

    assert [(c.open_time, c.close) for c in candles] == [(T0, Decimal("11")), (T0 + MINUTE, Decimal("12"))]


def test_csv_with_only_the_six_ohlcv_columns_and_windows_line_ends(tmp_path):
    path = write(tmp_path, "c.csv", f"open_time,open,high,low,close,volume\r\n{T0},1,2,1,2,5\r\n")

    (candle,) = parse_candle_file(path, "1m")

    assert candle == Candle(T0, Decimal(1), Decimal(2), Decimal(1), Decimal(2), Decimal(5))


def test_zero_volume_is_accepted(tmp_path):
    path = csv_file(tmp_path, row(T0, volume="0.0"))

    assert parse_candle_file(path, "1m")[0].volume == 0


# --- bad rows, each with its line ------------------------------------------------


@pytest.mark.parametrize(
    ("bad_row", "problem"),
    [
        (row(T0 + MINUTE, close="abc"), "line 3: close 'abc' is not a number"),
        (row(T0 + MINUTE, low="-1"), "line 3: low -1 must be greater than 0"),
        (row(T0 + MINUTE, low="0"), "line 3: low 0 must be greater than 0"),
        (row(T0 + MINUTE, high="10.5"), "line 3: high 10.5 is below max(open, close) 11"),
        (row(T0 + MINUTE, low="10.5"), "line 3: low 10.5 is above min(open, close) 10"),
        (row(T0 + MINUTE, volume="-0.5"), "line 3: volume -0.5 is negative"),
        (
            row(T0 + 1_000),
            "line 3: open_time 1735689601000 (2025-01-01 00:00:01 UTC) is not aligned to the 1m timeframe",
        ),
        (row(T0), "line 3: duplicate open_time 1735689600000 (2025-01-01 00:00:00 UTC), already on line 2"),
        (f"{T0 + MINUTE},1,2,1\n", "line 3: expected 12 or 6 columns, got 4"),
        ("x" + row(T0 + MINUTE), "line 3: open_time 'x1735689660000' is not a number"),
    ],
)
def test_each_kind_of_bad_row_is_reported_with_its_line(tmp_path, bad_row, problem):
    path = csv_file(tmp_path, row(T0), bad_row, row(T0 + 2 * MINUTE))

    assert problems_of(path) == [problem]


def test_a_row_out_of_time_order_is_reported(tmp_path):
    path = csv_file(tmp_path, row(T0 + MINUTE), row(T0), header=False)

    assert problems_of(path) == [
        "line 2: out-of-order open_time 1735689600000 (2025-01-01 00:00:00 UTC), before line 1"
    ]


def test_json_problems_name_the_one_based_row(tmp_path):
    path = write(
        tmp_path,
        "c.json",
        "[[1606780800000, 1, 2, 1, 2, 1],\n [1606781100000, 1, 0.5, 1, 2, 1],\n [1606781400000, 1, 2, 1],"
        " [1606781700000, null, 2, 1, 2, 1]]",
    )

    assert problems_of(path, "5m") == [
        "row 2: high 0.5 is below max(open, close) 2",
        "row 3: expected 6 columns, got 4",
        "row 4: open null is not a number",
    ]


def test_every_problem_in_the_file_is_listed_and_nothing_is_returned(tmp_path):
    path = csv_file(tmp_path, row(T0, volume="-1"), row(T0 + MINUTE), row(T0 + 2 * MINUTE, high="1"))

    with pytest.raises(DataImportError) as raised:
        parse_candle_file(path, "1m")

    assert raised.value.problems == [
        "line 2: volume -1 is negative",
        "line 4: high 1 is below max(open, close) 11",
    ]
    assert str(raised.value) == "candles.csv: 2 problem(s) in 3 rows, nothing imported"


def test_a_long_list_of_problems_is_capped_with_a_count_of_the_rest(tmp_path):
    path = csv_file(tmp_path, *(row(T0 + i * MINUTE, volume="-1") for i in range(70)))

    problems = problems_of(path)

    assert len(problems) == 51
    assert problems[49] == "line 51: volume -1 is negative"
    assert problems[50] == "… and 20 more problems"


# --- unusable files -----------------------------------------------------------


@pytest.mark.parametrize("text", ["", "  \n\n", BINANCE_HEADER, "[]"])
def test_a_file_without_candles_is_refused(tmp_path, text):
    path = write(tmp_path, "empty.csv", text)

    with pytest.raises(DataImportError):
        parse_candle_file(path, "1m")


def test_invalid_json_is_refused_with_its_position(tmp_path):
    path = write(tmp_path, "broken.json", "[[1606780800000, 1, 2, 1, 2, 1],\n [1606781100000, 1,")

    with pytest.raises(DataImportError, match="broken.json is not valid JSON \\(line 2 column"):
        parse_candle_file(path, "5m")


def test_a_missing_file_is_not_found(tmp_path):
    with pytest.raises(NotFound, match="no such file"):
        parse_candle_file(tmp_path / "nope.csv", "1m")


def test_an_unknown_timeframe_is_invalid_input(tmp_path):
    path = csv_file(tmp_path, row(T0))

    with pytest.raises(InvalidInput, match="unknown timeframe"):
        parse_candle_file(path, "7m")
