"""`robson plan buy|sell|list|show|cancel`: create intents and manage the approval queue."""

from __future__ import annotations

from typing import Annotated

import typer

from robson.cli.app import container
from robson.cli.output import JsonOption, console, emit, key_values, table
from robson.cli.views import LADDER_COLUMNS, audit_doc, intent_doc, intent_rows, ladder_rows, order_doc
from robson.domain.intent import IntentStatus, TradingIntent
from robson.domain.market import Side
from robson.domain.money import fmt, parse_decimal
from robson.errors import InvalidInput

app = typer.Typer(help="Create a trading intent and manage the queue of intents.\n\nExample: robson plan buy BTCUSDT --strategy all-in", no_args_is_help=True, rich_markup_mode=None)

Strategy = Annotated[str | None, typer.Option("--strategy", "-s", help="Strategy name (default from config: all-in).")]
Capital = Annotated[str | None, typer.Option("--capital", help="Capital the risk percent applies to (default from config).")]
Timeframe = Annotated[str | None, typer.Option("--timeframe", "-t", help="Candle timeframe for the stop (default: the strategy's).")]
Entry = Annotated[str | None, typer.Option("--entry", help="Entry price (default: the market price); with --order limit|stop the price the entry waits for.")]
Order = Annotated[str, typer.Option("--order", help="market (default): execute enters now; limit: waits for the price to come back to --entry (a buy below the market); stop: waits for a breakout to --entry (a buy above the market).")]
Expires = Annotated[str | None, typer.Option("--expires", help="Cancel a waiting limit/stop entry after this: 90m, 4h, 2d, 1w, or a UTC time like 2021-06-22T18:00 (default: it waits until cancelled).")]
Stop = Annotated[str | None, typer.Option("--stop", help="Stop price (default: the strategy's stop method).")]
Target = Annotated[str | None, typer.Option("--target", help="Target price (default: the strategy's R multiple).")]
Note = Annotated[str | None, typer.Option("--note", help="Why you take this trade.")]
Quantity = Annotated[str | None, typer.Argument(help="Quantity in the base asset (default: sized by the risk rule).", show_default=False)]


def _optional(value: str | None, field: str):
    return None if value is None else parse_decimal(value, field)


def _plan(ctx: typer.Context, side: Side, symbol: str, quantity: str | None, strategy: str | None, capital: str | None,
          timeframe: str | None, entry: str | None, stop: str | None, target: str | None, note: str | None,
          order: str, expires: str | None, as_json: bool) -> None:
    from robson.application.plan import PlanRequest, plan
    from robson.domain.intent import parse_entry_order

    # Parse every number before touching the database, so bad input changes nothing.
    request_numbers = {
        "quantity": _optional(quantity, "quantity"),
        "capital": _optional(capital, "capital"),
        "entry": _optional(entry, "entry"),
        "stop": _optional(stop, "stop"),
        "target": _optional(target, "target"),
    }
    entry_order = parse_entry_order(order)
    if not symbol.strip().isalnum():
        raise InvalidInput(f"symbol must be letters and digits like BTCUSDT, got '{symbol}'")
    c = container(ctx)
    chosen = c.strategies.get(strategy or c.settings["default_strategy"])
    intent = plan(
        PlanRequest(side=side, symbol=symbol, strategy=chosen, timeframe=timeframe, note=note, entry_order=entry_order,
                    expires=expires, **request_numbers),
        store=c.store, market=c.market, exchange=c.paper, account=c.account, clock=c.clock,
    )

    def render() -> None:
        out = console()
        out.print(key_values(f"Plan {intent.id} — {intent.status.value}", intent_rows(intent)))
        print_ladder(intent)
        out.print(f"\nNext: robson validate {intent.id}")

    emit(as_json, intent_doc(intent), render)


@app.command("buy")
def buy(ctx: typer.Context, symbol: Annotated[str, typer.Argument(help="Symbol, e.g. BTCUSDT.")], quantity: Quantity = None,
        strategy: Strategy = None, capital: Capital = None, timeframe: Timeframe = None, entry: Entry = None,
        stop: Stop = None, target: Target = None, note: Note = None, order: Order = "market", expires: Expires = None,
        as_json: JsonOption = False) -> None:
    """Plan a long: entry, technical stop, size from the risk rule, target. Status PENDING.

    Example: robson plan buy BTCUSDT --strategy all-in --capital 100 --entry 95432 --stop 93500
    A pullback entry: robson plan buy BTCUSDT --entry 94800 --order limit --expires 1d
    """
    _plan(ctx, Side.BUY, symbol, quantity, strategy, capital, timeframe, entry, stop, target, note, order, expires,
          as_json)


@app.command("sell")
def sell(ctx: typer.Context, symbol: Annotated[str, typer.Argument(help="Symbol, e.g. BTCUSDT.")], quantity: Quantity = None,
         strategy: Strategy = None, capital: Capital = None, timeframe: Timeframe = None, entry: Entry = None,
         stop: Stop = None, target: Target = None, note: Note = None, order: Order = "market",
         expires: Expires = None, as_json: JsonOption = False) -> None:
    """Plan a short (the mirror of buy: stop above entry, resistance instead of support).

    Example: robson plan sell ETHUSDT --timeframe 1h
    """
    _plan(ctx, Side.SELL, symbol, quantity, strategy, capital, timeframe, entry, stop, target, note, order, expires,
          as_json)


