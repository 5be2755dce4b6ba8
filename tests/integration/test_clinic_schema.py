"""Integration tests of the clinic database shipped in ``database/`` (migrations and seeds).

They run against the plugin's fixtures:

* ``clinic_db`` — migrations and seed 001 applied, audit partitions for the current month and the
  next three; the test runs in a transaction that is rolled back afterwards. Statements expected
  to fail run inside ``with clinic_db.transaction():`` (a savepoint) so the test can go on.
* ``clinic_db_fresh`` / ``clinic_dsn`` — a throwaway clone of the same database; commits allowed.
* ``clinic_postgres`` — the server (``.dsn`` is its maintenance database).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from pytest_clinicdb.tenants import acting_as

pytestmark = pytest.mark.integration

DATABASE_DIR = Path(__file__).resolve().parents[2] / "database"
MIGRATIONS_DIR = DATABASE_DIR / "migrations"
SYSTEM_SEED = DATABASE_DIR / "seeds" / "001_system_seed.sql"
DEV_SEED = DATABASE_DIR / "seeds" / "002_dev_seed.sql"

EXPECTED_TABLES = {
    ("clinic", "clinics"),
    ("clinic", "users"),
    ("clinic", "doctors"),
    ("clinic", "staff"),
    ("clinic", "patients"),
    ("clinic", "appointments"),
    ("clinic", "medical_records"),
    ("clinic", "prescriptions"),
    ("clinic", "payments"),
    ("clinic", "feature_flags"),
    ("clinic", "system_settings"),
    ("booking", "slots"),
    ("booking", "bookings"),
    ("webhook", "inbound_events"),
    ("webhook", "outbound_deliveries"),
    ("audit", "audit_logs"),
}

AUDITED_TABLES = [
    "clinics",
    "users",
    "doctors",
    "staff",
    "patients",
    "appointments",
    "medical_records",
    "prescriptions",
    "payments",
]

RLS_TABLES = ["patients", "appointments", "medical_records", "prescriptions", "payments"]

# The fixed window created by 012_audit_partition_maintenance.sql: 2025-01 .. 2026-12.
MIGRATION_WINDOW = [f"audit_logs_p{y}_{m:02d}" for y in (2025, 2026) for m in range(1, 13)]

SEED_TS = datetime(2025, 1, 15, 9, 0, tzinfo=timezone.utc)  # v_seed_ts of 002_dev_seed.sql


# --------------------------------------------------------------------------------------- helpers


def _month_name(conn: psycopg.Connection[Any], months_ahead: int = 0) -> str:
    """Partition name of the UTC month ``months_ahead`` after the current transaction's now()."""
    row = conn.execute(
        "SELECT 'audit_logs_p' || to_char((date_trunc('month', now() AT TIME ZONE 'UTC')"
        " + make_interval(months => %s)), 'YYYY_MM')",
        (months_ahead,),
    ).fetchone()
    assert row is not None
    return str(row[0])


