"""Use case: execute a VALIDATED intent — entry, protective stop, operation — exactly once.

Every order carries a client order id derived from the intent, and every step looks its
order up before sending it, so a re-run (or a run after a crash, finding the intent in
EXECUTING) finishes what is missing and never places a second order.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NoReturn

from robson.application.plan import Account
from robson.application.ports import Clock, Exchange, MarketData, Store
from robson.application.sending import safe_to_send, send_once
from robson.application.unresolved import SETTLE_HINT
from robson.application.validate import recheck_portfolio
from robson.domain.ids import OPERATION_PREFIX, new_id
from robson.domain.intent import (
    EntryOrder,
    IntentEvent,
    IntentSource,
    IntentStatus,
    TradingIntent,
    entry_side_problem,
)
from robson.domain.ladder import Ladder, ladder_from_doc
from robson.domain.lifecycle import anchor_to_fill, execution_risk, open_operation, operation_ladder, stop_limit_price
from robson.domain.market import SymbolInfo, check_not_before
from robson.domain.sizing import reward_to_risk
from robson.domain.money import fmt, fmt_amount, percent
from robson.domain.operation import CloseReason, Operation, OperationStatus
from robson.domain.orders import (
    OPEN_STATUSES,
    PROTECTING_STATUSES,
    AuditEvent,
    AuditKind,
    Order,
    OrderRole,
    OrderStatus,
    Protection,
    client_order_id,
    fee_in_quote,
    held_quantity,
    order_generation,
)
from robson.domain.strategy import Strategy
from robson.errors import (
    AnswerLost,
    ExchangeError,
    ExecutionRefused,
    InsufficientBalance,
    OrderRejected,
    RobsonError,
    Unprotected,
)

# How long a second run of the same intent waits for the first to finish before giving up; at least a
# lease and a little more, so that a run that crashed, on any host, is taken over within the wait.
LOCK_WAIT_SECONDS = 60
LEASE_GRACE_SECONDS = 5
# The execution status of a live entry whose stop could not be placed, until its exit at market is done.
EXITING_AT_MARKET = "executed: stop placement failed, exiting at market"
# The execution status of an entry that filled too little for any order: no stop, no exit, left as dust.
LEFT_AS_DUST = "executed: filled below the exchange minimum, left as dust"


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    intent: TradingIntent
    operation: Operation | None  # None while a limit or stop entry waits for its price (WORKING)
    orders: list[Order]
    already_executed: bool = False

    @property
    def working(self) -> bool:
        """True when the entry order rests on the exchange, waiting for its price: no position yet."""
        return self.operation is None

    @property
    def exit_unfinished(self) -> bool:
        """True while a position its stop could not protect is still being exited at market (ACTIVE)."""
        status = (self.intent.execution or {}).get("status")
        return (status == EXITING_AT_MARKET and self.operation is not None
                and self.operation.status is OperationStatus.ACTIVE)


@dataclass(frozen=True, slots=True)
class LiveGate:
    """What the user and the config said about going LIVE."""

    requested: bool
    acknowledged: bool
    live_enabled: bool
    keys_present: bool


def check_live_gate(intent: TradingIntent, gate: LiveGate) -> None:
    """Refuse LIVE unless every condition holds; raise ExecutionRefused naming the first missing one."""
    if not gate.requested:
        return
    if intent.source is IntentSource.PATTERN:
        raise ExecutionRefused(
            f"intent {intent.id} was created by a pattern scan: it can never execute LIVE automatically",
            hint="plan it again by hand if you want to trade it live",
        )
    if not gate.acknowledged:
        raise ExecutionRefused("LIVE execution needs --acknowledge-risk or typing CONFIRM at the prompt")
    if not gate.live_enabled:
        raise ExecutionRefused(
            "live trading is disabled in the config",
            hint="set execution.live_trading_enabled: true in .robson.yaml",
        )
    if not gate.keys_present:
        raise ExecutionRefused("LIVE execution needs BINANCE_API_KEY and BINANCE_API_SECRET (or binance.key_file)")


def pre_execution_checks(intent: TradingIntent, *, strategy: Strategy | None, market: MarketData, account: Account,
                         clock: Clock) -> Decimal:
    """Check the validation is fresh and the price has not pushed risk over the limit; return the price."""
    now = clock.now()
    if intent.validated_at is None:
        raise ExecutionRefused(f"intent {intent.id} has no validation", hint=f"run: robson validate {intent.id}")
    age = now - intent.validated_at
    max_age = timedelta(minutes=account.validation_max_age_minutes)
    if age > max_age:
        raise ExecutionRefused(
            f"validation of {intent.id} is {int(age.total_seconds() // 60)} min old > {account.validation_max_age_minutes} min",
            hint=f"run: robson validate {intent.id}",
        )
    price = market.last_price(intent.symbol).price
    if intent.waits:
        return _waiting_checks(intent, price, now)
    if (price - intent.stop) * intent.side.sign <= 0:
        raise ExecutionRefused(
            f"price {fmt(price)} is already through the stop {fmt(intent.stop)}", hint="plan again"
        )
    limits = account.limits_for(strategy)
    info = market.symbol_info(intent.symbol)
    stop, risk = execution_risk(intent.side, intent.quantity, price, intent.stop, anchor_of(intent), info,
                                account.fee_rate)
    risk_pct = percent(risk, intent.capital)
    if risk_pct > limits.max_risk_percent:
        raise ExecutionRefused(
            f"price moved to {fmt(price)}: risk {fmt(risk_pct, 2)}% > max {fmt(limits.max_risk_percent, 2)}% "
            f"of capital {fmt(intent.capital)}",
            hint="plan again at the current price",
        )
    changed = risk_change(intent, price, stop, risk, info, account)
    if changed is not None:
        raise ExecutionRefused(f"price moved to {fmt(price)} from the planned entry {fmt(intent.entry)}: {changed}",
                               hint="the market order would not be the trade you validated; plan again at the "
                                    "current price (nothing was sent)")
    return price


def _waiting_checks(intent: TradingIntent, price: Decimal, now: datetime) -> Decimal:
    """A limit or stop entry enters at its own price, not the market's: check that it can still wait there."""
    if intent.expires_at is not None and now >= intent.expires_at:
        raise ExecutionRefused(f"intent {intent.id} expired at {intent.expires_at:%Y-%m-%d %H:%M} UTC before it was "
                               "executed", hint="plan again with a later --expires")
    problem = entry_side_problem(intent.side, intent.entry_order, intent.entry, price)
    if problem is not None and intent.entry_order is EntryOrder.STOP:  # it would trigger at once, far from the plan
        raise ExecutionRefused(f"the market moved through the entry: {problem}",
                               hint="plan again: at market, or a stop entry beyond the price now (nothing was sent)")
    return price


