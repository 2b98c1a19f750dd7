"""`robson operation status|list|show|modify|close`: open positions with live P&L, their history, by hand."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import typer

from robson.cli.app import container
from robson.cli.output import JsonOption, console, emit, key_values, table
from robson.cli.views import (
    LADDER_COLUMNS,
    audit_event_doc,
    ladder_rows,
    operation_doc,
    operation_view_doc,
    order_doc,
    parts_text,
    unresolved_doc,
)
from robson.domain.money import fmt, parse_decimal
from robson.domain.operation import CloseReason, OperationStatus, r_multiple
from robson.errors import InvalidInput

app = typer.Typer(help="Open positions: status with P&L, list, show the audit trail, modify the stop or target, close by hand.\n\nExample: robson operation status --json", no_args_is_help=True, rich_markup_mode=None)


@app.command("status")
def status(ctx: typer.Context,
           operation_id: Annotated[str | None, typer.Argument(help="Operation ID or prefix (default: all ACTIVE).")] = None,
           as_json: JsonOption = False) -> None:
    """Show operations with price now, unrealized P&L (amount, %, R) and distance to stop.

    Example: robson operation status --json
    """
    from robson.application.operations import operation_status

    from robson.cli.reconcile_cmd import settle_pending, unresolved_now

    c = container(ctx)
    settlements = settle_pending(c)
    views = operation_status(operation_id, store=c.store, market=c.market, fee_rate=c.settings.fee_rate)
    # Executions not settled yet may hold a position no stop protects: shown with the open positions, loudly.
    unresolved = unresolved_now(c, settlements) if operation_id is None else []

    def render() -> None:
        rows = []
        for v in views:
            op, m = v.operation, v.mark
            rows.append((
                op.id, op.status.value, f"{op.side.value} {op.symbol}", held_text(op), fmt(op.entry_price),
                fmt(op.stop), fmt(op.target), fmt(m.price) if m else fmt(op.exit_price),
                f"{fmt(m.unrealized_pnl, 2)} ({fmt(m.unrealized_percent, 2)}%)" if m else f"{fmt(op.realized_pnl, 2)} realized",
                fmt(m.r_multiple, 2) if m and m.r_multiple is not None else fmt(r_multiple(op), 2),
                f"{fmt(m.distance_to_stop_percent, 2)}%" if m else "-",
            ))
        title = "Active operations" if operation_id is None else "Operation"
        console().print(table(f"{title} ({len(views)})", ["id", "status", "position", "quantity", "entry", "stop", "target",
                                                         "price now", "P&L", "R", "to stop"], rows))
        for v in views:
            if v.operation.parts:
                op = v.operation
                console().print(f"{op.id}: parts taken {parts_text(op.parts)}"
                                + (f"; realized so far {fmt(op.parts_pnl, 2)} {op.quote_asset}"
                                   if op.realized_pnl is None else ""))
        if unresolved:
            console().print(table(f"Executing, not settled ({len(unresolved)})",
                                  ["intent", "status", "position", "quantity", "entry", "price now", "exposure",
                                   "protection"],
                                  [(u.intent.id, u.intent.status.value, f"{u.intent.side.value} {u.intent.symbol}",
                                    fmt(u.quantity) if u.entry is not None else f"up to {fmt(u.quantity)}",
                                    fmt(u.entry.average_price) if u.entry is not None else "unknown", fmt(u.price),
                                    f"{fmt(u.exposure, 2)} {u.intent.quote_asset}",
                                    f"stop {u.protecting[0].client_order_id}" if u.protected else "UNPROTECTED")
                                   for u in unresolved]))

    doc = {"operations": [operation_view_doc(v) for v in views]}
    if operation_id is None:
        doc["executing"] = [unresolved_doc(u) for u in unresolved]
    emit(as_json, doc, render)
    if unresolved:
        from robson.application.unresolved import unresolved_error

        raise unresolved_error(unresolved)


@app.command("list")
def list_(ctx: typer.Context,
          status: Annotated[str | None, typer.Option("--status", help="ACTIVE, CLOSED, CANCELLED or DUST (default: all).")] = None,
          as_json: JsonOption = False) -> None:
    """List operations, oldest first.

    Example: robson operation list --status CLOSED
    """
    from robson.application.operations import list_operations

    wanted = None
    if status is not None:
        try:
            wanted = OperationStatus(status.strip().upper())
        except ValueError:
            raise InvalidInput(f"unknown status '{status}' (one of: {', '.join(s.value for s in OperationStatus)})") from None
    from robson.cli.reconcile_cmd import settle_pending

    c = container(ctx)
    settle_pending(c)
    operations = list_operations(wanted, store=c.store)

    def render() -> None:
        rows = [(op.id, op.status.value, op.mode, f"{op.side.value} {op.symbol}", held_text(op), fmt(op.entry_price),
                 fmt(op.stop), fmt(op.exit_price), fmt(op.realized_pnl, 2), op.close_reason.value if op.close_reason else "-",
                 op.opened_at.strftime("%Y-%m-%d %H:%M")) for op in operations]
        console().print(table(f"Operations ({len(operations)})", ["id", "status", "mode", "position", "quantity", "entry",
                                                                 "stop", "exit", "realized", "reason", "opened (UTC)"], rows))

    emit(as_json, {"operations": [operation_doc(op) for op in operations]}, render)


@app.command("close")
def close(ctx: typer.Context, operation_id: Annotated[str, typer.Argument(help="Operation ID or a unique prefix.")],
          part: Annotated[str | None, typer.Option("--part", help="Close only this part at market: a share of what "
                                                   "is held (50%) or a quantity.")] = None,
          as_json: JsonOption = False) -> None:
    """Close an ACTIVE operation at market: cancel its stop, sell (or buy back), record realized P&L.

    Example: robson operation close op-1c2d --part 50%
    """
    from robson.application.operations import close_operation

    from robson.cli.reconcile_cmd import settle_pending

    c = container(ctx)
    settle_pending(c)
    if part is not None:
        _close_part(c, operation_id, part, as_json)
        return
    with c.store.read() as session:
        mode = session.get_operation(session.resolve_operation_id(operation_id)).mode
    venue = c.venue("paper" if mode == "paper" else "binance")
    if venue.exchange is None:
        raise InvalidInput(f"operation {operation_id} is live: {venue.unavailable.replace('started on Binance: ', '')}")
    closed = close_operation(operation_id, store=c.store, exchange=venue.exchange, clock=venue.market,
                             market=venue.market, account=c.account, strategy_for=c.strategy_or_none)
    c.notify(lambda: _closed_by_hand_events(c, closed), ctx)
    # A live stop (or target) that filled before this close closed the position itself: say so.
    how = "" if closed.close_reason is CloseReason.MANUAL else (
        f" by its {closed.close_reason.value} order on Binance, which filled before this close")
    emit(as_json, operation_doc(closed), lambda: console().print(
        f"Closed {closed.id}{how} at {fmt(closed.exit_price)} (fee {fmt(closed.exit_fee, 8)}): realized P&L "
        f"{fmt(closed.realized_pnl, 2)} {closed.quote_asset} ({fmt(r_multiple(closed), 2)} R)."))


def _close_part(c, operation_id: str, part: str, as_json: bool) -> None:
    from robson.application.operations import close_part

    with c.store.read() as session:
        mode = session.get_operation(session.resolve_operation_id(operation_id)).mode
    venue = c.venue("paper" if mode == "paper" else "binance")
    if venue.exchange is None:
        raise InvalidInput(f"operation {operation_id} is live: {venue.unavailable.replace('started on Binance: ', '')}")
    op = close_part(operation_id, part, store=c.store, exchange=venue.exchange, clock=venue.market,
                    market=venue.market, account=c.account, strategy_for=c.strategy_or_none)
    taken = op.parts[-1]
    emit(as_json, operation_doc(op), lambda: console().print(
        f"Closed {fmt(taken.quantity)} of {op.id} at {fmt(taken.price)} (fee {fmt(taken.fee, 8)}); "
        f"{fmt(op.held)} still held under the stop {fmt(op.stop)}; realized so far {fmt(op.parts_pnl, 2)} "
        f"{op.quote_asset}."))


def held_text(op) -> str:
    """The quantity of an operation: what it still holds of what it opened, once parts were taken."""
    if op.parts and op.status is OperationStatus.ACTIVE:
        return f"{fmt(op.held)} of {fmt(op.quantity)}"
    return fmt(op.quantity) + (f" ({len(op.parts) + 1} exits)" if op.parts else "")


def _closed_by_hand_events(c, closed) -> list:
    """Return the close's notification, and a halt if this loss crossed a limit."""
    from robson.application.watching import loss_halts
    from robson.application.notify import event_closed, events_halted

    at = closed.closed_at or closed.updated_at
    by = "hand" if closed.close_reason is CloseReason.MANUAL else "its protective order, before the close by hand"
    return [event_closed(closed, by=by), *events_halted(loss_halts(c.store, c.account, at), at)]


