"""`robson strategy list|show`: the strategies from YAML."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import typer

from robson.cli.app import container
from robson.cli.output import JsonOption, console, emit, key_values, table
from robson.domain.money import fmt

if TYPE_CHECKING:  # strategies are parsed by the commands that load them; --help stays fast
    from robson.domain.conditions import IndicatorSpec, ScanDefinition, Setup
    from robson.domain.strategy import Strategy

app = typer.Typer(help="Strategies: bundled ones and your own YAML files.\n\nExample: robson strategy show all-in", no_args_is_help=True, rich_markup_mode=None)


def strategy_doc(s: Strategy) -> dict[str, Any]:
    stop = {k: getattr(s.stop, k) for k in s.stop.__dataclass_fields__}
    auto_entry = None if s.auto_entry is None else dataclasses.asdict(s.auto_entry)
    time_exit = None
    if s.time_exit is not None:
        max_age = s.time_exit.max_age
        time_exit = {"candles": s.time_exit.candles, "max_age": None if max_age is None else duration_text(max_age)}
    return {
        "name": s.name, "title": s.title, "description": s.description, "entry": s.entry, "timeframe": s.timeframe,
        "risk_percent": s.risk_percent, "max_risk_percent": s.max_risk_percent, "stop": stop,
        "target_r_multiple": s.target_r_multiple, "targets": [step.as_data() for step in s.targets] or None,
        "limits": s.limit_overrides, "auto_entry": auto_entry,
        "scan": None if s.scan is None else scan_doc(s.scan), "trailing": s.trailing, "time_exit": time_exit,
        "source": s.source,
    }


def scan_doc(scan: ScanDefinition) -> dict[str, Any]:
    """Return a scan section as JSON-ready data with every condition in readable form."""
    from robson.domain.conditions import ConfirmRule

    return {
        "candles_needed": scan.candles_needed,
        "indicators": [
            {"name": spec.name, "kind": spec.kind, "params": dict(spec.params), "source": spec.source,
             "outputs": list(spec.outputs)}
            for spec in scan.indicators
        ],
        "setups": [
            {
                "name": setup.name, "side": setup.side.value, "when": setup.when.describe(),
                "confirm": {
                    "rule": setup.confirm.value,
                    "condition": setup.confirm_condition.describe()
                    if setup.confirm is ConfirmRule.CONDITION_HOLDS else None,
                    "description": confirm_text(setup),
                },
                "window": setup.window,
                "confidence": {"base": setup.base_confidence, "boosts": [b.describe() for b in setup.boosts],
                               "description": confidence_text(setup)},
            }
            for setup in scan.setups
        ],
    }


def indicator_text(spec: IndicatorSpec) -> str:
    params = ", ".join(f"{key}={fmt(value) if isinstance(value, Decimal) else value}" for key, value in spec.params.items())
    inputs = {"atr": "high, low, close", "volume_sma": "volume"}.get(spec.kind, spec.source or "close")
    parts = f" → {', '.join(spec.outputs)}" if spec.outputs != (spec.name,) else ""
    return f"{spec.kind}({params}) of {inputs}{parts}"


def confirm_text(setup: Setup) -> str:
    from robson.domain.conditions import ConfirmRule
    from robson.domain.market import Side

    window = f"{setup.window} closed candle{'s' if setup.window != 1 else ''}"
    if setup.confirm is ConfirmRule.CONDITION_HOLDS:
        return f"{setup.confirm_condition.describe()} still holds on the next close (else invalidated)"
    if setup.side is Side.BUY:
        return f"a close above the signal candle's high within {window}; a close below its low invalidates"
    return f"a close below the signal candle's low within {window}; a close above its high invalidates"


def confidence_text(setup: Setup) -> str:
    base = fmt(setup.base_confidence)
    if not setup.boosts:
        return base
    return f"{base} + {fmt(1 - setup.base_confidence)} × boosts held / {len(setup.boosts)}"


def auto_entry_text(s: Strategy) -> str:
    if s.auto_entry is None:
        return "off: a person decides every entry"
    a = s.auto_entry
    return (f"confidence ≥ {fmt(a.min_confidence)}, at most {a.max_entries_per_day} a day, "
            f"{a.cooldown_minutes} min cooldown; validated, never LIVE on its own")


def time_exit_text(s: Strategy) -> str:
    if s.time_exit is None:
        return "-"
    parts = []
    if s.time_exit.candles is not None:
        parts.append(f"after {s.time_exit.candles} candles of {s.timeframe}")
    if s.time_exit.max_age is not None:
        parts.append(f"at age {duration_text(s.time_exit.max_age)}")
    return " or ".join(parts) + (", whichever comes first" if len(parts) > 1 else "")


def duration_text(age: timedelta) -> str:
    """Return a duration the way strategies write it: 90m, 12h, 3d or 2w."""
    minutes = int(age.total_seconds() // 60)
    for unit, size in (("w", 7 * 24 * 60), ("d", 24 * 60), ("h", 60)):
        if minutes % size == 0:
            return f"{minutes // size}{unit}"
    return f"{minutes}m"


def target_summary(s: Strategy) -> str:
    """The target in a few words: 2R, 4 % after fees, or a ladder such as 1R 50% → 2R 25% → 3R rest."""
    if s.targets:
        return " → ".join(f"{step.at_text} {step.close_text}" for step in s.targets)
    return s.target.describe()


def ladder_text(s: Strategy) -> str:
    """Each rung of the ladder with the stop after it, for strategy show."""
    return "; ".join(f"{step.at_text} closes {step.close_text}"
                     + ("" if step.then_stop.value == "keep" else f", then stop → {step.then_stop.describe()}")
                     for step in s.targets)


def stop_summary(s: Strategy) -> str:
    st = s.stop
    return {
        "technical": f"technical (support #{st.level}, −{fmt(st.buffer_percent)}%)",
        "moving_average": f"below MA{st.ma_period} (−{fmt(st.buffer_percent)}%)",
        "atr": f"{fmt(st.atr_multiplier)} × ATR({st.atr_period})",
        "fixed_percent": f"{fmt(st.percent)}% from entry",
    }.get(st.kind, st.kind)


@app.command("list")
def list_(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List strategies with their risk, timeframe, stop and target.

    Example: robson strategy list
    """
    strategies = container(ctx).strategies.all()

    def render() -> None:
        rows = [(s.name, s.title, s.entry, s.timeframe, f"{fmt(s.risk_percent)}%", stop_summary(s),
                 target_summary(s)) for s in strategies]
        console().print(table("Strategies", ["name", "title", "entry", "timeframe", "risk", "stop", "target"], rows))

    emit(as_json, {"strategies": [strategy_doc(s) for s in strategies]}, render)


