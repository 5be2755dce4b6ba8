"""Northgate Physio: practice data and its audit history, on the database pytest-clinicdb builds."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest


def scalar(conn, query, params=None):
    return conn.execute(query, params).fetchone()[0]


@pytest.fixture
def therapist(clinic_db):
    return scalar(
        clinic_db,
        "INSERT INTO clinic.therapists (display_name, email, registration_no)"
        " VALUES ('Test Therapist', 'therapist@example.org', 'PT-T-1') RETURNING therapist_id",
    )


@pytest.fixture
def patient(clinic_db):
    return scalar(
        clinic_db,
        "INSERT INTO clinic.patients (given_name, family_name, birth_date)"
        " VALUES ('Test', 'Patient', '1988-08-08') RETURNING patient_id",
    )


def book(conn, therapist_id, patient_id, starts_at, code="PT30"):
    return scalar(
        conn,
        "INSERT INTO clinic.treatment_sessions (therapist_id, patient_id, treatment_code, starts_at, ends_at)"
        " VALUES (%s, %s, %s, %s, %s + interval '30 minutes') RETURNING session_id",
        (therapist_id, patient_id, code, starts_at, starts_at),
    )


def test_treatment_catalogue_is_seeded(clinic_db):
    assert scalar(clinic_db, "SELECT count(*) FROM clinic.treatment_catalogue") == 5
    assert scalar(clinic_db, "SELECT price_cents FROM clinic.treatment_catalogue WHERE code = 'PT30'") == 4200


def test_new_patient_is_audited(clinic_db, patient):
    relation, action, pk = clinic_db.execute(
        "SELECT relation, action, pk FROM audit.audit_logs"
    ).fetchone()
    assert (relation, action, pk) == ("clinic.patients", "I", {"patient_id": patient})


def test_this_months_audit_partition_is_one_of_ours(clinic_db, patient):
    # Our job names partitions audit_logs_YYYYMM; the month we run in was added by it.
    partition = scalar(clinic_db, "SELECT tableoid::regclass::text FROM audit.audit_logs")
    assert partition == "audit.audit_logs_" + dt.datetime.now(dt.timezone.utc).strftime("%Y%m")


def test_go_live_year_partitions_are_untouched(clinic_db):
    names = [
        r[0]
        for r in clinic_db.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'audit.audit_logs'::regclass AND c.relname LIKE 'audit\\_logs\\_2023%'"
            " ORDER BY 1"
        )
    ]
    assert names == [f"audit_logs_2023{m:02d}" for m in range(1, 13)]


def test_therapist_cannot_be_double_booked(clinic_db, therapist, patient):
    nine = dt.datetime(2030, 1, 7, 9, 0, tzinfo=dt.timezone.utc)
    book(clinic_db, therapist, patient, nine)
    with pytest.raises(psycopg.errors.ExclusionViolation), clinic_db.transaction():
        book(clinic_db, therapist, patient, nine + dt.timedelta(minutes=15))
    assert scalar(clinic_db, "SELECT count(*) FROM clinic.treatment_sessions") == 1


def test_paid_invoice_is_committed_with_its_audit_trail(clinic_db_fresh):
    conn = clinic_db_fresh
    therapist_id = scalar(
        conn,
        "INSERT INTO clinic.therapists (display_name, email, registration_no)"
        " VALUES ('T', 't@example.org', 'PT-T-2') RETURNING therapist_id",
    )
    patient_id = scalar(
        conn,
        "INSERT INTO clinic.patients (given_name, family_name, birth_date)"
        " VALUES ('P', 'Q', '2001-01-01') RETURNING patient_id",
    )
    session_id = book(conn, therapist_id, patient_id, dt.datetime(2030, 2, 1, 10, tzinfo=dt.timezone.utc))
    invoice_id = scalar(
        conn,
        "INSERT INTO clinic.invoices (session_id, total_cents) VALUES (%s, 4200) RETURNING invoice_id",
        (session_id,),
    )
    conn.execute(
        "INSERT INTO clinic.payments (invoice_id, amount_cents, paid_via) VALUES (%s, 4200, 'card')",
        (invoice_id,),
    )
    conn.commit()

    relations = [r[0] for r in conn.execute("SELECT relation FROM audit.audit_logs ORDER BY log_id")]
    assert relations == [
        "clinic.therapists",
        "clinic.patients",
        "clinic.treatment_sessions",
        "clinic.invoices",
        "clinic.payments",
    ]


def test_sample_practice_is_loaded(clinic_db_dev):
    assert scalar(clinic_db_dev, "SELECT count(*) FROM clinic.therapists") == 2
    assert scalar(clinic_db_dev, "SELECT count(*) FROM clinic.patients") == 3
    assert scalar(clinic_db_dev, "SELECT count(*) FROM clinic.treatment_sessions") == 4
    assert scalar(clinic_db_dev, "SELECT count(*) FROM clinic.invoices") == 3
    assert scalar(clinic_db_dev, "SELECT count(*) FROM clinic.payments") == 2


def test_sample_practice_has_no_audit_history(clinic_db_dev):
    assert scalar(clinic_db_dev, "SELECT count(*) FROM audit.audit_logs") == 0


@pytest.mark.clinicdb(dev_seed=True)
def test_missed_session_can_be_marked_attended(clinic_db):
    clinic_db.execute("UPDATE clinic.treatment_sessions SET attended = true WHERE NOT attended")
    assert scalar(clinic_db, "SELECT count(*) FROM audit.audit_logs WHERE action = 'U'") == 1
