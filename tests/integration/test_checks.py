"""The seed author's checks on the real clinic database: each passes on the good case and fails,
with the expected message, on a deliberately broken copy."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import psycopg
import pytest

from pytest_clinicdb import (
    assert_audit_partitions_cover,
    assert_audit_partitions_cover_horizon,
    assert_audited,
    assert_audited_timestamps_covered,
    assert_migrations_match_lock,
    assert_no_rows_in_default_partition,
    assert_seed_idempotent,
    assert_seed_refuses,
    assert_seed_snapshot,
    assert_triggers_enabled,
    read_partitions,
    write_lock,
)

from ..conftest import REPO

pytestmark = pytest.mark.integration

SEEDS = REPO / "database" / "seeds"
SYSTEM_SEED = SEEDS / "001_system_seed.sql"
DEV_SEED = SEEDS / "002_dev_seed.sql"
UTC = dt.timezone.utc
TEST_ENV = {"app.environment": "test"}


@pytest.fixture
def db(clinic_dsn):
    with psycopg.connect(clinic_dsn, autocommit=True) as conn:
        yield conn


def copy_with(tmp_path: Path, seed: Path, old: str, new: str) -> Path:
    text = seed.read_text()
    assert old in text, "the broken copy must really differ"
    broken = tmp_path / seed.name
    broken.write_text(text.replace(old, new))
    return broken


# ------------------------------------------------------------------ partitions


def test_partitions_are_read_right_in_any_session_time_zone(clinic_db):
    clinic_db.execute("SET TimeZone = 'America/New_York'")
    clinic_db.execute("SET DateStyle = 'SQL, DMY'")
    pmap = read_partitions(clinic_db)
    first = pmap.ranges[0]
    assert first.name == "audit.audit_logs_p2025_01"
    assert (first.lower, first.upper) == (
        dt.datetime(2025, 1, 1, tzinfo=UTC),
        dt.datetime(2025, 2, 1, tzinfo=UTC),
    )
    assert pmap.default is None and pmap.key == "created_at"
    # The caller's session is untouched.
    assert clinic_db.execute("SHOW TimeZone").fetchone()[0] == "America/New_York"


def test_coverage_passes_inside_the_window_and_names_the_gap_and_its_fix(clinic_db):
    assert_audit_partitions_cover(clinic_db, "2025-01-15T09:00:00+00:00", dt.date(2026, 12, 31))
    assert_audit_partitions_cover(clinic_db, start="2025-01-01", end="2027-01-01")

    clinic_db.execute("ALTER TABLE audit.audit_logs DETACH PARTITION audit.audit_logs_p2025_06")
    with pytest.raises(AssertionError) as info:
        assert_audit_partitions_cover(
            clinic_db, "2025-06-10T12:00:00+00:00", start="2025-05-01", end="2025-08-01"
        )
    message = str(info.value)
    assert "2 problem(s)" in message
    assert (
        "2025-06-10 12:00:00+00 is not covered by a range partition of audit.audit_logs: "
        "an audited write at that time fails (SQLSTATE 23514); nearest partitions: "
        "audit.audit_logs_p2025_05 [2025-05-01 00:00:00+00, 2025-06-01 00:00:00+00), "
        "audit.audit_logs_p2025_07 [2025-07-01 00:00:00+00, 2025-08-01 00:00:00+00)"
    ) in message
    assert "gap in audit.audit_logs: [2025-06-01 00:00:00+00, 2025-07-01 00:00:00+00)" in message
    assert (
        "fix: SELECT audit.ensure_monthly_partitions('2025-06-01 00:00:00+00', "
        "'2025-07-01 00:00:00+00');"
    ) in message


def test_a_default_partition_catch_is_a_finding(clinic_db):
    clinic_db.execute("CREATE TABLE audit.audit_logs_default PARTITION OF audit.audit_logs DEFAULT")
    assert_no_rows_in_default_partition(clinic_db)
    with pytest.raises(AssertionError, match="would land in the DEFAULT partition"):
        assert_audit_partitions_cover(clinic_db, "2031-03-01T00:00:00+00:00")
    clinic_db.execute(
        "INSERT INTO audit.audit_logs (created_at, table_schema, table_name, action) "
        "VALUES ('2031-03-05 10:00+00', 'clinic', 'patients', 'INSERT')"
    )
    with pytest.raises(AssertionError) as info:
        assert_no_rows_in_default_partition(clinic_db)
    assert "1 row(s) of audit.audit_logs are in the DEFAULT partition" in str(info.value)
    assert "2031-03-05 10:00:00+00" in str(info.value)


def test_sub_partitions_are_listed(clinic_db):
    clinic_db.execute(
        "CREATE TABLE audit.audit_logs_p2032_01 PARTITION OF audit.audit_logs "
        "FOR VALUES FROM ('2032-01-01 00:00+00') TO ('2032-02-01 00:00+00') "
        "PARTITION BY RANGE (created_at)"
    )
    clinic_db.execute(
        "CREATE TABLE audit.audit_logs_p2032_01_rest PARTITION OF audit.audit_logs_p2032_01 "
        "FOR VALUES FROM (MINVALUE) TO (MAXVALUE)"
    )
    part = read_partitions(clinic_db).find(dt.datetime(2032, 1, 9, tzinfo=UTC))
    assert part is not None and part.name == "audit.audit_logs_p2032_01"
    assert part.subpartitions == ("audit.audit_logs_p2032_01_rest",)
    assert_audit_partitions_cover(clinic_db, "2032-01-09T00:00:00+00:00")


def test_horizon_moves_with_the_calendar(clinic_db):
    assert_audit_partitions_cover_horizon(clinic_db)  # set-up ensured this month + 3
    with pytest.raises(AssertionError, match=r"gap in audit.audit_logs: \[2031-01-01"):
        assert_audit_partitions_cover_horizon(clinic_db, now=dt.datetime(2031, 1, 20, tzinfo=UTC))


def test_collects_what_a_block_would_audit_without_writing_it(clinic_db):
    before = clinic_db.execute("SELECT count(*) FROM audit.audit_logs").fetchone()[0]

    def change(conn):
        conn.execute("INSERT INTO clinic.clinics (name, slug) VALUES ('A', 'a-clinic')")
        conn.execute("UPDATE clinic.clinics SET name = 'B' WHERE slug = 'a-clinic'")

    found = assert_audited_timestamps_covered(clinic_db, change)
    assert len(found) == 2
    assert clinic_db.execute("SELECT count(*) FROM audit.audit_logs").fetchone()[0] == before
    assert (
        clinic_db.execute("SELECT count(*) FROM clinic.clinics WHERE slug = 'a-clinic'").fetchone()[
            0
        ]
        == 0
    )


# ------------------------------------------------------------------ triggers and audit


def test_disabled_trigger_is_named_with_its_fix(clinic_db):
    assert_triggers_enabled(clinic_db)
    clinic_db.execute("ALTER TABLE clinic.patients DISABLE TRIGGER audit_patients")
    with pytest.raises(AssertionError) as info:
        assert_triggers_enabled(clinic_db)
    assert "trigger clinic.patients.audit_patients is disabled" in str(info.value)
    assert "fix: ALTER TABLE clinic.patients ENABLE TRIGGER audit_patients;" in str(info.value)


def test_assert_audited(clinic_db):
    row = clinic_db.execute(
        "INSERT INTO clinic.clinics (name, slug) VALUES ('A', 'a-clinic') RETURNING id"
    ).fetchone()
    assert_audited(clinic_db, "clinic.clinics", row[0], "insert")
    with pytest.raises(AssertionError, match=r"no DELETE audit row for clinic.clinics .*INSERT x1"):
        assert_audited(clinic_db, "clinic.clinics", row[0], "DELETE")


# ------------------------------------------------------------------ seeds


def test_guard_refuses_everywhere_and_the_null_trap_is_caught(db, tmp_path):
    assert_seed_refuses(db, DEV_SEED)
    trap = copy_with(
        tmp_path,
        DEV_SEED,
        "v_env text := coalesce(nullif(current_setting('app.environment', true), ''), '<unset>');",
        "v_env text := current_setting('app.environment', true);",
    )
    with pytest.raises(AssertionError) as info:
        assert_seed_refuses(db, trap)
    message = str(info.value)
    assert "1 problem(s)" in message
    assert "002_dev_seed.sql ran to the end with app.environment unset" in message
    assert db.execute("SELECT count(*) FROM clinic.patients").fetchone()[0] == 0


def test_idempotency_of_both_seeds_and_two_broken_copies(db, tmp_path):
    assert_seed_idempotent(db, SYSTEM_SEED)
    assert_seed_idempotent(db, DEV_SEED, settings=TEST_ENV)

    toggles = copy_with(
        tmp_path,
        SYSTEM_SEED,
        "ON CONFLICT (key) DO UPDATE\n    SET description = EXCLUDED.description\n"
        "    WHERE f.description IS DISTINCT FROM EXCLUDED.description;",
        "ON CONFLICT (key) DO UPDATE SET enabled = NOT f.enabled;",
    )
    with pytest.raises(AssertionError) as info:
        assert_seed_idempotent(db, toggles, exclude_columns=["updated_at"])
    message = str(info.value)
    assert "second run of 001_system_seed.sql changed clinic.feature_flags:" in message
    assert "5 row(s) now, 5 row(s) before differ (first 3 of each)" in message
    assert '+ {"id": ' in message and '"enabled": false' in message and '"enabled": true' in message

    wrong_key = copy_with(
        tmp_path,
        SYSTEM_SEED,
        "ON CONFLICT (key) DO UPDATE\n    SET description = EXCLUDED.description\n"
        "    WHERE f.description IS DISTINCT FROM EXCLUDED.description;",
        "ON CONFLICT (id) DO NOTHING;",
    )
    db.execute("DELETE FROM clinic.feature_flags")
    with pytest.raises(AssertionError, match="second run of 001_system_seed.sql failed: .*23505"):
        assert_seed_idempotent(db, wrong_key)
    assert db.execute("SELECT count(*) FROM clinic.feature_flags").fetchone()[0] == 0


def test_seed_snapshot_is_written_once_then_compared(db, tmp_path):
    snap = tmp_path / "002.snapshot"
    masked = ["created_at", "updated_at"]
    with pytest.raises(AssertionError, match="did not exist: written"):
        assert_seed_snapshot(db, DEV_SEED, snap, settings=TEST_ENV, mask_columns=masked)
    text = snap.read_text()
    assert text.startswith("# rows added by 002_dev_seed.sql")
    assert "## clinic.patients (" in text and '"created_at": "***"' in text
    assert_seed_snapshot(db, DEV_SEED, snap, settings=TEST_ENV, mask_columns=masked)

    changed = copy_with(
        tmp_path, DEV_SEED, "'DEV-0001', 'Pat Example'", "'DEV-0001', 'Patty Example'"
    )
    with pytest.raises(AssertionError) as info:
        assert_seed_snapshot(db, changed, snap, settings=TEST_ENV, mask_columns=masked)
    diff = str(info.value)
    assert "\n+{" in diff and "Patty Example" in diff and "\n-{" in diff and "Pat Example" in diff
    assert db.execute("SELECT count(*) FROM clinic.patients").fetchone()[0] == 0


# ------------------------------------------------------------------ migration lock


def test_migration_lock_names_edits_removals_and_reordering(tmp_path):
    migrations = tmp_path / "migrations"
    shutil.copytree(REPO / "database" / "migrations", migrations)
    lock = write_lock(migrations)
    assert lock == tmp_path / "migrations.lock"
    assert_migrations_match_lock(migrations)

    types = migrations / "002_types.sql"
    types.write_text("-- a new comment\n" + types.read_text().replace("\n", "\n\n", 3))
    with pytest.raises(
        AssertionError,
        match="002_types.sql was edited after it was locked: only comments or whitespace changed",
    ):
        assert_migrations_match_lock(migrations)

    payments = migrations / "009_payments.sql"
    payments.write_text(
        payments.read_text() + "\nCREATE INDEX extra_idx ON clinic.payments (status);\n"
    )
    last = sorted(p.name for p in migrations.glob("*.sql"))[-1]
    (migrations / "015_webhook.sql").rename(migrations / "015_webhooks.sql")
    (migrations / "999_next.sql").write_text("SELECT 1;\n")
    with pytest.raises(AssertionError) as info:
        assert_migrations_match_lock(migrations)
    message = str(info.value)
    assert "009_payments.sql was edited after it was locked: its SQL changed" in message
    assert "015_webhook.sql was removed or renamed" in message
    assert f"new migration 015_webhooks.sql sorts before the locked {last}" in message
    assert "new migration 999_next.sql is not in the lock file" in message
