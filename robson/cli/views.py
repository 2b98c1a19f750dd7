"""Documents for --json and the human tables: one view of each domain object."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from robson.domain.intent import TradingIntent
from robson.domain.money import fmt
from robson.domain.operation import Operation, OperationStatus, PartialExit, r_multiple
from robson.domain.orders import AuditEvent, Order

if TYPE_CHECKING:  # the application layer (and what it imports) is loaded by the commands that run it
    from robson.application.operations import OperationView

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
        "capital_source": d.get("capital_source"),
        "risk_percent_budget": intent.risk_percent,
        "entry": intent.entry,
        "entry_source": d.get("entry_source"),
        "entry_order": intent.entry_order,
        "expires_at": intent.expires_at,
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
        "ladder": d.get("ladder"),  # the targets that each close a part (robson.domain.ladder.ladder_doc), or null
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


_CAPITAL_SOURCES = {"config": "the capital setting", "equity": "capital: equity, the account's equity at market prices",
                    "given": "--capital"}


def intent_rows(intent: TradingIntent) -> list[tuple[str, str]]:
    d = intent.details
    quote = d.get("quote_asset", "")
    rows = [
        ("intent", f"{intent.id}  {intent.status.value}"),
        ("trade", f"{intent.side.value} {fmt(intent.quantity)} {intent.symbol} ({intent.strategy}, {intent.timeframe})"),
        ("entry", f"{fmt(intent.entry)} ({d.get('entry_source', '-')})" + _waiting(intent)),
        ("stop", f"{fmt(intent.stop)}  ({_shown(d.get('stop_distance_percent'), 2)}% from entry)  [{intent.stop_method}]"),
    ]
    if d.get("stop_label"):
        rows.append(("stop method", str(d["stop_label"])))
    capped = f", capped by {d['capped_by']}" if d.get("capped_by") else ""
    rows += [
        ("capital", f"{fmt(intent.capital)} {quote}" + (f" ({_CAPITAL_SOURCES[d['capital_source']]})"
                                                        if d.get("capital_source") in _CAPITAL_SOURCES else "")),
        ("quantity", f"{fmt(intent.quantity)} (risk rule gave {_shown(d.get('raw_quantity'), 8)}{capped})"),
        ("notional", f"{_shown(d.get('notional'), 2)} {quote} ({_shown(d.get('notional_percent'), 2)}% of capital)"),
        ("risk", f"{_shown(d.get('risk_at_stop'), 2)} {quote} = {_shown(d.get('risk_percent'), 2)}% of capital "
                 f"{fmt(intent.capital)} (budget {_shown(d.get('risk_budget'), 2)})"),
        ("risk with fees", f"{_shown(d.get('risk_with_fees'), 2)} {quote} = {_shown(d.get('risk_with_fees_percent'), 2)}% "
                           f"(taker fees {_shown(d.get('fees'), 2)} both ways)"),
    ]
    if d.get("ladder"):
        rows.append(("targets", f"{len(d['ladder']['parts'])} (below), the last part closing at {fmt(intent.target)}  "
                                f"blended R:R {d.get('reward_to_risk') or '-'} ({d.get('target_source', '-')})"))
    else:
        rows.append(("target", f"{fmt(intent.target)}  R:R {d.get('reward_to_risk') or '-'} ({d.get('target_source', '-')})"))
    if intent.note:
        rows.append(("note", intent.note))
    if intent.operation_id:
        rows.append(("operation", intent.operation_id))
    return rows


LADDER_COLUMNS = ["#", "at", "target", "closes", "R", "then the stop", "risk left", "P&L if the stop then fills"]


def ladder_rows(ladder: dict[str, Any], base_asset: str) -> list[tuple[str, ...]]:
    """One row per target of a recorded ladder (robson.domain.ladder.ladder_doc), money to the cent."""
    from robson.domain.ladder import StopRule

    rows = []
    for part in ladder["parts"]:
        closes = f"{part['quantity']} {base_asset} ({part['close']})"
        if part["merged_into"] is not None:
            rows.append((str(part["number"]), part["at"], part["target"], f"0 (merged into #{part['merged_into']})",
                         _shown(part["r_multiple"], 2), "-", "-", "-"))
        elif part["stop_after"] is None:
            rows.append((str(part["number"]), part["at"], part["target"], closes, _shown(part["r_multiple"], 2),
                         "- (all closed)", _shown(part["risk_left"], 2),
                         f"{_shown(part['pnl_if_stopped'], 2)} (every target filled)"))
        else:
            rule = StopRule(part["then_stop"]).describe()
            rows.append((str(part["number"]), part["at"], part["target"], closes, _shown(part["r_multiple"], 2),
                         f"{part['stop_after']} ({rule})", _shown(part["risk_left"], 2),
                         _shown(part["pnl_if_stopped"], 2)))
    return rows


def _waiting(intent: TradingIntent) -> str:
    """How a limit or stop entry waits for its price, for the entry row."""
    if not intent.waits:
        return ""
    how = ("LIMIT: fills at this price or better" if intent.entry_order.value == "limit"
           else "STOP: triggers when the price reaches it, fills at it or worse")
    until = f", expires {intent.expires_at:%Y-%m-%d %H:%M} UTC" if intent.expires_at else ", until cancelled"
    return f"  [{how}{until}]"


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
        "held": op.held if op.status is OperationStatus.ACTIVE else None,
        "partial_exits": [partial_exit_doc(p) for p in op.parts],
        "realized_so_far": _rounded(op.parts_pnl, _CENT_8) if op.parts and op.realized_pnl is None else None,
        "targets_reached": op.reached if op.ladder is not None else None,
    }


def partial_exit_doc(part: PartialExit) -> dict[str, Any]:
    return {"number": part.number, "target": part.target, "quantity": part.quantity, "price": part.price,
            "fee": part.fee, "reason": part.reason, "at": part.at, "client_order_id": part.client_order_id}


def parts_text(parts: tuple[PartialExit, ...]) -> str:
    """The parts taken in one line: 0.00744 @ 34146.14 (target 1); 0.00372 @ 34725.37 (manual)."""
    return "; ".join(f"{fmt(p.quantity)} @ {fmt(p.price)} ({f'target {p.target}' if p.target else p.reason.value})"
                     for p in parts)


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


def unresolved_doc(unresolved) -> dict[str, Any]:
    """An intent still EXECUTING (robson.application.unresolved.Unresolved): what it may hold, unprotected or not."""
    intent, entry = unresolved.intent, unresolved.entry
    return {
        "intent_id": intent.id,
        "status": intent.status,
        "symbol": intent.symbol,
        "side": intent.side,
        "quantity": unresolved.quantity,
        "entry_filled": entry is not None,
        "entry_price": entry.average_price if entry is not None else None,
        "price": unresolved.price,
        "exposure": unresolved.exposure,
        "quote_asset": unresolved.intent.quote_asset,
        "protected": unresolved.protected,
        "stop_order": unresolved.protecting[0].client_order_id if unresolved.protected else None,
        "message": unresolved.describe(),
    }


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


# --- monitor, modify, report (issue 5) -------------------------------------------------------


def audit_event_doc(event: AuditEvent) -> dict[str, Any]:
    """The audit event with its data (old/new stop, fill prices, client order ids)."""
    return audit_doc(event) | {"data": event.data}


def _ms_time(ms: int | None):
    from robson.domain.market import ms_to_datetime

    return None if ms is None else ms_to_datetime(ms)


def monitor_check_doc(check) -> dict[str, Any]:
    op, exit_ = check.operation, check.exit
    return {
        "id": op.id,
        "symbol": op.symbol,
        "side": op.side,
        "status": op.status,
        "timeframe": check.timeframe,
        "candles": check.candles,
        "last_checked_at": op.last_checked_at,
        "stop_before": check.before.stop,
        "stop": op.stop,
        "moves": [{"at": m.at, "old_stop": m.old_stop, "new_stop": m.new_stop, "reason": m.reason,
                   "best_price": m.best_price, "candle_open": _ms_time(m.candle_open_time)} for m in check.moves],
        "exit": None if exit_ is None else {
            "reason": exit_.reason, "at": exit_.at, "price": op.exit_price, "trigger_price": exit_.trigger_price,
            "fee": op.exit_fee, "gapped": exit_.gapped, "candle_open": _ms_time(exit_.candle_open_time),
        },
        "realized_pnl": op.realized_pnl,
        "realized_r": _rounded(r_multiple(op), _CENT_4),
        "quote_asset": op.quote_asset,
        "notes": list(check.notes),  # what else happened (live: a stop re-placed, a partial fill watched)
        "partial_exits": [partial_exit_doc(p) for p in check.parts],
        "held": op.held if op.status is OperationStatus.ACTIVE else None,
    }


def halt_doc(halt) -> dict[str, Any]:
    return {"rule": halt.rule, "realized_pnl": halt.realized_pnl, "loss_percent": _rounded(halt.loss_percent, _CENT_4),
            "limit_percent": halt.limit_percent, "capital": halt.capital, "message": halt.message}


def monitor_report_doc(report) -> dict[str, Any]:
    return {
        "at": report.at,
        "checked": len(report.checks),
        "stop_moves": report.stop_moves,
        "closed": len(report.closed),
        "halted": bool(report.halts),
        "halts": [halt_doc(h) for h in report.halts],
        "operations": [monitor_check_doc(c) for c in report.checks],
        "skipped": [{"operation_id": p.operation_id, "reason": p.message} for p in report.skipped],
        "errors": [{"operation_id": p.operation_id, "message": p.message} for p in report.errors],
        "unresolved": [{"intent_id": p.operation_id, "message": p.message} for p in report.unresolved],
        "entries": [entry_check_doc(e) for e in report.entries],
        "alerts": None if report.alerts is None else alert_report_doc(report.alerts),
    }


def entry_check_doc(check) -> dict[str, Any]:
    """One look at a waiting entry (robson.application.entries.EntryCheck)."""
    return {"intent_id": check.intent.id, "symbol": check.intent.symbol, "order": check.intent.entry_order,
            "status": check.intent.status, "outcome": check.outcome, "message": check.message,
            "operation_id": check.operation_id}


def monitor_summary(report) -> str:
    """One line for cron mail and logs: what the tick did."""
    parts = [f"{len(report.checks)} checked", f"{report.stop_moves} stop move{'s' if report.stop_moves != 1 else ''}",
             f"{len(report.closed)} closed"]
    if report.skipped:
        parts.append(f"{len(report.skipped)} skipped")
    if report.errors:
        parts.append(f"{len(report.errors)} error{'s' if len(report.errors) != 1 else ''}")
    if report.unresolved:
        parts.append(f"{len(report.unresolved)} execution{'s' if len(report.unresolved) != 1 else ''} not settled")
    if report.entries:
        counts: dict[str, int] = {}
        for e in report.entries:
            counts[e.outcome] = counts.get(e.outcome, 0) + 1
        parts.append("entries: " + ", ".join(f"{n} {outcome}" for outcome, n in counts.items()))
    closes = [f"{c.operation.id} {c.exit.reason.value} @ {fmt(c.operation.exit_price)} "
              f"P&L {fmt(c.operation.realized_pnl, 2)} {c.operation.quote_asset}" for c in report.closed]
    if report.alerts is not None and report.alerts.fired:
        parts.append(_count(len(report.alerts.fired), "alert") + " fired")
        closes += [fired_alert_brief(f) for f in report.alerts.fired]
    return (f"monitor {report.at:%Y-%m-%d %H:%M} UTC: " + ", ".join(parts)
            + (f" ({'; '.join(closes)})" if closes else ""))


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


# --- price alerts ------------------------------------------------------------------------


def alert_doc(alert) -> dict[str, Any]:
    """A price alert: what it watches, how far it was checked, and when and how it fired (with an armed plan's verdict)."""
    return {
        "id": alert.id,
        "status": alert.status,
        "symbol": alert.symbol,
        "direction": alert.direction,
        "price": alert.price,
        "note": alert.note,
        "plan_id": alert.plan_id,
        "created_at": alert.created_at,
        "updated_at": alert.updated_at,
        "checked_through": _ms_time(alert.checked_ms),  # close time of the last candle checked
        "fired_at": alert.fired_at,
        "fired_candle_open": _ms_time(alert.fired_candle_ms),
        "fired_price": alert.fired_price,
        "verdict": alert.verdict,
    }


def alert_report_doc(report) -> dict[str, Any]:
    """One alert check (robson.application.alerts.AlertReport)."""
    return {
        "at": report.at,
        "watched": report.watched,
        "fired": [alert_doc(f.alert) | {"timeframe": f.timeframe, "gapped": f.gapped} for f in report.fired],
        "errors": [{"alert_id": p.alert_id, "message": p.message} for p in report.errors],
    }


def fired_alert_brief(fired) -> str:
    """'al-… BTCUSDT above 35000 reached 35012.5' and, for an armed plan, its verdict and status."""
    alert = fired.alert
    text = f"{alert.id} {alert.condition} reached {fmt(alert.fired_price)}"
    if alert.verdict is not None:
        verdict = alert.verdict
        text += f", {verdict['intent_id']} " + (f"{verdict['verdict']} → {verdict['status']}" if verdict["verdict"]
                                                else "not validated")
    return text


def alert_summary(report) -> str:
    """One line for cron mail and logs: what the alert check did."""
    parts = [f"{report.watched} watched", f"{len(report.fired)} fired"]
    if report.errors:
        parts.append(_count(len(report.errors), "error"))
    details = [fired_alert_brief(f) for f in report.fired]
    return (f"alert check {report.at:%Y-%m-%d %H:%M} UTC: " + ", ".join(parts)
            + (f" ({'; '.join(details)})" if details else ""))


_RATIO = Decimal("0.0001")


def _trade_ref(op: Operation | None) -> dict[str, Any] | None:
    if op is None:
        return None
    return {"id": op.id, "symbol": op.symbol, "realized_pnl": op.realized_pnl,
            "realized_r": _rounded(r_multiple(op), _CENT_4), "closed_at": op.closed_at}


def performance_doc(p) -> dict[str, Any]:
    """One strategy's figures; ratios rounded to 4 places, money exact."""
    return {
        "strategy": p.strategy,
        "trades": p.trades,
        "wins": p.wins,
        "losses": p.losses,
        "break_even": p.break_even,
        "win_rate_percent": _rounded(p.win_rate, _RATIO),
        "average_r": _rounded(p.average_r, _RATIO),
        "expectancy": _rounded(p.expectancy, _CENT_8),
        "expectancy_r": _rounded(p.expectancy_r, _RATIO),
        "profit_factor": _rounded(p.profit_factor, _RATIO),
        "profit_factor_infinite": p.profit_factor_infinite,
        "gross_profit": p.gross_profit,
        "gross_loss": p.gross_loss,
        "total_pnl": p.total_pnl,
        "total_fees": p.total_fees,
        "max_drawdown": p.max_drawdown,
        "max_drawdown_percent": _rounded(p.max_drawdown_percent, _RATIO),
        "best": _trade_ref(p.best),
        "worst": _trade_ref(p.worst),
        "periods": [{"period": x.period, "trades": x.trades, "wins": x.wins, "losses": x.losses, "pnl": x.pnl,
                     "r": _rounded(x.r, _RATIO)} for x in p.periods],
    }


# --- scan signals ----------------------------------------------------------------------


def candle_time(signal) -> str:
    """Return the open time of signal's candle as 'YYYY-MM-DD HH:MM' (UTC)."""
    return _ms_time(signal.candle_open_time).strftime("%Y-%m-%d %H:%M")


def signal_doc(signal) -> dict[str, Any]:
    """A scan signal: key, status, confidence, why it was found and decided, the values at its candle."""
    return {
        "id": signal.id,
        "status": signal.status,
        "strategy": signal.strategy,
        "pattern": signal.pattern,
        "symbol": signal.symbol,
        "timeframe": signal.timeframe,
        "side": signal.side,
        "candle_open": _ms_time(signal.candle_open_time),
        "confidence": signal.confidence,
        "reason": signal.reason,
        "resolution": signal.resolution,
        "values": dict(signal.values),
        "intent_id": signal.intent_id,
        "detected_at": signal.detected_at,
        "updated_at": signal.updated_at,
    }


def scan_report_doc(report) -> dict[str, Any]:
    """One scan: what it looked at, recorded, decided, entered, skipped, and what failed."""
    def brief(signal) -> dict[str, Any]:
        return {"id": signal.id, "strategy": signal.strategy, "pattern": signal.pattern, "symbol": signal.symbol,
                "timeframe": signal.timeframe, "candle_open": _ms_time(signal.candle_open_time)}

    return {
        "at": report.at,
        "market": report.market,
        "strategies": list(report.strategies),
        "symbols": list(report.symbols),
        "timeframe": report.timeframe,
        "entry": report.entries_enabled,
        "pairs": report.pairs,
        "scanned": report.scanned,
        "failed": report.failed_pairs,
        "detected": [signal_doc(s) for s in report.detected],
        "already_recorded": [brief(s) for s in report.already_recorded],
        "resolved": [brief(s) | {"status": s.status, "resolution": s.resolution} for s in report.resolved],
        "entries": [{"signal_id": e.signal.id, "intent_id": e.intent.id, "symbol": e.intent.symbol,
                     "strategy": e.intent.strategy, "status": e.intent.status,
                     "verdict": e.verdict, "problem": e.problem} for e in report.entries],
        "skipped": [brief(s.signal) | {"reason": s.reason} for s in report.skipped],
        "failures": [{"symbol": f.symbol, "timeframe": f.timeframe, "strategies": list(f.strategies),
                      "message": f.message} for f in report.failures],
        "not_held": [{"symbol": f.symbol, "timeframe": f.timeframe, "strategies": list(f.strategies)}
                     for f in report.not_held],
    }


def scan_summary(report) -> str:
    """One line for cron mail and logs: what the scan found, decided and entered."""
    from robson.domain.signals import SignalStatus

    def plural(count: int, word: str) -> str:
        return f"{count} {word}{'' if count == 1 else 's'}"

    # Every count is of (strategy, symbol) pairs; "6 of 10" when some were left out or failed.
    scanned = plural(report.scanned, "pair") if report.scanned == report.pairs else \
        f"{report.scanned} of {report.pairs} pairs"
    parts = [f"{scanned} scanned", plural(len(report.detected), "new signal")]
    decided = [f"{report.count(status)} {status.value.lower()}" for status in
               (SignalStatus.CONFIRMED, SignalStatus.INVALIDATED, SignalStatus.EXPIRED) if report.count(status)]
    parts += decided
    if report.entries_enabled or report.entries:
        parts.append(plural(len(report.entries), "intent"))
    if report.skipped:
        parts.append(f"{len(report.skipped)} skipped")
    if report.not_held:
        parts.append(f"{report.not_held_pairs} not in the {report.market} market")
    if report.failures:
        parts.append(f"{report.failed_pairs} failed")
    details = [f"{s.id} {s.strategy} {s.symbol} {s.pattern}" for s in report.detected]
    details += [f"{e.intent.id} {e.intent.status.value} from {e.signal.id}" for e in report.entries]
    details += [f"{s.signal.id}: {s.reason}" for s in report.skipped]
    return (f"scan {report.at:%Y-%m-%d %H:%M} UTC: " + ", ".join(parts)
            + (f" ({'; '.join(details)})" if details else ""))
