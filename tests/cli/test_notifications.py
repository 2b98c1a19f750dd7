"""Notifications through the CLI: what the trader is told after monitor, execute and closing by hand, and
that a receiver which fails or hangs changes nothing else (exit code, output, database).

The receiver is a real HTTP server on 127.0.0.1 (tests/integration/test_notify.py). Retries wait 0 s
here (notify.retry_backoff_seconds), so nothing sleeps; durations are bounded generously.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal as D
from pathlib import Path

import pytest

from tests import databases
from tests.databases import Target
from tests.cli.conftest import dump_database, parsed
from tests.integration.test_notify import Receiver

TOKEN = "987654:CANARYBOTTOKENcli5e4d3c"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def webhook(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> Receiver:
    """Configure a webhook on the loopback receiver; retries do not wait."""
    monkeypatch.setenv("ROBSON_NOTIFY__WEBHOOK_URL", f"{receiver.url}/hooks/s3cret")
    monkeypatch.setenv("ROBSON_NOTIFY__RETRY_BACKOFF_SECONDS", "0")
    return receiver


def open_position(robson, as_of: str, *args: str) -> dict:
    """Plan, validate and execute (dry-run) a BTCUSDT buy at as_of; return the operation."""
    intent = parsed(robson("--as-of", as_of, "plan", "buy", "BTCUSDT", *args, "--json"))
    parsed(robson("--as-of", as_of, "validate", intent["id"], "--json"))
    return parsed(robson("--as-of", as_of, "execute", intent["id"], "--json"))["operation"]


def kinds(receiver: Receiver) -> list[str]:
    return [r.body["kind"] for r in receiver.received]


def copy_database(source: Target, target: Path) -> Target:
    """Copy a database consistently: SQLite's backup API (WAL included), or a PostgreSQL database from it as template."""
    return databases.copy(source, target)


# --- what is sent -------------------------------------------------------------------------


def test_execute_sends_executed_with_the_position(robson, webhook):
    op = open_position(robson, "2021-06-01T12:00", "--stop", "36000", "--target", "37500")

    (received,) = webhook.received
    assert received.path == "/hooks/s3cret"
    assert received.body["kind"] == "executed"
    data = received.body["data"]
    assert (data["operation_id"], data["entry_price"], data["quantity"], data["stop"], data["dry_run"]) == (
        op["id"], "36614.93", "0.01366", "36000", True)


def test_monitor_once_closing_a_paper_operation_sends_closed_with_its_pnl(robson, webhook):
    op = open_position(robson, "2021-06-01T12:00", "--stop", "36000", "--target", "37500")

    result = robson("--as-of", "2021-06-01T13:30", "monitor", "--once", "--json")

    doc = parsed(result)
    assert result.stderr == ""
    assert kinds(webhook) == ["executed", "closed"]
    closed = webhook.received[1].body
    (check,) = doc["operations"]
    assert closed["data"]["operation_id"] == op["id"]
    assert (closed["data"]["reason"], closed["data"]["exit_price"], closed["data"]["realized_pnl"]) == (
        "stop", "35982", check["realized_pnl"])
    assert closed["at"] == "2021-06-01T13:05:00+00:00"
    assert "P&L -9.64 USDT" in closed["title"]


def test_a_trailing_step_sends_stop_moved(robson, webhook):
    open_position(robson, "2021-06-01T20:00", "--strategy", "smooth-sailing", "--stop", "35700", "--target", "40000")

    parsed(robson("--as-of", "2021-06-01T21:00", "monitor", "--once", "--json"))  # break-even at 20:45

    assert kinds(webhook) == ["executed", "stop_moved"]
    data = webhook.received[1].body["data"]
    assert (data["old_stop"], data["new_stop"], data["reason"]) == ("35700", "36063.91", "trailing")


def test_a_loss_past_the_monthly_limit_sends_halted(robson, webhook, monkeypatch):
    monkeypatch.setenv("ROBSON_RISK__MONTHLY_DRAWDOWN_PERCENT", "0.5")
    open_position(robson, "2021-06-01T12:00", "--stop", "36000", "--target", "37500")

    parsed(robson("--as-of", "2021-06-01T13:30", "monitor", "--once", "--json"))

    assert kinds(webhook) == ["executed", "closed", "halted"]
    halted = webhook.received[2].body
    assert halted["data"]["rule"] == "monthly drawdown"
    assert "trading HALTED until next month" in halted["text"]


def test_closing_and_moving_the_stop_by_hand_are_sent(robson, webhook):
    op = open_position(robson, "2021-06-01T12:00", "--stop", "36000", "--target", "37500")

    parsed(robson("--as-of", "2021-06-01T12:20", "operation", "modify", op["id"], "--stop", "36100", "--json"))
    parsed(robson("--as-of", "2021-06-01T12:30", "operation", "close", op["id"], "--json"))

    assert kinds(webhook) == ["executed", "stop_moved", "closed"]
    moved, closed = webhook.received[1].body["data"], webhook.received[2].body["data"]
    assert (moved["old_stop"], moved["new_stop"], moved["reason"]) == ("36000", "36100", "manual")
    assert (closed["reason"], closed["closed_by"]) == ("manual", "hand")


