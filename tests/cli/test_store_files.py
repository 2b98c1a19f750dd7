"""The database file: created on a fresh machine, refused when it is someone else's, named when a row is damaged
(damaged rows on PostgreSQL too)."""

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
from tests.cli.conftest import assert_user_error, dump_database, parsed

REPO = Path(__file__).resolve().parents[2]


# --- first run on a fresh machine ---------------------------------------------------------


@pytest.mark.sqlite_only("the default SQLite file in the user data folder")
def test_a_first_run_with_an_empty_home_creates_the_default_data_folder(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    work = tmp_path / "work"
    work.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "PYTHONPATH": str(REPO)}

    listed = subprocess.run([sys.executable, "-m", "robson", "plan", "list", "--json"], cwd=work, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    planned = subprocess.run([sys.executable, "-m", "robson", "plan", "buy", "BTCUSDT", "--json"], cwd=work, env=env,
                             capture_output=True, text=True, timeout=60, check=False)

    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == {"intents": []}
    assert planned.returncode == 0, planned.stderr
    database = home / ".local" / "share" / "robson" / "robson.db"
    assert database.is_file()
    with closing(sqlite3.connect(database)) as raw:
        assert raw.execute("SELECT id FROM intents").fetchall() == [(json.loads(planned.stdout)["id"],)]


@pytest.mark.sqlite_only("a SQLite file's folder")
@pytest.mark.parametrize("how", ["ROBSON_DB", "--db", "config"])
def test_a_database_in_a_folder_that_does_not_exist_yet_is_created_with_its_folder(robson, tmp_path, how):
    database = tmp_path / "new" / "dir" / "x.db"
    if how == "config":
        (tmp_path / "c.yaml").write_text(f"database: {database}\n")
        result = robson("--config", "c.yaml", "plan", "buy", "BTCUSDT", "--json", env={"ROBSON_DB": None})
    elif how == "--db":
        result = robson("--db", str(database), "plan", "buy", "BTCUSDT", "--json")
    else:
        result = robson("plan", "buy", "BTCUSDT", "--json", env={"ROBSON_DB": str(database)})

    intent = parsed(result)
    assert database.is_file()
    assert parsed(robson("--db", str(database), "plan", "list", "--json"))["intents"][0]["id"] == intent["id"]


# --- a database that belongs to another application ---------------------------------------


def _sqlite_file(path: Path, *statements: str) -> None:
    with closing(sqlite3.connect(path)) as raw:
        for statement in statements:
            raw.execute(statement)
        raw.commit()


FOREIGN_FILES = {
    "another-apps-tables": lambda p: _sqlite_file(p, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)",
                                                 "INSERT INTO users VALUES (1, 'ana')"),
    "its-own-schema-version": lambda p: _sqlite_file(p, "CREATE TABLE schema_version (version INTEGER)",
                                                    "INSERT INTO schema_version VALUES (7)",
                                                    "CREATE TABLE intents (x TEXT)"),
    "robson-names-without-robson-schema": lambda p: _sqlite_file(p, "CREATE TABLE intents (id TEXT)"),
    "a-text-file": lambda p: p.write_text("name,price\nbtc,30000\n" * 50),
    "a-binary-file": lambda p: p.write_bytes(bytes(range(256)) * 16),
}


@pytest.mark.sqlite_only("files of other applications (PostgreSQL: test_several_hosts)")
@pytest.mark.parametrize("make", FOREIGN_FILES.values(), ids=FOREIGN_FILES.keys())
@pytest.mark.parametrize("command", [["plan", "list"], ["plan", "buy", "BTCUSDT"], ["monitor", "--once"]],
                         ids=["plan-list", "plan-buy", "monitor"])
