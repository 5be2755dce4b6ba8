"""Reuse across runs, one build per key, garbage collection and kept databases — end to end.

Builds are counted by the database itself: a migration appends a line to a
file with ``COPY … TO PROGRAM`` each time it runs, so a template built twice
shows as two lines whatever the plugin reports.
"""

from __future__ import annotations

import os
import signal

import psycopg
import pytest

from pytest_clinicdb.cli import main as clinicdb

from ..conftest import (
    KEPT,
    SMALL_SEED,
    databases,
    kept_clusters,
    kept_server,
    lock_held_for_a_moment,
    postgres_processes,
    user_databases,
    wait_for,
)

pytestmark = pytest.mark.acceptance

FOUR_TESTS = """
import pytest

@pytest.mark.parametrize("n", range(4))
def test_items(clinic_db, n):
    clinic_db.execute("INSERT INTO app.items (name) VALUES ('x')")
    assert clinic_db.execute("SELECT count(*) FROM app.items").fetchone()[0] == 1
"""


@pytest.fixture
def counted(project):
    """The project's schema with a build counter; returns a function reading the count."""
    counter_dir = project.cache_dir / "counter"
    counter_dir.mkdir()
    os.chmod(counter_dir, 0o777)
    counter = counter_dir / "builds"
    project.migration(
        "003_count_builds.sql",
        f"COPY (SELECT 'built') TO PROGRAM 'cat >> {counter}';\n",
    )
    return lambda: len(counter.read_text().splitlines()) if counter.exists() else 0


def test_one_build_under_xdist_then_reuse_rebuild_on_change_and_on_request(project, counted):
    project.tests(FOUR_TESTS)

    first = project.run("-n", "2")
    first.assert_outcomes(passed=4)
    first.stdout.fnmatch_lines(["clinicdb: template * (base) built in * s by gw?"])
    assert counted() == 1
    assert len(kept_clusters(project.cache_dir)) == 1
    assert project.leftovers() == []

    again = project.run("-n", "2")
    again.assert_outcomes(passed=4)
    again.stdout.fnmatch_lines(
        [
            "clinicdb: template *: kept from an earlier run*; reuse on",
            "clinicdb: template * (base) reused (built *)*",
        ]
    )
    assert counted() == 1, "nothing changed: no migration may run again"

    project.migration(
        "002_flags.sql", (project.migrations / "002_flags.sql").read_text() + "-- edit\n"
    )
    changed = project.run("--clinicdb-keep-templates=1")
    changed.assert_outcomes(passed=4)
    # A changed chain is built in a new cluster (roles and role settings stay per chain);
    # the cap removes the earlier chain's cluster, template included.
    changed.stdout.fnmatch_lines(
        [
            "clinicdb: server * (new cluster (copy))*",
            "clinicdb: template * (base) built in *",
            "clinicdb: removed 1 idle kept cluster(s):",
            "  cluster-*: an earlier migration chain of this project",
        ]
    )
    assert counted() == 2
    assert len(kept_clusters(project.cache_dir)) == 1

    forced = project.run("--clinicdb-rebuild", "-n", "2")
    forced.assert_outcomes(passed=4)
    forced.stdout.fnmatch_lines(["clinicdb: template * (base) rebuilt (--clinicdb-rebuild) in *"])
    assert counted() == 3, "a rebuild is done once per run, not once per worker"

    kept = databases(project.cache_dir)
    assert all(d.startswith(KEPT) for d in kept), kept
    assert sum(d.startswith("clinicdb_tpl_") for d in kept) == 1
    assert sum(d.startswith("clinicdb_ckpt_") for d in kept) == 2  # after 2 and 3 migrations
    assert project.leftovers() == []


SLOW_SHARED = """
import time

def test_shared(clinic_db):
    time.sleep(1.5)
    assert clinic_db.execute("SELECT count(*) FROM app.flags").fetchone()[0] == 2
"""


def test_two_concurrent_runs_share_one_server_and_one_build(project, counted):
    project.tests(SLOW_SHARED)
    runs = [project.spawn(), project.spawn("-n", "2")]
    outputs = [p.communicate(timeout=120)[0].decode() for p in runs]
    for proc, out in zip(runs, outputs, strict=True):
        assert proc.returncode == 0, out
    assert counted() == 1
    assert sum("(new cluster (initdb))" in out for out in outputs) == 1
    assert sum(" built in " in out for out in outputs) == 1
    assert sum(" reused (built " in out for out in outputs) == 1
    assert project.leftovers() == [], "the last run to finish stops the shared server"


