"""Use cases on the intent queue: list, show with history, cancel."""

from __future__ import annotations

from dataclasses import dataclass

from robson.application.ports import Clock, Store
from robson.domain.intent import PLAN_AGAIN, TERMINAL, IntentEvent, IntentStatus, TradingIntent
from robson.domain.market import check_not_before
from robson.domain.orders import AuditEvent, AuditKind, Order
from robson.errors import IllegalTransition


@dataclass(frozen=True, slots=True)
class IntentHistory:
    intent: TradingIntent
    orders: list[Order]
    trail: list[AuditEvent]


def list_intents(status: IntentStatus | None, *, store: Store) -> list[TradingIntent]:
    with store.read() as session:
        return session.list_intents(status)


def intent_history(intent_id: str, *, store: Store) -> IntentHistory:
    """Return an intent by ID or unique prefix with its orders and audit trail."""
    with store.read() as session:
        intent = session.get_intent(session.resolve_intent_id(intent_id))
        return IntentHistory(intent, session.orders_for_intent(intent.id), session.audit_trail(intent_id=intent.id))


def cancel_intent(intent_id: str, *, store: Store, clock: Clock) -> tuple[TradingIntent, IntentStatus]:
    """Cancel a PENDING or VALIDATED intent; return it and its previous state; raise IllegalTransition."""
    now = clock.now()
    with store.transaction() as tx:
        intent = tx.get_intent(tx.resolve_intent_id(intent_id))
        if intent.status in TERMINAL or intent.status is IntentStatus.EXECUTING:
            message, hint = _not_cancellable(intent)
            raise IllegalTransition(message, hint=hint)
        check_not_before(now, intent.updated_at, f"the last change of {intent.id}")
        cancelled = intent.apply(IntentEvent.CANCEL, now)
        tx.update_intent(cancelled, expected_status=intent.status)
        tx.record(AuditEvent(at=now, kind=AuditKind.CANCELLED, intent_id=intent.id, message="cancelled by the user"))
    return cancelled, intent.status


def _not_cancellable(intent: TradingIntent) -> tuple[str, str | None]:
    """Say why an intent past PENDING and VALIDATED cannot be cancelled, and what to do instead."""
    why = {
        IntentStatus.FAILED: ("it failed and is final: nothing will ever execute it", PLAN_AGAIN),
        IntentStatus.CANCELLED: ("it is cancelled already", None),
        IntentStatus.EXECUTED: (f"it was executed: its position is operation {intent.operation_id}",
                                f"close the position with: robson operation close {intent.operation_id}"),
        IntentStatus.EXECUTING: ("its orders are being placed", "run robson reconcile to settle it"),
        IntentStatus.EXPIRED: ("its waiting entry expired and was cancelled on the exchange", None),
    }
    reason, hint = why[intent.status]
    return f"intent {intent.id} is {intent.status.value} and cannot be cancelled: {reason}", hint