def test_a_monitor_tick_that_fails_as_a_whole_sends_monitor_error_and_exits_1(robson, webhook, monkeypatch):
    from robson.application import monitor
    from robson.errors import StoreError

    def broken(**_):
        raise StoreError("database error: disk I/O error")

    monkeypatch.setattr(monitor, "monitor_once", broken)

    result = robson("monitor", "--once")

    assert result.exit_code == 1
    assert "disk I/O error" in result.stderr
    assert kinds(webhook) == ["monitor_error"]
    assert "tick failed: database error: disk I/O error" in webhook.received[0].body["text"]


def test_only_the_configured_events_are_sent(robson, webhook, monkeypatch):
    monkeypatch.setenv("ROBSON_NOTIFY__EVENTS", "closed")
    open_position(robson, "2021-06-01T12:00", "--stop", "36000", "--target", "37500")

    parsed(robson("--as-of", "2021-06-01T13:30", "monitor", "--once", "--json"))

    assert kinds(webhook) == ["closed"]


def test_telegram_gets_the_message_and_the_token_shows_nowhere(robson, receiver, monkeypatch):
    monkeypatch.setenv("ROBSON_NOTIFY__TELEGRAM_CHAT_ID", "-1001234")
    monkeypatch.setenv("ROBSON_NOTIFY__TELEGRAM_BASE_URL", receiver.url)
    monkeypatch.setenv("ROBSON_TELEGRAM_BOT_TOKEN", TOKEN)

    open_position(robson, "2021-06-01T12:00", "--stop", "36000", "--target", "37500")
    shown = robson("config", "show", "--json")

    (received,) = receiver.received
    assert received.path == f"/bot{TOKEN}/sendMessage"
    assert received.body["chat_id"] == "-1001234" and received.body["text"].startswith("EXECUTED DRY-RUN BUY")
    settings = parsed(shown)["settings"]
    assert settings["notify.telegram_bot_token"]["value"] == "set (environment), redacted"
    assert TOKEN not in shown.stdout + shown.stderr


def test_config_show_redacts_the_webhook_url(robson, webhook):
    shown = robson("config", "show")

    assert shown.exit_code == 0
    assert f"{webhook.url}/<redacted>" in shown.stdout
    assert "s3cret" not in shown.stdout + shown.stderr


# --- a bad receiver changes nothing else ------------------------------------------------------


def monitor_on_a_copy(robson, database: Target, copy: Path, env: dict[str, str] | None = None):
    """Run monitor --once at 13:30 on a copy of database; return (result, seconds, rows after)."""
    copy = copy_database(database, copy)
    started = time.monotonic()
    result = robson("--as-of", "2021-06-01T13:30", "monitor", "--once", "--json",
                    env={"ROBSON_DB": str(copy), **(env or {})})
    return result, time.monotonic() - started, dump_database(copy)


@pytest.mark.parametrize("behaviour", ["fails", "hangs"])
def test_a_failing_or_hanging_receiver_changes_neither_the_exit_code_nor_the_database(
        robson, db_path, tmp_path, receiver, behaviour):
    open_position(robson, "2021-06-01T12:00", "--stop", "36000", "--target", "37500")
    quiet, _, quiet_rows = monitor_on_a_copy(robson, db_path, tmp_path / "quiet.db")
    receiver.script = [500, 500] if behaviour == "fails" else ["hang"]
    notify = {"ROBSON_NOTIFY__WEBHOOK_URL": receiver.url, "ROBSON_NOTIFY__RETRIES": "1",
              "ROBSON_NOTIFY__RETRY_BACKOFF_SECONDS": "0", "ROBSON_NOTIFY__TIMEOUT_SECONDS": "30",
              "ROBSON_NOTIFY__DRAIN_SECONDS": "0.5"}

    noisy, seconds, noisy_rows = monitor_on_a_copy(robson, db_path, tmp_path / "noisy.db", notify)

    assert (noisy.exit_code, noisy.stdout) == (quiet.exit_code, quiet.stdout)
    assert noisy_rows == quiet_rows
    assert json.loads(noisy.stdout)["closed"] == 1
    assert seconds < 10  # the 30 s timeout never holds the command: the drain deadline (0.5 s) does
    expected = ("notify: closed to webhook {url} not delivered after 2 attempts: HTTP 500" if behaviour == "fails"
                else "notify: 1 notification(s) not delivered within 0.5 s; dropped")
    assert noisy.stderr.splitlines() == [expected.format(url=receiver.url)]


def test_a_receiver_that_refuses_connections_does_not_fail_execute(robson, db_path, monkeypatch):
    monkeypatch.setenv("ROBSON_NOTIFY__WEBHOOK_URL", "http://127.0.0.1:9/hook")
    monkeypatch.setenv("ROBSON_NOTIFY__RETRIES", "0")

    intent = parsed(robson("--as-of", "2021-06-01T12:00", "plan", "buy", "BTCUSDT", "--stop", "36000", "--json"))
    parsed(robson("--as-of", "2021-06-01T12:00", "validate", intent["id"], "--json"))
    result = robson("--as-of", "2021-06-01T12:00", "execute", intent["id"], "--json")

    assert parsed(result)["operation"]["status"] == "ACTIVE"
    assert D(parsed(result)["operation"]["quantity"]) > 0
    assert result.stderr.splitlines() == ["notify: executed to webhook http://127.0.0.1:9/<redacted> not delivered "
                                          "after 1 attempt: cannot connect: Connection refused"]
