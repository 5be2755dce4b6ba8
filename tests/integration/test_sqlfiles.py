"""SQL files as teams have them, on a real server: pg_dump output, COPY, includes, big seeds."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pytest_clinicdb.errors import SeedError
from pytest_clinicdb.migrations import applied, apply_migrations, discover
from pytest_clinicdb.sqlfile import execute_file, read_sql_file

pytestmark = pytest.mark.integration

CLINIC = """
CREATE SCHEMA clinic;
CREATE TABLE clinic.patients (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    born date,
    notes text
);
CREATE TABLE clinic.rooms (id int PRIMARY KEY, label text NOT NULL);
CREATE TABLE clinic.waiting_list (patient_id bigint REFERENCES clinic.patients (id));
CREATE FUNCTION clinic.patient_count() RETURNS bigint LANGUAGE plpgsql STABLE AS $$
BEGIN
  RETURN (SELECT count(*) FROM clinic.patients);
END;
$$;
"""


def tool(major: int, name: str) -> Path:
    from pytest_clinicdb.binaries import find_binaries

    try:
        path = find_binaries(version=major).tool(name)
    except Exception:
        pytest.skip(f"no PostgreSQL {major} client programs installed")
    if not path.exists():
        pytest.skip(f"{name} {major} is not installed")
    return path


@pytest.fixture
def source_dsn(clinic_postgres) -> Iterator[str]:
    """A database migrated by the runner, with rows, to be dumped."""
    name = f"clinicdb_scratch_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(clinic_postgres.dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield clinic_postgres.dsn_for(name)
        finally:
            admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def dump(major: int, dsn: str, *args: str) -> str:
    run = subprocess.run(
        [str(tool(major, "pg_dump")), *args, "-d", dsn],
        capture_output=True,
        text=True,
        check=True,
    )
    return run.stdout


def test_a_pg_dump_baseline_and_data_seed_build_as_psql_would(
    empty_db, source_dsn, clinic_postgres, tmp_path
):
    migrations = tmp_path / "src_migrations"
    migrations.mkdir()
    (migrations / "001_clinic.sql").write_text(CLINIC)
    with psycopg.connect(source_dsn, autocommit=True) as src:
        apply_migrations(src, discover(migrations))
        src.execute(
            "INSERT INTO clinic.patients (name, born, notes) VALUES "
            "('Ann Lee', '1980-02-03', E'allergic:\\tpenicillin\\nsee file C:\\\\x'), "
            "('Bo Chen', NULL, NULL), ('Cy; --not a comment', '2001-12-31', '\\.')"
        )
        src.execute("INSERT INTO clinic.rooms VALUES (1, 'exam 1'), (2, 'exam 2')")
        expected = src.execute("SELECT * FROM clinic.patients ORDER BY id").fetchall()
    baseline = dump(clinic_postgres.major, source_dsn, "--schema-only")
    data = dump(clinic_postgres.major, source_dsn, "--data-only")
    assert "CREATE SCHEMA clinicdb;" in baseline  # the ledger of the dumped database
    assert "COPY clinic.rooms (id, label) FROM stdin;" in data
    assert "COPY clinic.waiting_list (patient_id) FROM stdin;\n\\.\n" in data  # an empty table
    restricted = baseline.startswith("--\n-- PostgreSQL database dump\n--\n\n\\restrict ")

    target = tmp_path / "migrations"
    target.mkdir()
    (target / "001_baseline.sql").write_text(baseline)
    (target / "002_after.sql").write_text("CREATE TABLE clinic.visits (id int);\n")
    report = apply_migrations(empty_db, discover(target))
    assert report.applied == ["001_baseline.sql", "002_after.sql"]  # unqualified search_path reset
    notes = [str(n) for n in report.notes]
    assert any("skipped CREATE SCHEMA: the runner's own ledger" in n for n in notes)
    if restricted:
        assert notes[0].startswith("001_baseline.sql, line 5: \\restrict ignored")

    seed = tmp_path / "seed.sql"
    seed.write_text(data)
    with empty_db.transaction():
        execute_file(empty_db, read_sql_file(seed, what="seed"), SeedError, settings={})
    assert empty_db.execute("SELECT * FROM clinic.patients ORDER BY id").fetchall() == expected
    assert empty_db.execute("SELECT count(*) FROM clinic.rooms").fetchone() == (2,)
    assert empty_db.execute("SELECT count(*) FROM clinic.waiting_list").fetchone() == (0,)
    # the dumped ledger rows were not loaded over ours; the sequence followed the data
    assert list(applied(empty_db)) == ["001_baseline.sql", "002_after.sql"]
    assert empty_db.execute("SELECT nextval('clinic.patients_id_seq')").fetchone() == (4,)
    # the function body was checked: the baseline's check_function_bodies = false did not stay
    assert empty_db.execute("SHOW check_function_bodies").fetchone() == ("on",)


def test_a_bad_copy_row_is_reported_at_its_line(empty_db, tmp_path):
    empty_db.execute("CREATE TABLE rooms (id int, label text)")
    seed = tmp_path / "seed.sql"
    seed.write_text(
        "SET statement_timeout = 0;\n"
        "COPY public.rooms (id, label) FROM stdin;\n"
        "1\texam 1\n"
        "x\texam 2\n"
        "\\.\n"
    )
    with pytest.raises(SeedError) as info, empty_db.transaction():
        execute_file(empty_db, read_sql_file(seed, what="seed"), SeedError, settings={})
    assert (info.value.line, info.value.sqlstate) == (4, "22P02")
    assert 'invalid input syntax for type integer: "x"' in str(info.value)


def test_a_seed_relaxing_settings_does_not_relax_the_next_one(empty_db, tmp_path):
    relax = tmp_path / "1.sql"
    relax.write_text("SET check_function_bodies = false;\nSET search_path = '';\n")
    broken = tmp_path / "2.sql"
    broken.write_text(
        "CREATE FUNCTION public.f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETRUN 1; END $$;\n"
    )
    with empty_db.transaction():
        execute_file(empty_db, read_sql_file(relax, what="seed"), SeedError, settings={})
    with pytest.raises(SeedError) as info, empty_db.transaction():
        execute_file(
            empty_db, read_sql_file(broken, what="seed"), SeedError, settings={"app.x": "1"}
        )
    assert (info.value.line, info.value.sqlstate) == (1, "42601")


def test_included_files_run_in_place_and_errors_name_them(empty_db, tmp_path):
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "rooms.sql").write_text(
        "INSERT INTO rooms VALUES (1, 'exam 1');\n\nINSERT INTO rooms VALUES (2, 'exam 2', 3);\n"
    )
    seed = tmp_path / "seed.sql"
    seed.write_text("CREATE TABLE rooms (id int, label text);\n\\ir parts/rooms.sql\nSELECT 1;\n")
    with pytest.raises(SeedError) as info, empty_db.transaction():
        execute_file(empty_db, read_sql_file(seed, what="seed"), SeedError, settings={})
    err = info.value
    assert (err.file.name, err.line, err.sqlstate) == ("rooms.sql", 3, "42601")
    assert "included from seed.sql, line 2" in str(err)
    (tmp_path / "parts" / "rooms.sql").write_text("INSERT INTO rooms VALUES (2, 'exam 2');\n")
    with empty_db.transaction():
        execute_file(empty_db, read_sql_file(seed, what="seed"), SeedError, settings={})
    assert empty_db.execute("SELECT label FROM rooms").fetchall() == [("exam 2",)]


def test_a_big_seed_reports_an_error_deep_inside_at_its_line(empty_db, tmp_path):
    empty_db.execute("CREATE TABLE patients (id int PRIMARY KEY, name text)")
    rows = [f"INSERT INTO patients VALUES ({i}, 'patient {i}');" for i in range(1, 5001)]
    rows[3999] = "INSERT INTO patients VALUES (17, 'a second 17');"  # line 4000: no position
    rows[4499] = "INSERT INTO patients VALUES (4500, 'x', 1);"
    seed = tmp_path / "seed.sql"
    seed.write_text("\n".join(rows) + "\n")
    with pytest.raises(SeedError) as info, empty_db.transaction():
        execute_file(empty_db, read_sql_file(seed, what="seed"), SeedError, settings={})
    assert (info.value.line, info.value.sqlstate) == (4000, "23505")
    rows[3999] = "INSERT INTO patients VALUES (4000, 'patient 4000');"
    seed.write_text("\n".join(rows) + "\n")
    with pytest.raises(SeedError) as info, empty_db.transaction():
        execute_file(empty_db, read_sql_file(seed, what="seed"), SeedError, settings={})
    assert (info.value.line, info.value.column, info.value.sqlstate) == (4500, 41, "42601")
    assert info.value.statement == "INSERT INTO patients VALUES (4500, 'x', 1);"


def test_a_caller_that_sets_its_own_settings_keeps_them(empty_db, tmp_path):
    # The transitional path: settings set before the call, none passed.
    seed = tmp_path / "seed.sql"
    seed.write_text("CREATE TABLE env AS SELECT current_setting('app.environment') AS e;\n")
    with empty_db.transaction():
        empty_db.execute("SELECT set_config('app.environment', 'test', true)")
        execute_file(empty_db, read_sql_file(seed, what="seed"), SeedError)
    assert empty_db.execute("SELECT e FROM env").fetchone() == ("test",)
