"""Executions not settled yet: an intent still EXECUTING may hold a position that no stop protects.

`robson reconcile` (run before `execute`, the `operation` commands and each monitor tick too)
settles what it can; what it cannot settle yet (an answer lost a moment ago, a rate limit, an
exchange out of reach) is reported loudly, with its exposure, by `operation status` and by the
monitor, and both exit non-zero until it is settled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from robson.application.ports import MarketData, Store
from robson.domain.intent import IntentStatus, TradingIntent
from robson.domain.money import fmt
from robson.domain.orders import PROTECTING_STATUSES, Order, OrderRole, client_order_id, parse_part_order_id
from robson.errors import RobsonError, Unprotected

CLOSE_IT_YOURSELF = "close the position on the exchange yourself if it cannot wait"
SETTLE_HINT = ("run `robson reconcile` (or keep `robson monitor` running): it places the missing stop as soon as the "
               f"exchange allows, never twice; {CLOSE_IT_YOURSELF}")


@dataclass(frozen=True, slots=True)
class Unresolved:
    """An EXECUTING intent as the store knows it: what its entry filled, whether a stop protects it, its exposure."""

    intent: TradingIntent
    entry: Order | None  # the entry as last seen on the exchange; None while its fate is unknown
    stop: Order | None  # the protective stop as last seen; None if none is known placed
    price: Decimal | None  # the last price, None if the market could not say
    parts: tuple[Order, ...] = ()  # a live ladder's part OCOs (stop legs) as last seen, in part order
    parts_planned: int = 0  # how many part OCOs the plan's ladder protects the position with

    @property
    def protecting(self) -> tuple[Order, ...]:
        """The orders that protect it: the stop, or every part's OCO (all of them, or none is said to)."""
        if self.parts:
            working = tuple(o for o in self.parts if o.status in PROTECTING_STATUSES)
            return working if len(working) >= self.parts_planned else ()
        return (self.stop,) if self.stop is not None and self.stop.status in PROTECTING_STATUSES else ()

    @property
    def quantity(self) -> Decimal:
        """What may be held: the entry's fill, or the whole order while its fate is unknown."""
        return self.entry.filled_quantity if self.entry is not None else self.intent.quantity

    @property
    def protected(self) -> bool:
        return bool(self.protecting)  # not one still PENDING_NEW, nor a ladder only some of whose parts have an OCO

    @property
    def exposure(self) -> Decimal:
        """The value at risk: the quantity at the last price (at the fill, or the planned entry, without one)."""
        entry_price = self.entry.average_price if self.entry is not None else None
        return self.quantity * (self.price or entry_price or self.intent.entry)

    def describe(self) -> str:
        """One line: the intent, what it holds or may hold, its exposure and its protection (UNPROTECTED first)."""
        i = self.intent
        if self.entry is not None:
            held = (f"{i.side.value} {fmt(self.quantity)} {i.symbol} filled @ {fmt(self.entry.average_price)} "
                    f"({self.entry.client_order_id})")
        else:
            held = (f"{i.side.value} up to {fmt(self.quantity)} {i.symbol} if its entry "
                    f"{client_order_id(i.id, OrderRole.ENTRY)} filled (its answer is not settled)")
        exposure = f"exposure {fmt(self.exposure, 2)} {self.intent.quote_asset}"
        if self.protected:
            by = ", ".join(o.client_order_id for o in self.protecting)
            return f"{i.id} EXECUTING: {held}, {exposure}, protected by {by} (stop @ {fmt(self.protecting[0].stop_price)})"
        if self.parts:
            return (f"UNPROTECTED: {i.id} EXECUTING: {held}, {exposure}, only {len(self.parts)} of its "
                    f"{self.parts_planned} part OCOs known on the exchange yet")
        return f"UNPROTECTED: {i.id} EXECUTING: {held}, {exposure}, no stop on the exchange yet"


def unresolved_executions(store: Store, market_for: Callable[[TradingIntent], MarketData | None]) -> list[Unresolved]:
    """Return every intent still EXECUTING with what the store knows of its orders, priced by market_for(intent)."""
    with store.read() as session:
        intents = session.list_intents(IntentStatus.EXECUTING)
        orders = {i.id: session.orders_for_intent(i.id) for i in intents}
    prices: dict[tuple[int, str], Decimal | None] = {}  # one price per market and symbol
    found = []
    for intent in intents:
        market = market_for(intent)
        key = (id(market), intent.symbol)
        if key not in prices:
            prices[key] = _price(market, intent.symbol)
        by_id = {o.client_order_id: o for o in orders[intent.id]}
        entry = by_id.get(client_order_id(intent.id, OrderRole.ENTRY))
        stop = by_id.get(client_order_id(intent.id, OrderRole.STOP))
        parts = tuple(sorted((o for o in orders[intent.id] if _part_stop(intent.id, o.client_order_id)),
                             key=lambda o: o.client_order_id))
        planned = sum(1 for p in (intent.details.get("ladder") or {}).get("parts", []) if Decimal(p["quantity"]) > 0)
        found.append(Unresolved(intent, entry if entry is not None and entry.filled_quantity else None, stop,
                                prices[key], parts, planned))
    return found


def _part_stop(intent_id: str, order_id: str) -> bool:
    parsed = parse_part_order_id(intent_id, order_id)
    return parsed is not None and parsed[1] is OrderRole.STOP


def _price(market: MarketData | None, symbol: str) -> Decimal | None:
    if market is None:
        return None
    try:
        return market.last_price(symbol).price
    except RobsonError:  # an exposure at the fill price is still worth showing
        return None


def unresolved_error(unresolved: list[Unresolved]) -> RobsonError:
    """The error to exit with while executions are unresolved: UNPROTECTED first, with the command to run."""
    lines = "; ".join(u.describe().removeprefix("UNPROTECTED: ") for u in unresolved)
    unprotected = [u for u in unresolved if not u.protected]
    if len(unprotected) == 1 and len(unresolved) == 1:
        return Unprotected(unprotected[0].describe(), hint=SETTLE_HINT)
    if unprotected:
        return Unprotected(f"UNPROTECTED: {len(unprotected)} of {len(unresolved)} executions not settled may hold a "
                           f"position with no stop: {lines}", hint=SETTLE_HINT)
    return RobsonError(f"{len(unresolved)} execution(s) not settled: {lines}", hint="run `robson reconcile`")
