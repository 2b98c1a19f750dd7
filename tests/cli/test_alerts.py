"""`robson alert` on the bundled sample market, replayed with --as-of: an alert fires exactly once on the candle
whose wick reached it, a monitor tick checks alerts too, an armed plan is validated (never executed), e-mail is sent
through a loopback SMTP server, and every bad input is exit 2, one line, the database unchanged.

BTCUSDT 5m candles of 2021-06-09 (robson/data/market/BTCUSDT/5m/2021-06.csv.gz), open / high / low / close:
    05:45  33566.91  33590.00  33435.66  33466.53
    06:20  33543.28  33700.00  33507.98  33674.40   the highest high from 05:45 to 06:20
    06:25  33676.94  33968.70  33627.43  33902.96   a wick to 33968.70 that closed below 33950
    06:30  33902.96  33902.97  33700.00  33704.45   the last price at 06:35: below 33950 again
    06:40  33778.22  34149.48  33725.39  34085.07   above 33950 once more
An alert above 33950 set at 05:45 (price 33566.91, the 05:40 candle's close) fires on the 06:25 candle, known once
it closed at 06:30, and never again.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests import databases
from tests.cli.conftest import assert_user_error, dump_database, floats_in, parsed
from tests.cli.test_bad_input_classes import refused
from tests.cli.test_demo import REPO
from tests.integration.test_notify import Receiver
from tests.smtp_server import SmtpServer

SET = ["--as-of", "2021-06-09T05:45"]
BEFORE_THE_WICK_CLOSED = ["--as-of", "2021-06-09T06:29"]
AFTER_THE_WICK = ["--as-of", "2021-06-09T06:35"]
LATER = ["--as-of", "2021-06-09T07:00"]  # the 06:40 candle went above 33950 too


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    with Receiver() as receiver:
        monkeypatch.setenv("ROBSON_NOTIFY__WEBHOOK_URL", f"{receiver.url}/hook")
        monkeypatch.setenv("ROBSON_NOTIFY__RETRY_BACKOFF_SECONDS", "0")
        yield receiver


def add(robson, *args: str, at: list[str] = SET) -> dict:
    return parsed(robson(*at, "alert", "add", *args, "--json"))


def check(robson, at: list[str]) -> dict:
    return parsed(robson(*at, "alert", "check", "--once", "--json"))


def audit_kinds(db_path) -> list[str]:
    return [row["kind"] for row in databases.fetch(db_path, "SELECT kind FROM audit_events ORDER BY id")]


def planned(robson, *args: str) -> str:
    return parsed(robson(*SET, "plan", "buy", "BTCUSDT", *args, "--json"))["id"]


# --- firing once on a wick -------------------------------------------------------------------


def test_an_alert_fires_exactly_once_on_the_candle_whose_wick_reached_it(robson, db_path, webhook):
    alert = add(robson, "BTCUSDT", "above", "33950", "--note", "breakout")
    assert (alert["status"], alert["price"], alert["price_now"]) == ("ACTIVE", "33950", "33566.91")

    before = check(robson, BEFORE_THE_WICK_CLOSED)  # the 06:25 candle is still forming at 06:29
    fired = check(robson, AFTER_THE_WICK)
    again = check(robson, LATER)

    assert (before["watched"], before["fired"]) == (1, [])
    (doc,) = fired["fired"]
    assert (doc["id"], doc["status"], doc["fired_candle_open"], doc["fired_price"], doc["timeframe"], doc["gapped"]) == (
        alert["id"], "FIRED", "2021-06-09T06:25:00+00:00", "33968.7", "5m", False)
    assert (doc["fired_at"], doc["checked_through"], doc["verdict"]) == ("2021-06-09T06:35:00+00:00",
                                                                        "2021-06-09T06:30:00+00:00", None)
    assert (again["watched"], again["fired"]) == (0, [])
    assert [r.body["kind"] for r in webhook.received] == ["alert_fired"]
    body = webhook.received[0].body
    assert body["title"] == f"ALERT BTCUSDT above 33950: reached 33968.7 ({alert['id']})"
    assert body["data"]["candle_open"] == "2021-06-09T06:25:00+00:00" and body["data"]["note"] == "breakout"
    assert audit_kinds(db_path) == ["alert_added", "alert_fired"]


def test_a_check_before_the_wick_closed_records_how_far_it_looked(robson):
    alert = add(robson, "BTCUSDT", "above", "33950")

    check(robson, BEFORE_THE_WICK_CLOSED)
    (listed,) = parsed(robson("alert", "list", "--json"))["alerts"]

    assert listed["id"] == alert["id"]
    assert listed["checked_through"] == "2021-06-09T06:25:00+00:00"  # the 06:20 candle's close


def test_nothing_fires_while_no_candle_has_closed_since_the_alert_was_set(robson):
    add(robson, "BTCUSDT", "below", "33000")

    report = check(robson, ["--as-of", "2021-06-09T05:49"])  # the 05:45 candle closes at 05:50
    (listed,) = parsed(robson("alert", "list", "--json"))["alerts"]

    assert (report["watched"], report["fired"], report["errors"]) == (1, [], [])
    assert (listed["status"], listed["checked_through"]) == ("ACTIVE", None)


def test_the_human_check_is_one_line(robson):
    alert = add(robson, "BTCUSDT", "above", "33950")

    result = robson(*AFTER_THE_WICK, "alert", "check", "--once")

    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout == (f"alert check 2021-06-09 06:35 UTC: 1 watched, 1 fired ({alert['id']} BTCUSDT above 33950 "
                             "reached 33968.7)\n")


def test_a_monitor_tick_checks_the_alerts_and_a_cron_check_after_it_finds_nothing_left(robson, db_path, webhook):
    alert = add(robson, "BTCUSDT", "above", "33950")

    tick = parsed(robson(*AFTER_THE_WICK, "monitor", "--once", "--json"))
    line = robson(*LATER, "monitor", "--once").stdout
    cron = check(robson, AFTER_THE_WICK)

    (fired,) = tick["alerts"]["fired"]
    assert (fired["id"], fired["fired_price"], tick["checked"]) == (alert["id"], "33968.7", 0)
    assert line == "monitor 2021-06-09 07:00 UTC: 0 checked, 0 stop moves, 0 closed\n"
    assert (cron["watched"], cron["fired"]) == (0, [])
    assert [r.body["kind"] for r in webhook.received] == ["alert_fired"]
    assert audit_kinds(db_path).count("alert_fired") == 1


def test_the_monitor_line_names_the_alert_it_fired(robson):
    alert = add(robson, "BTCUSDT", "above", "33950")

    result = robson(*AFTER_THE_WICK, "monitor", "--once")

    assert result.exit_code == 0
    assert result.stdout == (f"monitor 2021-06-09 06:35 UTC: 0 checked, 0 stop moves, 0 closed, 1 alert fired "
                             f"({alert['id']} BTCUSDT above 33950 reached 33968.7)\n")


# --- arming a plan ---------------------------------------------------------------------------


def test_an_alert_armed_with_a_plan_validates_it_when_it_fires_and_executes_nothing(robson, db_path, webhook):
    plan = planned(robson, "--entry", "33960", "--stop", "33500", "--target", "35000")
    alert = add(robson, "BTCUSDT", "above", "33950", "--plan", plan[:6])

    report = check(robson, AFTER_THE_WICK)
    human = robson("plan", "show", plan)

    assert alert["plan_id"] == plan
    verdict = report["fired"][0]["verdict"]
    # At 06:35 the market is 33704.45: the entry 33960 is (33960 − 33704.45) / 33704.45 = 0.76 % away, over 0.5 %.
    assert (verdict["intent_id"], verdict["verdict"], verdict["status"]) == (plan, "WARN", "VALIDATED")
    assert verdict["message"] == ("validation WARN: 11 guards; entry price: entry 33960 is 0.76% from the market "
                                  "33704.45: execute fills at market, not at the planned entry")
    assert {r["guard"]: r["verdict"] for r in verdict["results"]}["entry price"] == "WARN"
    intent = parsed(robson("plan", "show", plan, "--json"))
    assert (intent["status"], intent["validated_at"]) == ("VALIDATED", "2021-06-09T06:35:00+00:00")
    assert databases.count(db_path, "operations") == 0 and databases.count(db_path, "orders") == 0
    assert audit_kinds(db_path) == ["planned", "alert_added", "alert_fired", "validated"]
    assert "alert_fired" in human.stdout and "validating" in human.stdout
    assert webhook.received[0].body["data"]["verdict"]["status"] == "VALIDATED"
    assert f"To trade it: robson execute {plan}" in webhook.received[0].body["text"]


def test_the_human_check_says_what_became_of_the_armed_plan(robson):
    plan = planned(robson, "--entry", "33960", "--stop", "33500", "--target", "35000")
    add(robson, "BTCUSDT", "above", "33950", "--plan", plan)

    result = robson(*AFTER_THE_WICK, "alert", "check", "--once")

    lines = result.stdout.splitlines()
    assert lines[0].endswith(f"reached 33968.7, {plan} WARN → VALIDATED)")
    assert lines[1].endswith(f"→ VALIDATED. To trade it: robson execute {plan} (dry-run; add --live "
                             "--acknowledge-risk for real orders)")


def test_a_plan_that_fails_its_guards_when_the_alert_fires_is_failed_and_the_alert_says_why(robson, db_path):
    plan = planned(robson, "--entry", "33960", "--stop", "30000", "--target", "40000")  # stop 11.66 % away
    add(robson, "BTCUSDT", "above", "33950", "--plan", plan)

    verdict = check(robson, AFTER_THE_WICK)["fired"][0]["verdict"]

    assert (verdict["verdict"], verdict["status"]) == ("FAIL", "FAILED")
    assert verdict["message"].startswith("validation FAIL: stop distance: stop distance 11.66%")
    assert parsed(robson("plan", "show", plan, "--json"))["status"] == "FAILED"
    assert databases.count(db_path, "orders") == 0


def test_a_plan_cancelled_before_the_alert_fired_is_reported_not_validated(robson):
    plan = planned(robson, "--entry", "33960", "--stop", "33500")
    alert = add(robson, "BTCUSDT", "above", "33950", "--plan", plan)
    parsed(robson(*SET, "plan", "cancel", plan, "--json"))

    (fired,) = check(robson, AFTER_THE_WICK)["fired"]

    assert (fired["id"], fired["status"]) == (alert["id"], "FIRED")
    assert fired["verdict"]["verdict"] is None
    assert fired["verdict"]["message"] == (f"not validated: intent {plan} is CANCELLED: only PENDING or VALIDATED "
                                           "intents can be validated")


# --- list and remove ----------------------------------------------------------------------------


def test_remove_keeps_the_alert_for_history_and_it_never_fires(robson, db_path):
    kept = add(robson, "BTCUSDT", "below", "33000")
    gone = add(robson, "BTCUSDT", "above", "33950")

    removed = parsed(robson(*SET, "alert", "remove", gone["id"][:7], "--json"))
    report = check(robson, AFTER_THE_WICK)

    assert removed["status"] == "REMOVED"
    assert (report["watched"], report["fired"]) == (1, [])
    assert [a["id"] for a in parsed(robson("alert", "list", "--json"))["alerts"]] == [kept["id"]]
    # Set at the same market time: listed by ID after their creation time.
    assert [(a["id"], a["status"]) for a in parsed(robson("alert", "list", "--all", "--json"))["alerts"]] == sorted(
        [(kept["id"], "ACTIVE"), (gone["id"], "REMOVED")])
    assert audit_kinds(db_path) == ["alert_added", "alert_added", "alert_removed"]
    listing = robson("alert", "list").stdout
    assert "Active alerts (1)" in listing and "1 fired or removed not shown: robson alert list --all" in listing


def test_every_alert_document_holds_money_as_text(robson):
    plan = planned(robson, "--entry", "33960", "--stop", "33500")
    add(robson, "BTCUSDT", "above", "33950", "--plan", plan)
    add(robson, "ETHUSDT", "below", "2000")  # ETHUSDT has 1h candles only: checked on those

    documents = [check(robson, AFTER_THE_WICK), parsed(robson("alert", "list", "--all", "--json")),
                 parsed(robson(*LATER, "monitor", "--once", "--json"))]

    assert [floats_in(d) for d in documents] == [[], [], []]


# --- the README's example -----------------------------------------------------------------------

IDS = re.compile(r"\b(pl|al)-[0-9a-f]{8}\b")


def readme_alert_block() -> list[str]:
    """The lines of README.md's fenced block that starts with `$ robson … alert add`."""
    blocks, block = [], None
    for line in (REPO / "README.md").read_text().splitlines():
        if line.startswith("```") and block is None:
            block = []
        elif line.startswith("```"):
            blocks.append(block)
            block = None
        elif block is not None:
            block.append(line)
    return next(b for b in blocks if b and b[0].startswith("$ robson") and " alert add " in b[0])


