"""Which database the tests run on: SQLite files (the default) or a throwaway PostgreSQL server.

    pytest --database postgresql        (or ROBSON_TEST_DATABASE=postgresql pytest)

selects PostgreSQL for every test that takes the `robson_db` fixture (the store, CLI, reliability
and live suites): pytest-postgresql starts one server from the installed binaries for the
session, and each test gets a fresh database copied from a migrated template.

Markers:
- `sqlite_only("why")`: SQLite by nature (the file, WAL, PRAGMAs, corruption); skipped with its
  reason under PostgreSQL, so the summary shows every one of them.
- `postgresql_only("why")`: needs the server (snapshots across connections, connection counts,
  PgBouncer); skipped with its reason in the SQLite pass.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.databases import Target

BACKENDS = ("sqlite", "postgresql")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--database", choices=BACKENDS, default=os.environ.get("ROBSON_TEST_DATABASE", "sqlite"),
                     help="the store the tests run on (default: $ROBSON_TEST_DATABASE or sqlite)")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--database") not in BACKENDS:  # a bad ROBSON_TEST_DATABASE
        raise pytest.UsageError(f"--database / ROBSON_TEST_DATABASE must be one of {', '.join(BACKENDS)}")
    config.addinivalue_line("markers", "sqlite_only(reason): SQLite by nature; skipped with the reason on PostgreSQL")
    config.addinivalue_line("markers", "postgresql_only(reason): needs a PostgreSQL server; skipped on SQLite")


def pytest_report_header(config: pytest.Config) -> str:
    return f"robson store under test: {config.getoption('--database')}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    backend = config.getoption("--database")
    for item in items:
        only = item.get_closest_marker("sqlite_only" if backend == "postgresql" else "postgresql_only")
        if only is None:
            continue
        reason = only.args[0] if only.args else only.kwargs.get("reason")
        if not reason:
            raise pytest.UsageError(f"{item.nodeid}: {only.name} needs a reason")
        other = "SQLite" if backend == "postgresql" else "PostgreSQL"
        item.add_marker(pytest.mark.skip(reason=f"{other} only: {reason}"))


@pytest.fixture(scope="session")
def backend(pytestconfig: pytest.Config) -> str:
    """'sqlite' or 'postgresql': the store every `robson_db` fixture gives."""
    return str(pytestconfig.getoption("--database"))


class _Dropper:
    """Drops finished tests' databases on a thread: DROP DATABASE waits for a checkpoint (~0.2 s)."""

    def __init__(self, server) -> None:
        self._server = server
        self._names: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="drop-test-databases", daemon=True)
        self._thread.start()

    def drop(self, name: str) -> None:
        self._names.put(name)

    def close(self) -> None:
        self._names.put(None)
        self._thread.join(timeout=120)

    def _run(self) -> None:
        while (name := self._names.get()) is not None:
            try:
                self._server.drop_database(name)
            except Exception:  # a database left behind goes with the cluster at the end
                pass


@pytest.fixture(scope="session")
def pg_server() -> Iterator:
    """One throwaway PostgreSQL server for the session (tests.postgres_server)."""
    from tests.postgres_server import PostgresServer

    server = PostgresServer()
    try:
        server.start()
        server.dropper = _Dropper(server)
        yield server
        server.dropper.close()
    finally:
        server.stop()


@pytest.fixture
def pg_database(pg_server) -> Iterator[str]:
    """A fresh PostgreSQL database at the latest schema; its name (the URL: pg_server.url(name))."""
    name = pg_server.create_database()
    yield name
    pg_server.dropper.drop(name)


@pytest.fixture
def robson_db(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Target:
    """The test's database: a SQLite file in tmp_path (not yet created), or the URL of a fresh PostgreSQL database.

    Give it to robson as ROBSON_DB (str(robson_db)) or to SqlStore via tests.databases.store_url.
    """
    if backend == "sqlite":
        return tmp_path / "robson.db"
    server = request.getfixturevalue("pg_server")
    return server.url(request.getfixturevalue("pg_database"))


@pytest.fixture(scope="session")
def database_factory(request: pytest.FixtureRequest, backend: str) -> Iterator:
    """make(directory) -> a new database for fixtures wider than one test: a SQLite file in directory, or a
    fresh PostgreSQL database's URL (dropped when the session ends)."""
    made: list[str] = []
    # Taken now, not at the first make(): set up before this fixture, the server is torn down after it.
    server = request.getfixturevalue("pg_server") if backend == "postgresql" else None

    def make(directory: Path, name: str = "robson.db") -> Target:
        if server is None:
            return directory / name
        made.append(server.create_database())
        return server.url(made[-1])

    yield make
    for name in made:
        server.dropper.drop(name)


@pytest.fixture
def empty_database(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Iterator[Target]:
    """A database with no robson schema yet: a SQLite file not yet made, or a PostgreSQL database from template0."""
    if backend == "sqlite":
        yield tmp_path / "fresh.db"
        return
    from tests.postgres_server import EMPTY_TEMPLATE

    server = request.getfixturevalue("pg_server")
    name = server.create_database(template=EMPTY_TEMPLATE)
    yield server.url(name)
    server.dropper.drop(name)


@pytest.fixture(scope="session")
def pgbouncer(pg_server) -> Iterator:
    """PgBouncer in transaction mode in front of the test server (tests.postgres_server.PgBouncer)."""
    from tests.postgres_server import PgBouncer, find_pgbouncer

    executable = find_pgbouncer()
    if executable is None:
        message = "pgbouncer is not installed (Debian: apt-get install pgbouncer)"
        if os.environ.get("CI"):  # .ci/run installs it: missing there is a broken CI, not a skip
            pytest.fail(message)
        pytest.skip(message)
    bouncer = PgBouncer(pg_server, executable).start()
    yield bouncer
    bouncer.stop()