def _partitions(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """Attached partitions of audit.audit_logs: name -> bound expression (rendered in UTC, ISO)."""
    with conn.transaction(force_rollback=True):
        conn.execute("SET LOCAL TimeZone = 'UTC'")
        conn.execute("SET LOCAL DateStyle = 'ISO'")
        rows = conn.execute(
            "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)"
            " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'audit.audit_logs'::regclass"
        ).fetchall()
    return {str(name): str(bound) for name, bound in rows}


def _data_tables(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """Every ordinary table of the clinic, booking and webhook schemas."""
    rows = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname IN ('clinic', 'booking', 'webhook') AND c.relkind = 'r'"
        " ORDER BY 1, 2"
    ).fetchall()
    return [(str(s), str(t)) for s, t in rows]


def _fingerprint(
    conn: psycopg.Connection[Any], tables: list[tuple[str, str]]
) -> dict[str, list[str]]:
    """Every row of every table, as sorted jsonb text: equal fingerprints mean equal contents."""
    result: dict[str, list[str]] = {}
    for schema, table in tables:
        rows = conn.execute(
            sql.SQL("SELECT to_jsonb(t)::text FROM {} AS t ORDER BY 1").format(
                sql.Identifier(schema, table)
            )
        ).fetchall()
        result[f"{schema}.{table}"] = [str(r[0]) for r in rows]
    return result


def _audit_count(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM audit.audit_logs").fetchone()
    assert row is not None
    return int(row[0])


@contextmanager
def _as_app_role(
    conn: psycopg.Connection[Any], clinic_id: uuid.UUID | str | None = None
) -> Iterator[None]:
    """Run the block as clinic_app (optionally in a clinic), inside a savepoint rolled back after."""
    can = conn.execute(
        "SELECT rolsuper OR pg_has_role(current_user, 'clinic_app', 'MEMBER')"
        " FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if not (can and can[0]):
        pytest.skip("the test role can neither SET ROLE clinic_app nor is superuser")
    with conn.transaction(force_rollback=True):
        conn.execute("SET LOCAL ROLE clinic_app")
        if clinic_id is not None:
            conn.execute("SELECT set_config('app.current_clinic_id', %s, true)", (str(clinic_id),))
        yield


def _make_clinic(conn: psycopg.Connection[Any], label: str, patients: int = 2) -> dict[str, Any]:
    """Insert a clinic with one doctor and ``patients`` patients; return their ids."""
    ids: dict[str, Any] = {
        "clinic": uuid.uuid4(),
        "doctor_user": uuid.uuid4(),
        "doctor": uuid.uuid4(),
    }
    ids["patients"] = [uuid.uuid4() for _ in range(patients)]
    conn.execute(
        "INSERT INTO clinic.clinics (id, name, slug) VALUES (%s, %s, %s)",
        (ids["clinic"], f"Clinic {label}", f"test-{label}-{ids['clinic'].hex[:8]}"),
    )
    conn.execute(
        "INSERT INTO clinic.users (id, clinic_id, email, role, full_name)"
        " VALUES (%s, %s, %s, 'doctor', %s)",
        (
            ids["doctor_user"],
            ids["clinic"],
            f"dr-{ids['doctor_user'].hex}@example.com",
            f"Dr. {label}",
        ),
    )
    conn.execute(
        "INSERT INTO clinic.doctors (id, clinic_id, user_id, specialty, license_number)"
        " VALUES (%s, %s, %s, 'General practice', %s)",
        (ids["doctor"], ids["clinic"], ids["doctor_user"], f"LIC-{ids['doctor'].hex}"),
    )
    for n, patient in enumerate(ids["patients"]):
        conn.execute(
            "INSERT INTO clinic.patients (id, clinic_id, medical_record_number, full_name, date_of_birth)"
            " VALUES (%s, %s, %s, %s, '1990-01-01')",
            (patient, ids["clinic"], f"MRN-{n}", f"Patient {label} {n}"),
        )
    return ids


def _make_slot(
    conn: psycopg.Connection[Any], ids: dict[str, Any], starts_in: timedelta, minutes: int = 30
) -> uuid.UUID:
    row = conn.execute(
        "INSERT INTO booking.slots (clinic_id, doctor_id, starts_at, ends_at)"
        " VALUES (%s, %s, now() + %s, now() + %s + make_interval(mins => %s)) RETURNING id",
        (ids["clinic"], ids["doctor"], starts_in, starts_in, minutes),
    ).fetchone()
    assert row is not None
    return uuid.UUID(str(row[0]))


# ---------------------------------------------------------------------------- migrations & schema


def test_migration_files_are_numbered_and_documented() -> None:
    files = sorted(MIGRATIONS_DIR.glob("*.sql"))
    assert files, f"no migrations in {MIGRATIONS_DIR}"
    names = [f.name for f in files]
    bad = [n for n in names if not re.fullmatch(r"\d{3}_[a-z0-9_]+\.sql", n)]
    assert not bad, f"migration names must be NNN_name.sql: {bad}"
    prefixes = [n[:3] for n in names]
    assert len(set(prefixes)) == len(prefixes), f"duplicate numeric prefixes: {names}"
    for f in files:
        first = f.read_text(encoding="utf-8").splitlines()[0]
        assert first == f"-- {f.name}", (
            f"{f.name}: first line must be the header comment '-- {f.name}'"
        )


def test_every_expected_table_exists(clinic_db: psycopg.Connection[Any]) -> None:
    rows = clinic_db.execute(
        "SELECT n.nspname, c.relname, c.relkind FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition"
        " AND n.nspname IN ('clinic', 'booking', 'webhook', 'audit')"
    ).fetchall()
    found = {(str(s), str(t)): str(k) for s, t, k in rows}
    missing = EXPECTED_TABLES - set(found)
    assert not missing, f"tables missing after the migrations: {sorted(missing)}"
    assert found[("audit", "audit_logs")] == "p", "audit.audit_logs must be a partitioned table"


def test_audit_logs_partitions_cover_fixed_window_and_test_months(
    clinic_db: psycopg.Connection[Any],
) -> None:
    parts = _partitions(clinic_db)
    missing_window = [p for p in MIGRATION_WINDOW if p not in parts]
    assert not missing_window, f"partitions of the migration window missing: {missing_window}"
    assert parts["audit_logs_p2025_01"] == (
        "FOR VALUES FROM ('2025-01-01 00:00:00+00') TO ('2025-02-01 00:00:00+00')"
    )
    assert parts["audit_logs_p2026_12"] == (
        "FOR VALUES FROM ('2026-12-01 00:00:00+00') TO ('2027-01-01 00:00:00+00')"
    )
    assert "DEFAULT" not in parts.values(), "audit.audit_logs must have no DEFAULT partition"
    row = clinic_db.execute(
        "SELECT partdefid FROM pg_partitioned_table WHERE partrelid = 'audit.audit_logs'::regclass"
    ).fetchone()
    assert row is not None and int(row[0]) == 0, "audit.audit_logs must have no DEFAULT partition"
    # The plugin's test set-up covers the current month and the next three.
    wanted = [_month_name(clinic_db, k) for k in range(4)]
    assert [w for w in wanted if w not in parts] == []


def test_triggers_are_installed_and_enabled(clinic_db: psycopg.Connection[Any]) -> None:
    rows = clinic_db.execute(
        "SELECT c.relname, t.tgname, t.tgenabled, p.proname, pn.nspname"
        " FROM pg_trigger t"
        " JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_namespace pn ON pn.oid = p.pronamespace"
        " WHERE NOT t.tgisinternal AND n.nspname = 'clinic'"
    ).fetchall()
    triggers = {
        (str(rel), str(name)): (str(enabled), f"{fschema}.{fname}")
        for rel, name, enabled, fname, fschema in rows
    }
    for table in AUDITED_TABLES:
        assert triggers.get((table, f"audit_{table}")) == ("O", "audit.log_change"), (
            f"clinic.{table} needs an enabled trigger audit_{table} calling audit.log_change()"
        )
    with_updated_at = clinic_db.execute(
        "SELECT table_name FROM information_schema.columns"
        " WHERE table_schema = 'clinic' AND column_name = 'updated_at'"
    ).fetchall()
    assert len(with_updated_at) >= 11
    for (table,) in with_updated_at:
        assert triggers.get((str(table), f"set_updated_at_{table}")) == (
            "O",
            "clinic.set_updated_at",
        )
    assert not [k for k, v in triggers.items() if v[0] != "O"], (
        "every clinic trigger must be enabled"
    )


# ----------------------------------------------------------------------------------------- seeds


def test_system_seed_rerun_leaves_identical_rows(clinic_db: psycopg.Connection[Any]) -> None:
    tables = [("clinic", "feature_flags"), ("clinic", "system_settings")]
    before = _fingerprint(clinic_db, tables)
    assert before["clinic.feature_flags"] and before["clinic.system_settings"], (
        "seed 001 is not loaded"
    )
    seed = SYSTEM_SEED.read_text(encoding="utf-8")
    clinic_db.execute(seed)
    clinic_db.execute(seed)
    assert _fingerprint(clinic_db, tables) == before


def test_system_seed_rerun_keeps_operator_changes(clinic_db: psycopg.Connection[Any]) -> None:
    clinic_db.execute(
        "UPDATE clinic.feature_flags SET enabled = NOT enabled WHERE key = 'telehealth'"
    )
    clinic_db.execute(
        "UPDATE clinic.system_settings SET value = '45' WHERE key = 'booking.default_slot_minutes'"
    )
    tables = [("clinic", "feature_flags"), ("clinic", "system_settings")]
    before = _fingerprint(clinic_db, tables)
    clinic_db.execute(SYSTEM_SEED.read_text(encoding="utf-8"))
    assert _fingerprint(clinic_db, tables) == before


def test_system_seed_holds_no_accounts(clinic_db: psycopg.Connection[Any]) -> None:
    for table in AUDITED_TABLES:
        row = clinic_db.execute(
            sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier("clinic", table))
        ).fetchone()
        assert row is not None and row[0] == 0, (
            f"clinic.{table} must be empty after migrations + 001"
        )


@pytest.mark.parametrize(
    ("value", "shown"),
    [("", "<unset>"), ("production", "production"), ("staging", "staging"), ("Test", "Test")],
)
def test_dev_seed_refused_outside_development_and_test(
    clinic_db: psycopg.Connection[Any], value: str, shown: str
) -> None:
    with pytest.raises(psycopg.errors.RaiseException) as excinfo, clinic_db.transaction():
        clinic_db.execute("SELECT set_config('app.environment', %s, true)", (value,))
        clinic_db.execute(DEV_SEED.read_text(encoding="utf-8"))
    diag = excinfo.value.diag
    assert diag.message_primary == (
        f"002_dev_seed.sql is DEV/TEST ONLY: app.environment is '{shown}',"
        " it must be 'development' or 'test'"
    )
    assert diag.message_hint is not None and "app.environment" in diag.message_hint
    row = clinic_db.execute("SELECT count(*) FROM clinic.clinics").fetchone()
    assert row is not None and row[0] == 0


def test_dev_seed_refused_when_app_environment_was_never_set(clinic_postgres: Any) -> None:
    # A connection of its own: on a long-lived connection a custom setting once set (even locally)
    # reads back as '' instead of NULL. options="" keeps PGOPTIONS from setting it. Only the guard
    # runs (it is the first statement), so the maintenance database is fine.
    with psycopg.connect(clinic_postgres.dsn, options="") as conn:
        row = conn.execute("SELECT current_setting('app.environment', true)").fetchone()
        assert row is not None and row[0] is None, (
            "precondition: app.environment is set by the server or role configuration"
        )
        with pytest.raises(psycopg.errors.RaiseException, match=r"app\.environment is '<unset>'"):
            conn.execute(DEV_SEED.read_text(encoding="utf-8"))
        conn.rollback()


def test_dev_seed_loads_once_and_rerun_changes_nothing(clinic_db: psycopg.Connection[Any]) -> None:
    warnings: list[str] = []

    def on_notice(diag: psycopg.errors.Diagnostic) -> None:
        if diag.severity_nonlocalized == "WARNING" and diag.message_primary:
            warnings.append(diag.message_primary)

    tables = _data_tables(clinic_db)
    seed = DEV_SEED.read_text(encoding="utf-8")
    clinic_db.execute("SELECT set_config('app.environment', 'test', true)")
    clinic_db.add_notice_handler(on_notice)
    try:
        clinic_db.execute(seed)
        first = _fingerprint(clinic_db, tables)
        audit_rows = _audit_count(clinic_db)
        clinic_db.execute(seed)
        second = _fingerprint(clinic_db, tables)
    finally:
        clinic_db.remove_notice_handler(on_notice)

    assert second == first, "a second run of 002_dev_seed.sql must change nothing"
    assert _audit_count(clinic_db) == audit_rows, "a second run must not write (audit) rows"
    assert len(warnings) == 2
    assert "v_seed_ts = 2025-01-15 09:00:00+00" in warnings[0] and "historical" in warnings[0]

    counts = {name: len(rows) for name, rows in first.items()}
    assert counts["clinic.clinics"] == 2 and counts["clinic.users"] == 5
    assert counts["clinic.patients"] == 3 and counts["clinic.appointments"] == 3
    assert counts["booking.slots"] == 3 and counts["booking.bookings"] == 1
    # Every seeded created_at/updated_at is the one fixed v_seed_ts (seeded ids start with 5eed).
    stamped = clinic_db.execute(
        "SELECT table_schema, table_name FROM information_schema.columns"
        " WHERE table_schema IN ('clinic', 'booking') AND column_name = 'updated_at'"
    ).fetchall()
    seeded_stamps: set[datetime] = set()
    for schema, table in stamped:
        rows = clinic_db.execute(
            sql.SQL(
                "SELECT DISTINCT ts FROM {} AS t, LATERAL (VALUES (t.created_at), (t.updated_at)) AS v(ts)"
                " WHERE t.id::text LIKE '5eed%'"
            ).format(sql.Identifier(schema, table))
        ).fetchall()
        seeded_stamps.update(r[0] for r in rows)
    assert seeded_stamps == {SEED_TS}


# ----------------------------------------------------------------------------------------- audit


def test_audited_insert_writes_exactly_one_audit_row(clinic_db: psycopg.Connection[Any]) -> None:
    actor = str(uuid.uuid4())
    clinic_db.execute("SELECT set_config('app.current_user_id', %s, true)", (actor,))
    row = clinic_db.execute(
        "INSERT INTO clinic.clinics (name, slug) VALUES ('Audit Clinic', 'audit-clinic') RETURNING id"
    ).fetchone()
    assert row is not None
    clinic_id = row[0]
    rows = clinic_db.execute(
        "SELECT action, actor_id, old_values, new_values ->> 'name', changed_fields, created_at = now()"
        " FROM audit.audit_logs"
        " WHERE table_schema = 'clinic' AND table_name = 'clinics' AND record_id = %s",
        (str(clinic_id),),
    ).fetchall()
    assert rows == [("INSERT", actor, None, "Audit Clinic", None, True)]


def test_audit_update_lists_changed_fields_redacts_password_and_null_actor(
    clinic_db: psycopg.Connection[Any],
) -> None:
    ids = _make_clinic(clinic_db, "upd", patients=0)
    clinic_db.execute("SELECT set_config('app.current_user_id', '', true)")  # empty means no actor
    clinic_db.execute(
        "UPDATE clinic.users SET full_name = 'Dr. Renamed', password_hash = 'secret-hash' WHERE id = %s",
        (ids["doctor_user"],),
    )
    clinic_db.execute(
        "UPDATE clinic.users SET full_name = full_name WHERE id = %s", (ids["doctor_user"],)
    )
    rows = clinic_db.execute(
        "SELECT actor_id, changed_fields, old_values ->> 'full_name', new_values ->> 'full_name',"
        " new_values ? 'password_hash', old_values ? 'password_hash'"
        " FROM audit.audit_logs WHERE table_name = 'users' AND action = 'UPDATE' AND record_id = %s",
        (str(ids["doctor_user"]),),
    ).fetchall()
    # One row: the no-op UPDATE writes none. updated_at is not listed: the user was inserted in
    # this transaction, so its updated_at already equals now().
    assert rows == [(None, ["full_name", "password_hash"], "Dr. upd", "Dr. Renamed", False, False)]


def test_audited_insert_without_partition_fails_with_23514(
    clinic_db: psycopg.Connection[Any],
) -> None:
    current = _month_name(clinic_db)
    with clinic_db.transaction(force_rollback=True):
        clinic_db.execute(
            sql.SQL("ALTER TABLE audit.audit_logs DETACH PARTITION {}").format(
                sql.Identifier("audit", current)
            )
        )
        with pytest.raises(psycopg.errors.CheckViolation) as excinfo, clinic_db.transaction():
            clinic_db.execute(
                "INSERT INTO clinic.clinics (name, slug) VALUES ('No Partition', 'no-partition')"
            )
        assert excinfo.value.sqlstate == "23514"
        assert "no partition of relation" in str(excinfo.value)
    row = clinic_db.execute(
        "SELECT count(*) FROM clinic.clinics WHERE slug = 'no-partition'"
    ).fetchone()
    assert row is not None and row[0] == 0, (
        "the clinic insert must fail together with its audit row"
    )


def test_ensure_monthly_partitions_is_idempotent_and_utc(
    clinic_db: psycopg.Connection[Any],
) -> None:
    # The plugin's set-up already created the current month and the next three.
    row = clinic_db.execute(
        "SELECT audit.ensure_monthly_partitions("
        " date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',"
        " (date_trunc('month', now() AT TIME ZONE 'UTC') + interval '4 months') AT TIME ZONE 'UTC')"
    ).fetchone()
    assert row == (0,)
    with clinic_db.transaction(force_rollback=True):
        # Bounds must not depend on the session time zone: UTC+14 here.
        clinic_db.execute("SET LOCAL TimeZone = 'Pacific/Kiritimati'")
        call = "SELECT audit.ensure_monthly_partitions(%s::timestamptz, %s::timestamptz)"
        window = ("2040-01-15 00:00:00+00", "2040-03-01 00:00:00+00")  # overlaps Jan and Feb 2040
        assert clinic_db.execute(call, window).fetchone() == (2,)
        assert clinic_db.execute(call, window).fetchone() == (0,)
        parts = _partitions(clinic_db)
        assert parts["audit_logs_p2040_01"] == (
            "FOR VALUES FROM ('2040-01-01 00:00:00+00') TO ('2040-02-01 00:00:00+00')"
        )
        assert parts["audit_logs_p2040_02"] == (
            "FOR VALUES FROM ('2040-02-01 00:00:00+00') TO ('2040-03-01 00:00:00+00')"
        )
        assert "audit_logs_p2040_03" not in parts  # p_to is exclusive
        with pytest.raises(psycopg.errors.InvalidParameterValue), clinic_db.transaction():
            clinic_db.execute(call, (None, "2040-03-01 00:00:00+00"))


def test_updated_at_trigger_bumps_only_real_changes(clinic_db: psycopg.Connection[Any]) -> None:
    old = datetime(2025, 1, 15, 9, 0, tzinfo=timezone.utc)
    clinic_db.execute(
        "INSERT INTO clinic.clinics (name, slug, created_at, updated_at) VALUES"
        " ('Changed', 'ts-changed', %s, %s), ('Unchanged', 'ts-unchanged', %s, %s)",
        (old, old, old, old),
    )
    clinic_db.execute("UPDATE clinic.clinics SET name = 'Changed!' WHERE slug = 'ts-changed'")
    clinic_db.execute("UPDATE clinic.clinics SET name = name WHERE slug = 'ts-unchanged'")
    rows = clinic_db.execute(
        "SELECT slug, created_at = %s, updated_at = now() FROM clinic.clinics"
        " WHERE slug LIKE 'ts-%%' ORDER BY slug",
        (old,),
    ).fetchall()
    assert rows == [("ts-changed", True, True), ("ts-unchanged", True, False)]


# --------------------------------------------------------------------------------------- booking


def test_book_slot_creates_appointment_and_refuses_double_booking(
    clinic_db: psycopg.Connection[Any],
) -> None:
    ids = _make_clinic(clinic_db, "book")
    slot = _make_slot(clinic_db, ids, timedelta(days=7))
    first, second = ids["patients"]

    row = clinic_db.execute(
        "SELECT booking.book_slot(%s, %s, 'Check-up')", (slot, first)
    ).fetchone()
    assert row is not None
    appointment = row[0]
    booked = clinic_db.execute(
        "SELECT a.patient_id, a.doctor_id, a.status::text, a.reason, b.status::text"
        " FROM clinic.appointments a"
        " JOIN booking.bookings b ON b.appointment_id = a.id"
        " JOIN booking.slots s ON s.id = b.slot_id AND s.starts_at = a.starts_at AND s.ends_at = a.ends_at"
        " WHERE a.id = %s",
        (appointment,),
    ).fetchall()
    assert booked == [(first, ids["doctor"], "scheduled", "Check-up", "active")]

    with (
        pytest.raises(psycopg.errors.ExclusionViolation, match="is already booked") as excinfo,
        clinic_db.transaction(),
    ):
        clinic_db.execute("SELECT booking.book_slot(%s, %s)", (slot, second))
    assert excinfo.value.sqlstate == "23P01"


def test_overlapping_slots_and_appointments_of_one_doctor_are_refused(
    clinic_db: psycopg.Connection[Any],
) -> None:
    ids = _make_clinic(clinic_db, "overlap")
    _make_slot(clinic_db, ids, timedelta(days=3), minutes=30)
    with pytest.raises(psycopg.errors.ExclusionViolation) as excinfo, clinic_db.transaction():
        _make_slot(clinic_db, ids, timedelta(days=3, minutes=15), minutes=30)
    assert excinfo.value.diag.constraint_name == "slots_no_overlap"

    insert = (
        "INSERT INTO clinic.appointments (clinic_id, doctor_id, patient_id, starts_at, ends_at, status)"
        " VALUES (%s, %s, %s, now() + %s, now() + %s, %s)"
    )
    first, second = ids["patients"]
    clinic_db.execute(
        insert,
        (
            ids["clinic"],
            ids["doctor"],
            first,
            timedelta(days=5),
            timedelta(days=5, hours=1),
            "scheduled",
        ),
    )
    with pytest.raises(psycopg.errors.ExclusionViolation) as excinfo, clinic_db.transaction():
        clinic_db.execute(
            insert,
            (
                ids["clinic"],
                ids["doctor"],
                second,
                timedelta(days=5, minutes=30),
                timedelta(days=5, hours=2),
                "confirmed",
            ),
        )
    assert excinfo.value.diag.constraint_name == "appointments_no_double_booking"
    # A cancelled appointment does not hold the doctor's time.
    clinic_db.execute(
        insert,
        (
            ids["clinic"],
            ids["doctor"],
            second,
            timedelta(days=5, minutes=30),
            timedelta(days=5, hours=2),
            "cancelled",
        ),
    )


def test_concurrent_book_slot_waits_for_the_slot_lock(
    clinic_db_fresh: psycopg.Connection[Any], clinic_dsn: str
) -> None:
    ids = _make_clinic(clinic_db_fresh, "race")
    slot = _make_slot(clinic_db_fresh, ids, timedelta(days=2))
    clinic_db_fresh.commit()
    first, second = ids["patients"]

    with psycopg.connect(clinic_dsn) as other:
        clinic_db_fresh.execute(
            "SELECT booking.book_slot(%s, %s)", (slot, first)
        )  # holds the slot lock
        other.execute("SET lock_timeout = '200ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            other.execute("SELECT booking.book_slot(%s, %s)", (slot, second))
        other.rollback()
        clinic_db_fresh.commit()
        with pytest.raises(psycopg.errors.ExclusionViolation, match="is already booked"):
            other.execute("SELECT booking.book_slot(%s, %s)", (slot, second))
        other.rollback()

    rows = clinic_db_fresh.execute(
        "SELECT patient_id FROM booking.bookings WHERE slot_id = %s", (slot,)
    ).fetchall()
    assert rows == [(first,)]


# ----------------------------------------------------------------------------- roles and RLS


def test_rls_app_role_sees_only_the_current_clinic(clinic_db: psycopg.Connection[Any]) -> None:
    a = _make_clinic(clinic_db, "rls-a", patients=2)
    b = _make_clinic(clinic_db, "rls-b", patients=1)

    def visible() -> set[uuid.UUID]:
        return {r[0] for r in clinic_db.execute("SELECT id FROM clinic.patients").fetchall()}

    with _as_app_role(clinic_db):
        assert visible() == set(), "with app.current_clinic_id unset clinic_app must see no patient"
        clinic_db.execute("SELECT set_config('app.current_clinic_id', '', true)")
        assert visible() == set(), "with app.current_clinic_id empty clinic_app must see no patient"
    with _as_app_role(clinic_db, a["clinic"]):
        assert visible() == set(a["patients"])
        with (
            pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"),
            clinic_db.transaction(),
        ):
            clinic_db.execute(
                "INSERT INTO clinic.patients (clinic_id, medical_record_number, full_name, date_of_birth)"
                " VALUES (%s, 'X-1', 'Wrong Clinic', '2000-01-01')",
                (b["clinic"],),
            )
    with _as_app_role(clinic_db, b["clinic"]):
        assert visible() == set(b["patients"])
    # The owner is not subject to row-level security.
    assert set(a["patients"]) | set(b["patients"]) <= visible()


def test_rls_is_enabled_on_patient_data_tables(clinic_db: psycopg.Connection[Any]) -> None:
    rows = clinic_db.execute(
        "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'clinic' AND c.relname = ANY(%s)",
        (RLS_TABLES,),
    ).fetchall()
    assert sorted(rows) == sorted((t, True, False) for t in RLS_TABLES)


def test_app_role_writes_are_audited(clinic_db: psycopg.Connection[Any]) -> None:
    ids = _make_clinic(clinic_db, "app-audit", patients=0)
    actor = str(uuid.uuid4())
    patient = uuid.uuid4()
    with _as_app_role(clinic_db, ids["clinic"]):
        clinic_db.execute("SELECT set_config('app.current_user_id', %s, true)", (actor,))
        clinic_db.execute(
            "INSERT INTO clinic.patients (id, clinic_id, medical_record_number, full_name, date_of_birth)"
            " VALUES (%s, %s, 'APP-1', 'Via App Role', '2001-02-03')",
            (patient, ids["clinic"]),
        )
        # Back as the owner (still inside the savepoint): the trigger wrote the audit row.
        clinic_db.execute("RESET ROLE")
        rows = clinic_db.execute(
            "SELECT action, actor_id FROM audit.audit_logs WHERE table_name = 'patients' AND record_id = %s",
            (str(patient),),
        ).fetchall()
        assert rows == [("INSERT", actor)]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit.audit_logs SET action = 'DELETE'",
        "DELETE FROM audit.audit_logs",
        "TRUNCATE audit.audit_logs",
        "INSERT INTO audit.audit_logs (table_schema, table_name, action) VALUES ('clinic', 'x', 'INSERT')",
    ],
)
def test_app_role_cannot_write_audit_logs(
    clinic_db: psycopg.Connection[Any], statement: str
) -> None:
    clinic_db.execute("INSERT INTO clinic.clinics (name, slug) VALUES ('Audited', 'audited')")
    before = _audit_count(clinic_db)
    with (
        _as_app_role(clinic_db),
        pytest.raises(psycopg.errors.InsufficientPrivilege),
        clinic_db.transaction(),
    ):
        clinic_db.execute(statement)
    assert _audit_count(clinic_db) == before


def test_app_role_privileges(clinic_db: psycopg.Connection[Any]) -> None:
    row = clinic_db.execute(
        "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'clinic_app'"
    ).fetchone()
    assert row == (False,), "clinic_app must exist and be NOLOGIN"
    checks = clinic_db.execute(
        "SELECT has_table_privilege('clinic_app', 'clinic.patients', 'SELECT, INSERT, UPDATE, DELETE'),"
        " has_table_privilege('clinic_app', 'booking.bookings', 'INSERT'),"
        " has_function_privilege('clinic_app', 'booking.book_slot(uuid, uuid, text)', 'EXECUTE'),"
        " has_table_privilege('clinic_app', 'audit.audit_logs', 'UPDATE'),"
        " has_table_privilege('clinic_app', 'audit.audit_logs', 'DELETE'),"
        " has_table_privilege('clinic_app', 'audit.audit_logs', 'TRUNCATE'),"
        " has_table_privilege('public', 'audit.audit_logs', 'UPDATE')"
    ).fetchone()
    assert checks == (True, True, True, False, False, False, False)


# The tables every clinic shares by design (019): clinic_app may read them, not write them.
SHARED_TABLES = ["clinics", "feature_flags", "system_settings"]
# Every other table clinic_app may read has row-level security keyed on the clinic (017, 020).
TENANT_TABLES = [
    "clinic.users",
    "clinic.doctors",
    "clinic.staff",
    "clinic.patients",
    "clinic.appointments",
    "clinic.medical_records",
    "clinic.prescriptions",
    "clinic.payments",
    "booking.slots",
    "booking.bookings",
]


def test_clinic_app_reads_shared_tables_and_writes_none_of_them(
    clinic_db: psycopg.Connection[Any],
) -> None:
    rows = clinic_db.execute(
        "SELECT t, has_table_privilege('clinic_app', 'clinic.' || t, 'SELECT'),"
        " has_table_privilege('clinic_app', 'clinic.' || t, 'INSERT, UPDATE, DELETE, TRUNCATE')"
        " FROM unnest(%s::text[]) AS t",
        (SHARED_TABLES,),
    ).fetchall()
    assert rows == [(t, True, False) for t in SHARED_TABLES]


def test_every_tenant_table_has_row_level_security_and_no_truncate(
    clinic_db: psycopg.Connection[Any],
) -> None:
    rows = clinic_db.execute(
        "SELECT t, c.relrowsecurity, c.relforcerowsecurity,"
        " has_table_privilege('clinic_app', c.oid, 'SELECT, INSERT, UPDATE, DELETE'),"
        " has_table_privilege('clinic_app', c.oid, 'TRUNCATE'),"
        " (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid"
        "  AND 'clinic_app'::regrole = ANY(p.polroles))"
        " FROM unnest(%s::text[]) WITH ORDINALITY AS u(t, n)"
        " JOIN pg_class c ON c.oid = t::regclass ORDER BY n",
        (TENANT_TABLES,),
    ).fetchall()
    assert rows == [(t, True, False, True, False, 1) for t in TENANT_TABLES]


def test_webhook_queues_belong_to_the_worker_role(clinic_db: psycopg.Connection[Any]) -> None:
    row = clinic_db.execute(
        "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'clinic_webhook_worker'"
    ).fetchone()
    assert row == (False,), "clinic_webhook_worker must exist and be NOLOGIN"
    rows = clinic_db.execute(
        "SELECT t, has_table_privilege('clinic_app', t, 'SELECT, INSERT, UPDATE, DELETE'),"
        " has_table_privilege('clinic_webhook_worker', t, 'SELECT'),"
        " has_table_privilege('clinic_webhook_worker', t, 'INSERT'),"
        " has_table_privilege('clinic_webhook_worker', t, 'UPDATE'),"
        " has_table_privilege('clinic_webhook_worker', t, 'DELETE'),"
        " has_table_privilege('clinic_webhook_worker', t, 'TRUNCATE')"
        " FROM unnest(%s::text[]) AS t",
        (["webhook.inbound_events", "webhook.outbound_deliveries"],),
    ).fetchall()
    assert rows == [
        ("webhook.inbound_events", False, True, True, True, True, False),
        ("webhook.outbound_deliveries", False, True, True, True, True, False),
    ]
    usage = clinic_db.execute(
        "SELECT has_schema_privilege('clinic_app', 'webhook', 'USAGE'),"
        " has_table_privilege('clinic_webhook_worker', 'clinic.patients', 'SELECT'),"
        " has_column_privilege('clinic_webhook_worker', 'clinic.payments', 'amount', 'SELECT'),"
        " has_column_privilege('clinic_webhook_worker', 'clinic.payments', 'status', 'UPDATE'),"
        " has_column_privilege('clinic_webhook_worker', 'clinic.payments', 'amount', 'UPDATE')"
    ).fetchone()
    assert usage == (False, False, False, True, False)


def test_webhook_worker_settles_provider_payments_of_any_clinic_only(
    clinic_db: psycopg.Connection[Any],
) -> None:
    a, b = _make_clinic(clinic_db, "wh-a", patients=1), _make_clinic(clinic_db, "wh-b", patients=1)
    for ids, reference in ((a, "pi_a"), (b, None)):
        clinic_db.execute(
            "INSERT INTO clinic.payments (clinic_id, patient_id, amount, currency, method,"
            " provider, provider_reference) VALUES (%s, %s, 5, 'EUR', 'card', %s, %s)",
            (ids["clinic"], ids["patients"][0], reference and "stripe", reference),
        )
    can = clinic_db.execute(
        "SELECT rolsuper OR pg_has_role(current_user, 'clinic_webhook_worker', 'MEMBER')"
        " FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if not (can and can[0]):
        pytest.skip("the test role can neither SET ROLE clinic_webhook_worker nor is superuser")
    with acting_as(clinic_db, "clinic_webhook_worker"):  # no clinic: an event names none
        clinic_db.execute(
            "INSERT INTO webhook.inbound_events (provider, idempotency_key, event_type, payload)"
            " VALUES ('stripe', 'evt_1', 'payment.succeeded', '{}')"
        )
        settled = clinic_db.execute(
            "UPDATE clinic.payments SET status = 'succeeded', paid_at = now()"
            " WHERE provider = 'stripe' AND provider_reference = 'pi_a' AND status = 'pending'"
            " RETURNING clinic_id"
        ).fetchall()
        visible = clinic_db.execute("SELECT count(*) FROM clinic.payments").fetchone()
        with pytest.raises(psycopg.errors.InsufficientPrivilege), clinic_db.transaction():
            clinic_db.execute("SELECT amount FROM clinic.payments")
    assert settled == [(a["clinic"],)]
    assert visible == (1,), "the cash payment without provider reference must stay invisible"


def test_clinic_app_acting_for_a_clinic_sees_only_its_accounts_doctors_slots_and_bookings(
    clinic_db: psycopg.Connection[Any],
) -> None:
    a, b = _make_clinic(clinic_db, "iso-a"), _make_clinic(clinic_db, "iso-b")
    for ids in (a, b):
        slot = _make_slot(clinic_db, ids, timedelta(days=3))
        clinic_db.execute("SELECT booking.book_slot(%s, %s)", (slot, ids["patients"][0]))
    query = (
        "SELECT (SELECT array_agg(DISTINCT clinic_id) FROM clinic.users),"
        " (SELECT array_agg(DISTINCT clinic_id) FROM clinic.doctors),"
        " (SELECT array_agg(DISTINCT clinic_id) FROM booking.slots),"
        " (SELECT array_agg(DISTINCT s.clinic_id) FROM booking.bookings bk"
        "  JOIN booking.slots s ON s.id = bk.slot_id)"
    )
    for ids in (a, b):
        with _as_app_role(clinic_db, ids["clinic"]):
            assert clinic_db.execute(query).fetchone() == ([ids["clinic"]],) * 4
    with _as_app_role(clinic_db):
        assert clinic_db.execute(query).fetchone() == (None,) * 4


def test_a_booking_must_name_a_patient_and_appointment_of_its_slots_clinic(
    clinic_db: psycopg.Connection[Any],
) -> None:
    a, b = _make_clinic(clinic_db, "bk-a"), _make_clinic(clinic_db, "bk-b")
    slot = _make_slot(clinic_db, a, timedelta(days=3))
    appointment = clinic_db.execute(
        "INSERT INTO clinic.appointments (clinic_id, doctor_id, patient_id, starts_at, ends_at)"
        " SELECT clinic_id, doctor_id, %s, starts_at, ends_at FROM booking.slots WHERE id = %s"
        " RETURNING id",
        (a["patients"][0], slot),
    ).fetchone()
    assert appointment is not None
    insert = (
        "INSERT INTO booking.bookings (slot_id, doctor_id, starts_at, ends_at, patient_id,"
        " appointment_id) SELECT id, doctor_id, starts_at, ends_at, %s, %s"
        " FROM booking.slots WHERE id = %s"
    )
    with _as_app_role(clinic_db, a["clinic"]):
        # The foreign key alone accepts clinic B's patient; the policy does not.
        with (
            pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"),
            clinic_db.transaction(),
        ):
            clinic_db.execute(insert, (b["patients"][0], appointment[0], slot))
        clinic_db.execute(insert, (a["patients"][0], appointment[0], slot))


def test_account_for_login_finds_one_account_before_a_clinic_is_chosen(
    clinic_db: psycopg.Connection[Any],
) -> None:
    ids = _make_clinic(clinic_db, "login", patients=0)
    email = f"dr-{ids['doctor_user'].hex}@example.com"
    with _as_app_role(clinic_db):
        assert clinic_db.execute("SELECT count(*) FROM clinic.users").fetchone() == (0,)
        rows = clinic_db.execute(
            "SELECT user_id, clinic_id, role::text, is_active FROM clinic.account_for_login(%s)",
            (email.upper(),),
        ).fetchall()
        unknown = clinic_db.execute(
            "SELECT count(*) FROM clinic.account_for_login('nobody@example.com')"
        ).fetchone()
    assert rows == [(ids["doctor_user"], ids["clinic"], "doctor", True)]
    assert unknown == (0,)
    grants = clinic_db.execute(
        "SELECT has_function_privilege('clinic_app', 'clinic.account_for_login(text)', 'EXECUTE'),"
        " has_function_privilege('public', 'clinic.account_for_login(text)', 'EXECUTE'),"
        " (SELECT prosecdef FROM pg_proc WHERE oid = 'clinic.account_for_login(text)'::regprocedure)"
    ).fetchone()
    assert grants == (True, False, True)


# --------------------------------------------------------------------------------------- webhook


def test_inbound_webhook_events_are_idempotent(clinic_db: psycopg.Connection[Any]) -> None:
    insert = (
        "INSERT INTO webhook.inbound_events (provider, idempotency_key, event_type, payload)"
        " VALUES ('devpay', 'evt_1', 'payment.succeeded', '{}') ON CONFLICT DO NOTHING"
    )
    assert clinic_db.execute(insert).rowcount == 1
    assert clinic_db.execute(insert).rowcount == 0
    with pytest.raises(psycopg.errors.UniqueViolation), clinic_db.transaction():
        clinic_db.execute(
            "INSERT INTO webhook.inbound_events (provider, idempotency_key, event_type, payload)"
            " VALUES ('devpay', 'evt_1', 'payment.succeeded', '{}')"
        )


# ----------------------------------------------------------------- book_slot refusals (021)


def test_book_slot_tells_an_unknown_slot_from_an_unknown_patient_by_sqlstate(
    clinic_db: psycopg.Connection[Any],
) -> None:
    ids = _make_clinic(clinic_db, "unknown")
    slot = _make_slot(clinic_db, ids, timedelta(days=3))
    nobody = uuid.uuid4()
    with pytest.raises(psycopg.errors.NoDataFound) as no_slot, clinic_db.transaction():
        clinic_db.execute("SELECT booking.book_slot(%s, %s)", (nobody, ids["patients"][0]))
    with pytest.raises(psycopg.errors.ForeignKeyViolation) as no_patient, clinic_db.transaction():
        clinic_db.execute("SELECT booking.book_slot(%s, %s)", (slot, nobody))
    assert (no_slot.value.sqlstate, no_slot.value.diag.message_primary) == (
        "P0002",
        f"booking.book_slot: slot {nobody} does not exist",
    )
    assert (no_patient.value.sqlstate, no_patient.value.diag.message_primary) == (
        "23503",
        f"booking.book_slot: patient {nobody} does not exist",
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            "UPDATE clinic.doctors SET is_accepting_patients = false WHERE id = %(doctor)s",
            "booking.book_slot: doctor {doctor} is not accepting patients, slot {slot} cannot be"
            " booked",
        ),
        (
            "UPDATE clinic.clinics SET is_active = false WHERE id = %(clinic)s",
            "booking.book_slot: clinic {clinic} is not active, slot {slot} cannot be booked",
        ),
    ],
    ids=["doctor-not-accepting", "clinic-inactive"],
)
def test_book_slot_refuses_a_doctor_not_accepting_patients_and_an_inactive_clinic(
    clinic_db: psycopg.Connection[Any], change: str, message: str
) -> None:
    ids = _make_clinic(clinic_db, "refuse")
    slot = _make_slot(clinic_db, ids, timedelta(days=3))
    clinic_db.execute(change, {"doctor": ids["doctor"], "clinic": ids["clinic"]})
    with pytest.raises(psycopg.errors.InvalidParameterValue) as refused, clinic_db.transaction():
        clinic_db.execute("SELECT booking.book_slot(%s, %s)", (slot, ids["patients"][0]))
    assert refused.value.diag.message_primary == message.format(
        doctor=ids["doctor"], clinic=ids["clinic"], slot=slot
    )
    assert clinic_db.execute("SELECT count(*) FROM booking.bookings").fetchone() == (0,)


