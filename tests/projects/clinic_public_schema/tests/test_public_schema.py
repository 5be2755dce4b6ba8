"""Riverbend Clinic (everything in the public schema)."""

from __future__ import annotations

import datetime as dt
import decimal

import psycopg
import pytest


def first(conn, query, params=None):
    return conn.execute(query, params).fetchone()


@pytest.fixture
def provider_and_patient(clinic_db):
    provider = first(
        clinic_db,
        "INSERT INTO users (email, password_hash, display_name, role)"
        " VALUES ('doc@riverbend.test', 'pbkdf2$secret', 'Doc', 'provider') RETURNING id",
    )[0]
    patient = first(
        clinic_db,
        "INSERT INTO patients (first_name, last_name, dob) VALUES ('New', 'Patient', '1991-01-01') RETURNING id",
    )[0]
    return provider, patient


def test_config_is_seeded(clinic_db):
    assert first(clinic_db, "SELECT value FROM clinic_config WHERE key = 'payment_terms_business_days'") == (10,)


def test_no_audit_or_clinic_schema(clinic_db):
    schemas = clinic_db.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname IN ('audit', 'clinic')"
    ).fetchall()
    assert schemas == []


def test_changes_are_logged_without_the_password_hash(clinic_db, provider_and_patient):
    provider, patient = provider_and_patient
    rows = clinic_db.execute(
        "SELECT table_name, record_id, action, changes ? 'password_hash', tableoid::regclass::text"
        "  FROM audit_log ORDER BY id"
    ).fetchall()
    assert [r[:4] for r in rows] == [("users", provider, "insert", False), ("patients", patient, "insert", False)]
    assert all(r[4].startswith("audit_log_") for r in rows)


def test_booking_and_billing(clinic_db, provider_and_patient):
    provider, patient = provider_and_patient
    appointment = first(
        clinic_db,
        "INSERT INTO appointments (patient_id, provider_id, scheduled_at) VALUES (%s, %s, now()) RETURNING id",
        (patient, provider),
    )[0]
    clinic_db.execute(
        "INSERT INTO payments (appointment_id, amount, due_on)"
        " VALUES (%s, 60, current_date + 14)",
        (appointment,),
    )
    actions = clinic_db.execute("SELECT table_name FROM audit_log ORDER BY id").fetchall()
    assert actions == [("users",), ("patients",), ("appointments",), ("payments",)]


def test_payment_terms_helper(clinic_db):
    # Monday 2025-03-03 to Monday 2025-03-17: two working weeks
    assert first(clinic_db, "SELECT business_days_between('2025-03-03', '2025-03-17')") == (10,)


def test_vital_signs_keep_their_own_partitions(clinic_db):
    parts = clinic_db.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'vital_signs'::regclass ORDER BY 1"
    ).fetchall()
    assert parts == [("vital_signs_2025",), ("vital_signs_default",)]


def test_paid_invoice_is_committed(clinic_db_fresh, clinic_dsn):
    conn = clinic_db_fresh
    provider = first(conn, "INSERT INTO users (email, display_name) VALUES ('a@riverbend.test', 'A') RETURNING id")[0]
    patient = first(conn, "INSERT INTO patients (first_name, last_name, dob) VALUES ('B', 'C', '2002-02-02') RETURNING id")[0]
    appointment = first(
        conn,
        "INSERT INTO appointments (patient_id, provider_id, scheduled_at) VALUES (%s, %s, now()) RETURNING id",
        (patient, provider),
    )[0]
    payment = first(
        conn,
        "INSERT INTO payments (appointment_id, amount, due_on) VALUES (%s, 25, current_date) RETURNING id",
        (appointment,),
    )[0]
    conn.commit()
    conn.execute("UPDATE payments SET paid_on = current_date WHERE id = %s", (payment,))
    conn.commit()
    with psycopg.connect(clinic_dsn) as other:
        assert first(other, "SELECT action FROM audit_log WHERE table_name = 'payments' ORDER BY id DESC LIMIT 1") == (
            "update",
        )


def test_fake_clinic(clinic_db_dev):
    assert first(clinic_db_dev, "SELECT count(*) FROM users WHERE role = 'provider'") == (2,)
    assert first(clinic_db_dev, "SELECT count(*) FROM patients") == (3,)
    assert first(clinic_db_dev, "SELECT sum(amount) FROM payments WHERE paid_on IS NULL") == (decimal.Decimal("90.00"),)
    assert first(clinic_db_dev, "SELECT count(*) FROM vital_signs_2025") == (2,)


def test_fake_clinic_has_no_audit_log_and_triggers_are_enabled(clinic_db_dev):
    assert first(clinic_db_dev, "SELECT count(*) FROM audit_log") == (0,)
    disabled = clinic_db_dev.execute(
        "SELECT tgrelid::regclass::text, tgname FROM pg_trigger WHERE tgenabled = 'D'"
    ).fetchall()
    assert disabled == []


@pytest.mark.clinicdb(dev_seed=True)
def test_new_patient_after_the_fake_ones_gets_the_next_id(clinic_db):
    new_id = first(
        clinic_db, "INSERT INTO patients (first_name, last_name, dob) VALUES ('D', 'E', '2010-10-10') RETURNING id"
    )[0]
    assert new_id == 4
    assert first(clinic_db, "SELECT record_id, action FROM audit_log") == (4, "insert")
    assert first(clinic_db, "SELECT date_trunc('month', logged_at) FROM audit_log") == (
        dt.datetime.now(dt.timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0),
    )
