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
from robson.cli.views import parts_text
from robson.domain.backtest_stats import BacktestStats, Breakdown
from robson.domain.money import fmt
from robson.domain.operation import r_multiple
from robson.errors import InvalidInput

EXPORT_COLUMNS = ("entry_time", "exit_time", "entry_price", "exit_price", "quantity", "fees", "pnl", "r",
                  "exit_reason", "symbol", "side", "setup", "signal_time", "exit_fill_time", "entry_fee", "exit_fee",
                  "initial_stop", "target", "stop_moves", "ambiguous", "partial_exits")
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
        "partial_exits": parts_text(op.parts),  # the parts a ladder took before the exit: quantity @ price (target n)
    }


def part_rows(trade) -> list[dict[str, Any]]:
    """The parts a trade's ladder (or nothing else, in a backtest) took before its exit, each a fill with its fee."""
    return [{"number": p.number, "target": p.target, "quantity": fmt(p.quantity), "price": fmt(p.price),
             "fee": fmt(p.fee), "reason": p.reason.value, "at": iso(p.at)} for p in trade.operation.parts]


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
        "max_open": request.max_open or request.limits.max_open_positions,
        "quote": result.quote,
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
        "trades": [trade_row(t) | {"parts": part_rows(t)} for t in result.trades],
        "signals": [{"symbol": s.symbol, "setup": s.setup, "candle_time": iso(s.candle_time), "status": s.status,
                     "decided_time": iso(s.decided_time), "confidence": s.confidence} for s in result.signal_list],
        "refusals": [{"time": iso(r.time), "symbol": r.symbol, "setup": r.setup, "guards": list(r.guards),
                      "message": r.message} for r in result.refusals],
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


def _d(value: Any) -> Decimal | None:
    """A number of the document (a Decimal, or its text once saved), None when absent."""
    return None if value in (None, "") else Decimal(str(value))


def _money(value: Any, places: int = 2) -> str:
    number = _d(value)
    return fmt(number, places) if number is not None else "-"


def _plain(value: Any) -> str:
    """A setting as the user wrote it: no padding zeros."""
    return fmt(_d(value)) if _d(value) is not None else "-"


def _time(text: str | None) -> str:
    return "-" if not text else text.replace("T", " ").replace("Z", "")[:16]


def chart_lines(doc: dict[str, Any]) -> list[str]:
    capital, quote = _d(doc["settings"]["capital"]), doc["settings"]["quote"]
    equity = [capital] + [_d(p["equity"]) for p in doc["equity"]]
    drawdown = [Decimal(0)] + [-_d(p["drawdown"]) for p in doc["equity"]]
    return [
        f"equity   {sparkline(equity)}  {fmt(min(equity), 2)} … {fmt(max(equity), 2)} {quote}",
        f"drawdown {sparkline(drawdown)}  deepest {fmt(-min(drawdown), 2)} {quote}",
    ]


def render(doc: dict[str, Any], *, trades_shown: int = 20) -> None:
    """Print a backtest document (just run, or saved): settings, summary, breakdowns, chart, trades."""
    out = console()
    settings, summary = doc["settings"], doc["summary"]
    quote = settings["quote"]
    exits = ", ".join(sorted(set(settings["exit_timeframes"].values())))
    out.print(f"Backtest {settings['strategy']} on {', '.join(settings['symbols'])} {settings['timeframe']} "
              f"(exits on {exits} candles), {_time(settings['from'])} → {_time(settings['to'])} UTC, "
              f"{settings['market']} market")
    sizing = settings["sizing"]
    sized = f"stake {_plain(sizing['stake'])} {quote} per trade" if "stake" in sizing else \
        f"{_plain(sizing['risk_percent'])} % risk per trade"
    out.print(f"capital {_plain(settings['capital'])} {quote}, {sized}, fee {_plain(settings['fee_percent'])} % "
              f"per side, slippage {_plain(settings['slippage_percent'])} %, max {settings['max_open']} open")
    if settings["every_signal_entered"]:
        out.print(f"{settings['strategy']} is a manual strategy: every confirmed signal is entered here, "
                  "as if you had planned each one")
    if settings["guards"] != "all":
        out.print("--no-guards: daily loss, monthly drawdown, cooldown and exposure guards are OFF")
    if summary["trades"] == 0:
        out.print(f"No trades: {summary['signals']} confirmed signals, {summary['refused']} refused.")
    out.print(key_values("Summary", summary_pairs(summary, quote)))
    columns = ["trades", "wins", "losses", "win rate", "avg R", "P&L"]
    out.print(table("By exit reason", ["reason", *columns], _breakdown_rows(doc["by_exit_reason"])))
    if len(doc["by_symbol"]) > 1:
        out.print(table("By symbol", ["symbol", *columns], _breakdown_rows(doc["by_symbol"])))
    out.print(table("By month (UTC, by closing time)", ["month", *columns], _breakdown_rows(doc["by_month"])))
    if doc["equity"]:
        out.print("Equity and drawdown (realized, one point per close)")
        for line in chart_lines(doc):
            out.print(line)
    trades = doc["trades"]
    shown = trades if trades_shown <= 0 else trades[-trades_shown:]
    if shown:
        title = "Trades" if len(shown) == len(trades) else \
            f"Trades (the last {len(shown)} of {len(trades)}; --trades 0 shows all, --export FILE keeps them)"
        out.print(table(title, ["entry (UTC)", "entry fill", "exit candle", "exit fill", "quantity", "fees", "P&L", "R",
                                "reason"], [_trade_cells(t) for t in shown]))
    if doc.get("id"):
        out.print(f"Saved as {doc['id']}: robson backtest show {doc['id']}")


