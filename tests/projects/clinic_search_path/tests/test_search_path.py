"""The Harbour Street Clinic database, as our services see it (search_path clinic, public)."""

from __future__ import annotations

import psycopg
import pytest

SERVICE_SEARCH_PATH = "SET search_path TO clinic, public"


@pytest.fixture
def db(clinic_db):
    """clinic_db with the search_path our services use (the SET is rolled back with the test)."""
    clinic_db.execute(SERVICE_SEARCH_PATH)
    return clinic_db


@pytest.fixture
def demo(clinic_db_dev):
    clinic_db_dev.execute(SERVICE_SEARCH_PATH)
    return clinic_db_dev


def one(conn, query, params=None):
    return conn.execute(query, params).fetchone()[0]


def add_doctor(conn, email="gp@example.com"):
    return one(
        conn,
        "INSERT INTO users (email, full_name, role) VALUES (%s, 'Dr. Test', 'doctor') RETURNING id",
        (email,),
    )


def add_patient(conn, mrn="HS-9001", doctor_id=None):
    return one(
        conn,
        "INSERT INTO patients (mrn, first_name, last_name, date_of_birth, primary_doctor_id)"
        " VALUES (%s, 'Pat', 'Tester', '1990-01-01', %s) RETURNING id",
        (mrn, doctor_id),
    )


def test_reference_data_is_loaded(db):
    codes = [r[0] for r in db.execute("SELECT code FROM appointment_types ORDER BY code")]
    assert codes == ["first_visit", "follow_up", "telehealth", "vaccination"]
    assert one(db, "SELECT value FROM clinic_settings WHERE key = 'billing.currency'") == "EUR"


def test_no_demo_people_without_the_dev_seed(db):
    assert one(db, "SELECT count(*) FROM users") == 0
    assert one(db, "SELECT count(*) FROM patients") == 0


def test_new_patient_is_audited_in_this_months_partition(db):
    db.execute("SELECT set_config('app.user_email', 'front.desk@example.com', true)")
    patient_id = add_patient(db, doctor_id=add_doctor(db))

    row = db.execute(
        "SELECT operation, changed_by, tableoid::regclass::text,"
        "       date_trunc('month', created_at) = date_trunc('month', now())"
        "  FROM audit.audit_logs WHERE table_name = 'patients' AND row_pk = %s",
        (str(patient_id),),
    ).fetchone()
    operation, changed_by, partition, this_month = row
    assert (operation, changed_by, this_month) == ("INSERT", "front.desk@example.com", True)
    assert partition.startswith("audit.audit_logs_")


def test_referral_table_with_quoted_name_is_audited(db):
    patient_id = add_patient(db)
    db.execute(
        'INSERT INTO "Referral" ("patientId", "referredTo") VALUES (%s, %s)',
        (patient_id, "Cardiology"),
    )
    actions = db.execute(
        "SELECT table_name, operation FROM audit.audit_logs ORDER BY id"
    ).fetchall()
    assert actions == [("patients", "INSERT"), ("Referral", "INSERT")]


def test_failed_write_inside_a_savepoint_keeps_the_test_going(db):
    add_doctor(db, "dup@example.com")
    with pytest.raises(psycopg.errors.UniqueViolation), db.transaction():
        add_doctor(db, "dup@example.com")
    assert one(db, "SELECT count(*) FROM audit.audit_logs WHERE table_name = 'users'") == 1


def test_committed_payment_is_seen_by_another_connection(clinic_db_fresh, clinic_dsn):
    conn = clinic_db_fresh
    conn.execute(SERVICE_SEARCH_PATH)
    doctor_id = add_doctor(conn)
    patient_id = add_patient(conn, doctor_id=doctor_id)
    appointment_id = one(
        conn,
        "INSERT INTO appointments (patient_id, doctor_id, appointment_type, starts_at, ends_at)"
        " VALUES (%s, %s, 'follow_up', now() + interval '1 day',"
        "         now() + interval '1 day 20 minutes') RETURNING id",
        (patient_id, doctor_id),
    )
    conn.execute(
        "INSERT INTO payments (appointment_id, amount_cents, method) VALUES (%s, 4500, 'card')",
        (appointment_id,),
    )
    conn.commit()

    with psycopg.connect(clinic_dsn) as other:
        assert one(other, "SELECT count(*) FROM clinic.payments") == 1
        audited = other.execute(
            "SELECT table_name FROM audit.audit_logs ORDER BY id"
        ).fetchall()
    assert [t for (t,) in audited] == ["users", "patients", "appointments", "payments"]


def test_demo_practice_is_loaded(demo):
    assert one(demo, "SELECT count(*) FROM users") == 4
    mrns = [r[0] for r in demo.execute("SELECT mrn FROM patients ORDER BY mrn")]
    assert mrns == ["HS-0001", "HS-0002", "HS-0003", "HS-0004"]
    # the walk-in came in through a CTE, her payment was refunded with UPDATE ONLY
    walk_in = demo.execute(
        "SELECT a.status, pay.status FROM patients p"
        "  JOIN appointments a ON a.patient_id = p.id"
        "  JOIN payments pay ON pay.appointment_id = a.id"
        " WHERE p.mrn = 'HS-0004'"
    ).fetchall()
    assert walk_in == [("completed", "refunded")]
    assert one(demo, 'SELECT "referredTo" FROM "Referral"').startswith("Dermatology")


def test_demo_practice_is_dated_2024(demo):
    years = demo.execute(
        "SELECT DISTINCT extract(year FROM created_at)::int FROM patients"
    ).fetchall()
    assert years == [(2024,)]


def test_demo_data_has_no_audit_trail(demo):
    # Loaded with the audit triggers off: there is no audit partition for 2024.
    assert one(demo, "SELECT count(*) FROM audit.audit_logs") == 0


def test_audit_triggers_are_back_on_after_the_demo_data(demo):
    disabled = demo.execute(
        "SELECT tgrelid::regclass::text || '.' || tgname FROM pg_trigger"
        " WHERE tgenabled = 'D' ORDER BY 1"
    ).fetchall()
    assert disabled == []
    demo.execute(
        "UPDATE users SET full_name = 'Dr. Maria Lopez-Garcia'"
        " WHERE email = 'maria.lopez@example.com'"
    )
    assert demo.execute("SELECT table_name, operation FROM audit.audit_logs").fetchall() == [
        ("users", "UPDATE")
    ]


@pytest.mark.clinicdb(dev_seed=True)
def test_cancelling_a_demo_visit_commits(clinic_db_fresh):
    conn = clinic_db_fresh
    conn.execute(SERVICE_SEARCH_PATH)
    conn.execute(
        "UPDATE appointments SET status = 'cancelled'"
        " WHERE status = 'no_show'"
    )
    conn.commit()
    assert one(conn, "SELECT count(*) FROM appointments WHERE status = 'no_show'") == 0
    assert one(conn, "SELECT count(*) FROM audit.audit_logs WHERE operation = 'UPDATE'") == 1
