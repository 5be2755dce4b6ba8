"""The migration runner on a real server: ledger, checksums, errors with file:line."""

from __future__ import annotations

import hashlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pytest_clinicdb.errors import (
    ExtensionsMissingError,
    MigrationEditedError,
    MigrationError,
    MigrationIncompleteError,
    MigrationPartlyAppliedError,
    SQLSyntaxUnsupportedError,
)
from pytest_clinicdb.migrations import (
    applied,
    apply_migrations,
    discover,
    edited,
    incomplete,
    preflight_extensions,
    resolve_incomplete,
)

pytestmark = pytest.mark.integration


def write(d: Path, name: str, sql: str) -> Path:
    d.mkdir(exist_ok=True)
    (d / name).write_text(sql)
    return d / name


def tables(conn) -> list[str]:
    rows = conn.execute(
        "SELECT table_schema || '.' || table_name FROM information_schema.tables "
        "WHERE table_schema = 'app' ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows]


def test_applies_in_order_and_a_second_run_applies_nothing(empty_db, tmp_path):
    write(tmp_path, "2_items.sql", "CREATE TABLE app.items (id int);")
    write(tmp_path, "10_more.sql", "ALTER TABLE app.items ADD COLUMN name text;")
    write(tmp_path, "1_schema.sql", "CREATE SCHEMA app;")
    first = apply_migrations(empty_db, discover(tmp_path))
    assert first.applied == ["1_schema.sql", "2_items.sql", "10_more.sql"]
    second = apply_migrations(empty_db, discover(tmp_path))
    assert second.applied == []
    assert second.skipped == first.applied
    assert sorted(applied(empty_db)) == sorted(first.applied)


def test_edited_applied_migration_is_reported_by_name_and_not_rerun(empty_db, tmp_path):
    write(tmp_path, "1_schema.sql", "CREATE SCHEMA app;")
    path = write(tmp_path, "2_items.sql", "CREATE TABLE app.items (id int);")
    apply_migrations(empty_db, discover(tmp_path))
    path.write_text("CREATE TABLE app.items (id bigint);")
    write(tmp_path, "3_new.sql", "CREATE TABLE app.other (id int);")
    with pytest.raises(MigrationEditedError) as info:
        apply_migrations(empty_db, discover(tmp_path))
    assert info.value.edited == ["2_items.sql"]
    assert "never edit a historical migration" in str(info.value)
    assert tables(empty_db) == ["app.items"]  # 3_new.sql was not applied either


def test_failing_migration_names_file_line_column_and_leaves_nothing(empty_db, tmp_path):
    write(tmp_path, "1_schema.sql", "CREATE SCHEMA app;")
    write(
        tmp_path,
        "2_broken.sql",
        "-- two tables, the second one broken\n"
        "CREATE TABLE app.first (id int);\n"
        "\n"
        "CREATE TABLE app.second (\n"
        "    id int,\n"
        "    name txet\n"
        ");\n",
    )
    with pytest.raises(MigrationError) as info:
        apply_migrations(empty_db, discover(tmp_path))
    err = info.value
    assert (err.file.name, err.line, err.column, err.sqlstate) == ("2_broken.sql", 6, 10, "42704")
    assert str(err).startswith(
        'migration 2_broken.sql, line 6, column 10: type "txet" does not exist (SQLSTATE 42704)'
    )
    assert tables(empty_db) == []  # app.first rolled back with its file
    assert list(applied(empty_db)) == ["1_schema.sql"]


def test_syntax_error_position(empty_db, tmp_path):
    write(tmp_path, "1_bad.sql", "SELECT 1;\nCREATE TABLE t (\n  a int,\n);\n")
    with pytest.raises(MigrationError) as info:
        apply_migrations(empty_db, discover(tmp_path))
    assert (info.value.line, info.value.column, info.value.sqlstate) == (4, 1, "42601")
    assert 'syntax error at or near ")"' in str(info.value)


def test_error_raised_inside_a_do_block_points_at_its_line(empty_db, tmp_path):
    write(
        tmp_path,
        "1_do.sql",
        "SELECT 1;\nDO $$\nBEGIN\n  PERFORM 1;\n  RAISE EXCEPTION 'boom %', 42;\nEND\n$$;\n",
    )
    with pytest.raises(MigrationError) as info:
        apply_migrations(empty_db, discover(tmp_path))
    assert (info.value.line, info.value.sqlstate) == (5, "P0001")
    assert "boom 42" in str(info.value)


def test_preflight_names_missing_extensions_before_applying_anything(empty_db, tmp_path):
    write(
        tmp_path,
        "1_ext.sql",
        "CREATE EXTENSION IF NOT EXISTS citext;\nCREATE EXTENSION no_such_ext;\n",
    )
    migrations = discover(tmp_path)
    with pytest.raises(ExtensionsMissingError) as info:
        preflight_extensions(
            empty_db,
            migrations,
            binaries_note="PostgreSQL test build",
            alternatives=lambda missing: [f"a build with {', '.join(missing)}"],
        )
    assert info.value.missing == ["no_such_ext"]
    text = str(info.value)
    assert "need extension(s) no_such_ext" in text
    assert "binaries in use: PostgreSQL test build" in text
    assert "a build with no_such_ext" in text
    assert applied(empty_db) == {}


# --------------------------------------------------------------------------- session state


def psql(server_major: int):
    from pytest_clinicdb.binaries import find_binaries

    try:
        return find_binaries(version=server_major).tool("psql")
    except Exception:  # no client of that major installed here
        pytest.skip(f"no psql {server_major} installed")


@pytest.fixture
def scratch_dsn(clinic_postgres) -> Iterator[str]:
    """The DSN of another empty database (dropped afterwards)."""
    name = f"clinicdb_scratch_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(clinic_postgres.dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield clinic_postgres.dsn_for(name)
        finally:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_each_file_starts_from_the_session_defaults(
    empty_db, tmp_path, clinic_postgres, scratch_dsn
):
    # What pg_dump (and many hand-written files) put at the top of a file.
    relax = write(
        tmp_path,
        "1_relax.sql",
        "SET check_function_bodies = false;\n"
        "SET client_min_messages = warning;\n"
        "SELECT pg_catalog.set_config('search_path', '', false);\n"
        "CREATE SCHEMA app;\n",
    )
    broken = write(
        tmp_path,
        "2_broken.sql",
        "CREATE FUNCTION app.visit_count() RETURNS int LANGUAGE plpgsql AS $$\n"
        "BEGIN\n"
        "  RETRUN 1;\n"
        "END;\n"
        "$$;\n",
    )
    with pytest.raises(MigrationError) as info:
        apply_migrations(empty_db, discover(tmp_path))
    assert (info.value.file.name, info.value.line, info.value.column, info.value.sqlstate) == (
        "2_broken.sql",
        3,
        3,
        "42601",
    )
    assert 'syntax error at or near "RETRUN"' in str(info.value)
    assert list(applied(empty_db)) == ["1_relax.sql"]
    # psql, one session per file, refuses the same file after the same one
    dsn = scratch_dsn
    binary = psql(clinic_postgres.major)
    for path, code in [(relax, 0), (broken, 3)]:
        run = subprocess.run(
            [str(binary), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", str(path)],
            capture_output=True,
            text=True,
        )
        assert run.returncode == code, run.stderr
    assert 'syntax error at or near "RETRUN"' in run.stderr
    assert "LINE 3:" in run.stderr


def test_a_later_migration_does_not_inherit_an_empty_search_path(empty_db, tmp_path):
    write(tmp_path, "1_dump.sql", "SELECT pg_catalog.set_config('search_path', '', false);\n")
    write(tmp_path, "2_items.sql", "CREATE TABLE items (id int);\n")
    apply_migrations(empty_db, discover(tmp_path))
    assert empty_db.execute("SELECT to_regclass('public.items') IS NOT NULL").fetchone() == (True,)
    # and the caller's session is left with its defaults
    assert empty_db.execute("SHOW search_path").fetchone() == ('"$user", public',)


def test_settings_are_set_for_every_file(empty_db, tmp_path):
    write(
        tmp_path, "1_a.sql", "SET app.environment = 'production';\nCREATE TABLE seen (env text);\n"
    )
    write(tmp_path, "2_b.sql", "INSERT INTO seen VALUES (current_setting('app.environment'));\n")
    apply_migrations(empty_db, discover(tmp_path), settings={"app.environment": "test"})
    assert empty_db.execute("SELECT env FROM seen").fetchall() == [("test",)]


# --------------------------------------------------------------------------- checksums


def test_crlf_or_bom_resave_of_an_applied_migration_is_not_edited(empty_db, tmp_path):
    path = write(tmp_path, "1_schema.sql", "CREATE SCHEMA app;\nCREATE TABLE app.t (a int);\n")
    apply_migrations(empty_db, discover(tmp_path))
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    report = apply_migrations(empty_db, discover(tmp_path))
    assert (report.applied, report.skipped) == ([], ["1_schema.sql"])
    assert edited(discover(tmp_path), applied(empty_db)) == []


def test_a_ledger_of_raw_checksums_stays_valid_and_is_rewritten(empty_db, tmp_path):
    crlf = b"CREATE SCHEMA app;\r\nCREATE TABLE app.t (a int);\r\n"
    path = tmp_path / "1_schema.sql"
    path.write_bytes(crlf)
    (mig,) = discover(tmp_path)
    # A ledger written by an older version: no status columns, sha256 of the raw bytes.
    empty_db.execute(
        "CREATE SCHEMA clinicdb; CREATE TABLE clinicdb.migrations (name text PRIMARY KEY, "
        "checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), "
        "duration_ms integer)"
    )
    empty_db.execute(
        "INSERT INTO clinicdb.migrations (name, checksum) VALUES (%s, %s)",
        ("1_schema.sql", hashlib.sha256(crlf).hexdigest()),
    )
    path.write_bytes(crlf.replace(b"\r\n", b"\n"))  # re-saved with LF before the upgrade
    assert edited(discover(tmp_path), applied(empty_db)) == []
    report = apply_migrations(empty_db, discover(tmp_path))
    assert report.skipped == ["1_schema.sql"]
    assert applied(empty_db) == {"1_schema.sql": mig.checksum}


# --------------------------------------------------------------------------- outside a transaction


def ledger(conn) -> list[tuple]:
    return conn.execute(
        "SELECT name, status, statements_done, statements_total, error FROM clinicdb.migrations "
        "ORDER BY name"
    ).fetchall()


def test_create_index_concurrently_runs_outside_a_transaction(empty_db, tmp_path):
    write(tmp_path, "1_rooms.sql", "CREATE TABLE rooms (id int, floor int);\n")
    write(
        tmp_path,
        "2_index.sql",
        "CREATE INDEX CONCURRENTLY rooms_floor ON rooms (floor);\n"
        "DROP INDEX CONCURRENTLY rooms_floor;\n"
        "CREATE UNIQUE INDEX CONCURRENTLY rooms_id ON rooms (id);\n",
    )
    mig = discover(tmp_path)[1]
    assert not mig.transactional
    apply_migrations(empty_db, discover(tmp_path))
    assert empty_db.execute(
        "SELECT indexrelid::regclass::text, indisvalid FROM pg_index "
        "WHERE indrelid = 'rooms'::regclass"
    ).fetchall() == [("rooms_id", True)]
    assert ledger(empty_db) == [
        ("1_rooms.sql", "applied", None, None, None),
        ("2_index.sql", "applied", 3, 3, None),
    ]


def test_a_file_that_fails_half_way_outside_a_transaction_is_recorded_and_blocks(
    empty_db, tmp_path
):
    write(tmp_path, "1_rooms.sql", "CREATE TABLE rooms (id int, floor int);\n")
    path = write(
        tmp_path,
        "2_floors.sql",
        "-- clinicdb:no-transaction\n"
        "CREATE INDEX CONCURRENTLY rooms_floor ON rooms (floor);\n"
        "ALTER TABLE rooms ADD COLUMN wing text;\n"
        "ALTER TABLE rooms ADD COLUMN wing text;\n"
        "ALTER TABLE rooms ADD COLUMN beds int;\n",
    )
    write(tmp_path, "3_later.sql", "CREATE TABLE later (id int);\n")
    with pytest.raises(MigrationPartlyAppliedError) as info:
        apply_migrations(empty_db, discover(tmp_path))
    err = info.value
    assert (err.line, err.sqlstate, err.statements_done, err.statements_total) == (4, "42701", 2, 4)
    assert str(err).splitlines()[-1] == (
        "  hint: this file runs outside a transaction (-- clinicdb:no-transaction (2_floors.sql, "
        "line 1)), so its first 2 of 4 statement(s) are applied and stay applied; "
        "clinicdb.migrations marks it failed, and no migration runs until that is resolved. "
        "Look at what its statements did and undo or finish them by hand; then either run the "
        "whole file again: DELETE FROM clinicdb.migrations WHERE name = '2_floors.sql'; or "
        "record it as applied: UPDATE clinicdb.migrations SET status = 'applied' WHERE name = "
        "'2_floors.sql';"
    )
    assert ledger(empty_db) == [
        ("1_rooms.sql", "applied", None, None, None),
        (
            "2_floors.sql",
            "failed",
            2,
            4,
            'line 4: column "wing" of relation "rooms" already exists (SQLSTATE 42701)',
        ),
    ]
    # what ran stays; nothing after it ran
    assert empty_db.execute("SELECT to_regclass('rooms_floor') IS NOT NULL").fetchone() == (True,)
    assert empty_db.execute("SELECT to_regclass('later')").fetchone() == (None,)
    assert incomplete(empty_db).keys() == {"2_floors.sql"}
    assert list(applied(empty_db)) == ["1_rooms.sql"]

    # A rerun never silently runs the first half again.
    path.write_text(
        path.read_text().replace("wing text;\nALTER TABLE rooms ADD COLUMN wing", "wing")
    )
    with pytest.raises(MigrationIncompleteError) as again:
        apply_migrations(empty_db, discover(tmp_path))
    assert str(again.value).splitlines()[:2] == [
        "the ledger records migration(s) that stopped half way; nothing more is applied until "
        "they are resolved:",
        "  2_floors.sql: failed on "
        + str(again.value).splitlines()[1].split("failed on ")[1][:16]
        + " after 2 of 4 statement(s), which stay applied (it runs outside a transaction): "
        'line 4: column "wing" of relation "rooms" already exists (SQLSTATE 42701)',
    ]
    assert empty_db.execute("SELECT to_regclass('later')").fetchone() == (None,)

    # Someone finished it by hand: record it as applied, with the fixed file's checksum.
    empty_db.execute("ALTER TABLE rooms ADD COLUMN beds int")
    resolve_incomplete(empty_db, "2_floors.sql", action="applied", migration=discover(tmp_path)[1])
    report = apply_migrations(empty_db, discover(tmp_path))
    assert report.applied == ["3_later.sql"]


def test_a_file_that_fails_on_its_first_statement_outside_a_transaction_leaves_no_row(
    empty_db, tmp_path
):
    write(tmp_path, "1_index.sql", "CREATE INDEX CONCURRENTLY i ON missing (a);\nSELECT 1;\n")
    with pytest.raises(MigrationError) as info:
        apply_migrations(empty_db, discover(tmp_path))
    assert type(info.value) is MigrationError
    assert (info.value.line, info.value.sqlstate) == (1, "42P01")
    assert ledger(empty_db) == []


def test_an_interrupted_file_is_reported_and_can_be_run_again(empty_db, tmp_path):
    write(tmp_path, "1_vacuum.sql", "CREATE TABLE t (a int);\nVACUUM t;\n")
    apply_migrations(empty_db, discover(tmp_path))
    empty_db.execute("UPDATE clinicdb.migrations SET status = 'running'")
    with pytest.raises(MigrationIncompleteError) as info:
        apply_migrations(empty_db, discover(tmp_path))
    assert "1_vacuum.sql: was interrupted while it ran (started " in str(info.value)
    resolve_incomplete(empty_db, "1_vacuum.sql", action="rerun")
    with pytest.raises(MigrationError, match='relation "t" already exists'):
        apply_migrations(empty_db, discover(tmp_path))


def test_a_procedure_that_commits_needs_the_directive(empty_db, tmp_path):
    write(
        tmp_path,
        "1_proc.sql",
        "CREATE TABLE batches (n int);\n"
        "CREATE PROCEDURE fill() LANGUAGE plpgsql AS $$\n"
        "BEGIN\n"
        "  INSERT INTO batches VALUES (1); COMMIT;\n"
        "  INSERT INTO batches VALUES (2); COMMIT;\n"
        "END $$;\n",
    )
    path = write(tmp_path, "2_fill.sql", "CALL fill();\n")
    with pytest.raises(MigrationError) as info:
        apply_migrations(empty_db, discover(tmp_path))
    assert (info.value.line, info.value.sqlstate) == (1, "2D000")
    assert str(info.value).endswith(
        "hint: a file runs inside one transaction, where a procedure cannot COMMIT or ROLLBACK; "
        "for a migration, add `-- clinicdb:no-transaction` among its first lines to run it "
        "statement by statement outside a transaction"
    )
    path.write_text("-- clinicdb:no-transaction\nCALL fill();\n")
    apply_migrations(empty_db, discover(tmp_path))
    assert empty_db.execute("SELECT count(*) FROM batches").fetchone() == (2,)


# --------------------------------------------------------------------------- locating errors


def test_an_error_without_position_in_a_batch_is_located_by_statement(empty_db, tmp_path):
    write(
        tmp_path,
        "1_rooms.sql",
        "CREATE TABLE rooms (id int PRIMARY KEY);\n"
        "INSERT INTO rooms VALUES (1);\n"
        "INSERT INTO rooms VALUES (2);\n"
        "\n"
        "INSERT INTO rooms VALUES (1);\n"
        "INSERT INTO rooms VALUES (3);\n",
    )
    with pytest.raises(MigrationError) as info:
        apply_migrations(empty_db, discover(tmp_path))
    assert (info.value.line, info.value.column, info.value.sqlstate) == (5, 1, "23505")
    assert info.value.statement == "INSERT INTO rooms VALUES (1);"
    assert empty_db.execute("SELECT to_regclass('rooms')").fetchone() == (None,)


def test_a_rule_with_parentheses_applies(empty_db, tmp_path):
    write(
        tmp_path,
        "1_rule.sql",
        "CREATE TABLE visits (id int);\n"
        "CREATE TABLE visit_log (id int);\n"
        "CREATE TABLE visit_stats (n int);\n"
        "INSERT INTO visit_stats VALUES (0);\n"
        "CREATE RULE log_visit AS ON INSERT TO visits DO ALSO (\n"
        "  INSERT INTO visit_log VALUES (NEW.id);\n"
        "  UPDATE visit_stats SET n = n + 1;\n"
        ");\n"
        "INSERT INTO visits VALUES (7);\n",
    )
    apply_migrations(empty_db, discover(tmp_path))
    assert empty_db.execute("SELECT (SELECT id FROM visit_log), n FROM visit_stats").fetchone() == (
        7,
        1,
    )


def test_repeatable_migrations_run_again_when_they_change(empty_db, tmp_path):
    write(tmp_path, "V1__rooms.sql", "CREATE TABLE rooms (id int, floor int);\n")
    view = write(tmp_path, "R__views.sql", "CREATE OR REPLACE VIEW floors AS SELECT 1 AS floor;\n")
    first = apply_migrations(empty_db, discover(tmp_path))
    assert first.applied == ["V1__rooms.sql", "R__views.sql"]
    assert apply_migrations(empty_db, discover(tmp_path)).applied == []
    view.write_text("CREATE OR REPLACE VIEW floors AS SELECT DISTINCT floor FROM rooms;\n")
    assert edited(discover(tmp_path), applied(empty_db)) == []
    again = apply_migrations(empty_db, discover(tmp_path))
    assert (again.applied, again.reapplied, again.skipped) == (
        ["R__views.sql"],
        ["R__views.sql"],
        ["V1__rooms.sql"],
    )
    assert applied(empty_db)["R__views.sql"] == discover(tmp_path)[1].checksum


def test_a_refused_file_stops_the_run_before_anything_is_applied(empty_db, tmp_path):
    write(tmp_path, "1_schema.sql", "CREATE SCHEMA app;\n")
    write(tmp_path, "2_bad.sql", "\\connect other\nCREATE TABLE app.t (a int);\n")
    with pytest.raises(SQLSyntaxUnsupportedError, match="2_bad.sql, line 1: psql meta-command"):
        apply_migrations(empty_db, discover(tmp_path))
    assert applied(empty_db) == {}


def test_a_migration_whose_name_is_not_utf8_is_applied_and_recorded(empty_db, tmp_path):
    path = Path(os.fsdecode(bytes(tmp_path) + b"/001_caf\xe9_rooms.sql"))
    path.write_text("CREATE TABLE rooms (id int);\nCREATE TABLE rooms (id int);\n")
    with pytest.raises(MigrationError) as info:
        apply_migrations(empty_db, discover(tmp_path))
    assert str(info.value).startswith(
        'migration 001_caf\\xe9_rooms.sql, line 2, column 1: relation "rooms" already exists'
    )
    path.write_text("CREATE TABLE rooms (id int);\n")
    apply_migrations(empty_db, discover(tmp_path))
    assert list(applied(empty_db)) == ["001_caf\\xe9_rooms.sql"]
