"""A throwaway PostgreSQL server for the tests, started from the installed binaries by pytest-postgresql.

One server per test session (initdb in a temporary directory, a free port on loopback, fsync off);
each test gets its own database, copied from a template that robson's migrations brought to the
latest schema (CREATE DATABASE ... TEMPLATE takes a few milliseconds; migrating takes far longer).

PostgreSQL refuses to run as root. Under root (CI), pg_ctl runs as the `postgres` user through a
small wrapper script handed to pytest-postgresql's executor as its pg_ctl.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

HOST = "127.0.0.1"
SUPERUSER = "postgres"
TEMPLATE = "robson_template"  # migrated to the latest schema
EMPTY_TEMPLATE = "template0"  # no robson schema: for migration and first-run tests
# A role that may connect but not create in schema public (PostgreSQL 15's default privileges).
LIMITED_ROLE = "robson_limited"
# A role that must give a password (scram-sha-256), for the refused-password test.
PASSWORD_ROLE = "robson_password"
PASSWORD = "s3cret-Pa55"
# Speed over durability: the cluster is thrown away at the end of the session.
SERVER_OPTIONS = "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"


def find_pg_ctl() -> str:
    """Return the pg_ctl of the installed server; raise RuntimeError naming how to install one."""
    candidates = [os.environ.get("ROBSON_TEST_PG_CTL", ""), shutil.which("pg_ctl") or ""]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version_key, reverse=True)
    candidates += sorted(glob.glob("/usr/pgsql-*/bin/pg_ctl"), reverse=True)
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("no PostgreSQL server binaries (pg_ctl) found: install the server "
                       "(Debian: apt-get install postgresql) or set ROBSON_TEST_PG_CTL")


def _version_key(path: str) -> int:
    try:
        return int(Path(path).parts[-3])
    except ValueError:
        return 0


class PostgresServer:
    """A running cluster: admin connections, and databases made from the migrated template."""

    def __init__(self) -> None:
        from port_for import get_port

        self.directory = Path(tempfile.mkdtemp(prefix="robson-pg-"))
        self.port = get_port(None)
        self._counter = itertools.count(1)
        self._executor = None
        pg_ctl = find_pg_ctl()
        if os.geteuid() == 0:  # the server refuses root: run pg_ctl (and so the server) as postgres
            account = pwd.getpwnam(SUPERUSER)
            os.chown(self.directory, account.pw_uid, account.pw_gid)
            wrapper = self.directory / "pg_ctl"
            wrapper.write_text(f'#!/bin/sh\nexec runuser -u {SUPERUSER} -- "{pg_ctl}" "$@"\n', encoding="utf-8")
            wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
            pg_ctl = str(wrapper)
        self.pg_ctl = pg_ctl

    def start(self) -> PostgresServer:
        from pytest_postgresql.executors import PostgreSQLExecutor

        executor = PostgreSQLExecutor(
            executable=self.pg_ctl, host=HOST, port=self.port, datadir=str(self.directory / "data"),
            unixsocketdir=str(self.directory), logfile=str(self.directory / "server.log"), startparams="-w",
            dbname="postgres", user=SUPERUSER, postgres_options=SERVER_OPTIONS)
        executor.init_directory()
        # Password roles first: the first matching line of pg_hba.conf wins, and initdb trusts everyone else.
        hba = Path(executor.datadir) / "pg_hba.conf"
        hba.write_text(f"host all {PASSWORD_ROLE} {HOST}/32 scram-sha-256\n" + hba.read_text(encoding="utf-8"),
                       encoding="utf-8")
        executor.start()
        self._executor = executor
        self._prepare()
        return self

    def stop(self) -> None:
        if self._executor is not None:
            try:
                self._executor.stop()
            finally:
                self._executor = None
        shutil.rmtree(self.directory, ignore_errors=True)

    def url(self, database: str, user: str = SUPERUSER, password: str | None = None) -> str:
        """The URL robson is given for a database of this server."""
        credentials = user if password is None else f"{user}:{password}"
        return f"postgresql://{credentials}@{HOST}:{self.port}/{database}"

    def admin(self, sql: str, *, database: str = "postgres") -> list[tuple]:
        """Run one statement as the superuser, outside any transaction; return its rows."""
        import psycopg

        with psycopg.connect(host=HOST, port=self.port, user=SUPERUSER, dbname=database, autocommit=True) as connection:
            cursor = connection.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def create_database(self, *, template: str = TEMPLATE, owner: str = SUPERUSER) -> str:
        """Create a fresh database from template; return its name."""
        name = f"robson_t{os.getpid()}_{next(self._counter)}"
        self.admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}" OWNER "{owner}"')
        return name

    def drop_database(self, name: str) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def connections(self, database: str) -> int:
        """How many client connections the server has open on database now."""
        rows = self.admin(f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{database}' "
                          "AND pid <> pg_backend_pid()")
        return int(rows[0][0])

    def _prepare(self) -> None:
        from robson.adapters.store import migrations
        from robson.adapters.store.engine import build_engine

        self.admin(f'CREATE DATABASE "{TEMPLATE}"')
        engine = build_engine(self.url(TEMPLATE))
        try:
            migrations.upgrade(engine)
        finally:
            engine.dispose()
        self.admin(f'ALTER DATABASE "{TEMPLATE}" WITH IS_TEMPLATE true')
        self.admin(f"CREATE ROLE {LIMITED_ROLE} LOGIN")
        self.admin(f"CREATE ROLE {PASSWORD_ROLE} LOGIN PASSWORD '{PASSWORD}'")


def run_as_server_user(command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run a server-side program (pgbouncer) as the postgres user when we are root."""
    if os.geteuid() == 0:
        command = ["runuser", "-u", SUPERUSER, "--", *command]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)


