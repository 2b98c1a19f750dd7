"""Scan grammar: parsing with errors that name the field, pure three-valued evaluation, setups."""

from decimal import Decimal as D
from pathlib import Path

import pytest
import yaml

from robson.adapters.signal_engine import detect, evaluate
from robson.domain.conditions import (
    ConfirmRule,
    Setup,
    parse_condition,
    parse_scan,
)
from robson.domain.market import Candle, Side
from robson.errors import MarketDataError, StrategyError

STRATEGIES = Path(__file__).resolve().parents[2] / "strategies"


def bar(close: str, *, open_: str | None = None, high: str | None = None, low: str | None = None,
        volume: str = "10", open_time: int = 0) -> Candle:
    o = D(open_ if open_ is not None else close)
    c = D(close)
    return Candle(open_time, o, D(high) if high else max(o, c), D(low) if low else min(o, c), c, D(volume))


def flat(count: int, close: str = "100") -> list[Candle]:
    return [bar(close, open_time=i * 60_000) for i in range(count)]


REFS = {name: None for name in ("open", "high", "low", "close", "volume", "fast", "slow", "avg", "rsi", "bb.lower")}
REFS["bb"] = "bb.lower, bb.middle, bb.upper"


def cond(data):
    return parse_condition(data, REFS, "when")


def check(data, series=None, candles=None, index=-1, **options):
    candles = candles or flat(2)
    return evaluate(cond(data), series or {}, candles, index, **options)


# --- comparisons -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("op", "left", "right", "expected"),
    [
        ("gt", 2, 1, True), ("gt", 1, 1, False),
        ("lt", 1, 2, True), ("lt", 1, 1, False),
        ("ge", 1, 1, True), ("ge", 0, 1, False),
        ("le", 1, 1, True), ("le", 2, 1, False),
    ],
)
def test_comparison_operators_compare_two_terms_at_the_candle(op, left, right, expected):
    series = {"fast": [None, left], "slow": [None, right]}

    result = check({op: ["fast", "slow"]}, series)

    assert result.matched is expected
    assert result.values == {"fast": D(left), "slow": D(right)}


def test_a_price_series_is_read_from_the_candle_itself():
    candles = [bar("100"), bar("105", open_="101", high="107", low="99")]

    assert check({"gt": ["close", "open"]}, candles=candles).matched
    assert check({"lt": ["low", 100]}, candles=candles).matched
    assert check({"ge": ["high", "107"]}, candles=candles).matched


def test_between_includes_both_bounds():
    series = {"rsi": [30, 50, 70, 70.01]}
    candles = flat(4)

    matched = [check({"between": ["rsi", 30, 70]}, series, candles, i).matched for i in range(4)]

    assert matched == [True, True, True, False]


# --- crossings ---------------------------------------------------------------------------------


def test_crosses_above_when_it_was_at_or_below_and_is_now_above():
    series = {"fast": [1, 2, 3, 4], "slow": [2, 2, 2, 2]}
    candles = flat(4)

    matched = [check({"crosses_above": ["fast", "slow"]}, series, candles, i).matched for i in (1, 2, 3)]

    assert matched == [False, True, False]  # touching is no cross; once above it is no new cross


def test_crosses_below_when_it_was_at_or_above_and_is_now_below():
    series = {"fast": [3, 2, 1, 0], "slow": [2, 2, 2, 2]}
    candles = flat(4)

    matched = [check({"crosses_below": ["fast", "slow"]}, series, candles, i).matched for i in (1, 2, 3)]

    assert matched == [False, True, False]


def test_a_cross_records_both_candles_it_compared():
    result = check({"crosses_above": ["fast", "slow"]}, {"fast": [1, 3], "slow": [2, 2]})

    assert result.values == {"fast": D(3), "slow": D(2), "fast[-1]": D(1), "slow[-1]": D(2)}


