"""clinic_db and friends, run as users run them (subprocess, with and without -n 2)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.acceptance

ISOLATION_TESTS = """
import psycopg
import pytest

@pytest.mark.parametrize("n", range(6))
def test_each_test_starts_clean(clinic_db, n):
    count = clinic_db.execute("SELECT count(*) FROM app.items").fetchone()[0]
    assert count == 0
    clinic_db.execute("INSERT INTO app.items (name) VALUES (%s)", (f"item{n}",))

def test_system_seed_is_loaded(clinic_db):
    rows = clinic_db.execute("SELECT key, enabled FROM app.flags ORDER BY key").fetchall()
    assert rows == [("beta", False), ("new_ui", True)]

def test_expected_error_inside_a_savepoint(clinic_db):
    clinic_db.execute("INSERT INTO app.items (name) VALUES ('dup')")
    with pytest.raises(psycopg.errors.UniqueViolation):
        with clinic_db.transaction():
            clinic_db.execute("INSERT INTO app.items (name) VALUES ('DUP')")
    assert clinic_db.execute("SELECT count(*) FROM app.items").fetchone()[0] == 1

def test_fresh_database_allows_commits(clinic_db_fresh, clinic_dsn):
    clinic_db_fresh.execute("INSERT INTO app.items (name) VALUES ('committed')")
    clinic_db_fresh.commit()
    with psycopg.connect(clinic_dsn) as other:
        assert other.execute("SELECT count(*) FROM app.items").fetchone()[0] == 1

def test_fresh_commit_did_not_leak(clinic_db):
    assert clinic_db.execute("SELECT count(*) FROM app.items WHERE name = 'committed'").fetchone()[0] == 0

def test_server_info(clinic_postgres):
    assert clinic_postgres.backend == "embedded"
    assert clinic_postgres.major >= 14
    assert clinic_postgres.data_dir.name == "data"
    assert clinic_postgres.log_path.exists()
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single", "xdist"])
def test_rollback_isolation_seed_and_cleanup(project, xdist):
    project.tests(ISOLATION_TESTS)
    result = project.run("-v", *xdist)
    result.assert_outcomes(passed=11)
    result.stdout.fnmatch_lines(
        [
            "clinicdb: backend embedded, PostgreSQL *",
            "clinicdb: 2 migrations in database/migrations, system seed database/seeds/001_system_seed.sql*",
            "clinicdb: template * built in * s by *",
            "*WARNING: system seed loaded ?001_system_seed.sql?",
        ]
    )
    assert project.leftovers() == []


def test_commit_is_an_error_and_raw_commit_is_isolated(project):
    project.tests(
        """
        import psycopg, pytest

        def test_commit_refused(clinic_db):
            clinic_db.execute("INSERT INTO app.items (name) VALUES ('a')")
            with pytest.raises(psycopg.ProgrammingError, match="commit"):
                clinic_db.commit()

        def test_rollback_and_autocommit_refused_savepoints_allowed(clinic_db):
            clinic_db.execute("INSERT INTO app.items (name) VALUES ('kept')")
            with pytest.raises(psycopg.ProgrammingError, match="rollback"):
                clinic_db.rollback()
            assert clinic_db.autocommit is False  # statements run in the test's transaction
            with pytest.raises(psycopg.ProgrammingError, match="autocommit"):
                clinic_db.autocommit = True
            with pytest.raises(psycopg.errors.UniqueViolation):
                with clinic_db.transaction():  # a savepoint: only it is rolled back
                    clinic_db.execute("INSERT INTO app.items (name) VALUES ('KEPT')")
            assert clinic_db.execute("SELECT count(*) FROM app.items").fetchone()[0] == 1
            assert clinic_db.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS

        def test_raw_commit(clinic_db):
            clinic_db.execute("INSERT INTO app.items (name) VALUES ('leaked')")
            clinic_db.execute("COMMIT")

        def test_after_raw_commit(clinic_db):
            n = clinic_db.execute("SELECT count(*) FROM app.items").fetchone()[0]
            assert n == 0
        """
    )
    result = project.run("-v", "-p", "no:randomly")
    result.assert_outcomes(passed=4, warnings=1)
    result.stdout.fnmatch_lines(
        ["*test_raw_commit committed inside clinic_db*replaced by a fresh clone*"]
    )


