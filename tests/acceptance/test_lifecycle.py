"""Nothing left running, nothing hanging in silence: signals, the reaper, build timeouts.

Each test runs pytest on a small project as a user would, ends it the way CI
and terminals do, and then looks at the machine: postgres processes, shared
memory segments, the server's sessions, file permissions.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import psycopg
import pytest

from ..conftest import kept_clusters, postgres_processes, shm_mapped_by_postgres, wait_for

pytestmark = pytest.mark.acceptance

SLOW = """
import time

def test_slow(clinic_db):
    time.sleep(60)

def test_fast(clinic_db_fresh):
    pass
"""


def started(project, proc) -> bool:
    """The run's server is up and a test is running (its worker clone exists)."""
    return bool(postgres_processes(str(project.cache_dir))) and bool(
        list(project.cache_dir.glob("run-*/servers/*"))
    )


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single", "xdist"])
def test_sigterm_ends_the_run_like_ctrl_c_and_leaves_nothing(project, xdist):
    project.tests(SLOW)
    proc = project.spawn(*xdist)
    assert wait_for(lambda: started(project, proc), timeout=60)
    time.sleep(1.5)  # inside test_slow
    proc.send_signal(signal.SIGTERM)  # what `timeout`, CI cancellation and IDEs send
    out = proc.communicate(timeout=60)[0].decode()
    assert proc.returncode != 0
    assert "Interrupted" in out or "KeyboardInterrupt" in out, out
    assert wait_for(lambda: postgres_processes(str(project.cache_dir)) == [], timeout=5), out
    project.tests("def test_next(clinic_db):\n    clinic_db.execute('SELECT 1')\n")
    project.run().assert_outcomes(passed=1)
    assert project.leftovers() == []


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single", "xdist"])
def test_sigkill_of_the_whole_process_group_stops_the_server_within_seconds(project, xdist):
    project.tests(SLOW)
    proc = project.spawn(*xdist)
    assert wait_for(lambda: started(project, proc), timeout=60)
    time.sleep(1.5)
    # Nothing of the server lives in /dev/shm, so nothing there can outlive it.  (Other
    # servers on the machine may make and drop segments meanwhile: only ours count.)
    assert postgres_processes(str(project.cache_dir))
    assert shm_mapped_by_postgres(str(project.cache_dir)) == set()
    os.killpg(proc.pid, signal.SIGKILL)  # pytest and its workers: nothing can clean up
    proc.wait(timeout=30)
    assert wait_for(lambda: postgres_processes(str(project.cache_dir)) == [], timeout=5), (
        "the reaper stops the server once no live run uses it"
    )
    project.tests("def test_next(clinic_db):\n    clinic_db.execute('SELECT 1')\n")
    project.run().assert_outcomes(passed=1)
    assert project.leftovers() == []


def test_a_killed_server_leaves_no_shared_memory_segment(project):
    """Dynamic shared memory lives in the data directory (mmap), not in /dev/shm."""
    project.tests(
        """
        import os, signal

        def test_parallel_query_then_kill(clinic_db, clinic_postgres):
            clinic_db.execute("SET LOCAL max_parallel_workers_per_gather = 2")
            clinic_db.execute("SET LOCAL parallel_setup_cost = 0")
            clinic_db.execute("SET LOCAL parallel_tuple_cost = 0")
            clinic_db.execute("SET LOCAL min_parallel_table_scan_size = 0")
            clinic_db.execute("SELECT count(*) FROM generate_series(1, 100000)").fetchone()
            pid = int((clinic_postgres.data_dir / "postmaster.pid").read_text().split()[0])
            maps = open(f"/proc/{pid}/maps").read()
            shm = sorted({line.split()[-1] for line in maps.splitlines() if " /dev/shm/PostgreSQL." in line})
            open("shm-mapped", "w").write("\\n".join(shm))
            os.killpg(os.getpgid(pid), signal.SIGKILL)
        """
    )
    project.run()
    assert wait_for(lambda: postgres_processes(str(project.cache_dir)) == [], timeout=10)
    # The postmaster after a parallel query had mapped nothing in /dev/shm (POSIX dynamic
    # shared memory would have its control segment there): nothing there to outlive it.
    assert (project.path / "shm-mapped").read_text() == ""


def test_a_slow_step_tells_the_terminal_what_is_running(project):
    project.migration("003_slow.sql", "SELECT pg_sleep(3);\n")
    project.tests("def test_ok(clinic_db):\n    pass\n")
    result = project.run()
    result.assert_outcomes(passed=1)
    err = result.stderr.str()
    assert "clinicdb: building template " in err
    assert ": migration 003_slow.sql (3/3) running for 2 s" in err


