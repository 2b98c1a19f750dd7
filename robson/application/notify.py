"""Notifications: what robson tells the trader after the state is saved, and how to build each one.

A `Notification` is plain data (kind, time, title, text, JSON-ready data with money as strings).
The builders below are pure: they turn what a use case returned (a monitor report, an execution,
a manual close or modification, an intent created from a signal) into notifications. Delivery is
an adapter behind the `Notifier` protocol (robson/adapters/notify.py); it must never raise into
trading code nor hold it up.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from robson.domain.money import fmt
from robson.domain.operation import Operation, OperationStatus, r_multiple

if TYPE_CHECKING:  # only for annotations: the builders read attributes, nothing else
    from robson.application.alerts import AlertReport, FiredAlert
    from robson.application.execute import ExecutionResult
    from robson.application.watching import Halt, Modification, MonitorReport, OperationCheck
    from robson.domain.intent import TradingIntent
    from robson.domain.monitoring import StopMove
    from robson.domain.signals import Signal


class EventKind(StrEnum):
    INTENT_CREATED = "intent_created"  # from a signal, by a scan's auto-entry
    EXECUTED = "executed"
    STOP_MOVED = "stop_moved"
    CLOSED = "closed"
    HALTED = "halted"
    MONITOR_ERROR = "monitor_error"
    ALERT_FIRED = "alert_fired"  # a price alert reached (and the plan it arms validated)


EVENT_KINDS: tuple[str, ...] = tuple(k.value for k in EventKind)


@dataclass(frozen=True, slots=True)
class Notification:
    """One event worth telling the trader; `data` holds JSON-ready values (money as strings)."""

    kind: EventKind
    at: datetime
    title: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """A stable id, so a receiver can drop a duplicate delivered by a retry."""
        subject = (self.data.get("alert_id") or self.data.get("operation_id") or self.data.get("intent_id")
                   or self.data.get("rule") or "robson")
        return f"{self.kind.value}:{subject}:{int(self.at.timestamp() * 1000)}"

    def to_document(self) -> dict[str, Any]:
        """Return the JSON document a webhook receives."""
        return {"source": "robson", "id": self.key, "kind": self.kind.value, "at": self.at.isoformat(),
                "title": self.title, "text": self.text, "data": self.data}


class Notifier(Protocol):
    """Delivers notifications without raising and without holding up the caller."""

    @property
    def enabled(self) -> bool: ...

    def notify(self, notifications: Iterable[Notification]) -> None: ...

    def close(self) -> None: ...


class NullNotifier:
    """The notifier when nothing is configured: costs nothing, sends nothing."""

    enabled = False

    def notify(self, notifications: Iterable[Notification]) -> None:
        """Drop the notifications."""

    def close(self) -> None:
        """Nothing to wait for."""


# --- builders -----------------------------------------------------------------------------


def _money(value: Decimal | None, places: int | None = None) -> str | None:
    return None if value is None else fmt(value, places)


def _position(op: Operation) -> dict[str, Any]:
    return {"operation_id": op.id, "intent_id": op.intent_id, "symbol": op.symbol, "side": op.side.value,
            "mode": op.mode, "strategy": op.strategy, "quantity": _money(op.quantity),
            "entry_price": _money(op.entry_price), "stop": _money(op.stop), "target": _money(op.target),
            "quote_asset": op.quote_asset}


def event_closed(op: Operation, *, by: str = "monitor", gapped: bool = False) -> Notification:
    """Return the 'closed' notification of a CLOSED operation, with its realized P&L in quote and in R."""
    reason = op.close_reason.value if op.close_reason else "closed"
    r = r_multiple(op)
    r_text = f" ({fmt(r, 2)} R)" if r is not None else ""
    pnl = f"{fmt(op.realized_pnl, 2)} {op.quote_asset}{r_text}"
    return Notification(
        kind=EventKind.CLOSED, at=op.closed_at or op.updated_at,
        title=f"CLOSED {op.symbol} {op.side.value} {op.id} ({reason}): P&L {pnl}",
        text=f"{op.id} closed by {by}: {reason} @ {fmt(op.exit_price)} (entry {fmt(op.entry_price)}, "
             f"{fmt(op.quantity)} {op.symbol}, fee {fmt(op.exit_fee, 8)} {op.quote_asset}); realized P&L {pnl}"
             + (" — gapped through the stop" if gapped else ""),
        data=_position(op) | {"reason": reason, "closed_by": by, "exit_price": _money(op.exit_price),
                              "exit_fee": _money(op.exit_fee), "realized_pnl": _money(op.realized_pnl),
                              "r_multiple": _money(r, 4), "gapped": gapped,
                              "closed_at": op.closed_at.isoformat() if op.closed_at else None},
    )


def event_stop_moved(op: Operation, old_stop: Decimal, new_stop: Decimal, at: datetime, reason: str,
                     best_price: Decimal | None = None) -> Notification:
    """Return the 'stop moved' notification of one move of op's stop."""
    why = f"{reason}" + (f", best price {fmt(best_price)}" if best_price is not None else "")
    return Notification(
        kind=EventKind.STOP_MOVED, at=at,
        title=f"STOP MOVED {op.symbol} {op.side.value} {op.id}: {fmt(old_stop)} → {fmt(new_stop)}",
        text=f"{op.id} stop moved {fmt(old_stop)} → {fmt(new_stop)} ({why}); entry {fmt(op.entry_price)}",
        data=_position(op) | {"old_stop": _money(old_stop), "new_stop": _money(new_stop), "stop": _money(new_stop),
                              "reason": reason, "best_price": _money(best_price)},
    )


