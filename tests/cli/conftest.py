"""CLI tests: the `robson` app through Typer's CliRunner, isolated from the user's config and data."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from robson.cli.app import app
from tests import databases
from tests.databases import Target

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
CANARY_KEY = "CANARY-KEY-123"
CANARY_SECRET = "CANARY-SECRET-456"
CLOSED_PORT_URL = "http://127.0.0.1:9"  # the discard port: nothing listens there

Robson = Callable[..., Result]


@pytest.fixture
def db_path(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Target:
    """What ROBSON_DB names: a SQLite file in tmp_path, or a fresh PostgreSQL database's URL (--database postgresql)."""
    return tmp_path / "r.db" if backend == "sqlite" else request.getfixturevalue("robson_db")


@pytest.fixture
def robson(tmp_path: Path, db_path: Target, monkeypatch: pytest.MonkeyPatch) -> Robson:
    """Return robson(*args, input=None, env=None) running the app against a temp database and no user config."""
    for name in list(os.environ):
        if name.startswith(("ROBSON_", "BINANCE_")) or name in ("NO_COLOR", "FORCE_COLOR", "COLUMNS"):
            monkeypatch.delenv(name)
    (tmp_path / "xdg-config").mkdir()
    (tmp_path / "xdg-data").mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    monkeypatch.setenv("ROBSON_DB", str(db_path))
    # Nothing in these tests may reach a real exchange: Binance is a closed port on loopback here.
    monkeypatch.setenv("ROBSON_BINANCE__BASE_URL", CLOSED_PORT_URL)
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def run(*args: str, input: str | None = None, env: dict[str, str | None] | None = None) -> Result:
        # catch_exceptions=False: an exception escaping the error boundary fails the test loudly.
        return runner.invoke(app, [str(a) for a in args], input=input, env=env, catch_exceptions=False)

    return run


# --- helpers shared by the CLI test modules ---------------------------------------------


def parsed(result: Result) -> Any:
    """Parse stdout as exactly one JSON document, failing with both streams on error."""
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    return json.loads(result.stdout)


def floats_in(document: Any, path: str = "$") -> list[str]:
    """Return the JSON paths of every float in a parsed document."""
    if isinstance(document, float):
        return [path]
    if isinstance(document, dict):
        return [p for k, v in document.items() for p in floats_in(v, f"{path}.{k}")]
    if isinstance(document, list):
        return [p for i, v in enumerate(document) for p in floats_in(v, f"{path}[{i}]")]
    return []


def assert_user_error(result: Result, exit_code: int, *fragments: str) -> str:
    """Assert exit_code, exactly one `Error: …` line on stderr holding every fragment, no traceback; return stderr."""
    assert result.exit_code == exit_code, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    # Counted, not matched at line starts: under CliRunner an answered prompt leaves no newline before it.
    assert result.stderr.count("Error: ") == 1, result.stderr
    after_error = result.stderr[result.stderr.index("Error: "):].splitlines()[1:]
    assert all(line.startswith(("Hint: ", "  ")) for line in after_error), result.stderr  # the message is one line
    assert "Traceback" not in result.stdout + result.stderr
    for fragment in fragments:
        assert fragment.lower() in result.stderr.lower(), f"{fragment!r} not in {result.stderr!r}"
    return result.stderr


def dump_database(path: Target) -> dict[str, list[tuple]]:
    """Return every row of every table, for before/after comparisons."""
    return databases.dump(path)


def count_rows(path: Target, table: str) -> int:
    """Return the number of rows in a table of the database."""
    return databases.count(path, table)


def paper_balances(path: Target) -> dict[str, tuple[Decimal, Decimal]]:
    """Return the paper wallet as {asset: (free, locked)} through the store."""
    from robson.adapters.store import SqlStore

    store = SqlStore(databases.store_url(path))
    try:
        with store.read() as session:
            return {asset: (b.free, b.locked) for asset, b in session.get_balances("paper").items()}
    finally:
        store.close()


@pytest.fixture
def plan_id(robson: Robson) -> Callable[..., str]:
    """Return plan_id(*plan_args) that plans a buy and returns the new intent's ID."""

    def make(*args: str, as_of: str | None = None) -> str:
        prefix = ["--as-of", as_of] if as_of else []
        result = robson(*prefix, "plan", "buy", "BTCUSDT", *args, "--json")
        return parsed(result)["id"]

    return make