def test_a_cross_on_the_first_candle_is_unknown_and_does_not_match():
    assert not check({"crosses_above": ["fast", "slow"]}, {"fast": [3], "slow": [2]}, flat(1)).matched
    assert check({"not": {"crosses_above": ["fast", "slow"]}}, {"fast": [3], "slow": [2]}, flat(1)).matched is False


def test_a_cross_of_a_price_over_a_scaled_average_uses_both_candles():
    candles = [bar("100"), bar("96")]
    series = {"avg": [100, 100]}

    assert check({"crosses_below": ["close", {"mul": ["avg", 0.97]}]}, series, candles).matched


def test_while_holding_a_cross_is_judged_as_the_state_it_created():
    series = {"fast": [3, 4], "slow": [2, 2]}

    assert not check({"crosses_above": ["fast", "slow"]}, series).matched
    assert check({"crosses_above": ["fast", "slow"]}, series, holding=True).matched
    assert not check({"crosses_below": ["fast", "slow"]}, series, holding=True).matched


# --- arithmetic --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ({"add": ["avg", 5]}, D("15")),
        ({"sub": ["avg", 4]}, D("6")),
        ({"mul": [1.5, "avg"]}, D("15.0")),
        ({"div": ["avg", 4]}, D("2.5")),
        ({"mul": [{"add": ["avg", 2]}, 2]}, D("24")),
    ],
)
def test_arithmetic_terms_compute_exactly(term, expected):
    result = check({"ge": [term, 0]}, {"avg": [None, 10]})

    assert result.matched
    assert expected in result.values.values()


def test_volume_above_one_and_a_half_times_its_average():
    candles = [bar("100", volume="10"), bar("100", volume="16")]
    series = {"avg": [None, 10]}

    result = check({"gt": ["volume", {"mul": [1.5, "avg"]}]}, series, candles)

    assert result.matched
    assert result.values == {"volume": D("16"), "avg": D("10"), "1.5 × avg": D("15.0")}


def test_division_by_zero_is_unknown_not_a_crash():
    assert not check({"gt": [{"div": ["close", "avg"]}, 0]}, {"avg": [0, 0]}).matched


# --- logic and warm-up -------------------------------------------------------------------------


def test_all_needs_every_condition_and_any_needs_one():
    series = {"fast": [None, 2], "slow": [None, 1]}
    true, false = {"gt": ["fast", "slow"]}, {"lt": ["fast", "slow"]}

    assert check({"all": [true, true]}, series).matched
    assert not check({"all": [true, false]}, series).matched
    assert check({"any": [false, true]}, series).matched
    assert not check({"any": [false, false]}, series).matched


def test_not_inverts_a_condition():
    series = {"fast": [None, 2], "slow": [None, 1]}

    assert not check({"not": {"gt": ["fast", "slow"]}}, series).matched
    assert check({"not": {"lt": ["fast", "slow"]}}, series).matched


def test_a_value_missing_during_warm_up_never_matches_even_under_not():
    series = {"fast": [None, None], "slow": [1, 1]}

    assert not check({"gt": ["fast", "slow"]}, series).matched
    assert not check({"not": {"gt": ["fast", "slow"]}}, series).matched
    assert check({"gt": ["fast", "slow"]}, series).values["fast"] is None


def test_unknown_and_false_is_false_but_unknown_or_true_is_true():
    series = {"fast": [None, None], "slow": [1, 1]}
    unknown, true, false = {"gt": ["fast", "slow"]}, {"gt": ["slow", 0]}, {"lt": ["slow", 0]}

    assert check({"not": {"all": [unknown, false]}}, series).matched  # all(...) is False, not → True
    assert check({"any": [unknown, true]}, series).matched
    assert not check({"not": {"any": [unknown, false]}}, series).matched  # stays unknown


def test_a_nan_from_a_float_series_counts_as_missing():
    assert check({"gt": ["fast", 0]}, {"fast": [1.0, float("nan")]}).values["fast"] is None


def test_float_values_become_the_decimal_they_print_as():
    assert check({"gt": ["fast", 0]}, {"fast": [None, 0.1]}).values["fast"] == D("0.1")


