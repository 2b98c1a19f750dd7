"""`robson paper deposit|withdraw|reset`: the paper wallet as an audited ledger."""

from __future__ import annotations

from typing import Annotated

import typer

from robson.cli.app import container
from robson.cli.output import JsonOption, console, emit
from robson.domain.account import parse_asset
from robson.domain.money import fmt, parse_decimal
from robson.errors import InvalidInput

app = typer.Typer(help="The paper wallet as a ledger: deposit, withdraw, reset.\n\nExample: robson paper deposit USDT 500",
                  no_args_is_help=True, rich_markup_mode=None)

# `paper deposit USDT -5` reaches the amount's own check (exit 2, "must be greater than 0"), not "No such option: -5".
NUMBERS_MAY_BE_NEGATIVE = {"ignore_unknown_options": True}

Asset = Annotated[str, typer.Argument(help="Asset, e.g. USDT or BTC.")]
Amount = Annotated[str, typer.Argument(help="Amount, greater than 0.")]


def _document(change) -> dict:
    return {"change": change.kind, "asset": change.asset, "amount": change.amount,
            "balances": [{"asset": a, "free": b.free, "locked": b.locked, "total": b.total}
                         for a, b in sorted(change.balances.items()) if b.total]}


def _wallet_line(change) -> str:
    return ", ".join(f"{fmt(b.total)} {a}" for a, b in sorted(change.balances.items()) if b.total) or "empty"


def _change(ctx: typer.Context, move, done: str, asset: str, amount: str, as_json: bool) -> None:
    """Parse asset and amount (bad input opens nothing), apply move to the paper wallet, print what it did."""
    asset, number = parse_asset(asset), parse_decimal(amount, "amount")
    c = container(ctx)
    change = move(asset, number, store=c.store, wallet=c.paper, clock=c.clock)
    emit(as_json, _document(change), lambda: console().print(
        f"{done} {fmt(change.amount)} {change.asset}. Paper wallet: {_wallet_line(change)}."))


@app.command("deposit", context_settings=NUMBERS_MAY_BE_NEGATIVE)
def deposit(ctx: typer.Context, asset: Asset, amount: Amount, as_json: JsonOption = False) -> None:
    """Add an amount of an asset to the paper wallet (audited).

    Example: robson paper deposit USDT 500
    """
    from robson.application.paper_wallet import deposit as deposit_

    _change(ctx, deposit_, "Deposited", asset, amount, as_json)


@app.command("withdraw", context_settings=NUMBERS_MAY_BE_NEGATIVE)
def withdraw(ctx: typer.Context, asset: Asset, amount: Amount, as_json: JsonOption = False) -> None:
    """Take an amount of an asset out of the paper wallet's free balance (audited); never more than is free.

    Example: robson paper withdraw USDT 200
    """
    from robson.application.paper_wallet import withdraw as withdraw_

    _change(ctx, withdraw_, "Withdrew", asset, amount, as_json)


@app.command("reset")
def reset(ctx: typer.Context,
          confirm: Annotated[bool, typer.Option("--confirm", help="Required: the wallet's balances are replaced.")] = False,
          as_json: JsonOption = False) -> None:
    """Put the paper wallet back to the starting balances (paper.balances); closed operations and the audit trail stay.

    Refused while a paper operation is ACTIVE or an execution is open: close them first.

    Example: robson paper reset --confirm
    """
    if not confirm:
        raise InvalidInput("paper reset replaces the paper wallet's balances: add --confirm to do it",
                           hint="robson paper reset --confirm")
    from robson.application.paper_wallet import reset as reset_

    c = container(ctx)
    change = reset_(store=c.store, wallet=c.paper, clock=c.clock)
    emit(as_json, _document(change), lambda: console().print(
        f"Paper wallet reset to {_wallet_line(change)}. Closed operations and the audit trail are kept."))


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="paper")
