"""The public fixtures (their docstrings show in ``pytest --fixtures``).

The chain — each link *receives* the previous one's value and uses it, so a
``conftest.py`` that overrides a link changes what every later link gets::

    _clinicdb_run (session)           the run directory
      └─ clinic_postgres (session)    the server: the backend's, or your own
           └─ _clinicdb_template (session)        migrations + system seed
                ├─ _clinicdb_worker (session)     this worker's clone  → clinic_db
                └─ _clinicdb_template_dev (session)   + the DEV/TEST ONLY seed
                     └─ _clinicdb_worker_dev (session)                 → clinic_db_dev
      clinic_postgres + a template  → clinic_dsn (a fresh clone per test) → clinic_db_fresh

``clinic_db`` (and ``clinic_dsn``) take the dev links instead when the test
asks for the dev seed (``@pytest.mark.clinicdb(dev_seed=True)`` or
``--clinicdb-dev-seed``).  psycopg is imported when a fixture first needs it:
loading the plugin costs a suite without database tests nothing.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import pytest

from ._state import PHASE_REPORTS_KEY, context_of, report_server

if TYPE_CHECKING:
    import psycopg

    from ._state import Context
    from .databases import Databases
    from .isolation import PendingFinish, TestConnection
    from .runs import Run
    from .server import ServerInfo
    from .templates import TemplateInfo

T = TypeVar("T")


# --------------------------------------------------------------------------- set-up errors


def _message(exc: BaseException, server: ServerInfo | None) -> str | None:
    """Our message for a set-up error, or None if it is not one of ours."""
    import psycopg

    from .errors import ClinicDBError

    if isinstance(exc, ClinicDBError):
        return f"pytest-clinicdb: {exc}"
    if isinstance(exc, psycopg.Error):
        if server is not None:
            from .server import died

            dead = died(server)
            if dead is not None:
                return f"pytest-clinicdb: {dead}"
        return f"pytest-clinicdb: {str(exc).strip()}"
    return None


def _setup(config: pytest.Config, fn: Callable[[], T], server: ServerInfo | None = None) -> T:
    """Run a set-up step everything needs; on our errors, one readable failure stops the run."""
    try:
        return fn()
    except Exception as exc:
        message = _message(exc, server)
        if message is None:
            raise
    # Outside the except block: the failure shows our message, not a chain of tracebacks.
    context_of(config).stop_session(
        "pytest-clinicdb could not set up the database (see the first error)"
    )
    pytest.fail(message, pytrace=False)


@dataclass(frozen=True)
class SetupFailed:
    """A set-up step only some tests need (the dev seed) failed: those tests error, others run."""

    what: str
    message: str


def _require(request: pytest.FixtureRequest, value: T | SetupFailed) -> T:
    """``value``, or fail this test: the full message once, then a short line naming the first."""
    if not isinstance(value, SetupFailed):
        return value
    ctx = context_of(request.config)
    first = ctx.reported.setdefault(value.what, request.node.nodeid)
    if first == request.node.nodeid:
        pytest.fail(value.message, pytrace=False)
    pytest.fail(
        f"pytest-clinicdb: {value.what} could not be set up (the error is shown at {first})",
        pytrace=False,
    )


# --------------------------------------------------------------------------- server, templates


@pytest.fixture(scope="session")
def _clinicdb_run(pytestconfig: pytest.Config) -> Run:
    """The run's directory in the cache: journal of database names, shutdown state, reports."""
    return _setup(pytestconfig, context_of(pytestconfig).run)


