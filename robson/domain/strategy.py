"""Strategies: risk, timeframe, stop method and target, parsed and validated from plain data.

Loading the YAML files is an adapter's job (robson/adapters/strategies.py); this module
turns an already-parsed mapping into a Strategy, or raises StrategyError naming the
file, the field and the problem.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from robson.domain.conditions import ScanDefinition, parse_scan
from robson.domain.guards import HARD_RISK_CEILING_PERCENT, RiskLimits
from robson.domain.ladder import LadderStep, parse_ladder
from robson.domain.market import TIMEFRAME_MS, Side
from robson.domain.monitoring import TimeExitRule, parse_duration
from robson.domain.money import HUNDRED, fmt, parse_decimal
from robson.domain.stops import STOP_KINDS, StopSettings, compute_stop
from robson.domain.targets import TargetRule
from robson.errors import InvalidInput, StrategyError

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")
MAX_WHOLE = 100_000
TOP_LEVEL_FIELDS = {
    "name", "title", "description", "entry", "timeframe", "risk_percent", "max_risk_percent",
    "stop", "target", "targets", "limits", "auto_entry", "scan", "trailing", "time_exit", "backtest",
}
TARGET_FIELDS = {"r_multiple", "percent", "after_fees"}
BACKTEST_FIELDS = {"slippage_percent"}
STOP_FIELDS = {"method"} | {f.name for f in dataclasses.fields(StopSettings)} - {"kind"}
LIMIT_FIELDS = {f.name for f in dataclasses.fields(RiskLimits)} - {"max_risk_percent"}
TRAILING_MODES = ("hand_span", "off")
TIME_EXIT_FIELDS = {"candles", "max_age"}


@dataclass(frozen=True, slots=True)
class AutoEntry:
    """When a CONFIRMED signal of an `entry: auto` strategy becomes an intent (SPEC §2 scan)."""

    min_confidence: Decimal = Decimal("0.6")  # signals below it are recorded, not entered
    max_entries_per_day: int = 3  # intents the scan may create per UTC day for this strategy
    cooldown_minutes: int = 60  # minutes after an auto entry before the next one may be created


@dataclass(frozen=True, slots=True)
class BacktestDefaults:
    """What `robson backtest` assumes for this strategy unless told otherwise (None: the config's)."""

    slippage_percent: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Strategy:
    name: str
    title: str
    description: str
    entry: str  # "manual" or "auto"
    timeframe: str
    risk_percent: Decimal
    max_risk_percent: Decimal
    stop: StopSettings
    target: TargetRule  # a single target for the whole position (empty with a ladder)
    limit_overrides: dict[str, Any] = field(default_factory=dict)
    auto_entry: AutoEntry | None = None  # None: a person decides every entry (entry: manual)
    scan: ScanDefinition | None = None  # the setups `robson scan` looks for; None: nothing to scan
    source: str = ""  # the file it came from
    trailing: str = "off"  # "hand_span" (SPEC §2 trailing stop) or "off"
    time_exit: TimeExitRule | None = None  # close after N candles of the timeframe and/or at an age
    backtest: BacktestDefaults = field(default_factory=BacktestDefaults)
    targets: tuple[LadderStep, ...] = ()  # a scale-out ladder (robson/domain/ladder.py); () with a single target

    @property
    def target_r_multiple(self) -> Decimal | None:
        return self.target.r_multiple

    @property
    def trails(self) -> bool:
        """Tell whether the monitor trails the stop (hand span) for this strategy."""
        return self.trailing == "hand_span"

    def risk_limits(self, base: RiskLimits) -> RiskLimits:
        """Return the account limits with this strategy's overrides and max risk applied."""
        return dataclasses.replace(base, max_risk_percent=self.max_risk_percent, **self.limit_overrides)


def _fail(source: str, field_name: str, problem: str) -> StrategyError:
    return StrategyError(f"{source}: field '{field_name}': {problem}")


def _decimal(source: str, field_name: str, value: Any, *, allow_zero: bool = False) -> Decimal:
    if isinstance(value, bool) or value is None:
        raise _fail(source, field_name, f"must be a number, got {value!r}")
    try:
        return parse_decimal(value, field_name, allow_zero=allow_zero)
    except InvalidInput as e:
        raise _fail(source, field_name, e.message) from None


def _int(source: str, field_name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(source, field_name, f"must be a whole number ≥ {minimum}, got {value!r}")
    if value > MAX_WHOLE:  # counts of candles or minutes: beyond this, times run off the calendar
        raise _fail(source, field_name, f"must be at most {MAX_WHOLE:,}, got {value if value < 10**40 else 'a huge number'}")
    return value


def _mapping(source: str, field_name: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(source, field_name, f"must be a mapping, got {type(value).__name__}")
    return value


def _unknown(source: str, prefix: str, data: dict[str, Any], allowed: set[str]) -> None:
    for key in data:
        if key not in allowed:
            raise _fail(source, f"{prefix}{key}", f"unknown field (allowed: {', '.join(sorted(allowed))})")


def _parse_stop(source: str, data: dict[str, Any]) -> StopSettings:
    _unknown(source, "stop.", data, STOP_FIELDS)
    method = data.get("method", "technical")
    if method not in STOP_KINDS:
        raise _fail(source, "stop.method", f"must be one of {', '.join(STOP_KINDS)}, got {method!r}")
    values: dict[str, Any] = {"kind": method}
    defaults = StopSettings()
    for key, raw in data.items():
        if key == "method":
            continue
        default = getattr(defaults, key)
        if isinstance(default, int):
            values[key] = _int(source, f"stop.{key}", raw)
        else:
            values[key] = _decimal(source, f"stop.{key}", raw, allow_zero=key == "buffer_percent")
    settings = StopSettings(**values)
    try:  # the stop rules' own check of their settings, so `config check` refuses what `plan` would
        compute_stop(Side.BUY, HUNDRED, (), settings)
    except InvalidInput as e:
        raise _fail(source, "stop", e.message) from None
    return settings


def _parse_limits(source: str, data: dict[str, Any]) -> dict[str, Any]:
    _unknown(source, "limits.", data, LIMIT_FIELDS)
    defaults = RiskLimits()
    parsed: dict[str, Any] = {}
    for key, raw in data.items():
        if isinstance(getattr(defaults, key), int):
            parsed[key] = _int(source, f"limits.{key}", raw, minimum=0)
        else:
            parsed[key] = _decimal(source, f"limits.{key}", raw, allow_zero=True)
    return parsed


AUTO_ENTRY_FIELDS = {"min_confidence", "max_entries_per_day", "cooldown_minutes"}


def _parse_auto_entry(source: str, entry: str, raw: Any) -> AutoEntry | None:
    data = _mapping(source, "auto_entry", raw)
    if entry != "auto":
        if raw is not None:
            raise _fail(source, "auto_entry", "applies only to a strategy with entry: auto")
        return None
    _unknown(source, "auto_entry.", data, AUTO_ENTRY_FIELDS)
    parsed: dict[str, Any] = {}
    if "min_confidence" in data:
        confidence = _decimal(source, "auto_entry.min_confidence", data["min_confidence"], allow_zero=True)
        if confidence > 1:
            raise _fail(source, "auto_entry.min_confidence", f"must be between 0 and 1, got {confidence}")
        parsed["min_confidence"] = confidence
    for key in ("max_entries_per_day", "cooldown_minutes"):
        if key in data:
            parsed[key] = _int(source, f"auto_entry.{key}", data[key], minimum=0)
    return AutoEntry(**parsed)


def _parse_scan(source: str, entry: str, raw: Any) -> ScanDefinition | None:
    if raw is None:
        if entry == "auto":
            raise _fail(source, "scan", "is required with entry: auto: auto entries come from the scan's signals")
        return None
    try:
        return parse_scan(raw, "scan")
    except StrategyError as e:  # "field 'scan.…': problem" → prefixed with the file
        raise StrategyError(f"{source}: {e.message}", hint=e.hint) from None


def _parse_trailing(source: str, value: Any) -> str:
    if value is None or value is False:  # YAML reads a bare `off` as false
        return "off"
    if value not in TRAILING_MODES:
        raise _fail(source, "trailing", f"must be one of {', '.join(TRAILING_MODES)}, got {value!r}")
    return value


def _parse_time_exit(source: str, data: dict[str, Any]) -> TimeExitRule | None:
    _unknown(source, "time_exit.", data, TIME_EXIT_FIELDS)
    if not data:
        return None
    candles = _int(source, "time_exit.candles", data["candles"]) if "candles" in data else None
    max_age = None
    if "max_age" in data:
        try:
            if not str(data["max_age"]).isascii():  # '٩٠m' would read as 90m
                raise InvalidInput("digits other than 0-9")
            max_age = parse_duration(data["max_age"], "time_exit.max_age")
            if max_age.days > MAX_WHOLE:  # the deadline has to stay on the calendar
                raise InvalidInput("too long")
        except (InvalidInput, OverflowError):
            raise _fail(source, "time_exit.max_age", f"must be a positive duration like 90m, 12h, 3d or 2w "
                                                     f"(at most {MAX_WHOLE:,} days), got {data['max_age']!r}") from None
    return TimeExitRule(candles=candles, max_age=max_age)


def _parse_target(source: str, data: dict[str, Any]) -> TargetRule:
    _unknown(source, "target.", data, TARGET_FIELDS)
    if "r_multiple" in data and "percent" in data:
        raise _fail(source, "target", "give r_multiple or percent, not both")
    after_fees = data.get("after_fees", False)
    if not isinstance(after_fees, bool):
        raise _fail(source, "target.after_fees", f"must be true or false, got {after_fees!r}")
    if "r_multiple" in data:
        if after_fees:
            raise _fail(source, "target.after_fees", "applies only to a percent target")
        return TargetRule(r_multiple=_decimal(source, "target.r_multiple", data["r_multiple"]))
    if "percent" in data:
        percent = _decimal(source, "target.percent", data["percent"])
        if percent > 10 * HUNDRED:
            raise _fail(source, "target.percent", f"must be at most 1000, got {fmt(percent)}")
        return TargetRule(percent=percent, after_fees=after_fees)
    if after_fees:
        raise _fail(source, "target.after_fees", "applies only to a percent target")
    return TargetRule()


def _parse_targets(source: str, data: dict[str, Any]) -> tuple[LadderStep, ...]:
    if "targets" not in data:
        return ()
    if "target" in data:
        raise _fail(source, "targets", "give target (one for the whole position) or targets (a ladder), not both")
    try:
        return parse_ladder(data["targets"], "targets")
    except StrategyError as e:  # "field 'targets[…]': problem" → prefixed with the file
        raise StrategyError(f"{source}: {e.message}", hint=e.hint) from None


def _parse_backtest(source: str, data: dict[str, Any]) -> BacktestDefaults:
    _unknown(source, "backtest.", data, BACKTEST_FIELDS)
    slippage = None
    if "slippage_percent" in data:
        slippage = _decimal(source, "backtest.slippage_percent", data["slippage_percent"], allow_zero=True)
        if slippage >= HUNDRED:
            raise _fail(source, "backtest.slippage_percent", f"must be below 100, got {fmt(slippage)}")
    return BacktestDefaults(slippage_percent=slippage)


def parse_strategy(data: Any, source: str) -> Strategy:
    """Build a Strategy from parsed YAML; raise StrategyError naming source, field and problem."""
    if not isinstance(data, dict):
        raise StrategyError(f"{source}: the file must hold a mapping of fields, got {type(data).__name__}")
    _unknown(source, "", data, TOP_LEVEL_FIELDS)
    name = data.get("name")
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise _fail(source, "name", f"must be lowercase letters, digits and '-', got {name!r}")
    entry = data.get("entry", "manual")
    if entry not in ("manual", "auto"):
        raise _fail(source, "entry", f"must be 'manual' or 'auto', got {entry!r}")
    timeframe = data.get("timeframe", "15m")
    if timeframe not in TIMEFRAME_MS:
        raise _fail(source, "timeframe", f"must be one of {', '.join(TIMEFRAME_MS)}, got {timeframe!r}")
    risk = _decimal(source, "risk_percent", data.get("risk_percent", "1"))
    max_risk = _decimal(source, "max_risk_percent", data.get("max_risk_percent", risk))
    for field_name, value in (("risk_percent", risk), ("max_risk_percent", max_risk)):
        if value > HARD_RISK_CEILING_PERCENT:
            raise _fail(source, field_name, f"{value}% is above the hard ceiling of {HARD_RISK_CEILING_PERCENT}%")
    if risk > max_risk:
        raise _fail(source, "risk_percent", f"{risk}% is above max_risk_percent {max_risk}%")
    stop = _parse_stop(source, _mapping(source, "stop", data.get("stop")))
    return Strategy(
        name=name,
        title=str(data.get("title") or name),
        description=str(data.get("description") or "").strip(),
        entry=entry,
        timeframe=timeframe,
        risk_percent=risk,
        max_risk_percent=max_risk,
        stop=stop,
        target=_parse_target(source, _mapping(source, "target", data.get("target"))),
        limit_overrides=_parse_limits(source, _mapping(source, "limits", data.get("limits"))),
        auto_entry=_parse_auto_entry(source, entry, data.get("auto_entry")),
        scan=_parse_scan(source, entry, data.get("scan")),
        source=source,
        trailing=_parse_trailing(source, data.get("trailing")),
        time_exit=_parse_time_exit(source, _mapping(source, "time_exit", data.get("time_exit"))),
        backtest=_parse_backtest(source, _mapping(source, "backtest", data.get("backtest"))),
        targets=_parse_targets(source, data),
    )