def test_numpy_floats_and_decimals_are_read_as_the_numbers_they_show():
    import numpy

    assert check({"gt": ["fast", 0]}, {"fast": [None, numpy.float64(0.1)]}).values["fast"] == D("0.1")
    assert check({"gt": ["fast", 0]}, {"fast": [None, D("2.50")]}).values["fast"] == D("2.50")


def test_an_infinite_value_counts_as_missing():
    assert check({"gt": ["fast", 0]}, {"fast": [None, float("inf")]}).values["fast"] is None


def test_a_value_that_is_not_a_number_is_a_market_data_error():
    with pytest.raises(MarketDataError, match="not a number: 'abc'"):
        check({"gt": ["fast", 0]}, {"fast": [None, "abc"]})


def test_a_missing_series_is_a_market_data_error():
    with pytest.raises(MarketDataError, match="no values were computed for 'fast'"):
        check({"gt": ["fast", 0]}, {})


def test_a_series_not_aligned_with_the_candles_is_a_market_data_error():
    with pytest.raises(MarketDataError, match="'fast' has 1 values for 2 candles"):
        check({"gt": ["fast", 0]}, {"fast": [1]})


def test_an_index_outside_the_candles_is_a_market_data_error():
    with pytest.raises(MarketDataError, match="outside the 2 candles"):
        check({"gt": ["close", 0]}, index=2)


# --- patterns as conditions --------------------------------------------------------------------


def test_a_pattern_condition_judges_the_candle_at_the_index():
    hammer = bar("101", open_="100", high="101.2", low="95")
    candles = [bar("100"), hammer, bar("100", open_="100", high="101", low="99.5")]

    assert check({"pattern": "hammer"}, candles=candles, index=1).matched
    assert not check({"pattern": "hammer"}, candles=candles, index=2).matched
    assert check({"pattern": "hammer"}, candles=candles, index=1).values["low"] == D("95")


def test_while_holding_a_formed_pattern_still_holds():
    assert check({"pattern": "morning_star"}, candles=flat(3), holding=True).matched


# --- descriptions ------------------------------------------------------------------------------


def test_a_condition_describes_itself_for_the_signal_reason():
    condition = cond({"all": [
        {"crosses_above": ["fast", "slow"]},
        {"gt": ["volume", {"mul": [1.5, "avg"]}]},
        {"any": [{"between": ["rsi", 30, 70]}, {"not": {"pattern": "hammer"}}]},
        {"le": [{"mul": [{"sub": ["close", "open"]}, 2]}, 1]},
    ]})

    assert condition.describe() == (
        "fast crosses above slow and volume > 1.5 × avg and (30 ≤ rsi ≤ 70 or not (pattern hammer))"
        " and (close − open) × 2 ≤ 1"
    )


# --- setups, confidence, detection -------------------------------------------------------------


def setup(**changes):
    data = {"name": "cross", "side": "buy", "when": {"crosses_above": ["fast", "slow"]}}
    data.update(changes)
    scan = parse_scan({"indicators": {"fast": {"kind": "sma", "length": 2}, "slow": {"kind": "sma", "length": 3},
                                      "avg": {"kind": "volume_sma", "length": 2}}, "setups": [data]})
    return scan.setups[0]


def test_a_setup_has_sensible_defaults():
    parsed = setup()

    assert (parsed.side, parsed.confirm, parsed.window) == (Side.BUY, ConfirmRule.NEXT_CLOSE_ABOVE_HIGH, 1)
    assert parsed.base_confidence == D("0.5") and parsed.boosts == ()


def test_confidence_without_boosts_is_the_base():
    assert setup(confidence={"base": 0.7}).confidence(0) == D("0.70")


@pytest.mark.parametrize(("held", "expected"), [(0, "0.50"), (1, "0.66"), (2, "0.83"), (3, "1.00")])
def test_confidence_rises_with_each_boost_held_and_rounds_down(held, expected):
    boosts = [{"gt": ["close", 0]}] * 3

    assert setup(confidence={"boosts": boosts}).confidence(held) == D(expected)


