"""The LIVE gate: --live needs confirmation, the config switch, keys and a fresh validation; keys never leak."""

import json
from decimal import Decimal

import pytest

from robson.application.plan import PlanRequest, plan
from robson.bootstrap import Container
from robson.domain.intent import IntentSource
from robson.domain.market import Side
from tests import databases
from tests.cli.conftest import CANARY_KEY, CANARY_SECRET, assert_user_error, count_rows, parsed

KEYS = {"BINANCE_API_KEY": CANARY_KEY, "BINANCE_API_SECRET": CANARY_SECRET}
ENABLED = {"ROBSON_LIVE_TRADING": "true"}


@pytest.fixture
def validated(robson, plan_id) -> str:
    intent_id = plan_id()
    parsed(robson("validate", intent_id, "--json"))
    return intent_id


def assert_nothing_placed(robson, db_path, intent_id: str) -> None:
    assert count_rows(db_path, "orders") == 0
    assert count_rows(db_path, "operations") == 0
    assert parsed(robson("plan", "show", intent_id, "--json"))["status"] == "VALIDATED"


# The prompt itself, answered or not, needs a validation fresh on Binance's clock: tests/live/test_live_confirm.py.


NO_HUMAN_NEEDED = {
    "disabled-in-config": (KEYS, None, "live trading is disabled in the config"),
    "no-keys": (ENABLED, None, "needs BINANCE_API_KEY and BINANCE_API_SECRET"),
    "stale-validation": (KEYS | ENABLED, None, "min old > 15 min"),
    "pending-intent": (KEYS | ENABLED, "pending", "is PENDING: only VALIDATED intents execute"),
    "cancelled-intent": (KEYS | ENABLED, "cancelled", "is CANCELLED: only VALIDATED intents execute"),
}


@pytest.mark.parametrize(("env", "state", "problem"), NO_HUMAN_NEEDED.values(), ids=NO_HUMAN_NEEDED.keys())
@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_live_is_refused_for_what_no_confirm_could_change_before_anyone_is_asked(robson, db_path, plan_id, env, state,
                                                                                 problem, as_json):
    intent_id = plan_id()
    if state is None:
        parsed(robson("validate", intent_id, "--json"))
    elif state == "cancelled":
        parsed(robson("plan", "cancel", intent_id, "--json"))

    result = robson("execute", intent_id, "--live", *(["--json"] if as_json else []), input="CONFIRM\n", env=env)

    stderr = assert_user_error(result, 3, problem)
    assert "CONFIRM" not in stderr.replace("typing CONFIRM", "")  # never asked
    if as_json:
        assert json.loads(result.stdout)["error"]["code"] == 3  # nothing else on stdout: no prompt, no space
    else:
        assert result.stdout == ""
    assert count_rows(db_path, "orders") == 0 and count_rows(db_path, "operations") == 0


def test_live_enabled_in_a_config_file_but_without_keys_is_refused(robson, tmp_path, db_path, validated):
    (tmp_path / ".robson.yaml").write_text("execution:\n  live_trading_enabled: true\n")

    result = robson("execute", validated, "--live", "--acknowledge-risk")

    assert_user_error(result, 3, "needs BINANCE_API_KEY and BINANCE_API_SECRET")
    assert_nothing_placed(robson, db_path, validated)


def test_live_enabled_by_environment_but_without_keys_is_refused(robson, db_path, validated):
    result = robson("execute", validated, "--live", "--acknowledge-risk", env=ENABLED)

    assert_user_error(result, 3, "needs BINANCE_API_KEY and BINANCE_API_SECRET")
    assert_nothing_placed(robson, db_path, validated)


@pytest.mark.parametrize("confirmation", [["--acknowledge-risk"], []], ids=["acknowledged", "typed-CONFIRM"])
def test_live_refuses_a_validation_made_on_the_replayed_sample_market(robson, db_path, validated, confirmation):
    # The sample market's clock is in 2021: measured on Binance's clock that validation is years old.
    result = robson("execute", validated, "--live", *confirmation, input="CONFIRM\n", env=KEYS | ENABLED)

    stderr = assert_user_error(result, 3, f"validation of {validated} is", "min old > 15 min")
    assert f"robson validate {validated}" in stderr
    assert "Type CONFIRM" not in stderr  # refused before anyone is asked
    assert result.stdout == ""
    assert_nothing_placed(robson, db_path, validated)


def plan_from_a_pattern() -> str:
    """Create an intent as a scan would (source: pattern), through the use case and the real container."""
    container = Container.from_options()
    try:
        intent = plan(
            PlanRequest(side=Side.BUY, symbol="BTCUSDT", strategy=container.strategies.get("rescue-forces"),
                        source=IntentSource.PATTERN, confidence=Decimal("0.8")),
            store=container.store, market=container.market, exchange=container.paper, account=container.account,
            clock=container.clock,
        )
    finally:
        container.store.close()
    return intent.id


@pytest.mark.parametrize("confirmation", [["--acknowledge-risk"], []], ids=["acknowledged", "not-acknowledged"])
def test_a_pattern_intent_never_executes_live(robson, db_path, confirmation):
    intent_id = plan_from_a_pattern()
    validated = parsed(robson("validate", intent_id, "--json"))
    assert validated["intent"]["source"] == "pattern"

    result = robson("execute", intent_id, "--live", *confirmation, input="CONFIRM\n", env=KEYS | ENABLED)

    stderr = assert_user_error(result, 3, "created by a pattern scan", "never execute LIVE")
    assert "Type CONFIRM" not in stderr  # no prompt: the answer could not change anything
    assert_nothing_placed(robson, db_path, intent_id)


def test_api_keys_never_reach_the_output_or_the_database(robson, tmp_path, db_path, validated):
    runs = [
        robson("execute", validated, "--live", input="nope\n", env=KEYS),
        robson("execute", validated, "--live", input="CONFIRM\n", env=KEYS),
        robson("execute", validated, "--live", "--acknowledge-risk", env=KEYS | ENABLED),
        robson("config", "show", env=KEYS),
        robson("config", "show", "--json", env=KEYS),
        robson("config", "check", "--json", env=KEYS),
        robson("execute", validated, "--json", env=KEYS | ENABLED),  # a dry-run with keys around
        robson("operation", "status", "--json", env=KEYS),
        robson("plan", "show", validated, "--json", env=KEYS),
    ]

    assert [r.exit_code for r in runs] == [3, 3, 3, 0, 0, 0, 0, 0, 0]
    for result in runs:
        for canary in (CANARY_KEY, CANARY_SECRET):
            assert canary not in result.stdout and canary not in result.stderr
    if databases.is_postgresql(db_path):  # the server's files are not ours to read: every row instead
        rows = repr(databases.dump(db_path))
        assert CANARY_KEY not in rows and CANARY_SECRET not in rows
        return
    database_files = sorted(tmp_path.glob("r.db*"))
    assert database_files
    for path in database_files:
        data = path.read_bytes()
        assert CANARY_KEY.encode() not in data and CANARY_SECRET.encode() not in data


def test_live_on_a_pending_intent_is_refused_before_the_live_adapter_is_looked_for(robson, db_path, plan_id):
    intent_id = plan_id()

    result = robson("execute", intent_id, "--live", "--acknowledge-risk", env=KEYS | ENABLED)

    assert_user_error(result, 3, f"intent {intent_id} is PENDING")
    assert count_rows(db_path, "orders") == 0