@pytest.fixture(scope="session")
def clinic_postgres(pytestconfig: pytest.Config, _clinicdb_run: Run) -> ServerInfo:
    """The PostgreSQL server of this test session.

    A :class:`pytest_clinicdb.ServerInfo` with ``dsn`` (maintenance database),
    ``dsn_for(dbname)``, ``version`` (e.g. ``"15.18"``), ``major``, ``backend``,
    ``data_dir`` and ``log_path``.  Its ``repr()`` masks the password.  Started
    on first use by the configured backend, shared by every xdist worker,
    stopped at the end of the run.  Override it in a ``conftest.py`` to bring
    your own server; every other fixture then uses it::

        @pytest.fixture(scope="session")
        def clinic_postgres():
            return pytest_clinicdb.existing_server(os.environ["MY_DSN"])
    """
    ctx = context_of(pytestconfig)

    def start() -> ServerInfo:
        ctx.project.check_folders()  # a missing folder fails before a server starts
        info = ctx.backend.start(_clinicdb_run)
        report_server(_clinicdb_run, info, ctx.backend)
        return info

    return _setup(pytestconfig, start)


def _report_template(ctx: Context, run: Run, info: TemplateInfo, *, collect: bool = True) -> None:
    if info.beside:  # checkpoints still being made: recorded again once they are (ctx.close)
        ctx.after_builds.append(lambda: _report_template(ctx, run, info, collect=False))
    if info.built and collect:
        ctx.collect_garbage(info.server)  # the cap counts the template just built
    if info.server.data_dir is not None:  # the header's "kept from an earlier run"
        from .server.cluster import ClusterDir

        cluster = ClusterDir(info.server.data_dir.parent)
        cluster.templates.mkdir(exist_ok=True)
        (cluster.templates / info.name).touch()
        if info.checkpoints:  # what a later chain of this project may resume from
            known = dict(cluster.meta().get("checkpoints", {}))
            cluster.write_meta(checkpoints={**known, **info.checkpoints})
    run.write_report(
        # The server as the chain saw it (also when a conftest brought its own).
        server=info.server.binaries,
        **{
            f"template_{info.variant}": {
                "key": info.key,
                "built": info.built,
                "rebuilt": info.rebuilt,
                "built_at": info.built_at,
                "seconds": info.seconds,
                "timings": info.timings,
                "notices": [n.to_dict() for n in info.notices],
                "partitions": info.partitions,
                "dev_seed": info.dev_seed,
                "notes": info.notes,
                "resumed": info.resumed,
                "migrations": len([m for m in ctx.project.migrations if m.kind == "versioned"]),
            }
        },
    )


@pytest.fixture(scope="session")
def _clinicdb_template(
    pytestconfig: pytest.Config, clinic_postgres: ServerInfo, _clinicdb_run: Run
) -> TemplateInfo:
    """The template on ``clinic_postgres``: migrations, audit partitions, system seed.

    Built once per content key (every input byte) and reused while nothing
    changed.  Override it to build from other inputs, e.g.
    ``return pytest_clinicdb.build_template(clinic_postgres, migrations=[...])``.
    """
    ctx = context_of(pytestconfig)

    def build() -> TemplateInfo:
        ctx.databases(clinic_postgres)  # leftovers of dead runs go before the first build
        info = ctx.builder().base(clinic_postgres)
        _report_template(ctx, _clinicdb_run, info)
        return info

    return _setup(pytestconfig, build, clinic_postgres)


@pytest.fixture(scope="session")
def _clinicdb_template_dev(
    pytestconfig: pytest.Config, _clinicdb_template: TemplateInfo, _clinicdb_run: Run
) -> TemplateInfo | SetupFailed:
    """The template with the DEV/TEST ONLY seed too: a clone of ``_clinicdb_template`` + seed 002.

    If it cannot be built, only the tests that need it error; the others run.
    """
    ctx = context_of(pytestconfig)
    try:
        info = ctx.builder().dev(_clinicdb_template)
    except Exception as exc:
        message = _message(exc, _clinicdb_template.server)
        if message is None:
            raise
        return SetupFailed("the dev template (seed 002)", message)
    _report_template(ctx, _clinicdb_run, info)
    return info


# --------------------------------------------------------------------------- worker databases


