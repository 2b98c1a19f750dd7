"""One broken strategy file stops only its own strategy; a user strategy replacing a bundled one is announced."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import assert_user_error, parsed

MINE = """name: mine
timeframe: 15m
risk_percent: 1
stop: {method: fixed_percent, percent: 2}
target: {r_multiple: 2}
trailing: hand_span
"""


def open_position(robson, env, *args) -> str:
    intent = parsed(robson("--as-of", "2021-06-01T12:00", "plan", "buy", "BTCUSDT", "0.001", *args, "--json",
                           env=env))
    parsed(robson("--as-of", "2021-06-01T12:00", "validate", intent["id"], "--json", env=env))
    return parsed(robson("--as-of", "2021-06-01T12:00", "execute", intent["id"], "--json", env=env))["operation"]["id"]


def test_a_broken_user_strategy_file_leaves_every_other_operation_watched(robson, tmp_path: Path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "mine.yaml").write_text(MINE, encoding="utf-8")
    env = {"ROBSON_STRATEGIES_DIR": str(folder)}
    healthy = open_position(robson, env, "--stop", "36000", "--target", "37500")  # All In, bundled
    orphaned = open_position(robson, env, "--strategy", "mine")  # stop 2 % under its fill
    (folder / "mine.yaml").write_text(MINE.replace("risk_percent: 1", "risk_percent: lots"), encoding="utf-8")

    result = robson("--as-of", "2021-06-01T13:30", "monitor", "--once", "--json", env=env)

    doc = json.loads(result.stdout)
    assert result.exit_code == 1  # an operation has a problem: cron sees it
    closed = {c["id"]: c["status"] for c in doc["operations"]}
    assert closed[healthy] == "CLOSED"  # its stop at 36000 was reached at 13:05: the monitor still ran it
    assert orphaned in closed  # walked too: its stop and target are still watched
    (problem,) = doc["errors"]
    assert problem["operation_id"] == orphaned
    assert "mine.yaml: field 'risk_percent'" in problem["message"]
    assert "its stop and target are still watched" in problem["message"]


def test_scanning_every_strategy_skips_a_broken_file_and_says_so(robson, tmp_path: Path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "broken.yaml").write_text("name: broken\nscan: [oops]\n", encoding="utf-8")

    result = robson("--as-of", "2021-06-22T01:15", "scan", "--symbols", "BTCUSDT", "--json",
                    env={"ROBSON_STRATEGIES_DIR": str(folder)})

    assert result.exit_code == 0
    assert "broken.yaml was not scanned" in result.stderr
    assert "rescue-forces" in parsed(result)["strategies"]


def test_naming_the_broken_strategy_is_an_error_that_names_its_file(robson, tmp_path: Path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "mine.yaml").write_text(MINE.replace("timeframe: 15m", "timeframe: 7m"), encoding="utf-8")

    result = robson("plan", "buy", "BTCUSDT", "--strategy", "mine", env={"ROBSON_STRATEGIES_DIR": str(folder)})

    assert_user_error(result, 2, "mine.yaml: field 'timeframe'")


def test_a_user_strategy_replacing_a_bundled_one_is_announced(robson, tmp_path: Path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "rescue.yaml").write_text(MINE.replace("name: mine", "name: rescue-forces"), encoding="utf-8")

    result = robson("strategy", "show", "rescue-forces", "--json", env={"ROBSON_STRATEGIES_DIR": str(folder)})

    assert result.exit_code == 0
    assert f"notice: {folder / 'rescue.yaml'} replaces the bundled strategy 'rescue-forces' (rescue-forces.yaml)" \
        in result.stderr
    assert parsed(result)["source"].endswith("rescue.yaml")