def test_the_readme_example_is_what_the_commands_print_today(robson):
    plan = planned(robson, "--entry", "33960", "--stop", "33500", "--target", "35000")
    block, printed = readme_alert_block(), []

    for line in block:
        if line.startswith("$ robson "):
            args = [plan if IDS.fullmatch(a) else a for a in shlex.split(line.removeprefix("$ robson "))]
            result = robson(*args)
            assert result.exit_code == 0 and result.stderr == "", result.stderr
            printed += [line, *result.stdout.splitlines()]

    assert [IDS.sub(r"\1-…", line).rstrip() for line in printed] == [IDS.sub(r"\1-…", line) for line in block]


# --- bad input: exit 2, one line, nothing written ---------------------------------------------------


@pytest.fixture
def seeded(robson, db_path) -> dict[str, str]:
    """An ACTIVE and a FIRED alert, a PENDING and an EXECUTED (dry-run) intent; returns their IDs."""
    executed = planned(robson, "--strategy", "rescue-forces")
    parsed(robson(*SET, "validate", executed, "--json"))
    parsed(robson(*SET, "execute", executed, "--json"))
    pending = planned(robson, "--entry", "33960", "--stop", "33500")
    fired = add(robson, "BTCUSDT", "above", "33950")["id"]
    check(robson, AFTER_THE_WICK)
    active = add(robson, "BTCUSDT", "below", "30000", at=AFTER_THE_WICK)["id"]
    return {"active": active, "fired": fired, "pending": pending, "executed": executed}


