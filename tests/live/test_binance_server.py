"""The Binance test server speaks the real spot API: python-binance 1.0.37 talks to it unpatched."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from binance.exceptions import BinanceAPIException

from tests.live.binance_server import BinanceTestServer, Fault

KEY, SECRET = "robson-key", "robson-secret"
# CI checks out ../shared beside the repository (/work/main and /work/shared).
RECORDED_EXCHANGE_INFO = (Path(__file__).resolve().parents[2].parent / "shared" / "data" / "specs"
                          / "binance-exchangeinfo-2021-10.json")


@pytest.fixture
def server():
    with BinanceTestServer(api_key=KEY, api_secret=SECRET) as server:
        server.set_balance("USDT", "10000")
        server.set_balance("BTC", "1")
        server.set_price("BTCUSDT", "30000")
        yield server


@pytest.fixture
def client(server):
    return server.client()


def refusal(call, *args, **kwargs) -> BinanceAPIException:
    with pytest.raises(BinanceAPIException) as caught:
        call(*args, **kwargs)
    return caught.value


def signed(params: dict, secret: str = SECRET) -> str:
    query = urlencode(params)
    return query + "&signature=" + hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()


def stop_loss_sell(client, client_id="stop-1", quantity="0.01", stop="29000", limit="28900"):
    return client.create_order(symbol="BTCUSDT", side="SELL", type="STOP_LOSS_LIMIT", timeInForce="GTC",
                               quantity=quantity, price=limit, stopPrice=stop, newClientOrderId=client_id)


def oco_sell(client, list_id="oco-1", quantity="0.01", target="33000", stop="29000", limit="28900"):
    return client.create_oco_order(symbol="BTCUSDT", side="SELL", quantity=quantity, listClientOrderId=list_id,
                                   aboveType="LIMIT_MAKER", abovePrice=target, aboveClientOrderId=list_id + "-tp",
                                   belowType="STOP_LOSS_LIMIT", belowStopPrice=stop, belowPrice=limit,
                                   belowTimeInForce="GTC", belowClientOrderId=list_id + "-sl")


# --- public endpoints -----------------------------------------------------------------------------


def test_public_endpoints_answer_like_binance(server, client):
    assert client.ping() == {}
    assert abs(client.get_server_time()["serverTime"] - time.time() * 1000) < 5000
    assert client.get_symbol_ticker(symbol="BTCUSDT") == {"symbol": "BTCUSDT", "price": "30000.00000000"}
    info = client.get_symbol_info("ETHUSDT")
    assert info["baseAsset"] == "ETH" and info["status"] == "TRADING"


def test_server_clock_follows_the_offset_set_by_the_test(server, client):
    server.clock_offset_ms = 3_600_000

    assert client.get_server_time()["serverTime"] - time.time() * 1000 > 3_500_000


def test_exchange_info_for_one_symbol_and_for_an_unknown_symbol(server):
    url = server.base_url + "/api/v3/exchangeInfo"

    one = requests.get(url, params={"symbol": "BTCUSDT"}).json()
    unknown = requests.get(url, params={"symbol": "DOGEUSDT"})

    assert [entry["symbol"] for entry in one["symbols"]] == ["BTCUSDT"]
    assert one["rateLimits"][0]["limit"] == 1200
    assert (unknown.status_code, unknown.json()) == (400, {"code": -1121, "msg": "Invalid symbol."})


@pytest.mark.skipif(not RECORDED_EXCHANGE_INFO.exists(), reason="reference data not available")
def test_served_exchange_info_is_the_recorded_october_2021_answer(client):
    served = client.get_exchange_info()

    recorded = json.loads(RECORDED_EXCHANGE_INFO.read_text())
    assert {**served, "serverTime": 0} == {**recorded, "serverTime": 0}


def test_klines_between_start_and_end_respect_the_limit(server, client):
    hour = 3_600_000
    server.set_klines("BTCUSDT", "1h", [[i * hour, 100 + i, 110 + i, 90 + i, 105 + i, 7.5] for i in range(10)])

    rows = client.get_klines(symbol="BTCUSDT", interval="1h", startTime=2 * hour, endTime=8 * hour, limit=3)
    latest = client.get_klines(symbol="BTCUSDT", interval="1h", limit=2)

    assert [row[0] for row in rows] == [2 * hour, 3 * hour, 4 * hour]
    assert rows[0][1:7] == ["102.00000000", "112.00000000", "92.00000000", "107.00000000", "7.50000000",
                            3 * hour - 1]
    assert [row[0] for row in latest] == [8 * hour, 9 * hour]


def test_a_kline_series_follows_the_server_clock_so_seeded_candles_never_go_stale(server, client):
    from tests.live.conftest import seed_candles

    step = 900_000
    seed_candles(server, "BTCUSDT", "15m", Decimal("30000"), count=5)

    before = client.get_klines(symbol="BTCUSDT", interval="15m")
    server.clock_offset_ms += step  # the clock crosses a 15m boundary mid-test
    after = client.get_klines(symbol="BTCUSDT", interval="15m")

    forming = server.server_time_ms() // step * step
    assert [row[0] for row in after] == [forming - back * step for back in range(5, -1, -1)]
    assert [row[0] for row in before] == [row[0] - step for row in after]
    assert after[-2] == before[-1]  # the same candle, whenever it is asked for


def test_set_klines_replaces_a_series(server, client):
    from tests.live.conftest import seed_candles

    seed_candles(server, "BTCUSDT", "1h", Decimal("30000"))
    server.set_klines("BTCUSDT", "1h", [[0, 1, 2, 0.5, 1.5, 3]])

    assert [row[0] for row in client.get_klines(symbol="BTCUSDT", interval="1h")] == [0]


def test_an_order_filled_partly_by_hand_stays_open_for_the_rest(server, client):
    server.set_balance("BTC", "1")
    client.create_order(symbol="BTCUSDT", side="SELL", type="STOP_LOSS_LIMIT", timeInForce="GTC", quantity="0.5",
                        stopPrice="29000", price="28900", newClientOrderId="stop-1")

    server.fill_partly("stop-1", "0.2", "28950")

    order = client.get_order(symbol="BTCUSDT", origClientOrderId="stop-1")
    assert (order["status"], order["executedQty"], order["cummulativeQuoteQty"]) == (
        "PARTIALLY_FILLED", "0.20000000", "5790.00000000")


def test_klines_with_an_unknown_interval_are_refused(client):
    assert refusal(client.get_klines, symbol="BTCUSDT", interval="7m").code == -1120


# --- authentication -------------------------------------------------------------------------------


def test_signed_request_with_the_right_secret_is_accepted(client):
    account = client.get_account()

    balances = {b["asset"]: b for b in account["balances"]}
    assert account["canTrade"] is True
    assert balances["USDT"] == {"asset": "USDT", "free": "10000.00000000", "locked": "0.00000000"}


def test_wrong_secret_is_refused_with_minus_1022(server):
    error = refusal(server.client(api_secret="not-the-secret").get_account)

    assert (error.status_code, error.code, error.message) == (400, -1022, "Signature for this request is not valid.")


def test_unknown_api_key_is_refused_with_401_minus_2015(server):
    error = refusal(server.client(api_key="someone-else").get_account)

    assert (error.status_code, error.code) == (401, -2015)
    assert error.message == "Invalid API-key, IP, or permissions for action."


def test_timestamp_older_than_the_recv_window_is_refused_with_minus_1021(server, client):
    server.clock_offset_ms = 20_000  # the server runs 20 s ahead of this machine

    error = refusal(client.get_account)

    assert (error.code, error.message) == (-1021, "Timestamp for this request is outside of the recvWindow.")


def test_timestamp_ahead_of_the_server_is_refused_with_minus_1021(server, client):
    server.clock_offset_ms = -5_000

    error = refusal(client.get_account)

    assert (error.code, error.message) == (-1021, "Timestamp for this request was 1000ms ahead of the server's time.")


def test_client_that_corrects_its_clock_offset_is_accepted_again(server, client):
    server.clock_offset_ms = 20_000
    client.timestamp_offset = client.get_server_time()["serverTime"] - int(time.time() * 1000)

    assert client.get_account()["accountType"] == "SPOT"


def test_recv_window_above_60000_is_refused_with_minus_1131(server):
    query = signed({"timestamp": server.server_time_ms(), "recvWindow": 70000})

    answer = requests.get(f"{server.base_url}/api/v3/account?{query}", headers={"X-MBX-APIKEY": KEY})

    assert (answer.status_code, answer.json()["code"]) == (400, -1131)


def test_signature_covers_the_query_string_followed_by_the_body(server):
    query = urlencode({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET"})
    body = urlencode({"quantity": "0.001", "timestamp": server.server_time_ms()})
    signature = hmac.new(SECRET.encode(), (query + body).encode(), hashlib.sha256).hexdigest()

    answer = requests.post(f"{server.base_url}/api/v3/order/test?{query}", data=body + "&signature=" + signature,
                           headers={"X-MBX-APIKEY": KEY, "Content-Type": "application/x-www-form-urlencoded"})

    assert (answer.status_code, answer.json()) == (200, {})


def test_missing_signature_is_a_missing_mandatory_parameter(server):
    answer = requests.get(f"{server.base_url}/api/v3/account", params={"timestamp": server.server_time_ms()},
                          headers={"X-MBX-APIKEY": KEY})

    assert answer.json() == {"code": -1102,
                             "msg": "Mandatory parameter 'signature' was not sent, was empty/null, or malformed."}


# --- order validation -----------------------------------------------------------------------------


def test_missing_mandatory_parameter_is_named_in_minus_1102(client):
    error = refusal(client.create_test_order, symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                    price="30000")

    assert (error.code, error.message) == (
        -1102, "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.")


def test_parameter_sent_when_not_required_is_refused(client):
    error = refusal(client.create_test_order, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.001",
                    timeInForce="GTC")

    assert (error.code, error.message) == (-1106, "Parameter 'timeInForce' sent when not required.")


def test_unknown_order_type_and_side_are_refused(client):
    bad_type = refusal(client.create_test_order, symbol="BTCUSDT", side="BUY", type="ICEBERG", quantity="0.001")
    bad_side = refusal(client.create_test_order, symbol="BTCUSDT", side="HOLD", type="MARKET", quantity="0.001")

    assert (bad_type.code, bad_type.message) == (-1116, "Invalid orderType.")
    assert (bad_side.code, bad_side.message) == (-1117, "Invalid side.")


@pytest.mark.parametrize(("order", "failing_filter"), [
    ({"type": "LIMIT", "timeInForce": "GTC", "quantity": "0.001", "price": "30000.005"}, "PRICE_FILTER"),
    ({"type": "LIMIT", "timeInForce": "GTC", "quantity": "0.001", "price": "1000"}, "PERCENT_PRICE"),
    ({"type": "LIMIT", "timeInForce": "GTC", "quantity": "0.000015", "price": "30000"}, "LOT_SIZE"),
    ({"type": "LIMIT", "timeInForce": "GTC", "quantity": "0.0002", "price": "30000"}, "MIN_NOTIONAL"),
    ({"type": "MARKET", "quantity": "0.0002"}, "MIN_NOTIONAL"),
    ({"type": "MARKET", "quantity": "200"}, "MARKET_LOT_SIZE"),
    ({"type": "STOP_LOSS_LIMIT", "timeInForce": "GTC", "quantity": "0.001", "price": "29000",
      "stopPrice": "29000.001"}, "PRICE_FILTER"),
])
def test_each_filter_failure_is_refused_with_minus_1013_naming_the_filter(client, order, failing_filter):
    error = refusal(client.create_test_order, symbol="BTCUSDT", side="BUY", **order)

    assert (error.code, error.message) == (-1013, f"Filter failure: {failing_filter}")


def test_sixth_open_stop_order_breaks_max_num_algo_orders(client):
    for n in range(5):
        stop_loss_sell(client, client_id=f"stop-{n}", quantity="0.001")

    error = refusal(stop_loss_sell, client, client_id="stop-6", quantity="0.001")

    assert (error.code, error.message) == (-1013, "Filter failure: MAX_NUM_ALGO_ORDERS")


def test_notional_filter_replaces_min_notional_when_asked(server, client):
    server.use_notional_filter()
    six_usdt = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.0002"}
    three_usdt = six_usdt | {"quantity": "0.0001"}

    filters = [f["filterType"] for f in client.get_symbol_info("BTCUSDT")["filters"]]
    accepted = client.create_test_order(**six_usdt)
    error = refusal(client.create_test_order, **three_usdt)

    assert "NOTIONAL" in filters and "MIN_NOTIONAL" not in filters
    assert accepted == {}
    assert error.message == "Filter failure: NOTIONAL"


def test_test_order_validates_everything_but_places_nothing_and_ignores_balance(server, client):
    server.set_balance("USDT", "0")

    answer = client.create_test_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01")

    assert answer == {}
    assert server.orders() == []


def test_stop_that_would_trigger_immediately_is_refused(client):
    error = refusal(stop_loss_sell, client, stop="31000", limit="30900")

    assert (error.code, error.message) == (-2010, "Order would trigger immediately.")


# --- market orders --------------------------------------------------------------------------------


def test_market_buy_fills_at_the_set_price_and_charges_commission_in_the_base_asset(server, client):
    answer = client.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01",
                                 newClientOrderId="entry-1")

    assert (answer["status"], answer["executedQty"], answer["cummulativeQuoteQty"]) == (
        "FILLED", "0.01000000", "300.00000000")
    assert answer["fills"] == [{"price": "30000.00000000", "qty": "0.01000000", "commission": "0.00001000",
                                "commissionAsset": "BTC", "tradeId": 1}]
    assert server.balances()["USDT"].free == Decimal("9700")
    assert server.balances()["BTC"].free == Decimal("1.00999")


def test_market_sell_charges_commission_in_the_quote_asset(server, client):
    answer = client.create_order(symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.1")

    assert answer["fills"][0]["commission"] == "3.00000000"
    assert answer["fills"][0]["commissionAsset"] == "USDT"
    assert server.balances()["USDT"].free == Decimal("12997")
    assert server.balances()["BTC"].free == Decimal("0.9")


def test_fills_of_a_looked_up_order_are_in_my_trades(client):
    client.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01", newClientOrderId="entry-1")

    order = client.get_order(symbol="BTCUSDT", origClientOrderId="entry-1")
    trades = client.get_my_trades(symbol="BTCUSDT", orderId=order["orderId"])

    assert order["status"] == "FILLED"
    assert [(t["qty"], t["commission"], t["commissionAsset"], t["isBuyer"]) for t in trades] == [
        ("0.01000000", "0.00001000", "BTC", True)]


def test_order_larger_than_the_balance_is_refused_with_minus_2010(server, client):
    error = refusal(client.create_order, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="1")

    assert (error.code, error.message) == (-2010, "Account has insufficient balance for requested action.")
    assert server.orders() == []


def test_partial_market_fill_expires_with_the_executed_quantity(server, client):
    server.limit_next_market_fill("BTCUSDT", "0.004")

    answer = client.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01")

    assert (answer["status"], answer["origQty"], answer["executedQty"]) == ("EXPIRED", "0.01000000", "0.00400000")
    assert server.balances()["USDT"].free == Decimal("9880")


# --- resting orders, lookups, cancels -------------------------------------------------------------


def test_order_is_found_and_cancelled_by_its_client_id(server, client):
    stop_loss_sell(client, client_id="stop-1")

    found = client.get_order(symbol="BTCUSDT", origClientOrderId="stop-1")
    locked = server.balances()["BTC"].locked
    cancelled = client.cancel_order(symbol="BTCUSDT", origClientOrderId="stop-1")

    assert (found["status"], found["type"], found["stopPrice"], found["workingTime"]) == (
        "NEW", "STOP_LOSS_LIMIT", "29000.00000000", -1)
    assert locked == Decimal("0.01")
    assert (cancelled["status"], cancelled["origClientOrderId"]) == ("CANCELED", "stop-1")
    assert server.balances()["BTC"] == (Decimal("1"), Decimal("0"))


def test_unknown_orders_cannot_be_queried_or_cancelled(client):
    stop_loss_sell(client, client_id="stop-1")
    client.cancel_order(symbol="BTCUSDT", origClientOrderId="stop-1")

    missing = refusal(client.get_order, symbol="BTCUSDT", origClientOrderId="never-sent")
    twice = refusal(client.cancel_order, symbol="BTCUSDT", origClientOrderId="stop-1")

    assert (missing.code, missing.message) == (-2013, "Order does not exist.")
    assert (twice.code, twice.message) == (-2011, "Unknown order sent.")


def test_client_id_of_an_open_order_cannot_be_reused_but_a_closed_ones_can(client):
    stop_loss_sell(client, client_id="stop-1")

    duplicate = refusal(stop_loss_sell, client, client_id="stop-1")
    client.cancel_order(symbol="BTCUSDT", origClientOrderId="stop-1")
    reused = stop_loss_sell(client, client_id="stop-1")

    assert (duplicate.code, duplicate.message) == (-2010, "Duplicate order sent.")
    assert client.get_order(symbol="BTCUSDT", origClientOrderId="stop-1")["orderId"] == reused["orderId"]


def test_stop_limit_sell_triggers_and_fills_when_the_price_falls_to_its_stop(server, client):
    placed = stop_loss_sell(client, stop="29000", limit="28900")

    server.set_price("BTCUSDT", "29500")
    waiting = client.get_order(symbol="BTCUSDT", orderId=placed["orderId"])
    server.set_price("BTCUSDT", "28950")
    filled = client.get_order(symbol="BTCUSDT", orderId=placed["orderId"])

    assert "status" not in placed  # STOP_LOSS_LIMIT answers ACK unless newOrderRespType says otherwise
    assert waiting["status"] == "NEW"
    assert (filled["status"], filled["cummulativeQuoteQty"]) == ("FILLED", "289.50000000")
    assert server.balances()["BTC"] == (Decimal("0.99"), Decimal("0"))
    assert server.balances()["USDT"].free == Decimal("10289.2105")


def test_triggered_stop_limit_waits_when_the_price_gaps_below_its_limit(server, client):
    placed = stop_loss_sell(client, stop="29000", limit="28900")

    server.set_price("BTCUSDT", "28000")
    triggered = client.get_order(symbol="BTCUSDT", orderId=placed["orderId"])
    server.set_price("BTCUSDT", "29100")
    filled = client.get_order(symbol="BTCUSDT", orderId=placed["orderId"])

    assert (triggered["status"], triggered["isWorking"]) == ("NEW", True)
    assert (filled["status"], filled["cummulativeQuoteQty"]) == ("FILLED", "289.00000000")  # at its limit


def test_open_orders_lists_only_resting_orders(client):
    stop_loss_sell(client, client_id="stop-1")
    client.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01")

    assert [o["clientOrderId"] for o in client.get_open_orders(symbol="BTCUSDT")] == ["stop-1"]


# --- OCO ------------------------------------------------------------------------------------------


def test_oco_rests_both_legs_and_locks_the_quantity_once(server, client):
    answer = oco_sell(client)

    assert (answer["listStatusType"], answer["listOrderStatus"], answer["listClientOrderId"]) == (
        "EXEC_STARTED", "EXECUTING", "oco-1")
    assert sorted((r["type"], r["status"]) for r in answer["orderReports"]) == [
        ("LIMIT_MAKER", "NEW"), ("STOP_LOSS_LIMIT", "NEW")]
    assert server.balances()["BTC"] == (Decimal("0.99"), Decimal("0.01"))


def test_oco_target_fill_expires_the_stop_leg(server, client):
    oco_sell(client)

    server.set_price("BTCUSDT", "33000")

    legs = {o["clientOrderId"]: o["status"] for o in server.orders()}
    listed = client.v3_get_order_list(origClientOrderId="oco-1")
    assert legs == {"oco-1-tp": "FILLED", "oco-1-sl": "EXPIRED"}
    assert (listed["listStatusType"], listed["listOrderStatus"]) == ("ALL_DONE", "ALL_DONE")
    assert server.order_lists() == [listed]
    assert server.balances()["BTC"] == (Decimal("0.99"), Decimal("0"))
    assert server.balances()["USDT"].free == Decimal("10329.67")


def test_oco_stop_trigger_expires_the_target_leg(server, client):
    oco_sell(client)

    server.set_price("BTCUSDT", "28950")

    stop = client.get_order(symbol="BTCUSDT", origClientOrderId="oco-1-sl")
    target = client.get_order(symbol="BTCUSDT", origClientOrderId="oco-1-tp")
    assert (stop["status"], target["status"]) == ("FILLED", "EXPIRED")
    assert client.get_my_trades(symbol="BTCUSDT", orderId=stop["orderId"])[0]["commission"] == "0.28950000"


def test_oco_is_cancelled_as_a_list(server, client):
    placed = oco_sell(client)

    cancelled = client.v3_delete_order_list(symbol="BTCUSDT", orderListId=placed["orderListId"])
    again = refusal(client.v3_delete_order_list, symbol="BTCUSDT", listClientOrderId="oco-1")

    assert cancelled["listOrderStatus"] == "ALL_DONE"
    assert {r["status"] for r in cancelled["orderReports"]} == {"CANCELED"}
    assert server.balances()["BTC"] == (Decimal("1"), Decimal("0"))
    assert again.code == -2011


def test_oco_with_prices_on_the_wrong_side_of_the_market_is_refused(client):
    error = refusal(oco_sell, client, target="29500")

    assert (error.code, error.message) == (-2010, "The relationship of the prices for the orders is not correct.")


def test_unknown_order_list_does_not_exist(client):
    error = refusal(client.v3_get_order_list, orderListId=99)

    assert (error.code, error.message) == (-2013, "Order list does not exist.")


# --- resting limit orders, stop entries, OTO and OTOCO ----------------------------------------------


def limit_buy(client, client_id="entry-1", quantity="0.01", price="29000"):
    return client.create_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity=quantity,
                               price=price, newClientOrderId=client_id)


def otoco_buy(client, list_id="list-1", quantity="0.01", price="29000", pending_quantity="0.00999",
              target="31500", stop="28000", limit="27900", **extra):
    """A limit buy whose protective OCO (take-profit above, stop-loss below) waits for it to fill."""
    params = {"symbol": "BTCUSDT", "listClientOrderId": list_id, "workingType": "LIMIT", "workingSide": "BUY",
              "workingClientOrderId": list_id + "-E", "workingPrice": price, "workingQuantity": quantity,
              "workingTimeInForce": "GTC", "pendingSide": "SELL", "pendingQuantity": pending_quantity,
              "pendingAboveType": "LIMIT_MAKER", "pendingAbovePrice": target,
              "pendingAboveClientOrderId": list_id + "-T", "pendingBelowType": "STOP_LOSS_LIMIT",
              "pendingBelowStopPrice": stop, "pendingBelowPrice": limit, "pendingBelowTimeInForce": "GTC",
              "pendingBelowClientOrderId": list_id + "-S"}
    return client.v3_post_order_list_otoco(**{k: v for k, v in (params | extra).items() if v is not None})


def oto_buy(client, list_id="list-1", quantity="0.01", price="29000", pending_quantity="0.00999", stop="28000",
            limit="27900", **extra):
    """A limit buy whose lone protective stop waits for it to fill."""
    params = {"symbol": "BTCUSDT", "listClientOrderId": list_id, "workingType": "LIMIT", "workingSide": "BUY",
              "workingClientOrderId": list_id + "-E", "workingPrice": price, "workingQuantity": quantity,
              "workingTimeInForce": "GTC", "pendingType": "STOP_LOSS_LIMIT", "pendingSide": "SELL",
              "pendingQuantity": pending_quantity, "pendingStopPrice": stop, "pendingPrice": limit,
              "pendingTimeInForce": "GTC", "pendingClientOrderId": list_id + "-S"}
    return client.v3_post_order_list_oto(**{k: v for k, v in (params | extra).items() if v is not None})


def statuses(server) -> dict[str, str]:
    return {o["clientOrderId"]: o["status"] for o in server.orders()}


def test_a_limit_buy_below_the_market_rests_and_locks_its_quote(server, client):
    placed = limit_buy(client)

    assert (placed["status"], placed["executedQty"], placed["fills"]) == ("NEW", "0.00000000", [])
    assert server.balances()["USDT"] == (Decimal("9710"), Decimal("290"))
    assert [o["clientOrderId"] for o in client.get_open_orders(symbol="BTCUSDT")] == ["entry-1"]


def test_a_resting_limit_is_filled_as_the_maker_at_its_own_price_when_the_market_comes_to_it(server, client):
    placed = limit_buy(client)

    server.set_price("BTCUSDT", "28900")

    order = client.get_order(symbol="BTCUSDT", orderId=placed["orderId"])
    [trade] = client.get_my_trades(symbol="BTCUSDT", orderId=placed["orderId"])
    assert (order["status"], order["cummulativeQuoteQty"]) == ("FILLED", "290.00000000")
    assert (trade["price"], trade["isMaker"], trade["commission"]) == ("29000.00000000", True, "0.00001000")
    assert server.balances()["USDT"] == (Decimal("9710"), Decimal("0"))


def test_a_limit_partly_filled_keeps_only_the_rest_of_its_quote_locked(server, client):
    limit_buy(client)

    server.fill_partly("entry-1", "0.004")

    order = client.get_order(symbol="BTCUSDT", origClientOrderId="entry-1")
    assert (order["status"], order["executedQty"]) == ("PARTIALLY_FILLED", "0.00400000")
    assert server.balances()["USDT"] == (Decimal("9710"), Decimal("174"))  # the rest: 0.006 at 29000


def test_a_stop_limit_buy_waits_below_its_stop_and_buys_when_the_price_rises_to_it(server, client):
    client.create_order(symbol="BTCUSDT", side="BUY", type="STOP_LOSS_LIMIT", timeInForce="GTC", quantity="0.01",
                        stopPrice="30500", price="30600", newClientOrderId="breakout")

    server.set_price("BTCUSDT", "30400")
    waiting = client.get_order(symbol="BTCUSDT", origClientOrderId="breakout")
    server.set_price("BTCUSDT", "30550")
    filled = client.get_order(symbol="BTCUSDT", origClientOrderId="breakout")

    assert (waiting["status"], waiting["isWorking"]) == ("NEW", False)
    assert (filled["status"], filled["cummulativeQuoteQty"]) == ("FILLED", "305.50000000")


def test_otoco_rests_the_working_order_and_holds_the_oco_pending_without_locking_for_it(server, client):
    server.set_balance("BTC", "0")

    answer = otoco_buy(client)

    reports = {r["clientOrderId"]: (r["type"], r["status"], r["workingTime"] == -1) for r in answer["orderReports"]}
    assert (answer["contingencyType"], answer["listStatusType"], answer["listOrderStatus"]) == (
        "OTOCO", "EXEC_STARTED", "EXECUTING")
    assert reports == {"list-1-E": ("LIMIT", "NEW", False), "list-1-S": ("STOP_LOSS_LIMIT", "PENDING_NEW", True),
                       "list-1-T": ("LIMIT_MAKER", "PENDING_NEW", True)}
    assert server.balances()["USDT"] == (Decimal("9710"), Decimal("290"))
    assert server.balances()["BTC"] == (Decimal("0"), Decimal("0"))
    assert {o["clientOrderId"]: o["status"] for o in client.get_open_orders(symbol="BTCUSDT")} == {
        "list-1-E": "NEW", "list-1-S": "PENDING_NEW", "list-1-T": "PENDING_NEW"}
    assert client.v3_get_order_list(origClientOrderId="list-1")["contingencyType"] == "OTOCO"


def test_pending_orders_ignore_the_market_until_the_working_order_fills(server, client):
    server.set_balance("BTC", "0")
    otoco_buy(client, price="29000", target="29500")

    server.set_price("BTCUSDT", "29600")  # through the pending take-profit, above the working buy

    assert statuses(server) == {"list-1-E": "NEW", "list-1-S": "PENDING_NEW", "list-1-T": "PENDING_NEW"}
    with pytest.raises(ValueError, match="list-1-S is on the book"):
        server.fill_partly("list-1-S", "0.001")


def test_a_partial_fill_of_the_working_order_leaves_the_pending_orders_pending(server, client):
    server.set_balance("BTC", "0")
    otoco_buy(client)

    server.fill_partly("list-1-E", "0.004")

    assert statuses(server) == {"list-1-E": "PARTIALLY_FILLED", "list-1-S": "PENDING_NEW", "list-1-T": "PENDING_NEW"}
    assert server.balances()["BTC"] == (Decimal("0.003996"), Decimal("0"))
    assert server.balances()["USDT"] == (Decimal("9710"), Decimal("174"))


def test_the_full_fill_of_the_working_order_puts_the_oco_on_the_book_locking_the_base_it_bought(server, client):
    server.set_balance("BTC", "0")
    otoco_buy(client)
    server.fill_partly("list-1-E", "0.004")

    server.fill_partly("list-1-E", "0.006")

    stop = client.get_order(symbol="BTCUSDT", origClientOrderId="list-1-S")
    assert statuses(server) == {"list-1-E": "FILLED", "list-1-S": "NEW", "list-1-T": "NEW"}
    assert (stop["isWorking"], stop["workingTime"]) == (False, -1)  # a stop works once triggered
    assert client.get_order(symbol="BTCUSDT", origClientOrderId="list-1-T")["isWorking"] is True
    assert server.balances()["BTC"] == (Decimal("0"), Decimal("0.00999"))
    assert server.order_lists()[0]["listStatusType"] == "EXEC_STARTED"


def test_an_otoco_whose_working_order_fills_at_once_answers_it_filled_and_its_pending_orders_pending(server, client):
    server.set_balance("BTC", "0")

    answer = otoco_buy(client, price="30100")  # above the market: a taker at 30000

    reports = {r["clientOrderId"]: r["status"] for r in answer["orderReports"]}
    assert reports == {"list-1-E": "FILLED", "list-1-S": "PENDING_NEW", "list-1-T": "PENDING_NEW"}
    assert statuses(server) == {"list-1-E": "FILLED", "list-1-S": "NEW", "list-1-T": "NEW"}
    assert client.get_my_trades(symbol="BTCUSDT")[0]["isMaker"] is False


def test_after_the_fill_the_otoco_pending_pair_is_an_oco(server, client):
    server.set_balance("BTC", "0")
    otoco_buy(client)
    server.set_price("BTCUSDT", "29000")

    server.set_price("BTCUSDT", "27950")  # the stop triggers and fills; the take-profit expires

    assert statuses(server) == {"list-1-E": "FILLED", "list-1-S": "FILLED", "list-1-T": "EXPIRED"}
    assert server.order_lists()[0]["listStatusType"] == "ALL_DONE"
    assert server.balances()["BTC"] == (Decimal("0"), Decimal("0"))


def test_pending_orders_the_fill_cannot_fund_expire_when_it_fills(server, client):
    server.set_balance("BTC", "0")
    otoco_buy(client, pending_quantity="0.01")  # the commission (in BTC) leaves 0.00999

    server.set_price("BTCUSDT", "29000")

    assert statuses(server) == {"list-1-E": "FILLED", "list-1-S": "EXPIRED", "list-1-T": "EXPIRED"}
    assert server.balances()["BTC"] == (Decimal("0.00999"), Decimal("0"))
    assert server.order_lists()[0]["listStatusType"] == "ALL_DONE"


@pytest.mark.parametrize("cancel", ["list", "working order", "pending order"])
def test_cancelling_an_otoco_or_any_of_its_orders_cancels_all_three_and_frees_the_quote(server, client, cancel):
    otoco_buy(client)
    server.fill_partly("list-1-E", "0.004")

    if cancel == "list":
        client.v3_delete_order_list(symbol="BTCUSDT", listClientOrderId="list-1")
    else:
        client.cancel_order(symbol="BTCUSDT", origClientOrderId="list-1-E" if cancel == "working order" else "list-1-S")

    order = client.get_order(symbol="BTCUSDT", origClientOrderId="list-1-E")
    assert statuses(server) == {"list-1-E": "CANCELED", "list-1-S": "CANCELED", "list-1-T": "CANCELED"}
    assert order["executedQty"] == "0.00400000"
    assert server.balances()["USDT"] == (Decimal("9884"), Decimal("0"))  # 10000 - 0.004 at 29000
    assert client.get_open_orders(symbol="BTCUSDT") == []


def test_oto_places_its_lone_pending_order_once_the_working_order_fills(server, client):
    server.set_balance("BTC", "0")
    answer = oto_buy(client)

    server.set_price("BTCUSDT", "29000")

    assert answer["contingencyType"] == "OTO"
    assert [r["status"] for r in answer["orderReports"]] == ["NEW", "PENDING_NEW"]
    assert statuses(server) == {"list-1-E": "FILLED", "list-1-S": "NEW"}
    assert server.balances()["BTC"] == (Decimal("0"), Decimal("0.00999"))


def test_a_client_id_held_by_a_pending_order_cannot_be_reused(client):
    otoco_buy(client)

    error = refusal(stop_loss_sell, client, client_id="list-1-S")
    again = refusal(otoco_buy, client)

    assert (error.code, error.message) == (-2010, "Duplicate order sent.")
    assert (again.code, again.message) == (-2010, "Duplicate order sent.")


@pytest.mark.parametrize(("place", "change", "code", "message"), [
    (otoco_buy, {"workingType": None}, -1102,
     "Mandatory parameter 'workingType' was not sent, was empty/null, or malformed."),
    (otoco_buy, {"workingType": "MARKET"}, -1116, "Invalid orderType."),
    (otoco_buy, {"workingSide": "UP"}, -1117, "Invalid side."),
    (otoco_buy, {"workingTimeInForce": None}, -1102,
     "Mandatory parameter 'workingTimeInForce' was not sent, was empty/null, or malformed."),
    (otoco_buy, {"workingType": "LIMIT_MAKER"}, -1106, "Parameter 'workingTimeInForce' sent when not required."),
    (otoco_buy, {"workingPrice": "29k"}, -1100,
     "Illegal characters found in parameter 'workingPrice'; legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'."),
    (otoco_buy, {"pendingQuantity": None}, -1102,
     "Mandatory parameter 'pendingQuantity' was not sent, was empty/null, or malformed."),
    (otoco_buy, {"pendingAboveType": "LIMIT"}, -1158, "Order type not supported in OCO."),
    (otoco_buy, {"target": "27000"}, -2010, "The relationship of the prices for the orders is not correct."),
    (otoco_buy, {"pendingBelowPrice": None}, -1102,
     "Mandatory parameter 'pendingBelowPrice' was not sent, was empty/null, or malformed."),
    (otoco_buy, {"workingClientOrderId": "x" * 37}, -1100,
     "Illegal characters found in parameter 'workingClientOrderId'; legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'."),
    (oto_buy, {"pendingType": None}, -1102,
     "Mandatory parameter 'pendingType' was not sent, was empty/null, or malformed."),
    (oto_buy, {"pendingPrice": None}, -1102,
     "Mandatory parameter 'pendingPrice' was not sent, was empty/null, or malformed."),
    (oto_buy, {"pendingStopPrice": None}, -1102,
     "Mandatory parameter 'pendingStopPrice' was not sent, was empty/null, or malformed."),
    (oto_buy, {"pendingType": "LIMIT_MAKER", "pendingStopPrice": None}, -1106,
     "Parameter 'pendingTimeInForce' sent when not required."),
    (oto_buy, {"pendingSide": None}, -1102,
     "Mandatory parameter 'pendingSide' was not sent, was empty/null, or malformed."),
])
def test_order_list_parameters_are_checked_like_binance(server, client, place, change, code, message):
    error = refusal(place, client, **change)

    assert (error.code, error.message) == (code, message)
    assert server.orders() == []


@pytest.mark.parametrize(("change", "message"), [
    ({"price": "29000.001"}, "Filter failure: PRICE_FILTER"),
    ({"stop": "28000.005"}, "Filter failure: PRICE_FILTER"),
    ({"quantity": "0.0003", "pending_quantity": "0.0003"}, "Filter failure: MIN_NOTIONAL"),
    ({"pending_quantity": "0.000015"}, "Filter failure: LOT_SIZE"),
    ({"quantity": "1"}, "Account has insufficient balance for requested action."),
    ({"price": "30100", "workingType": "LIMIT_MAKER", "workingTimeInForce": None},
     "Order would immediately match and take."),
])
def test_an_order_list_breaking_a_filter_or_the_balance_places_nothing(server, client, change, message):
    error = refusal(otoco_buy, client, **change)

    assert error.message == message
    assert server.orders() == [] and server.order_lists() == []
    assert server.balances()["USDT"] == (Decimal("10000"), Decimal("0"))


# --- faults ---------------------------------------------------------------------------------------


def test_5xx_after_accepting_places_the_order_but_answers_send_status_unknown(server, client):
    server.inject(Fault.http_5xx_after_accepting(), method="POST", path="/api/v3/order")

    error = refusal(client.create_order, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01",
                    newClientOrderId="entry-1")

    assert (error.status_code, error.code) == (503, -1007)
    assert client.get_order(symbol="BTCUSDT", origClientOrderId="entry-1")["status"] == "FILLED"


@pytest.mark.parametrize(("after_processing", "orders_placed"), [(True, 1), (False, 0)])
def test_a_raw_answer_is_sent_as_given_after_or_instead_of_processing(server, after_processing, orders_placed):
    server.inject(Fault.raw(502, "<html><body>502 Bad Gateway</body></html>", content_type="text/html",
                            after_processing=after_processing), method="POST", path="/api/v3/order")
    body = signed({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01",
                   "timestamp": server.server_time_ms()})

    answer = requests.post(server.base_url + "/api/v3/order", data=body, headers={"X-MBX-APIKEY": KEY}, timeout=2)

    assert (answer.status_code, answer.headers["Content-Type"]) == (502, "text/html")
    assert answer.text == "<html><body>502 Bad Gateway</body></html>"
    assert len(server.orders()) == orders_placed


@pytest.mark.parametrize(("after_processing", "orders_placed"), [(True, 1), (False, 0)])
def test_dropped_connection_gives_no_answer(server, client, after_processing, orders_placed):
    server.inject(Fault.drop_connection(after_processing=after_processing), path="/api/v3/order")

    with pytest.raises(requests.ConnectionError):
        client.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01")

    assert len(server.orders()) == orders_placed
    assert server.requests[-1].status is None


def test_held_answer_outlasts_the_client_timeout_while_the_order_is_placed(server):
    release = threading.Event()
    server.inject(Fault.hold(release), method="POST", path="/api/v3/order")
    body = signed({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01",
                   "timestamp": server.server_time_ms()})

    with pytest.raises(requests.Timeout):
        requests.post(server.base_url + "/api/v3/order", data=body, headers={"X-MBX-APIKEY": KEY}, timeout=0.2)
    release.set()

    assert server.orders()[0]["status"] == "FILLED"


def test_held_answer_arrives_once_released(server, client):
    release = threading.Event()
    fault = Fault.hold(release)
    server.inject(fault, path="/api/v3/time")
    answers = []
    caller = threading.Thread(target=lambda: answers.append(client.get_server_time()))

    caller.start()
    assert fault.applied.wait(timeout=2)
    held = list(answers)
    release.set()
    caller.join(timeout=5)

    assert held == []
    assert "serverTime" in answers[0]


def test_latency_delays_the_answer_and_counts_as_server_time(server, client):
    server.inject(Fault.latency(0.05), path="/api/v3/ping")

    started = time.perf_counter()
    client.ping()

    assert time.perf_counter() - started >= 0.05
    assert server.handling_seconds >= 0.05


@pytest.mark.parametrize(("status", "message_start"), [
    (429, "Too much request weight used; current limit is 1200 request weight per 1 MINUTE."),
    (418, "Way too much request weight used; IP banned until "),
])
def test_rate_limit_answers_carry_retry_after(server, client, status, message_start):
    server.inject(Fault.rate_limited(status=status, retry_after=7))

    error = refusal(client.get_account)

    assert (error.status_code, error.code) == (status, -1003)
    assert error.message.startswith(message_start)
    assert error.response.headers["Retry-After"] == "7"


def test_generic_error_fault_answers_instead_of_processing(server, client):
    server.inject(Fault.error(-2010, "Account has insufficient balance for requested action."),
                  method="POST", path="/api/v3/order", times=2)

    first = refusal(client.create_order, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01")
    second = refusal(client.create_order, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01")
    third = client.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01")

    assert (first.code, second.code, third["status"]) == (-2010, -2010, "FILLED")
    assert len(server.orders()) == 1


def test_fault_only_hits_its_method_and_path(server, client):
    server.inject(Fault.error(-1021, "Timestamp for this request is outside of the recvWindow."),
                  method="GET", path="/api/v3/account")

    assert client.get_server_time()
    assert refusal(client.get_account).code == -1021
    assert client.get_account()["canTrade"] is True


# --- weight, records, reset -----------------------------------------------------------------------


def test_every_answer_carries_the_weight_used_this_minute(server, client):
    client.get_exchange_info()
    after_info = client.response.headers["X-MBX-USED-WEIGHT-1M"]
    client.get_account()
    after_account = client.response.headers["X-MBX-USED-WEIGHT-1M"]
    client.get_klines(symbol="BTCUSDT", interval="1h")

    assert (after_info, after_account, client.response.headers["X-MBX-USED-WEIGHT-1M"]) == ("20", "40", "42")
    assert server.used_weight == 42


def test_weight_over_the_minute_limit_is_refused_with_429(server, client):
    server.used_weight = 1190

    error = refusal(client.get_account)

    assert (error.status_code, error.code) == (429, -1003)
    assert int(error.response.headers["Retry-After"]) <= 60


def test_requests_are_recorded_without_signature_and_timed(server, client):
    client.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01", newClientOrderId="entry-1")

    recorded = server.requests[-1]
    assert (recorded.method, recorded.path, recorded.status) == ("POST", "/api/v3/order", 200)
    assert recorded.params["newClientOrderId"] == "entry-1"
    assert "signature" not in recorded.params and SECRET not in repr(server.requests)
    assert 0 < server.handling_seconds < 1


def test_reset_forgets_orders_balances_faults_and_records(server, client):
    client.create_order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.01")
    server.inject(Fault.drop_connection())

    server.reset()

    assert (server.orders(), server.balances(), server.requests, server.used_weight) == ([], {}, [], 0)
    assert client.ping() == {}


# --- amending (keepPriority) and cancel-replace --------------------------------------------------


def amend(client, client_id: str, new_qty: str, new_client_id: str | None = None):
    """PUT /api/v3/order/amend/keepPriority through python-binance's own signed request (it has no method for it)."""
    params = {"symbol": "BTCUSDT", "origClientOrderId": client_id, "newQty": new_qty}
    if new_client_id is not None:
        params["newClientOrderId"] = new_client_id
    return client._put("order/amend/keepPriority", True, data=params)


