"""`robson monitor --once` SIGKILLed around a ladder target's fill on paper: the part is booked whole or not at all.

The position is tests/cli/test_scale_out.py's (a `scale-out` buy of 0.01489 BTCUSDT at 33583.70 on
2021-06-09 05:45 UTC). The monitor at 07:00 takes target 1: 0.00744 at 34146.14 (the 06:40 candle),
the stop moving to break-even plus fees, 33650.94, and shrinking to the 0.00745 still held. The
paper fill (PaperExchange.settle_part), the part booked (partial_exits), the stop resized and the
audit records are one transaction: a kill inside it leaves none of them, a kill after it all of
them, and the next tick takes the part exactly once.
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_scale_out import AS_OF, SCALE_OUT
from tests.databases import Target
from tests.reliability.helpers import (
    invariant_breaches,
    invoke,
    process_env,
    read_ledger,
    run_robson,
    runner_env,
    write_config,
)
from tests.reliability.test_crash_during_execute import KILL_HOOK, PAPER, SESSION

pytestmark = pytest.mark.slow

TICK = "2021-06-09T07:00"


@dataclass(frozen=True)
class Step:
    name: str
    kill_at: str
    booked: bool  # what the dead process left: the part filled and booked, or nothing of it


STEPS = [
    Step("before the part's paper fill", f"{PAPER}.settle_part:before", False),
    Step("part filled on paper, not booked", f"{PAPER}.settle_part:after", False),
    Step("fill and stop resized, audit not written", f"{SESSION}.record:before", False),
    Step("inside the operation's write", f"{SESSION}.update_operation:before", False),
    Step("booked, the tick not reported", "robson.bootstrap:Container.notify:before", True),
]


@dataclass(frozen=True)
class Crash:
    db: Target
    env: dict[str, str]
    cwd: Path
    intent_id: str
    operation_id: str
    killed_returncode: int
    killed_stderr: str
    left_orders: list[str]
    left_parts: list[dict[str, Any]]
    left_breaches: list[str]


def opened(env: dict[str, str | None]) -> tuple[str, str]:
    """Plan, validate and execute the scale-out buy in this process; return (intent id, operation id)."""
    planned = invoke(["--as-of", AS_OF, "plan", "buy", "BTCUSDT", "--strategy", "scale-out", "--json"], env)
    assert planned.exit_code == 0, planned.stderr
    intent_id = json.loads(planned.stdout)["id"]
    assert invoke(["--as-of", AS_OF, "validate", intent_id], env).exit_code == 0
    executed = invoke(["--as-of", AS_OF, "execute", intent_id, "--json"], env)
    assert executed.exit_code == 0, executed.stderr
    return intent_id, json.loads(executed.stdout)["operation"]["id"]


@pytest.fixture(scope="module", params=STEPS, ids=lambda step: step.name)
def crash(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, database_factory: Any) -> Crash:
    """Kill `robson monitor --once` at the step and read what it left."""
    step: Step = request.param
    tmp_path = tmp_path_factory.mktemp("part-crash")
    db, config = database_factory(tmp_path), write_config(tmp_path / "robson.yaml", {})
    folder = tmp_path / "strategies"
    folder.mkdir()
    (folder / "scale-out.yaml").write_text(SCALE_OUT, encoding="utf-8")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(KILL_HOOK, encoding="utf-8")
    settings = {"ROBSON_DB": str(db), "ROBSON_CONFIG": str(config), "ROBSON_STRATEGIES_DIR": str(folder)}
    intent_id, operation_id = opened(runner_env(**settings))
    env = process_env(**settings)

    killed = run_robson(["--as-of", TICK, "monitor", "--once", "--json"],
                        {**env, "PYTHONPATH": str(hook), "KILL_AT": step.kill_at}, cwd=tmp_path)
    left = read_ledger(db)
    return Crash(db, env, tmp_path, intent_id, operation_id, killed.returncode, killed.stderr,
                 sorted(left.orders_of(intent_id)), (left.parts or {}).get(operation_id, []), invariant_breaches(db))


def test_the_tick_dies_at_the_chosen_step(crash: Crash) -> None:
    assert crash.killed_returncode == -signal.SIGKILL, crash.killed_stderr


def test_the_part_is_left_filled_and_booked_together_or_not_at_all(crash: Crash, request: pytest.FixtureRequest) -> None:
    step: Step = request.node.callspec.params["crash"]
    part_order = f"rb-{crash.intent_id}-P1"

    assert (part_order in crash.left_orders) is step.booked
    assert len(crash.left_parts) == int(step.booked)
    assert crash.left_breaches == []
    ledger = read_ledger(crash.db)
    stop = ledger.orders[f"rb-{crash.intent_id}-S"]
    assert Decimal(stop["quantity"]) == (Decimal("0.00745") if step.booked else Decimal("0.01489"))


def test_the_next_tick_takes_the_part_exactly_once(crash: Crash) -> None:
    rerun = run_robson(["--as-of", TICK, "monitor", "--once", "--json"], crash.env, cwd=crash.cwd)
    again = run_robson(["--as-of", TICK, "monitor", "--once", "--json"], crash.env, cwd=crash.cwd)

    assert (rerun.returncode, again.returncode) == (0, 0), rerun.stderr + again.stderr
    ledger = read_ledger(crash.db)
    assert [(p["target"], Decimal(p["quantity"]), Decimal(p["price"])) for p in ledger.parts[crash.operation_id]] == [
        (1, Decimal("0.00744"), Decimal("34146.14"))]
    assert [cid for cid in ledger.orders_of(crash.intent_id) if cid.endswith("-P1") or "-P" in cid[-3:]] == [
        f"rb-{crash.intent_id}-P1"]
    op = ledger.operations[crash.operation_id]
    assert (op["status"], Decimal(op["stop"]), ledger.held(crash.operation_id)) == (
        "ACTIVE", Decimal("33650.94"), Decimal("0.00745"))
    assert invariant_breaches(crash.db) == []
    # BTC: 0.01489 bought, 0.00744 sold; what is left, locked under the one stop.
    assert ledger.balances["BTC"] == (Decimal(0), Decimal("0.00745"))
