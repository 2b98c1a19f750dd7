"""The whole journey through the CLI: plan → validate → execute (dry-run) → status → close."""

from decimal import Decimal

from tests.cli.conftest import assert_user_error, count_rows, floats_in, paper_balances, parsed

D = Decimal


def plan_validate(robson):
    planned = parsed(robson("plan", "buy", "BTCUSDT", "--strategy", "all-in", "--json"))
    validated = parsed(robson("validate", planned["id"], "--json"))
    return planned, validated


def test_plan_creates_a_pending_intent_with_money_as_strings(robson):
    result = robson("plan", "buy", "BTCUSDT", "--strategy", "all-in", "--json")

    intent = parsed(result)
    assert result.stderr == ""
    assert floats_in(intent) == []
    assert intent["id"].startswith("pl-") and len(intent["id"]) == len("pl-7f3a9c2e")
    assert (intent["status"], intent["side"], intent["symbol"]) == ("PENDING", "BUY", "BTCUSDT")
    assert intent["strategy"] == "all-in"
    assert (intent["source"], intent["timeframe"], intent["entry_source"]) == ("manual", "15m", "market")
    for field in ("entry", "stop", "quantity", "target", "capital", "notional", "risk", "fees"):
        assert isinstance(intent[field], str), field
        D(intent[field])
    assert D(intent["stop"]) < D(intent["entry"]) < D(intent["target"])
    assert intent["operation_id"] is None and intent["validation"] is None


def test_validate_passes_all_eleven_guards_and_marks_the_intent_validated(robson):
    planned = parsed(robson("plan", "buy", "BTCUSDT", "--json"))

    result = robson("validate", planned["id"], "--json")

    report = parsed(result)
    assert result.stderr == ""
    assert floats_in(report) == []
    assert report["verdict"] == "PASS"
    assert report["intent"]["status"] == "VALIDATED"
    assert report["intent"]["validated_at"] is not None
    assert len(report["results"]) == 11
    assert {r["verdict"] for r in report["results"]} <= {"PASS", "WARN"}
    assert report["intent"]["validation"]["results"] == report["results"]


def test_execute_dry_run_fills_the_entry_and_places_the_protective_oco(robson, db_path):
    planned, _ = plan_validate(robson)
    intent_id = planned["id"]
    before = paper_balances(db_path)

    result = robson("execute", intent_id, "--json")

    doc = parsed(result)
    assert result.stderr == ""
    assert floats_in(doc) == []
    assert (doc["mode"], doc["already_executed"]) == ("dry-run", False)
    intent, operation = doc["intent"], doc["operation"]
    assert intent["status"] == "EXECUTED"
    assert operation["status"] == "ACTIVE" and operation["mode"] == "paper"
    assert intent["operation_id"] == operation["id"] and operation["intent_id"] == intent_id
    assert operation["id"].startswith("op-")
    assert intent["execution"]["operation_id"] == operation["id"]

    entry, stop = sorted(doc["orders"], key=lambda o: o["client_order_id"])
    assert (entry["client_order_id"], entry["type"], entry["side"], entry["status"]) == (
        f"rb-{intent_id}-E", "MARKET", "BUY", "FILLED")
    assert entry["filled_quantity"] == entry["quantity"] == planned["quantity"]
    assert (stop["client_order_id"], stop["type"], stop["side"], stop["status"]) == (
        f"rb-{intent_id}-S", "OCO", "SELL", "NEW")
    assert (stop["stop_price"], stop["target_price"]) == (planned["stop"], planned["target"])
    assert stop["quantity"] == planned["quantity"]
    assert D(stop["price"]) < D(stop["stop_price"])  # the limit sits below a long's stop so it still fills

    assert operation["entry_price"] == entry["average_price"]
    assert operation["entry_fee"] == entry["fee"]
    notional, fee, quantity = D(entry["average_price"]) * D(entry["quantity"]), D(entry["fee"]), D(entry["quantity"])
    assert fee == notional * D("0.001")
    after = paper_balances(db_path)
    assert before == {"USDT": (D("1000"), D("0"))}
    assert after["USDT"] == (D("1000") - notional - fee, D("0"))
    assert after["BTC"] == (D("0"), quantity)  # the bought BTC is locked by the resting stop
    assert count_rows(db_path, "orders") == 2


def test_operation_status_shows_the_active_operation_linked_to_its_intent(robson):
    planned, _ = plan_validate(robson)
    executed = parsed(robson("execute", planned["id"], "--json"))

    result = robson("operation", "status", "--json")

    doc = parsed(result)
    assert result.stderr == ""
    assert floats_in(doc) == []
    (view,) = doc["operations"]
    assert view["id"] == executed["operation"]["id"]
    assert (view["status"], view["intent_id"], view["symbol"], view["side"]) == ("ACTIVE", planned["id"], "BTCUSDT", "BUY")
    for field in ("price", "unrealized_pnl", "unrealized_percent", "r_multiple", "distance_to_stop", "quantity"):
        assert isinstance(view[field], str), field
    assert D(view["distance_to_stop"]) == D(view["price"]) - D(view["stop"])

    shown = parsed(robson("plan", "show", planned["id"], "--json"))
    assert shown["operation_id"] == view["id"]
    assert floats_in(shown) == []
    assert [e["kind"] for e in shown["audit"]][:2] == ["planned", "validated"]
    assert "executed" in [e["kind"] for e in shown["audit"]]


