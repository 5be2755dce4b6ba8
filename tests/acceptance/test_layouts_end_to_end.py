"""The migration layouts of other tools (``tests/projects/layout_*``), run as their users run them.

Each project keeps its migrations where golang-migrate, Flyway, dbmate, goose or the Supabase CLI
keeps them, and configures the plugin only through its ``pytest.ini``.  Its own tests use
``clinic_db`` and ``clinic_db_fresh`` (Supabase also ``clinic_db_dev`` and row-level security);
then ``clinicdb lock``, the battery, ``clinicdb up``/``migrate``/``status`` judge it, and an edited
versioned migration must be named by the ledger and by the lock rule — while Flyway's repeatable
``R__`` file may change and is applied again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from pytest_clinicdb import acting_as

from ..conftest import clinicdb, copy_project, postgres_left, postgres_processes

pytestmark = pytest.mark.acceptance


LOCK_RULE = "test_clinicdb_migrations_match_the_lock_file"
NO_DEV_SEED = (
    "no dev seed: there is no dev seed file and seeds are switched off (ini clinicdb_seeds = none)"
)
NO_AUDIT_TABLE = "no audit table partitioned by range on a timestamp (name one with --audit-tables)"
#: `clinicdb check`'s messages name the command's own options (--seeds, not --clinicdb-seeds).
#: The battery of a project without seeds, audit table or tenant settings: the lock rule passes
#: (after ``clinicdb lock``), every other rule is skipped with its reason.
WITHOUT_SEEDS = {
    LOCK_RULE: ("passed", ""),
    "test_clinicdb_system_seed_is_idempotent": (
        "skipped",
        "no system seed configured (--system-seed, or 001_*.sql in the seeds folder)",
    ),
    "test_clinicdb_dev_seed_guard_refuses_outside_development_and_test": ("skipped", NO_DEV_SEED),
    "test_clinicdb_dev_seed_is_idempotent": ("skipped", NO_DEV_SEED),
    "test_clinicdb_triggers_are_enabled_after_seeding": ("skipped", NO_DEV_SEED),
    "test_clinicdb_audit_partitions_cover_now_and_the_horizon": ("skipped", NO_AUDIT_TABLE),
    "test_clinicdb_no_audited_row_in_a_default_partition": ("skipped", NO_AUDIT_TABLE),
    "test_clinicdb_tenants_are_isolated": (
        "skipped",
        "tenant isolation is not configured (--tenant-role, --tenant-setting and --tenants)",
    ),
}
#: Supabase's seed.sql is written for `supabase db reset` on an empty local database: no
#: app.environment guard, plain INSERTs.  The clinic's rules for a dev seed say so; the tenant
#: rule, configured in its pytest.ini, checks the policies on auth.uid() for each seeded user.
SUPABASE = {
    **WITHOUT_SEEDS,
    "test_clinicdb_dev_seed_guard_refuses_outside_development_and_test": (
        "failed",
        "the guard of seed.sql does not refuse: 4 problem(s)",
    ),
    "test_clinicdb_dev_seed_is_idempotent": (
        "failed",
        "second run of seed.sql failed: seed seed.sql, line 2, column 1: duplicate key value "
        'violates unique constraint "users_pkey" (SQLSTATE 23505)',
    ),
    "test_clinicdb_triggers_are_enabled_after_seeding": ("passed", ""),
    "test_clinicdb_tenants_are_isolated": ("passed", ""),
}


@dataclass(frozen=True)
class Layout:
    tests: int  # the project's own tests
    header: list[str]  # what the report header says was detected
    migrations: list[str]  # the ledger after `clinicdb up`, in the order applied
    lock: str  # where `clinicdb lock` writes (beside the first migrations folder)
    edit: tuple[str, str, str]  # an applied versioned file: path, text, replacement
    battery: dict[str, tuple[str, str]] = field(default_factory=lambda: WITHOUT_SEEDS)
    up: tuple[str, ...] = ()


LAYOUTS = {
    "layout_golang_migrate": Layout(
        tests=6,
        header=[
            "clinicdb: 4 migrations in db/migrations (golang-migrate layout), no system seed; *",
            "clinicdb: note: migrations: skipped 4 down migration(s) (*.down.sql): golang-migrate "
            "runs them only when migrating down",
        ],
        migrations=[
            "000001_create_patients.up.sql",
            "000002_create_appointments.up.sql",
            "000003_add_patient_phone.up.sql",
            "000010_appointments_per_day.up.sql",
        ],
        lock="db/migrations.lock",
        edit=(
            "db/migrations/000002_create_appointments.up.sql",
            "'cancelled'",
            "'cancelled', 'no_show'",
        ),
    ),
    "layout_flyway": Layout(
        tests=8,
        header=[
            "clinicdb: 8 migrations in db/migration, db/reporting (flyway layout), no system seed; *",
            "clinicdb: note: migration: skipped 1 undo migration(s) (U…__*.sql): Flyway runs them "
            "only on undo",
        ],
        migrations=[
            "V1__create_clinics.sql",
            "V1.1__clinic_timezone.sql",
            "V2__create_patients.sql",
            "V2.1__create_reporting_schema.sql",
            "V3__create_visits.sql",
            "V3.5__index_visits_concurrently.sql",
            "V4__visits_per_room.sql",
            "R__clinic_views.sql",
        ],
        lock="db/migrations.lock",
        # the second location's dotted version
        edit=("db/reporting/V2.1__create_reporting_schema.sql", "DEFAULT 0", "DEFAULT 1"),
    ),
    "layout_dbmate": Layout(
        tests=6,
        header=["clinicdb: 4 migrations in db/migrations (dbmate layout), no system seed; *"],
        migrations=[
            "20240110090000_create_patients.sql",
            "20240112143000_create_prescriptions.sql",
            "20240115080000_index_prescriptions_concurrently.sql",
            "20240120101500_add_prescriber.sql",
        ],
        lock="db/migrations.lock",
        # the transaction:false file, applied statement by statement in autocommit
        edit=(
            "db/migrations/20240115080000_index_prescriptions_concurrently.sql",
            "prescribed DESC",
            "prescribed",
        ),
    ),
    "layout_goose": Layout(
        tests=8,
        header=["clinicdb: 5 migrations in migrations (goose layout), no system seed; *"],
        migrations=[
            "00001_create_lab_tables.sql",
            "00002_touch_updated_at.sql",
            "00003_reference_ranges.sql",
            "00004_index_results_concurrently.sql",
            "00010_flag_out_of_range.sql",
        ],
        lock="migrations.lock",
        # inside StatementBegin/StatementEnd
        edit=("migrations/00002_touch_updated_at.sql", "clock_timestamp()", "now()"),
    ),
    "layout_supabase": Layout(
        tests=11,
        header=[
            "clinicdb: 4 migrations in supabase/migrations (supabase layout), no system seed; *",
            "clinicdb: bootstrap (before the migrations, not in the ledger): platform",
        ],
        migrations=[
            "20240101120000_create_profiles.sql",
            "20240115093000_create_appointments.sql",
            "20240130_add_profile_phone.sql",
            "20240202140000_index_appointments.sql",
        ],
        lock="supabase/migrations.lock",
        # the 8-digit timestamp
        edit=(
            "supabase/migrations/20240130_add_profile_phone.sql",
            "add column phone text",
            "add column phone varchar(20)",
        ),
        battery=SUPABASE,
        up=("--dev",),
    ),
}
ANA = "6f1c1e6a-1111-4c8e-9d1a-000000000001"


def collected(result: pytest.RunResult) -> int:
    return int(result.stdout.lines[-1].split()[0])


def battery(root: Path, cache: Path) -> tuple[int, dict[str, tuple[str, str]]]:
    """`clinicdb check --json`: its exit code and each rule's outcome and message."""
    check = clinicdb(root, cache, "check", "--json")
    checks = json.loads(check.stdout)["checks"]
    return check.returncode, {c["check"]: (c["outcome"], c["message"]) for c in checks}


