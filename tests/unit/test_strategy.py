"""Strategy parsing: the bundled files load; errors name file, field and problem."""

import re
from datetime import timedelta
from decimal import Decimal as D

import pytest
import yaml

from robson.adapters.strategies import StrategyCatalog, bundled_strategies_dir
from robson.domain.conditions import ConfirmRule, parse_scan
from robson.domain.guards import RiskLimits
from robson.domain.monitoring import TimeExitRule
from robson.domain.strategy import AutoEntry, parse_strategy
from robson.errors import NotFound, StrategyError

BUNDLED = {"all-in", "rescue-forces", "smooth-sailing", "bounce-back", "mean-reversion-ma99", "ma-cross-5m"}


def minimal(**changes):
    data = {"name": "test", "timeframe": "15m", "risk_percent": 1, "stop": {"method": "technical"}}
    data.update(changes)
    return data


def test_the_six_bundled_strategies_load():
    catalog = StrategyCatalog([bundled_strategies_dir()])
    assert {s.name for s in catalog.all()} == BUNDLED


def test_all_in_is_manual_15m_technical_second_support_one_percent():
    s = StrategyCatalog([bundled_strategies_dir()]).get("all-in")
    assert (s.entry, s.timeframe, s.risk_percent, s.stop.kind, s.stop.level) == ("manual", "15m", D("1"), "technical", 2)


def test_risk_of_bundled_strategies_matches_the_brief():
    catalog = StrategyCatalog([bundled_strategies_dir()])
    assert catalog.get("rescue-forces").stop.kind == "moving_average"
    assert catalog.get("rescue-forces").stop.ma_period == 9
    assert catalog.get("smooth-sailing").risk_percent == D("0.5")
    assert catalog.get("smooth-sailing").timeframe == "1h"
    assert catalog.get("bounce-back").risk_percent == D("0.5")
    assert catalog.get("bounce-back").timeframe == "30m"


def test_unknown_strategy_lists_the_known_ones():
    with pytest.raises(NotFound, match="known: all-in"):
        StrategyCatalog([bundled_strategies_dir()]).get("yolo")


@pytest.mark.parametrize(("data", "field", "problem"), [
    (minimal(risk_percent="abc"), "risk_percent", "must be a number"),
    (minimal(risk_percent=3), "risk_percent", "hard ceiling"),
    (minimal(timeframe="7m"), "timeframe", "must be one of"),
    (minimal(stop={"method": "magic"}), "stop.method", "must be one of"),
    (minimal(stop={"method": "technical", "level": 0}), "stop.level", "whole number"),
    (minimal(stop={"method": "technical", "bogus": 1}), "stop.bogus", "unknown field"),
    (minimal(name="Bad Name"), "name", "lowercase"),
    (minimal(entry="sometimes"), "entry", "manual"),
    (minimal(colour="red"), "colour", "unknown field"),
    (minimal(target={"r_multiple": -1}), "target.r_multiple", "greater than 0"),
    (minimal(limits={"max_open_positions": "x"}), "limits.max_open_positions", "whole number"),
    (minimal(trailing="chandelier"), "trailing", "must be one of hand_span, off"),
    (minimal(trailing=True), "trailing", "must be one of hand_span, off"),
    (minimal(time_exit="3d"), "time_exit", "must be a mapping"),
    (minimal(time_exit={"candles": 0}), "time_exit.candles", "whole number ≥ 1"),
    (minimal(time_exit={"max_age": "3 days"}), "time_exit.max_age", "positive duration like 90m"),
    (minimal(time_exit={"max_age": "0h"}), "time_exit.max_age", "positive duration"),
    (minimal(time_exit={"bars": 3}), "time_exit.bars", "unknown field"),
])
def test_bad_strategy_names_file_field_and_problem(data, field, problem):
    with pytest.raises(StrategyError) as caught:
        parse_strategy(data, "my.yaml")
    message = str(caught.value)
    assert message.startswith("my.yaml: field ")
    assert f"'{field}'" in message
    assert problem in message


def test_strategy_overrides_account_limits():
    s = parse_strategy(minimal(limits={"max_open_positions": 3}, max_risk_percent="1.5"), "x.yaml")
    limits = s.risk_limits(RiskLimits())
    assert limits.max_open_positions == 3
    assert limits.max_risk_percent == D("1.5")


