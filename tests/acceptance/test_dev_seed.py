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


PUBLIC_AUDIT = """
    CREATE TABLE public.item_audit (item_id int, action text, at timestamptz DEFAULT now());
    CREATE TABLE public.items (id int PRIMARY KEY, name text);
    CREATE FUNCTION public.audit_items() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO item_audit (item_id, action) VALUES (NEW.id, TG_OP);
        RETURN NEW;
    END $$;
    CREATE TRIGGER items_history AFTER INSERT ON items FOR EACH ROW EXECUTE FUNCTION audit_items();
"""


def test_a_failing_dev_seed_errors_only_the_tests_that_need_it(project):
    project.seed(
        "002_dev_seed.sql",
        "INSERT INTO app.items (name) VALUES ('a');\nINSERT INTO app.nope VALUES (1);\n",
    )
    project.tests(
        """
        import pytest

        def test_base(clinic_db):
            clinic_db.execute("SELECT 1")

        def test_dev_1(clinic_db_dev):
            pass

        @pytest.mark.clinicdb(dev_seed=True)
        def test_dev_2(clinic_db):
            pass

        def test_dev_3(clinic_db_dev):
            pass

        def test_base_after(clinic_db_fresh):
            clinic_db_fresh.execute("SELECT 1")
        """
    )
    result = project.run("-p", "no:randomly")
    result.assert_outcomes(passed=2, errors=3)
    # The error section, not pytest's summary (which under CI=true repeats each message whole).
    out = result.stdout.str().partition("short test summary info")[0]
    full = 'pytest-clinicdb: seed 002_dev_seed.sql, line 2, column 13: relation "app.nope" does not exist'
    assert out.count(full) == 1
    short = (
        "pytest-clinicdb: the dev template (seed 002) could not be set up "
        "(the error is shown at test_project.py::test_dev_1)"
    )
    assert out.count(short) == 2
    assert "Interrupted" not in out
    assert project.leftovers() == []


def test_public_schema_audit_triggers_and_an_explicit_table_list(project):
    project.migration("003_public_audit.sql", PUBLIC_AUDIT)
    project.seed(
        "002_dev_seed.sql",
        """
        DO $$ BEGIN
            IF coalesce(nullif(current_setting('app.environment', true), ''), '<unset>')
                NOT IN ('development', 'test') THEN
                RAISE EXCEPTION 'DEV/TEST ONLY';
            END IF;
        END $$;
        SET search_path TO public;
        INSERT INTO items VALUES (1, 'sample'), (2, 'other') ON CONFLICT DO NOTHING;
        """,
    )
    project.tests(
        """
        def test_seeded_without_audit(clinic_db_dev):
            assert clinic_db_dev.execute("SELECT count(*) FROM public.items").fetchone()[0] == 2
            assert clinic_db_dev.execute("SELECT count(*) FROM public.item_audit").fetchone()[0] == 0
            clinic_db_dev.execute("INSERT INTO public.items VALUES (3, 'audited')")
            assert clinic_db_dev.execute("SELECT count(*) FROM public.item_audit").fetchone()[0] == 1
        """
    )
    for args in ([], ["--clinicdb-dev-seed-tables=public.items"]):
        result = project.run(*args)
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(
            [
                "clinicdb: dev seed 002_dev_seed.sql * 1 trigger(s) disabled * 2 row(s) seeded without audit)"
            ]
        )
    bad = project.run("--clinicdb-dev-seed-tables=public.items,public.nope")
    bad.assert_outcomes(errors=1)
    bad.stdout.fnmatch_lines(["pytest-clinicdb: dev seed tables not found: public.nope*"])
    assert project.leftovers() == []
