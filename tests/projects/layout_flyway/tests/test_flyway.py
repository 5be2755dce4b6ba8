"""Clinics, patients and visits, migrated as `flyway migrate` migrates them from two locations."""

from __future__ import annotations

import psycopg
import pytest


def one(conn, query, *params):
    return conn.execute(query, params or None).fetchone()[0]


def new_clinic(conn, clinic_id=1, name="Riverside Clinic"):
    conn.execute("INSERT INTO clinic.clinics (id, name) VALUES (%s, %s)", (clinic_id, name))
    conn.execute("INSERT INTO clinic.rooms VALUES (%s, 'A1'), (%s, 'B2')", (clinic_id, clinic_id))


def new_patient(conn, clinic_id=1, name="Lena Novak"):
    return one(
        conn,
        "INSERT INTO clinic.patients (clinic_id, full_name) VALUES (%s, %s) RETURNING id",
        clinic_id,
        name,
    )


def test_the_versions_of_both_locations_ran_in_version_order(clinic_db):
    rows = clinic_db.execute("SELECT name FROM clinicdb.migrations ORDER BY applied_at")
    assert [r[0] for r in rows] == [
        "V1__create_clinics.sql",
        "V1.1__clinic_timezone.sql",
        "V2__create_patients.sql",
        "V2.1__create_reporting_schema.sql",  # db/reporting
        "V3__create_visits.sql",
        "V3.5__index_visits_concurrently.sql",
        "V4__visits_per_room.sql",  # db/reporting
        "R__clinic_views.sql",  # repeatable: after every versioned migration
    ]


def test_the_dotted_version_added_the_time_zone(clinic_db):
    new_clinic(clinic_db)
    assert one(clinic_db, "SELECT time_zone FROM clinic.clinics") == "Europe/Paris"


def test_the_concurrent_indexes_exist_and_are_valid(clinic_db):
    rows = clinic_db.execute(
        "SELECT indexrelid::regclass::text, indisvalid, indisready FROM pg_index"
        " WHERE indrelid = 'clinic.visits'::regclass AND NOT indisprimary ORDER BY 1"
    )
    assert rows.fetchall() == [
        ("clinic.visits_patient_seen", True, True),
        ("clinic.visits_room_day", True, True),
    ]


def test_the_undo_migration_did_not_run(clinic_db):
    # U3__drop_visits.sql drops the table; Flyway runs it only on `flyway undo`.
    assert one(clinic_db, "SELECT to_regclass('clinic.visits')::text") == "clinic.visits"
    assert one(clinic_db, "SELECT count(*) FROM clinicdb.migrations WHERE name LIKE 'U%%'") == 0


def test_the_repeatable_view_lists_patients_with_their_clinic(clinic_db):
    new_clinic(clinic_db)
    new_patient(clinic_db)
    rows = clinic_db.execute("SELECT full_name, clinic FROM clinic.patient_directory")
    assert rows.fetchall() == [("Lena Novak", "Riverside Clinic")]


def test_visits_per_room_from_the_reporting_location(clinic_db):
    new_clinic(clinic_db)
    patient = new_patient(clinic_db)
    for room in ("A1", "A1", "B2"):
        clinic_db.execute(
            "INSERT INTO clinic.visits (patient_id, clinic_id, room_code) VALUES (%s, 1, %s)",
            (patient, room),
        )
    rows = clinic_db.execute(
        "SELECT room_code, visits FROM reporting.visits_per_room ORDER BY room_code"
    )
    assert rows.fetchall() == [("A1", 2), ("B2", 1)]


def test_a_visit_needs_a_room_of_its_clinic(clinic_db):
    new_clinic(clinic_db)
    patient = new_patient(clinic_db)
    with pytest.raises(psycopg.errors.ForeignKeyViolation), clinic_db.transaction():
        clinic_db.execute(
            "INSERT INTO clinic.visits (patient_id, clinic_id, room_code) VALUES (%s, 1, 'Z9')",
            (patient,),
        )


def test_daily_counts_are_committed(clinic_db_fresh, clinic_dsn):
    new_clinic(clinic_db_fresh)
    clinic_db_fresh.execute(
        "INSERT INTO reporting.daily_counts (day, clinic_id, patients) VALUES ('2024-03-01', 1, 4)"
    )
    clinic_db_fresh.commit()
    with psycopg.connect(clinic_dsn) as other:
        assert one(other, "SELECT sum(patients) FROM reporting.daily_counts") == 4
