"""Scripts that chain commands: an error under --json is a JSON document too; -h; misplaced global options; pipes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from tests import databases
from tests.cli.conftest import assert_user_error, parsed

REPO = Path(__file__).resolve().parents[2]


def error_document(result) -> dict:
    """Return stdout's one JSON document, an error, checked against the exit code and the stderr lines."""
    doc = json.loads(result.stdout)  # exactly one document: json.loads refuses trailing text
    assert set(doc) == {"error"} and set(doc["error"]) == {"code", "message", "hint"}, doc
    error = doc["error"]
    assert error["code"] == result.exit_code
    assert f"Error: {error['message']}" in result.stderr
    if error["hint"] is None:
        assert "Hint:" not in result.stderr
    else:
        assert f"Hint: {error['hint']}" in result.stderr
    return error


@pytest.mark.parametrize(("args", "code", "fragment"), [
    (["plan", "show", "pl-00000000"], 2, "no intent matches"),
    (["plan", "buy", "BTCUSDT", "--strategy", "nope"], 2, "unknown strategy 'nope'"),
    (["plan", "buy", "BTCUSDT", "--entry", "abc"], 2, "entry must be a number"),
    (["--as-of", "yesterday", "plan", "list"], 2, "field 'as_of'"),
    (["plan", "list", "--nope"], 2, "No such option: --nope"),
    (["plan", "list", "--db", "x.db"], 2, "--db is a global option"),
    (["execute", "PENDING"], 3, "only VALIDATED intents execute"),
    (["execute", "PENDING", "--live", "--acknowledge-risk"], 3, "live trading is disabled"),
    (["--market", "binance", "plan", "buy", "BTCUSDT"], 1, "cannot reach Binance"),
], ids=["not-found", "unknown-strategy", "bad-number", "bad-global-option", "unknown-option", "misplaced-global",
        "refused-pending", "refused-live-disabled", "runtime-binance-down"])
def test_an_error_under_json_prints_one_error_document_with_the_exit_code(robson, args, code, fragment):
    pending = parsed(robson("plan", "buy", "BTCUSDT", "--json"))["id"]
    args = [pending if a == "PENDING" else a for a in args]

    result = robson(*args, "--json")

    assert result.exit_code == code, result.stderr
    error = error_document(result)
    assert fragment.lower() in error["message"].lower()
    assert "Traceback" not in result.stdout + result.stderr


def test_the_hint_is_in_the_error_document(robson):
    pending = parsed(robson("plan", "buy", "BTCUSDT", "--json"))["id"]

    error = error_document(robson("execute", pending, "--json"))

    assert error["hint"] == f"run: robson validate {pending}"


def test_without_json_an_error_leaves_stdout_empty(robson):
    result = robson("plan", "show", "pl-00000000")

    assert_user_error(result, 2, "no intent matches")
    assert result.stdout == ""


def test_json_after_a_double_dash_is_an_argument_not_the_option(robson):
    result = robson("plan", "buy", "BTCUSDT", "--", "--json")

    assert_user_error(result, 2, "quantity must be a number")
    assert result.stdout == ""


def test_a_command_that_printed_its_document_prints_no_second_one(robson, plan_id):
    intent = plan_id("--entry", "30000", "--stop", "29990")  # a stop far too close: validation FAILs

    result = robson("validate", intent, "--json")

    assert result.exit_code == 3
    report = json.loads(result.stdout)  # one document: the report, not an error after it
    assert report["verdict"] == "FAIL" and "error" not in report


def test_an_internal_error_under_json_is_a_document_too(robson, monkeypatch):
    from robson.application import intents

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(intents, "list_intents", broken)

    result = robson("plan", "list", "--json")

    assert result.exit_code == 1
    error = error_document(result)
    assert error["message"] == "internal error (ZeroDivisionError): a bug"


# --- -h and global options in the wrong place ---------------------------------------------


@pytest.mark.parametrize("command", [[], ["plan"], ["plan", "buy"], ["monitor"], ["operation", "modify"], ["init"],
                                     ["unlock"]],
                         ids=lambda c: " ".join(c) or "robson")
