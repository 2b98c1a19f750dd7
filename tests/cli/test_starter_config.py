"""The starter config: `robson init` writes the documented example itself, every setting once, with its default."""

from __future__ import annotations

from pathlib import Path

import yaml

from robson.config import FIELDS, _read_file, example_config_path, load_settings
from tests.cli.conftest import parsed

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / ".robson.example.yaml"


def test_init_writes_exactly_the_documented_example(robson, tmp_path):
    parsed(robson("init", "--json"))

    assert (tmp_path / ".robson.yaml").read_bytes() == EXAMPLE.read_bytes()


def test_init_takes_the_example_from_the_one_file_the_wheel_also_ships():
    pyproject = (REPO / "pyproject.toml").read_text()

    assert example_config_path().resolve() == EXAMPLE.resolve()  # a checkout; an install has the shipped copy
    assert '".robson.example.yaml" = "robson/robson.example.yaml"' in pyproject


def test_the_example_has_each_section_once_and_no_key_twice():
    sections = [line.rstrip(":") for line in EXAMPLE.read_text().splitlines() if line.endswith(":")
                and not line.startswith((" ", "#"))]

    assert len(sections) == len(set(sections)), sections
    assert yaml.safe_load(EXAMPLE.read_text())  # and the strict loader robson uses reads it (no duplicate key):
    assert _read_file(EXAMPLE)


def test_the_example_sets_every_setting_to_its_default():
    flat = _read_file(EXAMPLE)
    settings = load_settings(config_path=str(EXAMPLE), env={})

    assert sorted(flat) == sorted(f.name for f in FIELDS)
    assert {f.name: settings.values[f.name] for f in FIELDS} == {f.name: f.default for f in FIELDS}


def test_an_edit_to_the_execution_section_of_the_init_file_takes_effect(robson, tmp_path):
    parsed(robson("init", "--json"))
    path = tmp_path / ".robson.yaml"
    path.write_text(path.read_text().replace("validation_max_age_minutes: 15", "validation_max_age_minutes: 7")
                    .replace("live_trading_enabled: false", "live_trading_enabled: true"))

    settings = parsed(robson("config", "show", "--json"))["settings"]

    assert settings["execution.validation_max_age_minutes"] == {"value": "7", "source": str(path)}
    assert settings["execution.live_trading_enabled"] == {"value": "true", "source": str(path)}
