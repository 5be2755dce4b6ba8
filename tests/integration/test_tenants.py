"""Tenant isolation on a real server: ``acting_as`` and ``check_tenant_isolation``.

Our own database with seed 002 (two clinics) must pass the check; switching row-level security
off on any one tenant table, or loosening a policy, must make it fail naming that table. A small
schema written in another style (integer tenant ``org_id``, setting ``request.org``, unqualified
names through ``search_path``, a table without primary key, a trigger that assigns the tenant)
shows that the check does not depend on our names. Everything runs inside the test's rolled-back
transaction, roles included (CREATE ROLE is transactional).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.pq import TransactionStatus

from pytest_clinicdb.errors import CheckError
from pytest_clinicdb.tenants import (
    acting_as,
    acting_as_async,
    check_tenant_isolation,
    probe_tenant_isolation,
)

pytestmark = pytest.mark.integration

Conn = psycopg.Connection[Any]

ROLE = "clinic_app"
SETTING = "app.current_clinic_id"
TENANTS = "SELECT id FROM clinic.clinics ORDER BY id"
SHARED = ("clinic.clinics", "clinic.feature_flags", "clinic.system_settings")

RIVERSIDE = "5eed0100-0000-4000-8000-000000000001"
HILLTOP = "5eed0100-0000-4000-8000-000000000002"
PAT = "5eed0400-0000-4000-8000-000000000001"  # Riverside
CASEY = "5eed0400-0000-4000-8000-000000000003"  # Hilltop
RECEPTION = "5eed0500-0000-4000-8000-000000000001"  # Riverside's staff profile
R, H = f"{SETTING}={RIVERSIDE}", f"{SETTING}={HILLTOP}"

# Every table clinic_app may read that holds rows of one clinic (all with row-level security).
TENANT_TABLES = [
    "booking.bookings",
    "booking.slots",
    "clinic.appointments",
    "clinic.doctors",
    "clinic.medical_records",
    "clinic.patients",
    "clinic.payments",
    "clinic.prescriptions",
    "clinic.staff",
    "clinic.users",
]


def check(conn: Conn, **overrides: Any) -> list[str]:
    """The problems (without their fixes) of the check on our database."""
    options: dict[str, Any] = {
        "role": ROLE,
        "setting": SETTING,
        "tenants": TENANTS,
        "shared": SHARED,
        **overrides,
    }
    return [f.problem for f in check_tenant_isolation(conn, **options)]


def fingerprint(conn: Conn) -> dict[str, Any]:
    """Every row of every user table, the session's role and tenant setting."""
    tables = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition"
        " AND n.nspname IN ('clinic', 'booking', 'webhook', 'audit') ORDER BY 1, 2"
    ).fetchall()
    result: dict[str, Any] = {}
    for schema, name in tables:
        row = conn.execute(
            sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), ''))"
                " FROM {} AS t"
            ).format(sql.Identifier(schema, name))
        ).fetchone()
        result[f"{schema}.{name}"] = row
    result["session"] = conn.execute(
        "SELECT current_user, current_setting('role'), current_setting(%s, true)", (SETTING,)
    ).fetchone()
    return result


# ------------------------------------------------------------------------------ our database


def test_our_database_with_the_dev_seed_passes(clinic_db_dev: Conn) -> None:
    report = probe_tenant_isolation(
        clinic_db_dev, role=ROLE, setting=SETTING, tenants=TENANTS, shared=SHARED
    )
    assert report.findings == []
    assert report.tenants == [RIVERSIDE, HILLTOP]
    # The check looked at every tenant table and at nothing shared or forbidden to clinic_app.
    assert sorted(report.visible) == TENANT_TABLES
    assert report.visible["clinic.users"] == {RIVERSIDE: 3, HILLTOP: 1, "": 0}
    # Every table had a write tried against it, and row-level security refused it.
    refused = {p.table for p in report.probes if p.outcome.startswith("refused: 42501 new row")}
    assert refused == set(TENANT_TABLES)