@pytest.mark.parametrize(("args", "problem"), [
    (["BTCUSDT", "below", "-5"], "price must be greater than 0, got '-5'"),
    (["BTCUSDT", "below", "0"], "price must be greater than 0, got '0'"),
    (["BTCUSDT", "below", "abc"], "price must be a number, got 'abc'"),
    (["BTCUSDT", "below", "NaN"], "price must be a finite number"),
    (["BTCUSDT", "below", "1e999999"], "price is out of range"),
    (["BTCUSDT", "below", "３００００"], "price must be a number written with the digits 0-9"),
    (["BTCUSDT", "over", "30000"], "direction must be 'above' or 'below', got 'over'"),
    (["XRPUSDT", "below", "1"], "unknown symbol 'XRPUSDT' (known: BTCUSDT, ETHUSDT)"),
    (["BTC-USDT", "below", "1"], "symbol must be letters and digits like BTCUSDT, got 'BTC-USDT'"),
    (["BTCUSDT", "above", "30000"], "BTCUSDT is at 33704.45 already (2021-06-09 06:35 UTC), at or above 30000: the "
                                    "alert would fire at once"),
    (["BTCUSDT", "below", "33704.45"], "BTCUSDT is at 33704.45 already (2021-06-09 06:35 UTC), at or below "
                                       "33704.45: the alert would fire at once"),
    (["BTCUSDT", "below", "30000", "--plan", "pl-00000000"], "no intent matches 'pl-00000000'"),
    (["BTCUSDT", "below", "30000", "--plan", "EXECUTED"], "is EXECUTED: an alert can arm only a PENDING or VALIDATED "
                                                          "plan"),
], ids=["negative", "zero", "text", "nan", "huge", "fullwidth-digits", "direction", "unknown-symbol",
        "malformed-symbol", "above-already", "below-already-exact", "unknown-plan", "executed-plan"])