class WorkerDatabase:
    """This worker's clone of a template and its long-lived connection."""

    def __init__(self, template: TemplateInfo, databases: Databases) -> None:
        self.template = template
        self.databases = databases
        self.name = ""
        self.conn: TestConnection | None = None
        #: The last test's rollback, sent and not yet read: (its node id, the pending finish).
        self.pending: tuple[str, PendingFinish] | None = None
        self.renew()

    def renew(self) -> None:
        self.close()
        kind = "w" if self.template.variant == "base" else "wd"
        self.name = self.databases.clone(self.template, kind)
        self.conn = self._connect()

    def _connect(self) -> TestConnection:
        from .connect import connect
        from .isolation import TestConnection

        # Autocommit as far as psycopg goes: the fixture opens and ends each test's transaction.
        dsn = self.template.server.dsn_for(self.name)
        conn: TestConnection = connect(dsn, cls=TestConnection, autocommit=True)
        return conn

    def connection(self) -> TestConnection:
        if self.conn is None or self.conn.closed or self.conn.broken:
            if self.conn is not None:
                self.conn.close()
            self.conn = self._connect()
        return self.conn

    def close(self) -> None:
        import psycopg

        from .errors import ClinicDBError
        from .server import died

        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.name:
            try:
                self.databases.drop(self.name)
            except (psycopg.Error, ClinicDBError) as exc:
                if died(self.template.server) is None:
                    warnings.warn(
                        pytest.PytestWarning(f"pytest-clinicdb: could not drop {self.name}: {exc}"),
                        stacklevel=1,
                    )
            self.name = ""


def _worker(config: pytest.Config, template: TemplateInfo) -> WorkerDatabase:
    ctx = context_of(config)
    return _setup(
        config, lambda: WorkerDatabase(template, ctx.databases(template.server)), template.server
    )


@pytest.fixture(scope="session")
def _clinicdb_worker(
    pytestconfig: pytest.Config, _clinicdb_template: TemplateInfo
) -> Iterator[WorkerDatabase]:
    """This worker's own clone of ``_clinicdb_template``, shared by its ``clinic_db`` tests."""
    db = _worker(pytestconfig, _clinicdb_template)
    yield db
    _settle(pytestconfig, db)
    db.close()


@pytest.fixture(scope="session")
def _clinicdb_worker_dev(
    pytestconfig: pytest.Config, _clinicdb_template_dev: TemplateInfo | SetupFailed
) -> Iterator[WorkerDatabase | SetupFailed]:
    """This worker's clone of ``_clinicdb_template_dev`` (seed 002 loaded)."""
    if isinstance(_clinicdb_template_dev, SetupFailed):
        yield _clinicdb_template_dev
        return
    db = _worker(pytestconfig, _clinicdb_template_dev)
    yield db
    _settle(pytestconfig, db)
    db.close()


# --------------------------------------------------------------------------- per test

_MARKER_OPTIONS = {"dev_seed", "role", "settings"}


