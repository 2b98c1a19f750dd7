"""Sending an order exactly once: every send is recorded first, and a lost answer is never answered by resending.

Shared by execute, the monitors and closing by hand: a step that may send an order looks it
up on the exchange first; if the exchange does not show it, the audit trail says whether it
was ever sent, and while such an earlier send could still arrive nothing is sent again. A send
the exchange refused for certain (an error answer, a rate limit, a connection never made) is
recorded as refused: it can never arrive, so the order may be sent again at once.
"""

from __future__ import annotations

from collections.abc import Callable

from robson.application.ports import Clock, Exchange, Store
from robson.domain.intent import TradingIntent
from robson.domain.orders import AuditEvent, AuditKind, Order
from robson.errors import AnswerLost, DuplicateOrder, RobsonError


def _records(store: Store, intent_id: str, order_id: str, kind: AuditKind) -> list[AuditEvent]:
    with store.read() as session:
        return [e for e in session.audit_trail(intent_id=intent_id)
                if e.kind is kind and e.data.get("client_order_id") == order_id]


def last_send(store: Store, intent_id: str, order_id: str) -> AuditEvent | None:
    """Return the latest record of sending order_id, if robson ever recorded one."""
    sends = _records(store, intent_id, order_id, AuditKind.ORDER_SENT)
    return sends[-1] if sends else None


def refused(store: Store, intent_id: str, send: AuditEvent) -> bool:
    """True when the exchange refused that send for certain: it never reached the book and never will."""
    order_id, stamp = send.data.get("client_order_id"), send.data.get("send_stamp")
    return any(e.data.get("send_stamp") == stamp for e in _records(store, intent_id, order_id, AuditKind.ORDER_REFUSED))


def safe_to_send(store: Store, exchange: Exchange, intent: TradingIntent, order_id: str, what: str) -> bool:
    """Return whether order_id was ever sent; raise AnswerLost while an earlier send could still arrive."""
    sent = last_send(store, intent.id, order_id)
    if sent is None:
        return False
    stamp = sent.data.get("send_stamp")
    if stamp is not None and not refused(store, intent.id, sent) and exchange.may_still_arrive(int(stamp)):
        raise AnswerLost(
            f"the {what} {order_id} was sent at {sent.at:%H:%M:%S} UTC and {exchange.name} does not show it yet; "
            "it could still be executed, so nothing was resent",
            hint="run `robson reconcile` in a minute: it settles the order once the exchange can no longer accept it",
        )
    return True


def record_send(store: Store, exchange: Exchange, clock: Clock, intent: TradingIntent, order_id: str,
                message: str, *, operation_id: str | None = None, **extra: str) -> int:
    """Record that order_id is about to be sent, stamped with the exchange's clock; return the stamp."""
    stamp = exchange.send_stamp()
    with store.transaction() as tx:
        tx.record(AuditEvent(at=clock.now(), kind=AuditKind.ORDER_SENT, intent_id=intent.id,
                             operation_id=operation_id, message=message,
                             data={"client_order_id": order_id, "send_stamp": stamp, **extra}))
    return stamp


def send_once(store: Store, exchange: Exchange, clock: Clock, intent: TradingIntent, order_id: str, message: str,
              place: Callable[[], Order], *, operation_id: str | None = None, **extra: str) -> Order:
    """Record the send, then place(); record a refusal the exchange made for certain, and raise what place raised.

    A lost answer (AnswerLost) or a duplicate is not a refusal: the order may exist, and is looked up.
    """
    stamp = record_send(store, exchange, clock, intent, order_id, message, operation_id=operation_id, **extra)
    try:
        return place()
    except (AnswerLost, DuplicateOrder):
        raise
    except RobsonError as e:
        with store.transaction() as tx:
            tx.record(AuditEvent(at=clock.now(), kind=AuditKind.ORDER_REFUSED, intent_id=intent.id,
                                 operation_id=operation_id, message=f"{order_id} refused: {e}",
                                 data={"client_order_id": order_id, "send_stamp": stamp}))
        raise