TRANSACTION_SENT_AHEAD = """
import datetime as dt, time
import psycopg, pytest
from psycopg.pq import TransactionStatus
from psycopg.types import TypeInfo

def test_status_first(clinic_db):
    assert clinic_db.info.transaction_status == TransactionStatus.INTRANS

def test_pipeline_first(clinic_db):
    with clinic_db.pipeline():
        clinic_db.execute("INSERT INTO app.items (name) VALUES ('p1')")
        clinic_db.execute("INSERT INTO app.items (name) VALUES ('p2')")
    assert clinic_db.execute("SELECT count(*) FROM app.items").fetchone()[0] == 2

def test_savepoint_first(clinic_db):
    with pytest.raises(psycopg.errors.UniqueViolation):
        with clinic_db.transaction():
            clinic_db.execute("INSERT INTO app.items (name) VALUES ('s'), ('S')")
    assert clinic_db.info.transaction_status == TransactionStatus.INTRANS

def test_copy_first(clinic_db):
    with clinic_db.cursor().copy("COPY app.items (name) FROM STDIN") as copy:
        copy.write_row(["c1"])
    assert clinic_db.execute("SELECT count(*) FROM app.items").fetchone()[0] == 1

def test_server_cursor_and_type_lookup_first(clinic_db):
    assert TypeInfo.fetch(clinic_db, "citext") is not None
    with clinic_db.cursor(name="named") as cur:
        cur.execute("SELECT name FROM app.items")
        assert cur.fetchall() == []

def test_untouched(clinic_db):
    pass

def test_commit_and_chain(clinic_db):
    clinic_db.execute("INSERT INTO app.items (name) VALUES ('chained')")
    clinic_db.execute("COMMIT AND CHAIN")  # committed, and in a transaction again

def test_slow_without_a_database():
    time.sleep(1.5)

def test_now_is_this_tests_start(clinic_db):
    before = dt.datetime.now(dt.timezone.utc)
    now = clinic_db.execute("SELECT now()").fetchone()[0]
    assert abs((now - before).total_seconds()) < 1.0, "now() is from before this test"
    assert clinic_db.execute("SELECT count(*) FROM app.items").fetchone()[0] == 0
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single", "xdist"])
def test_the_transaction_sent_ahead_is_invisible_to_the_test(project, xdist):
    """The BEGIN goes out before the test and its answer is read at the test's first use of
    the connection, whatever that use is; now() is the test's own start."""
    project.tests(TRANSACTION_SENT_AHEAD)
    result = project.run("-p", "no:randomly", *xdist)
    if xdist:
        result.assert_outcomes(passed=9)  # which worker saw the commit is up to xdist
        return
    result.assert_outcomes(passed=9, warnings=1)
    result.stdout.fnmatch_lines(
        ["*test_commit_and_chain committed inside clinic_db*replaced by a fresh clone*"]
    )


def test_fixtures_are_documented(project):
    result = project.run("--fixtures")
    for name in ("clinic_postgres", "clinic_db ", "clinic_dsn", "clinic_db_fresh"):
        result.stdout.fnmatch_lines([f"{name.strip()} *", "    *"])
    result.stdout.fnmatch_lines(["*rolled back after the test*"])


def test_cleanup_after_a_failing_session(project):
    project.tests(
        """
        def test_fails(clinic_db):
            assert clinic_db.execute("SELECT 1").fetchone()[0] == 2
        """
    )
    result = project.run()
    result.assert_outcomes(failed=1)
    assert project.leftovers() == []


def test_clinic_db_async_without_pytest_asyncio_says_what_to_install(project, monkeypatch):
    shadow = project.path / "no_asyncio"
    (shadow / "pytest_asyncio").mkdir(parents=True)
    (shadow / "pytest_asyncio" / "__init__.py").write_text("raise ImportError('not installed')\n")
    monkeypatch.setenv("PYTHONPATH", str(shadow))
    project.tests(
        """
        def test_needs_it(clinic_db_async):
            pass
        """
    )
    result = project.run("-p", "no:asyncio")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            '*pytest-clinicdb: clinic_db_async needs pytest-asyncio, which is not installed: pip install "pytest-clinicdb[[]async]"*'
        ]
    )