def cancel_replace(client, cancel_id: str, mode: str = "STOP_ON_FAILURE", *, client_id: str = "stop-2",
                   quantity: str = "0.01", stop: str = "29500", limit: str = "29400", **extra):
    return client.cancel_replace_order(symbol="BTCUSDT", side="SELL", type="STOP_LOSS_LIMIT", timeInForce="GTC",
                                       quantity=quantity, price=limit, stopPrice=stop, newClientOrderId=client_id,
                                       cancelReplaceMode=mode, cancelOrigClientOrderId=cancel_id, **extra)


def error_data(error: BinanceAPIException) -> dict:
    return json.loads(error.response.text)["data"]


def test_amend_reduces_a_resting_order_in_place_and_frees_what_it_no_longer_asks_for(server, client):
    placed = stop_loss_sell(client, client_id="stop-1", quantity="0.01")

    answer = amend(client, "stop-1", "0.004", new_client_id="stop-1")

    amended = answer["amendedOrder"]
    assert (amended["orderId"], amended["clientOrderId"], amended["origClientOrderId"]) == (
        placed["orderId"], "stop-1", "stop-1")
    assert (amended["qty"], amended["status"], amended["stopPrice"]) == ("0.00400000", "NEW", "29000.00000000")
    assert "listStatus" not in answer and isinstance(answer["executionId"], int)
    assert client.get_order(symbol="BTCUSDT", origClientOrderId="stop-1")["origQty"] == "0.00400000"
    assert server.balances()["BTC"] == (Decimal("0.996"), Decimal("0.004"))