def test_invalid_yaml_file_is_named(tmp_path):
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(StrategyError, match="broken.yaml: not valid YAML"):
        StrategyCatalog([tmp_path]).all()


def test_user_strategy_overrides_a_bundled_one(tmp_path):
    (tmp_path / "mine.yaml").write_text("name: all-in\ntimeframe: 1h\nrisk_percent: 0.25\n")
    s = StrategyCatalog([bundled_strategies_dir(), tmp_path]).get("all-in")
    assert s.timeframe == "1h" and s.risk_percent == D("0.25")


def test_trailing_is_off_and_there_is_no_time_exit_unless_asked_for():
    s = parse_strategy(minimal(), "x.yaml")

    assert (s.trailing, s.trails, s.time_exit) == ("off", False, None)


def test_a_bare_yaml_off_turns_trailing_off():
    # YAML reads `trailing: off` as false.
    assert parse_strategy(minimal(trailing=False), "x.yaml").trailing == "off"
    assert parse_strategy(minimal(trailing="off"), "x.yaml").trails is False


def test_time_exit_reads_candles_and_a_max_age():
    s = parse_strategy(minimal(time_exit={"candles": 8, "max_age": "3d"}), "x.yaml")

    assert s.time_exit == TimeExitRule(candles=8, max_age=timedelta(days=3))


def test_bundled_trend_and_momentum_strategies_trail_and_bounce_back_exits_on_time():
    catalog = StrategyCatalog([bundled_strategies_dir()])

    assert {s.name for s in catalog.all() if s.trails} == {"smooth-sailing", "rescue-forces"}
    assert catalog.get("bounce-back").time_exit == TimeExitRule(candles=48)
    assert catalog.get("all-in").time_exit is None


# --- scan and auto entry -----------------------------------------------------------------------

SCAN = {
    "indicators": {"ma4": {"kind": "sma", "length": 4}, "ma9": {"kind": "sma", "length": 9}},
    "setups": [{"name": "cross", "side": "buy", "when": {"crosses_above": ["ma4", "ma9"]}}],
}


def test_a_strategy_without_a_scan_has_neither_scan_nor_auto_entry():
    s = parse_strategy(minimal(), "x.yaml")

    assert (s.scan, s.auto_entry) == (None, None)


def test_the_scan_section_is_parsed_into_setups():
    s = parse_strategy(minimal(scan=SCAN), "x.yaml")

    assert [spec.name for spec in s.scan.indicators] == ["ma4", "ma9"]
    assert s.scan.setup("cross").when.describe() == "ma4 crosses above ma9"
    assert s.auto_entry is None  # a manual strategy only records signals


def test_an_auto_strategy_gets_the_default_auto_entry_limits():
    s = parse_strategy(minimal(entry="auto", scan=SCAN), "x.yaml")

    assert s.auto_entry == AutoEntry(min_confidence=D("0.6"), max_entries_per_day=3, cooldown_minutes=60)


def test_auto_entry_limits_are_read_exactly():
    s = parse_strategy(minimal(entry="auto", scan=SCAN, auto_entry={"min_confidence": "0.75", "max_entries_per_day": 1,
                                                                    "cooldown_minutes": 0}), "x.yaml")

    assert s.auto_entry == AutoEntry(D("0.75"), 1, 0)


@pytest.mark.parametrize(("data", "field", "problem"), [
    (minimal(entry="auto"), "scan", "is required with entry: auto"),
    (minimal(auto_entry={"min_confidence": 0.7}, scan=SCAN), "auto_entry", "only to a strategy with entry: auto"),
    (minimal(entry="auto", scan=SCAN, auto_entry={"min_confidence": 2}), "auto_entry.min_confidence", "between 0 and 1"),
    (minimal(entry="auto", scan=SCAN, auto_entry={"cooldown_minutes": -1}), "auto_entry.cooldown_minutes", "whole number"),
    (minimal(entry="auto", scan=SCAN, auto_entry={"per_hour": 1}), "auto_entry.per_hour", "unknown field"),
    (minimal(scan="ma4 > ma9"), "scan", "must be a mapping"),
    (minimal(scan={"indicators": SCAN["indicators"], "setups": []}), "scan.setups", "needs at least one setup"),
    (minimal(scan={**SCAN, "setups": [{"name": "x", "side": "buy", "when": {"all": [
        {"crosses_above": ["ma4", "ma9"]}, {"gt": ["close", "ma50"]}]}}]}),
     "scan.setups[0].when.all[1].gt[1]", "unknown reference 'ma50'"),
    (minimal(scan={**SCAN, "setups": [{"name": "x", "side": "buy", "when": {"gt": ["close"]}}]}),
     "scan.setups[0].when.gt", "takes exactly 2 terms"),
    (minimal(scan={"indicators": {"ma4": {"kind": "hma", "length": 4}}, "setups": SCAN["setups"]}),
     "scan.indicators.ma4.kind", "must be one of"),
])
def test_a_bad_scan_or_auto_entry_names_file_field_and_problem(data, field, problem):
    with pytest.raises(StrategyError) as caught:
        parse_strategy(data, "strategies/x.yaml")

    message = str(caught.value)
    assert message.startswith(f"strategies/x.yaml: field '{field}': ")
    assert problem in message