@app.command("show")
def show(ctx: typer.Context, operation_id: Annotated[str, typer.Argument(help="Operation ID or a unique prefix.")],
         as_json: JsonOption = False) -> None:
    """Show one operation with its P&L, orders and full audit trail (planned, validated, orders, fills,
    stop moves, close), with times and prices.

    Example: robson operation show op-1c2d
    """
    from robson.application.intents import intent_history
    from robson.application.operations import operation_status
    from robson.cli.reconcile_cmd import settle_pending

    c = container(ctx)
    settle_pending(c)
    (view,) = operation_status(operation_id, store=c.store, market=c.market, fee_rate=c.settings.fee_rate)
    op, m = view.operation, view.mark
    history = intent_history(op.intent_id, store=c.store)
    doc = operation_view_doc(view) | {"initial_risk": op.initial_risk, "last_checked_at": op.last_checked_at,
                                      "orders": [order_doc(o) for o in history.orders],
                                      "audit": [audit_event_doc(e) for e in history.trail]}

    def render() -> None:
        out = console()
        quote = op.quote_asset
        pairs = [
            ("operation", f"{op.id}  {op.status.value} ({op.mode}, {op.strategy}), intent {op.intent_id}"),
            ("position", f"{op.side.value} {fmt(op.quantity)} {op.symbol}"),
            ("entry", f"{fmt(op.entry_price)} on {op.opened_at:%Y-%m-%d %H:%M} UTC (fee {fmt(op.entry_fee, 8)} {quote})"),
            ("stop", fmt(op.stop) + ("" if op.stop == op.initial_stop else f" (initial {fmt(op.initial_stop)})")),
            ("target", fmt(op.target)),
            ("risk (1 R)", f"{fmt(op.initial_risk, 2)} {quote}"),
        ]
        if m is not None:
            r_now = f" ({fmt(m.r_multiple, 2)} R)" if m.r_multiple is not None else ""
            pairs.append(("now", f"{fmt(m.price)}: unrealized {fmt(m.unrealized_pnl, 2)} {quote}{r_now}, "
                                 f"{fmt(m.distance_to_stop_percent, 2)}% from the stop"))
        if op.closed_at is not None:
            pairs.append(("closed", f"{op.close_reason.value if op.close_reason else '-'} @ {fmt(op.exit_price)} on "
                                    f"{op.closed_at:%Y-%m-%d %H:%M} UTC (fee {fmt(op.exit_fee, 8)} {quote}): realized "
                                    f"{fmt(op.realized_pnl, 2)} {quote} ({fmt(r_multiple(op), 2)} R)"))
        if op.parts:
            pairs.append(("parts taken", parts_text(op.parts)))
            if op.closed_at is None:
                pairs.append(("held", f"{fmt(op.held)} of {fmt(op.quantity)}; realized so far "
                                      f"{fmt(op.parts_pnl, 2)} {quote}"))
        if op.last_checked_at is not None and op.closed_at is None:
            pairs.append(("last check", f"{op.last_checked_at:%Y-%m-%d %H:%M} UTC"))
        out.print(key_values(f"Operation {op.id} — {op.status.value}", pairs))
        out.print(table("Orders", ["client id", "type", "side", "quantity", "fill", "stop", "target", "status"],
                        [(o.client_order_id, o.type.value, o.side.value, fmt(o.quantity), fmt(o.average_price),
                          fmt(o.stop_price), fmt(o.target_price), o.status.value) for o in history.orders]))
        out.print(table("Audit trail", ["at (UTC)", "event", "detail"],
                        [(e.at.strftime("%Y-%m-%d %H:%M:%S"), e.kind.value, e.message) for e in history.trail]))

    emit(as_json, doc, render)