def _give_hilltop_a_row_in_every_table(conn: Conn) -> None:
    """Seed 002 gives Hilltop no slot, booking, record, prescription, payment or staff."""
    doctor, slot, appointment, record, user = (
        "5eed0300-0000-4000-8000-000000000002",  # Dr. Sam Sample, Hilltop
        "7e570a00-0000-4000-8000-000000000001",
        "7e570600-0000-4000-8000-000000000001",
        "7e570700-0000-4000-8000-000000000001",
        "7e570200-0000-4000-8000-000000000001",
    )
    when = ("2030-01-07 09:00+00", "2030-01-07 09:30+00")
    statements: list[tuple[str, tuple[Any, ...]]] = [
        (
            "INSERT INTO clinic.users (id, clinic_id, email, role, full_name)"
            " VALUES (%s, %s, 'desk@hilltop.example.com', 'staff', 'Hilltop Desk')",
            (user, HILLTOP),
        ),
        (
            "INSERT INTO clinic.staff (clinic_id, user_id, job_title) VALUES (%s, %s, 'Desk')",
            (HILLTOP, user),
        ),
        (
            "INSERT INTO booking.slots (id, clinic_id, doctor_id, starts_at, ends_at)"
            " VALUES (%s, %s, %s, %s, %s)",
            (slot, HILLTOP, doctor, *when),
        ),
        (
            "INSERT INTO clinic.appointments (id, clinic_id, doctor_id, patient_id, starts_at,"
            " ends_at) VALUES (%s, %s, %s, %s, %s, %s)",
            (appointment, HILLTOP, doctor, CASEY, *when),
        ),
        (
            "INSERT INTO booking.bookings (slot_id, doctor_id, starts_at, ends_at, patient_id,"
            " appointment_id) VALUES (%s, %s, %s, %s, %s, %s)",
            (slot, doctor, *when, CASEY, appointment),
        ),
        (
            "INSERT INTO clinic.medical_records (id, clinic_id, patient_id, doctor_id, notes)"
            " VALUES (%s, %s, %s, %s, 'Synthetic note')",
            (record, HILLTOP, CASEY, doctor),
        ),
        (
            "INSERT INTO clinic.prescriptions (clinic_id, medical_record_id, patient_id,"
            " doctor_id, medication, dosage, frequency)"
            " VALUES (%s, %s, %s, %s, 'Synthetic', '1', 'daily')",
            (HILLTOP, record, CASEY, doctor),
        ),
        (
            "INSERT INTO clinic.payments (clinic_id, patient_id, amount, currency, method)"
            " VALUES (%s, %s, 10.00, 'GBP', 'cash')",
            (HILLTOP, CASEY),
        ),
    ]
    for statement, params in statements:
        conn.execute(statement, params)


def test_every_write_probe_runs_when_both_clinics_have_rows_everywhere(
    clinic_db_dev: Conn,
) -> None:
    _give_hilltop_a_row_in_every_table(clinic_db_dev)
    report = probe_tenant_isolation(
        clinic_db_dev, role=ROLE, setting=SETTING, tenants=TENANTS, shared=SHARED
    )
    assert report.findings == []
    assert report.untested() == []
    kinds = {(p.table, p.probe, p.acting_for) for p in report.probes}
    assert kinds == {
        (t, k, c)
        for t in TENANT_TABLES
        for k in ("insert", "update", "update-reach", "delete-reach")
        for c in (RIVERSIDE, HILLTOP)
    }
    assert {p.outcome.split(" new row")[0] for p in report.probes} == {
        "refused: 42501",  # insert, update: WITH CHECK
        "no effect",  # update-reach, delete-reach: USING hides the row
    }


def test_the_check_leaves_nothing_behind(clinic_db_dev: Conn) -> None:
    clinic_db_dev.execute("SELECT set_config(%s, %s, true)", (SETTING, HILLTOP))
    before = fingerprint(clinic_db_dev)
    # A hole, so that writes really happen in the probes.
    clinic_db_dev.execute(
        "ALTER POLICY patients_clinic_isolation ON clinic.patients WITH CHECK (true)"
    )
    assert check(clinic_db_dev) != []
    assert fingerprint(clinic_db_dev) == before
    assert clinic_db_dev.info.transaction_status == TransactionStatus.INTRANS


@pytest.mark.clinicdb(dev_seed=True)
def test_the_check_on_an_autocommit_connection_and_inside_acting_as(clinic_dsn: str) -> None:
    with psycopg.connect(clinic_dsn, autocommit=True) as conn:
        assert check(conn) == []
        assert conn.info.transaction_status == TransactionStatus.IDLE
        with acting_as(conn, ROLE, **{SETTING: HILLTOP}):
            assert check(conn) == []
            assert _session(conn, SETTING) == (ROLE, HILLTOP)