RECYCLING_TESTS = """
import pytest

@pytest.mark.parametrize("n", range(16))
def test_every_fresh_clone_is_as_new(clinic_db_fresh, n):
    items = clinic_db_fresh.execute("SELECT count(*) FROM app.items").fetchone()[0]
    assert items == 0, "a clone handed out holds another test's rows"
    setting = clinic_db_fresh.execute("SELECT current_setting('app.flavour', true)").fetchone()[0]
    assert setting in (None, ""), "a clone handed out has another test's database setting"
    flags = clinic_db_fresh.execute("SELECT key, enabled FROM app.flags ORDER BY key").fetchall()
    assert flags == [("beta", False), ("new_ui", True)], "another test's update"
    if n % 4 == 0:
        clinic_db_fresh.execute("INSERT INTO app.items (name) VALUES (%s)", (f"item{n}",))
        clinic_db_fresh.commit()
    if n % 4 == 2:  # no sequence involved: only the row counts tell
        clinic_db_fresh.execute("UPDATE app.flags SET enabled = NOT enabled")
        clinic_db_fresh.commit()
    if n % 4 == 1:
        clinic_db_fresh.commit()
        clinic_db_fresh.autocommit = True
        db = clinic_db_fresh.info.dbname
        clinic_db_fresh.execute(f'ALTER DATABASE "{db}" SET app.flavour = {n}')
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single", "xdist"])
def test_fresh_clones_their_tests_left_unchanged_are_recycled(project, xdist):
    import re

    from ..conftest import databases

    project.tests(RECYCLING_TESTS)
    result = project.run("-p", "no:randomly", "--clinicdb-timings", *xdist)
    result.assert_outcomes(passed=16)
    major = int(re.search(r"PostgreSQL (\d+)", result.stdout.str()).group(1))
    if major >= 15:
        result.stdout.fnmatch_lines(["*recycled: * fresh clone(s), * left unchanged by their*"])
    else:  # statistics arrive late on 14: every clone is dropped
        assert "recycled:" not in result.stdout.str()
    assert [
        d
        for d in databases(project.cache_dir)
        if not d.startswith(("clinicdb_tpl_", "clinicdb_ckpt_"))
    ] == []
    assert project.leftovers() == []
    off = project.run("-p", "no:randomly", "--clinicdb-timings", "--clinicdb-no-recycle-clones")
    off.assert_outcomes(passed=16)
    assert "recycled:" not in off.stdout.str()


# A ledger team's style: unqualified names under SET search_path, an identity column, a
# serial filled by a trigger, an append-only table whose DELETE trigger raises, a rule that
# turns DELETE into nothing, a partitioned table with a DEFAULT partition, values big
# enough for TOAST.
LEDGER_SCHEMA = """
    CREATE SCHEMA ledger;
    SET search_path TO ledger, public;
    CREATE TABLE accounts (
        id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        owner text NOT NULL UNIQUE,
        notes text
    );
    CREATE RULE accounts_are_kept AS ON DELETE TO accounts DO INSTEAD NOTHING;
    CREATE TABLE history (id serial PRIMARY KEY, what text NOT NULL);
    CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'history is append-only'; END $$;
    CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON history
        FOR EACH ROW EXECUTE FUNCTION refuse();
    CREATE FUNCTION remember() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO history (what) VALUES (TG_OP || ' ' || NEW.owner); RETURN NEW; END $$;
    CREATE TRIGGER remember AFTER INSERT ON accounts FOR EACH ROW EXECUTE FUNCTION remember();
    CREATE TABLE entries (
        account_id int NOT NULL REFERENCES accounts (id),
        amount numeric NOT NULL,
        booked_on date NOT NULL
    ) PARTITION BY RANGE (booked_on);
    CREATE TABLE entries_2024 PARTITION OF entries FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
    CREATE TABLE entries_other PARTITION OF entries DEFAULT;
    -- replicated to a reporting node: its DELETE trigger fires in replica sessions too
    CREATE TABLE transfers (id bigserial PRIMARY KEY, amount numeric NOT NULL);
    CREATE TABLE removals (transfer_id bigint NOT NULL);
    CREATE FUNCTION note_removal() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN INSERT INTO ledger.removals VALUES (OLD.id); RETURN OLD; END $$;
    CREATE TRIGGER note_removal AFTER DELETE ON transfers
        FOR EACH ROW EXECUTE FUNCTION note_removal();
    ALTER TABLE transfers ENABLE ALWAYS TRIGGER note_removal;
