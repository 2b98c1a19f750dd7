"""Use case: settle every intent left in EXECUTING against the exchange it started on.

An execution interrupted by a crash, a lost answer or a network failure leaves its intent in
EXECUTING. Reconciling adopts the orders the exchange shows, finishes what is missing (entry,
protective stop, operation) under the same rules as `execute`, or marks the intent FAILED with
the reason. Nothing is ever sent twice: every order is looked up by its client id first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from robson.application.ports import Exchange, MarketData, Store
from robson.domain.intent import IntentStatus, TradingIntent
from robson.errors import AlreadyRunning, AnswerLost, RobsonError, TemporaryExchangeError, Unprotected

if TYPE_CHECKING:  # execution and its trade rules load only when there is something to settle
    from robson.application.plan import Account
    from robson.domain.strategy import Strategy


@dataclass(frozen=True, slots=True)
class Settlement:
    intent_id: str
    exchange: str
    outcome: str  # executed | failed | waiting | in progress | skipped | error (waiting and error may be UNPROTECTED)
    message: str
    operation_id: str | None = None


@dataclass(frozen=True, slots=True)
class Venue:
    """Where an intent executes: the exchange and the market (also its clock); exchange None if unavailable."""

    exchange: Exchange | None
    market: MarketData
    unavailable: str = ""


def executing_intents(store: Store, *, exclude: str | None = None) -> list[TradingIntent]:
    """Return the intents in EXECUTING (cheap: one query)."""
    with store.read() as session:
        return [i for i in session.list_intents(IntentStatus.EXECUTING) if i.id != exclude]


def reconcile(*, store: Store, venue_for: Callable[[str], Venue], strategy_for: Callable[[str], Strategy | None],
              account: Account, exclude: str | None = None) -> list[Settlement]:
    """Settle every EXECUTING intent (but exclude); return what happened to each."""
    return [_settle(intent, store=store, venue_for=venue_for, strategy_for=strategy_for, account=account)
            for intent in executing_intents(store, exclude=exclude)]


def _settle(intent: TradingIntent, *, store: Store, venue_for: Callable[[str], Venue],
            strategy_for: Callable[[str], Strategy | None], account: Account) -> Settlement:
    from robson.application.execute import carry_on, execution_exchange

    name = execution_exchange(intent)
    venue = venue_for(name)
    if venue.exchange is None:
        return Settlement(intent.id, name, "skipped", venue.unavailable)
    try:
        with store.lock(f"execute:{intent.id}", what=f"execution of {intent.id}"):
            with store.read() as session:
                current = session.get_intent(intent.id)
            if current.status is not IntentStatus.EXECUTING:
                return Settlement(intent.id, name, current.status.value.lower(),
                                  f"settled meanwhile by another run: {current.status.value}", current.operation_id)
            result = carry_on(current, strategy=strategy_for(current.strategy), store=store, exchange=venue.exchange,
                              market=venue.market, account=account, clock=venue.market)
    except AlreadyRunning as e:
        return Settlement(intent.id, name, "in progress", str(e))
    except AnswerLost as e:
        return Settlement(intent.id, name, "waiting", str(e))
    except Unprotected as e:  # what may be held has no stop yet: a lost answer or a rate limit passes by itself
        waiting = isinstance(e.cause, TemporaryExchangeError)
        return Settlement(intent.id, name, "waiting" if waiting else "error", str(e))
    except RobsonError as e:
        with store.read() as session:
            status = session.get_intent(intent.id).status
        outcome = "failed" if status is IntentStatus.FAILED else "error"
        operation = None
        if status is IntentStatus.EXECUTED:  # executed, but the stop failed and the position was exited
            outcome, operation = "executed", _operation_id(store, intent.id)
        return Settlement(intent.id, name, outcome, str(e), operation)
    operation = result.operation
    if operation is None:  # a limit or stop entry: its order rests on the exchange, watched by the monitor
        return Settlement(intent.id, name, "working", f"the {current.entry_order.value} entry waits for "
                                                      f"{current.entry} on {name}")
    return Settlement(intent.id, name, "executed",
                      f"operation {operation.id} {operation.status.value}: {operation.quantity} {operation.symbol} "
                      f"@ {operation.entry_price}", operation.id)


def settle_waiting(*, store: Store, venue_for: Callable[[str], Venue], strategy_for: Callable[[str], Strategy | None],
                   account: Account) -> list[Settlement]:
    """Look at every WORKING entry on its exchange, as a monitor tick does: filled ones are protected and opened,
    expired ones cancelled; return what happened to each ('working' when its order still waits)."""
    from robson.application.entries import watch_entries, working_intents

    settled: list[Settlement] = []
    for name in ("paper", "binance"):
        working = working_intents(store, name)
        if not working:
            continue
        venue = venue_for(name)
        if venue.exchange is None:
            settled += [Settlement(i.id, name, "skipped", venue.unavailable) for i in working]
            continue
        clock = venue.market
        if venue.exchange.live:
            from robson.application.monitor_live import ExchangeClock

            clock = ExchangeClock(venue.exchange)
        checks = watch_entries(store=store, exchange=venue.exchange, market=venue.market, account=account, clock=clock,
                               strategy_for=strategy_for, book=venue.exchange if name == "paper" else None)
        outcomes = {"filled": "executed", "waiting": "working"}
        settled += [Settlement(c.intent.id, name, outcomes.get(c.outcome, c.outcome), c.message, c.operation_id)
                    for c in checks]
    return settled


def _operation_id(store: Store, intent_id: str) -> str | None:
    with store.read() as session:
        operation = session.operation_for_intent(intent_id)
    return operation.id if operation else None
