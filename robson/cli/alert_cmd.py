"""`robson alert add|list|remove|check`: price alerts, checked by every monitor tick and by `alert check --once`."""

from __future__ import annotations

from typing import Annotated

import typer

from robson.cli.app import container
from robson.cli.output import JsonOption, console, emit, key_values, log, table
from robson.cli.views import alert_doc, alert_report_doc, alert_summary
from robson.domain.money import fmt
from robson.errors import LeaseLost, RobsonError

app = typer.Typer(help="Price alerts: be told when a price is reached, and have a plan validated then.\n\n"
                       "Example: robson alert add BTCUSDT above 35000 --plan pl-7f3a",
                  no_args_is_help=True, rich_markup_mode=None)

AlertId = Annotated[str, typer.Argument(help="Alert ID or a unique prefix.")]


@app.command("add", context_settings={"ignore_unknown_options": True})  # "-5" is a price to refuse, not an option
def add(
    ctx: typer.Context,
    symbol: Annotated[str, typer.Argument(help="Symbol, e.g. BTCUSDT.")],
    direction: Annotated[str, typer.Argument(help="above: fire when the price rises to PRICE; below: when it falls "
                                                  "to it.")],
    price: Annotated[str, typer.Argument(help="The price to watch for.")],
    note: Annotated[str | None, typer.Option("--note", help="Why you watch this price.")] = None,
    plan: Annotated[str | None, typer.Option("--plan", help="Intent ID (or prefix) to validate when the alert fires; "
                                                            "it is never executed.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Set a price alert on closed candles (a wick counts); optionally arm a plan to validate when it fires.

    Example: robson alert add BTCUSDT below 30000 --note "retest of support" --plan pl-7f3a
    """
    from robson.application.alerts import AlertRequest, add_alert

    c = container(ctx)
    added = add_alert(AlertRequest(symbol=symbol, direction=direction, price=price, note=note, plan=plan),
                      store=c.store, market=c.market, clock=c.clock)
    alert, quote = added.alert, added.quote

    def render() -> None:
        distance = abs(alert.price - quote.price) / quote.price * 100
        rows = [("price now", f"{fmt(quote.price)} ({quote.at:%Y-%m-%d %H:%M} UTC), {fmt(distance, 2)}% away")]
        if added.plan is not None:
            p = added.plan
            rows.append(("arms", f"{p.id} ({p.status.value} {p.side.value} {fmt(p.quantity)} {p.symbol}): validated "
                                 "when the alert fires, never executed"))
        if alert.note:
            rows.append(("note", alert.note))
        out = console()
        out.print(key_values(f"Alert {alert.id} {alert.status.value}: {alert.condition}", rows))
        out.print("\nChecked on every closed candle by robson monitor, or by robson alert check --once (cron).")

    emit(as_json, alert_doc(alert) | {"price_now": quote.price, "price_at": quote.at}, render)


@app.command("list")
def list_(
    ctx: typer.Context,
    show_all: Annotated[bool, typer.Option("--all", help="Also the alerts that fired or were removed.")] = False,
    as_json: JsonOption = False,
) -> None:
    """List the ACTIVE alerts, oldest first (--all: fired and removed ones too).

    Example: robson alert list --all
    """
    from robson.domain.alerts import AlertStatus

    with container(ctx).store.read() as session:
        alerts = session.list_alerts()
    shown = alerts if show_all else [a for a in alerts if a.status is AlertStatus.ACTIVE]

    def render() -> None:
        rows = [(a.id, a.status.value, a.condition, f"{a.created_at:%Y-%m-%d %H:%M}", _fired_or_checked(a),
                 _plan(a), a.note) for a in shown]
        out = console()
        title = f"Alerts ({len(shown)})" if show_all else f"Active alerts ({len(shown)})"
        out.print(table(title, ["id", "status", "alert", "set (UTC)", "checked / fired (UTC)", "plan", "note"],
                        rows))
        hidden = len(alerts) - len(shown)
        if hidden:
            out.print(f"{hidden} fired or removed not shown: robson alert list --all")

    emit(as_json, {"alerts": [alert_doc(a) for a in shown]}, render)


def _fired_or_checked(alert) -> str | None:
    """The candle that fired it and the price it reached, else how far it was checked."""
    from robson.domain.market import ms_to_datetime

    if alert.fired_candle_ms is not None:
        return f"{ms_to_datetime(alert.fired_candle_ms):%Y-%m-%d %H:%M} @ {fmt(alert.fired_price)}"
    return None if alert.checked_ms is None else f"{ms_to_datetime(alert.checked_ms):%Y-%m-%d %H:%M}"


def _plan(alert) -> str | None:
    """The plan it arms, with its verdict once it fired."""
    if alert.verdict is None:
        return alert.plan_id
    return f"{alert.plan_id} {alert.verdict['verdict'] or 'not validated'}"


@app.command("remove")
def remove(ctx: typer.Context, alert_id: AlertId, as_json: JsonOption = False) -> None:
    """Remove an ACTIVE alert; it is kept as REMOVED for history (robson alert list --all).

    Example: robson alert remove al-1a2b
    """
    from robson.application.alerts import remove_alert

    c = container(ctx)
    alert = remove_alert(alert_id, store=c.store, clock=c.clock)
    emit(as_json, alert_doc(alert),
         lambda: console().print(f"Alert {alert.id} {alert.status.value}: {alert.condition} (kept for history: "
                                 "robson alert list --all)"))


@app.command("check")
def check(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Check once and exit, for cron (the only mode: robson monitor "
                                                      "checks alerts on each of its ticks).")] = False,
    as_json: JsonOption = False,
) -> None:
    """Check every ACTIVE alert on the candles closed since its last check; fire, notify, validate armed plans.

    Each alert fires once, even when this and a monitor tick check it at the same time. An armed plan
    is validated (VALIDATED or FAILED) and never executed. Exit 1 if an alert could not be checked.

    Example: robson alert check --once        (crontab: */5 * * * * robson alert check --once)
    """
    c = container(ctx)
    report = check_now(c)
    c.notify(lambda: _events(report), ctx)  # the fired alerts are saved; sending is queued

    def render() -> None:
        out = console()
        out.print(alert_summary(report), soft_wrap=True)  # one line, whatever COLUMNS says (cron logs, grep)
        for line in plan_lines(report):
            out.print(line, soft_wrap=True)

    emit(as_json, alert_report_doc(report), render)
    for problem in report.errors:
        log(f"alert check: {problem.alert_id}: {problem.message}")
    if report.errors:
        raise RobsonError(f"{len(report.errors)} alert(s) could not be checked (see above)",
                          hint="the others were checked; run robson alert check --once again once fixed")


def _events(report):
    from robson.application.notify import events_from_alert_report

    return events_from_alert_report(report)


def check_now(c):
    """Check the alerts at the market's time; an armed plan is validated as `robson validate` would, on the same wallet."""
    from robson.application.alerts import check_alerts
    from robson.application.validate import validate

    def validate_plan(intent_id: str):
        with c.store.read() as session:
            strategy = session.get_intent(intent_id).strategy
        return validate(intent_id, strategy=c.strategy_or_none(strategy), store=c.store, market=c.market,
                        exchange=c.wallet, account=c.account, clock=c.clock)

    return check_alerts(store=c.store, market=c.market, clock=c.clock, validate_plan=validate_plan)


def check_in_monitor(c, at):
    """The monitor tick's alert check: a failure of the check as a whole is reported, never fails the tick."""
    from robson.application.alerts import AlertProblem, AlertReport

    try:
        return check_now(c)
    except LeaseLost:
        raise
    except RobsonError as e:
        return AlertReport(at, 0, errors=(AlertProblem("alerts", f"not checked: {e}"),))


def plan_lines(report) -> list[str]:
    """One line per fired alert that armed a plan: the verdict, and what a person may do next."""
    from robson.application.notify import plan_outcome

    return [f"{f.alert.id}: plan {f.alert.verdict['intent_id']}: {plan_outcome(f.alert.verdict)}"
            for f in report.fired if f.alert.verdict is not None]


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="alert")