def test_detect_returns_side_confidence_values_and_reason_when_the_setup_matches():
    candles = [bar("100", volume="10", open_time=0), bar("101", volume="30", open_time=60_000)]
    series = {"fast": [1, 3], "slow": [2, 2], "avg": [10, 10]}
    parsed = setup(confidence={"base": 0.5, "boosts": [{"gt": ["volume", {"mul": [2, "avg"]}]}, {"lt": ["close", 0]}]})

    detection = detect(parsed, series, candles)

    assert (detection.setup, detection.side, detection.candle_open_time) == ("cross", Side.BUY, 60_000)
    assert detection.confidence == D("0.75")
    assert detection.values["fast"] == D(3) and detection.values["2 × avg"] == D(20)
    assert detection.reason == "fast crosses above slow; boosts 1/2: volume > 2 × avg"


def test_detect_returns_nothing_when_the_setup_does_not_match():
    assert detect(setup(), {"fast": [3, 3], "slow": [2, 2], "avg": [1, 1]}, flat(2)) is None


def test_a_confirm_mapping_names_the_condition_that_must_still_hold():
    parsed = setup(confirm={"condition_holds": {"gt": ["fast", "slow"]}})

    assert parsed.confirm is ConfirmRule.CONDITION_HOLDS
    assert parsed.confirm_condition.describe() == "fast > slow"
    assert setup(confirm="condition_holds").confirm_condition == parsed.when


def test_a_setup_can_be_built_by_hand_for_the_sell_side():
    parsed = Setup("short", Side.SELL, cond({"lt": ["close", 1]}), ConfirmRule.CONDITION_HOLDS, 2)

    assert parsed.confidence(0) == D("0.50")


# --- indicators --------------------------------------------------------------------------------


def test_indicators_take_pandas_ta_defaults_where_they_have_them():
    scan = parse_scan({
        "indicators": {"r": {"kind": "rsi"}, "m": {"kind": "macd"}, "b": {"kind": "bbands"}, "a": {"kind": "atr"},
                       "e": {"kind": "ema", "length": 20, "source": "high"}},
        "setups": [{"name": "x", "side": "buy", "when": {"lt": ["r", 30]}}],
    })
    specs = {spec.name: spec for spec in scan.indicators}

    assert specs["r"].params == {"length": 14} and specs["r"].source == "close"
    assert specs["m"].params == {"fast": 12, "slow": 26, "signal": 9}
    assert specs["b"].params == {"length": 20, "std": D("2")}
    assert specs["a"].source is None and specs["e"].source == "high"


def test_multi_output_indicators_expose_named_parts():
    scan = parse_scan({"indicators": {"m": {"kind": "macd"}, "bb": {"kind": "bbands", "std": 2.5}},
                       "setups": [{"name": "x", "side": "buy", "when": {"gt": ["m.line", "m.signal"]}}]})

    assert scan.indicators[0].outputs == ("m.line", "m.signal", "m.histogram")
    assert scan.indicators[1].outputs == ("bb.lower", "bb.middle", "bb.upper", "bb.bandwidth", "bb.percent")
    assert scan.indicators[1].params["std"] == D("2.5")


def test_candles_needed_covers_the_slowest_indicator_settling():
    scan = parse_scan({"indicators": {"ma200": {"kind": "sma", "length": 200}, "r": {"kind": "rsi"}},
                       "setups": [{"name": "x", "side": "buy", "when": {"lt": ["r", 30]}}]})

    assert scan.candles_needed == 201  # SMA200 needs 200; RSI14 settles after 140
    assert scan.setup("x").name == "x"


def test_asking_for_an_unknown_setup_lists_the_known_ones():
    scan = parse_scan({"setups": [{"name": "x", "side": "buy", "when": {"lt": ["close", 30]}}]})

    with pytest.raises(StrategyError, match=r"no setup 'y' \(known: x\)"):
        scan.setup("y")


