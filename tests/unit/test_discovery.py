from __future__ import annotations

from pathlib import Path

import pytest

from pytest_clinicdb.errors import MigrationDiscoveryError, SQLSyntaxUnsupportedError
from pytest_clinicdb.migrations import discover, required_extensions


def write(directory: Path, name: str, text: str | bytes = "SELECT 1;") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_orders_by_numeric_prefix_not_by_text(tmp_path):
    for name in ("10_ten.sql", "9_nine.sql", "100_hundred.sql", "011_eleven.sql"):
        write(tmp_path, name)
    assert [m.name for m in discover(tmp_path)] == [
        "9_nine.sql",
        "10_ten.sql",
        "011_eleven.sql",
        "100_hundred.sql",
    ]


def test_duplicate_numbers_are_refused_naming_both_files(tmp_path):
    write(tmp_path, "001_a.sql")
    write(tmp_path, "1_b.sql")
    with pytest.raises(MigrationDiscoveryError, match=r"001_a.sql and 1_b.sql share the number 1"):
        discover(tmp_path)


def test_missing_directory_names_the_option(tmp_path):
    with pytest.raises(MigrationDiscoveryError) as info:
        discover(tmp_path / "nope")
    assert "does not exist" in str(info.value)
    assert "--clinicdb-migrations" in str(info.value)


def test_non_sql_file_is_refused(tmp_path):
    write(tmp_path, "001_a.sql")
    write(tmp_path, "notes.txt", "hello")
    with pytest.raises(MigrationDiscoveryError, match="notes.txt .* is not a .sql file"):
        discover(tmp_path)


def test_file_without_number_is_refused(tmp_path):
    write(tmp_path, "init.sql")
    with pytest.raises(MigrationDiscoveryError, match="init.sql has no numeric prefix"):
        discover(tmp_path)


def test_empty_file_is_refused(tmp_path):
    write(tmp_path, "001_a.sql", "-- only a comment\n")
    with pytest.raises(SQLSyntaxUnsupportedError, match="001_a.sql, line 1: migration is empty"):
        discover(tmp_path)


def test_non_utf8_file_is_refused_with_line(tmp_path):
    write(tmp_path, "001_a.sql", b"SELECT 1;\nSELECT '\xff';\n")
    with pytest.raises(
        SQLSyntaxUnsupportedError, match=r"001_a.sql, line 2: migration is not valid UTF-8"
    ):
        discover(tmp_path)


@pytest.mark.parametrize(
    ("sql", "line", "what"),
    [
        ("CREATE TABLE t (a int);\nCOMMIT;\n", 2, "COMMIT commits in the middle"),
        ("BEGIN;\nSELECT 1;\n", 1, "BEGIN opens its own transaction"),
        ("SELECT 1;\n\nCREATE INDEX CONCURRENTLY i ON t (a);\n", 3, "CREATE INDEX CONCURRENTLY"),
        ("VACUUM t;\n", 1, "VACUUM cannot run inside a transaction block"),
    ],
)
def test_statements_that_cannot_run_in_the_files_transaction(tmp_path, sql, line, what):
    write(tmp_path, "001_a.sql", sql)
    with pytest.raises(SQLSyntaxUnsupportedError) as info:
        discover(tmp_path)
    assert info.value.line == line
    assert what in str(info.value)


def test_begin_atomic_is_not_mistaken_for_begin(tmp_path):
    write(
        tmp_path,
        "001_a.sql",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;\n",
    )
    assert len(discover(tmp_path)[0].file.statements) == 1


def test_required_extensions_are_read_from_create_extension(tmp_path):
    write(
        tmp_path,
        "001_ext.sql",
        'CREATE EXTENSION IF NOT EXISTS citext;\ncreate extension "pg_trgm";\n',
    )
    write(tmp_path, "002_more.sql", "CREATE EXTENSION citext;\nSELECT 1;\n")
    assert required_extensions(discover(tmp_path)) == ["citext", "pg_trgm"]


def test_checksum_changes_with_bytes(tmp_path):
    path = write(tmp_path, "001_a.sql", "SELECT 1;")
    before = discover(tmp_path)[0].checksum
    path.write_text("SELECT 1; ")
    assert discover(tmp_path)[0].checksum != before
