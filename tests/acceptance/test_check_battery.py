"""pytest --clinicdb-check: the battery on the real clinic database, and on a broken copy."""

from __future__ import annotations

import shutil

import pytest

from ..conftest import REPO

pytestmark = pytest.mark.acceptance

BATTERY = [
    "test_clinicdb_migrations_match_the_lock_file",
    "test_clinicdb_system_seed_is_idempotent",
    "test_clinicdb_dev_seed_guard_refuses_outside_development_and_test",
    "test_clinicdb_dev_seed_is_idempotent",
    "test_clinicdb_triggers_are_enabled_after_seeding",
    "test_clinicdb_audit_partitions_cover_now_and_the_horizon",
    "test_clinicdb_no_audited_row_in_a_default_partition",
    "test_clinicdb_tenants_are_isolated",
]
TENANTS = (
    "--clinicdb-tenant-role=clinic_app",
    "--clinicdb-tenant-setting=app.current_clinic_id",
    "--clinicdb-tenants=SELECT id FROM clinic.clinics ORDER BY id",
    "--clinicdb-tenant-shared=clinic.clinics,clinic.feature_flags,clinic.system_settings",
)


@pytest.fixture
def clinic_copy(project):
    """The project with a copy of the clinic database (migrations, lock file, seeds)."""
    shutil.rmtree(project.path / "database")
    shutil.copytree(REPO / "database", project.path / "database")
    project.tests("def test_never_run():\n    raise AssertionError('the battery runs alone')\n")
    return project


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single", "xdist"])
def test_battery_passes_on_the_clinic_database(clinic_copy, xdist):
    result = clinic_copy.run("--clinicdb-check", "-v", *TENANTS, *xdist)
    result.assert_outcomes(passed=len(BATTERY))
    out = result.stdout.str()
    assert all(name in out for name in BATTERY), "each check is its own, named test item"
    assert "test_never_run" not in out
    assert clinic_copy.leftovers() == []


def test_battery_names_what_a_broken_copy_breaks(clinic_copy):
    seeds = clinic_copy.path / "database" / "seeds"
    dev = seeds / "002_dev_seed.sql"
    dev.write_text(
        dev.read_text().replace(
            "coalesce(nullif(current_setting('app.environment', true), ''), '<unset>')",
            "current_setting('app.environment', true)",
        )
    )
    system = seeds / "001_system_seed.sql"
    system.write_text(
        system.read_text().replace(
            "ON CONFLICT (key) DO UPDATE\n    SET description = EXCLUDED.description\n"
            "    WHERE f.description IS DISTINCT FROM EXCLUDED.description;",
            "ON CONFLICT (key) DO UPDATE SET enabled = NOT f.enabled;",
        )
    )
    migration = clinic_copy.path / "database" / "migrations" / "009_payments.sql"
    migration.write_text(migration.read_text() + "\n-- reviewed\n")
    result = clinic_copy.run("--clinicdb-check", "-rs")
    result.assert_outcomes(passed=len(BATTERY) - 4, failed=3, skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED * tenant isolation is not configured*"])
    result.stdout.fnmatch_lines(
        [
            "*009_payments.sql was edited after it was locked: only comments or whitespace changed",
            "*second run of 001_system_seed.sql changed clinic.feature_flags: 5 row(s) now*",
            "*002_dev_seed.sql ran to the end with app.environment unset: its guard did not refuse",
        ],
        consecutive=False,
    )


def test_battery_names_a_table_whose_row_level_security_was_switched_off(clinic_copy):
    clinic_copy.migration(
        "099_oops.sql", "ALTER TABLE clinic.doctors DISABLE ROW LEVEL SECURITY;\n"
    )
    result = clinic_copy.run("--clinicdb-check", *TENANTS, "-k", "tenants")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*clinic.doctors: clinic_app may read it (SELECT) but row-level security is not enabled*"]
    )
