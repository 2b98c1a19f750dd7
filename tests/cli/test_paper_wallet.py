"""`robson paper deposit|withdraw|reset`: the paper wallet as an audited ledger, and every bad input refused."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from robson.domain.intent import IntentStatus
from robson.domain.market import Side
from robson.domain.operation import CloseReason, Operation, OperationStatus
from tests import databases
from tests.cli.conftest import assert_user_error, dump_database, floats_in, paper_balances, parsed
from tests.integration.factories import make_intent

AS_OF = "2021-07-15T12:00"
OPENED = datetime(2021, 7, 10, tzinfo=UTC)


def wallet_events(db_path) -> list[tuple[str, str]]:
    rows = databases.fetch(db_path, "SELECT kind, message FROM audit_events WHERE kind IN "
                                    "('deposit', 'withdrawal', 'wallet_reset') ORDER BY id")
    return [(row["kind"], row["message"]) for row in rows]


def ok(robson, *args: str) -> dict:
    result = robson("--as-of", AS_OF, "paper", *args, "--json")
    doc = parsed(result)
    assert result.stderr == "" and floats_in(doc) == []
    return doc


def add_operation(db_path, op_id: str, *, closed: bool) -> None:
    op = Operation(id=op_id, intent_id=f"pl-{op_id[3:]}", symbol="BTCUSDT", side=Side.BUY,
                   status=OperationStatus.ACTIVE, mode="paper", strategy="all-in", quantity=D("0.01"),
                   entry_price=D("30000"), entry_fee=D("0.3"), initial_stop=D("29000"), stop=D("29000"), target=None,
                   opened_at=OPENED, updated_at=OPENED)
    if closed:
        op = op.close(exit_price=D("31000"), exit_fee=D("0.31"), reason=CloseReason.MANUAL, at=OPENED)
    store = databases.open_store(db_path)
    with store.transaction() as tx:
        tx.add_intent(make_intent(op.intent_id, status=IntentStatus.EXECUTED))
        tx.add_operation(op)
    store.close()


def test_deposit_adds_to_the_free_balance_and_is_audited(robson, db_path):
    doc = ok(robson, "deposit", "btc", "0.25")

    assert (doc["change"], doc["asset"], doc["amount"]) == ("deposit", "BTC", "0.25")
    assert paper_balances(db_path) == {"USDT": (D("1000"), D("0")), "BTC": (D("0.25"), D("0"))}
    assert wallet_events(db_path) == [("deposit", "paper wallet: deposited 0.25 BTC, free 0 → 0.25")]


def test_withdraw_takes_from_the_free_balance_and_is_audited(robson, db_path):
    doc = ok(robson, "withdraw", "USDT", "250.5")

    assert [(b["asset"], b["free"]) for b in doc["balances"]] == [("USDT", "749.5")]
    assert paper_balances(db_path) == {"USDT": (D("749.5"), D("0"))}
    assert wallet_events(db_path) == [("withdrawal", "paper wallet: withdrew 250.5 USDT, free 1000 → 749.5")]


def test_withdrawing_everything_free_is_allowed(robson, db_path):
    ok(robson, "withdraw", "USDT", "1000")

    assert paper_balances(db_path)["USDT"] == (D("0"), D("0"))


def test_human_output_says_what_changed(robson):
    result = robson("--as-of", AS_OF, "paper", "deposit", "ETH", "2")

    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout.strip() == "Deposited 2 ETH. Paper wallet: 2 ETH, 1000 USDT."


def test_reset_restores_the_starting_wallet_and_keeps_closed_operations_and_history(robson, db_path):
    ok(robson, "deposit", "BTC", "1")
    ok(robson, "withdraw", "USDT", "100")
    add_operation(db_path, "op-done", closed=True)

    doc = ok(robson, "reset", "--confirm")

    assert [(b["asset"], b["total"]) for b in doc["balances"]] == [("USDT", "1000")]
    assert {a: b for a, b in paper_balances(db_path).items() if b != (D(0), D(0))} == {"USDT": (D("1000"), D("0"))}
    assert [kind for kind, _ in wallet_events(db_path)] == ["deposit", "withdrawal", "wallet_reset"]
    assert wallet_events(db_path)[-1][1] == "paper wallet reset to 1000 USDT (was 1 BTC, 900 USDT)"
    closed = parsed(robson("operation", "list", "--json"))
    assert [(o["id"], o["status"]) for o in closed["operations"]] == [("op-done", "CLOSED")]


def test_reset_uses_the_configured_starting_balances(robson, db_path, tmp_path):
    (tmp_path / ".robson.yaml").write_text("paper:\n  balances: {USDT: 250, BTC: 0.01}\n", encoding="utf-8")
    ok(robson, "deposit", "ETH", "3")

    ok(robson, "reset", "--confirm")

    balances = {a: b for a, b in paper_balances(db_path).items() if b != (D(0), D(0))}
    assert balances == {"USDT": (D("250"), D("0")), "BTC": (D("0.01"), D("0"))}


@pytest.mark.parametrize(("args", "fragment"), [
    (("deposit", "USDT", "-5"), "amount must be greater than 0, got '-5'"),
    (("deposit", "USDT", "0"), "amount must be greater than 0, got '0'"),
    (("withdraw", "USDT", "-1"), "amount must be greater than 0"),
    (("withdraw", "USDT", "0"), "amount must be greater than 0"),
    (("deposit", "USDT", "ten"), "amount must be a number, got 'ten'"),
    (("deposit", "USDT", "nan"), "amount must be a finite number"),
    (("deposit", "US-DT", "5"), "asset must be 2 to 20 letters or digits like USDT or BTC, got 'US-DT'"),
    (("deposit", "U", "5"), "asset must be 2 to 20 letters or digits"),
    (("withdraw", "BTC USDT", "5"), "asset must be 2 to 20 letters or digits"),
    (("withdraw", "ＵＳＤＴ", "5"), "asset must be 2 to 20 letters or digits"),
    (("withdraw", "USDT", "1001.01"), "cannot withdraw 1001.01 USDT: the paper wallet has 1001 USDT free"),
    (("withdraw", "BTC", "0.1"), "cannot withdraw 0.1 BTC: the paper wallet has 0 BTC free"),
    (("reset",), "add --confirm"),
])
def test_bad_input_exits_2_with_one_line_and_changes_nothing(robson, db_path, args, fragment):
    ok(robson, "deposit", "USDT", "1")  # the database exists, with a wallet and an audit trail
    before = dump_database(db_path)

    result = robson("--as-of", AS_OF, "paper", *args)

    assert_user_error(result, 2, fragment)
    assert result.stdout == ""
    assert dump_database(db_path) == before


def test_bad_input_on_a_fresh_machine_creates_no_database(robson, db_path):
    result = robson("paper", "deposit", "USDT", "-5", env=databases.never_opened_env(db_path))

    assert_user_error(result, 2, "amount must be greater than 0")
    assert not databases.file_made(db_path)


def test_a_withdraw_beyond_free_does_not_touch_what_is_locked(robson, db_path):
    store = databases.open_store(db_path)
    with store.transaction() as tx:
        from robson.application.ports import Balance

        tx.set_balance("paper", Balance("BTC", D("0.01"), D("0.02")))  # 0.02 locked by a resting stop
    store.close()
    before = dump_database(db_path)

    result = robson("--as-of", AS_OF, "paper", "withdraw", "BTC", "0.02")

    assert_user_error(result, 2, "the paper wallet has 0.01 BTC free (0.02 more locked by resting orders)")
    assert dump_database(db_path) == before


def test_reset_is_refused_while_a_paper_operation_is_active(robson, db_path):
    ok(robson, "deposit", "USDT", "1")
    add_operation(db_path, "op-open", closed=False)
    before = dump_database(db_path)

    result = robson("--as-of", AS_OF, "paper", "reset", "--confirm", "--json")

    assert_user_error(result, 2, "cannot reset the paper wallet while 1 operation(s) or execution(s) are open (op-open)")
    assert parsed_error(result)["code"] == 2
    assert dump_database(db_path) == before


def parsed_error(result) -> dict:
    import json

    return json.loads(result.stdout)["error"]
