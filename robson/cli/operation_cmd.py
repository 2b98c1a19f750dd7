"""`robson operation status|list|close`: open positions with live P&L, closing by hand."""

from __future__ import annotations

from typing import Annotated

import typer

from robson.cli.app import container
from robson.cli.output import JsonOption, console, emit, table
from robson.cli.views import operation_doc, operation_view_doc
from robson.domain.money import fmt
from robson.domain.operation import OperationStatus, r_multiple
from robson.errors import InvalidInput

app = typer.Typer(help="Open positions: status with P&L, list, close by hand.\n\nExample: robson operation status --json", no_args_is_help=True, rich_markup_mode=None)


@app.command("status")
def status(ctx: typer.Context,
           operation_id: Annotated[str | None, typer.Argument(help="Operation ID or prefix (default: all ACTIVE).")] = None,
           as_json: JsonOption = False) -> None:
    """Show operations with price now, unrealized P&L (amount, %, R) and distance to stop.

    Example: robson operation status --json
    """
    from robson.application.operations import operation_status

    from robson.cli.reconcile_cmd import settle_pending

    c = container(ctx)
    settle_pending(c)
    views = operation_status(operation_id, store=c.store, market=c.market, fee_rate=c.settings.fee_rate)

    def render() -> None:
        rows = []
        for v in views:
            op, m = v.operation, v.mark
            rows.append((
                op.id, op.status.value, f"{op.side.value} {op.symbol}", fmt(op.quantity), fmt(op.entry_price),
                fmt(op.stop), fmt(op.target), fmt(m.price) if m else fmt(op.exit_price),
                f"{fmt(m.unrealized_pnl, 2)} ({fmt(m.unrealized_percent, 2)}%)" if m else f"{fmt(op.realized_pnl, 2)} realized",
                fmt(m.r_multiple, 2) if m and m.r_multiple is not None else fmt(r_multiple(op), 2),
                f"{fmt(m.distance_to_stop_percent, 2)}%" if m else "-",
            ))
        title = "Active operations" if operation_id is None else "Operation"
        console().print(table(f"{title} ({len(views)})", ["id", "status", "position", "quantity", "entry", "stop", "target",
                                                         "price now", "P&L", "R", "to stop"], rows))

    emit(as_json, {"operations": [operation_view_doc(v) for v in views]}, render)


@app.command("list")
def list_(ctx: typer.Context,
          status: Annotated[str | None, typer.Option("--status", help="ACTIVE, CLOSED or CANCELLED (default: all).")] = None,
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
        rows = [(op.id, op.status.value, op.mode, f"{op.side.value} {op.symbol}", fmt(op.quantity), fmt(op.entry_price),
                 fmt(op.stop), fmt(op.exit_price), fmt(op.realized_pnl, 2), op.close_reason.value if op.close_reason else "-",
                 op.opened_at.strftime("%Y-%m-%d %H:%M")) for op in operations]
        console().print(table(f"Operations ({len(operations)})", ["id", "status", "mode", "position", "quantity", "entry",
                                                                 "stop", "exit", "realized", "reason", "opened (UTC)"], rows))

    emit(as_json, {"operations": [operation_doc(op) for op in operations]}, render)


@app.command("close")
def close(ctx: typer.Context, operation_id: Annotated[str, typer.Argument(help="Operation ID or a unique prefix.")],
          as_json: JsonOption = False) -> None:
    """Close an ACTIVE operation at market: cancel its stop, sell (or buy back), record realized P&L.

    Example: robson operation close op-1c2d
    """
    from robson.application.operations import close_operation

    from robson.cli.reconcile_cmd import settle_pending

    c = container(ctx)
    settle_pending(c)
    with c.store.read() as session:
        mode = session.get_operation(session.resolve_operation_id(operation_id)).mode
    venue = c.venue("paper" if mode == "paper" else "binance")
    if venue.exchange is None:
        raise InvalidInput(f"operation {operation_id} is live: {venue.unavailable.replace('started on Binance: ', '')}")
    closed = close_operation(operation_id, store=c.store, exchange=venue.exchange, clock=venue.market)
    emit(as_json, operation_doc(closed), lambda: console().print(
        f"Closed {closed.id} at {fmt(closed.exit_price)} (fee {fmt(closed.exit_fee, 8)}): realized P&L "
        f"{fmt(closed.realized_pnl, 2)} {closed.quote_asset} ({fmt(r_multiple(closed), 2)} R)."))