def test_amend_without_a_new_client_id_gives_the_order_a_random_one(client):
    stop_loss_sell(client, client_id="stop-1")

    amended = amend(client, "stop-1", "0.005")["amendedOrder"]

    assert amended["clientOrderId"] != "stop-1" and len(amended["clientOrderId"]) == 22
    assert client.get_order(symbol="BTCUSDT", origClientOrderId=amended["clientOrderId"])["origQty"] == "0.00500000"


def test_amending_one_leg_of_an_oco_amends_both_and_answers_the_list(server, client):
    oco_sell(client, quantity="0.01")

    answer = amend(client, "oco-1-sl", "0.006", new_client_id="oco-1-sl")

    assert answer["listStatus"]["listClientOrderId"] == "oco-1"
    assert answer["listStatus"]["contingencyType"] == "OCO"
    assert {o["clientOrderId"]: o["origQty"] for o in server.orders()} == {
        "oco-1-sl": "0.00600000", "oco-1-tp": "0.00600000"}
    assert server.balances()["BTC"] == (Decimal("0.994"), Decimal("0.006"))
    server.set_price("BTCUSDT", "33000")
    assert server.balances()["BTC"] == (Decimal("0.994"), Decimal("0"))


@pytest.mark.parametrize(("new_qty", "code", "message"), [
    ("0.02", -2038, "Order amend (quantity increase) is not supported."),
    ("0.01", -2038, "The requested action would change no state; rejecting"),
    ("0.000001", -1013, "Filter failure: LOT_SIZE"),
])
def test_amend_refusals_leave_the_order_unchanged(server, client, new_qty, code, message):
    stop_loss_sell(client, client_id="stop-1", quantity="0.01")

    error = refusal(amend, client, "stop-1", new_qty, new_client_id="stop-1")

    assert (error.status_code, error.code, error.message) == (400, code, message)
    assert server.open_orders()[0]["origQty"] == "0.01000000"


