"""Indicators on real BTCUSDT 1h candles match TA-Lib's reference values; native ones match pandas-ta's."""

import ast
import json
import statistics
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from robson.adapters.indicators import bollinger_bands, compute_indicators, indicator_arrays
from robson.domain.conditions import IndicatorSpec, parse_indicators
from robson.domain.market import Candle

# CI checks out ../shared beside the repository (/work/main and /work/shared).
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
MODULE = Path(__file__).resolve().parents[2] / "robson" / "adapters" / "indicators.py"
TOLERANCE = 1e-6

SPECS = parse_indicators({
    "sma20": {"kind": "sma", "length": 20},
    "ema20": {"kind": "ema", "length": 20},
    "rsi14": {"kind": "rsi", "length": 14},
    "atr14": {"kind": "atr", "length": 14},
    "macd": {"kind": "macd", "fast": 12, "slow": 26, "signal": 9},
    "bb": {"kind": "bbands", "length": 20, "std": 2},
    "vol20": {"kind": "volume_sma", "length": 20},
})

# ../shared/data/README.md: TA-Lib on BTCUSDT-1h.json, indexed by candle open time (UTC).
REFERENCE = {
    "sma20": ("18936.189500", "57829.833500", "31560.674000"),
    "ema20": ("18917.196111", "57734.053497", "31646.588877"),
    "rsi14": ("43.612841", "31.124784", "52.544354"),
    "atr14": ("197.497720", "410.445145", "256.147305"),
    "macd.line": ("-125.186951", "-174.597936", "22.584293"),
}
TIMES = ("2020-12-05 03:00", "2021-04-05 05:00", "2021-07-17 20:00")


def load_candles(name: str) -> list[Candle]:
    rows = json.loads((SHARED_DATA / "binance" / name).read_text(), parse_float=Decimal)
    return [Candle(int(row[0]), *(Decimal(value) for value in row[1:])) for row in rows]


def utc_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.fixture(scope="module")
def candles() -> list[Candle]:
    return load_candles("BTCUSDT-1h.json")


@pytest.fixture(scope="module")
def series(candles) -> dict[str, list[float | None]]:
    return compute_indicators(SPECS, candles)


def position(candles: list[Candle], text: str) -> int:
    return next(i for i, candle in enumerate(candles) if candle.open_time == utc_ms(text))


@pytest.mark.parametrize(
    ("name", "moment", "expected"),
    [(name, moment, values[i]) for name, values in REFERENCE.items() for i, moment in enumerate(TIMES)],
)
def test_indicator_matches_the_ta_lib_reference_table(candles, series, name, moment, expected):
    value = series[name][position(candles, moment)]

    assert abs(value - float(expected)) / abs(float(expected)) <= TOLERANCE


def test_the_last_close_is_the_one_the_reference_table_names(candles):
    assert (candles[-1].open_time, candles[-1].close) == (utc_ms(TIMES[-1]), Decimal("31723.09"))


@pytest.mark.parametrize("moment", TIMES)
def test_bollinger_bands_use_the_population_deviation(candles, series, moment):
    index = position(candles, moment)
    window = [float(c.close) for c in candles[index - 19 : index + 1]]
    middle, deviation = statistics.fmean(window), statistics.pstdev(window)

    assert series["bb.middle"][index] == pytest.approx(middle, rel=1e-12)
    assert series["bb.lower"][index] == pytest.approx(middle - 2 * deviation, rel=1e-12)
    assert series["bb.upper"][index] == pytest.approx(middle + 2 * deviation, rel=1e-12)
    assert series["bb.upper"][index] != pytest.approx(middle + 2 * statistics.stdev(window), rel=1e-9)


def test_volume_average_is_the_mean_of_the_last_volumes(candles, series):
    index = position(candles, TIMES[1])

    expected = statistics.fmean(float(c.volume) for c in candles[index - 19 : index + 1])

    assert series["vol20"][index] == pytest.approx(expected, rel=1e-12)


def test_macd_histogram_is_the_line_minus_the_signal(candles, series):
    index = position(candles, TIMES[2])

    assert series["macd.histogram"][index] == pytest.approx(series["macd.line"][index] - series["macd.signal"][index])


@pytest.mark.parametrize(
    ("name", "first_value_at"),
    [("sma20", 19), ("ema20", 19), ("rsi14", 14), ("atr14", 14), ("macd.line", 25), ("macd.signal", 33),
     ("bb.lower", 19), ("vol20", 19)],
)
def test_values_are_none_during_warm_up_as_in_ta_lib(series, name, first_value_at):
    values = series[name]

    assert values[:first_value_at] == [None] * first_value_at
    assert values[first_value_at] is not None


