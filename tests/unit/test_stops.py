"""Stop placement (SPEC §2): technical stop, its labelled fallbacks, MA, ATR and fixed percent."""

from __future__ import annotations

import ast
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

import robson.domain.indicators
import robson.domain.stops
from robson.domain.market import Candle, Side
from robson.domain.stops import (
    StopSettings,
    SupportLevel,
    compute_stop,
    find_swing_points,
    group_levels,
    levels_beyond_entry,
)
from robson.errors import InvalidInput

# CI checks out ../shared beside the repository (/work/main and /work/shared).
SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
HOUR_MS = 3_600_000
D = Decimal


def bars_from_lows(*lows: str, spread: str = "10") -> list[Candle]:
    """Build hourly candles whose lows are given; high = low + spread, close halfway."""
    out = []
    for i, low in enumerate(lows):
        low_price = D(low)
        close = low_price + D(spread) / 2
        out.append(Candle(i * HOUR_MS, close, low_price + D(spread), low_price, close, D("1")))
    return out


def bars_from_highs(*highs: str, spread: str = "10") -> list[Candle]:
    """Build hourly candles whose highs are given; low = high − spread, close halfway."""
    return bars_from_lows(*(str(D(high) - D(spread)) for high in highs), spread=spread)


def bars_from_closes(*closes: str, spread: str = "5") -> list[Candle]:
    """Build hourly candles around the given closes: low = close − spread, high = close + spread."""
    return [
        Candle(i * HOUR_MS, D(c), D(c) + D(spread), D(c) - D(spread), D(c), D("1")) for i, c in enumerate(closes)
    ]


def lows_of(candles: list[Candle]) -> list[Decimal]:
    return [candle.low for candle in candles]


# Entry 1000 → tolerance 0.5 % = 5. Swing lows at 980, 981 (one level, 980.5, 2 touches) and
# 958, 960, 962 (one level, 960, 3 touches), each separated by two 999 fillers (equal fillers
# are never swings: a swing must be strictly below its neighbours).
TWO_SUPPORTS = bars_from_lows(
    "999", "999", "980", "999", "999", "981", "999", "999", "958", "999", "999", "960", "999", "999",
    "962", "999", "999",
)  # fmt: skip


# --- swing points -------------------------------------------------------------


def test_swing_low_must_be_strictly_below_two_candles_on_each_side():
    candles = bars_from_lows("105", "104", "100", "103", "106", "101", "104", "105")

    swings = find_swing_points(candles, Side.BUY, 2)

    # 100 is below 105, 104 | 103, 106; 101 is below 106, 103 | 104, 105 — but 103 and 106 are not.
    assert lows_of(swings) == [D("100"), D("101")]


def test_a_low_equal_to_a_neighbour_is_not_a_swing_low():
    candles = bars_from_lows("105", "104", "100", "100", "104", "105")

    assert find_swing_points(candles, Side.BUY, 2) == []


def test_a_low_only_one_candle_deep_on_one_side_is_not_a_swing_low():
    # 100 is below its near neighbours but the second candle on the right (99) is lower.
    candles = bars_from_lows("105", "104", "100", "103", "99", "104", "105")

    assert lows_of(find_swing_points(candles, Side.BUY, 2)) == [D("99")]


def test_the_first_and_last_two_candles_cannot_be_swing_lows():
    candles = bars_from_lows("90", "91", "100", "101", "102", "91", "90")

    assert find_swing_points(candles, Side.BUY, 2) == []


def test_swing_width_is_configurable():
    candles = bars_from_lows("105", "100", "103", "99", "104")

    assert lows_of(find_swing_points(candles, Side.BUY, 1)) == [D("100"), D("99")]
    assert find_swing_points(candles, Side.BUY, 2) == []


def test_swing_highs_mirror_swing_lows_for_a_sell():
    candles = bars_from_highs("95", "96", "100", "97", "94", "99", "96", "95")

    assert [c.high for c in find_swing_points(candles, Side.SELL, 2)] == [D("100"), D("99")]


# --- grouping -----------------------------------------------------------------