def test_amending_an_order_that_is_no_longer_open_is_an_unknown_order(server, client):
    stop_loss_sell(client, client_id="stop-1")
    server.set_price("BTCUSDT", "28950")

    error = refusal(amend, client, "stop-1", "0.005", new_client_id="stop-1")

    assert (error.code, error.message) == (-2038, "Unknown order sent.")


def test_cancel_replace_swaps_a_stop_for_another_in_one_request(server, client):
    stop_loss_sell(client, client_id="stop-1")

    answer = cancel_replace(client, "stop-1", cancelRestrictions="ONLY_NEW")

    assert (answer["cancelResult"], answer["newOrderResult"]) == ("SUCCESS", "SUCCESS")
    assert (answer["cancelResponse"]["origClientOrderId"], answer["cancelResponse"]["status"]) == (
        "stop-1", "CANCELED")
    assert answer["newOrderResponse"]["clientOrderId"] == "stop-2"
    assert [(o["clientOrderId"], o["stopPrice"]) for o in server.open_orders()] == [("stop-2", "29500.00000000")]
    assert server.balances()["BTC"] == (Decimal("0.99"), Decimal("0.01"))
    assert [r.path for r in server.requests if r.method == "POST"] == ["/api/v3/order", "/api/v3/order/cancelReplace"]