def test_a_bad_alert_is_refused_and_changes_nothing(robson, db_path, seeded, args, problem):
    args = [seeded["executed"] if a == "EXECUTED" else a for a in args]

    stderr = refused(robson, db_path, *AFTER_THE_WICK, "alert", "add", *args, fragments=[problem])

    assert "Usage:" not in stderr


@pytest.mark.parametrize(("args", "problem"), [
    (["alert", "remove", "al-00000000"], "no alert matches 'al-00000000'"),
    (["alert", "remove", " "], "an alert ID is required"),
    (["alert", "remove", "FIRED"], "is FIRED: only an ACTIVE alert can be removed"),
    (["--as-of", "2021-06-09T06:00", "alert", "remove", "ACTIVE"], "robson never writes history backwards"),
    (["--as-of", "2021-06-09T05:00", "alert", "add", "BTCUSDT", "below", "30000", "--plan", "PENDING"],
     "robson never writes history backwards"),
], ids=["unknown-id", "empty-id", "fired", "before-it-was-set", "plan-from-the-future"])
def test_a_bad_alert_id_or_time_is_refused_and_changes_nothing(robson, db_path, seeded, args, problem):
    args = [seeded[a.lower()] if a.lower() in seeded else a for a in args]

    refused(robson, db_path, *args, fragments=[problem])