def print_ladder(intent: TradingIntent) -> None:
    """Print the intent's ladder of targets, if it has one, with its merge notes under it."""
    ladder = intent.details.get("ladder")
    if not ladder:
        return
    out = console()
    out.print(table(f"Targets (blended R:R {intent.details.get('reward_to_risk') or '-'})", LADDER_COLUMNS,
                    ladder_rows(ladder, intent.details.get("base_asset", ""))))
    for note in ladder["notes"]:
        out.print(f"note: {note}", soft_wrap=True)


def parse_status(value: str | None) -> IntentStatus | None:
    if value is None:
        return None
    try:
        return IntentStatus(value.strip().upper())
    except ValueError:
        raise InvalidInput(f"unknown status '{value}' (one of: {', '.join(s.value for s in IntentStatus)})") from None


@app.command("list")
def list_(ctx: typer.Context,
          status: Annotated[str | None, typer.Option("--status", help="Only intents in this state, e.g. PENDING.")] = None,
          as_json: JsonOption = False) -> None:
    """List intents, oldest first.

    Example: robson plan list --status PENDING
    """
    wanted = parse_status(status)
    from robson.application.intents import list_intents

    intents = list_intents(wanted, store=container(ctx).store)

    def render() -> None:
        rows = [(i.id, i.status.value, i.side.value, i.symbol, fmt(i.quantity), fmt(i.entry), fmt(i.stop),
                 fmt(i.target), i.strategy, i.created_at.strftime("%Y-%m-%d %H:%M")) for i in intents]
        console().print(table(f"Intents ({len(intents)})", ["id", "status", "side", "symbol", "quantity", "entry", "stop",
                                                          "target", "strategy", "created (UTC)"], rows))

    emit(as_json, {"intents": [intent_doc(i) for i in intents]}, render)


@app.command("show")
def show(ctx: typer.Context, intent_id: Annotated[str, typer.Argument(help="Intent ID or a unique prefix.")],
         as_json: JsonOption = False) -> None:
    """Show one intent with its validation report, orders and audit timeline.

    Example: robson plan show pl-7f3a
    """
    from robson.application.intents import intent_history

    history = intent_history(intent_id, store=container(ctx).store)
    intent, orders, trail = history.intent, history.orders, history.trail
    doc = intent_doc(intent) | {"orders": [order_doc(o) for o in orders], "audit": [audit_doc(e) for e in trail]}

    def render() -> None:
        out = console()
        out.print(key_values(f"Intent {intent.id} — {intent.status.value}", intent_rows(intent)))
        print_ladder(intent)
        if intent.validation:
            from robson.cli.trade_cmd import validation_table

            out.print(validation_table(intent.validation))
        if orders:
            out.print(table("Orders", ["client id", "type", "side", "quantity", "price", "stop", "status"],
                            [(o.client_order_id, o.type.value, o.side.value, fmt(o.quantity), fmt(o.average_price),
                              fmt(o.stop_price), o.status.value) for o in orders]))
        out.print(table("Timeline", ["at (UTC)", "event", "detail"],
                        [(e.at.strftime("%Y-%m-%d %H:%M:%S"), e.kind.value, e.message) for e in trail]))

    emit(as_json, doc, render)


@app.command("cancel")
def cancel(ctx: typer.Context, intent_id: Annotated[str, typer.Argument(help="Intent ID or a unique prefix.")],
           as_json: JsonOption = False) -> None:
    """Cancel a PENDING or VALIDATED intent, or a WORKING one's waiting entry on its exchange.

    A waiting entry that filled in part before the cancel is not undone: the part held becomes an
    operation, protected at once. Example: robson plan cancel pl-7f3a
    """
    from robson.application.intents import cancel_intent

    c = container(ctx)
    with c.store.read() as session:
        intent = session.get_intent(session.resolve_intent_id(intent_id))
    if intent.status is IntentStatus.WORKING:
        _cancel_working(c, intent, as_json)
        return
    cancelled, previous = cancel_intent(intent_id, store=c.store, clock=c.clock)
    emit(as_json, intent_doc(cancelled), lambda: console().print(f"Cancelled {cancelled.id} (was {previous.value})."))


def _cancel_working(c, intent, as_json: bool) -> None:
    """Cancel a waiting entry where it rests (the paper book, or Binance with keys)."""
    from robson.application.entries import cancel_working
    from robson.application.execute import execution_exchange
    from robson.domain.market import check_not_before

    venue = c.venue(execution_exchange(intent))
    if venue.exchange is None:
        from robson.errors import ExecutionRefused

        raise ExecutionRefused(f"intent {intent.id} waits on {execution_exchange(intent)}: {venue.unavailable}")
    check_not_before(venue.market.now(), intent.updated_at, f"the last change of {intent.id}")
    check = cancel_working(intent, store=c.store, exchange=venue.exchange, market=venue.market, account=c.account,
                           clock=venue.market, strategy=c.strategy_or_none(intent.strategy))
    doc = intent_doc(check.intent) | {"outcome": check.outcome, "message": check.message,
                                      "operation_id": check.operation_id}
    emit(as_json, doc, lambda: console().print(f"{'Cancelled' if check.outcome == 'cancelled' else 'Entry'} "
                                               f"{check.intent.id} (was WORKING): {check.message}", soft_wrap=True))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="plan")
