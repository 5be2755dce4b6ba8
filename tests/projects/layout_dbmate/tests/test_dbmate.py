"""Prescriptions, migrated as `dbmate up` migrates them: the up sections only."""

from __future__ import annotations

import psycopg
import pytest


def one(conn, query, *params):
    return conn.execute(query, params or None).fetchone()[0]


def new_patient(conn, name="Ines Duarte", allergies=()):
    return one(
        conn,
        "INSERT INTO clinic.patients (full_name, allergies) VALUES (%s, %s) RETURNING id",
        name,
        list(allergies),
    )


def prescribe(conn, patient, drug="ibuprofen", dose=400):
    return conn.execute(
        "INSERT INTO clinic.prescriptions (patient_id, drug, dose_mg) VALUES (%s, %s, %s)"
        " RETURNING prescriber",
        (patient, drug, dose),
    ).fetchone()[0]


def test_no_down_section_ran(clinic_db):
    # Every down section drops what its up section made: the tables, the trigger function, the
    # index and the column are all still here.
    assert one(clinic_db, "SELECT to_regclass('clinic.patients')::text") == "clinic.patients"
    assert one(clinic_db, "SELECT to_regclass('clinic.prescriptions')::text") == (
        "clinic.prescriptions"
    )
    assert one(clinic_db, "SELECT to_regprocedure('clinic.refuse_allergic_drug()')::text") == (
        "clinic.refuse_allergic_drug()"
    )
    assert (
        one(
            clinic_db,
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = 'clinic'"
            " AND table_name = 'prescriptions' AND column_name = 'prescriber'",
        )
        == 1
    )


def test_the_index_built_concurrently_is_valid(clinic_db):
    row = clinic_db.execute(
        "SELECT indisvalid, indisready, pg_get_indexdef(indexrelid) FROM pg_index"
        " WHERE indexrelid = to_regclass('clinic.prescriptions_patient_day')"
    ).fetchone()
    assert row is not None, "the transaction:false migration did not run"
    assert row[:2] == (True, True)
    assert row[2].endswith("USING btree (patient_id, prescribed DESC)")


def test_the_migrations_are_recorded_in_timestamp_order(clinic_db):
    rows = clinic_db.execute("SELECT name FROM clinicdb.migrations ORDER BY applied_at")
    assert [r[0] for r in rows] == [
        "20240110090000_create_patients.sql",
        "20240112143000_create_prescriptions.sql",
        "20240115080000_index_prescriptions_concurrently.sql",
        "20240120101500_add_prescriber.sql",
    ]


def test_an_allergic_patient_is_not_prescribed_the_drug(clinic_db):
    patient = new_patient(clinic_db, allergies=["amoxicillin"])
    refused = pytest.raises(psycopg.errors.CheckViolation, match="allergic to amoxicillin")
    with refused, clinic_db.transaction():
        prescribe(clinic_db, patient, "amoxicillin", 500)
    assert prescribe(clinic_db, patient) == "unknown"


def test_a_dose_must_be_positive(clinic_db):
    patient = new_patient(clinic_db)
    with pytest.raises(psycopg.errors.CheckViolation), clinic_db.transaction():
        prescribe(clinic_db, patient, dose=0)


def test_a_prescription_is_committed(clinic_db_fresh, clinic_dsn):
    patient = new_patient(clinic_db_fresh)
    prescribe(clinic_db_fresh, patient, "paracetamol", 1000)
    clinic_db_fresh.commit()
    with psycopg.connect(clinic_dsn) as other:
        assert one(other, "SELECT drug FROM clinic.prescriptions") == "paracetamol"