def _move_event(op: Operation, move: StopMove) -> Notification:
    return event_stop_moved(op, move.old_stop, move.new_stop, move.at, move.reason, move.best_price)


def events_halted(halts: Sequence[Halt], at: datetime) -> list[Notification]:
    """Return one 'halted' notification per loss limit reached."""
    return [Notification(
        kind=EventKind.HALTED, at=at, title=f"TRADING HALTED: {h.rule}", text=h.message,
        data={"rule": h.rule, "realized_pnl": _money(h.realized_pnl), "loss_percent": _money(h.loss_percent, 4),
              "limit_percent": _money(h.limit_percent), "capital": _money(h.capital)},
    ) for h in halts]


def event_monitor_error(message: str, at: datetime, operation_id: str | None = None, *,
                        intent_id: str | None = None) -> Notification:
    """Return a 'monitor error' notification: a tick failed, an operation could not be checked, or an
    execution (intent_id) is not settled."""
    where = f"{operation_id}: " if operation_id else ""
    data = {"operation_id": operation_id, "message": message} | ({"intent_id": intent_id} if intent_id else {})
    return Notification(kind=EventKind.MONITOR_ERROR, at=at, title=f"MONITOR ERROR {where}{message}"[:200],
                        text=f"monitor: {where}{message}", data=data)


def _check_events(check: OperationCheck) -> list[Notification]:
    events = [_move_event(check.operation, move) for move in check.moves]
    if check.exit is not None:
        events.append(event_closed(check.operation, gapped=check.exit.gapped))
    return events


def events_from_monitor_report(report: MonitorReport) -> list[Notification]:
    """Return the tick's notifications: stop moves and closes per operation, then halts, then errors."""
    events = [event for entry in report.entries_filled if entry.result is not None
              for event in events_executed(entry.result)]
    events += [event for check in report.checks for event in _check_events(check)]
    events += events_halted(report.halts, report.at)
    events += [event_monitor_error(p.message, report.at, p.operation_id) for p in report.errors]
    events += [event_monitor_error(p.message, report.at, intent_id=p.operation_id) for p in report.unresolved]
    if report.alerts is not None:
        events += events_from_alert_report(report.alerts)
    return events


def events_from_modification(modification: Modification) -> list[Notification]:
    """Return what `operation modify` did: the monitor's catch-up moves, then a stop moved by hand."""
    events = _check_events(modification.catch_up) if modification.catch_up is not None else []
    before, op = modification.before, modification.operation
    if op.stop != before.stop:
        events.append(event_stop_moved(op, before.stop, op.stop, op.updated_at, "manual"))
    return events


def events_executed(result: ExecutionResult) -> list[Notification]:
    """Return 'executed', and 'closed' too when the stop could not be placed and the position was exited."""
    executed = event_executed(result)
    if executed is None or result.operation is None:
        return []
    if result.operation.status is OperationStatus.CLOSED:
        return [executed, event_closed(result.operation, by="execute: the stop could not be placed")]
    return [executed]


