"""The databases the lock tests run on: a SQLite file, and a throwaway PostgreSQL server when one is installed.

Kept to the lock tests (the suite-wide PostgreSQL fixtures are another piece of work): the server is
started once per session from the distribution's binaries (`initdb`, `pg_ctl`; as the `postgres`
user when the tests run as root), listens on 127.0.0.1 only, trusts local connections, and is
deleted at the end. Without the binaries or the psycopg driver the PostgreSQL cases are skipped,
each saying why.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from robson.adapters.store import SqlStore

BACKENDS = ["sqlite", "postgresql"]


def _bin_dir() -> Path | None:
    """The newest installed PostgreSQL server's bin directory (Debian keeps them versioned), or the PATH's."""
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name),
                            reverse=True):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


class PostgresServer:
    """One throwaway cluster: trust authentication, 127.0.0.1 and a private socket directory, fsync off."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.base = Path(tempfile.mkdtemp(prefix="robson-pg-"))
        self.data, self.port = self.base / "data", _free_port()
        self._as_postgres = os.geteuid() == 0  # the server refuses to run as root
        if self._as_postgres:
            shutil.chown(self.base, "postgres", "postgres")

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, check=check)

    def start(self) -> None:
        if not self.data.exists():
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                      "--locale=C", "--no-sync")
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.base} -c fsync=off "
                   "-c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.base / "log"), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", check=False)

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)

    def new_database(self) -> str:
        """Create an empty database; return its URL."""
        import psycopg

        name = f"robson_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_missing() -> str | None:
    """Say why no throwaway PostgreSQL server can run here, or None."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "the psycopg driver is not installed (pip install 'psycopg[binary]')"
    if _bin_dir() is None:
        return "no PostgreSQL server binaries (initdb) are installed"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser to start the server as postgres"
    return None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session; skips, saying why, where none can run."""
    reason = postgres_missing()
    if reason:
        pytest.skip(f"PostgreSQL case not run: {reason}")
    bin_dir = _bin_dir()
    assert bin_dir is not None
    server = PostgresServer(bin_dir)
    server.start()
    yield server
    server.remove()


@dataclass(frozen=True)
class Database:
    """One empty robson database: its backend and what ROBSON_DB takes (a SQLite file path or a URL)."""

    backend: str
    url: str

    def store(self, **options: float) -> SqlStore:
        if self.backend == "sqlite":
            return SqlStore.for_path(Path(self.url), **options)
        return SqlStore(self.url, **options)


def new_database(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Database:
    """Return an empty database on backend (the PostgreSQL server is started on first use)."""
    if backend == "sqlite":
        return Database("sqlite", str(tmp_path / "robson.db"))
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return Database("postgresql", server.new_database())
