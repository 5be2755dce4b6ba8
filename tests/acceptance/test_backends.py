"""The external and docker backends, run as users run them."""

from __future__ import annotations

import socket

import psycopg
import pytest

from pytest_clinicdb.marker import Marker, write_marker
from pytest_clinicdb.server.docker import image_for

from ..conftest import REPO, user_databases

pytestmark = pytest.mark.acceptance

CLINIC = (
    f"--clinicdb-migrations={REPO / 'database' / 'migrations'}",
    f"--clinicdb-seeds={REPO / 'database' / 'seeds'}",
)

EXTERNAL_TESTS = """
import psycopg, pytest

@pytest.mark.parametrize("n", range(3))
def test_rolled_back(clinic_db, n):
    clinic_db.execute("INSERT INTO clinic.clinics (name, slug) VALUES ('c', 'c')")

def test_fresh(clinic_db_fresh):
    clinic_db_fresh.execute("INSERT INTO clinic.clinics (name, slug) VALUES ('c', 'c')")
    clinic_db_fresh.commit()

def test_server(clinic_postgres):
    assert clinic_postgres.backend == "external"
    assert not clinic_postgres.superuser
"""


def names(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        return set(user_databases(conn))


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single", "xdist"])
def test_external_backend_with_a_createdb_role_touches_only_its_own_databases(
    project, external_server, xdist
):
    admin_dsn, dsn = external_server
    password = dsn.split(":")[2].split("@")[0]
    dead = {"id": "deadbeef", "pid": 1, "start": "0", "host": socket.gethostname()}
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute("CREATE DATABASE app_data")
        admin.execute("CREATE DATABASE clinicdb_made_by_hand")  # our prefix, no marker
        admin.execute("CREATE DATABASE clinicdb_f_other_main_1")  # marked, another role's
        write_marker(admin, "clinicdb_f_other_main_1", Marker("clone", owner=dead))
    with psycopg.connect(dsn, autocommit=True) as role:
        role.execute("CREATE DATABASE clinicdb_f_deadbeef_main_1")  # a dead run's clone
        write_marker(role, "clinicdb_f_deadbeef_main_1", Marker("clone", owner=dead))
    project.tests(EXTERNAL_TESTS)
    result = project.run(*CLINIC, "--clinicdb-backend=external", f"--clinicdb-dsn={dsn}", *xdist)
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(
        [
            "clinicdb: backend external, server *password=****",
            "clinicdb: server PostgreSQL * (external, role app_ci, not a superuser)*",
            "  clinicdb_f_deadbeef_main_1: clone database of run deadbeef, which has ended",
            "  clinicdb_f_other_main_1: * NOT dropped: must be owner of database *",
        ]
    )
    assert password not in result.stdout.str() + result.stderr.str()
    left = names(admin_dsn)
    assert {"app_data", "clinicdb_made_by_hand", "clinicdb_f_other_main_1"} <= left
    ours = left - {"clinicdb_f_other_main_1"}
    assert not any(n.startswith(("clinicdb_f_", "clinicdb_w_", "clinicdb_build_")) for n in ours)
    assert sum(n.startswith("clinicdb_tpl_") for n in left) == 1  # kept for the next run
    assert project.leftovers() == []


def test_external_backend_refuses_the_dev_seed_unless_allowed(project, external_server):
    _, dsn = external_server
    project.tests("def test_dev(clinic_db_dev):\n    pass\n")
    args = (*CLINIC, "--clinicdb-backend=external", f"--clinicdb-dsn={dsn}")
    refused = project.run(*args)
    assert refused.ret != 0
    refused.stdout.fnmatch_lines(
        [
            "*refusing to load the DEV/TEST ONLY seed 002_dev_seed.sql into an external server",
            "*--clinicdb-allow-external-dev-seed*",
        ]
    )
    project.run(*args, "--clinicdb-allow-external-dev-seed").assert_outcomes(passed=1)


def test_external_backend_configuration_errors(project):
    project.tests("def test_x(clinic_db):\n    pass\n")
    missing = project.run("--clinicdb-backend=external")
    assert missing.ret == 4  # usage error
    missing.stderr.fnmatch_lines(
        [
            "*--clinicdb-backend: the external backend needs a server*",
            "*--clinicdb-dsn or CLINICDB_DSN*",
        ]
    )
    down = project.run(
        "--clinicdb-backend=external", "--clinicdb-dsn=postgresql://u:sekret@127.0.0.1:1/postgres"
    )
    down.stdout.fnmatch_lines(["*cannot connect to the external server *password=****"])
    assert "sekret" not in down.stdout.str() + down.stderr.str()
    assert "Traceback" not in down.stdout.str()
    # A string libpq cannot parse: its message quotes the string, password and all.
    broken = project.run(
        "--clinicdb-backend=external", "--clinicdb-dsn=postgresql://u:sekret@[::1/db"
    )
    assert broken.ret != 0
    broken.stdout.fnmatch_lines(["*--clinicdb-dsn is not a valid connection string*u:***@*"])
    assert "sekret" not in broken.stdout.str() + broken.stderr.str()
    assert "Traceback" not in broken.stdout.str()


def test_docker_backend_without_a_daemon_says_so_and_names_the_alternatives(project, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    project.tests("def test_x(clinic_db):\n    pass\n")
    result = project.run("--clinicdb-backend=docker", "--clinicdb-pg-version=16")
    assert result.ret != 0
    result.stdout.fnmatch_lines(
        [
            "clinicdb: backend docker, image postgres:16",
            "*pytest-clinicdb: the docker backend found no reachable Docker daemon*",
            "*--clinicdb-backend embedded*external (--clinicdb-dsn)*",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    assert project.leftovers() == []


def test_docker_options():
    assert image_for(None, None) == "postgres:17"
    assert image_for(None, 14) == "postgres:14"
    assert image_for("postgres:16-alpine", 14) == "postgres:16-alpine"


def _docker_daemon() -> bool:
    try:
        import docker

        docker.from_env().ping()
    except Exception:
        return False
    return True


@pytest.mark.skipif(not _docker_daemon(), reason="needs a reachable Docker daemon (none here)")
def test_docker_backend_runs_the_suite(project):
    project.tests(EXTERNAL_TESTS.replace('"external"', '"docker"').replace("not clinic", "clinic"))
    project.run("--clinicdb-backend=docker").assert_outcomes(passed=5)
    assert project.leftovers() == []


def test_a_dsn_naming_an_application_database_leaves_it_untouched(project, external_server):
    admin_dsn, dsn = external_server
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute("CREATE DATABASE app_data OWNER app_ci")
    app_dsn = dsn.rsplit("/", 1)[0] + "/app_data"
    with psycopg.connect(app_dsn, autocommit=True) as app:
        app.execute("CREATE TABLE orders (id int PRIMARY KEY)")
        app.execute("INSERT INTO orders VALUES (1), (2)")

    def contents() -> list[tuple[str, str]]:
        with psycopg.connect(app_dsn) as app:
            return app.execute(
                "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', "
                "'information_schema', 'pg_toast') ORDER BY 1, 2"
            ).fetchall()

    before = contents()
    project.tests(EXTERNAL_TESTS)
    result = project.run(*CLINIC, "--clinicdb-backend=external", f"--clinicdb-dsn={app_dsn}")
    result.assert_outcomes(passed=5)
    assert contents() == before
    with psycopg.connect(app_dsn) as app:
        assert app.execute("SELECT count(*) FROM orders").fetchone()[0] == 2
