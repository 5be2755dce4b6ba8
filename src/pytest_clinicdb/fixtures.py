"""The public fixtures (their docstrings show in ``pytest --fixtures``).

The chain, each link overridable in a ``conftest.py``::

    clinic_postgres (session)  → _clinicdb_template (session)
        → _clinicdb_worker (session, this worker's clone)  → clinic_db (function)
        → clinic_dsn (function, a fresh clone)             → clinic_db_fresh (function)
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import psycopg
import pytest

from ._state import PHASE_REPORTS_KEY, engine_of
from .engine import Engine
from .errors import ClinicDBError
from .server import ServerInfo
from .templates import TemplateInfo

T = TypeVar("T")

#: The transaction's start time: changes only if the test's transaction was committed.
_STARTED = "SELECT extract(epoch FROM now())"


def _run(request: pytest.FixtureRequest, fn: Callable[[], T]) -> T:
    """Run a set-up step; turn our errors into one readable failure and stop the run."""
    try:
        return fn()
    except (ClinicDBError, psycopg.Error) as exc:
        died = engine_of(request.config).server_died() if isinstance(exc, psycopg.Error) else None
        message = f"pytest-clinicdb: {died or exc}"
    # Outside the except block: the failure shows our message, not a chain of tracebacks.
    request.session.shouldstop = (
        "pytest-clinicdb could not set up the database (see the first error)"
    )
    pytest.fail(message, pytrace=False)


@pytest.fixture(scope="session")
def clinic_postgres(request: pytest.FixtureRequest) -> ServerInfo:
    """The PostgreSQL server of this test session.

    A :class:`pytest_clinicdb.ServerInfo` with ``dsn`` (maintenance database),
    ``dsn_for(dbname)``, ``version`` (e.g. ``"15.18"``), ``major``, ``backend``,
    ``data_dir`` and ``log_path``.  Its ``repr()`` masks the password.  Started
    on first use, shared by every xdist worker, stopped at the end of the run.
    """
    engine = engine_of(request.config)
    return _run(request, engine.server)


@pytest.fixture(scope="session")
def _clinicdb_template(request: pytest.FixtureRequest, clinic_postgres: ServerInfo) -> TemplateInfo:
    """The migrated, seeded template database (built once per content key)."""
    engine = engine_of(request.config)
    return _run(request, engine.template)


class _WorkerDatabase:
    """This worker's clone of the template and its long-lived connection."""

    def __init__(self, engine: Engine, request: pytest.FixtureRequest, variant: str) -> None:
        self.engine = engine
        self.request = request
        self.variant = variant
        self.name = ""
        self.conn: psycopg.Connection[Any] | None = None
        self.renew()

    def renew(self) -> None:
        self.close()
        kind = "w" if self.variant == "base" else "wd"
        self.name = _run(self.request, lambda: self.engine.new_database(kind, self.variant))
        self.conn = psycopg.connect(self.engine.server().dsn_for(self.name))

    def connection(self) -> psycopg.Connection[Any]:
        if self.conn is None or self.conn.closed or self.conn.broken:
            if self.conn is not None:
                self.conn.close()
            self.conn = psycopg.connect(self.engine.server().dsn_for(self.name))
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.name:
            try:
                self.engine.drop(self.name)
            except (psycopg.Error, ClinicDBError) as exc:
                if self.engine.server_died() is not None:
                    self.name = ""  # reported already; it went down with the server
                    return
                warnings.warn(
                    pytest.PytestWarning(f"pytest-clinicdb: could not drop {self.name}: {exc}"),
                    stacklevel=1,
                )
            self.name = ""


_MARKER_OPTIONS = {"dev_seed"}


def _wants_dev_seed(request: pytest.FixtureRequest) -> bool:
    """002 for this test: the run's --clinicdb-dev-seed, or @pytest.mark.clinicdb(dev_seed=True)."""
    marker = request.node.get_closest_marker("clinicdb")
    if marker is not None:
        unknown = set(marker.kwargs) - _MARKER_OPTIONS
        if unknown or marker.args:
            pytest.fail(
                f"@pytest.mark.clinicdb: unknown option(s) {sorted(unknown) or list(marker.args)}; "
                f"valid: {', '.join(sorted(_MARKER_OPTIONS))}",
                pytrace=False,
            )
        if "dev_seed" in marker.kwargs:
            return bool(marker.kwargs["dev_seed"])
    return engine_of(request.config).settings.dev_seed