def event_executed(result: ExecutionResult) -> Notification | None:
    """Return the 'executed' notification, or None when the intent had been executed before."""
    if result.already_executed or result.operation is None:
        return None
    op, intent = result.operation, result.intent
    mode = "DRY-RUN" if op.mode == "paper" else "LIVE"
    return Notification(
        kind=EventKind.EXECUTED, at=op.opened_at,
        title=f"EXECUTED {mode} {op.side.value} {fmt(op.quantity)} {op.symbol} @ {fmt(op.entry_price)} ({op.id})",
        text=f"{intent.id} executed {mode} → operation {op.id}: {op.side.value} {fmt(op.quantity)} {op.symbol} "
             f"@ {fmt(op.entry_price)}, stop {fmt(op.stop)}, target {fmt(op.target)}, "
             f"risk {fmt(op.initial_risk, 2)} {op.quote_asset} ({op.strategy})",
        data=_position(op) | {"dry_run": op.mode == "paper", "entry_fee": _money(op.entry_fee),
                              "initial_risk": _money(op.initial_risk), "source": intent.source.value,
                              "opened_at": op.opened_at.isoformat()},
    )


def event_intent_from_signal(intent: TradingIntent, signal: Signal) -> Notification:
    """Return the 'intent created' notification of an intent a scan created from a confirmed signal."""
    return Notification(
        kind=EventKind.INTENT_CREATED, at=intent.created_at,
        title=f"INTENT {intent.side.value} {intent.symbol} from {signal.pattern} ({intent.strategy}): {intent.id} "
              f"{intent.status.value}",
        text=f"{intent.id} ({intent.status.value}) from signal {signal.id} {signal.pattern} on {signal.symbol} "
             f"{signal.timeframe}, confidence {fmt(signal.confidence)}: {intent.side.value} {fmt(intent.quantity)} "
             f"@ {fmt(intent.entry)}, stop {fmt(intent.stop)}, target {fmt(intent.target)}. "
             f"Review it: robson plan show {intent.id}",
        data={"intent_id": intent.id, "status": intent.status.value, "symbol": intent.symbol,
              "side": intent.side.value, "strategy": intent.strategy, "timeframe": intent.timeframe,
              "entry": _money(intent.entry), "stop": _money(intent.stop), "target": _money(intent.target),
              "quantity": _money(intent.quantity), "signal_id": signal.id, "pattern": signal.pattern,
              "confidence": _money(signal.confidence), "candle_open_time": signal.candle_open_time},
    )


def events_from_alert_report(report: AlertReport) -> list[Notification]:
    """Return one 'alert fired' notification per alert the check fired."""
    return [event_alert_fired(fired) for fired in report.fired]


def event_alert_fired(fired: FiredAlert) -> Notification:
    """Return the 'alert fired' notification: the candle that reached the price and, for an armed plan, its verdict."""
    from robson.domain.market import ms_to_datetime

    alert = fired.alert
    candle = ms_to_datetime(alert.fired_candle_ms) if alert.fired_candle_ms is not None else None
    reached = f"{alert.condition} reached by {alert.reached_text(fired.timeframe, fired.gapped)}"
    verdict = alert.verdict
    text = f"{alert.id}: {reached}." + (f" Note: {alert.note}." if alert.note else "")
    if verdict is not None:
        text += f" Plan {verdict['intent_id']}: {plan_outcome(verdict)}"
    return Notification(
        kind=EventKind.ALERT_FIRED, at=alert.fired_at or alert.updated_at,
        title=f"ALERT {alert.condition}: reached {fmt(alert.fired_price)} ({alert.id})"
              + (f"; {verdict['intent_id']} {verdict['verdict'] or 'not validated'}" if verdict else ""),
        text=text,
        data={"alert_id": alert.id, "symbol": alert.symbol, "direction": alert.direction.value,
              "price": _money(alert.price), "fired_price": _money(alert.fired_price),
              "candle_open": candle.isoformat() if candle else None, "timeframe": fired.timeframe,
              "gapped": fired.gapped, "note": alert.note, "plan_id": alert.plan_id,
              "verdict": None if verdict is None else {k: verdict.get(k) for k in
                                                       ("intent_id", "verdict", "status", "at", "message")}},
    )


def plan_outcome(verdict: dict[str, Any]) -> str:
    """Say what became of the plan an alert armed, and what a person may do next (robson never executes it)."""
    intent_id = verdict["intent_id"]
    if verdict.get("verdict") is None:
        return f"{verdict['message']}"
    if verdict.get("status") == "VALIDATED":
        return (f"{verdict['message']} → VALIDATED. To trade it: robson execute {intent_id} (dry-run; add --live "
                "--acknowledge-risk for real orders)")
    return f"{verdict['message']} → {verdict.get('status')}"
