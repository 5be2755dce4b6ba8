"""The fixture chain as users override it: their own server, their own template, their own backend.

Each link receives the previous one's value and uses it: overriding one in a
``conftest.py`` changes what every later link — and the tests — get.
"""

from __future__ import annotations

import signal
import textwrap
import time

import psycopg
import pytest

from ..conftest import KEPT, user_databases, wait_for

pytestmark = pytest.mark.acceptance

EVERY_FIXTURE = """
import psycopg, pytest

@pytest.mark.parametrize("n", range(3))
def test_rolled_back(clinic_db, n):
    assert clinic_db.execute("SELECT count(*) FROM app.items").fetchone()[0] == 0
    clinic_db.execute("INSERT INTO app.items (name) VALUES ('x')")

def test_dev(clinic_db_dev):
    assert clinic_db_dev.execute("SELECT count(*) FROM app.items").fetchone()[0] == 1

def test_fresh(clinic_db_fresh, clinic_dsn, clinic_postgres):
    assert clinic_postgres.backend == "external"
    clinic_db_fresh.execute("INSERT INTO app.items (name) VALUES ('kept')")
    clinic_db_fresh.commit()
    with psycopg.connect(clinic_dsn) as other:
        assert other.execute("SELECT count(*) FROM app.items").fetchone()[0] == 1

@pytest.mark.asyncio
async def test_async(clinic_db_async):
    cur = await clinic_db_async.execute("SELECT count(*) FROM app.flags")
    assert (await cur.fetchone())[0] == 2
"""

OWN_SERVER = """
import os
import pytest
import pytest_clinicdb

@pytest.fixture(scope="session")
def clinic_postgres():
    return pytest_clinicdb.existing_server(os.environ["MY_DSN"])
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single", "xdist"])
def test_a_conftest_brings_its_own_server_and_every_fixture_uses_it(
    project, external_server, monkeypatch, xdist
):
    admin_dsn, dsn = external_server
    project.seed("002_dev_seed.sql", "INSERT INTO app.items (name) VALUES ('sample');\n")
    project.pytester.makeconftest(OWN_SERVER)
    project.tests(EVERY_FIXTURE)
    monkeypatch.setenv("MY_DSN", dsn)
    result = project.run("--clinicdb-allow-external-dev-seed", *xdist)
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(["clinicdb: server PostgreSQL * (external, role app_ci, *"])
    with psycopg.connect(admin_dsn) as conn:
        left = user_databases(conn)
    # Nothing of the run is left on the server; the two templates (and the checkpoints of the
    # migrations a later build resumes from) stay for the next run.
    assert [n for n in left if not n.startswith(KEPT)] == []
    assert sum(n.startswith("clinicdb_tpl_") for n in left) == 2
    # The plugin started no server of its own.
    assert not list(project.cache_dir.glob("cluster-*"))
    assert project.leftovers() == []


OTHER_TEMPLATE = """
import pytest
import pytest_clinicdb

@pytest.fixture(scope="session")
def _clinicdb_template(clinic_postgres):
    return pytest_clinicdb.build_template(clinic_postgres, migrations=["other_migrations"])
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single", "xdist"])
def test_overriding_the_template_changes_what_clinic_db_sees(project, xdist):
    other = project.path / "other_migrations"
    other.mkdir()
    (other / "001_other.sql").write_text("CREATE TABLE other_schema_table (id int);\n")
    project.pytester.makeconftest(OTHER_TEMPLATE)
    project.tests(
        """
        def test_sees_the_other_template(clinic_db):
            assert clinic_db.execute("SELECT to_regclass('other_schema_table') IS NOT NULL").fetchone()[0]
            assert clinic_db.execute("SELECT to_regclass('app.items')").fetchone()[0] is None

        def test_fresh_clones_it_too(clinic_db_fresh):
            assert clinic_db_fresh.execute("SELECT to_regclass('other_schema_table') IS NOT NULL").fetchone()[0]
        """
    )
    project.run(*xdist).assert_outcomes(passed=2)
    assert project.leftovers() == []