def assert_battery(got: dict[str, tuple[str, str]], expected: dict[str, tuple[str, str]]) -> None:
    assert sorted(got) == sorted(expected)
    for rule, (outcome, text) in expected.items():
        assert got[rule][0] == outcome, (rule, got[rule])
        assert text in got[rule][1], (rule, got[rule])


def lock_rule(pytester: pytest.Pytester, cache: Path) -> pytest.RunResult:
    """The battery's lock rule alone (`pytest --clinicdb-check -k lock_file`: no server needed)."""
    return pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--clinicdb-cache-dir={cache}", "--clinicdb-check",
        "-k", "lock_file",
    )  # fmt: skip


def migrate_check(root: Path, cache: Path, dsn: str) -> tuple[int, dict[str, object]]:
    result = clinicdb(root, cache, "migrate", "--check", "--dsn", dsn, "--json")
    return result.returncode, json.loads(result.stdout)


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single", "xdist"])
@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_the_projects_own_tests_pass(pytester, cache_dir, name, xdist):
    layout = LAYOUTS[name]
    copy_project(pytester, name)
    count = collected(pytester.runpytest_subprocess("--co", "-q", "-p", "no:cacheprovider"))
    assert count == layout.tests
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--clinicdb-cache-dir={cache_dir}", *xdist
    )
    result.assert_outcomes(passed=count)
    result.stdout.fnmatch_lines(layout.header, consecutive=False)
    if name == "layout_supabase":
        result.stdout.fnmatch_lines(["clinicdb: dev seed seed.sql loaded (DEV/TEST ONLY, *"])
    assert list(cache_dir.glob("run-*")) == []
    assert postgres_left(cache_dir) == []  # the released server shut down


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_the_commands_judge_the_project_and_name_an_edited_migration(pytester, cache_dir, name):
    layout = LAYOUTS[name]
    root = copy_project(pytester, name)
    lock = clinicdb(root, cache_dir, "lock", "--json")
    assert lock.returncode == 0, lock.stderr
    assert Path(json.loads(lock.stdout)["lock"]) == root / layout.lock
    locked = json.loads((root / layout.lock).read_text())["migrations"]
    assert [e["name"] for e in locked] == layout.migrations
    code, outcomes = battery(root, cache_dir)
    assert_battery(outcomes, layout.battery)
    assert code == (1 if any(o == "failed" for o, _ in layout.battery.values()) else 0)

    up = clinicdb(root, cache_dir, "up", "--json", "--show-password", *layout.up)
    assert up.returncode == 0, up.stderr
    dsn = json.loads(up.stdout)["dsn"]
    try:
        assert migrate_check(root, cache_dir, dsn) == (
            0,
            {"ok": True, "pending": [], "edited": [], "incomplete": {}},
        )
        status = clinicdb(root, cache_dir, "status", "--dsn", dsn, "--json")
        assert status.returncode == 0, status.stdout
        data = json.loads(status.stdout)
        assert data["ok"] is True
        assert data["applied"] == len(layout.migrations)
        assert data["pending"] == data["edited"] == data["unknown"] == data["problems"] == []
        with psycopg.connect(dsn) as conn:
            ledger = conn.execute("SELECT name FROM clinicdb.migrations ORDER BY applied_at")
            assert [r[0] for r in ledger] == layout.migrations
            if name == "layout_supabase":  # `clinicdb up --dev`: the seeded users, as PostgREST
                with acting_as(conn, "authenticated", settings={"request.jwt.claim.sub": ANA}):
                    rows = conn.execute("SELECT full_name FROM public.profiles").fetchall()
                assert rows == [("Ana Silva",)]
        if name == "layout_flyway":
            the_repeatable_migration_may_change(pytester, root, cache_dir, dsn)

        path, text, replacement = layout.edit
        edited = root / path
        assert text in edited.read_text()
        edited.write_text(edited.read_text().replace(text, replacement))
        check = clinicdb(root, cache_dir, "migrate", "--check", "--dsn", dsn)
        assert check.returncode == 1, check.stdout + check.stderr
        assert f"edited:  {edited.name}\n" in check.stdout
        apply = clinicdb(root, cache_dir, "migrate", "--dsn", dsn)
        assert apply.returncode == 1
        assert (
            f"already-applied migration(s) changed since they were applied: {edited.name}\n"
            in apply.stderr
        )
        result = lock_rule(pytester, cache_dir)
        result.assert_outcomes(failed=1, deselected=7)
        result.stdout.fnmatch_lines(  # the findings alone, no traceback through the battery
            [
                "migrations do not match the lock file: 1 problem(s)",
                f"  - {edited.name} was edited after it was locked: its SQL changed",
            ]
        )
    finally:
        down = clinicdb(root, cache_dir, "down")
        assert down.returncode == 0, down.stderr
    assert list(cache_dir.glob("run-*")) == []
    assert postgres_processes(str(cache_dir)) == []


