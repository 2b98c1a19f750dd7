"""The import budget: `robson --help` imports no command, and a command imports only its own module.

Counted in a fresh interpreter (sys.modules after the run), not timed: a slow machine cannot fail it.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from robson.cli.app import COMMANDS

HEAVY = ("pandas", "pandas_ta", "numba", "numpy", "binance", "sqlalchemy", "sqlmodel")
# All of robson that `robson --help` needs: the console script, the root app and the errors its boundary catches.
HELP_NEEDS = {"robson", "robson.cli", "robson.cli.entry", "robson.cli.app", "robson.errors"}
COMMAND_MODULE = re.compile(r"robson\.cli\.\w+_cmd")

RUN_ROBSON = """
import json, sys
import robson.cli.entry as entry
entry.finish = lambda code: print(json.dumps(sorted(sys.modules)))  # instead of the process's fast exit
sys.argv = ["robson", *sys.argv[1:]]
entry.main()
"""


def modules_imported_by(tmp_path: Path, *args: str) -> set[str]:
    """Run `robson *args` in a fresh interpreter and return the modules it imported."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(("ROBSON_", "BINANCE_"))}
    env |= {"ROBSON_DB": str(tmp_path / "r.db"), "XDG_CONFIG_HOME": str(tmp_path), "XDG_DATA_HOME": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", RUN_ROBSON, *args], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=60, check=True)
    return set(json.loads(result.stdout.splitlines()[-1]))


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


def command_modules(modules: set[str]) -> set[str]:
    return {m for m in modules if COMMAND_MODULE.fullmatch(m)}


def test_help_imports_no_command_and_nothing_heavy(tmp_path):
    modules = modules_imported_by(tmp_path, "--help")

    assert {m for m in modules if m.split(".")[0] == "robson"} == HELP_NEEDS
    assert heavy(modules) == []


def test_plan_help_imports_only_the_plan_module(tmp_path):
    modules = modules_imported_by(tmp_path, "plan", "--help")

    assert command_modules(modules) == {"robson.cli.plan_cmd"}
    assert heavy(modules) == []


@pytest.mark.parametrize("name", list(COMMANDS))
def test_each_command_help_imports_only_its_own_module(tmp_path, name):
    modules = modules_imported_by(tmp_path, name, "--help")

    assert command_modules(modules) == {f"robson.cli.{COMMANDS[name][0]}"}
    assert heavy(modules) == []