def risk_change(intent: TradingIntent, price: Decimal, stop: Decimal, risk: Decimal, info: SymbolInfo,
                account: Account) -> str | None:
    """Say how entering at price now would change the validated trade beyond the tolerance, or None.

    The risk must not grow, nor the reward-to-risk shrink, by more than
    execution.risk_change_tolerance_percent: --entry is a plan, not a limit order, so execute
    refuses rather than fill far from it.
    """
    tolerance = account.risk_change_tolerance_percent
    planned = intent.quantity * abs(intent.entry - intent.stop)
    if planned > 0 and percent(risk - planned, planned) > tolerance:
        return (f"the trade would risk {fmt(risk, 2)} instead of the planned {fmt(planned, 2)} "
                f"(+{fmt(percent(risk - planned, planned), 1)}% > {fmt(tolerance)}% tolerance)")
    if intent.target is None:
        return None
    _, target = anchor_to_fill(intent.side, price, anchor_of(intent), intent.stop, intent.target, info,
                               account.fee_rate)
    planned_rr = reward_to_risk(intent.side, intent.entry, intent.stop, intent.target)
    now_rr = reward_to_risk(intent.side, price, stop, target)
    if planned_rr and now_rr is not None and percent(planned_rr - now_rr, planned_rr) > tolerance:
        return (f"its reward-to-risk would be {fmt(now_rr, 2)} instead of the planned {fmt(planned_rr, 2)} "
                f"(−{fmt(percent(planned_rr - now_rr, planned_rr), 1)}% > {fmt(tolerance)}% tolerance)")
    return None


def anchor_of(intent: TradingIntent) -> dict[str, str]:
    """The levels of an intent that follow its entry fill (robson.domain.lifecycle.anchor_to_fill)."""
    return dict(intent.details.get("anchor") or {})


def protective_levels(intent: TradingIntent, entry: Order | None, info: SymbolInfo,
                      account: Account) -> tuple[Decimal, Decimal | None]:
    """Return (stop, target) to protect a filled entry: the plan's, re-anchored to the fill where it said so.

    A limit entry keeps the levels planned at its price: its protection is attached before it fills
    (Binance's OTOCO), and it fills at that price or better.
    """
    fill = intent.entry if entry is None or intent.entry_order is EntryOrder.LIMIT else (entry.average_price or intent.entry)
    return anchor_to_fill(intent.side, fill, anchor_of(intent), intent.stop, intent.target, info, account.fee_rate)


def ensure_executable(intent: TradingIntent, *, strategy: Strategy | None, market: MarketData, account: Account,
                      clock: Clock) -> None:
    """Refuse (ExecutionRefused) unless the intent is VALIDATED, freshly, at a price still within risk."""
    if intent.status is IntentStatus.VALIDATED:
        pre_execution_checks(intent, strategy=strategy, market=market, account=account, clock=clock)
    elif intent.status is not IntentStatus.EXECUTING:
        hint = f"run: robson validate {intent.id}" if intent.status is IntentStatus.PENDING else None
        raise ExecutionRefused(f"intent {intent.id} is {intent.status.value}: only VALIDATED intents execute", hint=hint)


