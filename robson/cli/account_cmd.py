"""`robson account`: balances, equity at current prices, open risk and exposure, realized P&L against the loss limits."""

from __future__ import annotations

from typing import Any

import typer

from robson.cli.app import container
from robson.cli.output import JsonOption, console, emit, key_values, table
from robson.domain.money import fmt


def _pct(value) -> str:
    return f"{fmt(value, 2)}%"


def _limit_doc(limit) -> dict[str, Any]:
    return {"realized_pnl": limit.realized_pnl, "loss": limit.loss, "loss_percent": fmt(limit.loss_percent, 4),
            "limit_percent": limit.limit_percent, "limit_amount": limit.limit_amount, "room": limit.room,
            "reached": limit.reached}


def account_document(view) -> dict[str, Any]:
    """The account as one JSON document: money and quantities as exact strings."""
    e = view.equity
    return {
        "venue": view.venue, "at": view.at, "quote_asset": e.quote_asset, "equity": e.total,
        "unpriced_assets": e.unpriced,
        "balances": [{"asset": h.asset, "free": h.free, "locked": h.locked, "total": h.total, "price": h.price,
                      "value": h.value} for h in e.holdings],
        "positions": [{"operation": p.operation.id, "symbol": p.operation.symbol, "side": p.operation.side,
                       "quantity": p.operation.quantity, "entry": p.operation.entry_price, "stop": p.operation.stop,
                       "price": p.price, "value": p.value, "risk_to_stop": p.risk_to_stop,
                       "risk_percent_of_equity": fmt(p.risk_percent, 4), "pnl_at_stop": p.pnl_at_stop}
                      for p in view.positions],
        "unpriced_positions": view.unpriced_positions,
        "risk_to_stops": view.risk_to_stops, "risk_to_stops_percent": fmt(view.risk_to_stops_percent, 4),
        "exposure": view.exposure, "exposure_percent": fmt(view.exposure_percent, 4),
        "exposure_at_entry": view.exposure_at_entry,
        "exposure_at_entry_percent_of_capital": fmt(view.exposure_at_entry_percent, 4),
        "max_exposure_percent": view.max_exposure_percent,
        "capital": view.capital, "capital_source": view.capital_source,
        "realized": {"today": _limit_doc(view.today), "month": _limit_doc(view.month)},
    }


def _limit_row(label: str, limit, quote: str, halted: str) -> tuple[str, str]:
    state = f"REACHED: {halted}" if limit.reached else f"{fmt(limit.room, 2)} {quote} left"
    return label, (f"{fmt(limit.realized_pnl, 2)} {quote}; loss {_pct(limit.loss_percent)} of max "
                   f"{_pct(limit.limit_percent)} ({fmt(limit.limit_amount, 2)} {quote}): {state}")


def account_command(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Balances, equity at current prices, open positions' risk to stop, exposure, and realized P&L against the loss limits.

    The paper wallet by default; the Binance account with `market: binance` and API keys. Equity values
    every asset at the last price of ASSET + account.quote_asset (USDT by default); an asset with no such
    price is listed and left out. Risk to stop is what equity loses from here if each stop fills now,
    exit fee included. Today and this month are UTC, at the market time (--as-of replays one).

    Example: robson account --json
    """
    from robson.application.account import account_view

    c = container(ctx)
    s = c.settings
    view = account_view(exchange=c.wallet, market=c.market, store=c.store, clock=c.clock,
                        quote_asset=s["account.quote_asset"], capital=c.capital,
                        capital_source="equity" if s["capital"] == "equity" else "config",
                        limits=s.risk_limits(), fee_rate=s.fee_rate)

    def render() -> None:
        out, e, quote = console(), view.equity, view.equity.quote_asset
        out.print(table(f"{view.venue.capitalize()} account at {view.at:%Y-%m-%d %H:%M} UTC",
                        ["asset", "free", "locked", "total", f"price ({quote})", f"value ({quote})"],
                        [(h.asset, fmt(h.free), fmt(h.locked), fmt(h.total), fmt(h.price),
                          fmt(h.value, 2) if h.value is not None else "no price") for h in e.holdings]))
        if view.positions:
            out.print(table("Open positions", ["operation", "position", "entry", "stop", "price", "value",
                                               "risk to stop", "P&L at stop"],
                            [(p.operation.id, f"{p.operation.side.value} {fmt(p.operation.quantity)} {p.operation.symbol}",
                              fmt(p.operation.entry_price), fmt(p.operation.stop), fmt(p.price), fmt(p.value, 2),
                              f"{fmt(p.risk_to_stop, 2)} ({_pct(p.risk_percent)})", fmt(p.pnl_at_stop, 2))
                             for p in view.positions]))
        capital = "equity (capital: equity)" if view.capital_source == "equity" else "the capital setting"
        rows = [
            ("equity", f"{fmt(e.total, 2)} {quote}" + (f" (no price for {', '.join(e.unpriced)}: not counted)"
                                                       if e.unpriced else "")),
            ("open positions", f"{len(view.positions) + len(view.unpriced_positions)}"
                               + (f" ({', '.join(view.unpriced_positions)} without a price)" if view.unpriced_positions else "")),
            ("risk to stops", f"{fmt(view.risk_to_stops, 2)} {quote} = {_pct(view.risk_to_stops_percent)} of equity"),
            ("exposure", f"{fmt(view.exposure, 2)} {quote} = {_pct(view.exposure_percent)} of equity at current prices; "
                         f"at entry {_pct(view.exposure_at_entry_percent)} of capital (max {_pct(view.max_exposure_percent)})"),
            ("capital", f"{fmt(view.capital, 2)} {quote} ({capital}): the loss limits below are of it"),
            _limit_row("realized today", view.today, quote, "no new entries today"),
            _limit_row("realized this month", view.month, quote, "trading HALTED"),
        ]
        out.print(key_values(None, rows))

    emit(as_json, account_document(view), render)


def register(app: typer.Typer) -> None:
    app.command("account")(account_command)
