"""Faults and bad input end to end: a readable failure, and nothing lost or left behind."""

from __future__ import annotations

import json
import os
import threading
import time

import psycopg
import pytest

from ..conftest import REPO, kept_clusters

pytestmark = pytest.mark.acceptance

KILLS_THE_SERVER = """
import os, signal
import psycopg, pytest

def test_1_server_dies_under_it(clinic_db, clinic_postgres):
    pid = int((clinic_postgres.data_dir / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(psycopg.OperationalError):
        clinic_db.execute("SELECT 1")
        clinic_db.execute("SELECT pg_sleep(0.5)")

def test_2_after(clinic_db):
    clinic_db.execute("SELECT 1")

def test_3_after(clinic_db):
    clinic_db.execute("SELECT 1")
"""


def test_server_killed_mid_session_is_reported_once_and_the_next_run_is_clean(project):
    project.tests(KILLS_THE_SERVER)
    result = project.run("-p", "no:randomly")
    assert result.ret != 0
    # Reported once (one error, at the teardown of the test it died under), then the run stops.
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

    project.tests("def test_ok(clinic_db):\n    clinic_db.execute('SELECT 1')\n")
    project.run().assert_outcomes(passed=1)
    assert project.leftovers() == []


def test_corrupt_cache_is_detected_and_rebuilt(project):
    project.tests("def test_ok(clinic_db):\n    clinic_db.execute('SELECT 1')\n")
    project.run().assert_outcomes(passed=1)
    (root,) = kept_clusters(project.cache_dir)
    (root / "state.json").write_text('{"port": 5')  # truncated
    (root / "data" / "postmaster.pid").write_text("999999\n")  # a dead process
    root.with_name(root.name + ".lock").write_text("")  # a stale lock file
    result = project.run()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["clinicdb: server * (new cluster (*))*"])
    assert project.leftovers() == []


def test_unusable_cache_directory_is_named(project, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    project.tests("def test_ok(clinic_db):\n    pass\n")
    result = project.pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--clinicdb-cache-dir={blocker / 'cache'}"
    )
    assert result.ret != 0
    result.stdout.fnmatch_lines(
        [f"*pytest-clinicdb: cache directory {blocker / 'cache'} is not usable: Not a directory*"]
    )
    assert "Traceback" not in result.stdout.str()


def test_passwords_appear_in_no_output_or_log(project):
    project.tests(
        "def test_repr(clinic_postgres):\n"
        "    print(repr(clinic_postgres), clinic_postgres.masked_dsn)\n"
        "    assert clinic_postgres.tcp_port\n"
    )
    result = project.run("-s", "--clinicdb-timings")
    result.assert_outcomes(passed=1)
    (root,) = kept_clusters(project.cache_dir)
    password = json.loads((root / "state.json").read_text())["password"]
    assert oct((root / "state.json").stat().st_mode & 0o777) == "0o600"
    assert password not in result.stdout.str() + result.stderr.str()
    assert password not in (root / "server.log").read_text()


LOAD = """
import pytest

@pytest.mark.parametrize("n", range(1000))
def test_rolled_back(clinic_db, n):
    clinic_db.execute("INSERT INTO clinic.clinics (name, slug) VALUES ('c', %s)", (f"c{n}",))

@pytest.mark.parametrize("n", range(100))
def test_fresh(clinic_db_fresh, n):
    clinic_db_fresh.execute("INSERT INTO clinic.clinics (name, slug) VALUES ('c', 'c')")
    clinic_db_fresh.commit()
"""


def _sample_connections(cache, stop: threading.Event, peak: list[int]) -> None:
    while not stop.is_set():
        for root in kept_clusters(cache):
            try:
                state = json.loads((root / "state.json").read_text())
                with psycopg.connect(
                    host=str(root / "sock"),
                    port=state["port"],
                    user="postgres",
                    dbname="postgres",
                    connect_timeout=1,
                ) as conn:
                    n = conn.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
                    ).fetchone()[0]
                peak.append(n - 1)  # minus this sampling connection
            except (OSError, ValueError, KeyError, psycopg.Error):
                pass
        time.sleep(0.05)


def test_load_1000_rolled_back_and_100_fresh_tests_with_two_workers(project, capsys):
    project.tests(LOAD)
    stop, peak = threading.Event(), [0]
    sampler = threading.Thread(target=_sample_connections, args=(project.cache_dir, stop, peak))
    sampler.start()
    started = time.perf_counter()
    try:
        result = project.run(
            f"--clinicdb-migrations={REPO / 'database' / 'migrations'}",
            f"--clinicdb-seeds={REPO / 'database' / 'seeds'}",
            "-n",
            "2",
            "-q",
        )
    finally:
        wall = time.perf_counter() - started
        stop.set()
        sampler.join()
    result.assert_outcomes(passed=1100)
    assert project.leftovers() == []
    with capsys.disabled():
        print(f"\n[load] 1100 tests, -n 2: wall {wall:.1f} s, peak client connections {max(peak)}")
    # Per worker, by design: its admin connection, its clone for clinic_db, two cloners, two
    # droppers and the clone each one is checking, one checked clone's session waiting for
    # the next clinic_db_fresh test, and that test's own: 10. A leak would grow with 1,100
    # tests; 2 more for backends still leaving when sampled.
    assert max(peak) <= 22, "a connection leak grows with the number of tests"
    assert os.listdir(project.cache_dir)  # the kept cluster is there, stopped


@pytest.fixture
def tiny_disk(tmp_path):
    """A 16 MiB tmpfs: a disk too small for a cluster (needs root to mount)."""
    import subprocess

    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0755", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_a_clear_error_naming_the_directory(project, tiny_disk):
    project.tests("def test_ok(clinic_db):\n    pass\n")
    result = project.pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--clinicdb-cache-dir={tiny_disk / 'cache'}"
    )
    assert result.ret != 0
    result.stdout.fnmatch_lines(
        [
            f"*pytest-clinicdb: cache directory {tiny_disk / 'cache'} has * MiB free; a new cluster needs about 128 MiB*"
        ]
    )
    assert "Traceback" not in result.stdout.str()
