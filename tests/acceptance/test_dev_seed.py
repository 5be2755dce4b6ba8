"""Seed 002 through the plugin: clinic_db_dev, the option, the marker, the safe default."""

from __future__ import annotations

import pytest

from ..conftest import REPO

pytestmark = pytest.mark.acceptance

DEV_TESTS = """
import pytest

def patients(conn):
    return conn.execute("SELECT count(*) FROM clinic.patients").fetchone()[0]

def test_dev_sees_sample_data(clinic_db_dev):
    assert patients(clinic_db_dev) > 0
    disabled = clinic_db_dev.execute("SELECT count(*) FROM pg_trigger WHERE tgenabled = 'D'").fetchone()[0]
    assert disabled == 0

def test_plain_clinic_db_does_not(clinic_db):
    assert patients(clinic_db) == 0

@pytest.mark.clinicdb(dev_seed=True)
def test_marker_loads_it(clinic_db):
    assert patients(clinic_db) > 0

@pytest.mark.clinicdb(dev_seed=True)
def test_marker_on_a_fresh_clone(clinic_db_fresh):
    assert patients(clinic_db_fresh) > 0

def test_fresh_without_marker(clinic_db_fresh):
    assert patients(clinic_db_fresh) == 0
"""


def real_database(project):
    return (
        f"--clinicdb-migrations={REPO / 'database' / 'migrations'}",
        f"--clinicdb-seeds={REPO / 'database' / 'seeds'}",
    )


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single", "xdist"])
def test_dev_seed_is_kept_apart_and_reported(project, xdist):
    project.tests(DEV_TESTS)
    result = project.run(*real_database(project), *xdist)
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(
        [
            "clinicdb: template * (base) built in *",
            "clinicdb: template * (dev) built in *",
            "clinicdb: dev seed 002_dev_seed.sql loaded (DEV/TEST ONLY, app.environment=test, mode audit: 9 trigger(s) disabled for the seed and re-enabled; * row(s) seeded without audit)",
            "*WARNING: *historical*002_dev_seed.sql*",
        ]
    )
    assert project.leftovers() == []


def test_option_loads_002_into_clinic_db_for_the_run(project):
    project.tests(
        """
        def test_sample_data(clinic_db):
            assert clinic_db.execute("SELECT count(*) FROM clinic.patients").fetchone()[0] > 0
        """
    )
    result = project.run(*real_database(project), "--clinicdb-dev-seed")
    result.assert_outcomes(passed=1)
    # The dev template is a clone of the base one plus the seed: the chain runs once.
    result.stdout.fnmatch_lines(
        ["clinicdb: template * (base) built in *", "clinicdb: template * (dev) built in *"]
    )
    assert result.stdout.str().count("built in") == 2


def test_production_is_refused_as_an_option_value(project):
    project.tests("def test_x(clinic_db_dev):\n    pass\n")
    result = project.run(*real_database(project), "--clinicdb-environment=production")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*--clinicdb-environment: unknown value 'production'*",
            "*valid values: development, test*",
        ]
    )


def test_unknown_marker_option_is_reported(project):
    project.tests(
        """
        import pytest

        @pytest.mark.clinicdb(dev_sed=True)
        def test_typo(clinic_db):
            pass
        """
    )
    result = project.run(*real_database(project))
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*@pytest.mark.clinicdb: unknown option(s) ?'dev_sed'?; valid: dev_seed*"]
    )


def test_table_list_option_limits_the_relaxed_audit(project):
    project.tests(
        """
        def test_patients_were_audited(clinic_db_dev):
            audited = clinic_db_dev.execute(
                "SELECT count(*) FROM audit.audit_logs WHERE table_name = 'patients'"
            ).fetchone()[0]
            assert audited > 0
        """
    )
    result = project.run(*real_database(project), "--clinicdb-dev-seed-tables=clinic.clinics")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["clinicdb: dev seed 002_dev_seed.sql loaded (*mode audit: 1 trigger(s) disabled*"]
    )
    bad = project.run(*real_database(project), "--clinicdb-dev-seed-tables=clinic.nope")
    assert bad.ret != 0
    bad.stdout.fnmatch_lines(["*pytest-clinicdb: dev seed tables not found: clinic.nope*"])