def _marker(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The options of the test's ``@pytest.mark.clinicdb(...)`` (checked)."""
    marker = request.node.get_closest_marker("clinicdb")
    if marker is None:
        return {}
    unknown = set(marker.kwargs) - _MARKER_OPTIONS
    if unknown or marker.args:
        pytest.fail(
            f"@pytest.mark.clinicdb: unknown option(s) {sorted(unknown) or list(marker.args)}; "
            f"valid: {', '.join(sorted(_MARKER_OPTIONS))}",
            pytrace=False,
        )
    settings = marker.kwargs.get("settings", {})
    if not isinstance(settings, dict):
        pytest.fail(
            "@pytest.mark.clinicdb(settings=...): a dict of setting names to values, e.g. "
            '{"app.current_clinic_id": clinic_id}',
            pytrace=False,
        )
    return dict(marker.kwargs)


def _wants_dev_seed(request: pytest.FixtureRequest) -> bool:
    """002 for this test: the run's --clinicdb-dev-seed, or @pytest.mark.clinicdb(dev_seed=True)."""
    options = _marker(request)
    if "dev_seed" in options:
        return bool(options["dev_seed"])
    return context_of(request.config).settings.dev_seed


def _acting(request: pytest.FixtureRequest) -> tuple[str | None, dict[str, Any]] | None:
    """``role``/``settings`` of the marker: the whole test runs as that role (see acting_as)."""
    options = _marker(request)
    if "role" not in options and "settings" not in options:
        return None
    return options.get("role"), dict(options.get("settings", {}))


def _worker_of(request: pytest.FixtureRequest) -> WorkerDatabase:
    name = "_clinicdb_worker_dev" if _wants_dev_seed(request) else "_clinicdb_worker"
    # Asking pytest walks the whole session chain for every test; the answer only differs
    # where a conftest, module or class overrides a fixture of the chain: remember it per
    # module or class (while the worker is open).
    known = context_of(request.config).workers
    key = (name, request.node.parent)
    worker = known.get(key)
    if not isinstance(worker, (WorkerDatabase, SetupFailed)) or (
        isinstance(worker, WorkerDatabase) and not worker.name
    ):
        worker = known[key] = request.getfixturevalue(name)
    return _require(request, cast("WorkerDatabase | SetupFailed", worker))


def _template_of(request: pytest.FixtureRequest) -> TemplateInfo:
    name = "_clinicdb_template_dev" if _wants_dev_seed(request) else "_clinicdb_template"
    template: TemplateInfo | SetupFailed = request.getfixturevalue(name)
    return _require(request, template)


def _after(config: pytest.Config, nodeid: str, worker: WorkerDatabase, verdict: object) -> None:
    """What a finished ``clinic_db`` test's verdict means (sync and async alike)."""
    from .isolation import Verdict
    from .server import died

    if verdict is Verdict.BROKEN:
        dead = died(worker.template.server)
        if dead is not None:
            context_of(config).stop_session(
                "pytest-clinicdb: the server died (see the first error)"
            )
            pytest.fail(f"pytest-clinicdb: {dead}", pytrace=False)
    elif verdict is Verdict.COMMITTED:
        warnings.warn(
            pytest.PytestWarning(
                f"pytest-clinicdb: {nodeid} committed inside clinic_db "
                "(a COMMIT sent as SQL); its database was replaced by a fresh clone. "
                "Use clinic_db_fresh for code that commits."
            ),
            stacklevel=1,
        )
        worker.renew()


def _settle(config: pytest.Config, worker: WorkerDatabase) -> None:
    """Read the verdict of the worker's last test (its rollback was sent after it)."""
    if worker.pending is not None:
        nodeid, pending = worker.pending
        worker.pending = None
        _after(config, nodeid, worker, pending.collect())


def _rolled_back(
    request: pytest.FixtureRequest, worker: WorkerDatabase
) -> Iterator[psycopg.Connection[Any]]:
    import psycopg

    from .isolation import PendingFinish

    def start() -> TestConnection:
        _settle(request.config, worker)
        conn = worker.connection()
        conn.open_test_transaction()
        return conn

    conn = _setup(request.config, start, worker.template.server)
    role = _acting(request)
    try:
        if role is None:
            yield conn
        else:
            from .tenants import acting_as

            with _as_role(acting_as(conn, role[0], settings=role[1])):
                yield conn
    finally:
        try:
            started = conn.started()
        except psycopg.Error:
            started = None  # the connection broke: the verdict says so
        pending = PendingFinish(conn, started)
        if pending.known:  # a commit or a broken connection: said at this test's teardown
            _after(request.config, request.node.nodeid, worker, pending.collect())
        else:  # sent now, read before the worker's next test (or at the end of the session)
            worker.pending = (request.node.nodeid, pending)


@contextlib.contextmanager
def _as_role(block: Any) -> Iterator[None]:
    """Enter ``acting_as``; on the way out, an aborted or committed transaction is the verdict's
    business (reported after the test), not an error of its own."""
    import psycopg

    block.__enter__()
    try:
        yield
    finally:
        with contextlib.suppress(psycopg.Error):
            block.__exit__(None, None, None)


@pytest.fixture
def clinic_db(request: pytest.FixtureRequest) -> Iterator[psycopg.Connection[Any]]:
    """A psycopg 3 connection to the migrated, seeded database, rolled back after the test.

    The test runs inside one transaction on this worker's clone of the
    template, rolled back afterwards: everything it writes disappears, and the
    next test sees the template's contents again.  Use ``with
    clinic_db.transaction():`` (a savepoint) around statements you expect to
    fail.  ``clinic_db.commit()`` and ``clinic_db.rollback()`` are errors (they
    would end the test's transaction); a raw ``COMMIT`` sent as SQL is
    detected after the test, the worker's database is replaced by a fresh
    clone and a warning names the test.  For code that must commit, ``CREATE INDEX
    CONCURRENTLY`` or ``VACUUM``, use ``clinic_db_fresh``.

    With ``--clinicdb-dev-seed`` or ``@pytest.mark.clinicdb(dev_seed=True)`` the
    database also holds the DEV/TEST ONLY data of the dev seed (002).  With
    ``@pytest.mark.clinicdb(role="clinic_app", settings={"app.current_clinic_id": id})``
    the whole test runs as that role with those transaction-local settings, as
    the application does — the superuser the tests connect as bypasses
    row-level security, the application role does not.
    """
    yield from _rolled_back(request, _worker_of(request))


@pytest.fixture
def clinic_db_dev(
    request: pytest.FixtureRequest, _clinicdb_worker_dev: WorkerDatabase | SetupFailed
) -> Iterator[psycopg.Connection[Any]]:
    """Like ``clinic_db``, on a database that also holds the DEV/TEST ONLY data (seed 002).

    The dev seed is loaded once, into its own template cloned from the base
    one, by the dev-seed wrapper: one transaction with ``app.environment`` set
    to ``test``, the audit triggers of every audited table disabled (foreign
    keys stay enforced) and re-enabled, checked afterwards.  ``clinic_db`` in
    the same run never sees these rows.  If the dev seed fails, only the tests
    that need it error.
    """
    yield from _rolled_back(request, _require(request, _clinicdb_worker_dev))


@pytest.fixture
def clinic_dsn(request: pytest.FixtureRequest, clinic_postgres: ServerInfo) -> Iterator[str]:
    """A connection string to a fresh clone of the template, for this test only.

    For code that opens its own connections and commits: nothing it does is
    seen by other tests.  The database is dropped after the test.  With
    ``--clinicdb-dev-seed`` or ``@pytest.mark.clinicdb(dev_seed=True)`` the clone
    also holds the DEV/TEST ONLY data of the dev seed.  With
    ``--clinicdb-keep-failed`` the database of a failed test is kept and its DSN
    printed at the end of the run.
    """
    import psycopg

    template = _template_of(request)
    databases = context_of(request.config).databases(clinic_postgres)
    wanted = "clinic_db_fresh" in request.fixturenames  # it requests this fixture
    name = _setup(
        request.config, lambda: databases.fresh(template, connection=wanted), clinic_postgres
    )
    opened = databases.connection(template, name)
    if opened is not None:
        if wanted:
            request.node.stash[_OPENED] = opened
        else:  # alone on its clone, as on a new one
            from .connect import close_session

            close_session(opened, databases.admin())
    try:
        yield clinic_postgres.dsn_for(name)
    finally:
        unused = _take_opened(request.node)  # clinic_db_fresh was never set up
        if unused is not None:
            unused.close()
        try:
            if context_of(request.config).settings.keep_failed and _failed(request.node):
                databases.keep(name, request.node.nodeid)
            else:
                databases.release(template, name)
        except psycopg.Error as exc:
            warnings.warn(
                pytest.PytestWarning(f"pytest-clinicdb: could not drop {name}: {exc}"), stacklevel=1
            )


def _failed(item: pytest.Item) -> bool:
    reports = item.stash.get(PHASE_REPORTS_KEY, {})
    return any(rep.failed for rep in reports.values())


#: The connection that came with this test's recycled clone, for its clinic_db_fresh.
_OPENED = pytest.StashKey[Any]()


def _take_opened(node: pytest.Item) -> psycopg.Connection[Any] | None:
    """The test's recycled-clone connection, taken out of its stash (None if there is none)."""
    conn: psycopg.Connection[Any] | None = node.stash.get(_OPENED, None)
    if conn is not None:
        del node.stash[_OPENED]
    return conn


@pytest.fixture
def clinic_db_fresh(
    request: pytest.FixtureRequest, clinic_dsn: str
) -> Iterator[psycopg.Connection[Any]]:
    """A psycopg 3 connection to a fresh clone of the template, for this test only.

    Commits are allowed, and so are deferred constraints and several
    connections (``clinic_dsn`` is the same database).  The connection is not
    in autocommit mode, like any new psycopg connection: statements that cannot
    run in a transaction block (``VACUUM``, ``CREATE INDEX CONCURRENTLY``) need
    ``clinic_db_fresh.autocommit = True`` first.  The database is dropped after
    the test, or recycled; a recycled clone's connection is the session that
    checked it, opened while an earlier test ran, as ``psycopg.connect`` gives one.
    """
    from .connect import connect

    # A recycled clone comes with the session that proved it unchanged, opened while an
    # earlier test ran; a new clone is connected to now.
    conn = _take_opened(request.node)
    if conn is None or conn.closed or conn.broken:
        conn = connect(clinic_dsn)
    try:
        yield conn
    finally:
        conn.close()


# --------------------------------------------------------------------------- async


async def _rolled_back_async(
    request: pytest.FixtureRequest, worker: WorkerDatabase
) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    import psycopg

    from .connect import connect_async
    from .isolation import AsyncTestConnection, begin_async, finish_async

    dsn = worker.template.server.dsn_for(worker.name)
    conn = await connect_async(dsn, cls=AsyncTestConnection, autocommit=True)
    role = _acting(request)
    try:
        started = await begin_async(conn)
        try:
            if role is None:
                yield conn
            else:
                from .tenants import acting_as_async

                block = acting_as_async(conn, role[0], settings=role[1])
                await block.__aenter__()
                try:
                    yield conn
                finally:
                    with contextlib.suppress(psycopg.Error):
                        await block.__aexit__(None, None, None)
        finally:
            verdict = await finish_async(conn, started)
    finally:
        await conn.close()
    _after(request.config, request.node.nodeid, worker, verdict)


async def _clinic_db_async(
    request: pytest.FixtureRequest,
) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A psycopg 3 ``AsyncConnection`` with the isolation of ``clinic_db``.

    The test runs inside one transaction on this worker's clone of the
    template (its own connection, opened in the test's event loop), rolled
    back afterwards; ``commit()`` is refused, a raw ``COMMIT`` and a dead server
    are reported exactly as for ``clinic_db``.  The dev seed marker
    and option apply as for ``clinic_db``.  Needs pytest-asyncio
    (``pip install "pytest-clinicdb[async]"``); mark the test
    ``@pytest.mark.asyncio`` (or set ``asyncio_mode = auto``).
    """
    async for conn in _rolled_back_async(request, _worker_of(request)):
        yield conn


def _no_asyncio() -> None:
    pytest.fail(
        "pytest-clinicdb: clinic_db_async needs pytest-asyncio, which is not installed: "
        'pip install "pytest-clinicdb[async]" (or pytest-asyncio)',
        pytrace=False,
    )


def _pytest_asyncio() -> Any:
    # pytest-asyncio registers itself as a plugin when installed, so it is already imported
    # by the time this module loads: asking for it costs nothing.
    try:
        import pytest_asyncio
    except ImportError:
        return None
    return pytest_asyncio


_no_asyncio.__doc__ = _clinic_db_async.__doc__
if (_asyncio := _pytest_asyncio()) is not None:
    clinic_db_async = _asyncio.fixture(_clinic_db_async, name="clinic_db_async")
else:
    clinic_db_async = pytest.fixture(_no_asyncio, name="clinic_db_async")
