"""Help, version, configuration commands, init and strategies."""

import pytest

from robson import __version__
from tests import databases
from tests.cli.conftest import CANARY_KEY, CANARY_SECRET, assert_user_error, floats_in, parsed

COMMANDS = [
    [], ["plan", "buy"], ["plan", "sell"], ["plan", "list"], ["plan", "show"], ["plan", "cancel"],
    ["validate"], ["execute"], ["operation", "status"], ["operation", "list"], ["operation", "close"],
    ["strategy", "list"], ["strategy", "show"], ["config", "show"], ["config", "check"], ["init"],
    ["data", "import"], ["data", "list"],
]
GROUPS = [["plan"], ["operation"], ["strategy"], ["config"], ["data"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "robson")
def test_every_command_help_exits_0_with_an_example(robson, db_path, command):
    result = robson(*command, "--help", env=databases.never_opened_env(db_path))

    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    assert "Example" in result.stdout
    assert "Usage:" in result.stdout
    assert not databases.file_made(db_path)  # help never opens the database


@pytest.mark.parametrize("group", GROUPS, ids=lambda c: c[0])
def test_every_group_help_has_an_example_too(robson, group):
    result = robson(*group, "--help")

    assert result.exit_code == 0
    assert "Example" in result.stdout


@pytest.mark.parametrize("group", GROUPS, ids=lambda c: c[0])
def test_every_group_help_exits_0_listing_its_commands(robson, group):
    result = robson(*group, "--help")

    assert result.exit_code == 0 and result.stderr == ""
    assert "Commands" in result.stdout


def test_version_prints_the_package_version(robson):
    result = robson("--version")

    assert result.exit_code == 0 and result.stderr == ""
    assert result.stdout.strip() == f"robson {__version__}"


def test_config_show_redacts_the_api_keys(robson):
    result = robson("config", "show", "--json", env={"BINANCE_API_KEY": CANARY_KEY, "BINANCE_API_SECRET": CANARY_SECRET})

    doc = parsed(result)
    assert result.stderr == ""
    assert floats_in(doc) == []
    assert CANARY_KEY not in result.stdout and CANARY_SECRET not in result.stdout
    assert "set (environment)" in doc["settings"]["binance.api_key"]["value"]
    assert doc["config_file"] is None
    assert doc["settings"]["capital"] == {"value": "1000", "source": "default"}
    assert doc["settings"]["database"]["source"] == "environment ROBSON_DB"


def test_config_show_says_when_no_keys_are_set(robson):
    doc = parsed(robson("config", "show", "--json"))

    assert doc["settings"]["binance.api_key"]["value"] == "not set"


def test_config_show_names_where_each_value_came_from(robson, tmp_path):
    (tmp_path / "my.yaml").write_text("capital: 250\nrisk:\n  max_open_positions: 3\n")

    doc = parsed(robson("--config", "my.yaml", "config", "show", "--json", env={"ROBSON_CAPITAL": "500"}))

    assert doc["config_file"] == "my.yaml"
    assert doc["settings"]["capital"] == {"value": "500", "source": "environment ROBSON_CAPITAL"}
    assert doc["settings"]["risk.max_open_positions"] == {"value": "3", "source": "my.yaml"}


def test_config_check_refuses_a_bad_config_with_exit_2(robson, tmp_path):
    (tmp_path / "bad.yaml").write_text("risk:\n  max_open_positions: lots\n")

    result = robson("--config", "bad.yaml", "config", "check")

    assert_user_error(result, 2, "bad.yaml: field 'risk.max_open_positions': must be a whole number")
    assert result.stdout == ""


def test_init_writes_a_config_that_config_check_accepts(robson, tmp_path):
    result = robson("init", "--json")

    assert parsed(result) == {"written": ".robson.yaml"}
    assert result.stderr == ""
    text = (tmp_path / ".robson.yaml").read_text()
    assert "capital: 1000" in text and "live_trading_enabled: false" in text
    checked = robson("config", "check", "--json")
    doc = parsed(checked)
    assert doc["ok"] is True and doc["config_file"].endswith(".robson.yaml")
    assert len(doc["strategies"]) == 6
    assert parsed(robson("config", "show", "--json"))["settings"]["capital"]["source"].endswith(".robson.yaml")


def test_init_refuses_to_overwrite_without_force(robson, tmp_path):
    parsed(robson("init", "--json"))
    (tmp_path / ".robson.yaml").write_text("capital: 42\n")

    result = robson("init")

    assert_user_error(result, 2, ".robson.yaml exists already", "--force")
    assert (tmp_path / ".robson.yaml").read_text() == "capital: 42\n"
    forced = robson("init", "--force")
    assert forced.exit_code == 0 and "capital: 1000" in (tmp_path / ".robson.yaml").read_text()


def test_strategy_list_has_the_six_bundled_strategies(robson):
    result = robson("strategy", "list", "--json")

    doc = parsed(result)
    assert result.stderr == ""
    by_name = {s["name"]: s for s in doc["strategies"]}
    assert sorted(by_name) == ["all-in", "bounce-back", "ma-cross-5m", "mean-reversion-ma99", "rescue-forces",
                               "smooth-sailing"]
    all_in = by_name["all-in"]
    assert (all_in["title"], all_in["timeframe"], all_in["risk_percent"]) == ("All In", "15m", "1")
    assert (all_in["stop"]["kind"], all_in["stop"]["level"], all_in["stop"]["buffer_percent"]) == ("technical", 2, "0.1")
    assert by_name["rescue-forces"]["entry"] == "auto"
    assert by_name["smooth-sailing"]["risk_percent"] == "0.5"


def test_strategy_list_json_has_no_floats(robson):
    assert floats_in(parsed(robson("strategy", "list", "--json"))) == []


def test_strategy_show_prints_one_strategy(robson):
    doc = parsed(robson("strategy", "show", "all-in", "--json"))

    assert doc["name"] == "all-in"
    assert doc["target_r_multiple"] == "2"


def test_strategy_show_of_an_unknown_name_exits_2(robson):
    result = robson("strategy", "show", "nope")

    assert_user_error(result, 2, "unknown strategy 'nope'", "all-in")
    assert result.stdout == ""
