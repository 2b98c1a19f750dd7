"""Scan rules: a closed grammar for a strategy's ``scan:`` section, parsed without eval.

The section (docs/strategy-reference.md has every operator with an example)::

    scan:
      indicators:                        # name → pandas-ta kind and parameters
        ma4: {kind: sma, length: 4}
        vol_avg20: {kind: volume_sma, length: 20}
        bb: {kind: bbands, length: 20, std: 2}     # parts: bb.lower, bb.middle, bb.upper, ...
      setups:
        - name: ma-cross
          side: buy                      # buy | sell
          when:                          # one condition (compose with all / any / not)
            all:
              - crosses_above: [ma4, ma9]
              - gt: [volume, {mul: [1.5, vol_avg20]}]
          confirm: condition_holds       # or next_close_above_high, or {condition_holds: <condition>}
          window: 1                      # closed candles after which an unconfirmed signal expires
          confidence: {base: 0.5, boosts: [{gt: [volume, {mul: [2, vol_avg20]}]}]}

A *term* is a number, a reference (``open high low close volume`` of the candle, an indicator
name, or ``name.part`` for multi-output indicators) or ``{add|sub|mul|div: [term, term]}``.
A *condition* is a one-key mapping: ``gt lt ge le crosses_above crosses_below: [term, term]``,
``between: [term, low, high]`` (inclusive), ``all / any: [condition, ...]``, ``not: condition``,
``pattern: hammer|inverted_hammer|bullish_engulfing|bearish_engulfing|morning_star``.

Evaluation is three-valued: a value missing during warm-up, a crossing on the first candle or
a division by zero makes a comparison *unknown*; ``all``/``any``/``not`` follow Kleene logic
(``not`` of unknown stays unknown), and an unknown result never matches. A crossing compares
the candle with the one before (left at or below right, then above); a confirmation asking
whether the setup "still holds" judges a crossing as a state and a formed pattern as holding.
robson.adapters.signal_engine is the one evaluator of these rules, for the scan and the
backtest alike.
Parse errors raise StrategyError("field 'scan.setups[0].when.gt[1]': problem"); the caller
prefixes the file name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from enum import StrEnum
from typing import Any

from robson.domain.market import Side
from robson.domain.money import ONE, ZERO, fmt, parse_decimal
from robson.domain.patterns import PATTERNS
from robson.errors import InvalidInput, StrategyError

PRICE_SERIES = ("open", "high", "low", "close", "volume")
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
SETUP_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,47}$")
MAX_LENGTH = 1000  # candles; longer periods need more history than a scan fetches
MAX_STD = Decimal("10")
CONVERGENCE_FACTOR = 10  # recursive indicators settle after ~10 × their period (TA-Lib parity)
DEFAULT_BASE_CONFIDENCE = Decimal("0.5")
CONFIDENCE_STEP = Decimal("0.01")


# --- indicators ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Kind:
    defaults: dict[str, int | Decimal | None]  # None: the parameter is required
    source: str | None  # default source; None: fixed inputs (atr: high, low, close)
    parts: tuple[str, ...] = ()
    recursive: bool = False  # exponential smoothing: values depend on the whole history


INDICATOR_KINDS: dict[str, _Kind] = {
    "sma": _Kind({"length": None}, "close"),
    "ema": _Kind({"length": None}, "close", recursive=True),
    "rsi": _Kind({"length": 14}, "close", recursive=True),
    "macd": _Kind({"fast": 12, "slow": 26, "signal": 9}, "close", ("line", "signal", "histogram"), True),
    "bbands": _Kind({"length": 20, "std": Decimal("2")}, "close", ("lower", "middle", "upper", "bandwidth", "percent")),
    "atr": _Kind({"length": 14}, None, recursive=True),
    "volume_sma": _Kind({"length": None}, None),
}


@dataclass(frozen=True, slots=True)
class IndicatorSpec:
    """One declared indicator: its name in conditions, pandas-ta kind, parameters and input series."""

    name: str
    kind: str
    params: dict[str, int | Decimal]
    source: str | None = "close"  # None for atr (high, low, close) and volume_sma (volume)

    @property
    def outputs(self) -> tuple[str, ...]:
        """The series names this indicator produces: 'ma4', or 'bb.lower', 'bb.middle', ..."""
        parts = INDICATOR_KINDS[self.kind].parts
        return tuple(f"{self.name}.{part}" for part in parts) if parts else (self.name,)

    @property
    def period(self) -> int:
        """The longest period the indicator averages over (macd: slow + signal)."""
        if self.kind == "macd":
            return int(self.params["slow"]) + int(self.params["signal"])
        return int(self.params["length"])

    @property
    def lookback(self) -> int:
        """Closed candles needed before values are settled (10 × period for recursive kinds)."""
        return self.period * (CONVERGENCE_FACTOR if INDICATOR_KINDS[self.kind].recursive else 1)


# --- terms -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Number:
    value: Decimal

    def describe(self) -> str:
        return fmt(self.value)


@dataclass(frozen=True, slots=True)
class Ref:
    name: str

    def describe(self) -> str:
        return self.name


ARITHMETIC = {"add": "+", "sub": "−", "mul": "×", "div": "÷"}


@dataclass(frozen=True, slots=True)
class Arithmetic:
    op: str  # add, sub, mul, div
    left: Term
    right: Term

    def describe(self) -> str:
        def side(term: Term) -> str:
            return f"({term.describe()})" if isinstance(term, Arithmetic) else term.describe()

        return f"{side(self.left)} {ARITHMETIC[self.op]} {side(self.right)}"


Term = Number | Ref | Arithmetic


# --- conditions ------------------------------------------------------------------------------

COMPARISONS = {"gt": ">", "lt": "<", "ge": "≥", "le": "≤"}
CROSSES = {"crosses_above": "crosses above", "crosses_below": "crosses below"}


@dataclass(frozen=True, slots=True)
class Compare:
    op: str  # gt, lt, ge, le
    left: Term
    right: Term

    def describe(self, nested: bool = False) -> str:
        return f"{self.left.describe()} {COMPARISONS[self.op]} {self.right.describe()}"


@dataclass(frozen=True, slots=True)
class Between:
    value: Term
    low: Term
    high: Term

    def describe(self, nested: bool = False) -> str:
        return f"{self.low.describe()} ≤ {self.value.describe()} ≤ {self.high.describe()}"


@dataclass(frozen=True, slots=True)
class Cross:
    op: str  # crosses_above, crosses_below
    left: Term
    right: Term

    def describe(self, nested: bool = False) -> str:
        return f"{self.left.describe()} {CROSSES[self.op]} {self.right.describe()}"


@dataclass(frozen=True, slots=True)
class AllOf:
    items: tuple[Condition, ...]

    def describe(self, nested: bool = False) -> str:
        text = " and ".join(item.describe(True) for item in self.items)
        return f"({text})" if nested and len(self.items) > 1 else text


@dataclass(frozen=True, slots=True)
class AnyOf:
    items: tuple[Condition, ...]

    def describe(self, nested: bool = False) -> str:
        text = " or ".join(item.describe(True) for item in self.items)
        return f"({text})" if nested and len(self.items) > 1 else text


@dataclass(frozen=True, slots=True)
class Not:
    item: Condition

    def describe(self, nested: bool = False) -> str:
        return f"not ({self.item.describe()})"


@dataclass(frozen=True, slots=True)
class Pattern:
    name: str

    def describe(self, nested: bool = False) -> str:
        return f"pattern {self.name}"


Condition = Compare | Between | Cross | AllOf | AnyOf | Not | Pattern


# --- setups ----------------------------------------------------------------------------------


class ConfirmRule(StrEnum):
    NEXT_CLOSE_ABOVE_HIGH = "next_close_above_high"  # sells: a close below the signal candle's low
    CONDITION_HOLDS = "condition_holds"  # the setup's condition still holds on the next close
    NONE = "none"  # no confirmation: the signal candle itself decides, the entry is the next open


@dataclass(frozen=True, slots=True)
class Setup:
    """A named pattern a scan looks for: side, condition, confirmation rule, window and confidence.

    Confidence = base + (1 − base) × held / boosts, rounded down to 0.01, where boosts are the
    optional conditions listed under ``confidence.boosts`` and held is how many of them hold on
    the signal candle (held / boosts is 0 when there are none, so the confidence is the base).
    base defaults to 0.5. Examples: base 0.5 and 2 boosts give 0.5, 0.75 or 1.
    """

    name: str
    side: Side
    when: Condition
    confirm: ConfirmRule = ConfirmRule.NEXT_CLOSE_ABOVE_HIGH
    window: int = 1
    base_confidence: Decimal = DEFAULT_BASE_CONFIDENCE
    boosts: tuple[Condition, ...] = ()
    holds: Condition | None = None  # condition_holds checks this instead of when, if given

    @property
    def confirm_condition(self) -> Condition:
        """The condition condition_holds re-checks on the next close: holds if given, else when."""
        return self.holds if self.holds is not None else self.when

    def confidence(self, held: int) -> Decimal:
        """Return the confidence when held of the boosts hold (0 ≤ held ≤ len(boosts))."""
        fraction = Decimal(held) / Decimal(len(self.boosts)) if self.boosts else ZERO
        value = self.base_confidence + (ONE - self.base_confidence) * fraction
        return value.quantize(CONFIDENCE_STEP, rounding=ROUND_DOWN)


@dataclass(frozen=True, slots=True)
class Detection:
    """A setup matched at a closed candle: the raw material of a DETECTED signal."""

    setup: str
    side: Side
    candle_open_time: int
    confidence: Decimal
    values: dict[str, Decimal | None]
    reason: str


@dataclass(frozen=True, slots=True)
class ScanDefinition:
    """A strategy's parsed ``scan:`` section: the indicators to compute and the setups to look for."""

    indicators: tuple[IndicatorSpec, ...]
    setups: tuple[Setup, ...] = ()

    @property
    def candles_needed(self) -> int:
        """Closed candles to fetch so every indicator is settled, plus one for crossings."""
        return max([3] + [spec.lookback for spec in self.indicators]) + 1

    def setup(self, name: str) -> Setup:
        """Return the setup called name; raise StrategyError listing the known ones."""
        for setup in self.setups:
            if setup.name == name:
                return setup
        raise StrategyError(f"no setup '{name}' (known: {', '.join(s.name for s in self.setups)})")