def test_a_bad_scan_in_a_user_file_names_that_file(tmp_path):
    (tmp_path / "mine.yaml").write_text(
        "name: mine\nscan:\n  setups:\n    - name: x\n      side: up\n      when: {gt: [close, open]}\n"
    )

    with pytest.raises(StrategyError, match=r"mine\.yaml: field 'scan\.setups\[0\]\.side': must be 'buy' or 'sell'"):
        StrategyCatalog([tmp_path]).all()


def test_the_scanning_bundled_strategies_carry_their_setups_and_all_in_stays_manual():
    catalog = StrategyCatalog([bundled_strategies_dir()])

    setups = {s.name: [setup.name for setup in s.scan.setups] for s in catalog.all() if s.scan is not None}
    assert setups == {
        "rescue-forces": ["ma4-crosses-above-ma9"],
        "smooth-sailing": ["pullback-to-ma50"],
        "bounce-back": ["close-below-lower-band"],
        "mean-reversion-ma99": ["stretched-below-ma99"],
        "ma-cross-5m": ["sma4-crosses-above-sma9"],
    }
    assert catalog.get("all-in").scan is None and catalog.get("all-in").auto_entry is None
    assert {s.name for s in catalog.all() if s.auto_entry is not None} == {"rescue-forces"}


def test_rescue_forces_enters_on_its_cross_with_volume_and_confirms_if_the_cross_still_holds():
    s = StrategyCatalog([bundled_strategies_dir()]).get("rescue-forces")
    setup = s.scan.setup("ma4-crosses-above-ma9")

    assert setup.when.describe() == "ma4 crosses above ma9 and volume > 1.5 × vol_avg20"
    assert (setup.confirm, setup.confirm_condition.describe(), setup.window) == (
        ConfirmRule.CONDITION_HOLDS, "ma4 crosses above ma9", 1,
    )
    assert s.auto_entry == AutoEntry(D("0.6"), 3, 60)
    # The base 0.5 is under the 0.6 minimum: an auto entry needs a volume burst or a bullish candle.
    assert (setup.confidence(0), setup.confidence(1), setup.confidence(2)) == (D("0.5"), D("0.75"), D("1.00"))


def test_the_other_bundled_scans_match_the_issue():
    catalog = StrategyCatalog([bundled_strategies_dir()])

    def when(name):
        return catalog.get(name).scan.setups[0].when.describe()

    assert when("smooth-sailing") == "ma50 > ma200 and low crosses below ma50 × 1.002 and close > ma50"
    assert when("bounce-back") == "close < bb.lower and rsi14 < 30"
    assert when("mean-reversion-ma99") == "close crosses below ma99 × 0.97"
    assert catalog.get("bounce-back").scan.indicators[0].params == {"length": 20, "std": D("2")}


def test_the_strategy_reference_shows_each_bundled_scan_exactly_as_bundled():
    reference = (bundled_strategies_dir().parent / "docs" / "strategy-reference.md").read_text(encoding="utf-8")
    section = reference.split("## The bundled strategies' scans", 1)[1]
    blocks = [yaml.safe_load(block) for block in re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)]
    catalog = StrategyCatalog([bundled_strategies_dir()])

    shown = {block["scan"]["setups"][0]["name"]: parse_scan(block["scan"]) for block in blocks}

    bundled = {s.scan.setups[0].name: s.scan for s in catalog.all() if s.scan is not None}
    assert shown == bundled
    for scan in bundled.values():
        assert f"**{scan.setups[0].when.describe()}**" in section
