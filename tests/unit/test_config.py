"""Configuration precedence and errors: flags > environment > file > defaults."""

import os
from decimal import Decimal as D

import pytest

from robson.config import api_keys, describe_settings, load_settings, parse_time
from robson.errors import ConfigError


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


def write(tmp_path, text):
    path = tmp_path / "robson.yaml"
    path.write_text(text)
    return str(path)


def test_defaults_are_the_spec_numbers():
    s = load_settings(env={})
    limits = s.risk_limits()
    assert (limits.daily_loss_percent, limits.monthly_drawdown_percent) == (D("2"), D("4"))
    assert (limits.max_open_positions, limits.max_positions_per_symbol) == (5, 2)
    assert limits.max_total_exposure_percent == D("80")
    assert (limits.max_data_age_minutes, limits.cooldown_minutes) == (5, 15)
    assert s["paper.balances"] == {"USDT": D("1000")}
    assert s.fee_rate == D("0.001") and s.slippage_rate == D("0.0005")
    assert s["execution.live_trading_enabled"] is False


def test_precedence_flag_over_env_over_file_over_default(tmp_path):
    path = write(tmp_path, "capital: 500\nrisk:\n  max_open_positions: 3\n")
    s = load_settings(config_path=path, env={"ROBSON_CAPITAL": "700"})
    assert s["capital"] == D("700") and s.sources["capital"] == "environment ROBSON_CAPITAL"
    assert s["risk.max_open_positions"] == 3 and s.sources["risk.max_open_positions"] == path
    s = load_settings(config_path=path, env={"ROBSON_CAPITAL": "700"}, overrides={"capital": "900"})
    assert s["capital"] == D("900") and s.sources["capital"] == "command line"


def test_generic_environment_names_reach_nested_settings():
    s = load_settings(env={"ROBSON_RISK__COOLDOWN_MINUTES": "30"})
    assert s["risk.cooldown_minutes"] == 30


def test_local_robson_yaml_is_found_in_the_working_directory(tmp_path):
    (tmp_path / ".robson.yaml").write_text("capital: 123\n")
    s = load_settings(env={})
    assert s["capital"] == D("123") and s.config_file.name == ".robson.yaml"


@pytest.mark.parametrize(("text", "needle"), [
    ("capital: abc\n", "field 'capital': must be a number"),
    ("capital: -5\n", "field 'capital': must be greater than 0"),
    ("risk:\n  max_open_positions: many\n", "field 'risk.max_open_positions': must be a whole number"),
    ("colour: red\n", "field 'colour': unknown setting"),
    ("market: kraken\n", "field 'market': must be 'sample' or 'binance'"),
    ("capital: [1\n", "not valid YAML at line"),
    ("- a list\n", "must be a mapping"),
    ("risk:\n  max_risk_percent: 5\n", "hard ceiling"),
    ("as_of: yesterday\n", "field 'as_of': must be an ISO time"),
])
def test_bad_config_names_file_field_and_problem(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(config_path=path, env={})
    assert needle in str(caught.value)
    assert str(caught.value).startswith(path)


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ConfigError, match="environment ROBSON_CAPITAL: field 'capital'"):
        load_settings(env={"ROBSON_CAPITAL": "NaN"})
    with pytest.raises(ConfigError, match="ROBSON_NOPE"):
        load_settings(env={"ROBSON_NOPE": "1"})


def test_missing_config_file_is_an_error():
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config_path="/nonexistent/robson.yaml", env={})


def test_as_of_accepts_iso_times_and_treats_naive_as_utc():
    assert parse_time("2021-06-01T12:00").isoformat() == "2021-06-01T12:00:00+00:00"
    assert parse_time("2021-06-01 12:00Z").isoformat() == "2021-06-01T12:00:00+00:00"


def test_api_keys_come_from_the_environment_and_are_never_shown():
    s = load_settings(env={})
    keys = api_keys(s, env={"BINANCE_API_KEY": "canary-key", "BINANCE_API_SECRET": "canary-secret"})
    assert keys.key == "canary-key"
    assert "canary" not in repr(keys) and "canary" not in str(keys)
    rows = describe_settings(s, env={"BINANCE_API_KEY": "canary-key", "BINANCE_API_SECRET": "canary-secret"})
    assert "canary" not in str(rows)


def test_key_file_readable_by_others_is_refused(tmp_path):
    key_file = tmp_path / "keys"
    key_file.write_text("API_KEY=k\nAPI_SECRET=s\n")
    os.chmod(key_file, 0o644)
    s = load_settings(env={"ROBSON_BINANCE__KEY_FILE": str(key_file)})
    with pytest.raises(ConfigError, match="chmod 600"):
        api_keys(s, env={})
    os.chmod(key_file, 0o600)
    assert api_keys(s, env={}).secret == "s"