def find_pgbouncer() -> str | None:
    for candidate in (shutil.which("pgbouncer"), "/usr/sbin/pgbouncer", "/usr/bin/pgbouncer"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


class PgBouncer:
    """PgBouncer in transaction pooling mode in front of a PostgresServer, with ONE server connection per
    database and user: every client's transaction runs on the same server connection, so a statement one
    client prepared is there when the next client prepares its own under the same name."""

    def __init__(self, server: PostgresServer, executable: str) -> None:
        from port_for import get_port

        self.server = server
        self.executable = executable
        self.port = get_port(None)
        self.directory = server.directory / "pgbouncer"

    def start(self) -> PgBouncer:
        import time

        self.directory.mkdir()
        (self.directory / "userlist.txt").write_text(f'"{SUPERUSER}" ""\n', encoding="utf-8")
        config = self.directory / "pgbouncer.ini"
        config.write_text("\n".join([
            "[databases]",
            f"* = host={HOST} port={self.server.port}",
            "[pgbouncer]",
            f"listen_addr = {HOST}",
            f"listen_port = {self.port}",
            "unix_socket_dir =",
            "auth_type = trust",
            f"auth_file = {self.directory / 'userlist.txt'}",
            "pool_mode = transaction",
            "default_pool_size = 1",
            "max_client_conn = 200",
            "ignore_startup_parameters = extra_float_digits,options",
            f"logfile = {self.directory / 'pgbouncer.log'}",
            f"pidfile = {self.directory / 'pgbouncer.pid'}",
            "",
        ]), encoding="utf-8")
        if os.geteuid() == 0:
            account = pwd.getpwnam(SUPERUSER)
            for path in (self.directory, *self.directory.iterdir()):
                os.chown(path, account.pw_uid, account.pw_gid)
        started = run_as_server_user([self.executable, "-d", str(config)])
        if started.returncode != 0:
            raise RuntimeError(f"pgbouncer did not start: {started.stderr or started.stdout}")
        deadline = time.monotonic() + 30
        while not self._accepting():
            if time.monotonic() > deadline:
                raise RuntimeError(f"pgbouncer is not listening on {HOST}:{self.port}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        import signal

        pidfile = self.directory / "pgbouncer.pid"
        if pidfile.exists():
            try:
                os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
            except (OSError, ValueError):
                pass

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/{database}"

    def _accepting(self) -> bool:
        import socket

        with socket.socket() as probe:
            probe.settimeout(0.2)
            return probe.connect_ex((HOST, self.port)) == 0
