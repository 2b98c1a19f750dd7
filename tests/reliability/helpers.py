"""Shared pieces of the reliability tests: a clean environment, the CLI in and out of process, the raw database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from tests.databases import Target, fetch

# The installed console script, exactly what a user runs.
ROBSON = Path(sys.executable).parent / "robson"
SCRUBBED_PREFIXES = ("ROBSON_", "BINANCE_")

# Every guard passes for hundreds of identical trades: 1 % of capital per position, 200 of them fit the wallet.
BIG_ACCOUNT: dict[str, Any] = {
    "capital": 10_000_000,
    "paper": {"balances": {"USDT": 100_000_000}},
    "risk": {
        "max_open_positions": 100_000,
        "max_positions_per_symbol": 100_000,
        "max_total_exposure_percent": 1_000_000,
        "max_position_percent": 1,
    },
}


def write_config(path: Path, settings: Mapping[str, Any]) -> Path:
    """Write settings as a robson YAML config file and return its path."""
    path.write_text(yaml.safe_dump(dict(settings), sort_keys=False), encoding="utf-8")
    return path


def process_env(**values: str) -> dict[str, str]:
    """Return this process's environment without robson or Binance settings, plus values."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}
    env.update(values)
    return env


def runner_env(**values: str | None) -> dict[str, str | None]:
    """Return a CliRunner env that unsets every inherited robson or Binance setting, plus values."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith(SCRUBBED_PREFIXES)}
    env.update(values)
    return env


def invoke(args: Sequence[str], env: Mapping[str, str | None]) -> Any:
    """Run the robson CLI in this process through Typer's CliRunner; return the Result."""
    from typer.testing import CliRunner

    from robson.cli.app import app

    return CliRunner().invoke(app, list(args), env=dict(env))


