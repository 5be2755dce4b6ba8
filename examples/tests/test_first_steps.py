"""First steps with clinic_db: the migrated clinic database, rolled back after every test."""

from __future__ import annotations

import psycopg
import pytest


def new_clinic(conn: psycopg.Connection, slug: str = "north") -> str:
    row = conn.execute(
        "INSERT INTO clinic.clinics (name, slug) VALUES (%s, %s) RETURNING id",
        (f"{slug.title()} Clinic", slug),
    ).fetchone()
    return str(row[0])


def test_system_seed_is_there(clinic_db):
    flags = clinic_db.execute("SELECT count(*) FROM clinic.feature_flags").fetchone()[0]
    settings = clinic_db.execute("SELECT count(*) FROM clinic.system_settings").fetchone()[0]
    assert flags > 0
    assert settings > 0


def test_no_sample_data_without_the_dev_seed(clinic_db):
    assert clinic_db.execute("SELECT count(*) FROM clinic.patients").fetchone()[0] == 0


def test_registering_a_patient_writes_one_audit_row(clinic_db):
    clinic_id = new_clinic(clinic_db)
    patient_id = clinic_db.execute(
        "INSERT INTO clinic.patients (clinic_id, medical_record_number, full_name, date_of_birth)"
        " VALUES (%s, 'MRN-1', 'Ada Example', '1990-05-01') RETURNING id",
        (clinic_id,),
    ).fetchone()[0]
    rows = clinic_db.execute(
        "SELECT action FROM audit.audit_logs WHERE table_name = 'patients' AND record_id = %s",
        (str(patient_id),),
    ).fetchall()
    assert rows == [("INSERT",)]


def test_each_test_starts_from_the_template(clinic_db):
    # The clinic created by the test above was rolled back.
    assert clinic_db.execute("SELECT count(*) FROM clinic.clinics").fetchone()[0] == 0


def test_expected_errors_go_in_a_savepoint(clinic_db):
    new_clinic(clinic_db, "south")
    with pytest.raises(psycopg.errors.UniqueViolation), clinic_db.transaction():
        new_clinic(clinic_db, "south")
    assert clinic_db.execute("SELECT count(*) FROM clinic.clinics").fetchone()[0] == 1


def test_code_that_commits_gets_its_own_database(clinic_db_fresh, clinic_dsn):
    new_clinic(clinic_db_fresh, "committed")
    clinic_db_fresh.commit()
    with psycopg.connect(clinic_dsn) as other:
        count = other.execute("SELECT count(*) FROM clinic.clinics").fetchone()[0]
    assert count == 1
