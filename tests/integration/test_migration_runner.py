"""The migration runner on a real server: ledger, checksums, errors with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_clinicdb.errors import ExtensionsMissingError, MigrationEditedError, MigrationError
from pytest_clinicdb.migrations import applied, apply_migrations, discover, preflight_extensions

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