@app.command("show")
def show(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Strategy name, e.g. all-in.")],
         as_json: JsonOption = False) -> None:
    """Show one strategy in full.

    Example: robson strategy show all-in
    """
    s = container(ctx).strategies.get(name)

    def render() -> None:
        console().print(key_values(f"{s.title} ({s.name})", [
            ("description", s.description), ("entry", s.entry), ("timeframe", s.timeframe),
            ("risk per trade", f"{fmt(s.risk_percent)}% (max {fmt(s.max_risk_percent)}%)"),
            ("stop", stop_summary(s)),
            ("targets", ladder_text(s)) if s.targets else ("target", target_summary(s)),
            ("limit overrides", ", ".join(f"{k}={v}" for k, v in s.limit_overrides.items()) or "-"),
            ("trailing", "hand span (break-even after 1 span, then entry ± (n − 1) spans)" if s.trails else "off"),
            ("time exit", time_exit_text(s)),
            ("auto entry", auto_entry_text(s)),
            ("scan", "-" if s.scan is None else
             f"{len(s.scan.setups)} setup(s) over the last {s.scan.candles_needed} closed {s.timeframe} candles"),
            ("file", s.source),
        ]))
        if s.scan is None:
            return
        console().print(key_values("indicators", [(spec.name, indicator_text(spec)) for spec in s.scan.indicators]))
        for setup in s.scan.setups:
            console().print(key_values(f"setup {setup.name} ({setup.side.value.lower()})", [
                ("when", setup.when.describe()),
                ("confirm", confirm_text(setup)),
                ("window", f"{setup.window} candle{'s' if setup.window != 1 else ''}, then it expires"),
                ("confidence", confidence_text(setup)),
                *((f"boost {i}", boost.describe()) for i, boost in enumerate(setup.boosts, 1)),
            ]))

    emit(as_json, strategy_doc(s), render)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="strategy")