# --- parse errors name the field path and the problem ------------------------------------------

GOOD_SETUP = {"name": "x", "side": "buy", "when": {"lt": ["close", 1]}}


def scan_with(indicators=None, **setup_changes):
    return {"indicators": indicators or {}, "setups": [{**GOOD_SETUP, **setup_changes}]}


PARSE_ERRORS = [
    ("not a mapping", ["a"], "field 'scan': must be a mapping, got list"),
    ("unknown scan field", {"setups": [GOOD_SETUP], "rules": 1}, "field 'scan.rules': unknown field"),
    ("no setups", {"indicators": {}}, "field 'scan.setups': must be a list of setups, got nothing"),
    ("empty setups", {"setups": []}, "field 'scan.setups': needs at least one setup"),
    ("indicators not a mapping", {"indicators": [], "setups": [GOOD_SETUP]},
     "field 'scan.indicators': must be a mapping, got list"),
    ("bad indicator name", scan_with({"MA4": {"kind": "sma", "length": 4}}), "field 'scan.indicators.MA4': an indicator name"),
    ("price name", scan_with({"close": {"kind": "sma", "length": 4}}), "'close' is a price series name"),
    ("indicator not a mapping", scan_with({"ma": "sma"}), "field 'scan.indicators.ma': must be a mapping, got str"),
    ("unknown kind", scan_with({"ma": {"kind": "hma", "length": 4}}),
     "field 'scan.indicators.ma.kind': must be one of sma, ema, rsi, macd, bbands, atr, volume_sma, got 'hma'"),
    ("missing kind", scan_with({"ma": {"length": 4}}), "field 'scan.indicators.ma.kind': must be one of"),
    ("kind as a list", scan_with({"ma": {"kind": ["sma"], "length": 4}}), "field 'scan.indicators.ma.kind': must be one of"),
    ("unknown parameter", scan_with({"ma": {"kind": "sma", "length": 4, "period": 3}}),
     "field 'scan.indicators.ma.period': unknown field (allowed: kind, length, source)"),
    ("missing length", scan_with({"ma": {"kind": "sma"}}), "field 'scan.indicators.ma.length': is required for sma"),
    ("fractional length", scan_with({"ma": {"kind": "sma", "length": 4.5}}),
     "field 'scan.indicators.ma.length': must be a whole number from 1 to 1000, got 4.5"),
    ("zero length", scan_with({"ma": {"kind": "sma", "length": 0}}), "field 'scan.indicators.ma.length': must be a whole"),
    ("huge length", scan_with({"ma": {"kind": "sma", "length": 5000}}), "from 1 to 1000, got 5000"),
    ("boolean length", scan_with({"ma": {"kind": "sma", "length": True}}), "got True"),
    ("negative std", scan_with({"bb": {"kind": "bbands", "std": -2}}),
     "field 'scan.indicators.bb.std': must be greater than 0, got '-2'"),
    ("std not a number", scan_with({"bb": {"kind": "bbands", "std": "wide"}}),
     "field 'scan.indicators.bb.std': must be a number, got 'wide'"),
    ("huge std", scan_with({"bb": {"kind": "bbands", "std": 50}}), "field 'scan.indicators.bb.std': must be at most 10"),
    ("fast not below slow", scan_with({"m": {"kind": "macd", "fast": 26, "slow": 12}}),
     "field 'scan.indicators.m.fast': must be below slow (12), got 26"),
    ("bad source", scan_with({"ma": {"kind": "sma", "length": 4, "source": "hl2"}}),
     "field 'scan.indicators.ma.source': must be one of open, high, low, close, volume, got 'hl2'"),
    ("source on atr", scan_with({"a": {"kind": "atr", "source": "close"}}), "field 'scan.indicators.a.source': unknown field"),
    ("setup not a mapping", {"setups": ["x"]}, "field 'scan.setups[0]': must be a mapping, got str"),
    ("unknown setup field", scan_with(entry="auto"), "field 'scan.setups[0].entry': unknown field"),
    ("bad setup name", scan_with(name="Cross Up"), "field 'scan.setups[0].name': must be lowercase letters"),
    ("duplicate setup", {"setups": [GOOD_SETUP, GOOD_SETUP]}, "field 'scan.setups[1].name': 'x' is used by an earlier setup"),
    ("bad side", scan_with(side="long"), "field 'scan.setups[0].side': must be 'buy' or 'sell', got 'long'"),
    ("missing when", {"setups": [{"name": "x", "side": "buy"}]}, "field 'scan.setups[0].when': is required"),
    ("unknown confirm", scan_with(confirm="next_open"),
     "field 'scan.setups[0].confirm': must be one of next_close_above_high, condition_holds, none, got 'next_open'"),
    ("confirm as a list", scan_with(confirm=["condition_holds"]), "field 'scan.setups[0].confirm': must be one of"),
    ("confirm mapping with other key", scan_with(confirm={"holds": {"lt": ["close", 1]}}),
     "field 'scan.setups[0].confirm': as a mapping, confirm has exactly one key: condition_holds"),
    ("bad confirm condition", scan_with(confirm={"condition_holds": {"gt": ["ma", 1]}}),
     "field 'scan.setups[0].confirm.condition_holds.gt[0]': unknown reference 'ma'"),
    ("zero window", scan_with(window=0), "field 'scan.setups[0].window': must be a whole number from 1 to 100, got 0"),
    ("confidence base above one", scan_with(confidence={"base": 1.5}),
     "field 'scan.setups[0].confidence.base': must be between 0 and 1, got 1.5"),
    ("unknown confidence field", scan_with(confidence={"min": 0.5}), "field 'scan.setups[0].confidence.min': unknown field"),
    ("boosts not a list", scan_with(confidence={"boosts": {"lt": ["close", 1]}}),
     "field 'scan.setups[0].confidence.boosts': must be a list of conditions, got dict"),
    ("bad boost", scan_with(confidence={"boosts": [{"gt": ["close"]}]}),
     "field 'scan.setups[0].confidence.boosts[0].gt': takes exactly 2 terms, got 1"),
]