def test_cancel_replace_of_an_oco_leg_cancels_the_whole_list_for_the_single_new_order(server, client):
    oco_sell(client, quantity="0.01")

    answer = cancel_replace(client, "oco-1-sl")

    assert answer["cancelResponse"]["orderListId"] != -1
    assert {o["clientOrderId"]: o["status"] for o in server.orders()} == {
        "oco-1-sl": "CANCELED", "oco-1-tp": "CANCELED", "stop-2": "NEW"}
    assert server.order_lists()[0]["listOrderStatus"] == "ALL_DONE"
    assert server.balances()["BTC"] == (Decimal("0.99"), Decimal("0.01"))


def test_stop_on_failure_does_not_attempt_the_new_order_when_the_cancel_fails(server, client):
    stop_loss_sell(client, client_id="stop-1")
    server.set_price("BTCUSDT", "28950")  # the stop traded: nothing left to cancel

    error = refusal(cancel_replace, client, "stop-1", stop="28000", limit="27900")

    assert (error.status_code, error.code, error.message) == (400, -2022, "Order cancel-replace failed.")
    assert error_data(error) == {"cancelResult": "FAILURE", "newOrderResult": "NOT_ATTEMPTED",
                                 "cancelResponse": {"code": -2011, "msg": "Unknown order sent."},
                                 "newOrderResponse": None}
    assert server.open_orders() == []


