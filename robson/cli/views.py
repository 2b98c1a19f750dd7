"""Documents for --json and the human tables: one view of each domain object."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from robson.application.operations import OperationView
from robson.domain.intent import TradingIntent
from robson.domain.money import fmt
from robson.domain.operation import Operation, r_multiple
from robson.domain.orders import AuditEvent, Order

_CENT_4 = Decimal("0.0001")
_CENT_8 = Decimal("0.00000001")


def intent_doc(intent: TradingIntent) -> dict[str, Any]:
    d = intent.details
    return {
        "id": intent.id,
        "status": intent.status,
        "symbol": intent.symbol,
        "side": intent.side,
        "strategy": intent.strategy,
        "source": intent.source,
        "timeframe": intent.timeframe,
        "capital": intent.capital,
        "risk_percent_budget": intent.risk_percent,
        "entry": intent.entry,
        "entry_source": d.get("entry_source"),
        "stop": intent.stop,
        "stop_method": intent.stop_method,
        "stop_label": d.get("stop_label"),
        "stop_distance_percent": d.get("stop_distance_percent"),
        "quantity": intent.quantity,
        "notional": d.get("notional"),
        "capped_by": d.get("capped_by"),
        "risk": d.get("risk_at_stop"),
        "risk_percent": d.get("risk_percent"),
        "fees": d.get("fees"),
        "risk_with_fees": d.get("risk_with_fees"),
        "risk_with_fees_percent": d.get("risk_with_fees_percent"),
        "target": intent.target,
        "target_source": d.get("target_source"),
        "reward_to_risk": d.get("reward_to_risk"),
        "quote_asset": d.get("quote_asset"),
        "note": intent.note,
        "confidence": intent.confidence,
        "signal_id": intent.signal_id,
        "created_at": intent.created_at,
        "updated_at": intent.updated_at,
        "validated_at": intent.validated_at,
        "validation": intent.validation,
        "execution": intent.execution,
        "operation_id": intent.operation_id,
    }


def _shown(value: object, places: int) -> str:
    """Round a stored decimal string for display (JSON keeps the exact value)."""
    if value is None:
        return "-"
    return fmt(Decimal(str(value)), places)


def intent_rows(intent: TradingIntent) -> list[tuple[str, str]]:
    d = intent.details
    quote = d.get("quote_asset", "")
    rows = [
        ("intent", f"{intent.id}  {intent.status.value}"),
        ("trade", f"{intent.side.value} {fmt(intent.quantity)} {intent.symbol} ({intent.strategy}, {intent.timeframe})"),
        ("entry", f"{fmt(intent.entry)} ({d.get('entry_source', '-')})"),
        ("stop", f"{fmt(intent.stop)}  ({_shown(d.get('stop_distance_percent'), 2)}% from entry)  [{intent.stop_method}]"),
    ]
    if d.get("stop_label"):
        rows.append(("stop method", str(d["stop_label"])))
    capped = f", capped by {d['capped_by']}" if d.get("capped_by") else ""
    rows += [
        ("quantity", f"{fmt(intent.quantity)} (risk rule gave {_shown(d.get('raw_quantity'), 8)}{capped})"),
        ("notional", f"{_shown(d.get('notional'), 2)} {quote} ({_shown(d.get('notional_percent'), 2)}% of capital)"),
        ("risk", f"{_shown(d.get('risk_at_stop'), 2)} {quote} = {_shown(d.get('risk_percent'), 2)}% of capital "
                 f"{fmt(intent.capital)} (budget {_shown(d.get('risk_budget'), 2)})"),
        ("risk with fees", f"{_shown(d.get('risk_with_fees'), 2)} {quote} = {_shown(d.get('risk_with_fees_percent'), 2)}% "
                           f"(taker fees {_shown(d.get('fees'), 2)} both ways)"),
        ("target", f"{fmt(intent.target)}  R:R {d.get('reward_to_risk') or '-'} ({d.get('target_source', '-')})"),
    ]
    if intent.note:
        rows.append(("note", intent.note))
    if intent.operation_id:
        rows.append(("operation", intent.operation_id))
    return rows


def _rounded(value: Decimal | None, places: Decimal) -> Decimal | None:
    return None if value is None else value.quantize(places)


def operation_doc(op: Operation) -> dict[str, Any]:
    return {
        "id": op.id,
        "intent_id": op.intent_id,
        "status": op.status,
        "mode": op.mode,
        "symbol": op.symbol,
        "side": op.side,
        "strategy": op.strategy,
        "quantity": op.quantity,
        "entry_price": op.entry_price,
        "entry_fee": op.entry_fee,
        "initial_stop": op.initial_stop,
        "stop": op.stop,
        "target": op.target,
        "notional": op.notional,
        "initial_risk": op.initial_risk,
        "opened_at": op.opened_at,
        "exit_price": op.exit_price,
        "exit_fee": op.exit_fee if op.closed_at else None,
        "realized_pnl": op.realized_pnl,
        "realized_r": _rounded(r_multiple(op), _CENT_4),
        "close_reason": op.close_reason,
        "closed_at": op.closed_at,
        "quote_asset": op.quote_asset,
    }


def operation_view_doc(view: OperationView) -> dict[str, Any]:
    doc = operation_doc(view.operation)
    m = view.mark
    doc.update({
        "price": m.price if m else None,
        "unrealized_pnl": _rounded(m.unrealized_pnl, _CENT_8) if m else None,
        "unrealized_percent": _rounded(m.unrealized_percent, _CENT_4) if m else None,
        "r_multiple": _rounded(m.r_multiple, _CENT_4) if m else None,
        "distance_to_stop": m.distance_to_stop if m else None,
        "distance_to_stop_percent": _rounded(m.distance_to_stop_percent, _CENT_4) if m else None,
    })
    return doc


def order_doc(order: Order) -> dict[str, Any]:
    return {
        "client_order_id": order.client_order_id,
        "exchange": order.exchange,
        "symbol": order.symbol,
        "side": order.side,
        "type": order.type,
        "status": order.status,
        "quantity": order.quantity,
        "price": order.price,
        "stop_price": order.stop_price,
        "target_price": order.target_price,
        "filled_quantity": order.filled_quantity,
        "average_price": order.average_price,
        "fee": order.fee,
        "fee_asset": order.fee_asset,
        "created_at": order.created_at,
    }


def audit_doc(event: AuditEvent) -> dict[str, Any]:
    return {"at": event.at, "kind": event.kind, "message": event.message,
            "intent_id": event.intent_id, "operation_id": event.operation_id}