def test_tenant_tables_are_every_table_clinic_app_may_read_but_the_shared_ones(
    clinic_db: Conn,
) -> None:
    rows = clinic_db.execute(
        "SELECT n.nspname || '.' || c.relname, c.relrowsecurity FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition"
        " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        " AND has_schema_privilege('clinic_app', n.oid, 'USAGE')"
        " AND has_table_privilege('clinic_app', c.oid, 'SELECT') ORDER BY 1"
    ).fetchall()
    assert sorted(name for name, _ in rows) == sorted([*TENANT_TABLES, *SHARED])
    assert all(rls for name, rls in rows if name in TENANT_TABLES)


@pytest.mark.parametrize("table", TENANT_TABLES)
def test_row_level_security_off_on_any_tenant_table_is_found(
    clinic_db_dev: Conn, table: str
) -> None:
    clinic_db_dev.execute(
        sql.SQL("ALTER TABLE {} DISABLE ROW LEVEL SECURITY").format(
            sql.Identifier(*table.split("."))
        )
    )
    problems = check(clinic_db_dev)
    assert problems[0] == (
        f"{table}: clinic_app may read it (SELECT) but row-level security is not enabled, "
        "and it is not listed as shared"
    )
    assert problems[1].startswith(
        f"{table}: {_rows_of(clinic_db_dev, table)} row(s) visible to clinic_app acting for "
        f"more than one tenant, e.g. {R} and {H} both see id="
    )
    assert len(problems) == 2


def _rows_of(conn: Conn, table: str) -> int:
    row = conn.execute(
        sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(*table.split(".")))
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_with_check_that_lets_rows_cross_is_found(clinic_db_dev: Conn) -> None:
    clinic_db_dev.execute(
        "ALTER POLICY patients_clinic_isolation ON clinic.patients WITH CHECK (true)"
    )
    assert check(clinic_db_dev) == [
        f"clinic.patients: clinic_app acting for {R} inserted a row that {H} then sees"
        f" (a copy of its row id={CASEY})",
        f"clinic.patients: clinic_app acting for {R} updated its row id={PAT} into one that"
        f" {H} then sees",
        f"clinic.patients: clinic_app acting for {H} inserted a row that {R} then sees"
        f" (a copy of its row id={PAT})",
        f"clinic.patients: clinic_app acting for {H} updated its row id={CASEY} into one that"
        f" {R} then sees",
    ]


def test_an_update_policy_without_a_tenant_with_check_is_found(clinic_db_dev: Conn) -> None:
    clinic_db_dev.execute(
        """
        DROP POLICY doctors_clinic_isolation ON clinic.doctors;
        CREATE POLICY doctors_read ON clinic.doctors FOR SELECT TO clinic_app
            USING (clinic_id = clinic.current_clinic_id());
        CREATE POLICY doctors_insert ON clinic.doctors FOR INSERT TO clinic_app
            WITH CHECK (clinic_id = clinic.current_clinic_id());
        CREATE POLICY doctors_update ON clinic.doctors FOR UPDATE TO clinic_app
            USING (clinic_id = clinic.current_clinic_id());  -- no WITH CHECK: USING is used
        CREATE POLICY doctors_update_any ON clinic.doctors FOR UPDATE TO clinic_app
            USING (false) WITH CHECK (true);  -- permissive: ORed into the WITH CHECK
        """
    )
    findings = check_tenant_isolation(
        clinic_db_dev, role=ROLE, setting=SETTING, tenants=TENANTS, shared=SHARED
    )
    assert [f.problem for f in findings] == [
        f"clinic.doctors: clinic_app acting for {R} updated its row"
        f" id=5eed0300-0000-4000-8000-000000000001 into one that {H} then sees",
        f"clinic.doctors: clinic_app acting for {H} updated its row"
        f" id=5eed0300-0000-4000-8000-000000000002 into one that {R} then sees",
    ]
    assert findings[0].fix == (
        "give the UPDATE policy of clinic.doctors for clinic_app a WITH CHECK keyed on "
        f"{SETTING}, not only a USING; see SELECT policyname, cmd, roles, qual, with_check "
        "FROM pg_policies WHERE schemaname = 'clinic' AND tablename = 'doctors'"
    )


