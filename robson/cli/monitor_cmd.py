"""`robson monitor`: the stop monitor, once (for cron) or in a loop that stops cleanly on a signal."""

from __future__ import annotations

import dataclasses
import signal
import threading
from typing import Annotated

import typer

from robson.cli.app import container
from robson.cli.output import JsonOption, console, log, print_json, table
from robson.cli.views import monitor_report_doc, monitor_summary
from robson.domain.money import fmt, parse_decimal
from robson.errors import AlreadyRunning, InvalidInput, LeaseLost, RobsonError, Unprotected

DEFAULT_INTERVAL_SECONDS = 60.0
MIN_INTERVAL_SECONDS, MAX_INTERVAL_SECONDS = 1, 86400


def wait(stop: threading.Event, seconds: float) -> None:
    """Sleep between ticks, waking at once when a signal asks the loop to stop (tests replace this)."""
    stop.wait(seconds)


def _render(report, as_json: bool, *, stream: bool) -> None:
    if as_json:
        if stream:  # a loop prints one compact document per tick, one per line
            print_json(monitor_report_doc(report), one_line=True)
        else:
            print_json(monitor_report_doc(report))
        return
    out = console()
    if out.is_terminal and report.checks:
        rows = []
        for check in report.checks:
            op = check.operation
            stop = fmt(op.stop) if op.stop == check.before.stop else f"{fmt(check.before.stop)} → {fmt(op.stop)}"
            result = "ACTIVE" if check.exit is None else (
                f"CLOSED {check.exit.reason.value} @ {fmt(op.exit_price)}, P&L {fmt(op.realized_pnl, 2)} "
                f"{op.quote_asset}")
            rows.append((op.id, f"{op.side.value} {op.symbol}", f"{check.candles} × {check.timeframe}", stop, result))
        out.print(table(None, ["id", "position", "new candles", "stop", "result"], rows))
    out.print(monitor_summary(report), soft_wrap=True)  # one line, whatever COLUMNS says (cron logs, grep)
    for entry in report.entries:
        if entry.outcome not in ("waiting", "error"):
            out.print(f"entry {entry.intent.id} {entry.outcome}: {entry.message}", soft_wrap=True)
    for halt in report.halts:
        out.print(f"HALTED: {halt.message}")
    if report.alerts is not None:
        from robson.cli.alert_cmd import plan_lines

        for line in plan_lines(report.alerts):
            out.print(line, soft_wrap=True)
        for problem in report.alerts.errors:
            log(f"monitor: {problem.alert_id}: {problem.message}")
    for problem in report.skipped:
        log(f"monitor: {problem.operation_id} skipped: {problem.message}")
    for problem in report.errors:
        log(f"monitor: {problem.operation_id}: {problem.message}")
    for problem in report.unresolved:
        log(f"monitor: {problem.message}")


def with_live_operations(c, paper_report):
    """Check the ACTIVE live operations on Binance and merge them into the tick's report.

    Binance (keys, network) is touched only when a live operation exists, so a paper-only
    database never needs either; without keys each live operation is an error of its own.
    """
    from robson.application.monitor_live import live_monitor_once, live_operations, merge_reports, unwatched

    live = live_operations(c.store)
    if not live:
        return paper_report
    if not c.keys_present():
        return merge_reports(paper_report, unwatched(
            live, "live operation: its stop on Binance was not checked: set BINANCE_API_KEY and BINANCE_API_SECRET "
                  "(or binance.key_file)", paper_report.at))
    try:
        report = live_monitor_once(store=c.store, exchange=c.binance, market=c.binance_market, account=c.account,
                                   strategy_for=c.strategy_or_none)
    except LeaseLost:
        raise
    except RobsonError as e:  # Binance unreachable before any operation was looked at
        return merge_reports(paper_report, unwatched(live, f"live operation: its stop on Binance was not checked: {e}",
                                                     paper_report.at))
    for check in report.checks:
        for note in check.notes:
            log(f"monitor: {check.operation.id}: {note}")
    return merge_reports(paper_report, report)


def watch_waiting_entries(c) -> list:
    """Look at every entry waiting for its price (WORKING): paper ones against the closed candles, live ones on
    Binance (touched only when one exists; without keys each is an error of its own)."""
    from robson.application.entries import EntryCheck, watch_entries, working_intents

    checks = watch_entries(store=c.store, exchange=c.paper, market=c.market, account=c.account, clock=c.clock,
                           strategy_for=c.strategy_or_none, book=c.paper)
    live = working_intents(c.store, "binance")
    if not live:
        return checks
    if not c.keys_present():
        return checks + [EntryCheck(i, "error", "its order on Binance was not checked: set BINANCE_API_KEY and "
                                                "BINANCE_API_SECRET (or binance.key_file)") for i in live]
    from robson.application.monitor_live import ExchangeClock

    try:
        return checks + watch_entries(store=c.store, exchange=c.binance, market=c.binance_market, account=c.account,
                                      clock=ExchangeClock(c.binance), strategy_for=c.strategy_or_none)
    except LeaseLost:
        raise
    except RobsonError as e:  # Binance unreachable
        return checks + [EntryCheck(i, "error", f"its order on Binance was not checked: {e}") for i in live]


def _interval_seconds(text: str) -> float:
    """Parse --interval: 1 to 86400 seconds (nan, inf, 1e999 and 1e-320 would busy-loop or never wake)."""
    try:
        number = parse_decimal(text, "--interval")
    except InvalidInput as e:
        raise InvalidInput(f"{e.message}; give seconds from {MIN_INTERVAL_SECONDS} to {MAX_INTERVAL_SECONDS}") from None
    if not MIN_INTERVAL_SECONDS <= number <= MAX_INTERVAL_SECONDS:
        raise InvalidInput(f"--interval must be from {MIN_INTERVAL_SECONDS} to {MAX_INTERVAL_SECONDS} seconds, "
                           f"got '{text}'")
    return float(number)


