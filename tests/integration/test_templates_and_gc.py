"""Templates and garbage collection on a private server: build once, rebuild, drop leftovers.

The garbage collector looks at every database of a server, so these tests run
on a server of their own: nothing else of the test session lives there.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from pytest_clinicdb.errors import TemplateBuildError
from pytest_clinicdb.gc import collect_garbage
from pytest_clinicdb.marker import BUILDER_VERSION, Marker, read_marker, write_marker
from pytest_clinicdb.runs import RunRef
from pytest_clinicdb.server import ServerInfo
from pytest_clinicdb.templates import TemplateSpec, build_lock_id, current_month, ensure_template

from ..conftest import user_databases, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(private_server: ServerInfo) -> ServerInfo:
    return private_server


@pytest.fixture
def admin(server: ServerInfo) -> Iterator[psycopg.Connection[object]]:
    with psycopg.connect(server.dsn, autocommit=True) as conn:
        yield conn
        # Leave the server empty for the next test.
        for name in user_databases(conn):
            conn.execute(
                sql.SQL("ALTER DATABASE {} IS_TEMPLATE false").format(sql.Identifier(name))
            )
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def dead_run(run_id: str = "deadrun") -> RunRef:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return RunRef(run_id, proc.pid, "1", socket.gethostname())


def live_run(run_id: str) -> RunRef:
    return RunRef.of(run_id, os.getpid())


def create(admin, name: str, kind: str | None = None, **fields: object) -> None:
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    if kind:
        write_marker(admin, name, Marker(kind, **fields))


def names(admin) -> set[str]:
    return set(user_databases(admin))


def test_gc_drops_what_dead_runs_left_and_nothing_it_did_not_create(admin):
    current, other, dead = live_run("current"), live_run("other"), dead_run()
    create(admin, "clinicdb_f_dead_1", "clone", owner=dead.to_dict())
    create(admin, "clinicdb_f_dead_kept", "kept", owner=dead.to_dict(), test="t::x")
    create(admin, "clinicdb_f_live_1", "clone", owner=other.to_dict())
    create(admin, "clinicdb_f_mine_1", "clone", owner=current.to_dict())
    create(admin, "clinicdb_build_0123", "building", key="0123")
    create(admin, "clinicdb_hand_made")  # our prefix, no marker: not ours
    admin.execute("CREATE DATABASE clinicdb_commented")
    admin.execute("COMMENT ON DATABASE clinicdb_commented IS 'someone else''s notes'")
    create(admin, "app_db", "clone", owner=dead.to_dict())  # marker but not our name
    create(admin, "clinicdb_f_dead_2")  # journaled by the dead run, killed before marking it

    journal = ["clinicdb_f_dead_2", "clinicdb_f_live_1"]
    dropped = dict(collect_garbage(admin, current, unmarked=journal))

    assert set(dropped) == {
        "clinicdb_f_dead_1",
        "clinicdb_f_dead_kept",
        "clinicdb_build_0123",
        "clinicdb_f_dead_2",
    }
    assert dropped["clinicdb_f_dead_2"] == "created by a run that ended before marking it"
    assert "run deadrun, which has ended" in dropped["clinicdb_f_dead_1"]
    assert dropped["clinicdb_build_0123"] == "unfinished template build"
    assert names(admin) == {
        "clinicdb_f_live_1",
        "clinicdb_f_mine_1",
        "clinicdb_hand_made",
        "clinicdb_commented",
        "app_db",
    }


def test_gc_leaves_a_build_that_is_in_progress(admin, server):
    create(admin, "clinicdb_build_4567", "building", key="4567")
    with psycopg.connect(server.dsn, autocommit=True) as builder:
        # The build lock a building process holds (same id as ensure_template's).
        lock = build_lock_id("clinicdb_tpl_4567")
        builder.execute("SELECT pg_advisory_lock(%s)", (lock,))
        assert collect_garbage(admin, live_run("current")) == []
        # Released explicitly: a closed connection's backend lets go of it a moment later.
        builder.execute("SELECT pg_advisory_unlock(%s)", (lock,))
    assert [name for name, _ in collect_garbage(admin, live_run("current"))] == [
        "clinicdb_build_4567"
    ]


def template(admin, name: str, *, last_used: str, users=(), builder=BUILDER_VERSION, month=None):
    create(
        admin,
        name,
        "template",
        key=name[-4:],
        builder=builder,
        partition_start=(month or current_month()).isoformat(),
        last_used=last_used,
        users=[u.to_dict() for u in users],
    )
    admin.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE true").format(sql.Identifier(name)))


def test_gc_drops_stale_templates_and_keeps_the_most_recent_unless_in_use(admin):
    other, dead = live_run("other"), dead_run()
    past = dt.date(2020, 1, 1)
    template(admin, "clinicdb_tpl_old1", last_used="2026-01-09", builder="0")
    template(admin, "clinicdb_tpl_mon1", last_used="2026-01-09", month=past)
    template(admin, "clinicdb_tpl_mon2", last_used="2026-01-09", month=past, users=[other])
    template(admin, "clinicdb_tpl_cap1", last_used="2026-01-01", users=[other])  # oldest, in use
    template(admin, "clinicdb_tpl_cap2", last_used="2026-01-02", users=[dead])
    template(admin, "clinicdb_tpl_cap3", last_used="2026-01-03")
    template(admin, "clinicdb_tpl_cap4", last_used="2026-01-04")

    dropped = dict(collect_garbage(admin, live_run("current"), keep_templates=2))

    assert set(dropped) == {"clinicdb_tpl_old1", "clinicdb_tpl_mon1", "clinicdb_tpl_cap2"}
    assert "builder version 0" in dropped["clinicdb_tpl_old1"]
    assert "past month" in dropped["clinicdb_tpl_mon1"]
    assert "2 most recently used" in dropped["clinicdb_tpl_cap2"]
    assert {"clinicdb_tpl_mon2", "clinicdb_tpl_cap1", "clinicdb_tpl_cap3", "clinicdb_tpl_cap4"} <= (
        names(admin)
    )


def spec(tmp_path: Path) -> TemplateSpec:
    return TemplateSpec(15, uuid.uuid4().hex, partition_start=current_month())


def test_built_once_reused_and_rebuilt_once_per_run(admin, server, tmp_path):
    builds: list[str] = []

    def build(session, info):
        session.conn.execute("CREATE TABLE t (id int)")
        builds.append(info.key)

    s = spec(tmp_path)
    run_a, run_b = live_run("run-a"), live_run("run-b")
    first = ensure_template(server, s, build=build, run=run_a)
    again = ensure_template(server, s, build=build, run=run_a)
    assert (first.built, again.built, len(builds)) == (True, False, 1)

    rebuilt = ensure_template(server, s, build=build, run=run_b, rebuild=True)
    same_run = ensure_template(server, s, build=build, run=run_b, rebuild=True)
    assert (rebuilt.built, rebuilt.rebuilt, len(builds)) == (True, True, 2)
    assert (same_run.built, same_run.rebuilt, len(builds)) == (False, True, 2)

    row = admin.execute(
        "SELECT datistemplate, datallowconn FROM pg_database WHERE datname = %s", (s.name,)
    ).fetchone()
    assert row == (True, False)
    marker = read_marker(admin, s.name)
    assert marker is not None
    assert marker.built_by_ref is not None and marker.built_by_ref.id == "run-b"
    assert [u.id for u in marker.user_refs()] == ["run-b"]


def test_a_failed_build_leaves_nothing_and_releases_the_lock(admin, server, tmp_path):
    s = spec(tmp_path)

    def broken(session, info):
        session.conn.execute("CREATE TABLE half_done (id int)")
        session.conn.execute("SELECT 1 / 0")

    with pytest.raises(TemplateBuildError, match="division by zero") as info:
        ensure_template(server, s, build=broken, run=live_run("run-a"))
    assert isinstance(info.value.__cause__, psycopg.errors.DivisionByZero)
    assert info.value.template == s.name
    assert names(admin) == set()

    info = ensure_template(
        server,
        s,
        build=lambda session, info: session.conn.execute("SELECT 1"),
        run=live_run("run-a"),
    )
    assert info.built and names(admin) == {s.name}


def make_pool(server, template: str, names: list[str]):
    import itertools

    from pytest_clinicdb.databases import create_database, drop_database
    from pytest_clinicdb.pool import ClonePool

    counter = itertools.count()  # the cloner threads ask at once: next() is atomic

    def make(admin) -> str:
        name = f"clinicdb_f_pool_{next(counter)}"
        names.append(name)
        create_database(admin, name, template, server.major)
        write_marker(admin, name, Marker("clone", owner=live_run("current").to_dict()))
        return name

    return ClonePool(
        admin_dsn=server.dsn,
        dsn_for=server.dsn_for,
        make=make,
        drop=lambda admin, name: drop_database(admin, name),
    )


def test_pool_hands_out_clones_made_ahead_and_drops_them_all(admin, server, tmp_path):
    s = spec(tmp_path)
    ensure_template(
        server,
        s,
        build=lambda session, info: session.conn.execute("CREATE TABLE t (id int)"),
        run=None,
    )
    made: list[str] = []
    pool = make_pool(server, s.name, made)
    taken = [pool.take() for _ in range(3)]
    assert None not in taken and len(set(taken)) == 3
    for name in taken:
        with psycopg.connect(server.dsn_for(name)) as conn:
            conn.execute("INSERT INTO t VALUES (1)")  # a real, writable clone of the template
        assert read_marker(admin, name).kind == "clone"
    pool.give_back(taken[0])
    pool.give_back(taken[1])
    assert pool.close() == []
    # Returned and still-ready clones are dropped; one handed out and not returned
    # (a database kept by --clinicdb-keep-failed) is not the pool's to drop.
    assert names(admin) == {s.name, taken[2]}
    assert len(made) >= 3


def test_pool_switches_off_when_it_cannot_clone(admin, server):
    pool = make_pool(server, "clinicdb_tpl_missing", [])
    assert pool.take(timeout=10) is None
    assert isinstance(pool.error, psycopg.errors.InvalidCatalogName)
    assert pool.close() == []
    assert names(admin) == set()


def test_an_unmarked_clone_of_another_hosts_run_goes_only_once_its_lock_is_gone(admin, server):
    """Killed between CREATE DATABASE and COMMENT, on another host: no journal here, but the
    name says which run made it, and the server says whether that run is alive."""
    from pytest_clinicdb.gc import hold_run_lock

    create(admin, "clinicdb_f_0badc0de_gw0_1")  # the name the plugin gives, no marker
    create(admin, "clinicdb_f_notarun_gw0_1")  # not a run id: never ours to judge
    with psycopg.connect(server.dsn, autocommit=True) as other_host:
        hold_run_lock(other_host, "0badc0de")
        assert collect_garbage(admin, live_run("current")) == []
    # The other host's process is gone: so is its lock.
    assert wait_for(
        lambda: (
            dict(collect_garbage(admin, live_run("current"))).get("clinicdb_f_0badc0de_gw0_1")
            == "created by a run that ended before marking it"
        ),
        timeout=10,
    )
    assert names(admin) == {"clinicdb_f_notarun_gw0_1"}
