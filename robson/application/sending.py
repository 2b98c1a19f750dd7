"""Sending an order exactly once: every send is recorded first, and a lost answer is never answered by resending.

Shared by execute, the monitors and closing by hand: a step that may send an order looks it
up on the exchange first; if the exchange does not show it, the audit trail says whether it
was ever sent, and while such an earlier send could still arrive nothing is sent again.
"""

from __future__ import annotations

from robson.application.ports import Clock, Exchange, Store
from robson.domain.intent import TradingIntent
from robson.domain.orders import AuditEvent, AuditKind
from robson.errors import AnswerLost


def last_send(store: Store, intent_id: str, order_id: str) -> AuditEvent | None:
    """Return the latest record of sending order_id, if robson ever recorded one."""
    with store.read() as session:
        sends = [e for e in session.audit_trail(intent_id=intent_id)
                 if e.kind is AuditKind.ORDER_SENT and e.data.get("client_order_id") == order_id]
    return sends[-1] if sends else None


def safe_to_send(store: Store, exchange: Exchange, intent: TradingIntent, order_id: str, what: str) -> bool:
    """Return whether order_id was ever sent; raise AnswerLost while an earlier send could still arrive."""
    sent = last_send(store, intent.id, order_id)
    if sent is None:
        return False
    stamp = sent.data.get("send_stamp")
    if stamp is not None and exchange.may_still_arrive(int(stamp)):
        raise AnswerLost(
            f"the {what} {order_id} was sent at {sent.at:%H:%M:%S} UTC and {exchange.name} does not show it yet; "
            "it could still be executed, so nothing was resent",
            hint="run `robson reconcile` in a minute: it settles the order once the exchange can no longer accept it",
        )
    return True


def record_send(store: Store, exchange: Exchange, clock: Clock, intent: TradingIntent, order_id: str,
                 message: str) -> None:
    with store.transaction() as tx:
        tx.record(AuditEvent(at=clock.now(), kind=AuditKind.ORDER_SENT, intent_id=intent.id, message=message,
                              data={"client_order_id": order_id, "send_stamp": exchange.send_stamp()}))
