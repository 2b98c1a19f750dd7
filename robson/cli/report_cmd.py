"""`robson report`: per-strategy performance of closed operations, with a per-day or per-month breakdown."""

from __future__ import annotations

from typing import Annotated

import typer

from robson.cli.app import container
from robson.cli.output import JsonOption, console, emit, table, time_option
from robson.cli.views import operation_doc, performance_doc
from robson.domain.money import fmt
from robson.domain.operation import r_multiple


def _row(p) -> tuple:
    quote = p.best.quote_asset if p.best else ""
    if p.profit_factor_infinite:
        factor = "∞"
    else:
        factor = fmt(p.profit_factor, 2) if p.profit_factor is not None else "-"
    drawdown = fmt(p.max_drawdown, 2) + (f" ({fmt(p.max_drawdown_percent, 2)}%)" if p.max_drawdown_percent is not None else "")
    return (
        p.strategy, p.trades, f"{p.wins}/{p.losses}/{p.break_even}",
        f"{fmt(p.win_rate, 1)}%" if p.win_rate is not None else "-",
        fmt(p.average_r, 2) if p.average_r is not None else "-",
        fmt(p.expectancy, 2) if p.expectancy is not None else "-",
        factor, f"{fmt(p.total_pnl, 2)} {quote}".strip(), drawdown,
        f"{p.best.id} {fmt(p.best.realized_pnl, 2)}" if p.best else "-",
        f"{p.worst.id} {fmt(p.worst.realized_pnl, 2)}" if p.worst else "-",
    )


def report_command(
    ctx: typer.Context,
    strategy: Annotated[str | None, typer.Option("--strategy", help="Only this strategy (default: each, and all together).")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only operations closed at or after this UTC date/time, e.g. 2021-06-01.")] = None,
    period: Annotated[str, typer.Option("--period", help="Breakdown per day or per month (UTC, by closing time).")] = "month",
    as_json: JsonOption = False,
) -> None:
    """Performance of closed operations per strategy: trades, win rate, average R, expectancy, profit factor,
    total P&L, max drawdown, best and worst trade, and a per-day or per-month breakdown.

    Realized P&L is after both fees. R is that P&L over the risk the position really took: the filled
    quantity × |entry fill − initial stop|, before fees (not the plan's numbers: a fill away from the
    planned entry changes 1 R). Drawdown is of the configured capital (with `capital: equity`, of the equity now).

    Example: robson report --since 2021-06-01 --period day
    """
    from robson.application.report import strategy_report

    c = container(ctx)
    name = strategy.strip().lower() if strategy else None
    start = time_option(since, "--since")
    report = strategy_report(store=c.store, capital=c.capital, strategy=name, since=start,
                             period=period.strip().lower())
    if name is not None and report.overall.trades == 0:
        c.strategies.get(name)  # an unknown name is an error (exit 2); a known one just has no trades
    doc = {
        "strategy": name, "since": start, "period": report.period, "capital": report.capital,
        "overall": performance_doc(report.overall),
        "strategies": [performance_doc(p) for p in report.strategies],
        "trades": [operation_doc(op) for op in report.trades],  # each with its partial_exits
    }

    def render() -> None:
        out = console()
        scope = (f" of {name}" if name else "") + (f" closed since {start:%Y-%m-%d %H:%M} UTC" if start else "")
        if report.overall.trades == 0:
            out.print(f"No closed operations{scope}.")
            return
        rows = [_row(p) for p in report.strategies]
        if name is None and len(report.strategies) > 1:
            rows.append(_row(report.overall))
        out.print(table(f"Performance{scope}", ["strategy", "trades", "W/L/BE", "win rate", "avg R", "expectancy",
                                                "profit factor", "P&L", "max drawdown", "best", "worst"], rows))
        out.print(table(f"By {report.period} (UTC, by closing time)", ["period", "trades", "wins", "losses", "P&L", "R"],
                        [(x.period, x.trades, x.wins, x.losses, fmt(x.pnl, 2), fmt(x.r, 2))
                         for x in report.overall.periods]))
        parts = [(op.id if p.number == 1 else "", op.strategy if p.number == 1 else "", str(p.number),
                  f"target {p.target}" if p.target else p.reason.value, p.at.strftime("%Y-%m-%d %H:%M"),
                  fmt(p.quantity), fmt(p.price), fmt(p.fee, 8),
                  f"{fmt(op.realized_pnl, 2)} ({fmt(r_multiple(op), 2)} R)" if p.number == 1 else "")
                 for op in report.trades for p in op.parts]
        if parts:  # one trade each (its P&L and R above add up its parts); here the parts it took before its exit
            out.print(table("Partial exits (each trade counted once, P&L and R over all its exits)",
                            ["operation", "strategy", "part", "reason", "at (UTC)", "quantity", "price", "fee",
                             "trade P&L"], parts))

    emit(as_json, doc, render)


def register(app: typer.Typer) -> None:
    app.command("report")(report_command)