def execute(intent_id: str, *, strategy: Strategy | None, store: Store, market: MarketData, exchange: Exchange,
            account: Account, clock: Clock, gate: LiveGate) -> ExecutionResult:
    """Place the entry and protective stop once, creating the ACTIVE operation; re-runs place nothing."""
    with store.read() as session:
        intent = session.get_intent(session.resolve_intent_id(intent_id))
        existing = session.operation_for_intent(intent.id)
    if intent.status is IntentStatus.EXECUTED and existing is not None:
        return _already_executed(store, intent, existing)
    if intent.status is IntentStatus.WORKING:  # its entry already rests on the exchange: nothing more to send
        with store.read() as session:
            return ExecutionResult(intent, None, session.orders_for_intent(intent.id), already_executed=True)
    check_live_gate(intent, gate)
    check_not_before(clock.now(), intent.updated_at, f"the last change of {intent.id} ({intent.status.value})")
    ensure_executable(intent, strategy=strategy, market=market, account=account, clock=clock)
    # One run per intent at a time: a second one waits, then finds the work done.
    info, balances = market.symbol_info(intent.symbol), exchange.balances()  # fetched before the write lock
    with store.lock(f"execute:{intent.id}", what=f"execution of {intent.id}", wait_seconds=lock_wait_seconds(store)):
        with store.transaction() as tx:
            current = tx.get_intent(intent.id)
            if current.status is IntentStatus.VALIDATED:
                recheck_portfolio(current, tx, info=info, balances=balances, account=account,
                                  limits=account.limits_for(strategy), now=clock.now())
                current = current.apply(IntentEvent.EXECUTION_STARTED, clock.now(),
                                        execution={"status": "executing", "exchange": exchange.name})
                tx.update_intent(current, expected_status=IntentStatus.VALIDATED)
                tx.record(AuditEvent(at=clock.now(), kind=AuditKind.EXECUTION_STARTED, intent_id=intent.id,
                                     message=f"execution started on {exchange.name}"))
            existing = tx.operation_for_intent(intent.id)
        if current.status is IntentStatus.EXECUTED and existing is not None:
            return _already_executed(store, current, existing)
        ensure_executable(current, strategy=strategy, market=market, account=account, clock=clock)
        # Checked just now if this run started the execution; a run carrying on an older one checks again.
        return carry_on(current, strategy=strategy, store=store, exchange=exchange, market=market, account=account,
                        clock=clock, checked=intent.status is IntentStatus.VALIDATED)


def lock_wait_seconds(store: Store) -> float:
    """How long a second run of an intent waits for its lock: enough for a crashed holder's lease to run out."""
    return max(LOCK_WAIT_SECONDS, store.lease_seconds + LEASE_GRACE_SECONDS)


def execution_exchange(intent: TradingIntent) -> str:
    """Return the exchange an EXECUTING intent was started on ('paper' for intents from before v3)."""
    return (intent.execution or {}).get("exchange", "paper")


def carry_on(intent: TradingIntent, *, strategy: Strategy | None, store: Store, exchange: Exchange,
             market: MarketData, account: Account, clock: Clock, checked: bool = False) -> ExecutionResult:
    """Finish an EXECUTING intent on the exchange it started on; the caller holds its lock.

    checked says the pre-execution checks passed moments ago; otherwise they run again before an
    entry is sent, so a run after a crash never opens a position on a stale validation.
    """
    started_on = execution_exchange(intent)
    if started_on != exchange.name:
        raise ExecutionRefused(
            f"intent {intent.id} started executing on {started_on}; it can only be finished there",
            hint="run: robson reconcile" + (" with Binance keys set" if started_on == "binance" else ""),
        )
    return _carry_out(intent, strategy=strategy, store=store, exchange=exchange, market=market, account=account,
                      clock=clock, checked=checked)


def _already_executed(store: Store, intent: TradingIntent, operation: Operation) -> ExecutionResult:
    with store.read() as session:
        orders = session.orders_for_intent(intent.id)
    return ExecutionResult(intent, operation, orders, already_executed=True)


def _record(store: Store, event: AuditEvent) -> None:
    with store.transaction() as tx:
        tx.record(event)


def _record_once(store: Store, event: AuditEvent, client_order_id: str) -> None:
    """Record an order event unless an earlier (crashed) run already recorded it."""
    with store.transaction() as tx:
        for earlier in tx.audit_trail(intent_id=event.intent_id):
            if earlier.kind == event.kind and earlier.data.get("client_order_id") == client_order_id:
                return
        tx.record(dataclasses.replace(event, data={**event.data, "client_order_id": client_order_id}))


def _fail(store: Store, intent: TradingIntent, clock: Clock, reason: str) -> TradingIntent:
    failed = intent.apply(IntentEvent.EXECUTION_FAILED, clock.now(), execution={"status": "failed", "reason": reason})
    with store.transaction() as tx:
        tx.update_intent(failed, expected_status=IntentStatus.EXECUTING)
        tx.record(AuditEvent(at=clock.now(), kind=AuditKind.EXECUTION_FAILED, intent_id=intent.id, message=reason))
    return failed