def test_swing_lows_within_tolerance_form_one_level_at_their_average():
    levels = group_levels([D("962"), D("958"), D("960")], Side.BUY, D("5"))

    assert levels == [SupportLevel(D("960"), 3)]


def test_group_grows_only_while_each_low_is_within_tolerance_of_its_lowest_member():
    # 104 is within 5 of 100; 108 is within 5 of 104 but 8 above the group's lowest, so it starts a new group.
    levels = group_levels([D("100"), D("104"), D("108")], Side.BUY, D("5"))

    assert levels == [SupportLevel(D("102"), 2), SupportLevel(D("108"), 1)]


def test_a_low_exactly_one_tolerance_above_the_lowest_joins_the_group():
    assert group_levels([D("100"), D("105")], Side.BUY, D("5")) == [SupportLevel(D("102.5"), 2)]


def test_tolerance_is_a_percent_of_entry_not_of_the_level():
    # Swing lows 940 and 945 are 5 apart: one level at entry 1000 (tolerance 5, inclusive) although
    # 0.5 % of 940 is only 4.7; two single touches at entry 990 (tolerance 4.95).
    candles = bars_from_lows("999", "999", "940", "999", "999", "945", "999", "999")

    at_1000 = compute_stop(Side.BUY, D("1000"), candles, StopSettings(level=1))
    at_990 = compute_stop(Side.BUY, D("990"), candles, StopSettings(level=1))

    assert (at_1000.details["tolerance"], at_1000.details["levels"]) == (D("5"), [{"price": D("942.5"), "touches": 2}])
    assert (at_990.details["tolerance"], at_990.details["levels"]) == (D("4.95"), [])


def test_a_level_needs_min_touches():
    levels = [SupportLevel(D("990"), 1), SupportLevel(D("980"), 2)]

    assert levels_beyond_entry(levels, Side.BUY, D("1000"), 2) == [SupportLevel(D("980"), 2)]
    assert levels_beyond_entry(levels, Side.BUY, D("1000"), 1) == levels


def test_levels_at_or_above_entry_are_ignored_for_a_buy():
    levels = [SupportLevel(D("990"), 2), SupportLevel(D("1000"), 2), SupportLevel(D("1010"), 3)]

    assert levels_beyond_entry(levels, Side.BUY, D("1000"), 2) == [SupportLevel(D("990"), 2)]


def test_levels_are_ordered_nearest_to_entry_first():
    levels = [SupportLevel(D("950"), 2), SupportLevel(D("990"), 2), SupportLevel(D("970"), 4)]

    assert [lvl.price for lvl in levels_beyond_entry(levels, Side.BUY, D("1000"), 2)] == [D("990"), D("970"), D("950")]
    assert [lvl.price for lvl in levels_beyond_entry(levels, Side.SELL, D("900"), 2)] == [D("950"), D("970"), D("990")]


# --- technical stop -----------------------------------------------------------


def test_technical_stop_takes_the_second_support_minus_a_buffer():
    result = compute_stop(Side.BUY, D("1000"), TWO_SUPPORTS, StopSettings())

    assert result.price == D("960") * D("0.999")
    assert result.method == "technical"
    assert result.label == "technical: 2nd support 960.00 (3 touches) − 0.1 % buffer"
    assert result.details["levels"] == [{"price": D("980.5"), "touches": 2}, {"price": D("960"), "touches": 3}]
    assert result.details["reference"] == D("960")
    assert result.details["touches"] == 3


def test_technical_stop_level_is_configurable():
    first = compute_stop(Side.BUY, D("1000"), TWO_SUPPORTS, StopSettings(level=1))

    assert first.price == D("980.5") * D("0.999")
    assert first.label == "technical: 1st support 980.50 (2 touches) − 0.1 % buffer"


def test_technical_stop_buffer_is_configurable():
    result = compute_stop(Side.BUY, D("1000"), TWO_SUPPORTS, StopSettings(buffer_percent=D("0.5")))

    assert result.price == D("955.2")
    assert result.label.endswith("− 0.5 % buffer")


def test_single_touch_lows_are_not_supports():
    # A lone swing low at 990 sits between entry and the real levels and is skipped.
    candles = bars_from_lows("999", "999", "990", "999", "999") + TWO_SUPPORTS

    assert compute_stop(Side.BUY, D("1000"), candles, StopSettings()).details["reference"] == D("960")


