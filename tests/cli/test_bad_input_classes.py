"""Classes of bad input (issue 10): each is exit 2, one `Error:` line, no traceback, the database unchanged.

Unicode numerals, files that are not UTF-8 or nest without end, numbers and dates at the edges, huge IDs,
init into odd places, and settings that `config check` must refuse because the commands would.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.cli.conftest import assert_user_error, count_rows, dump_database, parsed

# Digits that Python's Decimal() and int() read as numbers: Arabic-Indic, fullwidth, Devanagari,
# extended Arabic-Indic, mixed with ASCII; and numerals that are no digits at all.
UNICODE_DIGITS = ["١٠٠٠", "１０００", "१०००", "۱۰۰۰", "1٠00"]
OTHER_NUMERALS = ["½", "Ⅻ", "〇"]
AS_OF = ["--as-of", "2021-06-09T05:45"]


@pytest.fixture
def seeded(robson, db_path):
    """A database with a PENDING intent and an ACTIVE dry-run operation; returns the operation's ID."""
    parsed(robson(*AS_OF, "plan", "buy", "BTCUSDT", "--json"))
    intent = parsed(robson(*AS_OF, "plan", "buy", "BTCUSDT", "--strategy", "rescue-forces", "--json"))["id"]
    parsed(robson(*AS_OF, "validate", intent, "--json"))
    return parsed(robson(*AS_OF, "execute", intent, "--json"))["operation"]["id"]


def refused(robson, db_path, *args, fragments=(), **kwargs) -> str:
    """Run robson with args on the seeded database: exit 2, one error line, nothing written; return stderr."""
    before = dump_database(db_path)
    result = robson(*args, **kwargs)
    stderr = assert_user_error(result, 2, *fragments)
    assert "internal error" not in stderr and "database error" not in stderr
    assert dump_database(db_path) == before
    return stderr


# --- Unicode digits and other numerals -------------------------------------------------------


@pytest.mark.parametrize("value", UNICODE_DIGITS + OTHER_NUMERALS)
@pytest.mark.parametrize("option", ["--capital", "--entry", "--stop", "--target", "QTY"])
def test_a_non_ascii_numeral_in_a_plan_option_is_refused(robson, db_path, seeded, option, value):
    args = ["--", value] if option == "QTY" else [option, value]
    refused(robson, db_path, *AS_OF, "plan", "buy", "BTCUSDT", *args, fragments=["must be a number"])


@pytest.mark.parametrize("value", UNICODE_DIGITS)
@pytest.mark.parametrize("args", [
    ["operation", "modify", "OP", "--stop", "V"],
    ["operation", "modify", "OP", "--target", "V"],
    ["monitor", "--interval", "V"],
], ids=["modify-stop", "modify-target", "monitor-interval"])
def test_a_unicode_digit_in_any_number_option_is_refused(robson, db_path, seeded, args, value):
    args = [seeded if a == "OP" else value if a == "V" else a for a in args]
    refused(robson, db_path, *AS_OF, *args, fragments=["must be a number written with the digits 0-9"])


@pytest.mark.parametrize("args", [["--as-of", "٢٠٢١-06-09T05:45", "plan", "list"],
                                  ["report", "--since", "٢٠٢١-06-01"]], ids=["as-of", "report-since"])
def test_a_unicode_digit_in_a_date_is_refused(robson, db_path, seeded, args):
    refused(robson, db_path, *args, fragments=["ISO time"])


@pytest.mark.parametrize(("text", "field"), [
    ("capital: '١٠٠٠'\n", "capital"),
    ("capital: '１０００'\n", "capital"),
    ("risk:\n  cooldown_minutes: '١٥'\n", "risk.cooldown_minutes"),
    ("risk:\n  max_open_positions: '５'\n", "risk.max_open_positions"),
    ("fees:\n  taker_percent: '٠.١'\n", "fees.taker_percent"),
    ("paper:\n  balances: {USDT: '۱۰۰۰'}\n", "paper.balances"),
], ids=["capital-arabic", "capital-fullwidth", "cooldown", "positions", "fees", "balances"])
@pytest.mark.parametrize("command", [["config", "check"], [*AS_OF, "plan", "buy", "BTCUSDT"]], ids=["check", "plan"])
def test_a_unicode_digit_in_the_config_file_is_refused_naming_the_field(robson, db_path, seeded, tmp_path, text,
                                                                       field, command):
    (tmp_path / "c.yaml").write_text(text, encoding="utf-8")
    refused(robson, db_path, "--config", "c.yaml", *command, fragments=[f"c.yaml: field '{field}'"])