def test_a_database_of_another_application_is_refused_and_left_byte_for_byte_as_it_was(robson, tmp_path, make,
                                                                                      command):
    other = tmp_path / "other.db"
    make(other)
    before = other.read_bytes()

    result = robson("--db", str(other), *command)

    assert_user_error(result, 2, f"database file {other}", "is not a robson database")
    assert other.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("other.db")) == ["other.db"]  # no -wal


@pytest.mark.sqlite_only("an empty SQLite file")
def test_an_empty_file_becomes_a_robson_database(robson, tmp_path):
    empty = tmp_path / "empty.db"
    empty.touch()

    assert parsed(robson("--db", str(empty), "plan", "list", "--json")) == {"intents": []}


# --- damaged rows ---------------------------------------------------------------------------


@pytest.fixture
def executed(robson, db_path):
    """A database with an executed dry-run (intent, operation, orders, audit, balances) and a closed operation."""
    as_of = ["--as-of", "2021-06-09T05:45"]
    ids = []
    for _ in range(2):
        intent = parsed(robson(*as_of, "plan", "buy", "BTCUSDT", "--strategy", "rescue-forces", "--json"))["id"]
        parsed(robson(*as_of, "validate", intent, "--json"))
        ids.append(parsed(robson(*as_of, "execute", intent, "--json"))["operation"]["id"])
        if len(ids) == 1:
            parsed(robson(*as_of, "operation", "close", ids[0], "--json"))
    return ids


DAMAGE = [
    ("intents", "capital", "'abc'", ["plan", "list"], "column capital: 'abc' is not a number"),
    ("intents", "details", "'{not json'", ["plan", "show", "pl-"], "column details: '{not json' is not valid JSON"),
    ("intents", "validation", "'[1, 2]'", ["plan", "list", "--json"], "column validation: '[1, 2]' is not a JSON object"),
    ("intents", "validation", """'{"verdict": "PASS"}'""", ["plan", "show", "pl-"],
     """column validation: '{"verdict": "PASS"}' is not a validation report"""),
    ("intents", "validation", """'{"verdict": "PASS", "results": [{"guard": 1}]}'""", ["execute", "pl-"],
     "is not a validation report"),
    ("intents", "status", "'WEIRD'", ["plan", "list"], "column status: 'WEIRD' is not valid"),
    ("intents", "created_at", "'yesterday'", ["plan", "list"], "column created_at: 'yesterday' is not an ISO time"),
    ("operations", "entry_price", "'1e'", ["operation", "list"], "column entry_price: '1e' is not a number"),
    ("operations", "realized_pnl", "'NaN'", ["report"], "column realized_pnl: 'NaN' is not a finite number"),
    ("operations", "stop", "'x'", ["monitor", "--once"], "column stop: 'x' is not a number"),
    ("orders", "fee", "'lots'", ["plan", "show", "pl-"], "column fee: 'lots' is not a number"),
    ("audit_events", "data", "'{'", ["plan", "show", "pl-"], "column data: '{' is not valid JSON"),
    ("balances", "free", "'all of it'", ["plan", "buy", "BTCUSDT"], "column free: 'all of it' is not a number"),
]


@pytest.mark.parametrize(("table", "column", "value", "command", "problem"), DAMAGE,
                         ids=[f"{d[0]}.{d[1]}-{d[3][0]}" for d in DAMAGE])
def test_a_damaged_row_is_named_with_its_file_table_and_column_and_nothing_changes(
        robson, db_path, executed, table, column, value, command, problem):
    databases.execute(db_path, f'UPDATE "{table}" SET "{column}" = {value}')
    if command[-1] == "pl-":  # the intent whose rows were damaged
        first = databases.fetch(db_path, "SELECT id FROM intents ORDER BY created_at, id")[0]["id"]
        command = [*command[:-1], first]
    before = dump_database(db_path)

    result = robson("--as-of", "2021-06-09T06:00", *command)

    stderr = assert_user_error(result, 2, databases.where(db_path), f"{table} row", problem)
    assert "restore a backup" in stderr
    assert dump_database(db_path) == before