def summary_pairs(summary: dict[str, Any], quote: str) -> list[tuple[str, str]]:
    dd = summary["max_drawdown"]
    factor = "∞" if summary["profit_factor_infinite"] else _money(summary["profit_factor"])
    refused = ", ".join(f"{name} {count}" for name, count in summary["refused_by_guard"].items()) or "none"
    drawdown = f"{_money(dd['amount'])} {quote} ({_money(dd['percent'])} %)"
    if dd["start"]:
        drawdown += f", {_time(dd['start'])} → {_time(dd['end'])} ({dd['duration']})"
        drawdown += f", recovered {_time(dd['recovered'])}" if dd["recovered"] else ", not recovered"
    percent_or_dash = (lambda v: f"{_money(v)} %" if _d(v) is not None else "-")
    return [
        ("trades", f"{summary['trades']} ({summary['wins']} won, {summary['losses']} lost, "
                   f"{summary['break_even']} break-even)"),
        ("win rate", f"{_money(summary['win_rate_percent'], 1)} %" if _d(summary["win_rate_percent"]) is not None
         else "-"),
        ("average R", _money(summary["average_r"])),
        ("expectancy", f"{_money(summary['expectancy'])} {quote} per trade" if _d(summary["expectancy"]) is not None
         else "-"),
        ("profit factor", factor),
        ("total P&L", f"{_money(summary['total_pnl'])} {quote} ({_money(summary['total_return_percent'])} %), "
                      f"final equity {_money(summary['final_equity'])}"),
        ("CAGR", percent_or_dash(summary["cagr_percent"])),
        ("max drawdown", drawdown),
        ("Sharpe / Sortino / Calmar", " / ".join(_money(summary[k]) for k in ("sharpe", "sortino", "calmar"))),
        ("time in market", f"{_money(summary['time_in_market_percent'], 1)} %"),
        ("trade duration", f"average {summary['average_duration'] or '-'}, longest {summary['longest_duration'] or '-'}"),
        ("best / worst trade", f"{_ref(summary['best'])} / {_ref(summary['worst'])}"),
        ("longest losing streak", str(summary["longest_losing_streak"])),
        ("fees paid", f"{_money(summary['fees'])} {quote}"),
        ("signals", f"{summary['signals']} confirmed of {summary['detections']} detected; "
                    f"{summary['refused']} refused: {refused}"),
        ("stop and target in one candle", f"{summary['same_candle_stop_and_target']} trades (the stop was taken first)"),
    ]


def _ref(ref: dict[str, Any] | None) -> str:
    return f"{_money(ref['pnl'])} ({_time(ref['entry_time'])})" if ref else "-"


def _breakdown_rows(rows: Sequence[dict[str, Any]]) -> list[tuple]:
    return [(b["key"], b["trades"], b["wins"], b["losses"],
             f"{_money(b['win_rate_percent'], 1)} %" if _d(b["win_rate_percent"]) is not None else "-",
             _money(b["average_r"]), _money(b["pnl"])) for b in rows]


def _trade_cells(row: dict[str, Any]) -> tuple:
    return (_time(row["entry_time"]), row["entry_price"], _time(row["exit_time"]), row["exit_price"], row["quantity"],
            _money(row["fees"], 4), _money(row["pnl"]), _money(row["r"]),
            row["exit_reason"] + (f" after {row['partial_exits']}" if row.get("partial_exits") else ""))


# --- files ------------------------------------------------------------------------------------------


def export(result, path: Path) -> None:
    """Write the trade list as CSV or JSON (by the file's extension), every number as full-precision text."""
    suffix = path.suffix.lower()
    rows = [trade_row(t) for t in result.trades]
    if suffix != ".csv":  # JSON is --json's trade list, each with its parts; CSV has partial_exits as one cell
        rows = [row | {"parts": part_rows(t)} for row, t in zip(rows, result.trades, strict=True)]
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