@pytest.mark.parametrize(("variable", "value"), [("ROBSON_CAPITAL", "١٠٠٠"), ("ROBSON_RISK__COOLDOWN_MINUTES", "١٥"),
                                                 ("ROBSON_NOTIFY__RETRIES", "２")])
def test_a_unicode_digit_in_the_environment_is_refused_naming_the_variable(robson, db_path, seeded, variable, value):
    refused(robson, db_path, "config", "check", env={variable: value}, fragments=[f"environment {variable}"])


STRATEGY = "name: mine\ntimeframe: 15m\nrisk_percent: 1\n"


def write_strategy(folder: Path, text: str, name: str = "mine.yaml") -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_bytes(text.encode("utf-8") if isinstance(text, str) else text)


@pytest.mark.parametrize(("text", "field"), [
    ("name: mine\nrisk_percent: '٠.٥'\n", "risk_percent"),
    (STRATEGY + "stop:\n  method: fixed_percent\n  percent: '٢'\n", "stop.percent"),
    (STRATEGY + "target:\n  r_multiple: '２'\n", "target.r_multiple"),
    (STRATEGY + "time_exit:\n  max_age: '٩٠m'\n", "time_exit.max_age"),
    (STRATEGY + "limits:\n  daily_loss_percent: '١'\n", "limits.daily_loss_percent"),
], ids=["risk", "stop-percent", "target", "max-age", "limits"])
@pytest.mark.parametrize("command", [["config", "check"], ["strategy", "list"],
                                     [*AS_OF, "plan", "buy", "BTCUSDT", "--strategy", "mine"]],
                         ids=["check", "strategy-list", "plan"])
def test_a_unicode_digit_in_a_strategy_file_is_refused_naming_file_and_field(robson, db_path, seeded, tmp_path, text,
                                                                            field, command):
    write_strategy(tmp_path / "mine", text)
    stderr = refused(robson, db_path, *command, env={"ROBSON_STRATEGIES_DIR": str(tmp_path / "mine")},
                     fragments=["mine.yaml", f"field '{field}'"])
    assert "0-9" in stderr or "must be a number" in stderr or "duration" in stderr


@pytest.mark.parametrize(("name", "content"), [
    ("a.csv", "1626562800000,31700,31800.5,31650.1,31750.25,١٢.٥\n"),
    ("b.csv", "１626562800000,31700,31800.5,31650.1,31750.25,12.5\n"),
    ("c.json", json.dumps([[1626562800000, "٣١٧٠٠", 31800.5, 31650.1, 31750.25, 12.5]])),
], ids=["csv-volume", "csv-time", "json-string-cell"])
def test_a_unicode_digit_in_an_imported_file_imports_nothing(robson, db_path, seeded, tmp_path, name, content):
    (tmp_path / name).write_text(content, encoding="utf-8")

    stderr = refused(robson, db_path, "data", "import", name, "--symbol", "BTCUSDT", "--timeframe", "1h")

    assert "digits 0-9" in stderr and count_rows(db_path, "candles") == 0


# --- files that are not UTF-8, nest without end, or repeat a key -------------------------------


NOT_UTF8 = {
    "latin-1": "capital: 1000  # café\n".encode("latin-1"),
    "utf-16": "capital: 1000\n".encode("utf-16"),
    "binary": bytes(range(256)),
}


@pytest.mark.parametrize("content", NOT_UTF8.values(), ids=NOT_UTF8.keys())
def test_a_config_file_that_is_not_utf8_is_refused_naming_file_and_line(robson, db_path, seeded, tmp_path, content):
    (tmp_path / "c.yaml").write_bytes(content)
    refused(robson, db_path, "--config", "c.yaml", "config", "check", fragments=["c.yaml: line ", "not UTF-8 text"])