def _carry_out(intent: TradingIntent, *, strategy: Strategy | None, store: Store, exchange: Exchange,
               market: MarketData, account: Account, clock: Clock, checked: bool) -> ExecutionResult:
    """Do (or finish) the steps of an EXECUTING intent, looking each order up before sending it."""
    symbol = intent.symbol
    entry_id = client_order_id(intent.id, OrderRole.ENTRY)
    try:
        entry = _entry(intent, entry_id, strategy=strategy, store=store, exchange=exchange, market=market,
                       account=account, clock=clock, checked=checked)
    except AnswerLost as e:  # the entry may still fill, and nothing would protect it
        raise Unprotected(f"UNPROTECTED if it fills: {e}", hint=SETTLE_HINT, cause=e) from None
    if intent.waits and entry.status in OPEN_STATUSES:  # resting until its price comes: watched by the monitor
        return _working(intent, entry, store=store, exchange=exchange, clock=clock)
    if not entry.filled_quantity:
        reason = f"entry order {entry_id} is {entry.status.value} with nothing filled"
        _fail(store, intent, clock, reason)
        raise ExchangeError(reason)
    _record_once(store, AuditEvent(
        at=clock.now(), kind=AuditKind.ORDER_FILLED, intent_id=intent.id,
        message=f"entry filled {fmt(entry.filled_quantity)} @ {fmt(entry.average_price)} "
                f"fee {fmt_amount(entry.fee)}{' ' + entry.fee_asset if entry.fee_asset else ''}"
                + ("" if entry.filled_quantity == intent.quantity else f" (partial: {fmt(intent.quantity)} ordered)"),
    ), entry_id)

    if exchange.live:  # known to the store at once: `operation status` shows what an unsettled execution holds
        _mirror(store, [entry], intent)
    info = market.symbol_info(symbol)
    quantity = held_quantity(entry, info)
    if info.below_minimum(quantity, entry.average_price):
        _leave_as_dust(intent, entry, info, quantity, store=store, exchange=exchange, clock=clock, account=account)
    stop_id = protection_id(intent, exchange)
    ladder = live_ladder(intent, entry, info, quantity, exchange=exchange, account=account)
    try:
        if ladder is not None:
            stop_order, stop_error = _protect_parts(intent, entry, info, ladder, store=store, exchange=exchange,
                                                    clock=clock, account=account)
        else:
            stop_order, stop_error = _protect(intent, entry, info, quantity, stop_id, store=store, exchange=exchange,
                                              clock=clock, account=account)
    except RobsonError as e:  # the entry filled and no stop is known on the exchange: say so, never exit on a guess
        raise Unprotected(
            f"UNPROTECTED: {fmt(quantity)} {info.base_asset} held ({entry_id} filled @ {fmt(entry.average_price)}) "
            f"and no protective stop on {exchange.name.capitalize()} yet: {e}", hint=SETTLE_HINT, cause=e) from None
    if stop_order is not None and ladder is None:
        _record_placed(store, clock, intent, stop_order)
    return _finish(intent, entry, info, stop_order, stop_error, store=store, exchange=exchange, clock=clock,
                   strategy=strategy, market=market, account=account)


def _entry(intent: TradingIntent, entry_id: str, *, strategy: Strategy | None, store: Store, exchange: Exchange,
           market: MarketData, account: Account, clock: Clock, checked: bool) -> Order:
    """Return the entry as the exchange shows it, sending it first if it never reached the exchange."""
    symbol, side = intent.symbol, intent.side
    entry = exchange.get_order(symbol, entry_id)
    if entry is None:
        if safe_to_send(store, exchange, intent, entry_id, "entry order") or not checked:
            # The entry is about to be sent by a run that did not just check: check again.
            try:
                pre_execution_checks(intent, strategy=strategy, market=market, account=account, clock=clock)
            except ExecutionRefused as e:
                _fail(store, intent, clock, f"the entry never reached {exchange.name}, and now: {e}")
                raise
        try:
            if intent.waits:
                entry = _send_waiting(intent, entry_id, store=store, exchange=exchange, market=market,
                                      account=account, clock=clock)
            else:
                entry = send_once(store, exchange, clock, intent, entry_id,
                                  f"entry MARKET {side.value} {fmt(intent.quantity)} {symbol} ({entry_id})",
                                  lambda: exchange.place_market_order(symbol, side, intent.quantity, entry_id,
                                                                      intent_id=intent.id))
        except (InsufficientBalance, OrderRejected) as e:
            _fail(store, intent, clock, f"entry rejected: {e}")
            raise
    return entry


