"""Start-up and exit: what a command imports, that it closes the store, and how the console script exits.

Not timed (bench/bench_cli.py measures): the import budget is checked through sys.modules in a
subprocess, the store's closing through the process's open files and the WAL file.
"""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import parsed

ROBSON = Path(sys.executable).parent / "robson"
# Libraries a command that reads or writes the book has no use for: the market-data and exchange
# stack, and SQLAlchemy/SQLModel (needed only to create or migrate a database).
HEAVY = ("pandas", "pandas_ta", "numba", "numpy", "binance", "sqlalchemy", "sqlmodel", "pydantic")
IMPORTED = """
import json, sys
from robson.cli.app import app
try:
    app(sys.argv[1:], prog_name="robson")
except SystemExit as e:
    code = e.code
sys.stdout.flush()
print(json.dumps({"code": code, "modules": sorted({m.split(".")[0] for m in sys.modules})}), file=sys.stderr)
"""


def run_script(args: list[str], env: dict[str, str], *, script: Path = ROBSON) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(script), *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def env(tmp_path: Path, robson) -> dict[str, str]:
    """The environment the `robson` fixture set up (temp database, no user config), for subprocesses."""
    return {**os.environ}


@pytest.fixture
def book(robson, db_path: Path) -> dict[str, str]:
    """A book with one planned intent, one validated, and one executed into an operation (in-process)."""
    ids = {}
    for name in ("planned", "validated", "executed"):
        ids[name] = parsed(robson("plan", "buy", "BTCUSDT", "--json"))["id"]
    for name in ("validated", "executed"):
        assert robson("validate", ids[name]).exit_code == 0
    assert robson("execute", ids["executed"]).exit_code == 0
    return ids


def imported_by(args: list[str], env: dict[str, str]) -> set[str]:
    done = subprocess.run([sys.executable, "-c", IMPORTED, *args], env=env, capture_output=True, text=True,
                          timeout=120)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    assert report["code"] in (0, None, 3), done.stderr  # ran to its own end (3: a validation that fails its guards)
    return set(report["modules"])


@pytest.mark.parametrize("command", [
    ["operation", "status", "--json"],
    ["operation", "list"],
    ["report"],
    ["plan", "list"],
    ["plan", "show", "{planned}"],
    ["plan", "buy", "BTCUSDT", "--json"],
    ["validate", "{planned}"],
    ["signals", "list"],
    ["config", "show"],
    ["backtest", "list"],
])
@pytest.mark.sqlite_only("a SQLite file is read through the standard library; PostgreSQL goes through SQLAlchemy")
def test_commands_on_the_book_import_no_market_data_exchange_or_orm_library(command, book, env):
    args = [part.format(**book) for part in command]

    heavy = imported_by(args, env) & set(HEAVY)

    assert not heavy, f"robson {' '.join(args)} imported {sorted(heavy)}"


@pytest.mark.sqlite_only("a new SQLite file, then the standard library's sqlite3")
def test_a_new_database_is_created_through_the_migrations_then_opened_without_them(robson, db_path, env):
    first = imported_by(["plan", "buy", "BTCUSDT", "--json"], env)
    second = imported_by(["plan", "list"], env)

    assert "sqlalchemy" in first  # the schema is created by the migrations, in SQLAlchemy Core
    assert "sqlalchemy" not in second
    assert db_path.is_file()


def test_the_console_script_prints_everything_and_exits_with_the_commands_code(book, env):
    listed = run_script(["operation", "status", "--json"], env)
    missing = run_script(["plan", "show", "pl-ffffffff", "--json"], env)
    usage = run_script(["plan", "buy"], env)

    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)["operations"]) == 1
    assert (missing.returncode, missing.stderr) == (2, "Error: no intent matches 'pl-ffffffff'\n")
    assert json.loads(missing.stdout)["error"]["code"] == 2
    assert usage.returncode == 2 and "Missing argument" in usage.stderr


@pytest.mark.sqlite_only("SQLite's WAL file")
def test_the_console_script_leaves_the_database_checkpointed_with_no_wal_file(robson, db_path, env):
    done = run_script(["plan", "buy", "BTCUSDT", "--json"], env)

    assert done.returncode == 0, done.stderr
    assert db_path.is_file()
    assert not Path(f"{db_path}-wal").exists()  # the store was closed: SQLite folded the WAL into the file


def test_the_console_script_output_survives_a_reader_that_leaves(book, env):
    # `robson ... | head -c 1`: the pipe closes early; the command still ends with its own exit code.
    reader = subprocess.Popen([str(ROBSON), "operation", "status", "--json"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    assert reader.stdout is not None and reader.stdout.read(1) == b"{"
    reader.stdout.close()

    assert reader.wait(timeout=60) == 0


def open_database_files(db_path: Path) -> list[str]:
    folder = Path("/proc/self/fd")
    found = []
    for fd in folder.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith(str(db_path)):
            found.append(target)
    return found


@pytest.mark.sqlite_only("open SQLite files; PostgreSQL counts the server's connections in test_several_hosts")
@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to list open files")
def test_in_process_commands_close_every_connection_they_open(robson, db_path):
    for _ in range(5):
        assert robson("plan", "buy", "BTCUSDT", "--json").exit_code == 0
        assert robson("operation", "status", "--json").exit_code == 0

    assert open_database_files(db_path) == []


def test_the_monitor_loop_turns_the_garbage_collector_back_on(robson, monkeypatch):
    from robson.cli import monitor_cmd

    monkeypatch.setattr(monitor_cmd, "wait", lambda stop, seconds: signal.raise_signal(signal.SIGTERM))
    gc.disable()  # as the console script starts
    try:
        result = robson("monitor", "--interval", "30")
        enabled = gc.isenabled()
    finally:
        gc.unfreeze()
        gc.enable()

    assert result.exit_code == 0, result.stderr
    assert enabled


def test_the_console_script_runs_with_the_collector_off_and_python_m_robson_too(robson, env, tmp_path):
    probe = "import gc, sys; sys.argv = ['robson', 'strategy', 'list', '--json']; import robson.__main__"
    by_module = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    by_script = run_script(["strategy", "list", "--json"], env)

    assert by_module.returncode == 0, by_module.stderr
    assert by_module.stdout == by_script.stdout != ""
