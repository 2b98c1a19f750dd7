"""`robson validate` and `robson execute`: the risk guards and the (dry-run by default) execution."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from robson.cli.app import container
from robson.cli.output import JsonOption, ask, console, emit, key_values, styled_verdict, table
from robson.cli.views import intent_doc, operation_doc, order_doc
from robson.domain.intent import PLAN_AGAIN, IntentStatus
from robson.domain.money import fmt
from robson.errors import ExchangeError, ExecutionRefused, IllegalTransition, ValidationFailed

IntentId = Annotated[str, typer.Argument(help="Intent ID or a unique prefix.")]


def validation_table(report: dict[str, Any]):
    rows = [(styled_verdict(r["verdict"]), r["guard"], r["message"], r.get("fix") or "") for r in report["results"]]
    title = f"Validation {report['verdict']} at {report['at'][:19].replace('T', ' ')} UTC"
    return table(title, ["verdict", "guard", "rule and numbers", "what to change"], rows)


def validate_command(ctx: typer.Context, intent_id: IntentId, as_json: JsonOption = False) -> None:
    """Run every risk guard on an intent: PASS / WARN / FAIL with numbers; VALIDATED or FAILED (exit 3).

    Example: robson validate pl-7f3a
    """
    from robson.application.validate import validate

    c = container(ctx)
    with c.store.read() as session:
        stored = session.get_intent(session.resolve_intent_id(intent_id))
    # On a live account (market: binance and keys) the real balances and Binance's order test count.
    exchange = c.binance if c.live_account else c.paper
    with _plan_again_if_failed(stored):
        outcome = validate(intent_id, strategy=c.strategy_or_none(stored.strategy), store=c.store, market=c.market,
                           exchange=exchange, account=c.account, clock=c.clock)
    intent = outcome.intent

    def render() -> None:
        out = console()
        out.print(validation_table(intent.validation or {}))
        out.print(f"\n{intent.id} is {intent.status.value}.")
        if intent.status.value == "VALIDATED":
            out.print(f"Next: robson execute {intent.id}   (dry-run; add --live --acknowledge-risk for real orders)")

    emit(as_json, {"intent": intent_doc(intent), "verdict": outcome.verdict, "results": [r.to_dict() for r in outcome.results]},
         render)
    failed = [r for r in outcome.results if r.verdict.value == "FAIL"]
    if failed:
        raise ValidationFailed(
            f"validation FAILED on {len(failed)} guard(s): " + "; ".join(f"{r.guard}: {r.message}" for r in failed),
            hint=f"{intent.id} is FAILED, which is final: change what the report says, then plan again: "
                 f"robson plan {intent.side.value.lower()} {intent.symbol} --strategy {intent.strategy}",
        )


@contextmanager
def _plan_again_if_failed(intent) -> Iterator[None]:
    """An intent refused for being FAILED: say that it is final and what to do instead."""
    try:
        yield
    except (IllegalTransition, ExecutionRefused) as e:
        if intent.status is IntentStatus.FAILED and e.hint is None:
            e.hint = PLAN_AGAIN
        raise


def _confirmed_interactively() -> bool:
    return ask("Type CONFIRM to place a LIVE order: ") == "CONFIRM"


def _check_live_without_a_human(c, intent) -> None:
    """Refuse LIVE for every reason a CONFIRM could not change, before anyone is asked to type it.

    The config switch, the keys, a pattern-created intent, the intent's state, its validation's age
    and the price (on Binance's clock and prices), each exit 3 naming the reason.
    """
    from robson.application.execute import LiveGate, check_live_gate, ensure_executable

    check_live_gate(intent, LiveGate(requested=True, acknowledged=True,
                                     live_enabled=c.settings["execution.live_trading_enabled"],
                                     keys_present=c.keys_present()))
    ensure_executable(intent, strategy=c.strategy_or_none(intent.strategy), market=c.binance_market,
                      account=c.account, clock=c.binance_market)


def execute_command(
    ctx: typer.Context,
    intent_id: IntentId,
    live: Annotated[bool, typer.Option("--live", help="Place real orders on Binance (default: DRY-RUN on the paper exchange).")] = False,
    acknowledge_risk: Annotated[bool, typer.Option("--acknowledge-risk", help="Confirm a LIVE order without the CONFIRM prompt.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Execute a VALIDATED intent: market entry, protective stop, operation. DRY-RUN unless --live.

    Example: robson execute pl-7f3a            (dry-run on the paper exchange)
    """
    from robson.application.execute import LiveGate, execute
    from robson.cli.reconcile_cmd import settle_pending

    c = container(ctx)
    with c.store.read() as session:
        intent = session.get_intent(session.resolve_intent_id(intent_id))
    gate = LiveGate(requested=False, acknowledged=False, live_enabled=False, keys_present=False)
    exchange, market = c.paper, c.market
    if live:
        acknowledged = acknowledge_risk
        if intent.status is not IntentStatus.EXECUTED:  # an executed intent only shows its operation
            with _plan_again_if_failed(intent):
                _check_live_without_a_human(c, intent)
            if not acknowledged:
                acknowledged = _confirmed_interactively()
                if not acknowledged:
                    raise ExecutionRefused("LIVE not confirmed: CONFIRM was not typed (or use --acknowledge-risk)")
        gate = LiveGate(requested=True, acknowledged=acknowledged,
                        live_enabled=c.settings["execution.live_trading_enabled"], keys_present=c.keys_present())
        # LIVE prices and filters come from Binance whatever market the config reads.
        exchange, market = c.binance, c.binance_market
    settle_pending(c, exclude=intent.id)
    with _plan_again_if_failed(intent):
        result = execute(intent.id, strategy=c.strategy_or_none(intent.strategy), store=c.store, market=market,
                         exchange=exchange, account=c.account, clock=market, gate=gate)
    op = result.operation
    if op is None:  # a limit or stop entry rests on the exchange, waiting for its price
        _render_working(result, exchange, as_json)
        return
    doc = {
        "mode": "dry-run" if op.mode == "paper" else "live",
        "already_executed": result.already_executed,
        "intent": intent_doc(result.intent),
        "operation": operation_doc(op),
        "orders": [order_doc(o) for o in result.orders],
    }

    def render() -> None:
        out = console()
        if result.already_executed:
            out.print(f"{result.intent.id} was already executed: operation {op.id} ({op.status.value}). Nothing placed.")
        else:
            where = "DRY-RUN on the paper exchange" if op.mode == "paper" else "LIVE on Binance"
            out.print(f"{where}: {result.intent.id} EXECUTED → operation {op.id} {op.status.value}")
        out.print(key_values(None, [
            ("position", f"{op.side.value} {fmt(op.quantity)} {op.symbol}"),
            ("entry fill", f"{fmt(op.entry_price)} (fee {fmt(op.entry_fee, 8)} {op.quote_asset})"),
            ("stop", fmt(op.stop)),
            ("target", fmt(op.target)),
        ]))
        out.print(table("Orders", ["client id", "type", "side", "quantity", "fill / limit", "stop", "status"],
                        [(o.client_order_id, o.type.value, o.side.value, fmt(o.quantity),
                          fmt(o.average_price or o.price), fmt(o.stop_price), o.status.value) for o in result.orders]))
        out.print(f"\nNext: robson operation status {op.id}")

    emit(as_json, doc, render)
    from robson.application.notify import events_executed

    c.notify(lambda: events_executed(result), ctx)
    if result.already_executed and result.exit_unfinished:
        # Interrupted while exiting a position its stop could not protect: not a success to a script.
        raise ExchangeError(
            f"operation {op.id} is still ACTIVE: its protective stop could not be placed and the exit at market "
            "was interrupted; the position may be held without a stop",
            hint="run robson monitor --once: it sells the rest or protects it",
        )


def _render_working(result, exchange, as_json: bool) -> None:
    """Say that the entry order rests on the exchange and what happens next."""
    intent = result.intent
    doc = {"mode": "dry-run" if exchange.name == "paper" else "live", "already_executed": result.already_executed,
           "working": True, "intent": intent_doc(intent), "operation": None,
           "orders": [order_doc(o) for o in result.orders]}

    def render() -> None:
        out = console()
        where = "DRY-RUN on the paper exchange" if exchange.name == "paper" else "LIVE on Binance"
        kind = intent.entry_order.value.upper()
        if result.already_executed:
            out.print(f"{intent.id} is already WORKING: its {kind} entry waits on {exchange.name}. Nothing placed.")
        else:
            out.print(f"{where}: {intent.id} WORKING → {kind} {intent.side.value} {fmt(intent.quantity)} "
                      f"{intent.symbol} @ {fmt(intent.entry)} waits for its price")
        expiry = f"{intent.expires_at:%Y-%m-%d %H:%M} UTC" if intent.expires_at else "none (until cancelled)"
        out.print(key_values(None, [("expires", expiry), ("stop", fmt(intent.stop)), ("target", fmt(intent.target))]))
        out.print(table("Orders", ["client id", "type", "side", "quantity", "price", "stop", "status"],
                        [(o.client_order_id, o.type.value, o.side.value, fmt(o.quantity), fmt(o.price),
                          fmt(o.stop_price), o.status.value) for o in result.orders]))
        out.print("\nNext: robson monitor --once (or keep robson monitor running): it fills the entry when the price "
                  f"gets there and protects it at once; robson plan cancel {intent.id} withdraws it")

    emit(as_json, doc, render)


def register(app: typer.Typer) -> None:
    app.command("validate")(validate_command)
    app.command("execute")(execute_command)
