"""Notifications against a real HTTP receiver on loopback: payloads, Telegram's path, retries, timeouts, give-ups.

`Receiver` is reused by tests/cli/test_notifications.py. Backoff is injected (a recording sleep),
so no test sleeps; a hanging receiver is released when the test ends.
"""

from __future__ import annotations

import dataclasses

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from robson.adapters.notify import Dispatcher, TelegramSink, WebhookSink, build_notifier
from robson.application.alerts import AlertReport, FiredAlert
from robson.application.execute import ExecutionResult
from robson.application.watching import Halt, MonitorReport, OperationCheck, Problem
from robson.application.notify import (
    EVENT_KINDS,
    EventKind,
    NullNotifier,
    event_executed,
    events_executed,
    event_intent_from_signal,
    events_from_monitor_report,
)
from robson.config import load_settings
from robson.domain.alerts import Alert, AlertStatus, Direction
from robson.domain.intent import IntentSource, IntentStatus
from robson.domain.market import Side, datetime_to_ms
from robson.domain.monitoring import Exit, StopMove
from robson.domain.operation import CloseReason, Operation, OperationStatus
from robson.domain.signals import Signal, SignalStatus
from tests.integration.factories import T0, make_intent

TOKEN = "123456:CANARYTELEGRAMTOKEN9f8e7d"


@dataclass(frozen=True)
class Received:
    path: str
    content_type: str
    body: dict[str, Any]


class Receiver:
    """A loopback HTTP server that records every POST and answers from a script (status codes or 'hang')."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.script: list[int | str] = []  # consumed one per request; then 200
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                receiver.received.append(Received(self.path, self.headers.get("Content-Type", ""), body))
                action = receiver.script.pop(0) if receiver.script else 200
                if action == "hang":
                    receiver.release.wait(60)  # until the test ends
                    return
                payload = json.dumps({"ok": action == 200}).encode()
                self.send_response(int(action))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


class Recorder:
    """An injected sleep and log: what the dispatcher waited for and wrote, without waiting."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.lines: list[str] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def log(self, line: str) -> None:
        self.lines.append(line)


def dispatcher(*sinks, recorder: Recorder, **options) -> Dispatcher:
    settings = {"timeout_seconds": 2.0, "retries": 2, "backoff_seconds": 1.0, "drain_seconds": 10.0} | options
    return Dispatcher(sinks, sleep=recorder.sleep, log=recorder.log, **settings)


# --- domain objects -------------------------------------------------------------------------


def operation(**changes: Any) -> Operation:
    op = Operation(id="op-1c2d3e4f", intent_id="pl-7f3a9c2e", symbol="BTCUSDT", side=Side.BUY,
                   status=OperationStatus.ACTIVE, mode="paper", strategy="all-in", quantity=D("0.01369"),
                   entry_price=D("36526.22"), entry_fee=D("0.500043951"), initial_stop=D("36000"), stop=D("36000"),
                   target=D("37500"), opened_at=T0, updated_at=T0)
    return Operation(**{**{f: getattr(op, f) for f in op.__slots__}, **changes})


def closed_operation() -> Operation:
    return operation().close(exit_price=D("35982.00"), exit_fee=D("0.49259358"), reason=CloseReason.STOP,
                             at=T0 + timedelta(hours=1))


def fired_alert() -> FiredAlert:
    """An alert above 37000 reached by a 5m candle's wick to 37100, which validated the plan it armed."""
    fired_at = T0 + timedelta(hours=1)
    verdict = {"intent_id": "pl-7f3a9c2e", "verdict": "PASS", "status": "VALIDATED", "at": fired_at.isoformat(),
               "message": "validation PASS: 11 guards", "results": []}
    alert = Alert(id="al-5e6f7a8b", symbol="BTCUSDT", direction=Direction.ABOVE, price=D("37000"),
                  status=AlertStatus.FIRED, created_at=T0, updated_at=fired_at, note="breakout", plan_id="pl-7f3a9c2e",
                  checked_ms=datetime_to_ms(T0 + timedelta(minutes=40)), fired_at=fired_at,
                  fired_candle_ms=datetime_to_ms(T0 + timedelta(minutes=35)), fired_price=D("37100.00"),
                  verdict=verdict)
    return FiredAlert(alert, "5m", gapped=False)