def test_only_the_last_lookback_candles_are_examined():
    # With lookback 12 the first support (980, 981) falls out of the window.
    result = compute_stop(Side.BUY, D("1000"), TWO_SUPPORTS, StopSettings(lookback=12, level=1))

    assert result.details["levels"] == [{"price": D("960"), "touches": 3}]
    assert result.details["lookback_candles"] == 12


def test_short_technical_stop_takes_the_second_resistance_plus_a_buffer():
    # Mirror of TWO_SUPPORTS around 1000: resistances 1019.5 (2 touches) and 1040 (3 touches).
    candles = bars_from_highs(
        "1001", "1001", "1020", "1001", "1001", "1019", "1001", "1001", "1042", "1001", "1001", "1040",
        "1001", "1001", "1038", "1001", "1001",
    )  # fmt: skip

    result = compute_stop(Side.SELL, D("1000"), candles, StopSettings())

    assert result.price == D("1040") * D("1.001")
    assert result.method == "technical"
    assert result.label == "technical: 2nd resistance 1040.00 (3 touches) + 0.1 % buffer"
    assert result.details["levels"] == [{"price": D("1019.5"), "touches": 2}, {"price": D("1040"), "touches": 3}]


# --- fallbacks ------------------------------------------------------------------


def test_falls_back_to_the_lowest_low_of_20_candles_when_only_one_support_is_below_entry():
    candles = TWO_SUPPORTS[:9]  # only the 980/981 level; 958 is too recent to be a swing
    result = compute_stop(Side.BUY, D("1000"), candles, StopSettings())

    assert result.price == D("958") * D("0.999")
    assert result.method == "fallback:lowest_low"
    assert result.label == (
        "fallback: lowest low of 9 candles 958.00 − 0.1 % (only 1 support level below entry)"
    )
    assert result.details["reasons"] == ["only 1 support level below entry"]
    assert result.details["reference"] == D("958")


def test_lowest_low_fallback_looks_only_at_the_last_fallback_lookback_candles():
    old_low = bars_from_lows("900")
    recent = bars_from_lows(*(["995", "996"] * 10))  # no swing lows: alternating lows need two on each side
    result = compute_stop(Side.BUY, D("1000"), old_low + recent, StopSettings())

    assert result.method == "fallback:lowest_low"
    assert result.details["reference"] == D("995")
    assert result.label == "fallback: lowest low of 20 candles 995.00 − 0.1 % (no support level below entry)"


def test_falls_back_to_atr_when_the_lowest_low_is_not_below_entry():
    # 20 flat bars low 1000, high 1010, close 1005: every true range is 10, so ATR(14) = 10.
    candles = bars_from_lows(*["1000"] * 20)

    result = compute_stop(Side.BUY, D("1000"), candles, StopSettings())

    assert result.price == D("985")
    assert result.method == "fallback:atr"
    assert result.label == (
        "fallback: 1.5 × ATR(14) = 15.00 below entry "
        "(no support level below entry; lowest low of 20 candles 1000.00 is not below entry)"
    )
    assert result.details["atr"] == D("10")


def test_falls_back_to_percent_when_atr_has_too_few_candles():
    candles = bars_from_lows(*["1000"] * 10)

    result = compute_stop(Side.BUY, D("1000"), candles, StopSettings())

    assert result.price == D("980")
    assert result.method == "fallback:percent"
    assert result.details["reasons"] == [
        "no support level below entry",
        "lowest low of 10 candles 1000.00 is not below entry",
        "ATR(14) needs 15 candles, got 10",
    ]
    assert result.label.startswith("fallback: 2 % below entry (no support level below entry; ")


def test_falls_back_to_percent_when_atr_gives_no_distance():
    flat = [Candle(i * HOUR_MS, D("1000"), D("1000"), D("1000"), D("1000"), D("0")) for i in range(30)]

    result = compute_stop(Side.BUY, D("1000"), flat, StopSettings())

    assert result.method == "fallback:percent"
    assert "1.5 × ATR(14) = 0.00 gives no stop distance" in result.details["reasons"]


