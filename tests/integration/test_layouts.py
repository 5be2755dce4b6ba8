"""The migration layouts of the common tools, applied on a real server as their tools apply them.

Each test copies one project of ``tests/projects/layout_<tool>`` and runs discovery and the
runner on it; the down sections of those projects are destructive, so a down section that ran
shows as something missing.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pytest_clinicdb.errors import MigrationEditedError, SeedError
from pytest_clinicdb.migrations import applied, apply_migrations, discover
from pytest_clinicdb.sqlfile import execute_file, read_sql_file

pytestmark = pytest.mark.integration

PROJECTS = Path(__file__).resolve().parents[1] / "projects"


def project(name: str, tmp_path: Path) -> Path:
    dest = tmp_path / name
    shutil.copytree(PROJECTS / name, dest)
    return dest


def one(conn, query: str, *args: object) -> object:
    row = conn.execute(query, args or None).fetchone()
    return row[0] if row else None


def ledger(conn) -> list[tuple[str, str, int | None]]:
    return conn.execute(
        "SELECT name, status, statements_total FROM clinicdb.migrations ORDER BY name"
    ).fetchall()


def valid_indexes(conn, table: str) -> list[str]:
    rows = conn.execute(
        "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass "
        "AND indisvalid AND NOT indisprimary ORDER BY 1",
        (table,),
    ).fetchall()
    return [r[0] for r in rows]


def test_golang_migrate(empty_db, tmp_path):
    folder = project("layout_golang_migrate", tmp_path) / "db" / "migrations"
    found = discover(folder)
    report = apply_migrations(empty_db, found)
    assert report.applied == [
        "000001_create_patients.up.sql",
        "000002_create_appointments.up.sql",
        "000003_add_patient_phone.up.sql",
        "000010_appointments_per_day.up.sql",
    ]
    assert [str(n) for n in found.notes] == [
        "migrations: skipped 4 down migration(s) (*.down.sql): golang-migrate runs them only "
        "when migrating down"
    ]
    # no down file ran: each would have dropped what its up file made
    assert one(empty_db, "SELECT to_regclass('clinic.appointments_per_day')::text") == (
        "clinic.appointments_per_day"
    )
    assert (
        one(
            empty_db,
            "SELECT count(*) FROM information_schema.columns "
            "WHERE table_schema = 'clinic' AND table_name = 'patients' AND column_name = 'phone'",
        )
        == 1
    )
    assert sorted(applied(empty_db)) == report.applied


def test_flyway(empty_db, tmp_path):
    root = project("layout_flyway", tmp_path)
    folders = [root / "db" / "migration", root / "db" / "reporting"]
    found = discover(folders)
    assert found.layouts == {folders[0]: "flyway", folders[1]: "flyway"}
    report = apply_migrations(empty_db, found)
    assert report.applied == [
        "V1__create_clinics.sql",
        "V1.1__clinic_timezone.sql",
        "V2__create_patients.sql",
        "V2.1__create_reporting_schema.sql",
        "V3__create_visits.sql",
        "V3.5__index_visits_concurrently.sql",
        "V4__visits_per_room.sql",
        "R__clinic_views.sql",
    ]
    assert [str(n) for n in found.notes] == [
        "migration: skipped 1 undo migration(s) (U…__*.sql): Flyway runs them only on undo"
    ]
    assert one(empty_db, "SELECT to_regclass('clinic.visits')::text") == "clinic.visits"
    # CREATE INDEX CONCURRENTLY ran, outside a transaction, statement by statement
    assert valid_indexes(empty_db, "clinic.visits") == [
        "clinic.visits_patient_seen",
        "clinic.visits_room_day",
    ]
    assert ("V3.5__index_visits_concurrently.sql", "applied", 2) in ledger(empty_db)

    # The repeatable migration runs again when it changes …
    views = folders[0] / "R__clinic_views.sql"
    views.write_text(
        views.read_text().replace(
            "SELECT p.id, p.full_name, c.name AS clinic",
            "SELECT p.id, p.full_name, c.name AS clinic, c.time_zone",
        )
    )
    again = apply_migrations(empty_db, discover(folders))
    assert (again.applied, again.reapplied) == (["R__clinic_views.sql"], ["R__clinic_views.sql"])
    assert (
        one(
            empty_db,
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'clinic' "
            "AND table_name = 'patient_directory' AND column_name = 'time_zone'",
        )
        == 1
    )
    assert apply_migrations(empty_db, discover(folders)).applied == []
    # … a versioned one may not change
    v2 = folders[0] / "V2__create_patients.sql"
    v2.write_text(v2.read_text().replace("full_name  text", "full_name  varchar(200)"))
    with pytest.raises(MigrationEditedError) as info:
        apply_migrations(empty_db, discover(folders))
    assert info.value.edited == ["V2__create_patients.sql"]


def test_dbmate(empty_db, tmp_path):
    folder = project("layout_dbmate", tmp_path) / "db" / "migrations"
    found = discover(folder)
    assert found.layouts == {folder: "dbmate"}
    report = apply_migrations(empty_db, found)
    assert report.applied == [
        "20240110090000_create_patients.sql",
        "20240112143000_create_prescriptions.sql",
        "20240115080000_index_prescriptions_concurrently.sql",
        "20240120101500_add_prescriber.sql",
    ]
    assert [len(m.notes) for m in found] == [1, 1, 1, 1]  # each down section, left out
    # every down section is destructive: nothing of it ran
    assert valid_indexes(empty_db, "clinic.prescriptions") == ["clinic.prescriptions_patient_day"]
    assert ledger(empty_db)[2] == (
        "20240115080000_index_prescriptions_concurrently.sql",
        "applied",
        1,
    )
    empty_db.execute(
        "INSERT INTO clinic.patients (full_name, allergies) VALUES ('Ines Duarte', '{amoxicillin}')"
    )
    with pytest.raises(psycopg.errors.CheckViolation, match="allergic to amoxicillin"):
        empty_db.execute(
            "INSERT INTO clinic.prescriptions (patient_id, drug, dose_mg) VALUES (1, 'amoxicillin', 500)"
        )
    empty_db.execute(
        "INSERT INTO clinic.prescriptions (patient_id, drug, dose_mg) VALUES (1, 'ibuprofen', 400)"
    )
    assert one(empty_db, "SELECT prescriber FROM clinic.prescriptions") == "unknown"


def test_goose(empty_db, tmp_path):
    folder = project("layout_goose", tmp_path) / "migrations"
    found = discover(folder)
    assert found.layouts == {folder: "goose"}
    assert [m.transactional for m in found] == [True, True, True, False, True]
    report = apply_migrations(empty_db, found)
    assert report.applied == [
        "00001_create_lab_tables.sql",
        "00002_touch_updated_at.sql",
        "00003_reference_ranges.sql",
        "00004_index_results_concurrently.sql",
        "00010_flag_out_of_range.sql",
    ]
    assert valid_indexes(empty_db, "lab.results") == ["lab.results_order"]
    empty_db.execute("INSERT INTO lab.orders (patient_ref) VALUES ('P-0001')")
    empty_db.execute(
        "INSERT INTO lab.results (order_id, analyte, value, unit, updated_at) "
        "VALUES (1, 'glucose', 7.2, 'mmol/L', '2024-01-01')"
    )
    empty_db.execute("UPDATE lab.results SET value = 7.3")  # the StatementBegin/End trigger
    assert one(empty_db, "SELECT updated_at > '2024-01-02' FROM lab.results") is True
    assert one(empty_db, "SELECT out_of_range FROM lab.flagged_results") is True
    assert one(empty_db, "SELECT count(*) FROM lab.reference_ranges") == 2


@pytest.fixture
def platform_roles(clinic_postgres) -> Iterator[None]:
    """Drop the Supabase roles afterwards if this test created them (roles are server-wide)."""
    names = ["anon", "authenticated", "service_role"]
    with psycopg.connect(clinic_postgres.dsn, autocommit=True) as admin:
        may = admin.execute(
            "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        if may != (True,):
            pytest.skip("the platform bootstrap creates roles: needs a role with CREATEROLE")
        rows = admin.execute("SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", (names,))
        existing = {r[0] for r in rows.fetchall()}
        yield
        for name in names:
            if name not in existing:
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))


def run_files(conn, paths: list[Path], what: str) -> None:
    for path in paths:
        with conn.transaction():
            execute_file(conn, read_sql_file(path, what=what), SeedError, settings={})


def test_supabase(platform_roles, empty_db, tmp_path):
    root = project("layout_supabase", tmp_path)
    platform = sorted((root / "platform").glob("*.sql"))
    run_files(empty_db, platform, "bootstrap file")
    run_files(empty_db, platform, "bootstrap file")  # a second build on the same server
    folder = root / "supabase" / "migrations"
    found = discover(folder)
    assert found.layouts == {folder: "supabase"}
    report = apply_migrations(empty_db, found)
    assert report.applied == [
        "20240101120000_create_profiles.sql",
        "20240115093000_create_appointments.sql",
        "20240130_add_profile_phone.sql",  # by name, as the CLI sorts: not first
        "20240202140000_index_appointments.sql",
    ]
    assert [str(n) for n in found[2].notes] == [
        "20240130_add_profile_phone.sql: version 20240130 has 8 digits, not 14: ordered by file "
        "name as the Supabase CLI does"
    ]
    run_files(empty_db, [root / "supabase" / "seed.sql"], "dev seed")
    ana = "6f1c1e6a-1111-4c8e-9d1a-000000000001"
    with empty_db.transaction(force_rollback=True):
        empty_db.execute("SET LOCAL ROLE authenticated")
        empty_db.execute("SELECT set_config('request.jwt.claim.sub', %s, true)", (ana,))
        rows = empty_db.execute("SELECT full_name, phone FROM public.profiles").fetchall()
        visits = empty_db.execute("SELECT reason FROM public.appointments").fetchall()
    assert rows == [("Ana Silva", "+351 912 000 001")]
    assert visits == [("annual check-up",)]
    assert one(empty_db, "SELECT email FROM public.profiles WHERE id = %s", ana) == (
        "Ana.Silva@Example.test"
    )
    with empty_db.transaction(force_rollback=True):
        # Supabase puts the extensions schema on the search_path: citext's = is found there.
        empty_db.execute("SET LOCAL search_path = public, extensions")
        same = one(empty_db, "SELECT count(*) FROM profiles WHERE email = 'ana.silva@example.test'")
    assert same == 1