def _send_waiting(intent: TradingIntent, entry_id: str, *, store: Store, exchange: Exchange, market: MarketData,
                  account: Account, clock: Clock) -> Order:
    """Send a limit entry with its protection attached (live only once it has fully filled), or a stop entry."""
    symbol, side = intent.symbol, intent.side
    info = market.symbol_info(symbol)
    protection, limit = None, None
    how = f"{intent.entry_order.value.upper()} {side.value} {fmt(intent.quantity)} {symbol} @ {fmt(intent.entry)}"
    if intent.entry_order is EntryOrder.LIMIT:
        stop, target = protective_levels(intent, None, info, account)
        protection = Protection(stop, stop_limit_price(side, stop, info.round_price, account.stop_limit_offset_percent),
                                target, client_order_id(intent.id, OrderRole.STOP))
        attached = f"stop {fmt(stop)}" + (f", target {fmt(target)}" if target is not None else "")
        how += f" ({entry_id}) with its protection attached: {attached}, live once it has filled"
    else:  # a stop entry trades like a market order once triggered, up to a limit as far beyond as a stop's
        limit = stop_limit_price(side.opposite, intent.entry, info.round_price, account.stop_limit_offset_percent)
        how += f" limit {fmt(limit)} ({entry_id}); its stop is placed once it has filled"
    return send_once(store, exchange, clock, intent, entry_id, f"entry {how}",
                     lambda: exchange.place_entry_order(symbol, side, intent.quantity, entry_id,
                                                        order=intent.entry_order, price=intent.entry,
                                                        stop_limit_price=limit, protection=protection,
                                                        intent_id=intent.id))


def _working(intent: TradingIntent, entry: Order, *, store: Store, exchange: Exchange,
             clock: Clock) -> ExecutionResult:
    """Record that the entry rests on the exchange (EXECUTING → WORKING); the monitor watches it from here."""
    now = clock.now()
    expiry = f", expires {intent.expires_at:%Y-%m-%d %H:%M} UTC" if intent.expires_at else ""
    with store.transaction() as tx:
        current = tx.get_intent(intent.id)
        if current.status is IntentStatus.EXECUTING:
            current = current.apply(IntentEvent.ENTRY_WORKING, now, execution={
                "status": "working", "exchange": exchange.name, "entry_order": entry.client_order_id})
            tx.update_intent(current, expected_status=IntentStatus.EXECUTING)
            tx.record(AuditEvent(
                at=now, kind=AuditKind.ENTRY_WORKING, intent_id=intent.id,
                message=f"entry {intent.entry_order.value.upper()} {intent.side.value} {fmt(intent.quantity)} "
                        f"{intent.symbol} @ {fmt(intent.entry)} working on {exchange.name}{expiry}",
                data={"client_order_id": entry.client_order_id}))
        if exchange.live:
            _mirror_orders(tx, [entry], intent.id, None)
        orders = tx.orders_for_intent(intent.id)
    return ExecutionResult(current, None, orders)


def protection_id(intent: TradingIntent, exchange: Exchange) -> str:
    """The client id of the protective order to look up or place after the entry filled.

    A limit entry's protection attached at `-S` dies with the entry's remainder when a part fill is
    cancelled (the exchange activates it only on a full fill): the part held is then protected by a
    new generation, `-S1`.
    """
    first = client_order_id(intent.id, OrderRole.STOP)
    if not intent.waits:
        return first
    attached = exchange.get_order(intent.symbol, first)
    if attached is not None and attached.status in (OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED):
        return client_order_id(intent.id, OrderRole.STOP, 1)
    return first


def _protect(intent: TradingIntent, entry: Order, info: SymbolInfo, quantity: Decimal, stop_id: str, *, store: Store,
             exchange: Exchange, clock: Clock, account: Account) -> tuple[Order | None, RobsonError | None]:
    """Return the protective stop as the exchange shows it, placing it if it never reached the exchange.

    A refusal is returned as the error (the position is then exited at market). Raise what leaves the
    stop unknown or not yet placeable: a lost answer (it may exist: never exit on a guess), a rate
    limit (it can be placed in seconds), an exchange out of reach.
    """
    symbol, side = intent.symbol, intent.side
    stop_order = exchange.get_order(symbol, stop_id)
    if stop_order is not None:
        return stop_order, None
    stop, target = protective_levels(intent, entry, info, account)
    safe_to_send(store, exchange, intent, stop_id, "protective stop")
    limit = stop_limit_price(side, stop, info.round_price, account.stop_limit_offset_percent)
    try:
        stop_order = send_once(store, exchange, clock, intent, stop_id,
                               f"stop {side.opposite.value} {fmt(quantity)} @ {fmt(stop)} limit {fmt(limit)} "
                               f"({stop_id})" + _anchored(intent, stop, target),
                               lambda: exchange.place_stop_order(symbol, side.opposite, quantity, stop, limit, stop_id,
                                                                 target_price=target, intent_id=intent.id))
    except (OrderRejected, InsufficientBalance) as e:  # refused: exit at market; anything else is raised
        return None, e
    if exchange.live:
        _mirror(store, [stop_order], intent)
    return stop_order, None


def _record_placed(store: Store, clock: Clock, intent: TradingIntent, order: Order, what: str = "stop") -> None:
    _record_once(store, AuditEvent(
        at=clock.now(), kind=AuditKind.STOP_PLACED, intent_id=intent.id,
        message=f"{what} {order.type.value} {fmt(order.quantity)} @ {fmt(order.stop_price)}"
                + (f", target {fmt(order.target_price)}" if order.target_price else ""),
    ), order.client_order_id)