def test_reaching_the_other_clinics_rows_is_found(clinic_db_dev: Conn) -> None:
    clinic_db_dev.execute(
        """
        CREATE POLICY patients_delete_any ON clinic.patients FOR DELETE TO clinic_app
            USING (true);
        CREATE POLICY patients_update_any ON clinic.patients FOR UPDATE TO clinic_app
            USING (true);
        """
    )
    problems = check(clinic_db_dev)
    assert (
        f"clinic.patients: clinic_app acting for {R} can update a row that only {H} sees (id={CASEY})"
        in problems
    )
    assert (
        f"clinic.patients: clinic_app acting for {R} can delete a row that only {H} sees (id={CASEY})"
        in problems
    )
    assert (
        f"clinic.patients: clinic_app acting for {H} can delete a row that only {R} sees (id={PAT})"
        in problems
    )


def test_rows_visible_without_a_clinic_are_found(clinic_db_dev: Conn) -> None:
    clinic_db_dev.execute(
        "ALTER POLICY staff_clinic_isolation ON clinic.staff"
        " USING (clinic.current_clinic_id() IS NULL OR clinic_id = clinic.current_clinic_id())"
    )
    findings = check_tenant_isolation(
        clinic_db_dev, role=ROLE, setting=SETTING, tenants=TENANTS, shared=SHARED
    )
    assert [(f.problem, f.fix) for f in findings] == [
        (
            f"clinic.staff: 1 row(s) of tenants visible to clinic_app with {SETTING} unset or"
            f" empty, e.g. id={RECEPTION}",
            f"make the policies of clinic.staff match no row when {SETTING} is unset or empty:"
            f" compare with nullif(current_setting('{SETTING}', true), '') (NULL never matches);"
            " see SELECT policyname, cmd, roles, qual, with_check FROM pg_policies"
            " WHERE schemaname = 'clinic' AND tablename = 'staff'",
        )
    ]


def test_a_new_table_without_row_level_security_is_found(clinic_db: Conn) -> None:
    clinic_db.execute(
        """
        CREATE TABLE clinic.referrals (id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
                                       clinic_id uuid NOT NULL REFERENCES clinic.clinics,
                                       note text);
        GRANT SELECT, INSERT ON clinic.referrals TO clinic_app;
        INSERT INTO clinic.clinics (id, name, slug) VALUES
            ('7e570100-0000-4000-8000-000000000001', 'A', 'a'),
            ('7e570100-0000-4000-8000-000000000002', 'B', 'b');
        INSERT INTO clinic.referrals (id, clinic_id) VALUES
            ('7e57ee00-0000-4000-8000-000000000001', '7e570100-0000-4000-8000-000000000001');
        """
    )
    findings = check_tenant_isolation(
        clinic_db, role=ROLE, setting=SETTING, tenants=TENANTS, shared=SHARED
    )
    a, b = (f"{SETTING}=7e570100-0000-4000-8000-00000000000{n}" for n in (1, 2))
    assert [(f.problem, f.fix) for f in findings] == [
        (
            "clinic.referrals: clinic_app may read it (SELECT) but row-level security is not"
            " enabled, and it is not listed as shared",
            "ALTER TABLE clinic.referrals ENABLE ROW LEVEL SECURITY; CREATE POLICY"
            " referrals_tenant_isolation ON clinic.referrals FOR ALL TO clinic_app USING"
            f" (<tenant column> = nullif(current_setting('{SETTING}', true), '')::<type>)"
            " WITH CHECK (<the same condition>); or REVOKE ALL ON clinic.referrals FROM"
            " clinic_app if the role has no business with it; or list it in shared if every"
            " tenant may see every row",
        ),
        (
            f"clinic.referrals: 1 row(s) visible to clinic_app acting for more than one tenant,"
            f" e.g. {a} and {b} both see id=7e57ee00-0000-4000-8000-000000000001",
            f"enable row-level security on clinic.referrals, with a policy keyed on {SETTING}",
        ),
    ]
    # Listed as shared, reading it is no finding (every clinic may see every referral by
    # design), but writing it is: one clinic's INSERT shows in every clinic.
    assert check(clinic_db, shared=(*SHARED, "clinic.referrals")) == [
        "clinic.referrals: listed as shared, and clinic_app may INSERT it without row-level"
        " security: a write acting for one tenant changes what every tenant sees"
    ]
    clinic_db.execute("REVOKE INSERT ON clinic.referrals FROM clinic_app")
    assert check(clinic_db, shared=(*SHARED, "clinic.referrals")) == []