# ------------------------------------------------------------- patient portal accounts (022)


def test_a_portal_account_must_be_a_patient_account_of_the_patients_clinic(
    clinic_db: psycopg.Connection[Any],
) -> None:
    a, b = _make_clinic(clinic_db, "portal-a", 0), _make_clinic(clinic_db, "portal-b", 0)

    def account(ids: dict[str, Any], role: str) -> uuid.UUID:
        row = clinic_db.execute(
            "INSERT INTO clinic.users (clinic_id, email, role, full_name)"
            " VALUES (%s, %s, %s, 'Portal') RETURNING id",
            (ids["clinic"], f"{uuid.uuid4().hex}@example.com", role),
        ).fetchone()
        assert row is not None
        return uuid.UUID(str(row[0]))

    insert = (
        "INSERT INTO clinic.patients (clinic_id, user_id, medical_record_number, full_name,"
        " date_of_birth) VALUES (%s, %s, %s, 'Portal Patient', '1990-01-01')"
    )
    for wrong in (account(b, "patient"), account(a, "staff"), a["doctor_user"]):
        with pytest.raises(psycopg.errors.ForeignKeyViolation) as refused, clinic_db.transaction():
            clinic_db.execute(insert, (a["clinic"], wrong, f"P-{wrong.hex[:6]}"))
        assert refused.value.diag.constraint_name == "patients_portal_account_fk"
    mine = account(a, "patient")
    clinic_db.execute(insert, (a["clinic"], mine, "P-OK"))
    clinic_db.execute(insert, (a["clinic"], None, "P-NONE"))  # no account: not checked
    # The linked account can no longer change its role or its clinic.
    for change in ("role = 'staff'", "clinic_id = %s"):
        with pytest.raises(psycopg.errors.ForeignKeyViolation), clinic_db.transaction():
            params = (b["clinic"], mine) if "%s" in change else (mine,)
            clinic_db.execute(
                sql.SQL("UPDATE clinic.users SET {} WHERE id = %s").format(sql.SQL(change)), params
            )


