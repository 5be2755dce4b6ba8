"""Brightsmile Dental: appointments, treatments, payments and the audit change log."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest


def value(conn, query, params=None):
    return conn.execute(query, params).fetchone()[0]


@pytest.fixture
def visit(clinic_db):
    """A dentist, a patient and a booked appointment; returns the appointment id."""
    dentist = value(
        clinic_db,
        "INSERT INTO clinic.dentists (name, email, gdc_number)"
        " VALUES ('Dr Test', 'dr.test@example.net', 'T0001') RETURNING id",
    )
    patient = value(
        clinic_db,
        "INSERT INTO clinic.patients (name, date_of_birth) VALUES ('Pat Test', '1990-02-02') RETURNING id",
    )
    return value(
        clinic_db,
        "INSERT INTO clinic.appointments (dentist_id, patient_id, starts_at)"
        " VALUES (%s, %s, now() + interval '2 days') RETURNING id",
        (dentist, patient),
    )


def test_price_list_comes_with_the_schema(clinic_db):
    bands = clinic_db.execute("SELECT band, count(*) FROM clinic.treatments GROUP BY band ORDER BY band").fetchall()
    assert bands == [(1, 2), (2, 2), (3, 1)]


def test_booking_is_logged_in_this_months_partition(clinic_db, visit):
    rows = clinic_db.execute(
        "SELECT table_name, op, tableoid::regclass::text FROM audit.change_log ORDER BY id"
    ).fetchall()
    month = dt.datetime.now(dt.timezone.utc).strftime("%Y_%m")
    assert rows == [
        ("patients", "insert", f"audit.change_log_{month}"),
        ("appointments", "insert", f"audit.change_log_{month}"),
    ]


def test_update_logs_only_the_changed_columns(clinic_db, visit):
    clinic_db.execute("UPDATE clinic.appointments SET status = 'attended' WHERE id = %s", (visit,))
    diff = value(clinic_db, "SELECT diff FROM audit.change_log WHERE op = 'update'")
    assert diff == {"status": ["booked", "attended"]}


def test_partitions_cover_the_next_three_months(clinic_db):
    # what the nightly job guarantees; the tests get the same
    for months_ahead in range(4):
        clinic_db.execute(
            "INSERT INTO audit.change_log (created_at, table_name, op)"
            " VALUES (now() + make_interval(months => %s), 'probe', 'insert')",
            (months_ahead,),
        )


def test_launch_window_partitions_are_still_attached(clinic_db):
    attached = [
        r[0]
        for r in clinic_db.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'audit.change_log'::regclass AND c.relname LIKE 'change\\_log\\_2024\\_%'"
            " ORDER BY 1"
        )
    ]
    assert attached == [f"change_log_2024_{m:02d}" for m in range(1, 7)]


def test_double_booking_a_chair_is_refused(clinic_db, visit):
    with pytest.raises(psycopg.errors.UniqueViolation), clinic_db.transaction():
        clinic_db.execute(
            "INSERT INTO clinic.appointments (dentist_id, patient_id, starts_at)"
            " SELECT dentist_id, patient_id, starts_at FROM clinic.appointments WHERE id = %s",
            (visit,),
        )


def test_refund_is_committed(clinic_db_fresh):
    conn = clinic_db_fresh
    patient = value(
        conn, "INSERT INTO clinic.patients (name, date_of_birth) VALUES ('R', '1999-09-09') RETURNING id"
    )
    conn.execute(
        "INSERT INTO clinic.payments (patient_id, amount_pence, method) VALUES (%s, 2760, 'card'), (%s, -2760, 'card')",
        (patient, patient),
    )
    conn.commit()
    assert value(conn, "SELECT sum(amount_pence) FROM clinic.payments") == 0
    assert value(conn, "SELECT count(*) FROM audit.change_log WHERE table_name = 'payments'") == 2


def test_demo_surgery(clinic_db_dev):
    assert value(clinic_db_dev, "SELECT count(*) FROM clinic.dentists") == 2
    assert value(clinic_db_dev, "SELECT count(*) FROM clinic.appointments") == 3
    takings = value(clinic_db_dev, "SELECT sum(amount_pence) FROM clinic.payments")
    assert takings == 2760 + 2760 + 2760 + 7560


def test_demo_surgery_has_no_change_history(clinic_db_dev):
    assert value(clinic_db_dev, "SELECT count(*) FROM audit.change_log") == 0


@pytest.mark.clinicdb(dev_seed=True)
def test_removing_a_demo_patient_is_logged(clinic_db_fresh):
    conn = clinic_db_fresh
    conn.execute("DELETE FROM clinic.appointments WHERE status = 'failed'")
    conn.execute("DELETE FROM clinic.patients WHERE nhs_number = '9990000003'")
    conn.commit()
    ops = conn.execute("SELECT table_name, op FROM audit.change_log ORDER BY id").fetchall()
    assert ops == [("appointments", "delete"), ("patients", "delete")]