def live_ladder(intent: TradingIntent, entry: Order, info: SymbolInfo, quantity: Decimal, *, exchange: Exchange,
                account: Account) -> Ladder | None:
    """The ladder a filled entry's operation walks (operation_ladder), None without one.

    The same for every run of the same fill: execute protects a live market or stop entry with one
    OCO per part of it, and the operation keeps it for the live monitor. A limit entry's protection
    was attached to it before the fill (one OCO, Binance's OTOCO): its ladder is walked on paper only.
    """
    if not exchange.live or intent.entry_order is EntryOrder.LIMIT:
        return None
    stop, _ = protective_levels(intent, entry, info, account)
    return fill_ladder(intent, entry.average_price or intent.entry, stop, quantity, info, account)


def fill_ladder(intent: TradingIntent, fill: Decimal, stop: Decimal, quantity: Decimal, info: SymbolInfo,
                account: Account) -> Ladder | None:
    """The intent's ladder fitted to the position opened at fill (operation_ladder), None without one."""
    if not intent.details.get("ladder"):
        return None
    return operation_ladder(ladder_from_doc(intent.details["ladder"]), anchor_of(intent), fill=fill, stop=stop,
                            quantity=quantity, info=info, fee_rate=account.fee_rate)


def _protect_parts(intent: TradingIntent, entry: Order, info: SymbolInfo, ladder: Ladder, *, store: Store,
                   exchange: Exchange, clock: Clock, account: Account) -> tuple[Order | None, RobsonError | None]:
    """Protect each part of a live ladder with its own OCO (its target, the position's stop, its quantity).

    Binance locks the base asset a resting order would sell, so the parts' OCOs together ask for
    exactly what is held: held == protected, and no order asks for more. Each is looked up before it
    is sent (`-P<i>S`), so a re-run places only the missing ones. Return the first part's OCO; a
    refusal is returned as the error (the position is then exited at market: the exit cancels the
    parts already placed first, freeing their base). Raise what leaves an OCO unknown, as _protect does.
    """
    if not exchange.live:
        raise ExecutionRefused("per-part protective orders are for a live exchange")
    symbol, side = intent.symbol, intent.side
    stop, _ = protective_levels(intent, entry, info, account)
    limit = stop_limit_price(side, stop, info.round_price, account.stop_limit_offset_percent)
    placed: list[Order] = []
    for part in ladder.parts:
        if part.quantity <= 0:
            continue  # merged into another part: its quantity rests under that part's OCO
        order_id = client_order_id(intent.id, OrderRole.STOP, part=part.number)
        order = exchange.get_order(symbol, order_id)
        if order is None:
            safe_to_send(store, exchange, intent, order_id, f"protective OCO of part {part.number}")
            try:
                order = send_once(
                    store, exchange, clock, intent, order_id,
                    f"part {part.number}: OCO {side.opposite.value} {fmt(part.quantity)} stop {fmt(stop)} limit "
                    f"{fmt(limit)}, target {fmt(part.target)} ({order_id})",
                    lambda part=part, order_id=order_id: exchange.place_stop_order(
                        symbol, side.opposite, part.quantity, stop, limit, order_id, target_price=part.target,
                        intent_id=intent.id))
            except (OrderRejected, InsufficientBalance) as e:
                return None, e
        _mirror(store, [order], intent)
        _record_placed(store, clock, intent, order, f"part {part.number}: stop")
        placed.append(order)
    return placed[0], None


def _leave_as_dust(intent: TradingIntent, entry: Order, info: SymbolInfo, quantity: Decimal, *, store: Store,
                   exchange: Exchange, clock: Clock, account: Account) -> NoReturn:
    """Record an entry filled below any order the exchange takes as a DUST operation, and raise saying so.

    Neither a stop nor an exit can be placed for it: sending them would only be refused, tick after tick.
    """
    stop, target = protective_levels(intent, entry, info, account)
    now = clock.now()
    operation = open_operation(
        operation_id=new_id(OPERATION_PREFIX), intent_id=intent.id, symbol=intent.symbol, side=intent.side,
        mode=exchange.name if exchange.name == "paper" else "live", strategy=intent.strategy, quantity=quantity,
        entry_price=entry.average_price or intent.entry, entry_fee=fee_in_quote(entry, info), stop=stop,
        target=target, at=now, quote_asset=intent.quote_asset,
    ).leave_as_dust(at=now)
    why = info.dust_reason(quantity, entry.average_price)
    result = _store_execution(intent, entry, None, None, None, operation, store=store, exchange=exchange, now=now,
                              note=why)
    op = result.operation
    raise ExchangeError(
        f"the entry {entry.client_order_id} filled only {fmt(entry.filled_quantity)} of {fmt(intent.quantity)} "
        f"{intent.symbol} @ {fmt(entry.average_price)}: {why}. No stop or exit can be placed for it: operation "
        f"{op.id} is DUST (left in your {exchange.name.capitalize()} wallet, not watched, no P&L booked)",
        hint="sell it by hand once you hold more of it, or convert small balances on Binance",
    )


