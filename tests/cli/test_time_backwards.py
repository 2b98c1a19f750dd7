"""History is never written backwards: a command at a market time before what it touches is refused, exit 2.

A replay (--as-of) may move the clock anywhere, but closing an operation before it opened, executing
an intent before it was validated or validating it before it was planned would book money at a
price from another time. Each is refused with both times named, and nothing is written.
"""

from __future__ import annotations

import pytest

from tests.cli.conftest import assert_user_error, dump_database, parsed

PLANNED = "2021-06-01T12:00"
EARLIER = "2021-06-01T11:00"


def planned(robson) -> str:
    return parsed(robson("--as-of", PLANNED, "plan", "buy", "BTCUSDT", "0.001", "--stop", "36000", "--json"))["id"]


def validated(robson) -> str:
    intent_id = planned(robson)
    parsed(robson("--as-of", PLANNED, "validate", intent_id, "--json"))
    return intent_id


def executed(robson) -> str:
    return parsed(robson("--as-of", PLANNED, "execute", validated(robson), "--json"))["operation"]["id"]


@pytest.mark.parametrize(("make", "command"), [
    (planned, ["validate"]),
    (planned, ["plan", "cancel"]),
    (validated, ["execute"]),
    (executed, ["operation", "close"]),
    (executed, ["operation", "modify", "--stop", "35000", "--allow-loosen"]),
], ids=["validate-before-plan", "cancel-before-plan", "execute-before-validation", "close-before-open",
        "modify-before-open"])
def test_a_command_before_the_history_of_what_it_touches_is_refused_naming_both_times(robson, db_path, make,
                                                                                      command):
    target = make(robson)
    args = command[:2] + [target] + command[2:] if command[0] in ("plan", "operation") else [command[0], target]
    before = dump_database(db_path)

    result = robson("--as-of", EARLIER, *args)

    assert_user_error(result, 2, "market time 2021-06-01 11:00:00 UTC is before", "at 2021-06-01 12:00:00 UTC",
                      "robson never writes history backwards")
    assert "--as-of 2021-06-01T12:00:00 or later" in result.stderr
    assert dump_database(db_path) == before


def test_the_same_market_time_is_not_backwards(robson):
    operation = executed(robson)

    closed = parsed(robson("--as-of", PLANNED, "operation", "close", operation, "--json"))

    assert closed["status"] == "CLOSED"


def test_the_guards_only_see_closes_made_by_their_market_time(robson, monkeypatch):
    # A replay run later in the day closed a losing operation at 13:05; validating at 12:30 the same day
    # must not count that future loss, nor its stop-out, against a new entry.
    monkeypatch.setenv("ROBSON_RISK__DAILY_LOSS_PERCENT", "0.5")
    intent = parsed(robson("--as-of", PLANNED, "plan", "buy", "BTCUSDT", "--stop", "36000", "--json"))
    parsed(robson("--as-of", PLANNED, "validate", intent["id"], "--json"))
    parsed(robson("--as-of", PLANNED, "execute", intent["id"], "--json"))
    assert parsed(robson("--as-of", "2021-06-01T13:30", "monitor", "--once", "--json"))["closed"] == 1
    other = parsed(robson("--as-of", "2021-06-01T12:30", "plan", "buy", "BTCUSDT", "0.001", "--stop", "35000",
                          "--json"))

    report = parsed(robson("--as-of", "2021-06-01T12:30", "validate", other["id"], "--json"))

    verdicts = {r["guard"]: r["verdict"] for r in report["results"]}
    assert (verdicts["daily loss"], verdicts["cooldown"]) == ("PASS", "PASS")
    later = parsed(robson("--as-of", "2021-06-01T13:30", "plan", "buy", "BTCUSDT", "0.001", "--stop", "35000",
                          "--json"))
    failed = robson("--as-of", "2021-06-01T13:30", "validate", later["id"])
    assert_user_error(failed, 3, "daily loss: today's realized loss 0.96% ≥ 0.50%")