def test_every_output_is_a_plain_list_aligned_to_the_candles(candles, series):
    assert set(series) == {"sma20", "ema20", "rsi14", "atr14", "macd.line", "macd.signal", "macd.histogram",
                           "bb.lower", "bb.middle", "bb.upper", "bb.bandwidth", "bb.percent", "vol20"}
    assert all(type(values) is list and len(values) == len(candles) for values in series.values())
    assert all(type(value) is float for value in series["rsi14"][14:])


def test_too_few_candles_give_only_none(candles):
    short = compute_indicators(SPECS, candles[:10])

    assert all(values == [None] * 10 for values in short.values())


def test_an_indicator_reads_its_declared_source(candles):
    spec = IndicatorSpec("high_ma", "sma", {"length": 3}, source="high")

    values = compute_indicators([spec], candles[:5])["high_ma"]

    assert values[2] == pytest.approx(statistics.fmean(float(c.high) for c in candles[:3]))


def test_pandas_is_imported_only_when_indicators_are_computed():
    tree = ast.parse(MODULE.read_text())
    top_level = {alias.name for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    top_level |= {node.module for node in tree.body if isinstance(node, ast.ImportFrom)}

    assert not {"pandas", "pandas_ta", "numpy"} & top_level


# --- Bollinger Bands: computed with numpy, checked against pandas-ta's own ta.bbands ----------------


@pytest.fixture(scope="module", params=[("BTCUSDT", "1h"), ("BTCUSDT", "30m"), ("ETHUSDT", "1h")], ids=str)
def sample_series(request):
    """A whole bundled series of the sample market as arrays (30m is resampled from the bundled 5m)."""
    from robson.adapters.market.sample import SampleMarket

    return SampleMarket().history(*request.param).series


def pandas_ta_bbands(close, length: int, std: float) -> dict[str, np.ndarray]:
    """pandas-ta's Bollinger Bands as robson computed them before (population deviation, no TA-Lib)."""
    import warnings

    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import pandas_ta as ta

    bands = ta.bbands(pd.Series(close), length, lower_std=std, upper_std=std, ddof=0, talib=False)
    prefixes = {"lower": "BBL", "middle": "BBM", "upper": "BBU", "bandwidth": "BBB", "percent": "BBP"}
    return {part: next(bands[c] for c in bands.columns if c.startswith(f"{prefix}_")).to_numpy()
            for part, prefix in prefixes.items()}


@pytest.mark.parametrize(("length", "std"), [(20, 2.0), (50, 2.5)])
def test_bollinger_bands_match_pandas_ta_on_the_bundled_candles(sample_series, length, std):
    close = sample_series.close

    ours = bollinger_bands(close, length, std)
    theirs = pandas_ta_bbands(close, length, std)

    for part in ("lower", "middle", "upper", "bandwidth", "percent"):
        assert np.array_equal(np.isnan(ours[part]), np.isnan(theirs[part])), part
        assert np.isnan(ours[part][: length - 1]).all(), part
    # pandas' rolling variance carries rounding from every earlier window; each value here is its own window's
    np.testing.assert_allclose(ours["middle"], theirs["middle"], rtol=1e-14)
    np.testing.assert_allclose(ours["lower"], theirs["lower"], rtol=1e-10)
    np.testing.assert_allclose(ours["upper"], theirs["upper"], rtol=1e-10)
    np.testing.assert_allclose(ours["bandwidth"], theirs["bandwidth"], rtol=1e-7)
    np.testing.assert_allclose(ours["percent"], theirs["percent"], rtol=0, atol=1e-9)


def test_bollinger_bands_in_a_strategy_are_the_native_ones(sample_series):
    spec = parse_indicators({"bb": {"kind": "bbands", "length": 20, "std": 2}})

    arrays = indicator_arrays(spec, sample_series.prices())

    expected = bollinger_bands(sample_series.close, 20, 2.0)
    assert all(np.array_equal(arrays[f"bb.{part}"], expected[part], equal_nan=True) for part in expected)


def test_a_bollinger_value_depends_only_on_its_own_window(sample_series):
    whole = bollinger_bands(sample_series.close, 20, 2.0)
    last = bollinger_bands(sample_series.close[-20:], 20, 2.0)  # what a scan of 20 candles computes

    assert all(last[part][-1] == whole[part][-1] for part in whole)  # bit for bit


def test_a_window_of_equal_values_has_bands_on_its_mean():
    volume = np.array([5.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0])

    bands = bollinger_bands(volume, 5, 2.0)

    assert (bands["lower"][-1], bands["middle"][-1], bands["upper"][-1]) == (0.0, 0.0, 0.0)
    assert bands["percent"][-1] == 1.0  # (close − lower) / (upper − lower), each zero taken as the epsilon