def monitor_report() -> MonitorReport:
    """A tick with a trailing move on one operation, a stop-out on another, a halt, an error and a fired alert."""
    moved_before = operation(id="op-aaaa1111")
    moved = operation(id="op-aaaa1111", stop=D("36562.80"))
    move = StopMove(at=T0 + timedelta(minutes=30), old_stop=D("36000"), new_stop=D("36562.80"), reason="trailing",
                    candle_open_time=0, best_price=D("37100"))
    closed = closed_operation()
    exit_ = Exit(at=closed.closed_at, price=D("35982.00"), trigger_price=D("36000"), fee=D("0.49259358"),
                 reason=CloseReason.STOP, candle_open_time=0)
    halt = Halt("monthly drawdown", D("-8.44"), D("0.844"), D("0.5"), D("1000"),
                "this month's realized loss 8.44 = 0.84% of capital 1000 ≥ 0.50%: trading HALTED until next month")
    return MonitorReport(
        at=T0 + timedelta(hours=1),
        checks=(OperationCheck(moved_before, moved, "5m", 6, (move,), None),
                OperationCheck(operation(), closed, "5m", 12, (), exit_)),
        errors=(Problem("op-bbbb2222", "no candles for ETHUSDT"),),
        halts=(halt,),
        alerts=AlertReport(T0 + timedelta(hours=1), 2, (fired_alert(),)),
    )


def signal() -> Signal:
    return Signal(id="sg-0a1b2c3d", strategy="rescue-forces", pattern="ma4-cross-ma9", symbol="BTCUSDT",
                  timeframe="15m", candle_open_time=1622548800000, side=Side.BUY, confidence=D("0.8"),
                  status=SignalStatus.CONFIRMED, detected_at=T0, updated_at=T0)


def one_of_each_kind() -> list:
    report = events_from_monitor_report(monitor_report())
    intent = make_intent(status=IntentStatus.VALIDATED, source=IntentSource.PATTERN, signal_id="sg-0a1b2c3d")
    executed = event_executed(ExecutionResult(make_intent(status=IntentStatus.EXECUTED), operation(), []))
    return [event_intent_from_signal(intent, signal()), executed, *report]


