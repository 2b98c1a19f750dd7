"""`robson execute` SIGKILLed at each step, then run again: one entry, one stop, one operation, USDT spent once."""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass
from typing import Any
from decimal import Decimal
from pathlib import Path

import pytest

from tests.databases import Target
from tests.reliability.helpers import (
    entry_cost,
    invoke,
    planned_and_validated,
    process_env,
    read_ledger,
    run_robson,
    runner_env,
    write_config,
)

pytestmark = pytest.mark.slow

START_USDT = Decimal(1000)  # the default paper wallet

# Loaded by the child python through PYTHONPATH; never part of robson. It wraps one function (a module's, or a
# class's method) so that the process kills itself just before or just after its n-th call (default: the first).
KILL_HOOK = '''\
"""Tests only: SIGKILL this process around one call (KILL_AT=module:function|Owner.method:before|after[:n])."""
import importlib
import os
import signal

_where = os.environ.get("KILL_AT")
if _where:
    _module, _qualname, _when, *_nth = _where.split(":")
    _nth = int(_nth[0]) if _nth else 1
    _owner = importlib.import_module(_module)
    *_path, _name = _qualname.split(".")
    for _part in _path:
        _owner = getattr(_owner, _part)
    _real = getattr(_owner, _name)
    _calls = [0]

    def _killing(*args, **kwargs):
        _calls[0] += 1
        if _calls[0] != _nth:
            return _real(*args, **kwargs)
        if _when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = _real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(_owner, _name, _killing)
'''

PAPER = "robson.adapters.paper:PaperExchange"
SESSION = "robson.adapters.store.session:SqlSession"


@dataclass(frozen=True)
class Step:
    name: str
    kill_at: str
    status_after_kill: str  # what the dead process left in the database
    orders_after_kill: tuple[str, ...]  # suffixes of the intent's orders it left


STEPS = [
    Step("while writing EXECUTING", f"{SESSION}.update_intent:before", "VALIDATED", ()),
    Step("(a) EXECUTING written, entry not sent", f"{PAPER}.place_market_order:before", "EXECUTING", ()),
    Step("inside the fill transaction", f"{SESSION}.add_order:before", "EXECUTING", ()),
    Step("(b) entry stored, fill not recorded", f"{PAPER}.place_market_order:after", "EXECUTING", ("E",)),
    Step("(c) filled, stop not placed", f"{PAPER}.place_stop_order:before", "EXECUTING", ("E",)),
    Step("(d) stop placed, operation not created", f"{PAPER}.place_stop_order:after", "EXECUTING", ("E", "S")),
    Step("inside the operation transaction", f"{SESSION}.add_operation:before", "EXECUTING", ("E", "S")),
]


@dataclass(frozen=True)
class Crash:
    db: Target
    config: Path
    intent_id: str
    killed_returncode: int
    status_after_kill: str
    orders_after_kill: list[str]
    rerun_returncode: int
    rerun_doc: dict
    rerun_stderr: str


@pytest.fixture(scope="module", params=STEPS, ids=lambda step: step.name)
def crash(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, database_factory: Any) -> Crash:
    """Kill `robson execute ID` at the step, inspect what it left, then run it again to completion."""
    step: Step = request.param
    tmp_path = tmp_path_factory.mktemp("crash")
    db, config = database_factory(tmp_path), write_config(tmp_path / "robson.yaml", {})
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILL_HOOK, encoding="utf-8")
    intent_id = planned_and_validated(runner_env(ROBSON_DB=str(db), ROBSON_CONFIG=str(config)))
    env = process_env(ROBSON_DB=str(db), ROBSON_CONFIG=str(config))

    killed = run_robson(["execute", intent_id, "--json"], {**env, "PYTHONPATH": str(hook), "KILL_AT": step.kill_at},
                        cwd=tmp_path)
    left = read_ledger(db)
    rerun = run_robson(["execute", intent_id, "--json"], env, cwd=tmp_path)

    return Crash(
        db=db,
        config=config,
        intent_id=intent_id,
        killed_returncode=killed.returncode,
        status_after_kill=left.intents[intent_id]["status"],
        orders_after_kill=sorted(left.orders_of(intent_id)),
        rerun_returncode=rerun.returncode,
        rerun_doc=json.loads(rerun.stdout) if rerun.returncode == 0 else {},
        rerun_stderr=rerun.stderr,
    )


def test_the_first_run_dies_exactly_at_the_chosen_step(crash: Crash, request: pytest.FixtureRequest) -> None:
    step: Step = request.node.callspec.params["crash"]

    assert crash.killed_returncode == -signal.SIGKILL
    assert crash.status_after_kill == step.status_after_kill
    assert crash.orders_after_kill == [f"rb-{crash.intent_id}-{suffix}" for suffix in step.orders_after_kill]


def test_running_execute_again_finishes_the_intent(crash: Crash) -> None:
    assert crash.rerun_returncode == 0, crash.rerun_stderr
    assert crash.rerun_doc["intent"]["status"] == "EXECUTED"
    assert crash.rerun_doc["operation"]["status"] == "ACTIVE"
    assert crash.rerun_doc["already_executed"] is False


def test_after_the_crash_there_is_one_entry_one_stop_and_one_operation(crash: Crash) -> None:
    ledger = read_ledger(crash.db)
    entry_id, stop_id = f"rb-{crash.intent_id}-E", f"rb-{crash.intent_id}-S"

    assert sorted(ledger.orders) == [entry_id, stop_id]
    [operation] = ledger.operations_of(crash.intent_id)
    assert ledger.intents[crash.intent_id]["status"] == "EXECUTED"
    assert ledger.intents[crash.intent_id]["operation_id"] == operation["id"] == crash.rerun_doc["operation"]["id"]
    assert operation["quantity"] == ledger.orders[entry_id]["filled_quantity"] == ledger.orders[stop_id]["quantity"]


def test_after_the_crash_usdt_was_spent_exactly_once(crash: Crash) -> None:
    ledger = read_ledger(crash.db)
    entry = ledger.orders[f"rb-{crash.intent_id}-E"]
    bought = Decimal(entry["filled_quantity"])

    assert ledger.holding("USDT") == START_USDT - entry_cost(entry)
    assert ledger.balances["BTC"] == (Decimal(0), bought)  # all of it locked by the one stop


def test_a_third_run_shows_the_existing_operation_and_places_nothing(crash: Crash) -> None:
    before = read_ledger(crash.db)

    third = invoke(["execute", crash.intent_id, "--json"],
                   runner_env(ROBSON_DB=str(crash.db), ROBSON_CONFIG=str(crash.config)))

    assert third.exit_code == 0, third.stderr
    assert json.loads(third.stdout)["already_executed"] is True
    assert read_ledger(crash.db) == before
