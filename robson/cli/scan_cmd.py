"""`robson scan`: look for the strategies' setups on closed candles, for cron or a terminal."""

from __future__ import annotations

from contextlib import nullcontext
from typing import Annotated

import typer

from robson.cli.app import container
from robson.cli.output import JsonOption, console, err_console, print_json, table
from robson.cli.views import candle_time, scan_report_doc, scan_summary
from robson.domain.money import fmt
from robson.errors import InvalidInput, NotFound, RobsonError


def parse_symbols(text: str) -> tuple[str, ...]:
    """Split 'BTCUSDT, ethusdt' into ('BTCUSDT', 'ETHUSDT'); raise InvalidInput when nothing is named."""
    symbols = tuple(dict.fromkeys(part.strip().upper() for part in text.split(",") if part.strip()))
    if not symbols:
        raise InvalidInput("--symbols needs at least one symbol, e.g. --symbols BTCUSDT,ETHUSDT")
    return symbols


def quoted_in(market, quote: str) -> tuple[str, ...]:
    """Return every trading symbol of the market quoted in quote; raise InvalidInput if there is none."""
    quote = quote.strip().upper()
    found = []
    for symbol in market.symbols():
        try:
            info = market.symbol_info(symbol)
        except NotFound:  # imported candles without exchange filters: not tradable here
            continue
        if info.quote_asset == quote and info.tradable:
            found.append(symbol)
    if not found:
        raise InvalidInput(f"no trading symbol of the {market.name} market is quoted in {quote}")
    return tuple(found)


def _strategies(c, names: list[str] | None):
    if names:
        chosen = [c.strategies.get(name) for name in dict.fromkeys(names)]
    elif c.settings["scan.strategies"]:
        chosen = [c.strategies.get(name) for name in c.settings["scan.strategies"]]
    else:
        chosen = [s for s in c.strategies.healthy() if s.scan is not None]
        for path, error in c.strategies.broken():  # one broken file stops only its own strategy
            err_console().print(f"scan: {path} was not scanned: {error.message}", markup=False, soft_wrap=True)
    manual = [s.name for s in chosen if s.scan is None]
    if manual:
        raise InvalidInput(f"strategy {', '.join(manual)} has no scan section: it is entered by hand",
                           hint="scan strategies with setups, e.g. --strategy rescue-forces")
    if not chosen:
        raise InvalidInput("no strategy has a scan section to run")
    return tuple(chosen)


def _render_table(report) -> None:
    out = console()
    rows = []
    for s in report.detected:
        rows.append((s.id, "DETECTED", s.strategy, s.symbol, s.timeframe, candle_time(s),
                     fmt(s.confidence), s.reason))
    for s in report.resolved:
        rows.append((s.id, s.status.value, s.strategy, s.symbol, s.timeframe, candle_time(s), fmt(s.confidence),
                     s.resolution or ""))
    if rows:
        out.print(table(f"Signals ({len(rows)})", ["id", "status", "strategy", "symbol", "tf", "candle (UTC)",
                                                    "confidence", "why"], rows))
    entries = [(e.intent.id, e.intent.status.value, e.signal.id, f"{e.intent.side.value} {e.intent.symbol}",
                fmt(e.intent.quantity), fmt(e.intent.entry), fmt(e.intent.stop), e.problem or (e.verdict.value if e.verdict else ""))
               for e in report.entries]
    if entries:
        out.print(table("Intents created (never executed by a scan)",
                        ["intent", "status", "signal", "trade", "quantity", "entry", "stop", "validation"], entries))
    if report.skipped:
        out.print(table("Not entered", ["signal", "strategy", "symbol", "reason"],
                        [(s.signal.id, s.signal.strategy, s.signal.symbol, s.reason) for s in report.skipped]))


