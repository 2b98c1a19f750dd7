"""Strategy parsing: the bundled files load; errors name file, field and problem."""

from datetime import timedelta
from decimal import Decimal as D

import pytest

from robson.adapters.strategies import StrategyCatalog, bundled_strategies_dir
from robson.domain.guards import RiskLimits
from robson.domain.monitoring import TimeExitRule
from robson.domain.strategy import parse_strategy
from robson.errors import NotFound, StrategyError

BUNDLED = {"all-in", "rescue-forces", "smooth-sailing", "bounce-back", "mean-reversion-ma99"}


def minimal(**changes):
    data = {"name": "test", "timeframe": "15m", "risk_percent": 1, "stop": {"method": "technical"}}
    data.update(changes)
    return data


def test_the_five_bundled_strategies_load():
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
