"""The paper exchange: fills market orders at the market price with slippage and taker fee.

Entries that wait for their price rest in the book (a LIMIT, or a STOP_LOSS_LIMIT for a stop
entry) with what they would spend locked; a limit entry's protection waits beside it as a
PENDING_NEW order, as Binance's OTOCO does. `fill_waiting` fills one against a closed candle
(robson.domain.lifecycle.waiting_fill) and activates its protection in the same transaction.

It implements the same Exchange protocol as a live adapter and keeps its balances and its
order book in the store, so dry-runs survive restarts and are idempotent by client order id.

The monitor settles the book through the methods taking a StoreSession (reprice_stop,
settle_stop, settle_part, settle_market_exit): they write in the caller's transaction, so the operation,
its audit trail, the order and the balances change together or not at all.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from decimal import Decimal

from robson.application.ports import Balance, MarketData, Store, StoreSession
from robson.domain.intent import EntryOrder
from robson.domain.lifecycle import WaitingFill, market_fill
from robson.domain.market import Side, SymbolInfo, datetime_to_ms
from robson.domain.money import ZERO, fmt, fmt_amount
from robson.domain.orders import Order, OrderStatus, OrderType, Protection
from robson.errors import InsufficientBalance, OrderRejected

ACCOUNT = "paper"


class PaperExchange:
    name = "paper"
    live = False
    account = ACCOUNT  # the store's name for the paper wallet

    def __init__(self, store: Store, market: MarketData, *, fee_rate: Decimal, slippage_rate: Decimal,
                 starting_balances: dict[str, Decimal], maker_fee_rate: Decimal | None = None) -> None:
        self._store = store
        self._market = market
        self._fee_rate = fee_rate
        self._maker_fee_rate = fee_rate if maker_fee_rate is None else maker_fee_rate
        self._slippage_rate = slippage_rate
        self._starting = starting_balances

    @property
    def market(self) -> MarketData:
        """The market paper orders fill against."""
        return self._market

    @property
    def fee_rate(self) -> Decimal:
        """The taker fee charged on every paper fill, as a fraction."""
        return self._fee_rate

    @property
    def maker_fee_rate(self) -> Decimal:
        """The maker fee a limit entry resting in the book pays when it fills, as a fraction."""
        return self._maker_fee_rate

    @property
    def slippage_rate(self) -> Decimal:
        """How much worse than the price a paper market order fills, as a fraction."""
        return self._slippage_rate

    # --- balances --------------------------------------------------------------------------

    def _balances(self, tx: StoreSession) -> dict[str, Balance]:
        balances = tx.get_balances(ACCOUNT)
        if not balances:
            # First use: seed the wallet from the config.
            for asset, amount in self._starting.items():
                tx.set_balance(ACCOUNT, Balance(asset, amount, ZERO))
            balances = tx.get_balances(ACCOUNT)
        return balances

    @property
    def starting_balances(self) -> dict[str, Decimal]:
        """The configured starting wallet (paper.balances): what a first use seeds and a reset restores."""
        return dict(self._starting)

    def wallet(self, tx: StoreSession) -> dict[str, Balance]:
        """Return the paper wallet inside the caller's transaction, seeding it from the config on first use."""
        return self._balances(tx)

    def balances(self) -> dict[str, Balance]:
        """Return the paper wallet, seeding it from the config on first use."""
        with self._store.read() as session:
            balances = session.get_balances(ACCOUNT)
        if balances:
            return balances
        with self._store.transaction() as tx:
            return self._balances(tx)

    def _move(self, tx: StoreSession, balances: dict[str, Balance], asset: str, *, free: Decimal = ZERO,
              locked: Decimal = ZERO) -> None:
        if not free and not locked and asset in balances:
            return  # nothing moves (a long's stop repriced still locks the same base): no write
        current = balances.get(asset, Balance(asset, ZERO, ZERO))
        updated = Balance(asset, current.free + free, current.locked + locked)
        balances[asset] = updated
        tx.set_balance(ACCOUNT, updated)

    @staticmethod
    def _require(balances: dict[str, Balance], asset: str, amount: Decimal, what: str, *, money: bool = False) -> None:
        """Raise InsufficientBalance when less than amount of asset is free (money: say it to the cent)."""
        free = balances.get(asset, Balance(asset, ZERO, ZERO)).free
        if free < amount:
            shown = fmt_amount if money else fmt
            raise InsufficientBalance(
                f"paper account has {shown(free)} {asset} free, {what} needs {shown(amount)} {asset}"
            )

    # --- orders ----------------------------------------------------------------------------

    def send_stamp(self) -> int:
        return datetime_to_ms(self._market.now())

    def may_still_arrive(self, send_stamp: int) -> bool:
        """Never: a paper order is written in the same transaction that accepts it."""
        return False

    def test_order(self, symbol: str, side: Side, quantity: Decimal) -> None:
        """Check the quantity against LOT_SIZE, as the paper fill would."""
        self._check_quantity(self._market.symbol_info(symbol), quantity)

    def get_order(self, symbol: str, client_order_id: str) -> Order | None:
        with self._store.read() as session:
            return session.get_order(client_order_id)

    def place_market_order(self, symbol: str, side: Side, quantity: Decimal, client_order_id: str, *,
                           intent_id: str | None = None) -> Order:
        """Fill at the market's next trade moved against us by the slippage; charge the taker fee in quote."""
        info = self._market.symbol_info(symbol)
        self._check_quantity(info, quantity)
        price = self._market.fill_price(symbol).price
        filled = market_fill(side, price, quantity, info, fee_rate=self._fee_rate, slippage_rate=self._slippage_rate)
        fill, fee = filled.price, filled.fee
        notional = fill * quantity
        now = self._market.now()
        with self._store.transaction() as tx:
            existing = tx.get_order(client_order_id)
            if existing is not None:
                return existing
            balances = self._balances(tx)
            if side is Side.BUY:
                self._require(balances, info.quote_asset, notional + fee, f"buying {fmt(quantity)} {info.base_asset}",
                              money=True)
                self._move(tx, balances, info.quote_asset, free=-(notional + fee))
                self._move(tx, balances, info.base_asset, free=quantity)
            else:
                self._require(balances, info.base_asset, quantity, f"selling {fmt(quantity)} {info.base_asset}")
                self._move(tx, balances, info.base_asset, free=-quantity)
                self._move(tx, balances, info.quote_asset, free=notional - fee)
            order = self._order(client_order_id, symbol, side, OrderType.MARKET, quantity, OrderStatus.FILLED, now,
                                 filled_quantity=quantity, average_price=fill, fee=fee, fee_asset=info.quote_asset,
                                 intent_id=intent_id)
            tx.add_order(order)
            return order

    def place_stop_order(self, symbol: str, side: Side, quantity: Decimal, stop_price: Decimal, limit_price: Decimal,
                         client_order_id: str, *, target_price: Decimal | None = None,
                         intent_id: str | None = None) -> Order:
        """Rest a stop-limit (an OCO with the target) and lock what it would sell or spend."""
        info = self._market.symbol_info(symbol)
        self._check_quantity(info, quantity)
        now = self._market.now()
        with self._store.transaction() as tx:
            existing = tx.get_order(client_order_id)
            if existing is not None:
                return existing
            balances = self._balances(tx)
            asset, amount = self._locked_for(info, side, quantity, limit_price)
            self._require(balances, asset, amount, f"the protective {side.value} stop")
            self._move(tx, balances, asset, free=-amount, locked=amount)
            order = self._order(client_order_id, symbol, side,
                                OrderType.OCO if target_price is not None else OrderType.STOP_LOSS_LIMIT,
                                quantity, OrderStatus.NEW, now, price=limit_price, stop_price=stop_price,
                                target_price=target_price, intent_id=intent_id)
            tx.add_order(order)
            return order

    def place_entry_order(self, symbol: str, side: Side, quantity: Decimal, client_order_id: str, *,
                          order: EntryOrder, price: Decimal, stop_limit_price: Decimal | None = None,
                          protection: Protection | None = None, intent_id: str | None = None) -> Order:
        """Rest an entry until a candle trades at its price, locking what it would spend (or sell).

        A limit entry's protection is recorded beside it as PENDING_NEW, locking nothing until the
        entry fills (Binance's OTOCO); a stop entry is protected by robson once it has filled.
        """
        info = self._market.symbol_info(symbol)
        self._check_quantity(info, quantity)
        now = self._market.now()
        limit = order is EntryOrder.LIMIT
        # A stop entry fills like a market order, up to its limit; the lock covers that much.
        cap = price if limit or stop_limit_price is None else stop_limit_price
        with self._store.transaction() as tx:
            existing = tx.get_order(client_order_id)
            if existing is not None:
                return existing
            balances = self._balances(tx)
            asset, amount = self._locked_for(info, side, quantity, cap)
            fees = amount * max(self._fee_rate, self._maker_fee_rate) if side is Side.BUY else ZERO
            self._require(balances, asset, amount + fees, f"the waiting {order.value} {side.value.lower()} entry",
                          money=side is Side.BUY)
            self._move(tx, balances, asset, free=-amount, locked=amount)
            if limit:
                entry = self._order(client_order_id, symbol, side, OrderType.LIMIT, quantity, OrderStatus.NEW, now,
                                    price=price, intent_id=intent_id)
            else:
                entry = self._order(client_order_id, symbol, side, OrderType.STOP_LOSS_LIMIT, quantity,
                                    OrderStatus.NEW, now, price=cap, stop_price=price, intent_id=intent_id)
            tx.add_order(entry)
            if limit and protection is not None and tx.get_order(protection.client_order_id) is None:
                tx.add_order(self._order(
                    protection.client_order_id, symbol, side.opposite,
                    OrderType.OCO if protection.target_price is not None else OrderType.STOP_LOSS_LIMIT, quantity,
                    OrderStatus.PENDING_NEW, now, price=protection.limit_price, stop_price=protection.stop_price,
                    target_price=protection.target_price, intent_id=intent_id))
            return entry

    def fill_waiting(self, tx: StoreSession, client_order_id: str, fill: WaitingFill, *, at: datetime,
                     protection_id: str | None = None) -> Order:
        """Fill a resting entry at fill's price and fee and activate its pending protection, in the caller's tx."""
        order = self._open_order(tx, client_order_id, "filled")
        info = self._market.symbol_info(order.symbol)
        balances = self._balances(tx)
        asset, locked = self._locked_for(info, order.side, order.quantity, order.price or ZERO)
        self._move(tx, balances, asset, free=locked, locked=-locked)
        self._trade(tx, balances, info, order.side, order.quantity, fill.price, fill.fee)
        filled = dataclasses.replace(order, status=OrderStatus.FILLED, filled_quantity=order.quantity,
                                     average_price=fill.price, fee=fill.fee, fee_asset=info.quote_asset, updated_at=at)
        tx.update_order(filled)
        pending = tx.get_order(protection_id) if protection_id else None
        if pending is not None and pending.status is OrderStatus.PENDING_NEW:
            asset, amount = self._locked_for(info, pending.side, pending.quantity, pending.price or ZERO)
            self._require(balances, asset, amount, f"the protective {pending.side.value} stop")
            self._move(tx, balances, asset, free=-amount, locked=amount)
            tx.update_order(dataclasses.replace(pending, status=OrderStatus.NEW, updated_at=at))
        return filled

    def cancel_order(self, symbol: str, client_order_id: str) -> Order:
        """Cancel a resting order and unlock its funds (a waiting entry: with its pending protection);
        raise OrderRejected if it is not open."""
        info = self._market.symbol_info(symbol)
        with self._store.transaction() as tx:
            order = tx.get_order(client_order_id)
            if order is None or order.status not in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED):
                state = order.status.value if order else "unknown"
                raise OrderRejected(f"order {client_order_id} cannot be cancelled: it is {state}")
            balances = self._balances(tx)
            remaining = order.quantity - order.filled_quantity
            asset, amount = self._locked_for(info, order.side, remaining, order.price or ZERO)
            self._move(tx, balances, asset, free=amount, locked=-amount)
            now = self._market.now()
            cancelled = dataclasses.replace(order, status=OrderStatus.CANCELED, updated_at=now)
            tx.update_order(cancelled)
            if order.intent_id is not None and order.type in (OrderType.LIMIT, OrderType.STOP_LOSS_LIMIT):
                for pending in tx.orders_for_intent(order.intent_id):
                    if pending.status is OrderStatus.PENDING_NEW:  # attached to this entry: it never goes live
                        tx.update_order(dataclasses.replace(pending, status=OrderStatus.CANCELED, updated_at=now))
            return cancelled

    # --- settling the book inside the caller's transaction ----------------------------------

    def reprice_stop(self, tx: StoreSession, client_order_id: str, *, stop_price: Decimal, limit_price: Decimal,
                     target_price: Decimal | None, at: datetime) -> Order:
        """Amend a resting stop (or OCO) in place, adjusting what it locks; raise OrderRejected unless open."""
        order = self._open_order(tx, client_order_id, "amended")
        if (order.stop_price, order.price, order.target_price) == (stop_price, limit_price, target_price):
            return order  # already amended: nothing to do
        info = self._market.symbol_info(order.symbol)
        remaining = order.quantity - order.filled_quantity
        asset, before = self._locked_for(info, order.side, remaining, order.price or ZERO)
        _, after = self._locked_for(info, order.side, remaining, limit_price)
        if after != before:  # a BUY stop (a short's) locks quote at its limit; a SELL stop locks the same base
            balances = self._balances(tx)
            if after > before:
                self._require(balances, asset, after - before, f"moving the {order.side.value} stop")
            self._move(tx, balances, asset, free=before - after, locked=after - before)
        amended = dataclasses.replace(
            order, stop_price=stop_price, price=limit_price, target_price=target_price, updated_at=at,
            type=OrderType.OCO if target_price is not None else OrderType.STOP_LOSS_LIMIT,
        )
        tx.update_order(amended)
        return amended

    def settle_stop(self, tx: StoreSession, client_order_id: str, *, price: Decimal, fee: Decimal,
                    at: datetime) -> Order:
        """Fill a resting stop or OCO (either leg) at price with fee in quote; a FILLED one is left as it is."""
        order = tx.get_order(client_order_id)
        if order is not None and order.status is OrderStatus.FILLED:
            return order
        order = self._open_order(tx, client_order_id, "filled")
        info = self._market.symbol_info(order.symbol)
        quantity = order.quantity - order.filled_quantity
        balances = self._balances(tx)
        asset, locked = self._locked_for(info, order.side, quantity, order.price or ZERO)
        self._move(tx, balances, asset, free=locked, locked=-locked)  # release, then trade from free
        self._trade(tx, balances, info, order.side, quantity, price, fee)
        filled = dataclasses.replace(order, status=OrderStatus.FILLED, filled_quantity=order.quantity,
                                     average_price=price, fee=fee, fee_asset=info.quote_asset, updated_at=at)
        tx.update_order(filled)
        return filled

    def settle_market_exit(self, tx: StoreSession, symbol: str, side: Side, quantity: Decimal, client_order_id: str,
                           *, price: Decimal, fee: Decimal, at: datetime, cancel: str | None = None,
                           intent_id: str | None = None) -> Order:
        """Cancel the resting stop `cancel` (if open) and record a market exit filled at price; idempotent by id."""
        existing = tx.get_order(client_order_id)
        if existing is not None:
            return existing
        info = self._market.symbol_info(symbol)
        balances = self._balances(tx)
        resting = tx.get_order(cancel) if cancel is not None else None
        if resting is not None and resting.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED):
            asset, locked = self._locked_for(info, resting.side, resting.quantity - resting.filled_quantity,
                                             resting.price or ZERO)
            self._move(tx, balances, asset, free=locked, locked=-locked)
            tx.update_order(dataclasses.replace(resting, status=OrderStatus.CANCELED, updated_at=at))
        self._trade(tx, balances, info, side, quantity, price, fee)
        order = self._order(client_order_id, symbol, side, OrderType.MARKET, quantity, OrderStatus.FILLED, at,
                            filled_quantity=quantity, average_price=price, fee=fee, fee_asset=info.quote_asset,
                            intent_id=intent_id)
        tx.add_order(order)
        return order

    def settle_part(self, tx: StoreSession, stop_id: str, client_order_id: str, *, quantity: Decimal, price: Decimal,
                    fee: Decimal, at: datetime, limit: bool, intent_id: str | None = None) -> Order:
        """Fill a part of a position (a LIMIT at its target, or MARKET by hand) and shrink the resting stop
        stop_id by it, in the caller's transaction; idempotent by client_order_id; raise OrderRejected if
        the stop is not open or not larger than the part (the last of a position is closed by the stop)."""
        existing = tx.get_order(client_order_id)
        if existing is not None:
            return existing
        stop = self._open_order(tx, stop_id, "resized")
        rest = stop.quantity - stop.filled_quantity
        if quantity >= rest:
            raise OrderRejected(f"a part of {fmt(quantity)} leaves nothing under the stop {stop_id} ({fmt(rest)})")
        info = self._market.symbol_info(stop.symbol)
        balances = self._balances(tx)
        asset, before = self._locked_for(info, stop.side, rest, stop.price or ZERO)
        _, after = self._locked_for(info, stop.side, rest - quantity, stop.price or ZERO)
        self._move(tx, balances, asset, free=before - after, locked=after - before)  # unlock what the part sells
        tx.update_order(dataclasses.replace(stop, quantity=stop.quantity - quantity, updated_at=at))
        self._trade(tx, balances, info, stop.side, quantity, price, fee)
        order = self._order(client_order_id, stop.symbol, stop.side, OrderType.LIMIT if limit else OrderType.MARKET,
                            quantity, OrderStatus.FILLED, at, price=price if limit else None,
                            filled_quantity=quantity, average_price=price, fee=fee, fee_asset=info.quote_asset,
                            intent_id=intent_id)
        tx.add_order(order)
        return order

    def _open_order(self, tx: StoreSession, client_order_id: str, what: str) -> Order:
        order = tx.get_order(client_order_id)
        if order is None or order.status not in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED):
            state = order.status.value if order else "unknown"
            raise OrderRejected(f"order {client_order_id} cannot be {what}: it is {state}")
        return order

    def _trade(self, tx: StoreSession, balances: dict[str, Balance], info: SymbolInfo, side: Side,
               quantity: Decimal, price: Decimal, fee: Decimal) -> None:
        """Move free balances for a fill: the base against its quote, the fee in quote."""
        notional = price * quantity
        if side is Side.SELL:
            self._move(tx, balances, info.base_asset, free=-quantity)
            self._move(tx, balances, info.quote_asset, free=notional - fee)
        else:
            self._move(tx, balances, info.quote_asset, free=-(notional + fee))
            self._move(tx, balances, info.base_asset, free=quantity)

    # --- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _locked_for(info: SymbolInfo, side: Side, quantity: Decimal, limit_price: Decimal) -> tuple[str, Decimal]:
        if side is Side.SELL:
            return info.base_asset, quantity
        return info.quote_asset, quantity * limit_price

    @staticmethod
    def _check_quantity(info: SymbolInfo, quantity: Decimal) -> None:
        if quantity <= 0 or (info.min_qty and quantity < info.min_qty) or not info.quantity_on_step(quantity):
            raise OrderRejected(
                f"quantity {fmt(quantity)} fails LOT_SIZE (min {fmt(info.min_qty)}, step {fmt(info.step_size)})"
            )

    @staticmethod
    def _order(client_order_id: str, symbol: str, side: Side, type_: OrderType, quantity: Decimal,
               status: OrderStatus, now: datetime, **fields: object) -> Order:
        return Order(client_order_id=client_order_id, exchange=PaperExchange.name, symbol=symbol, side=side,
                     type=type_, quantity=quantity, status=status, created_at=now, updated_at=now, **fields)