TIME_ZONE_IN_THE_VIEW = """
def test_the_directory_shows_the_time_zone(clinic_db):
    clinic_db.execute("INSERT INTO clinic.clinics (id, name) VALUES (1, 'Riverside Clinic')")
    clinic_db.execute("INSERT INTO clinic.patients (clinic_id, full_name) VALUES (1, 'Lena Novak')")
    row = clinic_db.execute("SELECT full_name, time_zone FROM clinic.patient_directory").fetchone()
    assert row == ("Lena Novak", "Europe/Paris")
"""


def the_repeatable_migration_may_change(
    pytester: pytest.Pytester, root: Path, cache: Path, dsn: str
) -> None:
    """Flyway's R__ file changed: not an edit; the next build and `clinicdb migrate` apply it."""
    views = root / "db" / "migration" / "R__clinic_views.sql"
    old = "SELECT p.id, p.full_name, c.name AS clinic\n"
    assert old in views.read_text()
    views.write_text(views.read_text().replace(old, old.rstrip("\n") + ", c.time_zone\n"))
    assert migrate_check(root, cache, dsn) == (
        0,
        {"ok": True, "pending": ["R__clinic_views.sql"], "edited": [], "incomplete": {}},
    )
    lock_rule(pytester, cache).assert_outcomes(passed=1, deselected=7)
    # the project's tests see the new view: the template is built again with it
    pytester.makepyfile(test_view_changed=TIME_ZONE_IN_THE_VIEW)
    pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--clinicdb-cache-dir={cache}", "test_view_changed.py"
    ).assert_outcomes(passed=1)
    (pytester.path / "test_view_changed.py").unlink()
    # `clinicdb migrate` applies it again, and only it
    apply = clinicdb(root, cache, "migrate", "--dsn", dsn, "--json")
    assert apply.returncode == 0, apply.stderr
    report = json.loads(apply.stdout)
    assert report["applied"] == ["R__clinic_views.sql"]
    assert "R__clinic_views.sql" not in report["skipped"]
    with psycopg.connect(dsn) as conn:
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'clinic' "
            "AND table_name = 'patient_directory' ORDER BY ordinal_position"
        ).fetchall()
    assert [c[0] for c in columns] == ["id", "full_name", "clinic", "time_zone"]
    assert migrate_check(root, cache, dsn)[1]["pending"] == []