def test_no_candles_go_straight_to_the_percent_fallback():
    result = compute_stop(Side.BUY, D("1000"), [], StopSettings())

    assert result.price == D("980")
    assert result.method == "fallback:percent"
    assert result.label == "fallback: 2 % below entry (no candles)"


def test_short_fallbacks_mirror_the_long_ones():
    one_resistance = bars_from_highs("1001", "1001", "1020", "1001", "1001", "1019", "1001", "1001", "1042")
    flat_below = bars_from_highs(*["1000"] * 20)

    highest = compute_stop(Side.SELL, D("1000"), one_resistance, StopSettings())
    atr = compute_stop(Side.SELL, D("1000"), flat_below, StopSettings())
    percent = compute_stop(Side.SELL, D("1000"), [], StopSettings())

    assert (highest.method, highest.price) == ("fallback:lowest_low", D("1042") * D("1.001"))
    assert highest.label == "fallback: highest high of 9 candles 1042.00 + 0.1 % (only 1 resistance level above entry)"
    assert (atr.method, atr.price) == ("fallback:atr", D("1015"))
    assert atr.label.startswith("fallback: 1.5 × ATR(14) = 15.00 above entry (no resistance level above entry; ")
    assert (percent.method, percent.price) == ("fallback:percent", D("1020"))
    assert percent.label == "fallback: 2 % above entry (no candles)"


# --- other kinds ------------------------------------------------------------------


def test_moving_average_stop_is_the_sma_of_closes_minus_the_buffer():
    candles = bars_from_closes("100", "102", "104", "106")  # SMA(3) = 104

    result = compute_stop(Side.BUY, D("110"), candles, StopSettings(kind="moving_average", ma_period=3))

    assert result.price == D("103.896")
    assert result.method == "moving_average"
    assert result.label == "moving average: SMA(3) 104.00 − 0.1 % buffer"


def test_moving_average_stop_for_a_short_is_above_the_average():
    candles = bars_from_closes("100", "102", "104", "106")

    result = compute_stop(Side.SELL, D("100"), candles, StopSettings(kind="moving_average", ma_period=3))

    assert result.price == D("104.104")
    assert result.label == "moving average: SMA(3) 104.00 + 0.1 % buffer"


def test_moving_average_at_or_above_entry_falls_back_with_a_label():
    candles = bars_from_closes("100", "102", "104", "106")

    result = compute_stop(Side.BUY, D("103"), candles, StopSettings(kind="moving_average", ma_period=3))

    assert result.method == "fallback:lowest_low"
    assert result.price == D("95") * D("0.999")
    assert result.label == "fallback: lowest low of 4 candles 95.00 − 0.1 % (SMA(3) 104.00 is not below entry)"


def test_moving_average_with_too_few_candles_falls_back():
    candles = bars_from_closes("100", "102")

    result = compute_stop(Side.BUY, D("110"), candles, StopSettings(kind="moving_average", ma_period=3))

    assert result.method == "fallback:lowest_low"
    assert result.details["reasons"] == ["SMA(3) needs 3 candles, got 2"]


# Period 3 by hand (see test_domain_indicators): TRs 8, 10, 8, 24, 28 → ATR = 500/27.
ATR_BARS = [
    Candle(i * HOUR_MS, D(c), D(h), D(lo), D(c), D("1"))
    for i, (h, lo, c) in enumerate(
        [("110", "100", "105"), ("112", "104", "110"), ("111", "101", "102"), ("103", "95", "96"),
         ("120", "110", "118"), ("117", "90", "91")]
    )
]  # fmt: skip


def test_atr_stop_is_entry_minus_multiplier_times_wilders_atr():
    result = compute_stop(Side.BUY, D("100"), ATR_BARS, StopSettings(kind="atr", atr_period=3))

    # 1.5 × 500/27 = 250/9 = 27.777…; stop = 100 − 27.777… = 72.222…
    assert abs(result.price - (D("100") - D(250) / 9)) < D("1e-20")
    assert result.method == "atr"
    assert result.label == "atr: 1.5 × ATR(3) = 27.78 below entry"