def _stop_on_signals(stop: threading.Event) -> dict:
    """Turn Ctrl-C and SIGTERM into a request to stop after the tick in progress; return the old handlers."""
    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
        except ValueError:  # not the main thread: signals stay as they were
            pass
    return previous


def monitor_command(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Check every ACTIVE operation once and exit (for cron).")] = False,
    interval: Annotated[str | None, typer.Option("--interval", help="Seconds between checks in a loop, 1 to 86400 "
                                                 "(default 60).", show_default=False)] = None,
    as_json: JsonOption = False,
) -> None:
    """Watch ACTIVE operations: stops, targets, trailing stops and time exits, paper and live.

    Paper: the candles closed since each operation's last check are walked (5m), so a wick between
    checks is not missed; stop before target. Live: the protective order on Binance is the truth; a
    fill closes at Binance's price, a vanished stop is placed again (or the position exited), a
    trailed stop is cancelled and replaced. Each tick also checks the price alerts (robson alert). One monitor per
    database (exit 4 if another runs). The loop stops cleanly on Ctrl-C or SIGTERM after the tick in progress; --json
    prints one document (one line per tick in a loop).

    Example: robson monitor --once        (crontab: */5 * * * * robson monitor --once)
    """
    from robson.application.monitor import monitor_once
    from robson.application.watching import Problem, run_monitor
    from robson.cli.alert_cmd import check_in_monitor
    from robson.cli.reconcile_cmd import settle_pending, unresolved_now

    if once and interval is not None:
        raise InvalidInput("give either --once or --interval, not both")
    seconds = None if interval is None else _interval_seconds(interval)
    c = container(ctx)
    errors: list = []  # each tick's problems
    unsettled: list = []

    def tick():
        settlements = settle_pending(c)  # an execution interrupted by a crash is finished (or failed) first
        entries = watch_waiting_entries(c)  # a fill opens its operation before the operations are walked
        filled_in = {e.operation_id: e.fill_candle_open_time for e in entries if e.fill_candle_open_time is not None}
        report = monitor_once(store=c.store, market=c.market, exchange=c.paper, account=c.account, clock=c.clock,
                              strategy_for=c.strategy_or_none, filled_in=filled_in)
        unsettled[:] = unresolved_now(c, settlements)  # not settled: may hold a position no stop protects
        report = with_live_operations(c, report)
        return dataclasses.replace(report, unresolved=tuple(Problem(u.intent.id, u.describe()) for u in unsettled),
                                   entries=tuple(entries), errors=report.errors + tuple(
                                       Problem(e.intent.id, e.message) for e in entries if e.outcome == "error"),
                                   alerts=check_in_monitor(c, report.at))

    def on_report(report) -> None:
        from robson.application.notify import events_from_monitor_report

        errors.append(report.errors)
        _render(report, as_json, stream=not once)
        c.notify(lambda: events_from_monitor_report(report), ctx)  # the tick's state is saved; sending is queued

    def notify_error(error: RobsonError, what: str = "tick failed") -> None:
        from datetime import UTC, datetime

        from robson.application.notify import event_monitor_error

        c.notify(lambda: [event_monitor_error(f"{what}: {error}", datetime.now(UTC))], ctx)

    def on_error(error: RobsonError) -> None:
        log(f"monitor: tick failed: {error}" + (f" ({error.hint})" if error.hint else ""))
        notify_error(error)

    if once:
        try:
            run_monitor(tick, store=c.store, on_report=on_report, interval=None, sleep=lambda _: None,
                        stopping=lambda: True)
        except AlreadyRunning:
            raise  # another monitor is watching: nothing failed
        except RobsonError as e:
            notify_error(e)  # the whole tick failed (database busy, a bug): the trader hears of it
            raise
        if unsettled:
            from robson.application.unresolved import unresolved_error

            raise unresolved_error(unsettled)
        if errors and errors[-1]:
            unprotected = [p.operation_id for p in errors[-1] if p.message.startswith("UNPROTECTED")]
            if unprotected:
                raise Unprotected(f"UNPROTECTED: {', '.join(unprotected)} may be held with no stop on the exchange "
                                  f"(see above); {len(errors[-1])} operation(s) could not be checked",
                                  hint="run robson monitor --once again (or keep robson monitor running): each check "
                                       "places the missing stop as soon as the exchange allows, never twice")
            raise RobsonError(f"{len(errors[-1])} operation(s) could not be checked (see above)",
                              hint="the others were checked; run robson monitor --once again once fixed")
        return
    from robson.cli.entry import collect_garbage

    collect_garbage()  # a loop that runs for days must collect its garbage (the console script starts without)
    stop = threading.Event()
    previous = _stop_on_signals(stop)
    try:
        ticks = run_monitor(tick, store=c.store, on_report=on_report,
                            interval=seconds or DEFAULT_INTERVAL_SECONDS,
                            sleep=lambda seconds: wait(stop, seconds), stopping=stop.is_set, on_error=on_error)
    except LeaseLost as e:  # the loop stopped by itself: whoever watches it must hear of it
        notify_error(e, "monitor stopped")
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    log(f"monitor: stopped after {ticks} tick{'s' if ticks != 1 else ''}")


def register(app: typer.Typer) -> None:
    app.command("monitor")(monitor_command)