"""
LEDGER_SEED = """
    SET search_path TO ledger, public;
    INSERT INTO accounts (owner) VALUES ('house') ON CONFLICT (owner) DO NOTHING;
"""
LEDGER_TESTS = """
import psycopg
import pytest

BIG = "SELECT string_agg(md5(g::text), '') FROM generate_series(1, 3000) g"

@pytest.mark.parametrize("n", range(24))
def test_every_test_gets_the_ledger_as_new(clinic_db_fresh, n):
    db = clinic_db_fresh
    # a connection as psycopg.connect gives one, whoever opened it: the only session here
    assert db.autocommit is False
    assert db.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert db.execute(
        "SELECT current_setting('session_replication_role'), current_setting('search_path'),"
        " (SELECT count(*) FROM pg_prepared_statements),"
        " (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database())"
    ).fetchone() == ("origin", '"$user", public', 0, 1)
    db.rollback()
    db.execute("SET search_path TO ledger, public")
    assert db.execute("SELECT owner FROM accounts").fetchall() == [("house",)]
    assert db.execute("SELECT count(*) FROM history").fetchone() == (1,)
    assert db.execute("SELECT count(*) FROM entries").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM removals").fetchone() == (0,)
    # the same numbers as on a new clone: the sequences were put back
    new_id = db.execute(
        f"INSERT INTO accounts (owner, notes) VALUES ('t{n}', ({BIG})) RETURNING id"
    ).fetchone()
    assert new_id == (2,)
    assert db.execute("SELECT max(id) FROM history").fetchone() == (2,)
    db.execute(
        "INSERT INTO entries VALUES (1, 10, '2024-05-01'), (%s, 5, '2030-01-01')", new_id
    )
    db.commit()
    if n % 6 == 5:  # a change that no deletion undoes: this clone is dropped
        db.execute("UPDATE accounts SET notes = 'x' WHERE owner = 'house'")
        db.commit()
    if n % 6 == 1:  # deleting this row would write to history: this clone is dropped
        db.execute("INSERT INTO transfers (amount) VALUES (1)")
        db.commit()
    if n % 6 == 3:  # rolled back: its rows are dead already
        db.execute("INSERT INTO accounts (owner) VALUES ('gone')")
        db.rollback()

@pytest.mark.parametrize("n", range(6))
def test_a_test_with_only_the_dsn_is_alone_on_its_clone(clinic_dsn, n):
    with psycopg.connect(clinic_dsn) as conn:
        sessions = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        assert conn.execute(sessions).fetchone() == (1,)
        conn.execute("SET search_path TO ledger, public")
        conn.execute("INSERT INTO accounts (owner) VALUES ('dsn')")
"""


@pytest.mark.parametrize("xdist", [[], ["-n", "2"]], ids=["single", "xdist"])
def test_inserting_tests_get_their_clone_back_on_a_schema_in_another_style(
    pytester, cache_dir, xdist
):
    import re

    from ..conftest import Project, databases

    project = Project(pytester, cache_dir)
    project.migration("001_ledger.sql", LEDGER_SCHEMA)
    project.seed("001_accounts.sql", LEDGER_SEED)
    project.tests(LEDGER_TESTS)
    result = project.run("-p", "no:randomly", "--clinicdb-timings", *xdist)
    result.assert_outcomes(passed=30)
    out = result.stdout.str()
    if int(re.search(r"PostgreSQL (\d+)", out).group(1)) >= 15:
        undone = re.search(r"recycled: (\d+) fresh clone\(s\), (\d+) left .*, (\d+) once", out)
        assert undone and int(undone.group(3)) >= 8, out
    assert [
        d
        for d in databases(project.cache_dir)
        if not d.startswith(("clinicdb_tpl_", "clinicdb_ckpt_"))
    ] == []
    assert project.leftovers() == []
