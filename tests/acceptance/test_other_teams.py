"""Clinic databases written in other teams' styles (``tests/projects/clinic_*``), run as users run them.

Each project is configured only through its ``pytest.ini``.  Its own tests use
``clinic_db``, ``clinic_db_fresh``/``clinic_dsn`` and ``clinic_db_dev``; then the
battery and the ``clinicdb`` command judge it.  Projects whose migrations leave
``now()`` without an audit partition fail the partition rule — the tests only
ran on test-only partitions — and the command says so too.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import psycopg
import pytest

from ..conftest import (
    PROJECTS,
    clinicdb,
    copy_project,
    kept_clusters,
    kept_server,
    postgres_left,
    postgres_processes,
)

pytestmark = pytest.mark.acceptance

#: What the battery finds in each project (rules not listed pass or skip).
BATTERY_FAILS = {
    "clinic_search_path": {"test_clinicdb_dev_seed_is_idempotent"},  # DO UPDATE bumps updated_at
    "clinic_other_partition_function": set(),
    "clinic_other_partition_function_months": set(),
    "clinic_no_partitions": {"test_clinicdb_audit_partitions_cover_now_and_the_horizon"},
    "clinic_roles": set(),
    "clinic_db_settings": set(),
    "clinic_public_schema": {"test_clinicdb_audit_partitions_cover_now_and_the_horizon"},
}


def collected(result: pytest.RunResult) -> int:
    return int(result.stdout.lines[-1].split()[0])


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single", "xdist"])
@pytest.mark.parametrize("name", sorted(BATTERY_FAILS))
def test_the_projects_own_tests_pass(pytester, cache_dir, name, xdist):
    root = copy_project(pytester, name)
    count = collected(pytester.runpytest_subprocess("--co", "-q", "-p", "no:cacheprovider"))
    assert count >= 6
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--clinicdb-cache-dir={cache_dir}", *xdist
    )
    result.assert_outcomes(passed=count)
    result.stdout.fnmatch_lines(["clinicdb: dev seed * loaded (DEV/TEST ONLY, *"])
    assert list(cache_dir.glob("run-*")) == []
    assert postgres_left(cache_dir) == []  # the released server shut down
    assert root.is_dir()


@pytest.mark.parametrize("name", sorted(BATTERY_FAILS))
def test_the_battery_and_the_command_judge_what_production_gets(pytester, cache_dir, name):
    root = copy_project(pytester, name)
    lock = clinicdb(root, cache_dir, "lock")
    assert lock.returncode == 0, lock.stderr
    check = clinicdb(root, cache_dir, "check", "--json")
    outcomes = {c["check"]: c for c in json.loads(check.stdout)["checks"]}
    assert len(outcomes) == 8, check.stdout
    assert outcomes["test_clinicdb_tenants_are_isolated"]["outcome"] == "skipped"
    failed = {n for n, c in outcomes.items() if c["outcome"] == "failed"}
    assert failed == BATTERY_FAILS[name], {n: outcomes[n]["message"] for n in failed}
    assert check.returncode == (1 if failed else 0)
    partitions = outcomes["test_clinicdb_audit_partitions_cover_now_and_the_horizon"]
    if "test_clinicdb_audit_partitions_cover_now_and_the_horizon" in failed:
        assert "test-only partition(s)" in partitions["message"]
        assert "outside tests, audited writes fail with 23514" in partitions["message"]

    up = clinicdb(root, cache_dir, "up", "--dev", "--json", "--show-password")
    assert up.returncode == 0, up.stderr
    dsn = json.loads(up.stdout)["dsn"]
    try:
        status = clinicdb(root, cache_dir, "status", "--dsn", dsn, "--json")
        data = json.loads(status.stdout)
        assert data["pending"] == [] and data["edited"] == [] and data["unknown"] == []
        gaps = [p for p in data["problems"] if p["check"] == "audit-partitions"]
        assert bool(gaps) == (partitions["outcome"] == "failed"), data
        assert status.returncode == (1 if gaps else 0)
    finally:
        down = clinicdb(root, cache_dir, "down")
        assert down.returncode == 0
    assert postgres_processes(str(cache_dir)) == []


ROLE_CHECK = """
def test_no_role_of_the_other_project(clinic_db):
    roles = clinic_db.execute(
        "SELECT count(*) FROM pg_roles WHERE rolname IN ('app_user', 'reporting')"
    ).fetchone()[0]
    assert roles == 0
    # No role setting of the other project reaches this one's sessions.
    assert clinic_db.execute("SELECT count(*) FROM pg_db_role_setting").fetchone()[0] == 0
