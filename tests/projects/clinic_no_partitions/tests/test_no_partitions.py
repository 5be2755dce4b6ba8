"""Lakeside Family Practice: patients, visits, private fees, and their change history."""

from __future__ import annotations

import decimal

import psycopg
import pytest

DEMO_GP = "d0000000-0000-4000-8000-000000000001"


def fetch_one(conn, query, params=None):
    return conn.execute(query, params).fetchone()


def new_gp(conn, email="gp@lakeside.example"):
    return fetch_one(
        conn,
        "INSERT INTO clinic.staff (full_name, email, role) VALUES ('Dr Test', %s, 'gp') RETURNING id",
        (email,),
    )[0]


def new_patient(conn, gp_id=None):
    return fetch_one(
        conn,
        "INSERT INTO clinic.patients (full_name, born_on, registered_gp)"
        " VALUES ('Test Patient', '1980-01-01', %s) RETURNING id",
        (gp_id,),
    )[0]


def test_visit_reasons_are_seeded(clinic_db):
    codes = {r[0] for r in clinic_db.execute("SELECT code FROM clinic.visit_reasons")}
    assert codes == {"ROUTINE", "URGENT", "REVIEW", "TRAVEL", "REPORT"}


def test_registering_a_patient_is_recorded_in_the_history(clinic_db):
    patient_id = new_patient(clinic_db, new_gp(clinic_db))
    table, operation, partition = fetch_one(
        clinic_db,
        "SELECT table_name, operation, tableoid::regclass::text FROM audit.row_history WHERE row_id = %s",
        (patient_id,),
    )
    assert (table, operation) == ("patients", "INSERT")
    assert partition != "audit.row_history"  # it landed in a real (monthly) partition


@pytest.mark.parametrize("months_ahead", [0, 1, 2, 3])
def test_history_can_be_written_in_the_coming_months(clinic_db, months_ahead):
    clinic_db.execute(
        "INSERT INTO audit.row_history (recorded_at, table_name, operation)"
        " VALUES (now() + make_interval(months => %s), 'probe', 'INSERT')",
        (months_ahead,),
    )


def test_unknown_visit_status_is_refused(clinic_db):
    patient_id = new_patient(clinic_db)
    gp_id = new_gp(clinic_db)
    with pytest.raises(psycopg.errors.InvalidTextRepresentation), clinic_db.transaction():
        clinic_db.execute(
            "INSERT INTO clinic.visits (patient_id, clinician_id, reason_code, scheduled_for, status)"
            " VALUES (%s, %s, 'ROUTINE', now(), 'no_show')",
            (patient_id, gp_id),
        )
    assert fetch_one(clinic_db, "SELECT count(*) FROM clinic.visits")[0] == 0


def test_travel_vaccination_fee_is_committed(clinic_db_fresh, clinic_dsn):
    conn = clinic_db_fresh
    patient_id = new_patient(conn)
    conn.execute(
        "INSERT INTO clinic.payments (patient_id, amount, description) VALUES (%s, 55.00, 'Typhoid vaccine')",
        (patient_id,),
    )
    conn.commit()
    with psycopg.connect(clinic_dsn) as other:
        assert fetch_one(other, "SELECT sum(amount) FROM clinic.payments")[0] == decimal.Decimal("55.00")
        history = other.execute("SELECT table_name FROM audit.row_history ORDER BY id").fetchall()
    assert history == [("patients",), ("payments",)]


def test_demo_practice(clinic_db_dev):
    assert fetch_one(clinic_db_dev, "SELECT count(*) FROM clinic.staff")[0] == 2
    assert fetch_one(clinic_db_dev, "SELECT count(*) FROM clinic.patients WHERE registered_gp = %s", (DEMO_GP,))[0] == 2
    statuses = clinic_db_dev.execute("SELECT status::text FROM clinic.visits ORDER BY scheduled_for").fetchall()
    assert statuses == [("seen",), ("seen",), ("did_not_attend",)]


def test_demo_practice_has_no_history(clinic_db_dev):
    assert fetch_one(clinic_db_dev, "SELECT count(*) FROM audit.row_history")[0] == 0


@pytest.mark.clinicdb(dev_seed=True)
def test_marking_a_demo_visit_seen_is_recorded(clinic_db):
    clinic_db.execute("UPDATE clinic.visits SET status = 'seen' WHERE status = 'did_not_attend'")
    assert fetch_one(clinic_db, "SELECT operation FROM audit.row_history") == ("UPDATE",)