@pytest.mark.parametrize(("case", "data", "message"), PARSE_ERRORS, ids=[case for case, _, _ in PARSE_ERRORS])
def test_a_bad_scan_section_is_refused_with_the_field_and_problem(case, data, message):
    with pytest.raises(StrategyError) as error:
        parse_scan(data)

    assert message in str(error.value)


CONDITION_ERRORS = [
    ("not a mapping", "close > 1", "field 'when': a condition is a mapping with one operator, got str"),
    ("two operators", {"gt": ["close", 1], "lt": ["close", 2]}, "field 'when': a condition has exactly one operator, got gt, lt"),
    ("no operator", {}, "field 'when': a condition has exactly one operator, got none"),
    ("unknown operator", {"above": ["close", 1]}, "field 'when.above': unknown operator (allowed: gt, lt, ge, le,"),
    ("one term", {"gt": ["close"]}, "field 'when.gt': takes exactly 2 terms, got 1"),
    ("three terms", {"lt": ["close", 1, 2]}, "field 'when.lt': takes exactly 2 terms, got 3"),
    ("terms not a list", {"ge": "close"}, "field 'when.ge': must be a list of terms, got str"),
    ("cross arity", {"crosses_above": ["fast"]}, "field 'when.crosses_above': takes exactly 2 terms, got 1"),
    ("between arity", {"between": ["rsi", 30]}, "field 'when.between': takes exactly 3 terms, got 2"),
    ("between bounds reversed", {"between": ["rsi", 70, 30]}, "field 'when.between': the low bound 70 is above the high bound 30"),
    ("empty all", {"all": []}, "field 'when.all': needs at least one condition"),
    ("any not a list", {"any": {"gt": ["close", 1]}}, "field 'when.any': must be a list of conditions, got dict"),
    ("bad item in all", {"all": [{"gt": ["close", 1]}, {"gt": ["nope", 1]}]},
     "field 'when.all[1].gt[0]': unknown reference 'nope' (known: avg, bb.lower, close, fast, high, low, open, rsi, slow, volume)"),
    ("not of a list", {"not": [{"gt": ["close", 1]}]}, "field 'when.not': a condition is a mapping with one operator, got list"),
    ("unknown pattern", {"pattern": "doji"}, "field 'when.pattern': unknown pattern 'doji' (known: hammer, inverted_hammer,"),
    ("pattern as a list", {"pattern": ["hammer"]}, "field 'when.pattern': unknown pattern ['hammer']"),
    ("bare multi-output", {"lt": ["close", "bb"]}, "field 'when.lt[1]': 'bb' has several outputs; name one: bb.lower"),
    ("boolean term", {"gt": ["close", True]}, "field 'when.gt[1]': must be a number, got True"),
    ("null term", {"gt": ["close", None]}, "field 'when.gt[1]': must be a number, got None"),
    ("list term", {"gt": ["close", [1]]}, "field 'when.gt[1]': a term is a number, a name or an arithmetic mapping"),
    ("infinite number", {"gt": ["close", float("inf")]}, "field 'when.gt[1]': must be a finite number"),
    ("huge number", {"gt": ["close", 1e20]}, "field 'when.gt[1]': is out of range"),
    ("bad numeric text", {"gt": ["close", "1.2.3"]}, "field 'when.gt[1]': must be a number, got '1.2.3'"),
    ("unknown arithmetic", {"gt": ["volume", {"pow": ["avg", 2]}]}, "field 'when.gt[1].pow': unknown arithmetic (allowed: add, sub, mul, div)"),
    ("arithmetic arity", {"gt": ["volume", {"mul": [1.5]}]}, "field 'when.gt[1].mul': takes exactly 2 terms, got 1"),
    ("arithmetic two ops", {"gt": ["volume", {"mul": [1, 2], "add": [1, 2]}]},
     "field 'when.gt[1]': an arithmetic term has exactly one of add, sub, mul, div, got 2 keys"),
    ("nested unknown ref", {"gt": ["volume", {"mul": [1.5, "vol"]}]}, "field 'when.gt[1].mul[1]': unknown reference 'vol'"),
]


