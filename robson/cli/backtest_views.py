"""How a backtest is shown: the JSON document, the tables, the terminal chart, the export and the picture."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from robson.cli.output import console, key_values, table, to_jsonable
from robson.domain.backtest_stats import BacktestStats, Breakdown, EquityPoint
from robson.domain.money import fmt
from robson.domain.operation import r_multiple
from robson.errors import InvalidInput

EXPORT_COLUMNS = ("entry_time", "exit_time", "entry_price", "exit_price", "quantity", "fees", "pnl", "r",
                  "exit_reason", "symbol", "side", "setup", "signal_time", "exit_fill_time", "entry_fee", "exit_fee",
                  "initial_stop", "target", "stop_moves", "ambiguous")
SPARK = "▁▂▃▄▅▆▇█"
CHART_WIDTH = 64


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


def trade_row(trade) -> dict[str, Any]:
    """One trade with every number at full precision, as text."""
    op = trade.operation
    r = r_multiple(op)
    return {
        "entry_time": iso(op.opened_at),
        "exit_time": iso(trade.exit_candle_time),
        "entry_price": fmt(op.entry_price),
        "exit_price": fmt(op.exit_price),
        "quantity": fmt(op.quantity),
        "fees": fmt(op.entry_fee + op.exit_fee),
        "pnl": fmt(op.realized_pnl),
        "r": fmt(r) if r is not None else "",
        "exit_reason": op.close_reason.value if op.close_reason else "",
        "symbol": op.symbol,
        "side": op.side.value,
        "setup": trade.setup,
        "signal_time": iso(trade.signal_time),
        "exit_fill_time": iso(op.closed_at),
        "entry_fee": fmt(op.entry_fee),
        "exit_fee": fmt(op.exit_fee),
        "initial_stop": fmt(op.initial_stop),
        "target": fmt(op.target) if op.target is not None else "",
        "stop_moves": str(trade.stop_moves),
        "ambiguous": "true" if trade.ambiguous else "false",
    }


def _duration(delta: timedelta | None) -> str | None:
    if delta is None:
        return None
    minutes = int(delta.total_seconds() // 60)
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    parts = [f"{days}d"] * bool(days) + [f"{hours}h"] * bool(hours) + [f"{minutes}m"] * bool(minutes or not (days or hours))
    return " ".join(parts)


def _ratio(value: Decimal | None, places: int = 4) -> str | None:
    return fmt(value, places) if value is not None else None


def _breakdown_doc(rows: Sequence[Breakdown]) -> list[dict[str, Any]]:
    return [{"key": b.key, "trades": b.trades, "wins": b.wins, "losses": b.losses, "pnl": b.pnl,
             "win_rate_percent": _ratio(b.win_rate), "average_r": _ratio(b.average_r), "fees": b.fees} for b in rows]


def settings_doc(result) -> dict[str, Any]:
    request = result.request
    strategy = request.strategy
    return {
        "strategy": strategy.name,
        "entry": strategy.entry,
        "every_signal_entered": strategy.auto_entry is None,
        "symbols": list(result.candles),
        "market": result.market,
        "timeframe": result.timeframe,
        "exit_timeframes": result.walk_timeframes,
        "from": iso(result.start),
        "to": iso(result.end),
        "capital": request.capital,
        "sizing": {"stake": request.stake} if request.stake is not None else {"risk_percent": strategy.risk_percent},
        "fee_percent": request.fee_rate * 100,
        "slippage_percent": request.slippage_rate * 100,
        "max_open": request.max_open,
        "guards": "all" if request.guards else "off: daily loss, monthly drawdown, cooldown, exposure",
    }


def summary_doc(result, stats: BacktestStats) -> dict[str, Any]:
    p, dd = stats.performance, stats.drawdown
    return {
        "trades": p.trades, "wins": p.wins, "losses": p.losses, "break_even": p.break_even,
        "win_rate_percent": _ratio(p.win_rate), "average_r": _ratio(p.average_r),
        "expectancy": _ratio(p.expectancy, 8), "profit_factor": _ratio(p.profit_factor),
        "profit_factor_infinite": p.profit_factor_infinite,
        "total_pnl": p.total_pnl, "total_return_percent": _ratio(stats.total_return_percent),
        "final_equity": stats.final_equity, "cagr_percent": _ratio(stats.cagr_percent),
        "max_drawdown": {"amount": dd.amount, "percent": _ratio(dd.percent), "start": iso(dd.start),
                         "end": iso(dd.end), "duration": _duration(dd.duration), "recovered": iso(dd.recovered)},
        "sharpe": _ratio(stats.sharpe), "sortino": _ratio(stats.sortino), "calmar": _ratio(stats.calmar),
        "time_in_market_percent": _ratio(stats.time_in_market_percent),
        "average_duration": _duration(stats.average_duration), "longest_duration": _duration(stats.longest_duration),
        "best": trade_ref(p.best), "worst": trade_ref(p.worst),
        "longest_losing_streak": stats.longest_losing_streak, "fees": p.total_fees,
        "signals": result.signals, "detections": result.detections,
        "refused": sum(1 for _ in result.refusals), "refused_by_guard": dict(sorted(result.refused_by_guard.items())),
        "same_candle_stop_and_target": result.ambiguous,
    }


def trade_ref(op) -> dict[str, Any] | None:
    if op is None:
        return None
    return {"symbol": op.symbol, "entry_time": iso(op.opened_at), "pnl": op.realized_pnl}


def document(result, stats: BacktestStats, *, saved_id: str | None = None) -> dict[str, Any]:
    """The whole backtest as one JSON document (money as text)."""
    return {
        "id": saved_id,
        "settings": settings_doc(result),
        "summary": summary_doc(result, stats),
        "by_exit_reason": _breakdown_doc(stats.by_reason),
        "by_symbol": _breakdown_doc(stats.by_symbol),
        "by_month": _breakdown_doc(stats.by_month),
        "equity": [{"at": iso(p.at), "equity": p.equity, "drawdown": p.drawdown} for p in stats.equity],
        "trades": [trade_row(t) for t in result.trades],
    }


# --- the terminal ---------------------------------------------------------------------------------


def sparkline(values: Sequence[Decimal], width: int = CHART_WIDTH) -> str:
    """A one-line chart of values (resampled to width by taking the last value of each slice)."""
    if not values:
        return ""
    if len(values) > width:
        values = [values[min(len(values) - 1, (i + 1) * len(values) // width - 1)] for i in range(width)]
    low, high = min(values), max(values)
    spread = high - low
    if spread == 0:
        return SPARK[0] * len(values)
    return "".join(SPARK[int((v - low) / spread * (len(SPARK) - 1))] for v in values)


def chart_lines(points: Sequence[EquityPoint], capital: Decimal, quote: str) -> list[str]:
    equity = [capital] + [p.equity for p in points]
    drawdown = [Decimal(0)] + [-p.drawdown for p in points]
    return [
        f"equity   {sparkline(equity)}  {fmt(min(equity), 2)} … {fmt(max(equity), 2)} {quote}",
        f"drawdown {sparkline(drawdown)}  deepest {fmt(-min(drawdown), 2)} {quote}",
    ]


def render(result, stats: BacktestStats, *, trades_shown: int, saved_id: str | None = None) -> None:
    out = console()
    request, p, dd = result.request, stats.performance, stats.drawdown
    quote = next(iter(result.trades)).operation.quote_asset if result.trades else "USDT"
    symbols = ", ".join(result.candles)
    exits = ", ".join(sorted(set(result.walk_timeframes.values())))
    out.print(f"Backtest {request.strategy.name} on {symbols} {result.timeframe} (exits on {exits} candles), "
              f"{result.start:%Y-%m-%d %H:%M} → {result.end:%Y-%m-%d %H:%M} UTC, {result.market} market")
    sizing = f"stake {fmt(request.stake)} {quote} per trade" if request.stake is not None else \
        f"{fmt(request.strategy.risk_percent)} % risk per trade"
    out.print(f"capital {fmt(request.capital)} {quote}, {sizing}, fee {fmt(request.fee_rate * 100)} % per side, "
              f"slippage {fmt(request.slippage_rate * 100)} %, max {request.max_open or request.limits.max_open_positions} open")
    if request.strategy.auto_entry is None:
        out.print(f"{request.strategy.name} is a manual strategy: every confirmed signal is entered here, "
                  "as if you had planned each one")
    if not request.guards:
        out.print("--no-guards: daily loss, monthly drawdown, cooldown and exposure guards are OFF")
    if p.trades == 0:
        out.print(f"No trades: {result.signals} confirmed signals, {len(result.refusals)} refused.")
    out.print(key_values("Summary", summary_pairs(result, stats, quote)))
    out.print(table("By exit reason", ["reason", "trades", "wins", "losses", "win rate", "avg R", "P&L"],
                    _breakdown_rows(stats.by_reason)))
    if len(stats.by_symbol) > 1:
        out.print(table("By symbol", ["symbol", "trades", "wins", "losses", "win rate", "avg R", "P&L"],
                        _breakdown_rows(stats.by_symbol)))
    out.print(table("By month (UTC, by closing time)", ["month", "trades", "wins", "losses", "win rate", "avg R", "P&L"],
                    _breakdown_rows(stats.by_month)))
    if stats.equity:
        out.print("Equity and drawdown (realized, one point per close)")
        for line in chart_lines(stats.equity, stats.capital, quote):
            out.print(line)
    shown = list(result.trades) if trades_shown <= 0 else list(result.trades)[-trades_shown:]
    if shown:
        title = "Trades" if len(shown) == len(result.trades) else \
            f"Trades (the last {len(shown)} of {len(result.trades)}; --trades 0 shows all, --export FILE keeps them)"
        out.print(table(title, ["entry (UTC)", "entry fill", "exit candle", "exit fill", "quantity", "fees", "P&L", "R",
                                "reason"], [_trade_cells(t) for t in shown]))
    if saved_id:
        out.print(f"Saved as {saved_id}: robson backtest show {saved_id}")


def summary_pairs(result, stats: BacktestStats, quote: str) -> list[tuple[str, str]]:
    p, dd = stats.performance, stats.drawdown
    factor = "∞" if p.profit_factor_infinite else (fmt(p.profit_factor, 2) if p.profit_factor is not None else "-")
    refused = ", ".join(f"{name} {count}" for name, count in sorted(result.refused_by_guard.items())) or "none"
    drawdown = f"{fmt(dd.amount, 2)} {quote} ({fmt(dd.percent, 2)} %)"
    if dd.start is not None:
        drawdown += f", {dd.start:%Y-%m-%d %H:%M} → {dd.end:%Y-%m-%d %H:%M} ({_duration(dd.duration)})"
        drawdown += f", recovered {dd.recovered:%Y-%m-%d %H:%M}" if dd.recovered else ", not recovered"
    return [
        ("trades", f"{p.trades} ({p.wins} won, {p.losses} lost, {p.break_even} break-even)"),
        ("win rate", f"{fmt(p.win_rate, 1)} %" if p.win_rate is not None else "-"),
        ("average R", fmt(p.average_r, 2) if p.average_r is not None else "-"),
        ("expectancy", f"{fmt(p.expectancy, 2)} {quote} per trade" if p.expectancy is not None else "-"),
        ("profit factor", factor),
        ("total P&L", f"{fmt(p.total_pnl, 2)} {quote} ({fmt(stats.total_return_percent, 2)} %), "
                      f"equity {fmt(stats.capital, 2)} → {fmt(stats.final_equity, 2)}"),
        ("CAGR", f"{fmt(stats.cagr_percent, 2)} %" if stats.cagr_percent is not None else "-"),
        ("max drawdown", drawdown),
        ("Sharpe / Sortino / Calmar", " / ".join(fmt(x, 2) if x is not None else "-"
                                                for x in (stats.sharpe, stats.sortino, stats.calmar))),
        ("time in market", f"{fmt(stats.time_in_market_percent, 1)} %"),
        ("trade duration", f"average {_duration(stats.average_duration) or '-'}, "
                           f"longest {_duration(stats.longest_duration) or '-'}"),
        ("best / worst trade", f"{_ref(p.best)} / {_ref(p.worst)}"),
        ("longest losing streak", str(stats.longest_losing_streak)),
        ("fees paid", f"{fmt(p.total_fees, 2)} {quote}"),
        ("signals", f"{result.signals} confirmed of {result.detections} detected; "
                    f"{len(result.refusals)} refused: {refused}"),
        ("stop and target in one candle", f"{result.ambiguous} trades (the stop was taken first)"),
    ]


def _ref(op) -> str:
    return f"{fmt(op.realized_pnl, 2)} ({op.opened_at:%Y-%m-%d %H:%M})" if op is not None else "-"


def _breakdown_rows(rows: Sequence[Breakdown]) -> list[tuple]:
    return [(b.key, b.trades, b.wins, b.losses, f"{fmt(b.win_rate, 1)} %" if b.win_rate is not None else "-",
             fmt(b.average_r, 2) if b.average_r is not None else "-", fmt(b.pnl, 2)) for b in rows]


def _trade_cells(trade) -> tuple:
    op = trade.operation
    r = r_multiple(op)
    return (f"{op.opened_at:%Y-%m-%d %H:%M}", fmt(op.entry_price), f"{trade.exit_candle_time:%Y-%m-%d %H:%M}",
            fmt(op.exit_price), fmt(op.quantity), fmt(op.entry_fee + op.exit_fee, 4), fmt(op.realized_pnl, 2),
            fmt(r, 2) if r is not None else "-", op.close_reason.value if op.close_reason else "-")


# --- files ------------------------------------------------------------------------------------------


def export(result, path: Path) -> None:
    """Write the trade list as CSV or JSON (by the file's extension), every number as full-precision text."""
    suffix = path.suffix.lower()
    rows = [trade_row(t) for t in result.trades]
    if suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=EXPORT_COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
    else:
        path.write_text(json.dumps(to_jsonable(rows), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def check_file(path_text: str, option: str, suffixes: Sequence[str]) -> Path:
    """Refuse (exit 2) a file of the wrong kind or in a missing folder, before anything runs."""
    path = Path(path_text).expanduser()
    if path.suffix.lower() not in suffixes:
        raise InvalidInput(f"{option} {path_text}: the file must end in {' or '.join(suffixes)}")
    if not path.parent.is_dir():
        raise InvalidInput(f"{option} {path_text}: the folder {path.parent} does not exist")
    if path.is_dir():
        raise InvalidInput(f"{option} {path_text} is a folder, not a file")
    return path


def plot(result, stats: BacktestStats, path: Path) -> None:
    """Draw the equity curve and the drawdown below it into a PNG or SVG file (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    times = [result.start] + [p.at for p in stats.equity] + [result.end]
    equity = [float(stats.capital)] + [float(p.equity) for p in stats.equity] + [float(stats.final_equity)]
    drawdown = [0.0] + [-float(p.drawdown) for p in stats.equity] + [-float(stats.equity[-1].drawdown)
                                                                       if stats.equity else 0.0]
    figure, (top, bottom) = pyplot.subplots(2, 1, sharex=True, figsize=(10, 6), height_ratios=(3, 1))
    top.step(times, equity, where="post", color="#1f6feb")
    top.set_ylabel(f"equity ({result.trades[0].operation.quote_asset if result.trades else 'quote'})")
    top.set_title(f"robson backtest: {result.request.strategy.name} on {', '.join(result.candles)} "
                  f"{result.timeframe}, {len(result.trades)} trades")
    top.grid(alpha=0.3)
    bottom.fill_between(times, drawdown, 0, step="post", color="#d1242f", alpha=0.5)
    bottom.set_ylabel("drawdown")
    bottom.grid(alpha=0.3)
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path)
    pyplot.close(figure)