FRESH_TESTS = """
import pytest

@pytest.mark.parametrize("n", range(3))
def test_fresh(clinic_db_fresh, n):
    clinic_db_fresh.execute("INSERT INTO app.items (name) VALUES ('x')")
    clinic_db_fresh.commit()

def test_rolled_back(clinic_db):
    clinic_db.execute("SELECT 1")
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single", "xdist"])
def test_fresh_and_worker_clones_are_dropped(project, xdist):
    project.tests(FRESH_TESTS)
    project.run(*xdist).assert_outcomes(passed=4)
    names = databases(project.cache_dir)
    assert all(n.startswith(KEPT) for n in names), names
    assert sum(n.startswith("clinicdb_tpl_") for n in names) == 1
    assert project.leftovers() == []


def test_without_reuse_nothing_is_kept(project):
    project.tests(FRESH_TESTS)
    result = project.run("--clinicdb-no-reuse")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(
        ["clinicdb: server *; data directory removed at the end of the run"]
    )
    assert kept_clusters(project.cache_dir) == []
    assert project.leftovers() == []


FAILING_FRESH = """
def test_fails(clinic_db_fresh):
    clinic_db_fresh.execute("INSERT INTO app.items (name) VALUES ('evidence')")
    clinic_db_fresh.commit()
    assert False, "look at the database"

def test_passes(clinic_db_fresh):
    clinic_db_fresh.execute("SELECT 1")
"""


def test_keep_failed_keeps_the_database_and_prints_a_working_dsn(project, capsys):
    project.tests(FAILING_FRESH)
    result = project.run("--clinicdb-keep-failed")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "clinicdb: kept 1 database(s) of failed tests; the server stays up*",
            "  test_project.py::test_fails",
            '    psql "*dbname=clinicdb_f_*"',
        ]
    )
    dsn = result.stdout.str().split('psql "', 1)[1].split('"', 1)[0]
    assert postgres_processes(str(project.cache_dir)), "the server stays up for the kept database"
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT name FROM app.items").fetchall() == [("evidence",)]

    assert clinicdb(["down", "--cache-dir", str(project.cache_dir)]) == 0
    assert "stopped: " in capsys.readouterr().out
    assert postgres_processes(str(project.cache_dir)) == []

    project.tests("def test_next(clinic_db):\n    pass\n")
    after = project.run()
    after.assert_outcomes(passed=1)
    after.stdout.fnmatch_lines(["  clinicdb_f_*: kept database of run *, which has ended"])
    assert [d for d in databases(project.cache_dir) if not d.startswith(KEPT)] == []
    assert project.leftovers() == []


SLOW_FRESH = """
import time
from pathlib import Path

def test_slow(clinic_db_fresh):
    clinic_db_fresh.execute("INSERT INTO app.items (name) VALUES ('x')")
    clinic_db_fresh.commit()
    Path("started").write_text("yes")
    time.sleep(60)
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single", "xdist"])
def test_after_an_edit_of_the_newest_migration_a_seed_edit_runs_no_migration(
    project, counted, xdist
):
    """The checkpoint after the edited migration is made while the tests run, and kept: the
    seed edit that follows resumes after every migration."""
    project.migration("004_last.sql", "CREATE TABLE app.notes (id int);\n")
    project.tests(FOUR_TESTS)
    project.run(*xdist).assert_outcomes(passed=4)
    project.migration("004_last.sql", "CREATE TABLE app.notes (id int, body text);\n")
    edited = project.run("--clinicdb-timings", *xdist)
    edited.assert_outcomes(passed=4)
    edited.stdout.fnmatch_lines(
        [
            "clinicdb: template * (base) built in * (resumed after 3 of 4 migrations, from a "
            "checkpoint)",
            "    checkpoint after 4 migrations (while the tests ran) * ms",
        ]
    )
    project.seed("001_system_seed.sql", SMALL_SEED + "-- reviewed\n")
    seeded = project.run("--clinicdb-timings", *xdist)
    seeded.assert_outcomes(passed=4)
    seeded.stdout.fnmatch_lines(
        [
            "clinicdb: template * (base) built in * (resumed after 4 of 4 migrations, from a "
            "checkpoint)"
        ]
    )
    assert not [ln for ln in seeded.stdout.lines if ln.startswith("    migration ")]
    assert counted() == 1
    with kept_server(project.cache_dir, newest=True) as admin:
        assert not [n for n in user_databases(admin) if n.startswith("clinicdb_build_")]
    assert project.leftovers() == []