@pytest.mark.parametrize(("case", "data", "message"), CONDITION_ERRORS, ids=[case for case, _, _ in CONDITION_ERRORS])
def test_a_bad_condition_is_refused_with_the_field_and_problem(case, data, message):
    with pytest.raises(StrategyError) as error:
        cond(data)

    assert message in str(error.value)


def test_numbers_may_be_written_as_text():
    assert check({"gt": ["close", "99.5"]}).matched


# --- the scan sections of the bundled strategies ---------------------------------------------

PROPOSED = {name: yaml.safe_load((STRATEGIES / f"{name}.yaml").read_text(encoding="utf-8"))["scan"]
            for name in ("rescue-forces", "smooth-sailing", "bounce-back", "mean-reversion-ma99")}


@pytest.mark.parametrize("strategy", ["rescue-forces", "smooth-sailing", "bounce-back", "mean-reversion-ma99"])
def test_each_bundled_scan_section_parses(strategy):
    scan = parse_scan(PROPOSED[strategy], f"{strategy}.scan")

    assert scan.setups and all(setup.side is Side.BUY for setup in scan.setups)


def test_rescue_forces_needs_a_boost_to_reach_its_minimum_confidence():
    setup_ = parse_scan(PROPOSED["rescue-forces"]).setups[0]

    assert setup_.when.describe() == "ma4 crosses above ma9 and volume > 1.5 × vol_avg20"
    assert (setup_.confidence(0), setup_.confidence(1)) == (D("0.50"), D("0.75"))