@pytest.fixture(scope="session")
def _clinicdb_worker(
    request: pytest.FixtureRequest, _clinicdb_template: TemplateInfo
) -> Iterator[_WorkerDatabase]:
    """This worker's own clone of the template, shared by its ``clinic_db`` tests."""
    db = _WorkerDatabase(engine_of(request.config), request, "base")
    yield db
    db.close()


@pytest.fixture(scope="session")
def _clinicdb_worker_dev(
    request: pytest.FixtureRequest, clinic_postgres: ServerInfo
) -> Iterator[_WorkerDatabase]:
    """This worker's clone of the template with the dev seed 002 loaded (built once)."""
    db = _WorkerDatabase(engine_of(request.config), request, "dev")
    yield db
    db.close()


def _warn_commit_and_renew(request: pytest.FixtureRequest, worker: _WorkerDatabase) -> None:
    warnings.warn(
        pytest.PytestWarning(
            f"pytest-clinicdb: {request.node.nodeid} committed inside clinic_db "
            "(a COMMIT sent as SQL); its database was replaced by a fresh clone. "
            "Use clinic_db_fresh for code that commits."
        ),
        stacklevel=1,
    )
    worker.renew()


def _rolled_back(
    request: pytest.FixtureRequest, worker: _WorkerDatabase
) -> Iterator[psycopg.Connection[Any]]:
    def begin() -> tuple[psycopg.Connection[Any], Any, Any]:
        conn = worker.connection()
        tx = conn.transaction(force_rollback=True)
        tx.__enter__()
        return conn, tx, conn.execute(_STARTED).fetchone()

    conn, tx, started = _run(request, begin)
    try:
        yield conn
    finally:
        leaked = False
        try:
            if not conn.closed and not conn.broken:
                status = conn.info.transaction_status
                if status == psycopg.pq.TransactionStatus.INTRANS:
                    now = conn.execute(_STARTED).fetchone()
                    leaked = now != started
                elif status == psycopg.pq.TransactionStatus.IDLE:
                    leaked = True
            tx.__exit__(None, None, None)
        except psycopg.Error:
            leaked = leaked or conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        if conn.closed or conn.broken:
            died = worker.engine.server_died()
            if died is not None:
                request.session.shouldstop = (
                    "pytest-clinicdb: the server died (see the first error)"
                )
                pytest.fail(f"pytest-clinicdb: {died}", pytrace=False)
            leaked = False  # a broken connection rolled back; the next test reconnects
        if leaked:
            _warn_commit_and_renew(request, worker)


@pytest.fixture
def clinic_db(request: pytest.FixtureRequest) -> Iterator[psycopg.Connection[Any]]:
    """A psycopg 3 connection to the migrated database with seed 001, rolled back after the test.

    The test runs inside ``conn.transaction(force_rollback=True)``:
    everything it writes disappears afterwards, and the next test sees the
    template's contents again.  Use ``with clinic_db.transaction():`` (a
    savepoint) around statements you expect to fail.  ``clinic_db.commit()`` is
    an error (psycopg refuses it inside the transaction block); a raw
    ``COMMIT`` sent as SQL is detected after the test, the worker's database is
    replaced by a fresh clone and a warning names the test.  For code that must
    commit, use ``clinic_db_fresh`` or ``clinic_dsn``.

    With ``--clinicdb-dev-seed`` or ``@pytest.mark.clinicdb(dev_seed=True)`` the
    database also holds the DEV/TEST ONLY sample data of seed 002.
    """
    name = "_clinicdb_worker_dev" if _wants_dev_seed(request) else "_clinicdb_worker"
    yield from _rolled_back(request, request.getfixturevalue(name))


@pytest.fixture
def clinic_db_dev(
    request: pytest.FixtureRequest, _clinicdb_worker_dev: _WorkerDatabase
) -> Iterator[psycopg.Connection[Any]]:
    """Like ``clinic_db``, on a database that also holds the DEV/TEST ONLY sample data (seed 002).

    002 is loaded once, into its own content-keyed template, by the dev-seed wrapper:
    one transaction with ``app.environment`` set to ``test``, the audit triggers
    of the seeded tables disabled (foreign keys stay enforced) and re-enabled,
    checked afterwards.  ``clinic_db`` in the same run never sees these rows.
    """
    yield from _rolled_back(request, _clinicdb_worker_dev)


