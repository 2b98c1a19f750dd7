"""Use case: price alerts — set one, remove one, and check them on the candles closed since their last check.

A check walks each ACTIVE alert over its symbol's candles on the finest timeframe the market holds
(robson.domain.alerts: the first candle whose high or low reached the price fires it, a wick
included). Firing is a compare-and-set ACTIVE → FIRED written with its audit event, so a monitor
tick and `robson alert check --once` racing each other fire it, and report it, exactly once. An
alert that arms a plan then has that intent validated — the validation `robson validate` runs, at
that moment — and keeps the verdict. Nothing is ever executed: a person decides every LIVE trade.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from robson.application.ports import Clock, MarketData, Store
from robson.application.validate import ValidationOutcome, validation_summary
from robson.application.watching import fetch_candles
from robson.domain.alerts import Alert, AlertStatus, Crossing, Direction, new_alert, parse_direction, scan_candles
from robson.domain.intent import IntentStatus, TradingIntent
from robson.domain.market import PriceQuote, check_not_before, ms_to_datetime, timeframe_ms
from robson.domain.money import fmt, parse_decimal
from robson.domain.orders import AuditEvent, AuditKind
from robson.errors import IllegalTransition, InvalidInput, LeaseLost, MarketDataError, NotFound, RobsonError

ARMABLE = (IntentStatus.PENDING, IntentStatus.VALIDATED)  # what `robson validate` accepts

PlanValidator = Callable[[str], ValidationOutcome]
"""Validate an intent by full ID now, as `robson validate` does (robson.application.validate.validate over the
command's store, market, wallet, account and clock); raise what validate raises."""


# --- add and remove ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertRequest:
    """What `robson alert add` was given, as typed."""

    symbol: str
    direction: str  # "above" or "below"
    price: str
    note: str | None = None
    plan: str | None = None  # an intent ID or unique prefix


@dataclass(frozen=True, slots=True)
class AddedAlert:
    alert: Alert
    quote: PriceQuote  # the market price when it was set
    plan: TradingIntent | None


def add_alert(request: AlertRequest, *, store: Store, market: MarketData, clock: Clock) -> AddedAlert:
    """Set an ACTIVE alert; raise InvalidInput (a bad value, or a price the market is at or past already) or NotFound."""
    symbol = request.symbol.strip().upper()
    if not symbol.isalnum():
        raise InvalidInput(f"symbol must be letters and digits like BTCUSDT, got '{request.symbol[:40]}'")
    direction = parse_direction(request.direction)
    price = parse_decimal(request.price, "price")
    market.symbol_info(symbol)  # an unknown symbol is NotFound, naming the known ones
    now = clock.now()
    plan = None if request.plan is None else _armable(store, request.plan, now)
    quote = market.last_price(symbol)
    if direction.satisfied_by(price, quote.price):
        side = "at or above" if direction is Direction.ABOVE else "at or below"
        raise InvalidInput(
            f"{symbol} is at {fmt(quote.price)} already ({quote.at:%Y-%m-%d %H:%M} UTC), {side} {fmt(price)}: "
            f"the alert would fire at once",
            hint="an 'above' alert waits for a rise to a price over the market, a 'below' alert for a fall under it")
    alert = new_alert(symbol, direction, price, at=now, note=request.note or None,
                      plan_id=None if plan is None else plan.id)
    arms = "" if plan is None else f", arming {plan.id} (validated when it fires)"
    with store.transaction() as tx:
        tx.add_alert(alert)
        tx.record(AuditEvent(at=now, kind=AuditKind.ALERT_ADDED, intent_id=alert.plan_id,
                             message=f"alert {alert.id} set: {alert.condition} (price {fmt(quote.price)}){arms}",
                             data={"alert_id": alert.id, "price_now": fmt(quote.price)}))
    return AddedAlert(alert, quote, plan)


def _armable(store: Store, text: str, now: datetime) -> TradingIntent:
    """The intent an alert may arm: one that `robson validate` would take at market time now."""
    with store.read() as session:
        intent = session.get_intent(session.resolve_intent_id(text))
    if intent.status not in ARMABLE:
        raise InvalidInput(f"intent {intent.id} is {intent.status.value}: an alert can arm only a PENDING or VALIDATED "
                           "plan (it is validated when the alert fires)")
    check_not_before(now, intent.updated_at, f"the last change of {intent.id} ({intent.status.value})")
    return intent


def remove_alert(text: str, *, store: Store, clock: Clock) -> Alert:
    """Mark an ACTIVE alert REMOVED (kept for history); raise NotFound, AmbiguousId or IllegalTransition."""
    with store.read() as session:
        alert = session.get_alert(session.resolve_alert_id(text))
    if alert.status is not AlertStatus.ACTIVE:
        raise IllegalTransition(f"alert {alert.id} is {alert.status.value}: only an ACTIVE alert can be removed")
    now = clock.now()
    check_not_before(now, alert.updated_at, f"the last change of {alert.id}")
    removed = alert.remove(now)
    with store.transaction() as tx:
        tx.update_alert(removed, expected_status=AlertStatus.ACTIVE)  # fired meanwhile: IllegalTransition
        tx.record(AuditEvent(at=now, kind=AuditKind.ALERT_REMOVED, intent_id=alert.plan_id,
                             message=f"alert {alert.id} removed: {alert.condition}", data={"alert_id": alert.id}))
    return removed


# --- check --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FiredAlert:
    """An alert this check fired, as stored: FIRED, with its armed plan's verdict when it has one."""

    alert: Alert
    timeframe: str  # of the candle that reached the price
    gapped: bool  # that candle opened at the price or beyond


@dataclass(frozen=True, slots=True)
class AlertProblem:
    alert_id: str
    message: str


@dataclass(frozen=True, slots=True)
class AlertReport:
    """What one check did: how many ACTIVE alerts it watched, which fired, which could not be checked."""

    at: datetime
    watched: int
    fired: tuple[FiredAlert, ...] = ()
    errors: tuple[AlertProblem, ...] = ()


def check_alerts(*, store: Store, market: MarketData, clock: Clock, validate_plan: PlanValidator) -> AlertReport:
    """Check every ACTIVE alert on the candles closed since its last check; fire, record and arm what they reached.

    A symbol whose candles cannot be had is an error of its alerts alone; the others are checked.
    An alert set after the market time (a replay further back) is not looked at.
    """
    now = clock.now()
    with store.read() as session:
        active = [a for a in session.list_alerts([AlertStatus.ACTIVE]) if a.created_at <= now]
    crossings: list[tuple[Alert, Crossing, str]] = []
    checked: list[tuple[str, int]] = []
    errors: list[AlertProblem] = []
    for symbol in sorted({a.symbol for a in active}):  # one candle fetch per symbol
        alerts = [a for a in active if a.symbol == symbol]
        try:
            timeframe, candles = fetch_candles(market, symbol, ms_to_datetime(min(a.since_ms for a in alerts)), now)
        except (MarketDataError, NotFound) as e:
            errors += [AlertProblem(a.id, f"{a.condition} not checked: {e}") for a in alerts]
            continue
        for alert in alerts:
            scan = scan_candles(alert, candles, timeframe_ms(timeframe))
            if scan.crossing is not None:
                crossings.append((alert, scan.crossing, timeframe))
            elif scan.checked_ms is not None:
                checked.append((alert.id, scan.checked_ms))
    if checked:
        with store.transaction() as tx:
            for alert_id, checked_ms in checked:
                tx.mark_alert_checked(alert_id, checked_ms, now)
    fired = []
    for alert, crossing, timeframe in crossings:
        claimed = _fire(store, alert, crossing, timeframe, now)
        if claimed is not None:
            if claimed.plan_id is not None:
                claimed = _arm(store, claimed, validate_plan, now)
            fired.append(FiredAlert(claimed, timeframe, crossing.gapped))
    return AlertReport(now, len(active), tuple(fired), tuple(errors))


def _fire(store: Store, alert: Alert, crossing: Crossing, timeframe: str, now: datetime) -> Alert | None:
    """Mark the alert FIRED with its audit event, if it is still ACTIVE; None when another check or command won."""
    fired = alert.fire(crossing, now)
    message = (f"alert {alert.id} fired: {alert.condition} reached by {fired.reached_text(timeframe, crossing.gapped)}"
               + (f"; validating {alert.plan_id}" if alert.plan_id else ""))
    try:
        with store.transaction() as tx:
            tx.update_alert(fired, expected_status=AlertStatus.ACTIVE)
            tx.record(AuditEvent(at=now, kind=AuditKind.ALERT_FIRED, intent_id=alert.plan_id, message=message,
                                 data={"alert_id": alert.id, "candle_open_time": crossing.candle_open_time,
                                       "timeframe": timeframe, "price": fmt(crossing.price),
                                       "gapped": crossing.gapped}))
    except IllegalTransition:  # fired by a check racing this one, or removed meanwhile: not this check's to report
        return None
    return fired


def _arm(store: Store, alert: Alert, validate_plan: PlanValidator, now: datetime) -> Alert:
    """Validate the plan the fired alert arms and keep the verdict with the alert; never execute anything."""
    armed = replace(alert, verdict=_verdict(alert.plan_id, validate_plan, now))
    with store.transaction() as tx:
        tx.update_alert(armed, expected_status=AlertStatus.FIRED)
    return armed


def _verdict(intent_id: str, validate_plan: PlanValidator, now: datetime) -> dict[str, Any]:
    """The plan's validation now, as the alert keeps it; a plan that cannot be validated says why."""
    try:
        outcome = validate_plan(intent_id)
    except LeaseLost:
        raise
    except RobsonError as e:  # cancelled, executed or failed meanwhile, its strategy file broken, ...
        return {"intent_id": intent_id, "verdict": None, "status": None, "at": now.isoformat(),
                "message": f"not validated: {e}"}
    return {"intent_id": intent_id, "verdict": outcome.verdict.value, "status": outcome.intent.status.value,
            "at": now.isoformat(), "message": validation_summary(outcome.verdict, outcome.results),
            "results": [r.to_dict() for r in outcome.results]}
