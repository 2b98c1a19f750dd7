"""Answers Binance never sends (empty, null, a list, a stranger's object, a proxy's HTML page) are lost answers.

Each becomes AnswerLost, settled by the lookup rule: the order is looked up by its client id and
never sent again blindly. An HTML page never reaches a message or the database: only the status
code and a short excerpt do.
"""

from __future__ import annotations

import json

import pytest

from tests.databases import dump, is_postgresql
from tests.live.binance_server import Fault
from tests.live.conftest import Live

ORDER = "/api/v3/order"
OCO = "/api/v3/orderList/oco"
HTML_PAGE = ("<!DOCTYPE html><html><head><title>502 Bad Gateway</title><style>body{font:12px}</style></head>"
             "<body><center><h1>502 Bad Gateway</h1></center><hr><center>cloudfront</center></body></html>")
# (status, body, content type): every kind of answer that is not Binance's.
MALFORMED = [
    pytest.param(200, "", "application/json", id="200-empty-body"),
    pytest.param(200, "null", "application/json", id="200-null"),
    pytest.param(200, "[]", "application/json", id="200-empty-list"),
    pytest.param(200, '{"foo":1}', "application/json", id="200-unknown-object"),
    pytest.param(200, "not json at all", "text/plain", id="200-not-json"),
    pytest.param(200, HTML_PAGE, "text/html", id="200-html-page"),
    pytest.param(400, "[]", "application/json", id="400-list-body"),
    pytest.param(400, '{"foo":1}', "application/json", id="400-unknown-object"),
    pytest.param(502, HTML_PAGE, "text/html", id="502-html-page"),
    pytest.param(503, "", "text/plain", id="503-empty-body"),
]


def execute(live: Live, intent_id: str):
    return live.run("execute", intent_id, "--live", "--acknowledge-risk", "--json")


def assert_no_page_anywhere(live: Live) -> None:
    """No HTML reached any output or the database."""
    for text in live.outputs:
        assert "<html" not in text.lower() and "<title" not in text.lower() and "font:12px" not in text, text
    if is_postgresql(live.db):  # not a file: every row instead
        data = repr(dump(live.db)).encode()
    else:
        data = live.db.read_bytes() if live.db.exists() else b""
    assert b"<html" not in data.lower() and b"font:12px" not in data


@pytest.mark.parametrize("path", [ORDER, OCO], ids=["entry", "stop"])
@pytest.mark.parametrize(("status", "body", "content_type"), MALFORMED)
def test_a_malformed_answer_to_a_placed_order_is_settled_by_looking_it_up(live: Live, path: str, status: int,
                                                                          body: str, content_type: str) -> None:
    planned = live.planned_and_validated()
    live.server.inject(Fault.raw(status, body, content_type=content_type), "POST", path)

    result = execute(live, planned["id"])

    assert result.exit_code == 0, result.stderr
    assert len(live.orders("MARKET")) == 1 and len(live.orders("STOP_LOSS_LIMIT")) == 1
    executed = json.loads(result.stdout)
    assert executed["operation"]["status"] == "ACTIVE"
    # The adopted order is the intent's own (issue 10 item 11): execute, plan show and --json list it.
    shown = {o["client_order_id"] for o in executed["orders"]}
    assert shown == {f"rb-{planned['id']}-E", f"rb-{planned['id']}-S"}
    assert {o["client_order_id"] for o in live.ok("plan", "show", planned["id"])["orders"]} == shown
    assert_no_page_anywhere(live)


def test_a_proxy_page_instead_of_the_entry_says_the_status_and_an_excerpt_and_resends_nothing(live: Live) -> None:
    planned = live.planned_and_validated()
    live.server.inject(Fault.raw(502, HTML_PAGE, content_type="text/html", after_processing=False), "POST", ORDER)

    result = execute(live, planned["id"])

    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.stderr
    assert "HTTP 502" in result.stderr and "502 Bad Gateway" in result.stderr
    assert "nothing was resent" in result.stderr
    assert live.orders() == []
    assert [r.path for r in live.server.requests if r.method == "POST" and r.path == ORDER] == [ORDER]
    assert_no_page_anywhere(live)


@pytest.mark.parametrize(("status", "body", "content_type"), MALFORMED)
def test_a_malformed_price_answer_is_one_line_error_not_an_internal_error(live: Live, status: int, body: str,
                                                                          content_type: str) -> None:
    live.server.inject(Fault.raw(status, body, content_type=content_type), "GET", "/api/v3/ticker/price", times=3)

    result = live.run("plan", "buy", "BTCUSDT", "--stop", "29000")

    assert result.exit_code == 1
    assert result.stderr.startswith("Error: Binance answered HTTP "), result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert_no_page_anywhere(live)