def test_dash_h_is_help(robson, db_path, command):
    env = databases.never_opened_env(db_path)
    short, long = robson(*command, "-h", env=env), robson(*command, "--help", env=env)

    assert short.exit_code == 0, short.stderr
    assert short.stdout == long.stdout
    assert "Usage:" in short.stdout
    assert not databases.file_made(db_path)


@pytest.mark.parametrize(("args", "fixed"), [
    (["plan", "list", "--db", "x.db"], "robson --db x.db plan list"),
    (["plan", "buy", "BTCUSDT", "--as-of", "2021-06-01T12:00", "--json"],
     "robson --as-of 2021-06-01T12:00 plan buy BTCUSDT --json"),
    (["monitor", "--once", "--market=binance"], "robson --market=binance monitor --once"),
    (["config", "show", "--config", "my file.yaml"], "robson --config 'my file.yaml' config show"),
], ids=["db", "as-of", "market-equals", "config-quoted"])
def test_a_global_option_after_the_command_says_to_move_it_before(robson, db_path, args, fixed):
    result = robson(*args, env=databases.never_opened_env(db_path))

    assert result.exit_code == 2
    assert "is a global option and goes before the command" in result.stderr
    assert fixed in result.stderr
    assert not databases.file_made(db_path)


# --- the README's scripting example and broken pipes (the installed command) --------------


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("ROBSON_", "BINANCE_"))}
    return env | {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        "ROBSON_DB": str(tmp_path / "r.db"),
        "XDG_CONFIG_HOME": str(tmp_path / "xdg-config"),
        "XDG_DATA_HOME": str(tmp_path / "xdg-data"),
        "ROBSON_BINANCE__BASE_URL": "http://127.0.0.1:9",
    } | extra


def readme_scripting_block() -> str:
    text = (REPO / "README.md").read_text()
    section = text[text.index("### Scripting"):]
    return section[section.index("```sh\n") + 6:section.index("\n```", section.index("```sh"))]


@pytest.mark.slow
def test_the_readme_scripting_example_reports_a_failed_plan_without_a_traceback(tmp_path):
    script = readme_scripting_block()

    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=_env(tmp_path, ROBSON_CAPITAL="abc"),
                            capture_output=True, text=True, timeout=60, check=False)

    assert result.returncode == 1
    assert "Traceback" not in result.stdout + result.stderr
    assert "plan failed: " in result.stderr
    failure = result.stderr[result.stderr.index("plan failed: ") + len("plan failed: "):]
    assert json.loads(failure)["error"]["code"] == 2


@pytest.mark.slow
def test_the_readme_scripting_example_executes_when_all_is_well(tmp_path):
    result = subprocess.run(["bash", "-c", readme_scripting_block()], cwd=tmp_path,
                            env=_env(tmp_path, ROBSON_AS_OF="2021-06-09T05:45", ROBSON_STRATEGY="rescue-forces"),
                            capture_output=True, text=True, timeout=60, check=False)

    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["intent"]["status"] == "EXECUTED"
    assert json.loads((tmp_path / "report.json").read_text())["verdict"] == "PASS"


@pytest.mark.slow
@pytest.mark.parametrize("as_json", [False, True], ids=["table", "json"])
def test_execute_into_a_closed_pipe_still_exits_0_after_placing_the_trade(tmp_path, as_json):
    env = _env(tmp_path, ROBSON_AS_OF="2021-06-09T05:45")
    run = lambda *args: subprocess.run(["robson", *args], cwd=tmp_path, env=env, capture_output=True,  # noqa: E731
                                       text=True, timeout=60, check=False)
    intent = json.loads(run("plan", "buy", "BTCUSDT", "--strategy", "rescue-forces", "--json").stdout)["id"]
    assert run("validate", intent).returncode == 0
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader (`head -1`) is gone before robson writes anything

    try:
        result = subprocess.run(["robson", "execute", intent, *(["--json"] if as_json else [])], cwd=tmp_path, env=env,
                                stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60, check=False)
    finally:
        os.close(write_end)

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    with closing(sqlite3.connect(tmp_path / "r.db")) as raw:
        assert raw.execute("SELECT status FROM intents WHERE id = ?", (intent,)).fetchone() == ("EXECUTED",)
        assert raw.execute("SELECT status FROM operations WHERE intent_id = ?", (intent,)).fetchone() == ("ACTIVE",)