def test_atr_stop_for_a_short_is_above_entry():
    result = compute_stop(Side.SELL, D("100"), ATR_BARS, StopSettings(kind="atr", atr_period=3, atr_multiplier=D("2")))

    assert abs(result.price - (D("100") + D(1000) / 27)) < D("1e-20")
    assert result.label == "atr: 2 × ATR(3) = 37.04 above entry"


def test_atr_stop_without_enough_candles_falls_back_to_percent():
    result = compute_stop(Side.BUY, D("100"), ATR_BARS[:3], StopSettings(kind="atr", atr_period=3))

    assert result.method == "fallback:percent"
    assert result.price == D("98")
    assert result.label == "fallback: 2 % below entry (ATR(3) needs 4 candles, got 3)"


def test_atr_stop_that_would_reach_zero_falls_back_to_percent():
    result = compute_stop(Side.BUY, D("20"), ATR_BARS, StopSettings(kind="atr", atr_period=3))

    assert result.method == "fallback:percent"
    assert result.details["reasons"] == ["1.5 × ATR(3) = 27.78 puts the stop at or below 0"]


def test_fixed_percent_stop_is_below_entry_for_a_buy_and_above_for_a_sell():
    settings = StopSettings(kind="fixed_percent", percent=D("2.5"))

    buy = compute_stop(Side.BUY, D("40000"), TWO_SUPPORTS, settings)
    sell = compute_stop(Side.SELL, D("40000"), [], settings)

    assert (buy.price, buy.method, buy.label) == (D("39000"), "fixed_percent", "fixed percent: 2.5 % below entry")
    assert (sell.price, sell.method, sell.label) == (D("41000"), "fixed_percent", "fixed percent: 2.5 % above entry")


def test_settings_given_as_strings_are_parsed_exactly():
    settings = StopSettings(kind="fixed_percent", percent="0.1")  # type: ignore[arg-type]

    result = compute_stop(Side.BUY, D("100"), [], settings)

    assert result.price == D("99.9")


# --- bad input ---------------------------------------------------------------------


def test_unknown_stop_kind_is_invalid_input():
    with pytest.raises(InvalidInput, match="unknown stop kind 'trailing'"):
        compute_stop(Side.BUY, D("100"), [], StopSettings(kind="trailing"))


@pytest.mark.parametrize("entry", [D("0"), D("-1"), D("NaN"), "abc"])
def test_entry_must_be_a_positive_number(entry):
    with pytest.raises(InvalidInput, match="entry"):
        compute_stop(Side.BUY, entry, [], StopSettings())


def test_side_must_be_buy_or_sell():
    with pytest.raises(InvalidInput, match="side"):
        compute_stop("HOLD", D("100"), [], StopSettings())  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [
        {"level": 0},
        {"level": True},
        {"level": 1.5},
        {"lookback": 0},
        {"swing_width": 0},
        {"min_touches": 0},
        {"fallback_lookback": -1},
        {"atr_period": 0},
        {"ma_period": 0},
        {"tolerance_percent": D("-0.5")},
        {"buffer_percent": D("-0.1")},
        {"buffer_percent": D("100")},
        {"atr_multiplier": D("0")},
        {"percent": D("0")},
        {"percent": D("100")},
        {"percent": "two"},
    ],
)
def test_bad_setting_numbers_are_invalid_input(bad):
    with pytest.raises(InvalidInput, match=f"'{next(iter(bad))}'"):
        compute_stop(Side.BUY, D("100"), [], StopSettings(**bad))


def test_stop_modules_use_no_float_and_import_no_dataframe_library():
    for module in (robson.domain.stops, robson.domain.indicators):
        tree = ast.parse(Path(module.__file__).read_text())
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add((node.module or "").split(".")[0])
        floats = [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, float)]
        float_calls = [n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "float"]

        assert floats == [] and float_calls == [], module.__name__
        assert imported <= {"__future__", "collections", "dataclasses", "decimal", "typing", "robson"}, imported


# --- real data: BTCUSDT 1h, the 100 candles closed by 2021-06-01 12:00 UTC --------------