@pytest.mark.parametrize("content", NOT_UTF8.values(), ids=NOT_UTF8.keys())
def test_a_strategy_file_that_is_not_utf8_is_refused_naming_the_file(robson, db_path, seeded, tmp_path, content):
    write_strategy(tmp_path / "mine", content)
    refused(robson, db_path, "strategy", "list", env={"ROBSON_STRATEGIES_DIR": str(tmp_path / "mine")},
            fragments=["mine.yaml: line", "not UTF-8 text"])


@pytest.mark.parametrize("content", [b"\xff\xfe" + "1,2,3".encode("utf-16-le"), b"\x80\x81\x82,1,2\n"],
                         ids=["utf-16", "latin-1"])
def test_an_import_file_that_is_not_utf8_imports_nothing(robson, db_path, seeded, tmp_path, content):
    (tmp_path / "x.csv").write_bytes(content)
    refused(robson, db_path, "data", "import", "x.csv", "--symbol", "BTCUSDT", "--timeframe", "1h",
            fragments=["x.csv is not a text file"])


DEEP = {
    "flow-lists": "capital: " + "[" * 100_000 + "]" * 100_000 + "\n",
    "flow-maps": "capital: " + "{a: " * 5_000 + "1" + "}" * 5_000 + "\n",
    "block-maps": "".join("  " * depth + f"k{depth}:\n" for depth in range(200)) + "  " * 200 + "x: 1\n",
    "block-lists": "capital:\n" + "".join("  " * depth + "-\n" for depth in range(1, 200)) + "  " * 200 + "- 1\n",
}


@pytest.mark.parametrize("text", DEEP.values(), ids=DEEP.keys())
def test_a_deeply_nested_config_file_is_refused_naming_the_line(robson, db_path, seeded, tmp_path, text):
    (tmp_path / "c.yaml").write_text(text)
    refused(robson, db_path, "--config", "c.yaml", "config", "check", fragments=["c.yaml: line", "nested more than"])


DEEP_SCAN = {
    "flow-lists": "scan: " + "[" * 100_000 + "]" * 100_000 + "\n",
    "flow-maps": "scan: " + "{a: " * 5_000 + "1" + "}" * 5_000 + "\n",
    "block-maps": "scan:\n" + "".join("  " * depth + f"k{depth}:\n" for depth in range(1, 200)) + "  " * 200 + "x: 1\n",
    "block-lists": "scan:\n" + "".join("  " * depth + "-\n" for depth in range(1, 200)) + "  " * 200 + "- 1\n",
}


@pytest.mark.parametrize("text", DEEP_SCAN.values(), ids=DEEP_SCAN.keys())
def test_a_deeply_nested_strategy_file_is_refused_naming_the_line(robson, db_path, seeded, tmp_path, text):
    write_strategy(tmp_path / "mine", "name: mine\n" + text)
    refused(robson, db_path, "strategy", "list", env={"ROBSON_STRATEGIES_DIR": str(tmp_path / "mine")},
            fragments=["mine.yaml: line", "nested more than"])


@pytest.mark.parametrize("depth", [100_000, 900], ids=["past-the-stack", "just-under-the-stack"])
def test_a_deeply_nested_json_import_imports_nothing_in_one_line(robson, db_path, seeded, tmp_path, depth):
    (tmp_path / "x.json").write_text("[" + "[" * depth + "]" * depth + "]")

    stderr = refused(robson, db_path, "data", "import", "x.json", "--symbol", "BTCUSDT", "--timeframe", "1h")

    assert len(stderr) < 1000