def test_an_edit_waits_for_the_earlier_clusters_lock_instead_of_building_from_scratch(
    project, counted
):
    """The reaper stopping the earlier chain's server (or a run releasing it) holds that
    cluster's lock for a moment, just as the next run starts: it waits, then copies it."""
    project.migration("004_last.sql", "CREATE TABLE app.notes (id int);\n")
    project.tests(FOUR_TESTS)
    project.run().assert_outcomes(passed=4)
    (earlier,) = kept_clusters(project.cache_dir)
    with lock_held_for_a_moment(earlier):
        project.migration("004_last.sql", "CREATE TABLE app.notes (id int, body text);\n")
        edited = project.run()
    edited.assert_outcomes(passed=4)
    edited.stdout.fnmatch_lines(
        ["clinicdb: template * (base) built in * (resumed after 3 of 4 migrations, from a *"]
    )
    assert counted() == 1
    assert project.leftovers() == []


def test_gc_drops_a_killed_runs_databases_but_not_others(project):
    project.tests(SLOW_FRESH)
    proc = project.spawn()
    assert wait_for(lambda: (project.path / "started").exists() or proc.poll() is not None)
    assert proc.returncode is None, proc.communicate()[0].decode()
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    with kept_server(project.cache_dir) as admin:
        admin.execute("CREATE DATABASE clinicdb_made_by_hand")
        admin.execute("CREATE DATABASE someone_elses")
    before = databases(project.cache_dir)
    assert any(d.startswith("clinicdb_f_") for d in before), before

    project.tests("def test_next(clinic_db):\n    pass\n")
    result = project.run()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["  clinicdb_f_*: clone database of run *, which has ended"])
    after = databases(project.cache_dir)
    assert "clinicdb_made_by_hand" in after and "someone_elses" in after
    assert not any(d.startswith(("clinicdb_f_", "clinicdb_w_")) for d in after), after
    assert project.leftovers() == []


def test_editing_the_newest_migration_resumes_where_the_chain_changed(project, counted):
    """A new chain's cluster starts as a copy of the earlier chain's, and the build resumes from
    the checkpoint before the changed file: only that file runs again."""
    project.migration("004_last.sql", "CREATE TABLE app.notes (id int);\n")
    project.tests(FOUR_TESTS)
    project.run().assert_outcomes(passed=4)
    assert counted() == 1
    # Edited again and again, as a developer does: every edit resumes there, also once the
    # clusters of the earlier chains are gone (a cap of 2 keeps this one and the one before).
    for column in ("body text", "title text", "due date"):
        project.migration("004_last.sql", f"CREATE TABLE app.notes (id int, {column});\n")
        edited = project.run("--clinicdb-timings", "--clinicdb-keep-templates=2")
        edited.assert_outcomes(passed=4)
        edited.stdout.fnmatch_lines(
            [
                "clinicdb: server * (new cluster (copy of the earlier chain's, with its "
                "checkpoint after 3))*",
                "clinicdb: template * (base) built in * (resumed after 3 of 4 migrations, from a "
                "checkpoint)",
            ]
        )
        timed = [ln.split()[1] for ln in edited.stdout.lines if ln.startswith("    migration ")]
        assert timed == ["004_last.sql"]
        assert counted() == 1, "the counting migration (003) did not run again"
    # The copy keeps only what its chain can use: its own template and the checkpoints of its
    # prefixes (after 3, and after 4 as edited last), not the earlier chains' ones.
    with kept_server(project.cache_dir, newest=True) as admin:
        kept = user_databases(admin)
    assert sum(n.startswith("clinicdb_tpl_") for n in kept) == 1, kept
    assert sum(n.startswith("clinicdb_ckpt_") for n in kept) == 2, kept
    # An edit further back finds no checkpoint of its prefix: a build from the start.
    project.migration(
        "002_flags.sql", (project.migrations / "002_flags.sql").read_text() + "-- edit\n"
    )
    full = project.run()
    full.assert_outcomes(passed=4)
    full.stdout.fnmatch_lines(["clinicdb: server * (new cluster (copy))*"])
    assert counted() == 2
    assert project.leftovers() == []