def _anchored(intent: TradingIntent, stop: Decimal, target: Decimal | None) -> str:
    """Say where the fill moved the plan's levels, if it did."""
    moved = [f"{what} {fmt(planned)} → {fmt(now)}" for what, planned, now in
             (("stop", intent.stop, stop), ("target", intent.target, target)) if planned != now]
    return f"; re-anchored to the entry fill: {', '.join(moved)}" if moved else ""


def _mirror(store: Store, orders: list[Order], intent: TradingIntent) -> None:
    with store.transaction() as tx:
        _mirror_orders(tx, orders, intent.id, None)


def _mirror_orders(tx, orders: list[Order | None], intent_id: str, operation_id: str | None) -> None:
    """Keep a copy of the exchange's orders with the intent, for the audit and the monitor.

    Each is the intent's, whether it came in an answer or was found by its client id after one was lost.
    """
    for order in orders:
        if order is None:
            continue
        order = dataclasses.replace(order, intent_id=intent_id, operation_id=operation_id)
        if tx.get_order(order.client_order_id) is None:
            tx.add_order(order)
        else:
            tx.update_order(order)


def _finish(intent: TradingIntent, entry: Order, info: SymbolInfo, stop_order: Order | None,
            stop_error: RobsonError | None, *, store: Store, exchange: Exchange, clock: Clock,
            strategy: Strategy | None, market: MarketData, account: Account) -> ExecutionResult:
    """Create the operation and mark the intent EXECUTED; exit at market if the stop could not be placed."""
    now = clock.now()
    quantity = held_quantity(entry, info)
    stop, target = protective_levels(intent, entry, info, account)
    # A paper entry that waited filled in a closed candle (its order's time), perhaps ticks before this run if a
    # crash came between: the position opened there, and the monitor checks its stop from that candle on.
    opened = entry.updated_at if intent.waits and not exchange.live else now
    with store.read() as session:
        operation = session.operation_for_intent(intent.id)
    operation = operation or open_operation(
        operation_id=new_id(OPERATION_PREFIX), intent_id=intent.id, symbol=intent.symbol, side=intent.side,
        mode=exchange.name if exchange.name == "paper" else "live", strategy=intent.strategy, quantity=quantity,
        entry_price=entry.average_price or intent.entry, entry_fee=fee_in_quote(entry, info), stop=stop,
        target=target, at=opened, quote_asset=intent.quote_asset,
    )
    if operation.ladder is None and operation.status is OperationStatus.ACTIVE:
        ladder = fill_ladder(intent, operation.entry_price, stop, quantity, info, account)
        if ladder is not None:
            operation = dataclasses.replace(operation, ladder=ladder)
    if stop_order is None and exchange.live:
        # Imported here: the live monitor imports this module.
        from robson.application.watching import operation_lock

        # Held from before the operation exists, so no monitor tick races the exit that follows.
        with operation_lock(store, operation.id, wait_seconds=LOCK_WAIT_SECONDS):
            result = _store_execution(intent, entry, stop_order, None, stop_error, operation, store=store,
                                      exchange=exchange, now=now)
            if result.already_executed:
                return result
            _exit_live(result, info, stop_error, store=store, exchange=exchange, market=market, account=account,
                       strategy=strategy)
    exit_order = None
    if stop_order is None:  # on paper: the live exit above always raises
        # Never leave a position unprotected: exit at market and say so loudly (the paper book fills it all).
        exit_id = client_order_id(intent.id, OrderRole.EXIT)
        exit_order = exchange.get_order(intent.symbol, exit_id) or exchange.place_market_order(
            intent.symbol, intent.side.opposite, quantity, exit_id, intent_id=intent.id
        )
        operation = operation.close(exit_price=exit_order.average_price or entry.average_price or intent.entry,
                                    exit_fee=fee_in_quote(exit_order, info), reason=CloseReason.STOP_PLACEMENT_FAILED, at=now)
    result = _store_execution(intent, entry, stop_order, exit_order, stop_error, operation, store=store,
                              exchange=exchange, now=now)
    if stop_error is not None and not result.already_executed:
        raise _closed_at_market(result.operation, stop_error)
    return result


def _closed_at_market(operation: Operation, stop_error: RobsonError | None) -> ExchangeError:
    return ExchangeError(
        f"the protective stop could not be placed ({stop_error}); the position was closed at market "
        f"@ {fmt(operation.exit_price)}, realized P&L {fmt(operation.realized_pnl, 2)} — operation {operation.id}"
    )