@pytest.mark.parametrize(("text", "line", "key"), [
    ("execution:\n  live_trading_enabled: true\ncapital: 500\nexecution:\n  validation_max_age_minutes: 5\n",
     4, "execution"),
    ("capital: 500\ncapital: 600\n", 2, "capital"),
    ("risk:\n  cooldown_minutes: 5\n  cooldown_minutes: 50\n", 3, "cooldown_minutes"),
    ("paper:\n  balances: {USDT: 5, USDT: 6}\n", 2, "USDT"),
], ids=["two-sections", "top-level", "nested", "flow-mapping"])
def test_a_repeated_key_in_the_config_is_refused_naming_file_and_line(robson, db_path, seeded, tmp_path, text, line,
                                                                     key):
    (tmp_path / "c.yaml").write_text(text)
    for command in (["config", "check"], [*AS_OF, "plan", "buy", "BTCUSDT"]):
        refused(robson, db_path, "--config", "c.yaml", *command,
                fragments=[f"c.yaml: line {line}: duplicate key '{key}'"])


@pytest.mark.parametrize(("text", "line", "key"), [
    (STRATEGY + "stop:\n  method: atr\nstop:\n  method: fixed_percent\n", 6, "stop"),
    (STRATEGY + "risk_percent: 2\n", 4, "risk_percent"),
    (STRATEGY + "stop:\n  method: atr\n  method: fixed_percent\n", 6, "method"),
], ids=["section", "field", "nested"])
def test_a_repeated_key_in_a_strategy_is_refused_naming_file_and_line(robson, db_path, seeded, tmp_path, text, line,
                                                                     key):
    write_strategy(tmp_path / "mine", text)
    refused(robson, db_path, "config", "check", env={"ROBSON_STRATEGIES_DIR": str(tmp_path / "mine")},
            fragments=[f"mine.yaml: line {line}: duplicate key '{key}'"])


def test_yaml_merge_keys_may_still_override_what_they_merge(robson, tmp_path):
    (tmp_path / "c.yaml").write_text("risk:\n  <<: {cooldown_minutes: 5}\n  cooldown_minutes: 30\n")

    doc = parsed(robson("--config", "c.yaml", "config", "show", "--json"))

    assert doc["settings"]["risk.cooldown_minutes"]["value"] == "30"


def test_a_control_character_in_a_config_file_is_one_error_line(robson, db_path, seeded, tmp_path):
    (tmp_path / "c.yaml").write_text("capital: 10\x0000\n")
    refused(robson, db_path, "--config", "c.yaml", "config", "check", fragments=["c.yaml: not valid YAML"])


# --- numbers and dates at the edges ------------------------------------------------------------


@pytest.mark.parametrize("when", ["9999-12-31", "9999-12-31T23:59", "2999-01-01T00:00", "2100-06-01"])
@pytest.mark.parametrize("command", [["plan", "buy", "BTCUSDT"], ["monitor", "--once"], ["plan", "list"],
                                     ["scan", "--strategy", "rescue-forces", "--symbols", "BTCUSDT"]],
                         ids=["plan", "monitor", "list", "scan"])
def test_a_replay_time_in_the_future_is_refused(robson, db_path, seeded, when, command):
    refused(robson, db_path, "--as-of", when, *command, fragments=["field 'as_of': must not be in the future"])


def test_a_replay_time_in_the_future_from_the_environment_is_refused_too(robson, db_path, seeded):
    refused(robson, db_path, "plan", "list", env={"ROBSON_AS_OF": "9999-12-31"},
            fragments=["environment ROBSON_AS_OF", "in the future"])


HUGE = ["99999999999999999999", str(10**400), "1e30", "12.5"]


@pytest.mark.parametrize("value", HUGE)
@pytest.mark.parametrize("field", ["risk.cooldown_minutes", "risk.max_data_age_minutes",
                                   "execution.validation_max_age_minutes", "risk.max_open_positions",
                                   "notify.retries", "binance.recv_window_ms", "binance.exchange_info_ttl_seconds"])
def test_an_enormous_whole_number_setting_is_refused_by_config_check(robson, db_path, seeded, tmp_path, field, value):
    section, name = field.split(".")
    (tmp_path / "c.yaml").write_text(f"{section}:\n  {name}: {value}\n")

    stderr = refused(robson, db_path, "--config", "c.yaml", "config", "check", fragments=[f"field '{field}'"])

    assert "must be at most" in stderr or "must be a whole number" in stderr
    assert len(stderr) < 500


