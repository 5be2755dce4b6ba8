"""Runs on many hosts sharing one server: liveness comes from the server, not from a pid.

Each run holds a shared advisory lock on the server for as long as its
processes live.  Another run — on any host — drops the databases of a run
whose lock is gone and never those of a run that holds it.  Host identities
are set with ``CLINICDB_HOST_ID``; each "host" has its own cache directory, as
separate machines would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import psycopg
import pytest

from ..conftest import KEPT, user_databases, wait_for

pytestmark = pytest.mark.acceptance

SLOW = """
import os, time

def test_worker_clone(clinic_db):
    time.sleep(float(os.environ.get("SLEEP", "0")))
    assert clinic_db.execute("SELECT count(*) FROM app.flags").fetchone()[0] == 2

def test_fresh_clone(clinic_db_fresh):
    time.sleep(float(os.environ.get("SLEEP", "0")))
    clinic_db_fresh.execute("INSERT INTO app.items (name) VALUES ('x')")
    clinic_db_fresh.commit()
"""


def owners(admin_dsn: str) -> dict[str, str]:
    """Database name -> host of the run that owns it (clones and kept databases only)."""
    found = {}
    with psycopg.connect(admin_dsn) as conn:
        rows = conn.execute(
            "SELECT datname, shobj_description(oid, 'pg_database') FROM pg_database "
            "WHERE datname LIKE 'clinicdb\\_%'"
        ).fetchall()
    for name, comment in rows:
        if comment and comment.startswith("pytest-clinicdb "):
            owner = json.loads(comment[len("pytest-clinicdb ") :]).get("owner")
            if owner:
                found[name] = owner["host"]
    return found


def test_six_hosts_two_killed_a_seventh_collects_only_the_dead(project, external_server):
    admin_dsn, dsn = external_server
    project.tests(SLOW)
    base = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "--clinicdb-backend=external",
        f"--clinicdb-dsn={dsn}",
    ]

    def start(host: str, *args: str, sleep: str = "0") -> subprocess.Popen[bytes]:
        cache = project.cache_dir.parent / f"{project.cache_dir.name}-{host}"
        env = {**os.environ, "CLINICDB_HOST_ID": host, "SLEEP": sleep}
        return subprocess.Popen(
            [*base, f"--clinicdb-cache-dir={cache}", *args],
            cwd=project.path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    # Build the template once first: six runs then share it.
    warm = start("h0")
    assert warm.wait(timeout=120) == 0, warm.stdout.read().decode() if warm.stdout else ""
    runs = {f"h{i}": start(f"h{i}", "-n", "2", sleep="6") for i in range(1, 7)}
    try:
        # Every run has its worker clones and fresh clones on the server.
        assert wait_for(lambda: len(set(owners(admin_dsn).values())) == 6, timeout=90)
        for host in ("h2", "h5"):
            os.killpg(runs[host].pid, signal.SIGKILL)
            runs[host].wait(timeout=30)
        dead = {n for n, h in owners(admin_dsn).items() if h in ("h2", "h5")}
        assert dead, "the killed runs leave their clones behind"

        seventh = start("h7")
        out = seventh.communicate(timeout=120)[0].decode()
        assert seventh.returncode == 0, out
        assert "on h2, which has ended" in out and "on h5, which has ended" in out
        assert "on h1" not in out and "on h3" not in out  # live runs are never touched
        assert not dead & set(owners(admin_dsn)), "0 databases of the dead runs are left"

        for host in ("h1", "h3", "h4", "h6"):
            output = runs[host].communicate(timeout=120)[0].decode()
            assert runs[host].returncode == 0, output
            assert "2 passed" in output
    finally:
        for proc in runs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for host in ("h0", *runs, "h7"):  # each host's own cache directory
            shutil.rmtree(project.cache_dir.parent / f"{project.cache_dir.name}-{host}", True)
    with psycopg.connect(admin_dsn) as conn:
        left = [n for n in user_databases(conn) if n.startswith("clinicdb_")]
    assert [n for n in left if not n.startswith(KEPT)] == [], owners(admin_dsn)


def test_a_run_beyond_the_servers_connections_stops_with_one_message(project, external_server):
    admin_dsn, dsn = external_server
    with psycopg.connect(admin_dsn, autocommit=True) as admin:
        admin.execute("ALTER ROLE app_ci CONNECTION LIMIT 1")
    project.tests("def test_ok(clinic_db):\n    clinic_db.execute('SELECT 1')\n")
    started = time.monotonic()
    result = project.run(
        "--clinicdb-backend=external", f"--clinicdb-dsn={dsn}", "--clinicdb-connection-wait=2"
    )
    assert time.monotonic() - started < 60
    result.assert_outcomes(errors=1)
    out = result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "pytest-clinicdb: the server * has no connection slot left for this run (waited 2 s):"
            " *too many connections for role*",
            "*hint: run fewer xdist workers (-n), raise the server's max_connections*",
        ]
    )
    assert "Traceback" not in out and "OperationalError" not in out