def test_writes_to_shared_tables_and_truncate_are_found(clinic_db: Conn) -> None:
    clinic_db.execute(
        "INSERT INTO clinic.clinics (name, slug) VALUES ('A', 'a'), ('B', 'b');"
        "GRANT UPDATE ON clinic.feature_flags TO clinic_app;"
        "GRANT TRUNCATE ON clinic.payments TO clinic_app"
    )
    findings = check_tenant_isolation(
        clinic_db, role=ROLE, setting=SETTING, tenants=TENANTS, shared=SHARED
    )
    assert [(f.problem, f.fix) for f in findings] == [
        (
            "clinic.feature_flags: listed as shared, and clinic_app may UPDATE it without"
            " row-level security: a write acting for one tenant changes what every tenant sees",
            "REVOKE UPDATE ON clinic.feature_flags FROM clinic_app; or enable row-level security"
            " with policies for the writes",
        ),
        (
            "clinic.payments: clinic_app may TRUNCATE it, which ignores row-level security and"
            " empties it for every tenant",
            "REVOKE TRUNCATE ON clinic.payments FROM clinic_app",
        ),
    ]


def _superuser(conn: Conn) -> bool:
    row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = session_user").fetchone()
    return bool(row and row[0])


def test_a_role_that_bypasses_row_level_security_is_found(clinic_db_dev: Conn) -> None:
    if not _superuser(clinic_db_dev):
        pytest.skip("creating a BYPASSRLS role needs a superuser")
    role = f"bypass_{uuid.uuid4().hex[:8]}"
    clinic_db_dev.execute(
        sql.SQL("CREATE ROLE {r} NOLOGIN BYPASSRLS IN ROLE clinic_app").format(
            r=sql.Identifier(role)
        )
    )
    problems = check(clinic_db_dev, role=role)
    assert problems[0] == f"role {role} has BYPASSRLS: row-level security never applies to it"
    assert {p.split(":")[0] for p in problems[1:]} == set(TENANT_TABLES)


@pytest.mark.parametrize(
    ("tenants", "message"),
    [
        (
            ["5eed0100-0000-4000-8000-000000000001"],
            "check_tenant_isolation needs at least two tenants to compare, tenants= gave 1:"
            " ['5eed0100-0000-4000-8000-000000000001']",
        ),
        (
            "SELECT id FROM clinic.clinics WHERE slug = 'hilltop-dev'",
            "check_tenant_isolation needs at least two tenants to compare, the query"
            " \"SELECT id FROM clinic.clinics WHERE slug = 'hilltop-dev'\" gave 1:"
            " ['5eed0100-0000-4000-8000-000000000002']",
        ),
        (
            [RIVERSIDE, RIVERSIDE],
            "check_tenant_isolation needs at least two tenants to compare,"
            f" tenants= gave 1: ['{RIVERSIDE}']",
        ),
    ],
)
def test_fewer_than_two_tenants_is_a_clear_error(
    clinic_db_dev: Conn, tenants: Any, message: str
) -> None:
    with pytest.raises(CheckError) as info:
        check(clinic_db_dev, tenants=tenants)
    assert str(info.value) == (
        f"{message}\n  hint: give two or more values of the setting (e.g. two clinic ids), or a"
        " query returning them (e.g. 'SELECT id FROM clinic.clinics ORDER BY id')"
    )
    assert clinic_db_dev.info.transaction_status == TransactionStatus.INTRANS


def test_a_session_that_may_not_set_role_is_a_clear_error(clinic_dsn: str) -> None:
    login = f"outsider_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(clinic_dsn, autocommit=True) as admin:
        if not _superuser(admin):
            pytest.skip("creating a login role (and logging in as it) needs a superuser")
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(login)))
        try:
            with psycopg.connect(make_conninfo(clinic_dsn, user=login)) as outsider:
                with pytest.raises(CheckError) as info:
                    check(outsider)
                assert outsider.info.transaction_status == TransactionStatus.IDLE  # rolled back
        finally:
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(login)))
    assert str(info.value) == (
        f"check_tenant_isolation: {login} may not SET ROLE clinic_app\n"
        "  hint: run the check as a superuser, or GRANT clinic_app TO the tables' owner"
    )


def test_unknown_role_and_shared_table_are_clear_errors(clinic_db_dev: Conn) -> None:
    with pytest.raises(CheckError, match="role 'clinic_ap' does not exist"):
        check(clinic_db_dev, role="clinic_ap")
    with pytest.raises(CheckError, match="shared table 'clinic.clinic' does not exist"):
        check(clinic_db_dev, shared=("clinic.clinic",))


# --------------------------------------------------------------- a schema in another style