# -------------------------------------------------------------- audit: the role in effect (023)


def test_audit_rows_record_the_login_and_the_role_in_effect(
    clinic_db: psycopg.Connection[Any],
) -> None:
    ids = _make_clinic(clinic_db, "audit-role", patients=0)
    login = clinic_db.execute("SELECT session_user::text").fetchone()
    assert login is not None
    with acting_as(clinic_db, "clinic_app", **{"app.current_clinic_id": ids["clinic"]}):
        clinic_db.execute(
            "INSERT INTO clinic.patients (clinic_id, medical_record_number, full_name,"
            " date_of_birth) VALUES (%s, 'ROLE-1', 'Role Example', '1990-01-01')",
            (ids["clinic"],),
        )
    rows = clinic_db.execute(
        "SELECT table_name, db_user, db_role FROM audit.audit_logs"
        " WHERE table_name IN ('clinics', 'patients') AND (record_id = %s OR new_values"
        " ->> 'medical_record_number' = 'ROLE-1') ORDER BY id",
        (str(ids["clinic"]),),
    ).fetchall()
    assert rows == [("clinics", login[0], login[0]), ("patients", login[0], "clinic_app")]
    definer = clinic_db.execute(
        "SELECT prosecdef FROM pg_proc WHERE oid = 'audit.log_change()'::regprocedure"
    ).fetchone()
    assert definer == (True,), "audit.log_change() must stay SECURITY DEFINER"
