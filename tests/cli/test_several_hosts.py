"""One book on a PostgreSQL server shared by several hosts: what a user sees when the URL, the driver, the server
or its privileges are wrong (one line naming host and database, a hint, no password), and the limits both
backends hold alike."""

from __future__ import annotations

import socket
import sys

import pytest

from robson.adapters.store.schema import LATEST_VERSION
from tests import databases
from tests.cli.conftest import Robson, assert_user_error
from tests.databases import Target

SECRET = "Sup3r-S3cret-pw"
CLOSED_PORT = 9  # discard: nothing listens on loopback here


def assert_no_secret(result) -> None:
    assert SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize("url", [f"postgresql://robson:{SECRET}@db.invalid:5432/book",
                                 f"postgresql://robson@db.invalid:5432/book?password={SECRET}"],
                         ids=["password-in-user-part", "password-in-query"])
def test_a_missing_driver_is_one_line_naming_host_and_database_with_the_extra_to_install(
        robson: Robson, monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` fails, as without the postgres extra

    result = robson("operation", "status", env={"ROBSON_DB": url})

    stderr = assert_user_error(result, 1, 'PostgreSQL database "book" on db.invalid:5432', "driver (psycopg)",
                               "pip install 'robson[postgres]'")
    assert stderr.count("\n") == 2  # Error: … and Hint: …
    assert_no_secret(result)


def test_an_unreachable_server_is_one_line_naming_host_and_database(robson: Robson) -> None:
    url = f"postgresql://robson@127.0.0.1:{CLOSED_PORT}/book?password={SECRET}&sslmode=disable"

    result = robson("plan", "list", env={"ROBSON_DB": url})

    assert_user_error(result, 1, 'cannot connect to PostgreSQL database "book" on 127.0.0.1:9', "out of reach",
                      "Hint: is PostgreSQL running")
    assert_no_secret(result)


@pytest.mark.postgresql_only("the server checks the password")
@pytest.mark.parametrize("where", ["user-part", "query"])
def test_a_refused_password_is_one_line_naming_host_and_database(robson: Robson, pg_server, pg_database: str,
                                                                  where: str) -> None:
    from tests.postgres_server import PASSWORD_ROLE

    url = (pg_server.url(pg_database, PASSWORD_ROLE, SECRET) if where == "user-part"
           else pg_server.url(pg_database, PASSWORD_ROLE) + f"?password={SECRET}")

    result = robson("operation", "status", env={"ROBSON_DB": url})

    assert_user_error(result, 1, f'PostgreSQL database "{pg_database}" on 127.0.0.1:{pg_server.port}',
                      f'as user "{PASSWORD_ROLE}"', "refused the password", "Hint: check the user and password")
    assert_no_secret(result)


@pytest.mark.postgresql_only("the server checks the password")
def test_the_right_password_opens_the_book(robson: Robson, pg_server, pg_database: str) -> None:
    from tests.postgres_server import PASSWORD, PASSWORD_ROLE

    pg_server.admin(f'ALTER DATABASE "{pg_database}" OWNER TO {PASSWORD_ROLE}', database=pg_database)
    pg_server.admin(f"GRANT ALL ON ALL TABLES IN SCHEMA public TO {PASSWORD_ROLE}", database=pg_database)
    url = pg_server.url(pg_database, PASSWORD_ROLE) + f"?password={PASSWORD}"

    result = robson("plan", "list", "--json", env={"ROBSON_DB": url})

    assert result.exit_code == 0, result.stderr


@pytest.mark.postgresql_only("PostgreSQL 15's default privileges on schema public")
def test_no_create_privilege_on_schema_public_says_what_to_grant(robson: Robson, pg_server) -> None:
    from tests.postgres_server import EMPTY_TEMPLATE, LIMITED_ROLE

    name = pg_server.create_database(template=EMPTY_TEMPLATE)  # owned by postgres: LIMITED_ROLE may not create
    try:
        result = robson("plan", "list", env={"ROBSON_DB": pg_server.url(name, LIMITED_ROLE)})

        assert_user_error(result, 1, f'PostgreSQL database "{name}"', f'as user "{LIMITED_ROLE}"',
                          "permission denied for schema public",
                          f'GRANT USAGE, CREATE ON SCHEMA public TO "{LIMITED_ROLE}"')
        pg_server.admin(f"GRANT USAGE, CREATE ON SCHEMA public TO {LIMITED_ROLE}", database=name)
        granted = robson("plan", "list", "--json", env={"ROBSON_DB": pg_server.url(name, LIMITED_ROLE)})
        assert granted.exit_code == 0, granted.stderr  # the grant the hint names is enough
    finally:
        pg_server.dropper.drop(name)


@pytest.mark.postgresql_only("counts the server's connections (pg_stat_activity)")
def test_in_process_commands_close_every_connection_they_open(robson: Robson, pg_server, db_path: str) -> None:
    database = db_path.rsplit("/", 1)[1]
    for _ in range(5):
        assert robson("plan", "buy", "BTCUSDT", "--json").exit_code == 0
        assert robson("operation", "status", "--json").exit_code == 0

    assert pg_server.connections(database) == 0  # each command disposed of its engine when it ended


@pytest.mark.postgresql_only("a PostgreSQL database holding another application's tables")
def test_a_postgresql_database_of_another_application_is_refused_and_left_as_it_was(robson: Robson,
                                                                                   empty_database: str) -> None:
    databases.execute(empty_database, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    databases.execute(empty_database, "INSERT INTO users VALUES (1, 'ana')")
    before = databases.dump(empty_database)

    result = robson("plan", "list", env={"ROBSON_DB": empty_database})

    assert_user_error(result, 2, databases.where(empty_database), "is not a robson database", "users")
    assert databases.dump(empty_database) == before


# --- the same limits and the same refusals on both backends -----------------------------------


def test_a_30_character_symbol_is_refused_on_import_with_nothing_written(robson: Robson, db_path: Target,
                                                                         tmp_path) -> None:
    (tmp_path / "c.csv").write_text("open_time,open,high,low,close,volume\n1606780800000,1,2,1,2,5\n")
    symbol = "ABCDEFGHIJKLMNOPQRSTUVWXYZABCD"

    result = robson("data", "import", "c.csv", "--symbol", symbol, "--timeframe", "1h")

    assert_user_error(result, 2, f"symbol '{symbol}' is 30 characters long", "at most 20")
    assert databases.count(db_path, "candles") == 0


def test_a_30_character_symbol_is_refused_by_plan(robson: Robson, db_path: Target) -> None:
    result = robson("plan", "buy", "ABCDEFGHIJKLMNOPQRSTUVWXYZUSDT", "--entry", "100", "--stop", "90")

    assert_user_error(result, 2, "ABCDEFGHIJKLMNOPQRSTUVWXYZUSDT")
    assert databases.dump(db_path).get("intents", []) == []


def test_a_database_written_by_a_newer_robson_names_this_host_as_the_one_to_upgrade(robson: Robson,
                                                                                     db_path: Target) -> None:
    assert robson("plan", "list").exit_code == 0  # creates (SQLite) or opens (PostgreSQL) the schema
    databases.execute(db_path, "INSERT INTO schema_version VALUES (:version, '2030-01-01T00:00:00.000000+00:00', "
                               "'from a newer robson')", {"version": LATEST_VERSION + 1})

    result = robson("plan", "list")

    assert_user_error(result, 1, f"schema v{LATEST_VERSION + 1} is newer than this robson (v{LATEST_VERSION})",
                      f"upgrade robson on this host ({socket.gethostname()})", "same robson version")