def utc_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def btc_1h_closed_by(moment: str, count: int = 100) -> list[Candle]:
    rows = json.loads((SHARED_DATA / "binance" / "BTCUSDT-1h.json").read_text(), parse_float=Decimal)
    end = utc_ms(moment)
    closed = [Candle(int(r[0]), *(Decimal(v) for v in r[1:])) for r in rows if int(r[0]) + HOUR_MS <= end]
    return closed[-count:]


def test_real_btc_long_stop_is_the_second_support_found_by_hand():
    # Window: bars opened 2021-05-28 08:00 … 2021-06-01 11:00; entry = the 11:00 bar's close 36596.62,
    # so tolerance = 36596.62 × 0.5 % = 182.9831.
    candles = btc_1h_closed_by("2021-06-01 12:00")
    entry = candles[-1].close
    assert (len(candles), candles[0].open_time, entry) == (100, utc_ms("2021-05-28 08:00"), D("36596.62"))

    result = compute_stop(Side.BUY, entry, candles, StopSettings())

    # Swing lows listed from the raw JSON by a separate script and checked against their two
    # neighbours on each side (e.g. 05-30 00:00 low 33379.0 vs 34235.93, 34137.09 | 33500.0, 33785.21).
    assert [(p["open_time"], p["price"]) for p in result.details["swing_points"]] == [
        (utc_ms("2021-05-28 11:00"), D("35100.0")),
        (utc_ms("2021-05-28 21:00"), D("34684.0")),
        (utc_ms("2021-05-29 04:00"), D("35604.3")),
        (utc_ms("2021-05-29 18:00"), D("33632.76")),
        (utc_ms("2021-05-30 00:00"), D("33379.0")),
        (utc_ms("2021-05-30 14:00"), D("35100.0")),
        (utc_ms("2021-05-31 04:00"), D("34153.84")),
        (utc_ms("2021-05-31 14:00"), D("36333.44")),
        (utc_ms("2021-05-31 19:00"), D("36510.01")),
        (utc_ms("2021-06-01 03:00"), D("36478.0")),
        (utc_ms("2021-06-01 08:00"), D("35902.43")),
    ]
    # Grouping by hand, ascending, tolerance 182.9831 from each group's lowest:
    # 33379.0 | 33632.76 | 34153.84 | 34684.0 (each > 182.98 apart: single touches, dropped)
    # 35100.0 + 35100.0 → level 35100.0, 2 touches
    # 35604.3 | 35902.43 (single touches, dropped)
    # 36333.44 + 36478.0 (+144.56) + 36510.01 (+176.57 ≤ 182.98) → level 109321.45 / 3 = 36440.4833…, 3 touches
    # Below entry, nearest first: 36440.48 (3), 35100.0 (2); the 2nd is 35100.0 → stop 35100 × 0.999 = 35064.9.
    assert result.details["levels"] == [
        {"price": D("109321.45") / 3, "touches": 3},
        {"price": D("35100.0"), "touches": 2},
    ]
    assert result.method == "technical"
    assert result.price == D("35064.9")
    assert result.label == "technical: 2nd support 35100.00 (2 touches) − 0.1 % buffer"


def test_real_btc_short_stop_falls_back_to_the_highest_high_found_by_hand():
    candles = btc_1h_closed_by("2021-06-01 12:00")
    entry = candles[-1].close

    result = compute_stop(Side.SELL, entry, candles, StopSettings())

    # Swing highs by hand, descending, tolerance 182.9831 from each group's highest:
    # 37894.81 alone | 37457.07, 37443.72, 37338.58, 37279.98, 37278.03 (−179.04) → 186797.38 / 5 = 37359.476
    # | 36570.0 + 36488.0 → 36529 (below entry 36596.62, dropped) | 36350.0 + 36232.09 (below) | 35100.0 alone.
    # Only one resistance above entry → highest high of the last 20 bars: 37894.81 (06-01 00:00) × 1.001.
    assert result.details["levels"] == [{"price": D("37359.476"), "touches": 5}]
    assert result.method == "fallback:lowest_low"
    assert result.price == D("37932.70481")
    assert result.label == (
        "fallback: highest high of 20 candles 37894.81 + 0.1 % (only 1 resistance level above entry)"
    )