# --- parsing ---------------------------------------------------------------------------------


def _fail(path: str, problem: str) -> StrategyError:
    return StrategyError(f"field '{path}': {problem}")


def _keys_known(data: Mapping[str, Any], path: str, allowed: Sequence[str]) -> None:
    for key in data:
        if key not in allowed:
            raise _fail(f"{path}.{key}", f"unknown field (allowed: {', '.join(allowed)})")


def _mapping(data: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise _fail(path, f"must be a mapping, got {_kind_of(data)}")
    return data


def _list(data: Any, path: str, length: int | None = None, *, what: str = "items") -> list[Any]:
    if not isinstance(data, list):
        raise _fail(path, f"must be a list of {what}, got {_kind_of(data)}")
    if length is not None and len(data) != length:
        raise _fail(path, f"takes exactly {length} {what}, got {len(data)}")
    return data


def _kind_of(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _number(value: Any, path: str, *, positive: bool = False) -> Decimal:
    if isinstance(value, bool) or value is None or not isinstance(value, int | float | str | Decimal):
        raise _fail(path, f"must be a number, got {value!r}")
    try:
        return parse_decimal(value, "value", positive=positive)
    except InvalidInput as e:
        raise _fail(path, e.message.removeprefix("value ")) from None


def _whole(value: Any, path: str, minimum: int = 1, maximum: int = MAX_LENGTH) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise _fail(path, f"must be a whole number from {minimum} to {maximum}, got {value!r}")
    return value


def parse_indicators(data: Any, path: str = "scan.indicators") -> tuple[IndicatorSpec, ...]:
    """Parse the ``indicators:`` mapping; raise StrategyError naming the field and problem."""
    specs = []
    for name, raw in _mapping(data, path).items():
        here = f"{path}.{name}"
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise _fail(here, "an indicator name is a lowercase letter then letters, digits or '_' (≤ 32)")
        if name in PRICE_SERIES:
            raise _fail(here, f"'{name}' is a price series name and cannot name an indicator")
        body = _mapping(raw, here)
        kind_name = body.get("kind")
        if not isinstance(kind_name, str) or kind_name not in INDICATOR_KINDS:
            raise _fail(f"{here}.kind", f"must be one of {', '.join(INDICATOR_KINDS)}, got {kind_name!r}")
        kind = INDICATOR_KINDS[kind_name]
        _keys_known(body, here, ["kind", *kind.defaults, *(["source"] if kind.source else [])])
        params: dict[str, int | Decimal] = {}
        for key, default in kind.defaults.items():
            if key not in body and default is None:
                raise _fail(f"{here}.{key}", f"is required for {kind_name}")
            raw_value = body.get(key, default)
            if key == "std":
                params[key] = _number(raw_value, f"{here}.{key}", positive=True)
                if params[key] > MAX_STD:
                    raise _fail(f"{here}.{key}", f"must be at most {MAX_STD}, got {params[key]}")
            else:
                params[key] = _whole(raw_value, f"{here}.{key}")
        if kind_name == "macd" and params["fast"] >= params["slow"]:
            raise _fail(f"{here}.fast", f"must be below slow ({params['slow']}), got {params['fast']}")
        source = body.get("source", kind.source)
        if kind.source and source not in PRICE_SERIES:
            raise _fail(f"{here}.source", f"must be one of {', '.join(PRICE_SERIES)}, got {source!r}")
        specs.append(IndicatorSpec(name=name, kind=kind_name, params=params, source=source))
    return tuple(specs)


def parse_term(data: Any, refs: Mapping[str, str | None], path: str) -> Term:
    """Parse a number, a reference or ``{add|sub|mul|div: [term, term]}``; raise StrategyError.

    refs maps every known reference to None, and each multi-output indicator name to a hint.
    """
    if isinstance(data, Mapping):
        if len(data) != 1:
            raise _fail(path, f"an arithmetic term has exactly one of {', '.join(ARITHMETIC)}, got {len(data)} keys")
        ((op, operands),) = data.items()
        if op not in ARITHMETIC:
            raise _fail(f"{path}.{op}", f"unknown arithmetic (allowed: {', '.join(ARITHMETIC)})")
        left, right = _list(operands, f"{path}.{op}", 2, what="terms")
        return Arithmetic(op, parse_term(left, refs, f"{path}.{op}[0]"), parse_term(right, refs, f"{path}.{op}[1]"))
    if isinstance(data, str) and data.strip() and not data.strip()[0].isalpha():
        return Number(_number(data, path))
    if isinstance(data, str):
        if data not in refs:
            known = ", ".join(sorted(name for name, hint in refs.items() if hint is None))
            raise _fail(path, f"unknown reference '{data}' (known: {known})")
        if refs[data] is not None:
            raise _fail(path, f"'{data}' has several outputs; name one: {refs[data]}")
        return Ref(data)
    if isinstance(data, list):
        raise _fail(path, "a term is a number, a name or an arithmetic mapping, got a list")
    return Number(_number(data, path))


def parse_condition(data: Any, refs: Mapping[str, str | None], path: str) -> Condition:
    """Parse one condition mapping; raise StrategyError naming the field path and the problem."""
    if not isinstance(data, Mapping):
        raise _fail(path, f"a condition is a mapping with one operator, got {_kind_of(data)}")
    if len(data) != 1:
        keys = ", ".join(str(k) for k in data) or "none"
        raise _fail(path, f"a condition has exactly one operator, got {keys}")
    ((op, args),) = data.items()
    here = f"{path}.{op}"
    if op in COMPARISONS or op in CROSSES:
        left, right = _list(args, here, 2, what="terms")
        parsed = parse_term(left, refs, f"{here}[0]"), parse_term(right, refs, f"{here}[1]")
        return Compare(op, *parsed) if op in COMPARISONS else Cross(op, *parsed)
    if op == "between":
        value, low, high = (parse_term(t, refs, f"{here}[{i}]") for i, t in enumerate(_list(args, here, 3, what="terms")))
        if isinstance(low, Number) and isinstance(high, Number) and low.value > high.value:
            raise _fail(here, f"the low bound {fmt(low.value)} is above the high bound {fmt(high.value)}")
        return Between(value, low, high)
    if op in ("all", "any"):
        items = _list(args, here, what="conditions")
        if not items:
            raise _fail(here, "needs at least one condition")
        parsed_items = tuple(parse_condition(item, refs, f"{here}[{i}]") for i, item in enumerate(items))
        return AllOf(parsed_items) if op == "all" else AnyOf(parsed_items)
    if op == "not":
        return Not(parse_condition(args, refs, here))
    if op == "pattern":
        if not isinstance(args, str) or args not in PATTERNS:
            raise _fail(here, f"unknown pattern {args!r} (known: {', '.join(PATTERNS)})")
        return Pattern(args)
    operators = [*COMPARISONS, *CROSSES, "between", "all", "any", "not", "pattern"]
    raise _fail(here, f"unknown operator (allowed: {', '.join(operators)})")


SETUP_FIELDS = ["name", "side", "when", "confirm", "window", "confidence"]


def parse_setup(data: Any, refs: Mapping[str, str | None], path: str) -> Setup:
    """Parse one entry of ``setups:``; raise StrategyError naming the field path and the problem."""
    body = _mapping(data, path)
    _keys_known(body, path, SETUP_FIELDS)
    name = body.get("name")
    if not isinstance(name, str) or not SETUP_NAME_PATTERN.match(name):
        raise _fail(f"{path}.name", f"must be lowercase letters, digits and '-', got {name!r}")
    side = body.get("side")
    if side not in ("buy", "sell"):
        raise _fail(f"{path}.side", f"must be 'buy' or 'sell', got {side!r}")
    if "when" not in body:
        raise _fail(f"{path}.when", "is required: the condition that detects this setup")
    when = parse_condition(body["when"], refs, f"{path}.when")
    confirm, holds = _parse_confirm(body.get("confirm", ConfirmRule.NEXT_CLOSE_ABOVE_HIGH.value), refs, path)
    window = _whole(body.get("window", 1), f"{path}.window", 1, 100)
    here = f"{path}.confidence"
    confidence = _mapping(body.get("confidence", {}), here)
    _keys_known(confidence, here, ["base", "boosts"])
    base = _number(confidence.get("base", DEFAULT_BASE_CONFIDENCE), f"{here}.base")
    if not ZERO <= base <= ONE:
        raise _fail(f"{here}.base", f"must be between 0 and 1, got {fmt(base)}")
    boosts = tuple(
        parse_condition(item, refs, f"{here}.boosts[{i}]")
        for i, item in enumerate(_list(confidence.get("boosts", []), f"{here}.boosts", what="conditions"))
    )
    return Setup(name, Side(side.upper()), when, confirm, window, base, boosts, holds)


def _parse_confirm(data: Any, refs: Mapping[str, str | None], path: str) -> tuple[ConfirmRule, Condition | None]:
    here = f"{path}.confirm"
    if isinstance(data, Mapping):
        if list(data) != [ConfirmRule.CONDITION_HOLDS.value]:
            raise _fail(here, "as a mapping, confirm has exactly one key: condition_holds: <condition>")
        holds = parse_condition(data[ConfirmRule.CONDITION_HOLDS.value], refs, f"{here}.condition_holds")
        return ConfirmRule.CONDITION_HOLDS, holds
    if not isinstance(data, str) or data not in {rule.value for rule in ConfirmRule}:
        raise _fail(here, f"must be one of {', '.join(ConfirmRule)}, got {data!r}")
    return ConfirmRule(data), None


def parse_scan(data: Any, path: str = "scan") -> ScanDefinition:
    """Parse a strategy's ``scan:`` section; raise StrategyError("field '<path>': <problem>")."""
    body = _mapping(data, path)
    _keys_known(body, path, ["indicators", "setups"])
    raw_indicators = body.get("indicators")
    indicators = parse_indicators({} if raw_indicators is None else raw_indicators, f"{path}.indicators")
    refs: dict[str, str | None] = {name: None for name in PRICE_SERIES}
    for spec in indicators:
        refs.update({output: None for output in spec.outputs})
        if spec.outputs != (spec.name,):
            refs[spec.name] = ", ".join(spec.outputs)
    raw_setups = _list(body.get("setups"), f"{path}.setups", what="setups")
    if not raw_setups:
        raise _fail(f"{path}.setups", "needs at least one setup")
    setups = tuple(parse_setup(item, refs, f"{path}.setups[{i}]") for i, item in enumerate(raw_setups))
    names = [setup.name for setup in setups]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise _fail(f"{path}.setups[{i}].name", f"'{name}' is used by an earlier setup")
    return ScanDefinition(indicators=indicators, setups=setups)