@app.command("modify")
def modify(
    ctx: typer.Context,
    operation_id: Annotated[str, typer.Argument(help="Operation ID or a unique prefix.")],
    stop: Annotated[str | None, typer.Option("--stop", help="New stop price; it only moves toward profit unless --allow-loosen.")] = None,
    target: Annotated[str | None, typer.Option("--target", help="New target price, beyond the current price.")] = None,
    targets: Annotated[str | None, typer.Option(
        "--targets", help="Replace the targets still to come with a ladder (paper): AT:CLOSE[:THEN_STOP] per target, "
                          "comma-separated, e.g. \"1R:50%:breakeven_plus_fees,2R:rest\" or \"2%:50%,4%:rest\"; "
                          "shares are of what is held, R from the entry and initial stop.")] = None,
    allow_loosen: Annotated[bool, typer.Option("--allow-loosen", help="Allow moving the stop away from profit (risk is re-checked).")] = False,
    as_json: JsonOption = False,
) -> None:
    """Move the stop and/or target of an ACTIVE operation, or replace its ladder of targets, and amend its
    protective order.

    The monitor first catches up (paper: the candles since the last check; live: the order on
    Binance). A stop only moves toward profit unless --allow-loosen; a loosened stop must still pass
    the risk-per-trade guard (exit 3). A live stop is replaced on Binance by cancel-and-replace; if
    that fails, the change is kept and the next `robson monitor` tick finishes it (exit 1).

    --targets (paper only) replaces the targets still to come: each AT:CLOSE[:THEN_STOP] as in a
    strategy's `targets:` (AT 1R or 2%, from the entry and the initial stop; CLOSE a share of what
    is held, or rest for the last; THEN_STOP keep, breakeven, breakeven_plus_fees or
    previous_target). The parts already taken stay as they are.

    Example: robson operation modify op-1c2d --stop 35250
    Example: robson operation modify op-1c2d --targets "1R:50%:breakeven_plus_fees,2R:rest"
    """
    from robson.application.operations import modify_operation
    from robson.cli.reconcile_cmd import settle_pending
    from robson.domain.ladder import parse_targets_text

    new_stop = None if stop is None else parse_decimal(stop, "stop")
    new_target = None if target is None else parse_decimal(target, "target")
    ladder = None if targets is None else parse_targets_text(targets)
    if new_stop is None and new_target is None and ladder is None:
        raise InvalidInput("nothing to modify: give --stop P, --target P or --targets SPEC")
    if new_target is not None and ladder is not None:
        raise InvalidInput("give --target P (one target for all of it) or --targets SPEC (a ladder), not both")
    c = container(ctx)
    settle_pending(c)
    with c.store.read() as session:
        mode = session.get_operation(session.resolve_operation_id(operation_id)).mode
    if mode == "paper":
        market, book, exchange, clock = c.market, c.paper, None, c.clock
    else:  # a live stop is replaced on Binance: its keys and live trading must be on
        venue = c.venue("binance")
        if venue.exchange is None:
            raise InvalidInput(f"operation {operation_id} is live: {venue.unavailable.replace('started on Binance: ', '')}")
        market, book, exchange, clock = c.binance_market, None, c.binance, c.binance_market
    result = modify_operation(operation_id, stop=new_stop, target=new_target, allow_loosen=allow_loosen,
                              store=c.store, market=market, book=book, account=c.account, clock=clock,
                              strategy_for=c.strategy_or_none, exchange=exchange, targets=ladder)
    from robson.application.notify import events_from_modification

    c.notify(lambda: events_from_modification(result), ctx)
    before, op = result.before, result.operation
    doc = {
        "operation": operation_doc(op),
        "changed": before != op,
        "old_stop": before.stop, "old_target": before.target,
        "price": result.price, "risk": result.risk, "risk_percent": result.risk_percent.quantize(Decimal("0.0001")),
        "order": order_doc(result.order) if result.order else None,
        "ladder": _ladder_doc(op),
    }

    base = op.symbol.removesuffix(op.quote_asset)

    def render() -> None:
        out = console()
        if before == op:
            out.print(f"Nothing changed: {op.id} keeps stop {fmt(op.stop)} and target {fmt(op.target)}.")
            return
        if op.stop != before.stop:
            out.print(f"Stop of {op.id} moved {fmt(before.stop)} → {fmt(op.stop)} (price {fmt(result.price)}); "
                      f"it now risks {fmt(result.risk, 2)} {op.quote_asset} = {fmt(result.risk_percent, 2)}% of capital "
                      "from entry.")
        if ladder is not None:
            out.print(f"Targets of {op.id} replaced (price {fmt(result.price)}); {fmt(op.held)} {base} held:")
            out.print(table("Targets", LADDER_COLUMNS, ladder_rows(_ladder_doc(op), base)))
        elif op.target != before.target:
            out.print(f"Target of {op.id} moved {fmt(before.target)} → {fmt(op.target)}.")
        if result.order is not None:
            done = "amended" if result.order.exchange == "paper" else "placed on Binance (the old one cancelled)"
            out.print(f"Protective order {result.order.client_order_id} {done}: stop {fmt(result.order.stop_price)} "
                      f"limit {fmt(result.order.price)}" + (f", target {fmt(result.order.target_price)}"
                                                            if result.order.target_price else "") + ".")

    emit(as_json, doc, render)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="operation")


def _ladder_doc(op):
    """The operation's ladder of targets as a document (the ladder module loads only for one that has it)."""
    if op.ladder is None:
        return None
    from robson.domain.ladder import ladder_doc

    return ladder_doc(op.ladder)
