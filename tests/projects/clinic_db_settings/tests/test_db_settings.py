"""CareNet: tenant isolation and the database-level settings it relies on."""

from __future__ import annotations

import psycopg
import pytest


def q1(conn, query, params=None):
    return conn.execute(query, params).fetchone()[0]


@pytest.fixture
def two_clinics(clinic_db):
    clinic_db.execute("INSERT INTO clinic.clinics (id, name, city) VALUES (10, 'Test A', 'York'), (20, 'Test B', 'Bath')")
    return 10, 20


def act_as_clinic(conn, clinic_id):
    conn.execute("SELECT set_config('app.current_clinic_id', %s, true)", (str(clinic_id),))


def test_every_session_runs_in_strict_tenant_mode(clinic_db):
    # ALTER DATABASE ... SET app.tenant_mode in migration 005; no fallback on purpose.
    assert q1(clinic_db, "SELECT current_setting('app.tenant_mode')") == "strict"


def test_database_settings_are_on_this_database(clinic_db):
    rows = clinic_db.execute(
        "SELECT coalesce(r.rolname, '*'), s.setconfig FROM pg_db_role_setting s"
        " JOIN pg_database d ON d.oid = s.setdatabase LEFT JOIN pg_roles r ON r.oid = s.setrole"
        " WHERE d.datname = current_database() ORDER BY 1"
    ).fetchall()
    assert [(role, sorted(cfg)) for role, cfg in rows] == [
        ("*", ["app.tenant_mode=strict"]),
        ("clinic_api", ["search_path=clinic, public", "statement_timeout=5s"]),
    ]


def test_only_clinic_api_may_connect(clinic_db):
    can = clinic_db.execute(
        "SELECT has_database_privilege('clinic_api', current_database(), 'CONNECT'),"
        "       has_database_privilege('clinic_api', current_database(), 'TEMPORARY'),"
        "       has_database_privilege('public', current_database(), 'CONNECT'),"
        "       has_database_privilege('public', current_database(), 'TEMPORARY')"
    ).fetchone()
    assert can == (True, True, False, False)


def test_writing_another_clinics_patient_is_refused(clinic_db, two_clinics):
    mine, theirs = two_clinics
    act_as_clinic(clinic_db, mine)
    clinic_db.execute(
        "INSERT INTO clinic.patients (clinic_id, name, birth_date) VALUES (%s, 'Mine', '2000-01-01')", (mine,)
    )
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="tenant isolation"), clinic_db.transaction():
        clinic_db.execute(
            "INSERT INTO clinic.patients (clinic_id, name, birth_date) VALUES (%s, 'Theirs', '2000-01-01')",
            (theirs,),
        )
    assert clinic_db.execute("SELECT clinic_id, table_name, action FROM audit.audit_logs").fetchall() == [
        (mine, "patients", "INSERT")
    ]


def test_api_login_gets_its_database_settings(clinic_db_fresh, clinic_dsn):
    clinic_db_fresh.execute("INSERT INTO clinic.clinics (id, name, city) VALUES (30, 'Test C', 'Hull')")
    clinic_db_fresh.commit()
    with psycopg.connect(clinic_dsn, user="clinic_api") as api:
        assert api.execute("SHOW search_path").fetchone() == ("clinic, public",)
        assert api.execute("SHOW statement_timeout").fetchone() == ("5s",)
        assert q1(api, "SELECT current_setting('app.tenant_mode')") == "strict"
        act_as_clinic(api, 30)
        api.execute("INSERT INTO patients (clinic_id, name, birth_date) VALUES (30, 'Via API', '1999-09-09')")
        api.commit()
    assert q1(clinic_db_fresh, "SELECT count(*) FROM clinic.patients WHERE clinic_id = 30") == 1


def test_demo_clinics(clinic_db_dev):
    per_clinic = clinic_db_dev.execute(
        "SELECT clinic_id, count(*) FROM clinic.patients GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert per_clinic == [(1, 3), (2, 3)]
    assert q1(clinic_db_dev, "SELECT count(*) FROM clinic.invoices WHERE NOT paid") == 2


def test_demo_clinics_are_not_audited_and_still_strict(clinic_db_dev):
    assert q1(clinic_db_dev, "SELECT count(*) FROM audit.audit_logs") == 0
    assert q1(clinic_db_dev, "SELECT current_setting('app.tenant_mode')") == "strict"


@pytest.mark.clinicdb(dev_seed=True)
def test_marking_a_demo_invoice_paid(clinic_db_fresh):
    conn = clinic_db_fresh
    act_as_clinic(conn, 1)
    conn.execute("UPDATE clinic.invoices SET paid = true WHERE clinic_id = 1 AND NOT paid")
    with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
        conn.execute("UPDATE clinic.invoices SET paid = true WHERE clinic_id = 2 AND NOT paid")
    conn.commit()
    assert conn.execute("SELECT clinic_id, count(*) FROM clinic.invoices WHERE NOT paid GROUP BY 1").fetchall() == [
        (2, 1)
    ]