def run_robson(args: Sequence[str], env: Mapping[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the installed robson script in a child process; return its exit code, stdout and stderr."""
    return subprocess.run([str(ROBSON), *args], env=dict(env), cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


def planned_and_validated(env: Mapping[str, str | None]) -> str:
    """Plan a BTCUSDT buy and validate it in this process; return the VALIDATED intent's ID."""
    planned = invoke(["plan", "buy", "BTCUSDT", "--json"], env)
    assert planned.exit_code == 0, planned.stderr
    intent_id: str = json.loads(planned.stdout)["id"]
    validated = invoke(["validate", intent_id, "--json"], env)
    assert validated.exit_code == 0, validated.stderr
    return intent_id


# --- the database as raw rows, read without robson's own code --------------------------


@dataclass(frozen=True)
class Ledger:
    """What the database file holds after a run: intents, operations, orders and paper balances."""

    intents: dict[str, dict[str, Any]]
    operations: dict[str, dict[str, Any]]
    orders: dict[str, dict[str, Any]]
    balances: dict[str, tuple[Decimal, Decimal]]  # asset -> (free, locked)
    parts: dict[str, list[dict[str, Any]]] = None  # operation id -> its partial exits (schema v9), oldest first

    def held(self, operation_id: str) -> Decimal:
        """What an operation still holds: its quantity less the parts taken."""
        op = self.operations[operation_id]
        return Decimal(op["quantity"]) - sum((Decimal(p["quantity"]) for p in (self.parts or {}).get(operation_id, [])),
                                             Decimal(0))

    def holding(self, asset: str) -> Decimal:
        free, locked = self.balances.get(asset, (Decimal(0), Decimal(0)))
        return free + locked

    def orders_of(self, intent_id: str) -> dict[str, dict[str, Any]]:
        return {cid: o for cid, o in self.orders.items() if o["intent_id"] == intent_id}

    def operations_of(self, intent_id: str) -> list[dict[str, Any]]:
        return [op for op in self.operations.values() if op["intent_id"] == intent_id]


def read_ledger(db: Target) -> Ledger:
    """Read every intent, operation, order and paper balance straight from the database (SQLite file or URL)."""
    intents = {r["id"]: r for r in fetch(db, "SELECT * FROM intents")}
    operations = {r["id"]: r for r in fetch(db, "SELECT * FROM operations")}
    orders = {r["client_order_id"]: r for r in fetch(db, "SELECT * FROM orders")}
    balances = {r["asset"]: (Decimal(r["free"]), Decimal(r["locked"]))
                for r in fetch(db, "SELECT * FROM balances WHERE account = 'paper'")}
    parts: dict[str, list[dict[str, Any]]] = {}
    for row in fetch(db, "SELECT * FROM partial_exits ORDER BY operation_id, number"):
        parts.setdefault(row["operation_id"], []).append(row)
    return Ledger(intents, operations, orders, balances, parts)


def entry_cost(order: Mapping[str, Any]) -> Decimal:
    """Return what a filled BUY entry took from the quote balance: notional plus fee, exactly."""
    return Decimal(order["average_price"]) * Decimal(order["filled_quantity"]) + Decimal(order["fee"])


OPEN = ("NEW", "PARTIALLY_FILLED")
QUOTE_ASSETS = ("USDT", "USDC", "FDUSD", "BUSD", "BTC", "ETH", "BNB")  # the quotes of the symbols the tests trade


def assets_of(symbol: str) -> tuple[str, str]:
    """Split a symbol into (base, quote): BTCUSDT → (BTC, USDT)."""
    quote = next(q for q in QUOTE_ASSETS if symbol.endswith(q) and symbol != q)
    return symbol.removesuffix(quote), quote


def paper_locks(ledger: Ledger) -> dict[str, Decimal]:
    """What the paper book's open orders lock, by asset: a buy its quote at its limit price, a sell its base.

    An order PENDING_NEW (a limit entry's attached protection) locks nothing until its entry fills.
    """
    locks: dict[str, Decimal] = {}
    for order in ledger.orders.values():
        if order["exchange"] != "paper" or order["status"] not in OPEN:
            continue
        base, quote = assets_of(order["symbol"])
        remaining = Decimal(order["quantity"]) - Decimal(order["filled_quantity"] or 0)
        asset, amount = (quote, remaining * Decimal(order["price"] or 0)) if order["side"] == "BUY" else (base, remaining)
        locks[asset] = locks.get(asset, Decimal(0)) + amount
    return locks


def invariant_breaches(db: Target) -> list[str]:
    """Check the books straight from the database; return what is wrong (nothing: an empty list).

    - every CLOSED operation's realized P&L equals the cash its filled orders moved (quote received
      for what was sold, less what was paid for what was bought, less every fee), its parts taken
      before the close (-P1, -P2 …) included;
    - every ACTIVE operation has exactly one open protective order (a stop generation, -S, -S1, …),
      and on paper it covers exactly what the operation still holds (its quantity less its parts);
    - every part booked has its FILLED order, at the part's quantity, price and fee;
    - every WORKING intent has exactly one open entry order (-E), and the paper wallet locks exactly
      what the open paper orders lock (a waiting entry its cash, a stop what it would sell; a
      cancelled or filled order nothing), with no balance below zero;
    - no order is PENDING_NEW (a limit entry's protection, live once it fills) unless its intent is WORKING.
    """
    return ledger_breaches(read_ledger(db))


def ledger_breaches(ledger: Ledger) -> list[str]:
    """invariant_breaches of books already read (read_ledger)."""
    breaches = []
    for intent in ledger.intents.values():
        orders = ledger.orders_of(intent["id"])
        if intent["status"] == "WORKING":
            entries = [cid for cid, o in orders.items() if cid.endswith("-E") and o["status"] in OPEN]
            if len(entries) != 1:
                breaches.append(f"{intent['id']} WORKING with {len(entries)} open entry orders")
        else:
            pending = sorted(cid for cid, o in orders.items() if o["status"] == "PENDING_NEW")
            if pending:
                breaches.append(f"{intent['id']} {intent['status']} with {', '.join(pending)} still PENDING_NEW")
    locks = paper_locks(ledger)
    for asset in sorted(set(locks) | set(ledger.balances)):
        free, locked = ledger.balances.get(asset, (Decimal(0), Decimal(0)))
        if locked != locks.get(asset, Decimal(0)):
            breaches.append(f"paper {asset}: {locked} locked, but its open orders lock {locks.get(asset, 0)}")
        if free < 0:
            breaches.append(f"paper {asset}: {free} free")
    for op in ledger.operations.values():
        orders = ledger.orders_of(op["intent_id"])
        stops = [o for cid, o in orders.items() if cid.split("-")[-1].startswith("S")
                 and o["status"] in ("NEW", "PARTIALLY_FILLED")]
        if op["status"] == "ACTIVE" and len(stops) != 1:
            breaches.append(f"{op['id']} ACTIVE with {len(stops)} open protective orders")
        elif op["status"] == "ACTIVE" and op["mode"] == "paper":
            covered = Decimal(stops[0]["quantity"]) - Decimal(stops[0]["filled_quantity"] or 0)
            if covered != ledger.held(op["id"]):
                breaches.append(f"{op['id']} ACTIVE holds {ledger.held(op['id'])} but its stop covers {covered}")
        for part in (ledger.parts or {}).get(op["id"], []):
            order = orders.get(part["client_order_id"])
            if order is None or order["status"] != "FILLED" or (
                    Decimal(order["filled_quantity"]), Decimal(order["average_price"]), Decimal(order["fee"])) != (
                    Decimal(part["quantity"]), Decimal(part["price"]), Decimal(part["fee"])):
                breaches.append(f"{op['id']} part {part['number']} has no FILLED order {part['client_order_id']} "
                                "matching it")
        if op["status"] != "CLOSED":
            continue
        cash = Decimal(0)
        for order in orders.values():
            filled = Decimal(order["filled_quantity"] or 0)
            if not filled:
                continue
            notional = Decimal(order["average_price"]) * filled
            cash += (notional if order["side"] == "SELL" else -notional) - Decimal(order["fee"] or 0)
        if Decimal(op["realized_pnl"]) != cash:
            breaches.append(f"{op['id']} CLOSED with P&L {op['realized_pnl']} but its orders moved {cash}")
    return breaches