@pytest.mark.parametrize(("text", "field"), [
    ("limits:\n  cooldown_minutes: 1000000000000000000000000000000\n", "limits.cooldown_minutes"),
    ("limits:\n  max_data_age_minutes: 99999999999999\n", "limits.max_data_age_minutes"),
    ("time_exit:\n  candles: 1000000000000000000000000000000\n", "time_exit.candles"),
    ("time_exit:\n  max_age: 99999999999w\n", "time_exit.max_age"),
    ("time_exit:\n  max_age: 9999999w\n", "time_exit.max_age"),
    ("stop:\n  method: atr\n  atr_period: 100000000000000000000\n", "stop.atr_period"),
], ids=["cooldown", "data-age", "candles", "max-age-overflow", "max-age-off-the-calendar", "atr-period"])
def test_an_enormous_number_in_a_strategy_is_refused_by_config_check(robson, db_path, seeded, tmp_path, text, field):
    write_strategy(tmp_path / "mine", STRATEGY + text)

    refused(robson, db_path, "config", "check", env={"ROBSON_STRATEGIES_DIR": str(tmp_path / "mine")},
            fragments=["mine.yaml", f"field '{field}'"])


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "1e-320", "0", "-5", "0.5",
                                   "86401", "1e5", "abc", ""])
def test_a_monitor_interval_outside_1_to_86400_seconds_is_refused_before_any_tick(robson, db_path, seeded, value):
    refused(robson, db_path, *AS_OF, "monitor", "--interval", value, fragments=["--interval"])


# --- a huge ID ----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["plan", "show"], ["plan", "cancel"], ["validate"], ["execute"],
                                     ["operation", "status"], ["operation", "show"], ["operation", "close"],
                                     ["operation", "modify", "--stop", "1"], ["signals", "show"]],
                         ids=lambda c: " ".join(c[:2]))
@pytest.mark.parametrize("length", [100_000, 41])
def test_an_id_longer_than_any_id_is_not_found(robson, db_path, seeded, command, length):
    huge = "pl-" + "7" * length if command[0] in ("plan", "validate", "execute") else "a" * length

    stderr = refused(robson, db_path, *command[:2], huge, *command[2:], fragments=["no ", "matches"])

    assert len(stderr) < 300


# --- init --path ---------------------------------------------------------------------------------


def test_init_into_a_folder_that_does_not_exist_creates_it(robson, tmp_path):
    target = tmp_path / "new" / "dir" / "robson.yaml"

    result = robson("init", "--path", str(target), "--json")

    assert parsed(result) == {"written": str(target)}
    assert target.is_file()


@pytest.mark.parametrize("case", ["is-a-folder", "parent-is-a-file", "grandparent-is-a-file", "full-disk",
                                  "read-only-file"])
def test_init_where_it_cannot_write_is_one_error_line(robson, tmp_path, case):
    (tmp_path / "folder").mkdir()
    (tmp_path / "plain").write_text("x")
    target = {"is-a-folder": tmp_path / "folder", "parent-is-a-file": tmp_path / "plain" / "c.yaml",
              "grandparent-is-a-file": tmp_path / "plain" / "d" / "c.yaml", "full-disk": Path("/dev/full"),
              "read-only-file": tmp_path / "ro.yaml"}[case]
    if case == "full-disk" and not target.exists():
        pytest.skip("no /dev/full here")
    if case == "read-only-file":
        if os.geteuid() == 0:
            pytest.skip("root writes read-only files")
        target.write_text("")
        target.chmod(0o444)

    result = robson("init", "--path", str(target), "--force")

    assert_user_error(result, 2, str(target) if case != "is-a-folder" else "is a folder")
    assert (tmp_path / "plain").read_text() == "x"


# --- settings that pass config check but fail later ----------------------------------------------