#: A part of a file that never runs (a down file or section, an undo file): what an edit of it
#: should mean.  golang-migrate and Flyway leave such files out of the chain, so editing them
#: is not an edit of history.
NOT_RUN = {
    "layout_golang_migrate": (
        "db/migrations/000003_add_patient_phone.down.sql",
        "DROP COLUMN IF EXISTS phone",
        "DROP COLUMN IF EXISTS phone CASCADE",
    ),
    "layout_flyway": ("db/migration/U3__drop_visits.sql", "DROP TABLE", "DROP TABLE IF EXISTS"),
    "layout_dbmate": (
        "db/migrations/20240120101500_add_prescriber.sql",
        "DROP COLUMN prescriber",
        "DROP COLUMN IF EXISTS prescriber",
    ),
    "layout_goose": (
        "migrations/00003_reference_ranges.sql",
        "DROP TABLE lab.reference_ranges",
        "DROP TABLE IF EXISTS lab.reference_ranges",
    ),
}


@pytest.mark.parametrize(
    "name", ["layout_golang_migrate", "layout_flyway", "layout_dbmate", "layout_goose"]
)
def test_editing_what_never_runs_is_not_an_edit_of_history(pytester, cache_dir, name):
    root = copy_project(pytester, name)
    assert clinicdb(root, cache_dir, "lock").returncode == 0
    path, text, replacement = NOT_RUN[name]
    assert text in (root / path).read_text()
    (root / path).write_text((root / path).read_text().replace(text, replacement))
    lock_rule(pytester, cache_dir).assert_outcomes(passed=1, deselected=7)
