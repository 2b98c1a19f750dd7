"""Use cases on the paper wallet as a ledger: deposit, withdraw, reset. Every change is audited."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from robson.application.ports import Balance, Clock, PaperWallet, Store
from robson.domain.account import parse_asset
from robson.domain.intent import IntentStatus
from robson.domain.money import ZERO, fmt, parse_decimal
from robson.domain.operation import OperationStatus
from robson.domain.orders import AuditEvent, AuditKind
from robson.errors import IllegalTransition, InvalidInput


@dataclass(frozen=True, slots=True)
class WalletChange:
    kind: AuditKind
    balances: dict[str, Balance]  # the whole wallet after the change
    asset: str | None = None
    amount: Decimal | None = None


def _amount(amount: Decimal | str) -> Decimal:
    return parse_decimal(amount, "amount")  # > 0, finite, digits 0-9 only


def deposit(asset: str, amount: Decimal | str, *, store: Store, wallet: PaperWallet, clock: Clock) -> WalletChange:
    """Add amount of asset to the paper wallet's free balance; raise InvalidInput for a bad asset or amount."""
    name, number = parse_asset(asset), _amount(amount)
    return _move(name, number, AuditKind.DEPOSIT, store=store, wallet=wallet, clock=clock)


def withdraw(asset: str, amount: Decimal | str, *, store: Store, wallet: PaperWallet, clock: Clock) -> WalletChange:
    """Take amount of asset out of the free balance; raise InvalidInput beyond what is free (locked stays locked)."""
    name, number = parse_asset(asset), _amount(amount)
    return _move(name, -number, AuditKind.WITHDRAWAL, store=store, wallet=wallet, clock=clock)


def _move(asset: str, change: Decimal, kind: AuditKind, *, store: Store, wallet: PaperWallet,
          clock: Clock) -> WalletChange:
    now = clock.now()
    with store.transaction() as tx:
        balances = wallet.wallet(tx)
        current = balances.get(asset, Balance(asset, ZERO, ZERO))
        if current.free + change < 0:
            locked = f" ({fmt(current.locked)} more locked by resting orders)" if current.locked else ""
            raise InvalidInput(f"cannot withdraw {fmt(-change)} {asset}: the paper wallet has {fmt(current.free)} "
                               f"{asset} free{locked}")
        updated = Balance(asset, current.free + change, current.locked)
        tx.set_balance(wallet.account, updated)
        balances = {**balances, asset: updated}
        verb = "deposited" if change > 0 else "withdrew"
        tx.record(AuditEvent(at=now, kind=kind, message=f"paper wallet: {verb} {fmt(abs(change))} {asset}, "
                             f"free {fmt(current.free)} → {fmt(updated.free)}",
                             data={"asset": asset, "amount": fmt(abs(change)), "free_before": fmt(current.free),
                                   "free_after": fmt(updated.free)}))
    return WalletChange(kind, balances, asset, abs(change))


def reset(*, store: Store, wallet: PaperWallet, clock: Clock) -> WalletChange:
    """Put the paper wallet back to its starting balances; operations and their history stay as they are.

    Refused (IllegalTransition) while a paper operation is ACTIVE or an intent is EXECUTING: their
    coins and resting stops are in the wallet, and a reset under them would leave a position with
    nothing to sell or an order locking money that is no longer there.
    """
    now = clock.now()
    starting = wallet.starting_balances
    with store.transaction() as tx:
        active = [op.id for op in tx.list_operations(OperationStatus.ACTIVE) if op.mode == "paper"]
        executing = [i.id for i in tx.list_intents(IntentStatus.EXECUTING)]
        busy = active + executing
        if busy:
            raise IllegalTransition(
                f"cannot reset the paper wallet while {len(busy)} operation(s) or execution(s) are open "
                f"({', '.join(busy[:3])}{', …' if len(busy) > 3 else ''}): their coins and stops are in it",
                hint="close them first (robson operation close ID, or robson reconcile), then reset",
            )
        before = wallet.wallet(tx)
        after = {asset: Balance(asset, ZERO, ZERO) for asset in before} | {
            asset: Balance(asset, amount, ZERO) for asset, amount in starting.items()}
        for balance in after.values():
            if before.get(balance.asset) != balance:
                tx.set_balance(wallet.account, balance)
        shown = ", ".join(f"{fmt(b.total)} {a}" for a, b in sorted(before.items()) if b.total) or "empty"
        tx.record(AuditEvent(at=now, kind=AuditKind.WALLET_RESET,
                             message=f"paper wallet reset to {', '.join(f'{fmt(v)} {a}' for a, v in starting.items())} "
                                     f"(was {shown})",
                             data={"before": {a: fmt(b.total) for a, b in before.items() if b.total},
                                   "after": {a: fmt(v) for a, v in starting.items()}}))
    return WalletChange(AuditKind.WALLET_RESET, {a: b for a, b in after.items() if b.total})