def picked(data: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    return {key: data.get(key) for key in expected}


# --- payloads -------------------------------------------------------------------------------


def test_a_webhook_receives_one_json_document_per_event_of_every_kind(receiver):
    recorder = Recorder()
    notifier = dispatcher(WebhookSink(receiver.url + "/hook/s3cret"), recorder=recorder)
    events = one_of_each_kind()

    notifier.notify(events)
    notifier.close()

    assert recorder.lines == [] and recorder.sleeps == []
    assert {r.path for r in receiver.received} == {"/hook/s3cret"}
    assert all(r.content_type == "application/json" for r in receiver.received)
    documents = [r.body for r in receiver.received]
    assert [d["kind"] for d in documents] == ["intent_created", "executed", "stop_moved", "closed", "halted",
                                              "monitor_error", "alert_fired"]
    assert sorted({d["kind"] for d in documents}) == sorted(EVENT_KINDS)
    assert all(set(d) == {"source", "id", "kind", "at", "title", "text", "data"} for d in documents)
    assert len({d["id"] for d in documents}) == len(documents)
    intent_created, executed, moved, closed, halted, error, fired = documents
    created_data = {"intent_id": "pl-7f3a9c2e", "signal_id": "sg-0a1b2c3d", "pattern": "ma4-cross-ma9",
                    "confidence": "0.8", "status": "VALIDATED"}
    assert picked(intent_created["data"], created_data) == created_data
    executed_data = {"operation_id": "op-1c2d3e4f", "entry_price": "36526.22", "stop": "36000", "quantity": "0.01369",
                     "dry_run": True}
    assert picked(executed["data"], executed_data) == executed_data
    moved_data = {"operation_id": "op-aaaa1111", "old_stop": "36000", "new_stop": "36562.8", "reason": "trailing",
                  "best_price": "37100"}
    assert picked(moved["data"], moved_data) == moved_data
    # By hand: (35982 − 36526.22) × 0.01369 − 0.500043951 − 0.49259358 = −8.443009331; one R = 0.01369 × 526.22.
    assert D("35982") - D("36526.22") == D("-544.22") and D("0.01369") * D("526.22") == D("7.2039518")
    assert closed["title"] == "CLOSED BTCUSDT BUY op-1c2d3e4f (stop): P&L -8.44 USDT (-1.17 R)"
    expected = {"reason": "stop", "exit_price": "35982", "realized_pnl": "-8.443009331", "r_multiple": "-1.1720",
                "quote_asset": "USDT", "closed_by": "monitor"}
    assert picked(closed["data"], expected) == expected
    assert closed["at"] == "2024-05-01T13:00:00+00:00"
    assert halted["data"] == {"rule": "monthly drawdown", "realized_pnl": "-8.44", "loss_percent": "0.8440",
                              "limit_percent": "0.5", "capital": "1000"}
    assert "trading HALTED until next month" in halted["text"]
    assert error["data"] == {"operation_id": "op-bbbb2222", "message": "no candles for ETHUSDT"}
    assert fired["id"] == "alert_fired:al-5e6f7a8b:1714568400000"
    assert fired["title"] == "ALERT BTCUSDT above 37000: reached 37100 (al-5e6f7a8b); pl-7f3a9c2e PASS"
    assert fired["text"] == ("al-5e6f7a8b: BTCUSDT above 37000 reached by the 2024-05-01 12:35 UTC 5m candle's high "
                             "37100. Note: breakout. Plan pl-7f3a9c2e: validation PASS: 11 guards → VALIDATED. To "
                             "trade it: robson execute pl-7f3a9c2e (dry-run; add --live --acknowledge-risk for real "
                             "orders)")
    assert fired["data"] == {
        "alert_id": "al-5e6f7a8b", "symbol": "BTCUSDT", "direction": "above", "price": "37000",
        "fired_price": "37100", "candle_open": "2024-05-01T12:35:00+00:00", "timeframe": "5m", "gapped": False,
        "note": "breakout", "plan_id": "pl-7f3a9c2e",
        "verdict": {"intent_id": "pl-7f3a9c2e", "verdict": "PASS", "status": "VALIDATED",
                    "at": "2024-05-01T13:00:00+00:00", "message": "validation PASS: 11 guards"}}


def test_money_in_every_payload_is_text_never_a_float(receiver):
    notifier = dispatcher(WebhookSink(receiver.url), recorder=Recorder())

    notifier.notify(one_of_each_kind())
    notifier.close()

    def floats(value: Any) -> list[Any]:
        if isinstance(value, float):
            return [value]
        if isinstance(value, dict):
            return [f for v in value.values() for f in floats(v)]
        return []

    assert [f for r in receiver.received for f in floats(r.body)] == []


def test_telegram_posts_chat_id_and_text_to_bot_token_send_message(receiver):
    notifier = dispatcher(TelegramSink(TOKEN, "-100200300", base_url=receiver.url + "/"), recorder=Recorder())
    closed = events_from_monitor_report(monitor_report())[1]

    notifier.notify([closed])
    notifier.close()

    (received,) = receiver.received
    assert received.path == f"/bot{TOKEN}/sendMessage"
    assert received.body["chat_id"] == "-100200300"
    assert received.body["text"] == f"{closed.title}\n{closed.text}"
    assert "P&L -8.44 USDT (-1.17 R)" in received.body["text"]


def test_only_the_selected_event_kinds_are_sent(receiver):
    notifier = dispatcher(WebhookSink(receiver.url), recorder=Recorder(), kinds={"closed", "halted"})

    notifier.notify(one_of_each_kind())
    notifier.close()

    assert [r.body["kind"] for r in receiver.received] == ["closed", "halted"]


# --- failures -------------------------------------------------------------------------------


def test_a_receiver_failing_with_500_is_retried_with_doubling_backoff_until_it_accepts(receiver):
    receiver.script = [500, 503]
    recorder = Recorder()
    notifier = dispatcher(WebhookSink(receiver.url), recorder=recorder, retries=2)

    arrived = notifier.deliver(notifier.sinks[0], one_of_each_kind()[0])

    assert arrived is True
    assert len(receiver.received) == 3
    assert receiver.received[0].body == receiver.received[2].body
    assert recorder.sleeps == [1.0, 2.0]
    assert recorder.lines == []


def test_a_receiver_that_keeps_failing_is_given_up_with_one_log_line_without_the_secret(receiver):
    receiver.script = [500, 500, 500]
    recorder = Recorder()
    notifier = dispatcher(WebhookSink(f"{receiver.url}/hooks/{TOKEN}"), recorder=recorder, retries=2)

    arrived = notifier.deliver(notifier.sinks[0], one_of_each_kind()[0])

    assert arrived is False
    assert len(receiver.received) == 3
    assert recorder.lines == [f"notify: intent_created to webhook {receiver.url}/<redacted> not delivered after "
                              "3 attempts: HTTP 500"]


def test_a_refusal_other_than_429_or_5xx_is_not_retried(receiver):
    receiver.script = [401]
    recorder = Recorder()
    notifier = dispatcher(TelegramSink(TOKEN, "42", base_url=receiver.url), recorder=recorder)

    assert notifier.deliver(notifier.sinks[0], one_of_each_kind()[0]) is False

    assert len(receiver.received) == 1 and recorder.sleeps == []
    assert recorder.lines == [f"notify: intent_created to telegram {receiver.url} not delivered after 1 attempt: "
                              "HTTP 401"]
    assert TOKEN not in "".join(recorder.lines)


def test_a_hanging_receiver_times_out_each_attempt_and_is_given_up(receiver):
    receiver.script = ["hang", "hang"]
    recorder = Recorder()
    notifier = dispatcher(WebhookSink(receiver.url), recorder=recorder, timeout_seconds=0.2, retries=1)
    started = time.monotonic()

    arrived = notifier.deliver(notifier.sinks[0], one_of_each_kind()[0])

    assert arrived is False
    assert time.monotonic() - started < 5  # two attempts of 0.2 s, with a generous margin
    assert recorder.lines == [f"notify: intent_created to webhook {receiver.url} not delivered after 2 attempts: "
                              "no answer within 0.2 s"]


def test_closing_waits_no_longer_than_the_drain_deadline_for_a_hanging_receiver(receiver):
    receiver.script = ["hang"]
    recorder = Recorder()
    notifier = dispatcher(WebhookSink(receiver.url), recorder=recorder, timeout_seconds=30, drain_seconds=0.3)
    started = time.monotonic()

    notifier.notify(one_of_each_kind()[:2])
    queued = time.monotonic() - started
    notifier.close()

    assert queued < 0.5  # notify only queues
    assert time.monotonic() - started < 5  # bounded by the drain deadline (0.3 s), not the 30 s timeout
    assert recorder.lines == ["notify: 2 notification(s) not delivered within 0.3 s; dropped"]


def test_a_closed_port_is_given_up_after_the_retries(receiver):
    recorder = Recorder()
    notifier = dispatcher(WebhookSink("http://127.0.0.1:9/hook"), recorder=recorder, retries=1)

    assert notifier.deliver(notifier.sinks[0], one_of_each_kind()[0]) is False

    assert recorder.sleeps == [1.0]
    assert recorder.lines == ["notify: intent_created to webhook http://127.0.0.1:9/<redacted> not delivered after "
                              "2 attempts: cannot connect: Connection refused"]


def test_a_sink_that_raises_a_bug_does_not_kill_the_worker(receiver):
    class Broken:
        name = "broken"

        def send(self, notification, timeout):
            raise KeyError("bug")

    recorder = Recorder()
    notifier = dispatcher(Broken(), WebhookSink(receiver.url), recorder=recorder)

    notifier.notify(one_of_each_kind()[:1])
    notifier.close()

    assert len(receiver.received) == 1
    assert recorder.lines == ["notify: intent_created to broken not delivered after 1 attempt: internal error (KeyError)"]


# --- building from the configuration -------------------------------------------------------


def test_nothing_configured_builds_the_free_null_notifier():
    notifier = build_notifier(load_settings(env={}), env={})

    assert isinstance(notifier, NullNotifier) and notifier.enabled is False


def test_a_chat_without_a_token_leaves_telegram_out_with_one_line():
    lines: list[str] = []
    settings = load_settings(env={"ROBSON_NOTIFY__TELEGRAM_CHAT_ID": "42"})

    notifier = build_notifier(settings, env={}, log=lines.append)

    assert isinstance(notifier, NullNotifier)
    assert lines == ["notify: Telegram left out: notify.telegram_chat_id is set but no bot token (set "
                     "ROBSON_TELEGRAM_BOT_TOKEN or notify.telegram_token_file)"]


def test_the_token_comes_from_a_0600_file_and_never_shows_in_the_sink_repr(tmp_path):
    token_file = tmp_path / "secrets"
    token_file.write_text(f"API_KEY=k\nAPI_SECRET=s\nTELEGRAM_BOT_TOKEN={TOKEN}\n")
    token_file.chmod(0o600)
    settings = load_settings(env={"ROBSON_NOTIFY__TELEGRAM_CHAT_ID": "42",
                                  "ROBSON_NOTIFY__TELEGRAM_TOKEN_FILE": str(token_file),
                                  "ROBSON_NOTIFY__EVENTS": "closed,halted"})

    notifier = build_notifier(settings, env={})

    (sink,) = notifier.sinks
    assert isinstance(sink, TelegramSink) and notifier.kinds == {"closed", "halted"}
    assert TOKEN not in repr(sink) + repr(notifier.sinks) + sink.name


def test_a_token_file_readable_by_others_leaves_telegram_out_naming_chmod(tmp_path):
    token_file = tmp_path / "secrets"
    token_file.write_text(f"TELEGRAM_BOT_TOKEN={TOKEN}\n")
    token_file.chmod(0o644)
    lines: list[str] = []
    settings = load_settings(env={"ROBSON_NOTIFY__TELEGRAM_CHAT_ID": "42", "ROBSON_NOTIFY__WEBHOOK_URL": "http://127.0.0.1:9",
                                  "ROBSON_NOTIFY__TELEGRAM_TOKEN_FILE": str(token_file)})

    notifier = build_notifier(settings, env={}, log=lines.append)

    assert [s.name for s in notifier.sinks] == ["webhook http://127.0.0.1:9"]
    assert lines == [f"notify: Telegram left out: notify.telegram_token_file {token_file} is readable by others "
                     f"(mode 0644); run chmod 600 {token_file}"]


@pytest.mark.parametrize("value", ["closed,nope", "[]", "ftp://example.com/x"])
def test_bad_notify_settings_are_refused_naming_the_field(value):
    from robson.errors import ConfigError

    field = "ROBSON_NOTIFY__WEBHOOK_URL" if value.startswith("ftp") else "ROBSON_NOTIFY__EVENTS"

    with pytest.raises(ConfigError) as raised:
        load_settings(env={field: value})

    assert "notify." in raised.value.message
    assert "/x" not in raised.value.message  # a URL is shown redacted even when refused


def test_an_execution_whose_stop_could_not_be_placed_sends_executed_and_closed():
    intent = make_intent(status=IntentStatus.EXECUTED)
    exited = dataclasses.replace(closed_operation(), close_reason=CloseReason.STOP_PLACEMENT_FAILED)

    sent = events_executed(ExecutionResult(intent, exited, []))

    assert [n.kind.value for n in sent] == ["executed", "closed"]
    assert sent[1].data["reason"] == "stop_placement_failed"
    assert sent[1].data["closed_by"] == "execute: the stop could not be placed"
    assert events_executed(ExecutionResult(intent, operation(), [], already_executed=True)) == []


def test_an_event_key_is_stable_for_the_same_event():
    first, second = one_of_each_kind(), one_of_each_kind()

    assert [e.key for e in first] == [e.key for e in second]
    assert first[3].kind is EventKind.CLOSED and first[3].key == "closed:op-1c2d3e4f:1714568400000"
    assert first[3].at == datetime(2024, 5, 1, 13, 0, tzinfo=UTC)