def test_re_running_execute_places_nothing_and_reports_already_executed(robson, db_path):
    planned, _ = plan_validate(robson)
    first = parsed(robson("execute", planned["id"], "--json"))
    orders_before, balances_before = count_rows(db_path, "orders"), paper_balances(db_path)

    result = robson("execute", planned["id"], "--json")

    again = parsed(result)
    assert result.stderr == ""
    assert again["already_executed"] is True
    assert again["operation"]["id"] == first["operation"]["id"]
    assert [o["client_order_id"] for o in again["orders"]] == [o["client_order_id"] for o in first["orders"]]
    assert count_rows(db_path, "orders") == orders_before == 2
    assert count_rows(db_path, "operations") == 1
    assert paper_balances(db_path) == balances_before


def test_closing_an_operation_realizes_the_pnl_net_of_both_fees(robson, db_path):
    planned, _ = plan_validate(robson)
    opened = parsed(robson("execute", planned["id"], "--json"))["operation"]
    usdt_before = paper_balances(db_path)["USDT"][0]

    result = robson("operation", "close", opened["id"], "--json")

    closed = parsed(result)
    assert result.stderr == ""
    assert floats_in(closed) == []
    assert (closed["status"], closed["close_reason"]) == ("CLOSED", "manual")
    entry, exit_, quantity = D(closed["entry_price"]), D(closed["exit_price"]), D(closed["quantity"])
    entry_fee, exit_fee = D(closed["entry_fee"]), D(closed["exit_fee"])
    assert exit_fee == exit_ * quantity * D("0.001")
    assert D(closed["realized_pnl"]) == (exit_ - entry) * quantity - entry_fee - exit_fee
    balances = paper_balances(db_path)
    assert balances["USDT"] == (usdt_before + exit_ * quantity - exit_fee, D("0"))
    assert balances["BTC"] == (D("0"), D("0"))  # the stop was cancelled, its lock released and sold
    assert parsed(robson("operation", "status", "--json")) == {"operations": [], "executing": []}
    listed = parsed(robson("operation", "list", "--status", "closed", "--json"))["operations"]
    assert [op["id"] for op in listed] == [opened["id"]]
    orders = {o["client_order_id"]: o for o in parsed(robson("plan", "show", planned["id"], "--json"))["orders"]}
    assert orders[f"rb-{planned['id']}-S"]["status"] == "CANCELED"
    exit_order = orders[f"rb-{planned['id']}-X"]
    assert (exit_order["type"], exit_order["side"], exit_order["status"]) == ("MARKET", "SELL", "FILLED")


def test_closing_a_closed_operation_is_refused_with_exit_2(robson, db_path):
    planned, _ = plan_validate(robson)
    operation_id = parsed(robson("execute", planned["id"], "--json"))["operation"]["id"]
    parsed(robson("operation", "close", operation_id, "--json"))
    orders = count_rows(db_path, "orders")

    result = robson("operation", "close", operation_id)

    assert_user_error(result, 2, f"operation {operation_id} is CLOSED", "only ACTIVE operations can be closed")
    assert result.stdout == ""
    assert count_rows(db_path, "orders") == orders


def test_without_a_target_the_protective_stop_is_a_plain_stop_limit(robson, tmp_path, db_path):
    strategies = tmp_path / "strategies"
    strategies.mkdir()
    (strategies / "bare.yaml").write_text(
        "name: bare\ntitle: Bare\ndescription: no target\nentry: manual\ntimeframe: 15m\nrisk_percent: 1\n"
        "stop:\n  method: fixed_percent\n  percent: 2\n")
    env = {"ROBSON_STRATEGIES_DIR": str(strategies)}
    planned = parsed(robson("plan", "buy", "BTCUSDT", "--strategy", "bare", "--json", env=env))
    assert (planned["target"], planned["stop_method"], planned["stop"]) == (None, "fixed_percent", "31072.2")
    parsed(robson("validate", planned["id"], "--json", env=env))

    result = robson("execute", planned["id"], "--json", env=env)

    doc = parsed(result)
    assert result.stderr == ""
    assert doc["operation"]["target"] is None
    entry, stop = sorted(doc["orders"], key=lambda o: o["client_order_id"])
    assert (entry["type"], entry["status"]) == ("MARKET", "FILLED")
    assert (stop["client_order_id"], stop["type"], stop["status"]) == (f"rb-{planned['id']}-S", "STOP_LOSS_LIMIT", "NEW")
    # A percent stop follows the fill: the plan's 31706.33 × 0.98 = 31072.2034 → 31072.2 becomes, at the fill
    # 31706.33 × 1.0005 = 31722.1832 → tick up 31722.19, 31722.19 × 0.98 = 31087.7462 → tick down 31087.74.
    assert (stop["stop_price"], stop["target_price"]) == ("31087.74", None)
    assert (doc["operation"]["initial_stop"], doc["operation"]["entry_price"]) == ("31087.74", "31722.19")