def test_a_refusal_under_json_is_one_error_document(robson, db_path, seeded):
    before = dump_database(db_path)

    result = robson(*AFTER_THE_WICK, "alert", "add", "BTCUSDT", "below", "-5", "--json")

    assert_user_error(result, 2, "price must be greater than 0")
    assert json.loads(result.stdout)["error"]["code"] == 2
    assert dump_database(db_path) == before


# --- e-mail through the CLI ----------------------------------------------------------------------

CANARY = "CANARY-smtp-password-5c4b3a"


@pytest.fixture
def mailbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpServer]:
    """A STARTTLS server on 127.0.0.1 with a certificate from a private CA, and robson configured to mail it."""
    ca = trustme.CA()
    ca_file = tmp_path / "private-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with SmtpServer(tls="starttls", certificate=ca.issue_cert("127.0.0.1"), users={"robson": CANARY}) as server:
        for name, value in {"EMAIL_TO": "trader@example.com", "EMAIL_FROM": "robson@example.com",
                            "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(server.port), "SMTP_CA_FILE": str(ca_file),
                            "SMTP_USERNAME": "robson", "RETRY_BACKOFF_SECONDS": "0"}.items():
            monkeypatch.setenv(f"ROBSON_NOTIFY__{name}", value)
        monkeypatch.setenv("ROBSON_SMTP_PASSWORD", CANARY)
        yield server


def test_a_fired_alert_is_mailed_over_starttls_and_the_password_shows_nowhere(robson, db_path, mailbox):
    alert = add(robson, "BTCUSDT", "above", "33950")

    result = robson(*AFTER_THE_WICK, "alert", "check", "--once")
    shown = [robson("config", "show"), robson("config", "show", "--json")]

    assert result.exit_code == 0 and result.stderr == ""
    (mail,) = mailbox.messages
    assert mail.message["Subject"] == f"ALERT BTCUSDT above 33950: reached 33968.7 ({alert['id']})"
    assert mail.rcpt_tos == ["trader@example.com"] and mailbox.logins == [("robson", CANARY)]
    assert "set (environment), redacted" in shown[0].stdout
    outputs = [result.stdout, result.stderr, *(r.stdout + r.stderr for r in shown), mail.raw.decode(),
               repr(dump_database(db_path))]
    assert [CANARY in text for text in outputs] == [False] * len(outputs)


def test_a_refused_login_is_one_stderr_line_without_the_password_and_changes_nothing_else(robson, db_path, mailbox,
                                                                                         monkeypatch):
    monkeypatch.setenv("ROBSON_SMTP_PASSWORD", CANARY + "-wrong")
    add(robson, "BTCUSDT", "above", "33950")

    result = robson(*AFTER_THE_WICK, "alert", "check", "--once", "--json")

    assert result.exit_code == 0 and len(parsed(result)["fired"]) == 1
    assert result.stderr == (f"notify: alert_fired to email smtp://127.0.0.1:{mailbox.port} (starttls) not delivered "
                             "after 1 attempt: login refused (SMTP 535)\n")
    assert mailbox.messages == [] and CANARY not in result.stdout + result.stderr
    assert os.environ["ROBSON_SMTP_PASSWORD"] not in repr(dump_database(db_path))