def _store_execution(intent: TradingIntent, entry: Order, stop_order: Order | None, exit_order: Order | None,
                     stop_error: RobsonError | None, operation: Operation, *, store: Store, exchange: Exchange,
                     now: datetime, note: str = "") -> ExecutionResult:
    """Write the operation and the EXECUTED intent in one transaction, unless a concurrent run already did."""
    if stop_order is not None:
        status = "executed"
    elif operation.status is OperationStatus.DUST:
        status = LEFT_AS_DUST
    elif operation.status is OperationStatus.CLOSED:
        status = "exited: stop placement failed"
    else:
        status = EXITING_AT_MARKET
    execution = {
        "status": status,
        "mode": operation.mode,
        "entry_order": entry.client_order_id,
        "fill_price": fmt(entry.average_price),
        "filled_quantity": fmt(entry.filled_quantity),
        "fee": fmt(entry.fee),
        "stop_order": stop_order.client_order_id if stop_order else None,
        "operation_id": operation.id,
    }
    if stop_error is not None:
        execution["stop_error"] = str(stop_error)
    if note:
        execution["note"] = note
    executed = intent.apply(IntentEvent.EXECUTION_SUCCEEDED, now, execution=execution, operation_id=operation.id)
    with store.transaction() as tx:
        current = tx.get_intent(intent.id)
        finished_elsewhere = current.status is IntentStatus.EXECUTED
        if finished_elsewhere:  # a concurrent run of the same intent got here first
            operation = tx.operation_for_intent(intent.id) or operation
        else:
            if exchange.live:  # the paper exchange keeps its own book; a live one is mirrored here
                _mirror_orders(tx, [entry, stop_order, exit_order], intent.id, operation.id)
            if tx.operation_for_intent(intent.id) is None:
                tx.add_operation(operation)
            tx.update_intent(executed, expected_status=IntentStatus.EXECUTING)
            tx.record(AuditEvent(
                at=now, kind=AuditKind.EXECUTED, intent_id=intent.id, operation_id=operation.id,
                message=f"operation {operation.id} {operation.status.value}: {fmt(operation.quantity)} "
                        f"{intent.symbol} @ {fmt(operation.entry_price)}" + (f" ({note})" if note else ""),
            ))
            if operation.status is OperationStatus.CLOSED:
                tx.record(AuditEvent(at=now, kind=AuditKind.CLOSED, intent_id=intent.id, operation_id=operation.id,
                                     message=f"closed at market: stop could not be placed ({stop_error})"))
            if operation.status is OperationStatus.DUST:
                tx.record(AuditEvent(at=now, kind=AuditKind.LEFT_AS_DUST, intent_id=intent.id,
                                     operation_id=operation.id, message=f"left as dust: {note}; no stop or exit can "
                                     "be placed for it, no P&L booked, not watched"))
    if finished_elsewhere:
        return _already_executed(store, current, operation)
    with store.read() as session:
        orders = session.orders_for_intent(intent.id)
    return ExecutionResult(executed, operation, orders)


def _exit_live(result: ExecutionResult, info: SymbolInfo, stop_error: RobsonError | None, *, store: Store,
               exchange: Exchange, market: MarketData, account: Account, strategy: Strategy | None) -> NoReturn:
    """Sell a live position left without a stop, as the live monitor exits; raise ExchangeError either way.

    The book may fill the exit only in part: the live monitor's exit generations sell the rest, and
    what is still held keeps the operation ACTIVE (with a stop for it if one can be placed) for `monitor`.
    """
    from robson.application.monitor_live import exit_live_at_market  # only a live entry left unprotected needs it

    with store.read() as session:
        operation = session.get_operation(result.operation.id)
    why = f"the protective stop could not be placed: {stop_error}"
    try:
        closed = exit_live_at_market(operation, CloseReason.STOP_PLACEMENT_FAILED, why, store=store,
                                     exchange=exchange, market=market, account=account, strategy=strategy,
                                     closer="at market by execute")
    except RobsonError as e:
        detail = str(e).removeprefix(why).lstrip(":; ")  # the monitor's message repeats why it exited
        raise ExchangeError(_exit_unfinished(operation, info, stop_error, detail, store=store),
                            hint="run `robson monitor --once` (or keep `robson monitor` running): each check "
                                 "retries the exit; close the rest on Binance yourself if it cannot wait") from None
    raise _closed_at_market(closed, stop_error)


def _exit_unfinished(operation: Operation, info: SymbolInfo, stop_error: RobsonError | None, detail: str,
                     *, store: Store) -> str:
    """Say what an unfinished exit left: how much is still held, and whether a stop protects it."""
    intent_id, base = operation.intent_id, info.base_asset
    with store.read() as session:
        orders = session.orders_for_intent(intent_id)
    sold = sum((o.filled_quantity for o in orders
                if order_generation(intent_id, OrderRole.EXIT, o.client_order_id) is not None), Decimal(0))
    held = info.round_quantity(operation.quantity - sold)
    stops = [o for o in orders if o.status in PROTECTING_STATUSES
             and order_generation(intent_id, OrderRole.STOP, o.client_order_id) is not None]
    latest = max(stops, key=lambda o: order_generation(intent_id, OrderRole.STOP, o.client_order_id), default=None)
    protection = (f"protected by {latest.client_order_id} (stop @ {fmt(latest.stop_price)})" if latest
                  else "UNPROTECTED: no stop on Binance")
    return (f"the protective stop could not be placed ({stop_error}) and the exit at market sold only {fmt(sold)} "
            f"of {fmt(operation.quantity)} {base}: {fmt(held)} {base} is still held, {protection} — operation "
            f"{operation.id} stays ACTIVE; run `robson monitor --once` to sell the rest ({detail})")
