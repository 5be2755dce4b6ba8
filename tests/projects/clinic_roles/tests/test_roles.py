"""Meadow Lane Clinic: what the service roles app_user and reporting can do."""

from __future__ import annotations

import psycopg
import pytest


def role_settings(conn, role):
    row = conn.execute(
        "SELECT s.setconfig FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole"
        " WHERE r.rolname = %s AND s.setdatabase = 0",
        (role,),
    ).fetchone()
    return sorted(row[0]) if row else []


def test_roles_exist_with_their_settings(clinic_db):
    roles = dict(
        clinic_db.execute(
            "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname IN ('app_user', 'reporting')"
        ).fetchall()
    )
    assert roles == {"app_user": False, "reporting": True}
    assert role_settings(clinic_db, "app_user") == ["search_path=clinic, public"]
    assert role_settings(clinic_db, "reporting") == [
        "default_transaction_read_only=on",
        "search_path=clinic, public",
        "statement_timeout=30s",
    ]


def test_system_account_is_seeded(clinic_db):
    assert clinic_db.execute("SELECT full_name FROM clinic.users WHERE username = 'system'").fetchone() == (
        "System (automated jobs)",
    )


def test_app_user_writes_are_audited_but_the_log_is_closed_to_it(clinic_db):
    # SET ROLE switches privileges only; the role's own search_path applies at login, hence
    # the schema-qualified names.
    clinic_db.execute("SET LOCAL ROLE app_user")
    clinic_db.execute(
        "INSERT INTO clinic.patients (chart_no, full_name, dob) VALUES ('T-1', 'Test Patient', '1970-07-07')"
    )
    with pytest.raises(psycopg.errors.InsufficientPrivilege), clinic_db.transaction():
        clinic_db.execute("SELECT count(*) FROM audit.audit_logs")
    clinic_db.execute("RESET ROLE")

    rows = clinic_db.execute(
        "SELECT table_name, action, db_role FROM audit.audit_logs WHERE table_name = 'patients'"
    ).fetchall()
    assert len(rows) == 1
    table, action, db_role = rows[0]
    assert (table, action) == ("patients", "INSERT")
    assert db_role.endswith("/app_user")


def test_reporting_logs_in_read_only_with_its_search_path(clinic_db_fresh, clinic_dsn):
    clinic_db_fresh.execute(
        "INSERT INTO clinic.patients (chart_no, full_name, dob) VALUES ('T-2', 'Report Me', '1980-08-08')"
    )
    clinic_db_fresh.commit()

    with psycopg.connect(clinic_dsn, user="reporting") as bi:
        assert bi.execute("SHOW search_path").fetchone() == ("clinic, public",)
        assert bi.execute("SHOW statement_timeout").fetchone() == ("30s",)
        assert bi.execute("SELECT full_name FROM patients").fetchall() == [("Report Me",)]
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            bi.execute("UPDATE patients SET phone = '555-0000'")


def test_sample_clinic(clinic_db_dev):
    doctors = clinic_db_dev.execute(
        "SELECT username FROM clinic.users WHERE is_doctor ORDER BY username"
    ).fetchall()
    assert doctors == [("dr.nguyen",), ("dr.okoro",)]
    assert clinic_db_dev.execute("SELECT sum(amount) FROM clinic.payments").fetchone() == (160,)


def test_sample_rows_have_no_audit_trail(clinic_db_dev):
    audited = clinic_db_dev.execute(
        "SELECT table_name, count(*) FROM audit.audit_logs GROUP BY 1 ORDER BY 1"
    ).fetchall()
    # only the system account of the reference seed, which runs with auditing on
    assert audited == [("users", 1)]


@pytest.mark.clinicdb(dev_seed=True)
def test_app_user_cancels_a_sample_visit(clinic_db):
    clinic_db.execute("SET LOCAL ROLE app_user")
    clinic_db.execute("UPDATE clinic.appointments SET state = 'cancelled' WHERE state = 'booked'")
    clinic_db.execute("RESET ROLE")
    assert clinic_db.execute(
        "SELECT action, new_row ->> 'state' FROM audit.audit_logs WHERE table_name = 'appointments'"
    ).fetchall() == [("UPDATE", "cancelled")]