def test_a_step_past_the_build_timeout_stops_with_its_file_and_line(project, external_server):
    admin_dsn, dsn = external_server
    project.migration("003_stuck.sql", "CREATE TABLE app.t (id int);\n\nSELECT pg_sleep(60);\n")
    project.tests("def test_ok(clinic_db):\n    pass\n")
    began = time.monotonic()
    result = project.run(
        "--clinicdb-backend=external", f"--clinicdb-dsn={dsn}", "--clinicdb-build-timeout=2"
    )
    assert time.monotonic() - began < 30
    assert result.ret != 0
    result.stdout.fnmatch_lines(
        [
            "pytest-clinicdb: migration 003_stuck.sql, line 3 ran longer than 2 s "
            "(--clinicdb-build-timeout) and was cancelled; nothing of the build is kept",
            "*hint: make the step faster, or raise --clinicdb-build-timeout*",
        ]
    )
    with psycopg.connect(admin_dsn) as admin:
        sleeping = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%'"
        ).fetchone()[0]
        building = admin.execute(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'clinicdb\\_build\\_%'"
        ).fetchone()[0]
    assert (sleeping, building) == (0, 0), "no backend still runs it, no half-built database"


def test_a_step_waiting_on_a_lock_names_the_session_holding_it(project, external_server):
    admin_dsn, _ = external_server
    project.migration("003_role.sql", "CREATE ROLE clinicdb_lock_demo;\n")
    project.tests("def test_ok(clinic_db):\n    pass\n")
    with psycopg.connect(admin_dsn) as holder:
        holder.execute("SET application_name = 'the-holder'")
        holder.execute("CREATE ROLE clinicdb_lock_demo")  # uncommitted: the name is taken
        pid = holder.info.backend_pid
        result = project.run(
            "--clinicdb-backend=external",
            f"--clinicdb-dsn={admin_dsn}",
            "--clinicdb-build-timeout=3",
        )
        holder.rollback()
    assert result.ret != 0
    result.stdout.fnmatch_lines(
        [
            "pytest-clinicdb: migration 003_role.sql, line 1 ran longer than 3 s *",
            "  it was waiting for a lock held by:",
            f"    pid {pid} (user postgres, database postgres, application the-holder, "
            "idle in transaction for * s): CREATE ROLE clinicdb_lock_demo",
            "*hint: end or commit that session, then run again",
        ]
    )


#: What another local account tries, with nothing but the standard library: read the cluster's
#: files, list it, connect through the socket, and start a TCP session (the server must answer
#: with a password challenge, SASL = authentication code 10, not let it in).
PROBE = r"""
import os, socket, struct, sys
root, port = sys.argv[1], int(sys.argv[2])
results = []
for name in ("server.log", "state.json", "cluster.json"):
    try:
        open(os.path.join(root, name), "rb").read()
        results.append("read " + name)
    except OSError:
        pass
try:
    os.listdir(root)
    results.append("listed the cluster")
except OSError:
    pass
startup = b"user\0postgres\0database\0postgres\0\0"
message = struct.pack("!ii", 8 + len(startup), 196608) + startup
try:
    unix = socket.socket(socket.AF_UNIX)
    unix.connect(os.path.join(root, "sock", ".s.PGSQL.%d" % port))
    results.append("reached the unix socket")
except OSError:
    pass
tcp = socket.create_connection(("127.0.0.1", port), timeout=5)
tcp.sendall(message)
kind, _, code = struct.unpack("!cii", tcp.recv(9))
if not (kind == b"R" and code == 10):
    results.append("TCP without a password: %r %d" % (kind, code))
print(results)
"""


def test_logs_and_state_are_private_and_the_server_needs_its_password(project):
    if os.geteuid() != 0:
        pytest.skip("switching to another local account needs root")
    import json
    import pwd
    import shutil

    from pytest_clinicdb.binaries import server_account

    from ..conftest import kept_server

    system_python = shutil.which("python3", path="/usr/bin:/bin")
    if system_python is None:
        pytest.skip("no system python3 for the other account")
    server = server_account(None)
    other = pwd.getpwnam(next(n for n in ("nobody", "daemon") if not server or n != server.name))
    project.tests("def test_ok(clinic_db):\n    pass\n")
    project.run().assert_outcomes(passed=1)
    (root,) = kept_clusters(project.cache_dir)
    with kept_server(project.cache_dir):
        port = json.loads((root / "state.json").read_text())["port"]
        out = subprocess.run(
            [system_python, "-c", PROBE, str(root), str(port)],
            capture_output=True,
            text=True,
            user=other.pw_uid,
            group=other.pw_gid,
            extra_groups=[],
            env={"PATH": "/usr/bin:/bin"},
            cwd="/",
            check=False,
        )
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
    assert os.stat(root / "server.log").st_mode & 0o077 == 0
    assert os.stat(project.cache_dir).st_mode & 0o022 == 0, "the cache is not writable by others"
