"""`robson signals list|show`: what the scans found, why, and what became of it."""

from __future__ import annotations

from typing import Annotated

import typer

from robson.cli.app import container
from robson.cli.output import JsonOption, console, emit, key_values, table
from robson.cli.views import candle_time, intent_doc, signal_doc
from robson.domain.money import fmt
from robson.errors import InvalidInput, NotFound

app = typer.Typer(help="Signals recorded by `robson scan`: list them, show one with its reasons.", no_args_is_help=True)


def parse_signal_status(value: str | None):
    from robson.domain.signals import SignalStatus

    if value is None:
        return None
    try:
        return SignalStatus(value.strip().upper())
    except ValueError:
        raise InvalidInput(f"unknown status '{value}' (one of: {', '.join(s.value for s in SignalStatus)})") from None


@app.command("list")
def list_(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option("--status", help="Only signals in this state: DETECTED, CONFIRMED, INVALIDATED, EXPIRED.", show_default=False)] = None,
    strategy: Annotated[str | None, typer.Option("--strategy", help="Only this strategy's signals.", show_default=False)] = None,
    symbol: Annotated[str | None, typer.Option("--symbol", help="Only signals on this symbol.", show_default=False)] = None,
    as_json: JsonOption = False,
) -> None:
    """List signals by candle time, oldest first.

    Example: robson signals list --status CONFIRMED --strategy rescue-forces
    """
    wanted = parse_signal_status(status)
    c = container(ctx)
    name, pair = (strategy.strip().lower() if strategy else None), (symbol.strip().upper() if symbol else None)
    with c.store.read() as session:
        signals = session.list_signals(wanted, name, pair)
    if not signals:  # an unknown name is an error (exit 2); a known one just found nothing
        if name is not None:
            c.strategies.get(name)
        if pair is not None:
            c.market.symbol_info(pair)

    def render() -> None:
        rows = [(s.id, s.status.value, s.strategy, s.pattern, f"{s.side.value} {s.symbol}", s.timeframe, candle_time(s),
                 fmt(s.confidence), s.intent_id) for s in signals]
        console().print(table(f"Signals ({len(signals)})", ["id", "status", "strategy", "setup", "signal", "tf",
                                                            "candle (UTC)", "confidence", "intent"], rows))

    emit(as_json, {"signals": [signal_doc(s) for s in signals]}, render)


@app.command("show")
def show(ctx: typer.Context, signal_id: Annotated[str, typer.Argument(help="Signal ID or a unique prefix.")],
         as_json: JsonOption = False) -> None:
    """Show one signal: why it was detected, the indicator values at its candle, how it was decided, its intent.

    Example: robson signals show sg-7f3a
    """
    with container(ctx).store.read() as session:
        signal = session.get_signal(session.resolve_signal_id(signal_id))
        try:
            intent = session.get_intent(signal.intent_id) if signal.intent_id else None
        except NotFound:
            intent = None
    doc = signal_doc(signal) | {"intent": intent_doc(intent) if intent else None}

    def render() -> None:
        out = console()
        out.print(key_values(f"Signal {signal.id} — {signal.status.value}", [
            ("strategy", signal.strategy),
            ("setup", signal.pattern),
            ("signal", f"{signal.side.value} {signal.symbol} on {signal.timeframe}"),
            ("candle", f"{candle_time(signal)} UTC (open)"),
            ("confidence", fmt(signal.confidence)),
            ("detected because", signal.reason),
            ("decided", signal.resolution or "not yet: waiting for the next closed candle"),
            ("detected at", signal.detected_at.strftime("%Y-%m-%d %H:%M UTC")),
            ("updated at", signal.updated_at.strftime("%Y-%m-%d %H:%M UTC")),
            ("intent", f"{intent.id} ({intent.status.value}, source {intent.source.value})" if intent
             else signal.intent_id),
        ]))
        out.print(table("Values at the signal candle", ["name", "value"],
                        [(name, "n/a (warm-up)" if value is None else fmt(value))
                         for name, value in signal.values.items()]))

    emit(as_json, doc, render)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="signals")