@pytest.fixture
def crm(clinic_db: Conn) -> Iterator[tuple[Conn, str]]:
    """A CRM schema of another team, built in the test's transaction: (connection, role).

    Tenant column org_id (integer), setting request.org, identity and serial keys, a table
    without primary key, a table whose tenant a trigger assigns, unqualified names.
    """
    conn = clinic_db
    if _superuser(conn):
        role = f"crm_app_{uuid.uuid4().hex[:8]}"
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
    else:
        role = ROLE  # a server of a CI service: the test role may SET ROLE clinic_app only
    conn.execute("CREATE SCHEMA crm")
    conn.execute("SET LOCAL search_path TO crm, public")
    conn.execute(
        """
        CREATE TABLE orgs (id serial PRIMARY KEY, name text NOT NULL UNIQUE);
        CREATE TABLE contacts (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            org_id int NOT NULL REFERENCES orgs,
            email text NOT NULL,
            UNIQUE (org_id, email));
        CREATE TABLE deals (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            org_id int NOT NULL REFERENCES orgs,
            contact_id bigint NOT NULL REFERENCES contacts,
            amount numeric(12, 2) NOT NULL);
        CREATE TABLE activity_log (org_id int NOT NULL, what text NOT NULL);  -- no key: ctid
        CREATE TABLE tags (id serial PRIMARY KEY, org_id int NOT NULL, label text NOT NULL);
        CREATE FUNCTION tags_org() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN NEW.org_id := current_setting('request.org')::int; RETURN NEW; END $$;
        CREATE TRIGGER tags_org BEFORE INSERT OR UPDATE ON tags
            FOR EACH ROW EXECUTE FUNCTION tags_org();
        ALTER TABLE tags DISABLE TRIGGER tags_org;  -- while the owner loads the rows
        INSERT INTO orgs (name) VALUES ('Acme'), ('Globex');
        INSERT INTO contacts (org_id, email) VALUES
            (1, 'a@acme.example'), (1, 'b@acme.example'), (2, 'a@globex.example');
        INSERT INTO deals (org_id, contact_id, amount) VALUES (1, 1, 10), (2, 3, 20);
        INSERT INTO activity_log VALUES (1, 'signed up'), (2, 'signed up'), (2, 'paid');
        INSERT INTO tags (org_id, label) VALUES (1, 'vip'), (2, 'lead');
        ALTER TABLE tags ENABLE TRIGGER tags_org;
        """
    )
    for table in ("contacts", "deals", "activity_log", "tags"):
        condition = "org_id = nullif(current_setting('request.org', true), '')::int"
        # tags: the trigger assigns the tenant, so its WITH CHECK need not look at it.
        check_ = "true" if table == "tags" else condition
        conn.execute(
            sql.SQL(
                "ALTER TABLE {t} ENABLE ROW LEVEL SECURITY;"
                " CREATE POLICY org_only ON {t} TO {r} USING ({c}) WITH CHECK ({w})"
            ).format(
                t=sql.Identifier(table),
                r=sql.Identifier(role),
                c=sql.SQL(condition),
                w=sql.SQL(check_),
            )
        )
    conn.execute(
        sql.SQL(
            "GRANT USAGE ON SCHEMA crm TO {r};"
            " GRANT SELECT ON orgs TO {r};"
            " GRANT SELECT, INSERT, UPDATE, DELETE ON contacts, deals, activity_log, tags TO {r};"
            " GRANT USAGE ON ALL SEQUENCES IN SCHEMA crm TO {r}"
        ).format(r=sql.Identifier(role))
    )
    yield conn, role


def crm_problems(conn: Conn, role: str) -> list[str]:
    report = probe_tenant_isolation(
        conn, role=role, setting="request.org", tenants=[1, 2], shared=["orgs"], schemas=["crm"]
    )
    return [f.problem for f in report.findings]


def test_a_schema_in_another_style_passes(crm: tuple[Conn, str]) -> None:
    conn, role = crm
    report = probe_tenant_isolation(
        conn, role=role, setting="request.org", tenants=[1, 2], shared=["orgs"], schemas=["crm"]
    )
    assert report.findings == []
    assert sorted(report.visible) == ["crm.activity_log", "crm.contacts", "crm.deals", "crm.tags"]
    assert report.visible["crm.activity_log"] == {"1": 1, "2": 2, "": 0}
    assert report.untested() == []
    # tags: WITH CHECK (true), yet the copy of org 2's tag became org 1's (its trigger ran).
    tags = {(p.probe, p.acting_for): p.outcome for p in report.probes if p.table == "crm.tags"}
    assert tags[("insert", "1")] == "no effect"
    assert tags[("update", "1")] == "no effect"