LATER_FAILURES = {
    "percent-stop-100": (None, "stop:\n  method: fixed_percent\n  percent: 100\n", "stop"),
    "percent-stop-250": (None, "stop:\n  method: fixed_percent\n  percent: 250\n", "stop"),
    "atr-multiplier-0": (None, "stop:\n  method: atr\n  atr_multiplier: 0\n", "stop.atr_multiplier"),
    "webhook-space": ("notify:\n  webhook_url: 'https://hooks.example.com/T0 B0'\n", None, "notify.webhook_url"),
    "webhook-tab": ("notify:\n  webhook_url: \"https://hooks.example.com/T0\\tB0\"\n", None, "notify.webhook_url"),
    "webhook-bad-port": ("notify:\n  webhook_url: 'https://hooks.example.com:99999/x'\n", None, "notify.webhook_url"),
    "telegram-space": ("notify:\n  telegram_base_url: 'https://api.telegram .org'\n", None, "notify.telegram_base_url"),
    "binance-url-ftp": ("binance:\n  base_url: 'ftp://example.com'\n", None, "binance.base_url"),
    "fees-1000": ("fees:\n  taker_percent: 1000\n", None, "fees.taker_percent"),
    "slippage-1000": ("paper:\n  slippage_percent: 1000\n", None, "paper.slippage_percent"),
    "slippage-100": ("paper:\n  slippage_percent: 100\n", None, "paper.slippage_percent"),
    "stop-limit-offset-100": ("execution:\n  stop_limit_offset_percent: 100\n", None,
                              "execution.stop_limit_offset_percent"),
    "max-stop-distance-100": ("risk:\n  max_stop_distance_percent: 100\n", None, "risk.max_stop_distance_percent"),
    "timeout-huge": ("binance:\n  timeout_seconds: 1e14\n", None, "binance.timeout_seconds"),
    "unknown-default-strategy": ("default_strategy: nope\n", None, "default_strategy"),
    "unknown-scan-strategy": ("scan:\n  strategies: [rescue-forces, nope]\n", None, "scan.strategies"),
}


@pytest.mark.parametrize(("config", "strategy", "field"), LATER_FAILURES.values(), ids=LATER_FAILURES.keys())
def test_config_check_refuses_what_the_commands_would_refuse_later(robson, db_path, seeded, tmp_path, config, strategy,
                                                                  field):
    (tmp_path / "c.yaml").write_text(config or "")
    env = {"ROBSON_BINANCE__BASE_URL": None}  # the fixture's loopback URL would override the file's
    if strategy is not None:
        write_strategy(tmp_path / "mine", STRATEGY + strategy)
        env["ROBSON_STRATEGIES_DIR"] = str(tmp_path / "mine")

    stderr = refused(robson, db_path, "--config", "c.yaml", "config", "check", env=env, fragments=[f"field '{field}'"])

    assert ("mine.yaml" if strategy else "c.yaml") in stderr
    assert "T0 B0" not in stderr  # a webhook URL is shown redacted


def test_the_example_config_passes_config_check(robson):
    example = Path(__file__).resolve().parents[2] / ".robson.example.yaml"

    assert parsed(robson("--config", str(example), "config", "check", "--json"))["ok"] is True


# --- a refused operation modify writes nothing -----------------------------------------------------


@pytest.mark.parametrize("args", [["--stop", "abc"], ["--target", "-1"], [], ["--stop", "١"]],
                         ids=["bad-stop", "bad-target", "nothing-asked", "unicode"])
def test_a_modify_refused_for_its_input_writes_nothing(robson, db_path, seeded, args):
    refused(robson, db_path, "--as-of", "2021-06-09T07:00", "operation", "modify", seeded, *args)


@pytest.mark.parametrize(("args", "code"), [(["--stop", "40000"], 2), (["--stop", "20000"], 3),
                                            (["--target", "1"], 2)], ids=["stop-above-price", "loosen", "target-below"])
def test_a_modify_refused_after_the_catch_up_writes_nothing_either(robson, db_path, seeded, args, code):
    before = dump_database(db_path)

    result = robson("--as-of", "2021-06-09T07:00", "operation", "modify", seeded, *args)

    assert_user_error(result, code)
    assert dump_database(db_path) == before
