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
]


@pytest.fixture
def clinic_copy(project):
    """The project with a copy of the clinic database (migrations, lock file, seeds)."""
    shutil.rmtree(project.path / "database")
    shutil.copytree(REPO / "database", project.path / "database")
    project.tests("def test_never_run():\n    raise AssertionError('the battery runs alone')\n")
    return project


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single", "xdist"])
def test_battery_passes_on_the_clinic_database(clinic_copy, xdist):
    result = clinic_copy.run("--clinicdb-check", "-v", *xdist)
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
    result = clinic_copy.run("--clinicdb-check")
    result.assert_outcomes(passed=len(BATTERY) - 3, failed=3)
    result.stdout.fnmatch_lines(
        [
            "*009_payments.sql was edited after it was locked: only comments or whitespace changed",
            "*second run of 001_system_seed.sql changed clinic.feature_flags: 5 row(s) now*",
            "*002_dev_seed.sql ran to the end with app.environment unset: its guard did not refuse",
        ],
        consecutive=False,
    )
