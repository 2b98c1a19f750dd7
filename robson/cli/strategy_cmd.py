"""`robson strategy list|show`: the strategies from YAML."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from robson.cli.app import container
from robson.cli.output import JsonOption, console, emit, key_values, table
from robson.domain.money import fmt
from robson.domain.strategy import Strategy

app = typer.Typer(help="Strategies: bundled ones and your own YAML files.\n\nExample: robson strategy show all-in", no_args_is_help=True, rich_markup_mode=None)


def strategy_doc(s: Strategy) -> dict[str, Any]:
    stop = {k: getattr(s.stop, k) for k in s.stop.__dataclass_fields__}
    return {
        "name": s.name, "title": s.title, "description": s.description, "entry": s.entry, "timeframe": s.timeframe,
        "risk_percent": s.risk_percent, "max_risk_percent": s.max_risk_percent, "stop": stop,
        "target_r_multiple": s.target_r_multiple, "limits": s.limit_overrides, "auto_entry": s.auto_entry,
        "scan": s.scan, "source": s.source,
    }


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
                 f"{fmt(s.target_r_multiple)}R" if s.target_r_multiple else "-") for s in strategies]
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
            ("target", f"{fmt(s.target_r_multiple)}R" if s.target_r_multiple else "-"),
            ("limit overrides", ", ".join(f"{k}={v}" for k, v in s.limit_overrides.items()) or "-"),
            ("file", s.source),
        ]))

    emit(as_json, strategy_doc(s), render)