"""


def test_two_projects_on_one_machine_see_neither_roles_nor_templates_of_the_other(
    pytester, cache_dir, project
):
    # ``project`` (app schema) lives in pytester.path; the roles project beside it.
    roles = pytester.path.parent / f"{pytester.path.name}-roles"
    shutil.copytree(PROJECTS / "clinic_roles", roles)
    first = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            f"--clinicdb-cache-dir={cache_dir}",
        ],
        cwd=roles,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert first.returncode == 0, first.stdout
    project.tests(ROLE_CHECK)
    # The second project runs twice with a changed migration and a cap of one template:
    # the first project's template must survive.
    project.run("--clinicdb-keep-templates=1").assert_outcomes(passed=1)
    project.migration("002_flags.sql", (project.migrations / "002_flags.sql").read_text() + "--\n")
    project.run("--clinicdb-keep-templates=1").assert_outcomes(passed=1)
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            f"--clinicdb-cache-dir={cache_dir}",
        ],
        cwd=roles,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert again.returncode == 0, again.stdout
    assert "(base) reused (built " in again.stdout, again.stdout
    assert len(kept_clusters(cache_dir)) == 2  # one per project
    assert project.leftovers() == []


def test_a_plain_create_role_builds_again_after_any_migration_changes(pytester, cache_dir):
    root = copy_project(pytester, "clinic_roles")
    args = ("-p", "no:cacheprovider", f"--clinicdb-cache-dir={cache_dir}")
    pytester.runpytest_subprocess(*args).assert_outcomes(passed=7)
    last = sorted((root / "sql" / "migrations").glob("*.sql"))[-1]
    last.write_text(last.read_text() + "\n-- reviewed\n")
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=7)
    result.stdout.fnmatch_lines(["clinicdb: template * (base) built in *"])
    assert "already exists" not in result.stdout.str()


def test_database_settings_and_grants_reach_every_clone_and_clinicdb_up(pytester, cache_dir):
    root = copy_project(pytester, "clinic_db_settings")
    up = clinicdb(root, cache_dir, "up", "--json", "--show-password")
    assert up.returncode == 0, up.stderr
    try:
        with psycopg.connect(json.loads(up.stdout)["dsn"]) as conn:
            assert conn.execute("SELECT current_setting('app.tenant_mode')").fetchone()[0] == (
                "strict"
            )
            acl = conn.execute(
                "SELECT datacl::text FROM pg_database WHERE datname = current_database()"
            ).fetchone()[0]
            items = acl.strip("{}").split(",")
            assert any(i.startswith("clinic_api=") for i in items)
            assert not any(i.startswith("=") for i in items)  # PUBLIC lost CONNECT/TEMP
    finally:
        clinicdb(root, cache_dir, "down")
    with kept_server(cache_dir) as admin:
        assert admin.execute("SELECT count(*) FROM pg_db_role_setting").fetchone()[0] >= 2


def test_status_looks_at_every_schema_not_only_clinic(pytester, cache_dir):
    root = copy_project(pytester, "clinic_public_schema")
    up = clinicdb(root, cache_dir, "up", "--json", "--show-password")
    assert up.returncode == 0, up.stderr
    dsn = json.loads(up.stdout)["dsn"]
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("ALTER TABLE public.patients DISABLE TRIGGER patients_updated_at")
        status = clinicdb(root, cache_dir, "status", "--dsn", dsn)
        assert status.returncode == 1
        assert "triggers:    1 disabled" in status.stdout
        assert "trigger public.patients.patients_updated_at is disabled" in status.stdout
    finally:
        clinicdb(root, cache_dir, "down")


def test_on_a_shared_server_cluster_wide_statements_are_named(pytester, cache_dir, external_server):
    admin_dsn, _ = external_server
    root = copy_project(pytester, "clinic_roles")
    args = (
        "-p",
        "no:cacheprovider",
        f"--clinicdb-cache-dir={cache_dir}",
        "--clinicdb-backend=external",
        f"--clinicdb-dsn={admin_dsn}",
        "--clinicdb-allow-external-dev-seed",
    )
    first = pytester.runpytest_subprocess(*args)
    first.assert_outcomes(passed=7)
    first.stdout.fnmatch_lines(
        [
            "clinicdb: note: the server is shared (not this project's own), and roles, role "
            "settings and tablespaces are cluster-wide: 001_roles.sql line * CREATE ROLE app_user;*"
        ]
    )
    # A change of the first file means a build from the start (no checkpoint of its prefix),
    # and the plain CREATE ROLE meets the role the first build made.
    first_file = sorted((root / "sql" / "migrations").glob("*.sql"))[0]
    first_file.write_text(first_file.read_text() + "\n-- reviewed\n")
    second = pytester.runpytest_subprocess(*args)
    assert second.ret != 0
    second.stdout.fnmatch_lines(
        [
            '*migration 001_roles.sql, line *: role "app_user" already exists (SQLSTATE 42710)',
            "*hint: this server is shared and the object is cluster-wide*",
        ]
    )