def test_a_schema_in_another_style_with_holes(crm: tuple[Conn, str]) -> None:
    conn, role = crm
    conn.execute(
        "ALTER TABLE activity_log DISABLE ROW LEVEL SECURITY;"
        " ALTER POLICY org_only ON deals WITH CHECK (true)"
    )
    assert crm_problems(conn, role) == [
        f"crm.activity_log: {role} may read it (SELECT) but row-level security is not enabled,"
        " and it is not listed as shared",
        f"crm.activity_log: 3 row(s) visible to {role} acting for more than one tenant, e.g."
        " request.org=1 and request.org=2 both see ctid=(0,1), ctid=(0,2), ctid=(0,3)",
        f"crm.deals: {role} acting for request.org=1 inserted a row that request.org=2 then sees"
        f" (a copy of its row id={_deal(conn, 2)})",
        f"crm.deals: {role} acting for request.org=1 updated its row id={_deal(conn, 1)} into"
        " one that request.org=2 then sees",
        f"crm.deals: {role} acting for request.org=2 inserted a row that request.org=1 then sees"
        f" (a copy of its row id={_deal(conn, 1)})",
        f"crm.deals: {role} acting for request.org=2 updated its row id={_deal(conn, 2)} into"
        " one that request.org=1 then sees",
    ]


def test_a_table_without_key_is_probed_by_its_values(crm: tuple[Conn, str]) -> None:
    conn, role = crm
    conn.execute("ALTER POLICY org_only ON activity_log WITH CHECK (true)")
    problems = crm_problems(conn, role)
    assert problems == [
        f"crm.activity_log: {role} acting for request.org=1 inserted a row that request.org=2"
        " then sees (a copy of its row ctid=(0,2))",
        f"crm.activity_log: {role} acting for request.org=1 updated its row ctid=(0,1) into one"
        " that request.org=2 then sees",
        f"crm.activity_log: {role} acting for request.org=2 inserted a row that request.org=1"
        " then sees (a copy of its row ctid=(0,1))",
        f"crm.activity_log: {role} acting for request.org=2 updated its row ctid=(0,2) into one"
        " that request.org=1 then sees",
    ]


def test_a_read_that_fails_is_reported_as_untested_not_passed(crm: tuple[Conn, str]) -> None:
    conn, role = crm
    # Without nullif, an empty request.org is cast to int: the read fails instead of seeing nothing.
    conn.execute(
        "ALTER POLICY org_only ON contacts"
        " USING (org_id = current_setting('request.org', true)::int)"
    )
    report = probe_tenant_isolation(
        conn, role=role, setting="request.org", tenants=[1, 2], shared=["orgs"], schemas=["crm"]
    )
    assert report.findings == []
    assert [(p.table, p.probe, p.acting_for, p.outcome) for p in report.untested()] == [
        (
            "crm.contacts",
            "read",
            "",
            'untested: reading failed (22P02 invalid input syntax for type integer: "")',
        )
    ]


def _deal(conn: Conn, org: int) -> str:
    row = conn.execute("SELECT id::text FROM deals WHERE org_id = %s", (org,)).fetchone()
    assert row is not None
    return str(row[0])


# ---------------------------------------------------------------------------------- acting_as


def _session(conn: Conn, *names: str) -> tuple[Any, ...]:
    """current_user, then the value of each setting (None when never set in the session)."""
    columns = [sql.SQL("current_user::text")]
    columns += [sql.SQL("current_setting(%s, true)")] * len(names)
    row = conn.execute(sql.SQL("SELECT ") + sql.SQL(", ").join(columns), names).fetchone()
    assert row is not None
    return tuple(row)


def test_acting_as_sets_role_and_dotted_settings_then_restores_them(clinic_db_dev: Conn) -> None:
    owner = _session(clinic_db_dev)[0]
    clinic_db_dev.execute(
        "SELECT set_config(%s, %s, true), set_config('app.current_user_id', 'someone', true)",
        (SETTING, HILLTOP),
    )
    before = _session(clinic_db_dev, SETTING, "app.current_user_id")
    assert before == (owner, HILLTOP, "someone")
    with acting_as(clinic_db_dev, "clinic_app", settings={SETTING: RIVERSIDE}) as conn:
        assert conn is clinic_db_dev
        assert _session(conn, SETTING, "app.current_user_id") == (
            "clinic_app",
            RIVERSIDE,
            "someone",
        )
        patients = conn.execute("SELECT count(*) FROM clinic.patients").fetchone()
        assert patients == (2,)
        with acting_as(conn, **{SETTING: HILLTOP, "app.current_user_id": None}):
            assert _session(conn, SETTING, "app.current_user_id") == ("clinic_app", HILLTOP, "")
        assert _session(conn, SETTING) == ("clinic_app", RIVERSIDE)
    assert _session(clinic_db_dev, SETTING, "app.current_user_id") == before


