"""Patients and appointments, migrated as `migrate -path db/migrations up` migrates them."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest


def one(conn, query, *params):
    return conn.execute(query, params or None).fetchone()[0]


def columns(conn, table):
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = 'clinic' AND table_name = %s ORDER BY ordinal_position",
        (table,),
    )
    return [r[0] for r in rows]


def new_patient(conn, name="Rosa Pereira", phone=None):
    return one(
        conn,
        "INSERT INTO clinic.patients (full_name, birth_date, phone) VALUES (%s, '1984-05-02', %s)"
        " RETURNING id",
        name,
        phone,
    )


def test_every_up_migration_ran_and_no_down_migration(clinic_db):
    # Each down file drops what its up file made: all of it is still here.
    assert columns(clinic_db, "patients") == [
        "id",
        "full_name",
        "birth_date",
        "created_at",
        "phone",
    ]
    assert columns(clinic_db, "appointments") == ["id", "patient_id", "starts_at", "status"]
    assert one(clinic_db, "SELECT to_regtype('clinic.appointment_status')::text") == (
        "clinic.appointment_status"
    )
    assert one(clinic_db, "SELECT to_regclass('clinic.appointments_per_day')::text") == (
        "clinic.appointments_per_day"
    )


def test_the_migrations_are_recorded_by_version(clinic_db):
    names = clinic_db.execute("SELECT name FROM clinicdb.migrations ORDER BY applied_at, name")
    assert [r[0] for r in names] == [
        "000001_create_patients.up.sql",
        "000002_create_appointments.up.sql",
        "000003_add_patient_phone.up.sql",
        "000010_appointments_per_day.up.sql",
    ]


def test_a_phone_number_must_be_digits(clinic_db):
    new_patient(clinic_db, phone="+44 20 7946 0000")
    with pytest.raises(psycopg.errors.CheckViolation), clinic_db.transaction():
        new_patient(clinic_db, "Tom Hale", phone="call me")


def test_cancelled_appointments_are_not_counted(clinic_db):
    patient = new_patient(clinic_db)
    day = dt.datetime(2024, 6, 3, 9, tzinfo=dt.timezone.utc)
    for hours, status in [(0, "booked"), (1, "done"), (2, "cancelled")]:
        clinic_db.execute(
            "INSERT INTO clinic.appointments (patient_id, starts_at, status) VALUES (%s, %s, %s)",
            (patient, day + dt.timedelta(hours=hours), status),
        )
    assert one(clinic_db, "SELECT booked FROM clinic.appointments_per_day") == 2


def test_the_rollback_left_no_patient(clinic_db):
    assert one(clinic_db, "SELECT count(*) FROM clinic.patients") == 0


def test_a_booking_is_committed(clinic_db_fresh, clinic_dsn):
    patient = new_patient(clinic_db_fresh)
    clinic_db_fresh.execute(
        "INSERT INTO clinic.appointments (patient_id, starts_at) VALUES (%s, now())", (patient,)
    )
    clinic_db_fresh.commit()
    with psycopg.connect(clinic_dsn) as other:
        assert one(other, "SELECT status::text FROM clinic.appointments") == "booked"
