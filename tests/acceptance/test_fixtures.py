"""clinic_db and friends, run as users run them (subprocess, with and without -n 2)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.acceptance

ISOLATION_TESTS = """
import psycopg
import pytest

@pytest.mark.parametrize("n", range(6))
def test_each_test_starts_clean(clinic_db, n):
    count = clinic_db.execute("SELECT count(*) FROM app.items").fetchone()[0]
    assert count == 0
    clinic_db.execute("INSERT INTO app.items (name) VALUES (%s)", (f"item{n}",))

def test_system_seed_is_loaded(clinic_db):
    rows = clinic_db.execute("SELECT key, enabled FROM app.flags ORDER BY key").fetchall()
    assert rows == [("beta", False), ("new_ui", True)]

def test_expected_error_inside_a_savepoint(clinic_db):
    clinic_db.execute("INSERT INTO app.items (name) VALUES ('dup')")
    with pytest.raises(psycopg.errors.UniqueViolation):
        with clinic_db.transaction():
            clinic_db.execute("INSERT INTO app.items (name) VALUES ('DUP')")
    assert clinic_db.execute("SELECT count(*) FROM app.items").fetchone()[0] == 1

def test_fresh_database_allows_commits(clinic_db_fresh, clinic_dsn):
    clinic_db_fresh.execute("INSERT INTO app.items (name) VALUES ('committed')")
    clinic_db_fresh.commit()
    with psycopg.connect(clinic_dsn) as other:
        assert other.execute("SELECT count(*) FROM app.items").fetchone()[0] == 1

def test_fresh_commit_did_not_leak(clinic_db):
    assert clinic_db.execute("SELECT count(*) FROM app.items WHERE name = 'committed'").fetchone()[0] == 0

def test_server_info(clinic_postgres):
    assert clinic_postgres.backend == "embedded"
    assert clinic_postgres.major >= 14
    assert clinic_postgres.data_dir.name == "data"
    assert clinic_postgres.log_path.exists()
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single", "xdist"])
def test_rollback_isolation_seed_and_cleanup(project, xdist):
    project.tests(ISOLATION_TESTS)
    result = project.run("-v", *xdist)
    result.assert_outcomes(passed=11)
    result.stdout.fnmatch_lines(
        [
            "clinicdb: backend embedded, PostgreSQL *",
            "clinicdb: 2 migrations in database/migrations, system seed database/seeds/001_system_seed.sql*",
            "clinicdb: template * built in * s by *",
            "*WARNING: system seed loaded ?001_system_seed.sql?",
        ]
    )
    assert project.leftovers() == []


def test_commit_is_an_error_and_raw_commit_is_isolated(project):
    project.tests(
        """
        import psycopg, pytest

        def test_commit_refused(clinic_db):
            clinic_db.execute("INSERT INTO app.items (name) VALUES ('a')")
            with pytest.raises(psycopg.ProgrammingError, match="commit"):
                clinic_db.commit()

        def test_rollback_and_autocommit_refused_savepoints_allowed(clinic_db):
            clinic_db.execute("INSERT INTO app.items (name) VALUES ('kept')")
            with pytest.raises(psycopg.ProgrammingError, match="rollback"):
                clinic_db.rollback()
            assert clinic_db.autocommit is False  # statements run in the test's transaction
            with pytest.raises(psycopg.ProgrammingError, match="autocommit"):
                clinic_db.autocommit = True
            with pytest.raises(psycopg.errors.UniqueViolation):
                with clinic_db.transaction():  # a savepoint: only it is rolled back
                    clinic_db.execute("INSERT INTO app.items (name) VALUES ('KEPT')")
            assert clinic_db.execute("SELECT count(*) FROM app.items").fetchone()[0] == 1
            assert clinic_db.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS

        def test_raw_commit(clinic_db):
            clinic_db.execute("INSERT INTO app.items (name) VALUES ('leaked')")
            clinic_db.execute("COMMIT")

        def test_after_raw_commit(clinic_db):
            n = clinic_db.execute("SELECT count(*) FROM app.items").fetchone()[0]
            assert n == 0
        """
    )
    result = project.run("-v", "-p", "no:randomly")
    result.assert_outcomes(passed=4, warnings=1)
    result.stdout.fnmatch_lines(
        ["*test_raw_commit committed inside clinic_db*replaced by a fresh clone*"]
    )


def test_fixtures_are_documented(project):
    result = project.run("--fixtures")
    for name in ("clinic_postgres", "clinic_db ", "clinic_dsn", "clinic_db_fresh"):
        result.stdout.fnmatch_lines([f"{name.strip()} *", "    *"])
    result.stdout.fnmatch_lines(["*rolled back after the test*"])


def test_cleanup_after_a_failing_session(project):
    project.tests(
        """
        def test_fails(clinic_db):
            assert clinic_db.execute("SELECT 1").fetchone()[0] == 2
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    assert project.leftovers() == []


def test_clinic_db_async_without_pytest_asyncio_says_what_to_install(project, monkeypatch):
    shadow = project.path / "no_asyncio"
    (shadow / "pytest_asyncio").mkdir(parents=True)
    (shadow / "pytest_asyncio" / "__init__.py").write_text("raise ImportError('not installed')\n")
    monkeypatch.setenv("PYTHONPATH", str(shadow))
    project.tests(
        """
        def test_needs_it(clinic_db_async):
            pass
        """
    )
    result = project.run("-p", "no:asyncio")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            '*pytest-clinicdb: clinic_db_async needs pytest-asyncio, which is not installed: pip install "pytest-clinicdb[[]async]"*'
        ]
    )