def test_acting_as_keeps_the_blocks_writes_and_drops_them_when_it_raises(
    clinic_db_dev: Conn,
) -> None:
    def count() -> int:
        row = clinic_db_dev.execute(
            "SELECT count(*) FROM clinic.patients WHERE medical_record_number LIKE 'ACT-%'"
        ).fetchone()
        assert row is not None
        return int(row[0])

    insert = (
        "INSERT INTO clinic.patients (clinic_id, medical_record_number, full_name, date_of_birth)"
        " VALUES (%s, %s, 'Acting Example', '2000-01-01')"
    )
    with acting_as(clinic_db_dev, "clinic_app", **{SETTING: RIVERSIDE}):
        clinic_db_dev.execute(insert, (RIVERSIDE, "ACT-1"))
    with (
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"),
        acting_as(clinic_db_dev, "clinic_app", **{SETTING: RIVERSIDE}),
    ):
        clinic_db_dev.execute(insert, (RIVERSIDE, "ACT-2"))
        clinic_db_dev.execute(insert, (HILLTOP, "ACT-3"))  # another clinic: refused
    with pytest.raises(RuntimeError), acting_as(clinic_db_dev, "clinic_app"):
        raise RuntimeError("not a database error")
    assert count() == 1  # ACT-1 stayed, ACT-2 went with the failed block
    assert _session(clinic_db_dev)[0] != "clinic_app"


def test_acting_as_on_an_autocommit_connection_commits_its_own_transaction(
    clinic_dsn: str,
) -> None:
    with psycopg.connect(clinic_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO clinic.clinics (id, name, slug) VALUES (%s, 'A', 'a')", (RIVERSIDE,)
        )
        with acting_as(conn, "clinic_app", **{SETTING: RIVERSIDE}):
            assert conn.info.transaction_status == TransactionStatus.INTRANS
            assert _session(conn, SETTING) == ("clinic_app", RIVERSIDE)
            conn.execute(
                "INSERT INTO clinic.patients (clinic_id, medical_record_number, full_name,"
                " date_of_birth) VALUES (%s, 'AUTO-1', 'Auto Commit', '2000-01-01')",
                (RIVERSIDE,),
            )
        assert conn.info.transaction_status == TransactionStatus.IDLE
        assert _session(conn, SETTING)[0] != "clinic_app"
        assert _session(conn, SETTING)[1] in (None, "")
    with psycopg.connect(clinic_dsn) as other:
        committed = other.execute(
            "SELECT count(*) FROM clinic.patients WHERE medical_record_number = 'AUTO-1'"
        ).fetchone()
    assert committed == (1,)


def test_acting_as_on_an_idle_connection_leaves_the_transaction_to_the_caller(
    clinic_dsn: str,
) -> None:
    with psycopg.connect(clinic_dsn) as conn:
        assert conn.info.transaction_status == TransactionStatus.IDLE
        with acting_as(conn, "clinic_app"):
            assert _session(conn) == ("clinic_app",)
        assert conn.info.transaction_status == TransactionStatus.INTRANS
        assert _session(conn) != ("clinic_app",)
        conn.rollback()


def test_acting_as_async(clinic_dsn: str) -> None:
    import asyncio

    async def run() -> tuple[Any, ...]:
        async with await psycopg.AsyncConnection.connect(clinic_dsn) as conn:
            async with acting_as_async(conn, "clinic_app", **{SETTING: HILLTOP}):
                cur = await conn.execute(
                    "SELECT current_user::text, current_setting(%s)", (SETTING,)
                )
                inside = await cur.fetchone()
            cur = await conn.execute("SELECT current_user::text")
            after = await cur.fetchone()
            assert inside is not None and after is not None
            return (*inside, after[0])

    inside_user, inside_clinic, after_user = asyncio.run(run())
    assert (inside_user, inside_clinic) == ("clinic_app", HILLTOP)
    assert after_user != "clinic_app"
