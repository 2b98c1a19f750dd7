"""`robson backtest`: replay a strategy over history through the rules robson trades with; keep and list the results."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

import typer

from robson.cli.app import container
from robson.cli.output import JsonOption, console, emit, err_console, table, time_option
from robson.errors import InvalidInput

app = typer.Typer(help="Replay a strategy over history; list and show saved backtests.", no_args_is_help=False)

STRATEGY_HELP = "The strategy to replay (one with a scan: section), e.g. rescue-forces."


def _percent(text: str | None, option: str) -> Decimal | None:
    if text is None:
        return None
    from robson.domain.money import parse_decimal

    value = parse_decimal(text, option, allow_zero=True)
    if value >= 50:
        raise InvalidInput(f"{option} must be below 50 (percent per side), got {text}")
    return value


def _amount(text: str | None, option: str) -> Decimal | None:
    if text is None:
        return None
    from robson.domain.money import parse_decimal

    return parse_decimal(text, option)


def _symbols(c, text: str | None, strategy, timeframe: str) -> tuple[str, ...]:
    """The symbols named, or every symbol the market holds candles of the timeframe for."""
    from robson.cli.scan_cmd import parse_symbols

    if text is not None:
        return parse_symbols(text)
    history = c.history
    if history.name == "binance":  # every symbol has klines there: the ones the config scans
        return tuple(c.settings["scan.symbols"])
    found = history.symbols_with(timeframe)
    if not found:
        raise InvalidInput(f"the {history.name} market holds no {timeframe} candles to replay {strategy.name} on",
                           hint="name symbols with --symbols, or import candles with robson data import")
    return tuple(found)


@app.callback(invoke_without_command=True)
def backtest_command(
    ctx: typer.Context,
    strategy: Annotated[str | None, typer.Option("--strategy", help=STRATEGY_HELP)] = None,
    symbols: Annotated[str | None, typer.Option("--symbols", help="Comma-separated symbols (default: every symbol the sample market holds candles of the timeframe for; on Binance the config's scan.symbols).")] = None,
    start: Annotated[str | None, typer.Option("--from", help="First UTC time replayed, e.g. 2021-03-01 (default: the start of the data, or the last 30 days on Binance; earlier candles still warm the indicators up).")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last UTC time replayed (default: the end of the data).")] = None,
    timeframe: Annotated[str | None, typer.Option("--timeframe", help="The signals' timeframe (default: the strategy's). Exits always walk the finest candles held.")] = None,
    capital: Annotated[str | None, typer.Option("--capital", help="Starting capital and the base of the risk percentages (default: the config's capital).")] = None,
    stake: Annotated[str | None, typer.Option("--stake", help="Spend this notional on each trade instead of sizing from the stop (freqtrade's stake_amount).")] = None,
    fee: Annotated[str | None, typer.Option("--fee", help="Fee per side in percent (default: the config's taker fee).")] = None,
    slippage: Annotated[str | None, typer.Option("--slippage", help="Market and stop fills this much worse, in percent (default: the strategy's backtest setting, else the paper slippage).")] = None,
    max_open: Annotated[int | None, typer.Option("--max-open", help="Positions open at once (default: the open-positions guard's limit).")] = None,
    no_guards: Annotated[bool, typer.Option("--no-guards", help="Switch off the guards freqtrade does not have: daily loss, monthly drawdown, cooldown, exposure.")] = False,
    compare_guards: Annotated[bool, typer.Option("--compare-guards", help="Run with and without those guards and show both side by side.")] = False,
    export: Annotated[str | None, typer.Option("--export", help="Write the trade list to FILE.csv or FILE.json (full precision).")] = None,
    plot: Annotated[str | None, typer.Option("--plot", help="Draw the equity curve and drawdown into FILE.png or FILE.svg.")] = None,
    trades: Annotated[int, typer.Option("--trades", help="Trades listed in the terminal (the last N; 0 lists all).")] = 20,
    save: Annotated[bool, typer.Option("--save", help="Keep the result in the store under a bt- id (robson backtest list / show).")] = False,
    as_json: JsonOption = False,
) -> None:
    """Replay a strategy over history: the scan's signals, plan's sizing and stops, validate's guards,
    the paper fills and the monitor's candle walk, on a clock that never shows the future.

    Every confirmed signal is entered (for a manual strategy too: as if you had planned each one);
    the guards refuse what they would refuse live, and each refusal is counted under its guard.
    Entries fill at the open of the candle after the deciding close; exits walk the finest candles
    held (stop first when one candle touches both). Positions open at the end close at the last close.

    Example: robson backtest --strategy ma-cross-5m --symbols BTCUSDT --stake 100 --fee 0 --max-open 1 --no-guards --export trades.csv
    """
    if ctx.invoked_subcommand is not None:
        return
    if strategy is None:
        raise InvalidInput("--strategy is required, e.g. robson backtest --strategy rescue-forces",
                           hint="robson strategy list shows the strategies; robson backtest list the saved runs")
    if no_guards and compare_guards:
        raise InvalidInput("--no-guards and --compare-guards do not go together: the comparison runs both")
    from robson.cli.backtest_views import check_file

    export_path = check_file(export, "--export", (".csv", ".json")) if export else None
    plot_path = check_file(plot, "--plot", (".png", ".svg")) if plot else None
    if max_open is not None and max_open < 1:
        raise InvalidInput(f"--max-open must be at least 1, got {max_open}")
    c = container(ctx)
    chosen = c.strategies.get(strategy)
    if chosen.scan is None:
        raise InvalidInput(f"strategy '{chosen.name}' has no scan section: there are no signals to replay",
                           hint="backtest a strategy with setups, e.g. --strategy rescue-forces")
    request = _request(c, chosen, symbols, start, end, timeframe, capital, stake, fee, slippage, max_open,
                       guards=not no_guards)
    result, stats = _run(c, request)
    saved_id = None
    if compare_guards:
        import dataclasses

        unguarded, unguarded_stats = _run(c, dataclasses.replace(request, guards=False))
        _compare(c, as_json, (result, stats), (unguarded, unguarded_stats))
    if export_path is not None:
        from robson.cli.backtest_views import export as write_export

        write_export(result, export_path)
    if plot_path is not None:
        from robson.cli.backtest_views import plot as draw

        draw(result, stats, plot_path)
    if save:
        saved_id = _save(c, result, stats)
    if compare_guards:
        return
    from robson.cli.backtest_views import document, render

    doc = document(result, stats, saved_id=saved_id)
    emit(as_json, doc, lambda: render(doc, trades_shown=trades))


def _request(c, strategy, symbols, start, end, timeframe, capital, stake, fee, slippage, max_open, *, guards):
    from robson.application.backtest import BacktestRequest
    from robson.domain.market import timeframe_ms

    settings = c.settings
    tf = timeframe.strip() if timeframe else strategy.timeframe
    timeframe_ms(tf)
    fee_percent = _percent(fee, "--fee")
    slippage_percent = _percent(slippage, "--slippage")
    if slippage_percent is None:
        slippage_percent = strategy.backtest.slippage_percent
    return BacktestRequest(
        strategy=strategy, symbols=_symbols(c, symbols, strategy, tf),
        capital=_amount(capital, "--capital") or c.capital,
        fee_rate=(fee_percent if fee_percent is not None else settings["fees.taker_percent"]) / 100,
        slippage_rate=(slippage_percent if slippage_percent is not None else settings["paper.slippage_percent"]) / 100,
        limits=settings.risk_limits(),
        start=time_option(start, "--from"), end=time_option(end, "--to"), timeframe=tf if timeframe else None,
        stake=_amount(stake, "--stake"), max_open=max_open, guards=guards,
    )


def _run(c, request):
    from robson.adapters.signal_engine import SignalEngine
    from robson.application.backtest import backtest
    from robson.domain.backtest_stats import backtest_stats

    with _progress() as advance:
        result = backtest(request, history=c.history, engine=SignalEngine(), on_progress=advance)
    stats = backtest_stats([t.operation for t in result.trades], capital=request.capital, start=result.start,
                           end=result.end)
    return result, stats


class _progress:
    """A progress bar on stderr in a terminal; nothing when stderr is piped or redirected."""

    def __enter__(self):
        console = err_console()
        self._bar = None
        if not console.is_terminal:
            return lambda done, total: None
        from rich.progress import Progress

        self._bar = Progress(console=console, transient=True)
        self._bar.start()
        task = self._bar.add_task("backtest", total=None)
        return lambda done, total: self._bar.update(task, completed=done, total=total)

    def __exit__(self, *exc):
        if self._bar is not None:
            self._bar.stop()
        return False


def _compare(c, as_json: bool, guarded, unguarded) -> None:
    from robson.cli.backtest_views import summary_doc, summary_pairs

    (result, stats), (free, free_stats) = guarded, unguarded
    quote = result.quote
    doc = {"with_guards": summary_doc(result, stats), "without_guards": summary_doc(free, free_stats),
           "guards_off": ["daily loss", "monthly drawdown", "cooldown", "exposure"]}

    def render() -> None:
        out = console()
        out.print(f"Backtest {result.request.strategy.name}: what the guards saved or cost "
                  "(without: daily loss, monthly drawdown, cooldown and exposure off)")
        left, right = summary_pairs(doc["with_guards"], quote), summary_pairs(doc["without_guards"], quote)
        out.print(table(None, ["", "with guards", "without"],
                        [(name, a, b) for (name, a), (_, b) in zip(left, right, strict=True)]))
        delta = stats.performance.total_pnl - free_stats.performance.total_pnl
        from robson.domain.money import fmt

        out.print(f"The guards {'saved' if delta >= 0 else 'cost'} {fmt(abs(delta), 2)} {quote} of P&L "
                  f"and changed the deepest drawdown from {fmt(free_stats.drawdown.amount, 2)} to "
                  f"{fmt(stats.drawdown.amount, 2)} {quote}.")

    emit(as_json, doc, render)


def _save(c, result, stats) -> str:
    from robson.application.backtest import save_backtest
    from robson.cli.backtest_views import document
    from robson.cli.output import to_jsonable

    # Kept as printed: money as the same text --json shows.
    return save_backtest(store=c.store, result=result,
                         document=lambda bt_id: to_jsonable(document(result, stats, saved_id=bt_id)), clock=c.clock)


@app.command("list")
def list_command(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Saved backtests, newest first.

    Example: robson backtest list
    """
    from robson.application.backtest import saved_backtests

    rows = saved_backtests(store=container(ctx).store)
    doc = [{"id": r.id, "created_at": r.created_at, "strategy": r.strategy, "symbols": r.symbols,
            "trades": r.trades, "total_pnl": r.total_pnl} for r in rows]

    def render() -> None:
        if not rows:
            console().print("No saved backtests (robson backtest --strategy S --save keeps one).")
            return
        console().print(table("Saved backtests", ["id", "saved (UTC)", "strategy", "symbols", "trades", "P&L"],
                              [(r.id, f"{r.created_at:%Y-%m-%d %H:%M}", r.strategy, ", ".join(r.symbols), r.trades,
                                r.total_pnl) for r in rows]))

    emit(as_json, doc, render)


@app.command("show")
def show_command(ctx: typer.Context, backtest_id: Annotated[str, typer.Argument(help="A bt- id or unique prefix.")],
                 as_json: JsonOption = False) -> None:
    """One saved backtest: its settings, summary and trades, as it was printed.

    Example: robson backtest show bt-1a2b
    """
    from robson.application.backtest import saved_backtest
    from robson.cli.backtest_views import render

    doc = saved_backtest(backtest_id, store=container(ctx).store)
    emit(as_json, doc, lambda: render(doc, trades_shown=0))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="backtest")