FAKE_ENGINE = """
import os, secrets
from pathlib import Path

import psycopg
from pytest_clinicdb.binaries import find_binaries, make_reachable, server_account
from pytest_clinicdb.server import register_backend
from pytest_clinicdb.server.cluster import ClusterDir
from pytest_clinicdb.server.docker import Container, DockerBackend
from pytest_clinicdb.server.embedded import start_standalone

ENGINE = Path(os.environ["FAKE_ENGINE"])


class LocalRuntime:
    '''A container engine whose containers are local servers in ENGINE/<id>.'''

    def run(self, image, *, password, settings):
        account = server_account(None)
        binaries = make_reachable(find_binaries(None, "test"), account, ENGINE)
        cid = secrets.token_hex(6)
        info = start_standalone(ENGINE / cid, binaries, account)
        with psycopg.connect(info.dsn, autocommit=True) as conn:
            conn.execute(f"ALTER ROLE postgres PASSWORD '{password}'")
        return Container(cid, "127.0.0.1", info.tcp_port)

    def remove(self, container_id):
        ClusterDir(ENGINE / container_id).destroy()


class FakeDocker(DockerBackend):
    name = "fakedocker"
    runtime = LocalRuntime()


register_backend("fakedocker", FakeDocker)
"""


def remove_engine(engine) -> None:
    import shutil

    from pytest_clinicdb.server.cluster import ClusterDir

    for cid in containers(engine):
        ClusterDir(engine / cid).destroy()
    shutil.rmtree(engine, ignore_errors=True)


def containers(engine) -> list[str]:
    return sorted(p.name for p in engine.iterdir() if p.is_dir() and p.name != "bin")


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single", "xdist"])
def test_the_docker_lifecycle_on_a_fake_engine(project, monkeypatch, xdist):
    engine = project.cache_dir.with_name(project.cache_dir.name + "-engine")
    engine.mkdir(mode=0o755)
    monkeypatch.setenv("FAKE_ENGINE", str(engine))
    project.pytester.makeconftest(FAKE_ENGINE)
    project.tests(
        """
        import pytest

        @pytest.mark.parametrize("n", range(4))
        def test_items(clinic_db, clinic_postgres, n):
            assert clinic_postgres.backend == "fakedocker"
            clinic_db.execute("INSERT INTO app.items (name) VALUES ('x')")

        def test_fresh(clinic_db_fresh):
            clinic_db_fresh.execute("SELECT 1")
        """
    )
    try:
        result = project.run("--clinicdb-backend=fakedocker", *xdist)
        result.assert_outcomes(passed=5)
        result.stdout.fnmatch_lines(
            [
                "clinicdb: backend fakedocker, image postgres:17",
                "clinicdb: server PostgreSQL * in fakedocker image postgres:17 (new container*",
            ]
        )
        # One container for the run (whatever the number of workers), removed at its end.
        assert "started" not in result.stdout.str().split("new container", 1)[1].split("\n")[0]
        assert containers(engine) == []
        assert project.leftovers() == []
    finally:
        remove_engine(engine)


def test_a_killed_runs_container_is_removed_by_the_next_run(project, monkeypatch):
    engine = project.cache_dir.with_name(project.cache_dir.name + "-engine")
    engine.mkdir(mode=0o755)
    monkeypatch.setenv("FAKE_ENGINE", str(engine))
    project.pytester.makeconftest(FAKE_ENGINE)
    project.tests(
        textwrap.dedent(
            """
            import time

            def test_slow(clinic_db):
                time.sleep(60)
            """
        )
    )
    try:
        proc = project.spawn("--clinicdb-backend=fakedocker")
        assert wait_for(
            lambda: len(containers(engine)) == 1 and any(project.cache_dir.glob("run-*/servers/*"))
        )
        time.sleep(1)  # into the test
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert len(containers(engine)) == 1, "a killed run cannot clean up after itself"
        project.tests("def test_ok(clinic_db):\n    clinic_db.execute('SELECT 1')\n")
        result = project.run("--clinicdb-backend=fakedocker")
        result.assert_outcomes(passed=1)
        # The dead run's container is gone, and the new run removed its own at the end.
        assert containers(engine) == []
        assert project.leftovers() == []
    finally:
        remove_engine(engine)


KILLS_THE_SERVER_ASYNC = """
import os, signal
import psycopg, pytest

@pytest.mark.asyncio
async def test_1_server_dies_under_it(clinic_db_async, clinic_postgres):
    pid = int((clinic_postgres.data_dir / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(psycopg.OperationalError):
        await clinic_db_async.execute("SELECT 1")
        await clinic_db_async.execute("SELECT pg_sleep(0.5)")

def test_2_after(clinic_db):
    clinic_db.execute("SELECT 1")
"""


def test_the_async_fixture_reports_a_dead_server_like_the_sync_one(project):
    project.tests(KILLS_THE_SERVER_ASYNC)
    result = project.run("-p", "no:randomly")
    assert result.ret != 0
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_1_server_dies_under_it*",
            "pytest-clinicdb: the PostgreSQL server died during the session (PostgreSQL *",
            "*server log (last lines):*",
            "*Interrupted: *the server died*",
        ]
    )
    assert project.leftovers() == []