@pytest.fixture
def clinic_dsn(request: pytest.FixtureRequest, clinic_postgres: ServerInfo) -> Iterator[str]:
    """A connection string to a fresh clone of the template, for this test only.

    For code that opens its own connections and commits: nothing it does is
    seen by other tests.  The database is dropped after the test.  With
    ``--clinicdb-dev-seed`` or ``@pytest.mark.clinicdb(dev_seed=True)`` the clone
    also holds the DEV/TEST ONLY sample data of seed 002.  With
    ``--clinicdb-keep-failed`` the database of a failed test is kept and its DSN
    printed at the end of the run.
    """
    engine = engine_of(request.config)
    variant = "dev" if _wants_dev_seed(request) else "base"
    name = _run(request, lambda: engine.fresh_database(variant))
    try:
        yield engine.server().dsn_for(name)
    finally:
        try:
            if engine.settings.keep_failed and _failed(request.node):
                engine.keep(name, request.node.nodeid)
            else:
                engine.release_fresh(name, variant)
        except psycopg.Error as exc:
            warnings.warn(
                pytest.PytestWarning(f"pytest-clinicdb: could not drop {name}: {exc}"), stacklevel=1
            )


def _failed(item: pytest.Item) -> bool:
    reports = item.stash.get(PHASE_REPORTS_KEY, {})
    return any(rep.failed for rep in reports.values())


@pytest.fixture
def clinic_db_fresh(clinic_dsn: str) -> Iterator[psycopg.Connection[Any]]:
    """A psycopg 3 connection to a fresh clone of the template, for this test only.

    Commits are allowed, and so are ``CREATE INDEX CONCURRENTLY``, ``VACUUM``,
    deferred constraints and several connections (``clinic_dsn`` is the same
    database).  The database is dropped after the test.
    """
    conn = psycopg.connect(clinic_dsn)
    try:
        yield conn
    finally:
        conn.close()


async def _rolled_back_async(
    request: pytest.FixtureRequest, worker: _WorkerDatabase
) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    dsn = worker.engine.server().dsn_for(worker.name)
    conn = await psycopg.AsyncConnection.connect(dsn)
    leaked = False
    try:
        async with conn.transaction(force_rollback=True):
            started = await (await conn.execute(_STARTED)).fetchone()
            yield conn
            if conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS:
                leaked = await (await conn.execute(_STARTED)).fetchone() != started
            else:
                leaked = conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    except psycopg.Error:
        leaked = leaked or conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    finally:
        await conn.close()
    if leaked:
        _warn_commit_and_renew(request, worker)


_ASYNC_DOC = """A psycopg 3 ``AsyncConnection`` with the isolation of ``clinic_db``.

    The test runs inside ``conn.transaction(force_rollback=True)`` on this
    worker's clone of the template (its own connection, opened in the test's
    event loop): everything it writes is rolled back.  The dev seed marker and
    option apply as for ``clinic_db``.  Needs pytest-asyncio
    (``pip install "pytest-clinicdb[async]"``); mark the test
    ``@pytest.mark.asyncio`` (or set ``asyncio_mode = auto``).
    """


def _pytest_asyncio() -> Any:
    try:
        import pytest_asyncio
    except ImportError:
        return None
    return pytest_asyncio


if (_asyncio := _pytest_asyncio()) is not None:

    @_asyncio.fixture  # type: ignore[untyped-decorator]
    async def clinic_db_async(
        request: pytest.FixtureRequest,
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        name = "_clinicdb_worker_dev" if _wants_dev_seed(request) else "_clinicdb_worker"
        async for conn in _rolled_back_async(request, request.getfixturevalue(name)):
            yield conn

else:

    @pytest.fixture
    def clinic_db_async() -> None:
        pytest.fail(
            "pytest-clinicdb: clinic_db_async needs pytest-asyncio, which is not installed: "
            'pip install "pytest-clinicdb[async]" (or pytest-asyncio)',
            pytrace=False,
        )


clinic_db_async.__doc__ = _ASYNC_DOC