def test_cancel_done_but_new_order_refused_is_a_partial_failure(server, client):
    stop_loss_sell(client, client_id="stop-1")

    error = refusal(cancel_replace, client, "stop-1", stop="30500", limit="30400")  # above the market: triggers

    assert (error.status_code, error.code, error.message) == (409, -2021, "Order cancel-replace partially failed.")
    data = error_data(error)
    assert (data["cancelResult"], data["newOrderResult"]) == ("SUCCESS", "FAILURE")
    assert data["cancelResponse"]["status"] == "CANCELED"
    assert data["newOrderResponse"] == {"code": -2010, "msg": "Order would trigger immediately."}
    assert server.open_orders() == []
    assert server.balances()["BTC"] == (Decimal("1"), Decimal("0"))


def test_allow_failure_places_the_new_order_even_when_the_cancel_fails(server, client):
    error = refusal(cancel_replace, client, "never-placed", "ALLOW_FAILURE")

    assert (error.status_code, error.code) == (409, -2021)
    data = error_data(error)
    assert (data["cancelResult"], data["newOrderResult"]) == ("FAILURE", "SUCCESS")
    assert data["cancelResponse"] == {"code": -2011, "msg": "Unknown order sent."}
    assert data["newOrderResponse"]["clientOrderId"] == "stop-2"
    assert [o["clientOrderId"] for o in server.open_orders()] == ["stop-2"]


