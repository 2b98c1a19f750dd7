"""`robson reconcile`: settle intents left in EXECUTING; also run quietly before execute and operation commands."""

from __future__ import annotations

import typer

from robson.cli.app import container
from robson.cli.output import JsonOption, console, emit, log, table


def settle_pending(c, *, exclude: str | None = None) -> list:
    """Reconcile EXECUTING intents (but exclude) and say on stderr what happened; cheap when there are none."""
    from robson.application.reconcile import executing_intents, reconcile

    if not executing_intents(c.store, exclude=exclude):
        return []
    settlements = reconcile(store=c.store, venue_for=c.venue, strategy_for=c.strategy_or_none, account=c.account,
                            exclude=exclude)
    for s in settlements:
        log(f"reconcile: {s.intent_id} ({s.exchange}) {s.outcome}: {s.message}")
    return settlements


UNSETTLED = ("waiting", "error", "skipped")


def unresolved_now(c, settlements: list) -> list:
    """Return the intents settle_pending could not settle and still EXECUTING, priced on the market they execute on.

    One another process is executing right now ("in progress") is not unresolved: that run settles it.
    """
    from robson.application.unresolved import unresolved_executions

    stuck = {s.intent_id for s in settlements if s.outcome in UNSETTLED}
    if not stuck:
        return []

    def market_for(intent):  # None: no price asked, the exposure is shown at the fill
        if (intent.execution or {}).get("exchange") != "binance":
            return c.market
        return c.binance_market if c.keys_present() else None

    return [u for u in unresolved_executions(c.store, market_for) if u.intent.id in stuck]


def reconcile_command(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Settle every intent left in EXECUTING by a crash or a lost answer: adopt, finish or fail it.

    Orders are looked up by client id on the exchange the execution started on; nothing is sent twice.
    Entries waiting for their price (WORKING) are looked at as a monitor tick does: a fill is
    protected and opened, an expired order cancelled.

    Example: robson reconcile --json
    """
    from robson.application.reconcile import reconcile, settle_waiting

    c = container(ctx)
    settlements = reconcile(store=c.store, venue_for=c.venue, strategy_for=c.strategy_or_none, account=c.account)
    settlements += settle_waiting(store=c.store, venue_for=c.venue, strategy_for=c.strategy_or_none, account=c.account)
    doc = {"settled": [{"intent_id": s.intent_id, "exchange": s.exchange, "outcome": s.outcome,
                        "message": s.message, "operation_id": s.operation_id} for s in settlements]}

    def render() -> None:
        if not settlements:
            console().print("Nothing to reconcile: no intent is EXECUTING.")
            return
        console().print(table("Reconciled", ["intent", "exchange", "outcome", "what happened"],
                              [(s.intent_id, s.exchange, s.outcome, s.message) for s in settlements]))

    emit(as_json, doc, render)
    unsettled = [s for s in settlements if s.outcome in ("error", "waiting", "in progress", "skipped")]
    if unsettled:
        from robson.errors import RobsonError

        raise RobsonError(f"{len(unsettled)} intent(s) still EXECUTING: "
                          + "; ".join(f"{s.intent_id} {s.outcome}" for s in unsettled),
                          hint="run robson reconcile again later")


def register(app: typer.Typer) -> None:
    app.command("reconcile")(reconcile_command)
