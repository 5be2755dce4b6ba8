"""Recycled fresh clones: reused only when the server says nothing changed, or only rows
were inserted (deleted again) and sequences used (put back), and then indistinguishable
from a new clone by catalog and data (see pytest_clinicdb.recycle)."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from pytest_clinicdb._state import context_of
from pytest_clinicdb.connect import close_session, wait_for_no_sessions
from pytest_clinicdb.databases import Databases
from pytest_clinicdb.fingerprint import differences, fingerprint
from pytest_clinicdb.recycle import MAX_UNDONE, MIN_MAJOR, CloneState, TemplateFacts
from pytest_clinicdb.server import ServerInfo
from pytest_clinicdb.templates import TemplateInfo

pytestmark = pytest.mark.usefixtures("recycling_server")

SEQUENCE = "audit.audit_logs_id_seq"


@pytest.fixture
def databases(request: pytest.FixtureRequest, clinic_postgres: ServerInfo) -> Databases:
    return context_of(request.config).databases(clinic_postgres)


@pytest.fixture
def recycling_server(clinic_postgres: ServerInfo, databases: Databases) -> None:
    if clinic_postgres.major < MIN_MAJOR:
        pytest.skip(f"recycling needs PostgreSQL {MIN_MAJOR}+ (statistics flushed at exit)")
    if not databases.recycling:
        pytest.skip("recycling needs a role that may run pg_stat_reset() (this one may not)")


@pytest.fixture
def template(request: pytest.FixtureRequest) -> TemplateInfo:
    return request.getfixturevalue("_clinicdb_template")  # type: ignore[no-any-return]


#: Every name a test of this module made or recycled to (dropped after each test).
MADE: list[str] = []
#: The template's facts, read once from a clone of its own.
FACTS: list[TemplateFacts | None] = []
#: The OIDs of the clones handed out (a recycled clone keeps its OID under its new name).
OIDS: list[int] = []


@pytest.fixture
def handed_out(
    databases: Databases, template: TemplateInfo, clinic_postgres: ServerInfo
) -> Iterator[tuple[str, CloneState]]:
    """A new clone, inspected as the pool does before handing it out; dropped afterwards."""
    if not FACTS:  # as the pool reads them, from a clone of their own
        first = databases.clone(template, "f")
        FACTS.append(databases._read_facts(first))
        databases.drop(first)
    name = databases.clone(template, "f")
    MADE.append(name)
    row = (
        databases.admin()
        .execute("SELECT oid FROM pg_database WHERE datname = %s", (name,))
        .fetchone()
    )
    assert row is not None
    OIDS.append(int(row[0]))
    yield name, CloneState.of_new(databases.admin(), name)
    for left in MADE:
        if _exists(databases, left):
            databases.drop(left)
    MADE.clear()
    OIDS.clear()


def need_superuser(databases: Databases) -> None:
    row = databases.admin().execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    if row.fetchone() != (True,):
        pytest.skip("needs a superuser (track_counts is a superuser setting)")


def recycle(
    databases: Databases, name: str, state: CloneState, *, facts: bool = True
) -> tuple[str, object] | None:
    again = databases._recycle(databases.admin(), name, "f", state, FACTS[0] if facts else None)
    if again is None:
        return None
    new_name, new_state, conn = again
    MADE.append(new_name)
    # The session that proved it comes along (the pool keeps it or closes it), as
    # psycopg.connect gives one: on the clone's new name, not in autocommit mode, idle.
    assert conn is not None and conn.info.dbname == new_name
    assert conn.autocommit is False
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    close_session(conn, databases.admin())
    return new_name, new_state


def _gone(databases: Databases) -> bool:
    """No database is left of the clones handed out, under any name."""
    row = (
        databases.admin()
        .execute("SELECT count(*) FROM pg_database WHERE oid = ANY(%s)", (OIDS,))
        .fetchone()
    )
    return row == (0,)


def _exists(databases: Databases, name: str) -> bool:
    row = (
        databases.admin()
        .execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        .fetchone()
    )
    return row is not None


def _session(server: ServerInfo, name: str, statements: list[str], *, commit: bool = True) -> None:
    with psycopg.connect(server.dsn_for(name), autocommit=not commit) as conn:
        for statement in statements:
            conn.execute(statement.format(db=name, seq=SEQUENCE))
        if commit:
            conn.commit()


def _new_clone_fingerprint(
    databases: Databases, template: TemplateInfo, server: ServerInfo
) -> dict[str, str]:
    name = databases.clone(template, "f")
    try:
        with psycopg.connect(server.dsn_for(name), autocommit=True) as conn:
            return fingerprint(conn)
    finally:
        databases.drop(name)


def test_a_clone_its_test_only_read_is_recycled_and_equals_a_new_clone(
    databases: Databases,
    template: TemplateInfo,
    clinic_postgres: ServerInfo,
    handed_out: tuple[str, CloneState],
) -> None:
    name, state = handed_out
    _session(
        clinic_postgres,
        name,
        [
            "SELECT count(*) FROM clinic.clinics",
            "SET work_mem = '8MB'",  # a session setting ends with the session
            "SELECT * FROM clinic.users u JOIN clinic.clinics c ON c.id = u.clinic_id",
            "SELECT pg_advisory_lock(42)",  # released when the session ends
        ],
    )
    again = recycle(databases, name, state)
    assert again is not None, "a read-only test's clone was not recycled"
    new_name, new_state = again
    assert new_name != name and not _exists(databases, name), "recycled under a new name"
    assert isinstance(new_state, CloneState) and new_state.writes == 0
    # Round again: a recycled clone that is only read is recycled once more.
    _session(clinic_postgres, new_name, ["SELECT count(*) FROM clinic.patients"])
    again = recycle(databases, new_name, new_state)
    assert again is not None
    with psycopg.connect(clinic_postgres.dsn_for(again[0]), autocommit=True) as conn:
        scans = conn.execute(
            "SELECT coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0) FROM pg_stat_user_tables"
        ).fetchone()
        recycled = fingerprint(conn)
    assert scans == (0,), "the recycled clone's activity statistics start from zero again"
    assert differences(_new_clone_fingerprint(databases, template, clinic_postgres), recycled) == []


#: Tests whose clone comes back once its inserted rows are deleted and its sequences put back.
INSERTS: dict[str, list[str]] = {
    # an audited table: the audit trigger adds a row to this month's partition and uses
    # the audit sequence
    "insert, committed": ["INSERT INTO clinic.clinics (name, slug) VALUES ('x', 'recycle-x')"],
    "inserts in several transactions and tables": [
        "INSERT INTO clinic.clinics (name, slug) VALUES ('x', 'recycle-a')",
        "COMMIT",
        "INSERT INTO clinic.clinics (name, slug) VALUES ('y', 'recycle-b')",
        "INSERT INTO clinic.feature_flags (key, description) "
        "SELECT 'big_' || g, repeat(md5(g::text), 2000) FROM generate_series(1, 3) g",
    ],
    "nextval": ["SELECT nextval('{seq}')"],
    "setval back to the same value": ["SELECT setval('{seq}', last_value, is_called) FROM {seq}"],
    "a sequence only read": ["SELECT last_value FROM {seq}"],
    "an insert rolled back": [
        "INSERT INTO clinic.clinics (name, slug) VALUES ('x', 'recycle-rb')",
        "ROLLBACK",
    ],
}
CHANGES: dict[str, list[str]] = {
    "insert, then update": [
        "INSERT INTO clinic.clinics (name, slug) VALUES ('x', 'recycle-u')",
        "UPDATE clinic.clinics SET name = 'y' WHERE slug = 'recycle-u'",
    ],
    "update, committed": ["UPDATE clinic.feature_flags SET description = description || '!'"],
    "delete, committed": ["DELETE FROM clinic.feature_flags"],
    "ddl": ["CREATE TABLE clinic.scratch (id int)"],
    "comment on a table": ["COMMENT ON TABLE clinic.clinics IS 'changed'"],
    "temporary table": ["CREATE TEMP TABLE scratch (id int)"],
    "large object": ["SELECT lo_create(0)"],
    "truncate": ["TRUNCATE clinic.feature_flags CASCADE"],
    "reindex": ["REINDEX TABLE clinic.clinics"],
    "alter database set": ["ALTER DATABASE {db} SET work_mem = '8MB'"],
    "comment on the database": ["COMMENT ON DATABASE {db} IS 'changed'"],
    "revoke connect": ["REVOKE CONNECT ON DATABASE {db} FROM PUBLIC"],
    "connection limit": ["ALTER DATABASE {db} CONNECTION LIMIT 50"],
    "counters switched off for the database": ["ALTER DATABASE {db} SET track_counts = off"],
}
NO_TRANSACTION: dict[str, list[str]] = {
    "vacuum": ["VACUUM clinic.clinics"],
    "analyze": ["ANALYZE clinic.clinics"],
}


@pytest.mark.parametrize("statements", [*CHANGES.values()], ids=[*CHANGES])
def test_a_clone_its_test_changed_is_dropped(
    databases: Databases,
    clinic_postgres: ServerInfo,
    handed_out: tuple[str, CloneState],
    statements: list[str],
) -> None:
    if "track_counts" in statements[0]:
        need_superuser(databases)
    name, state = handed_out
    _session(clinic_postgres, name, statements)
    assert recycle(databases, name, state) is None
    assert _gone(databases), "dropped, not kept"


@pytest.mark.parametrize("statements", [*NO_TRANSACTION.values()], ids=[*NO_TRANSACTION])
def test_vacuum_and_analyze_count_as_changes(
    databases: Databases,
    clinic_postgres: ServerInfo,
    handed_out: tuple[str, CloneState],
    statements: list[str],
) -> None:
    name, state = handed_out
    _session(clinic_postgres, name, statements, commit=False)
    assert recycle(databases, name, state) is None


@pytest.mark.parametrize("statements", [*INSERTS.values()], ids=[*INSERTS])
def test_a_clone_its_test_only_inserted_into_is_recycled_and_equals_a_new_clone(
    databases: Databases,
    template: TemplateInfo,
    clinic_postgres: ServerInfo,
    handed_out: tuple[str, CloneState],
    statements: list[str],
) -> None:
    name, state = handed_out
    _session(clinic_postgres, name, statements)
    again = recycle(databases, name, state)
    assert again is not None, "an inserting test's clone was not recycled"
    new_name, new_state = again
    assert isinstance(new_state, CloneState)
    assert new_state.undone == 1
    with psycopg.connect(clinic_postgres.dsn_for(new_name), autocommit=True) as conn:
        stats = conn.execute(
            "SELECT coalesce(sum(n_tup_ins + n_tup_del + n_dead_tup), 0) FROM pg_stat_user_tables"
        ).fetchone()
        seq = conn.execute(f"SELECT last_value, is_called FROM {SEQUENCE}").fetchone()
        recycled = fingerprint(conn)
    assert stats == (0,), "the statistics of the recycled clone start from zero again"
    new = databases.clone(template, "f")
    try:
        with psycopg.connect(clinic_postgres.dsn_for(new), autocommit=True) as conn:
            assert conn.execute(f"SELECT last_value, is_called FROM {SEQUENCE}").fetchone() == seq
            assert differences(fingerprint(conn), recycled) == []
    finally:
        databases.drop(new)


@pytest.mark.parametrize(
    ("undone", "facts"),
    [
        # the deleted rows stay on disk (dead) until a VACUUM: a clone goes back only so often
        (MAX_UNDONE, True),
        # as for a role that is no superuser: its inserts cannot be deleted
        (0, False),
    ],
    ids=["deleted too often", "without the template's facts"],
)
def test_an_inserting_tests_clone_is_dropped(
    databases: Databases,
    clinic_postgres: ServerInfo,
    handed_out: tuple[str, CloneState],
    undone: int,
    facts: bool,
) -> None:
    name, state = handed_out
    _session(clinic_postgres, name, [INSERTS["insert, committed"][0]])
    assert recycle(databases, name, dataclasses.replace(state, undone=undone), facts=facts) is None
    assert _gone(databases)


def test_a_reset_of_the_statistics_cannot_hide_a_write(
    databases: Databases, clinic_postgres: ServerInfo, handed_out: tuple[str, CloneState]
) -> None:
    name, state = handed_out
    _session(clinic_postgres, name, [INSERTS["insert, committed"][0]])
    # Its backend adds its counts as it exits, after the client has gone: reset after that.
    assert wait_for_no_sessions(databases.admin(), name, wait=10)
    _session(clinic_postgres, name, ["SELECT pg_stat_reset()"])
    with psycopg.connect(clinic_postgres.dsn_for(name), autocommit=True) as conn:
        assert CloneState.read(conn).writes == 0, "the reset zeroed the counters"
    assert recycle(databases, name, state) is None


def test_no_recycling_where_a_role_does_not_count_writes(
    databases: Databases, clinic_postgres: ServerInfo, handed_out: tuple[str, CloneState]
) -> None:
    """A role whose sessions do not count writes could hide them: nothing is recycled."""
    need_superuser(databases)
    name, state = handed_out
    admin = databases.admin()
    admin.execute("CREATE ROLE clinicdb_uncounted LOGIN SUPERUSER")
    try:
        admin.execute("ALTER ROLE clinicdb_uncounted SET track_counts = off")
        assert recycle(databases, name, state) is None
    finally:
        admin.execute("DROP ROLE clinicdb_uncounted")


def test_a_session_left_open_means_no_recycling(
    databases: Databases, clinic_postgres: ServerInfo, handed_out: tuple[str, CloneState]
) -> None:
    name, state = handed_out
    leaked = psycopg.connect(clinic_postgres.dsn_for(name), autocommit=True)
    try:
        leaked.execute("SELECT 1")
        started = time.monotonic()
        assert recycle(databases, name, state) is None
        assert time.monotonic() - started < 10
        assert _gone(databases)
    finally:
        leaked.close()


def test_the_pool_recycles_only_unchanged_clones(
    databases: Databases, template: TemplateInfo, clinic_postgres: ServerInfo
) -> None:
    """End to end through the pool: a recycled clone keeps its OID, one whose rows were
    updated never comes back, and what the next test gets is always as new."""

    def oid(name: str) -> int:
        row = (
            databases.admin()
            .execute("SELECT oid FROM pg_database WHERE datname = %s", (name,))
            .fetchone()
        )
        assert row is not None
        return int(row[0])

    came_with_a_session = 0

    def use(work: Callable[[psycopg.Connection[Any]], object]) -> tuple[str, int]:
        nonlocal came_with_a_session
        name = databases.fresh(template, connection=True)  # as for clinic_db_fresh
        number = oid(name)
        opened = databases.connection(template, name)
        if opened is not None:  # the session that proved a recycled clone: as new
            came_with_a_session += 1
            assert not opened.autocommit and opened.info.dbname == name
            assert opened.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with opened or psycopg.connect(clinic_postgres.dsn_for(name)) as conn:
            assert conn.execute(
                "SELECT count(*) FROM clinic.clinics WHERE slug LIKE 'pool-%'"
            ).fetchone() == (0,), "a clone handed out holds another test's rows"
            assert conn.execute(
                "SELECT count(*) FROM clinic.feature_flags WHERE description LIKE '%!'"
            ).fetchone() == (0,), "a clone handed out holds another test's update"
            work(conn)
            conn.commit()
        databases.release(template, name)
        return name, number

    seen: list[tuple[int, bool]] = []  # (database OID, updated)
    undone = databases.undone
    for i in range(12):
        if i % 3 == 0:
            _, number = use(
                lambda c, i=i: c.execute(
                    "INSERT INTO clinic.clinics (name, slug) VALUES ('p', %s)", (f"pool-{i}",)
                )
            )
        elif i % 3 == 1:
            _, number = use(lambda c: c.execute(CHANGES["update, committed"][0]))
        else:
            _, number = use(lambda c: c.execute("SELECT count(*) FROM clinic.clinics"))
        seen.append((number, i % 3 == 1))
        time.sleep(0.05)  # let the dropper look at it
    for k, (number, updated) in enumerate(seen):
        later = [n for n, _ in seen[k + 1 :]]
        if updated:
            assert number not in later, "a clone its test updated was handed out again"
    oids = [n for n, _ in seen]
    assert len(set(oids)) < len(oids), f"no clone was recycled: {seen}"
    assert databases.recycled > 0
    assert databases.undone > undone, "no inserting test's clone came back"
    assert came_with_a_session > 0, "no recycled clone came with its open session"


def test_while_clones_come_back_the_pool_makes_no_new_ones(
    databases: Databases, template: TemplateInfo, clinic_postgres: ServerInfo
) -> None:
    """A suite of read-only tests: after the first few clones every test gets a recycled
    one, so the server spends no CREATE DATABASE (and no DROP DATABASE) per test."""
    uses = 40
    made_before = len(databases.clone_times)
    oids: set[int] = set()
    for _ in range(uses):
        name = databases.fresh(template)
        with psycopg.connect(clinic_postgres.dsn_for(name)) as conn:
            row = conn.execute(
                "SELECT oid FROM pg_database WHERE datname = current_database()"
            ).fetchone()
            assert row is not None
            oids.add(int(row[0]))
            conn.execute("SELECT count(*) FROM clinic.clinics").fetchone()
        databases.release(template, name)
    made = len(databases.clone_times) - made_before
    # The two cloners' first clones and one each in hand, and a little slack.
    assert made <= 8, f"{made} clones made for {uses} read-only tests"
    assert len(oids) <= 8, f"{len(oids)} different databases for {uses} read-only tests"


def test_a_role_that_may_not_reset_statistics_gets_no_recycling(
    databases: Databases, clinic_postgres: ServerInfo
) -> None:
    """Recycling ends with pg_stat_reset(), which only a superuser (or a role granted it)
    may run: for any other role the pool drops clones as before, and says nothing wrong."""
    need_superuser(databases)
    role = f"clinicdb_plain_{uuid.uuid4().hex[:8]}"
    admin = databases.admin()
    admin.execute(f"CREATE ROLE {role} LOGIN CREATEDB")
    try:
        admin.execute(f"ALTER ROLE {role} PASSWORD '{role}'")
        plain = dataclasses.replace(clinic_postgres, user=role, password=role, superuser=False)
        for grant, expected in ((False, False), (True, True)):
            if grant:
                admin.execute(f"GRANT EXECUTE ON FUNCTION pg_stat_reset() TO {role}")
            as_role = Databases(databases.run, plain, recycle=True)
            try:
                assert as_role.recycling is expected
            finally:
                as_role.close()
    finally:
        admin.execute(f"REVOKE EXECUTE ON FUNCTION pg_stat_reset() FROM {role}")
        admin.execute(f"DROP ROLE {role}")


def test_an_analyze_whose_counts_the_reset_zeroed_still_means_the_clone_is_dropped(
    databases: Databases,
    clinic_postgres: ServerInfo,
    handed_out: tuple[str, CloneState],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An autovacuum worker drawn by a test's inserts may ANALYZE the clone while its rows
    are being deleted; if it ends before the statistics reset, no counter shows it, but
    the catalog does (pg_class, pg_statistic)."""
    import pytest_clinicdb.recycle as recycle_module

    name, state = handed_out
    _session(clinic_postgres, name, [INSERTS["insert, committed"][0]])
    real_reset = recycle_module.reset_counters

    def analyze_then_reset(conn: psycopg.Connection[Any], state: CloneState) -> CloneState:
        with psycopg.connect(clinic_postgres.dsn_for(conn.info.dbname), autocommit=True) as other:
            other.execute("ANALYZE clinic.clinics")
        # Its backend adds its counts as it leaves: the reset comes after that.
        deadline = time.monotonic() + 10
        while conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        ).fetchone() != (1,):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        return real_reset(conn, state)

    monkeypatch.setattr(recycle_module, "reset_counters", analyze_then_reset)
    assert recycle(databases, name, state) is None
    assert _gone(databases)


def test_a_new_clone_has_the_templates_table_facts(
    databases: Databases, clinic_postgres: ServerInfo, handed_out: tuple[str, CloneState]
) -> None:
    name, _ = handed_out
    facts = FACTS[0]
    assert facts is not None and facts.sequences and facts.tables
    with psycopg.connect(clinic_postgres.dsn_for(name), autocommit=True) as conn:
        row = conn.execute("SELECT 'clinic.clinics'::regclass::oid").fetchone()
        assert row is not None
        assert facts.tables_changed(conn, [int(row[0])]) is None
        conn.execute("VACUUM clinic.clinics")
        assert facts.tables_changed(conn, [int(row[0])]) is not None