def test_allow_failure_with_both_failing_is_a_failure(server, client):
    error = refusal(cancel_replace, client, "never-placed", "ALLOW_FAILURE", stop="30500", limit="30400")

    assert (error.status_code, error.code, error.message) == (400, -2022, "Order cancel-replace failed.")
    assert error_data(error) == {"cancelResult": "FAILURE", "newOrderResult": "FAILURE",
                                 "cancelResponse": {"code": -2011, "msg": "Unknown order sent."},
                                 "newOrderResponse": {"code": -2010, "msg": "Order would trigger immediately."}}


def test_cancel_restrictions_keep_an_order_that_is_not_in_the_named_state(server, client):
    stop_loss_sell(client, client_id="stop-1")
    server.fill_partly("stop-1", "0.004")

    error = refusal(cancel_replace, client, "stop-1", cancelRestrictions="ONLY_NEW", quantity="0.006")

    assert error_data(error)["cancelResponse"] == {
        "code": -2011, "msg": "Order was not canceled due to cancel restrictions."}
    assert [o["clientOrderId"] for o in server.open_orders()] == ["stop-1"]
    assert refusal(cancel_replace, client, "stop-1", cancelRestrictions="ANY").code == -1145


def test_a_new_order_that_breaks_a_filter_is_refused_before_anything_is_cancelled(server, client):
    stop_loss_sell(client, client_id="stop-1")

    error = refusal(cancel_replace, client, "stop-1", stop="29500.001")

    assert (error.code, error.message) == (-1013, "Filter failure: PRICE_FILTER")
    assert "data" not in json.loads(error.response.text)
    assert [o["clientOrderId"] for o in server.open_orders()] == ["stop-1"]


def test_one_oco_per_part_each_locks_its_own_share_and_fills_alone(server, client):
    oco_sell(client, list_id="p1", quantity="0.005", target="31000")
    oco_sell(client, list_id="p2", quantity="0.003", target="32000")
    oco_sell(client, list_id="p3", quantity="0.002", target="33000")
    assert server.balances()["BTC"] == (Decimal("0.99"), Decimal("0.01"))

    server.set_price("BTCUSDT", "31000")

    status = {o["clientOrderId"]: o["status"] for o in server.orders()}
    assert (status["p1-tp"], status["p1-sl"], status["p2-sl"], status["p3-sl"]) == (
        "FILLED", "EXPIRED", "NEW", "NEW")
    assert server.balances()["BTC"] == (Decimal("0.99"), Decimal("0.005"))