def _progress(enabled: bool):
    """A transient progress bar on stderr for a terminal; nothing otherwise."""
    if not enabled:
        return nullcontext(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(TextColumn("scan {task.description}"), BarColumn(), MofNCompleteColumn(),
                    console=err_console(), transient=True)


def scan_command(
    ctx: typer.Context,
    strategy: Annotated[list[str] | None, typer.Option("--strategy", "-s", help="Strategy to scan; repeat for several (default: scan.strategies, else every strategy with a scan section).", show_default=False)] = None,
    symbols: Annotated[str | None, typer.Option("--symbols", help="Comma-separated symbols, e.g. BTCUSDT,ETHUSDT (default: scan.symbols).", show_default=False)] = None,
    quote: Annotated[str | None, typer.Option("--quote", help="Scan every trading symbol quoted in this asset, e.g. USDT.", show_default=False)] = None,
    timeframe: Annotated[str | None, typer.Option("--timeframe", help="Scan on this timeframe instead of each strategy's own.", show_default=False)] = None,
    no_entry: Annotated[bool, typer.Option("--no-entry", help="Only detect and decide signals; create no intents.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Find the strategies' setups on the last closed candle; confirm, invalidate or expire earlier signals.

    Each signal is recorded once per strategy, setup, symbol, timeframe and candle, so running the same
    scan again records nothing new. A strategy with auto_entry turns a CONFIRMED signal into a PENDING
    intent (source: pattern) and validates it; a scan never executes anything, and pattern intents can
    never go LIVE. One scan per database: a second one exits 4 at once. Exit 0 whether or not anything
    was found, 1 when nothing could be scanned. On a non-terminal: one summary line (or --json).
    Counts are of (strategy, symbol) pairs. With the configured symbols (no --symbols), a series the
    market does not carry at all is left out, not a failure (the sample has no ETHUSDT 15m).

    Example: robson scan --strategy rescue-forces --symbols BTCUSDT,ETHUSDT
    (crontab: */15 * * * * robson scan)
    """
    from robson.adapters.signal_engine import SignalEngine
    from robson.application.scan import ScanRequest, scan
    from robson.domain.market import timeframe_ms

    if symbols is not None and quote is not None:
        raise InvalidInput("give either --symbols or --quote, not both")
    wanted = parse_symbols(symbols) if symbols is not None else None
    if timeframe is not None:
        timeframe_ms(timeframe)
    if quote is not None and not quote.strip():
        raise InvalidInput("--quote needs an asset, e.g. --quote USDT")
    c = container(ctx)
    strategies = _strategies(c, strategy)
    market = c.market
    named = wanted is not None
    if wanted is None:
        asset = quote or c.settings["scan.quote"]
        wanted = quoted_in(market, asset) if asset else tuple(c.settings["scan.symbols"])
    request = ScanRequest(strategies=strategies, symbols=wanted, timeframe=timeframe, entries=not no_entry,
                          only_held=not named)
    terminal = console().is_terminal and not as_json
    validation_exchange = c.binance if c.live_account else c.paper
    with c.store.lock("scan", what="robson scan"), _progress(terminal) as progress:
        task = progress.add_task("", total=None) if progress is not None else None

        def on_progress(done: int, total: int, label: str) -> None:
            if progress is not None:
                progress.update(task, completed=done, total=total, description=label)

        report = scan(request, store=c.store, market=market, exchange=c.paper, validation_exchange=validation_exchange,
                      account=c.account, clock=c.clock, engine=SignalEngine(),
                      max_workers=c.settings["scan.max_workers"],
                      on_progress=on_progress)
    if report.entries:
        from robson.application.notify import event_intent_from_signal

        # The intents are saved; telling the trader is queued and never fails the scan.
        c.notify(lambda: [event_intent_from_signal(e.intent, e.signal) for e in report.entries], ctx)
    for failure in report.failures:
        where = f"{failure.symbol} {failure.timeframe} ({', '.join(failure.strategies)})"
        err_console().print(f"scan: {where}: {failure.message}", markup=False, soft_wrap=True)  # one line per failure
    if as_json:
        print_json(scan_report_doc(report))
    else:
        if terminal:
            _render_table(report)
        console().print(scan_summary(report), soft_wrap=True)  # one line, however many ids it names
    if report.failed:
        raise RobsonError("nothing could be scanned: every symbol failed",
                          hint="see the lines above; check the symbols and the market connection")


def register(app: typer.Typer) -> None:
    app.command("scan")(scan_command)
