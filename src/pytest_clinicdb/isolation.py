"""How ``clinic_db`` isolates a test and tells a clean test from one that committed.

Each test runs in one server transaction that is rolled back afterwards.  The
worker's connection is a :class:`TestConnection`: in autocommit mode as far as
psycopg's internals go (psycopg adds no ``BEGIN`` of its own), while its
``autocommit`` reads ``False`` for the test (its statements do run inside a
transaction) and cannot be changed; ``commit()`` and ``rollback()`` are
refused, since they would end the test's transaction.  ``with
conn.transaction():`` inside a test is a savepoint, as before.

The transaction costs two simple-protocol messages per test, and in the
steady state no wait for either: ``BEGIN; SELECT <start time>`` is *sent*
when the test is set up and its answer read at the test's first use of the
connection (:meth:`TestConnection.open_test_transaction`), by when it has
arrived; ``SELECT <start time>; ROLLBACK`` is sent after the test and read
before the worker's next one (:class:`PendingFinish`).  ``now()`` is still
the test's own start: the ``BEGIN`` goes out when the test is set up.

A ``COMMIT`` sent as SQL ends the transaction early and the rows leak to every
later test of the worker.  The transaction's start time (``now()``) gives it
away: it only changes if the transaction was committed and a new one began.
:func:`rollback_protocol` is that decision, written once without I/O: it
*yields* what it needs done and *receives* the result, so the sync fixture and
the async one drive the very same logic (psycopg's own generators are the model).
"""

from __future__ import annotations

import enum
import select
from collections.abc import Generator
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

#: The transaction's start time: changes only if the test's transaction was committed.
STARTED = "SELECT extract(epoch FROM now())::text"
BEGIN = f"BEGIN; {STARTED}"
CHECK_AND_ROLLBACK = f"{STARTED}; ROLLBACK"
ROLLBACK = "ROLLBACK"

_REFUSED = (
    "{what}() is not allowed on clinic_db: the test's transaction is rolled back after the test "
    "(use with conn.transaction(): for a savepoint, or clinic_db_fresh for code that commits)"
)


_NO_AUTOCOMMIT = (
    "can't change 'autocommit' on clinic_db: the test runs inside the fixture's transaction "
    "(use clinic_db_fresh for code that needs autocommit)"
)


def _not_autocommit(self: Any) -> bool:
    # What the test sees: its statements run inside a transaction, never autocommitted.
    # (psycopg itself reads _autocommit, which is on: it must not add a BEGIN of its own.)
    return False


def _refuse_autocommit(self: Any, value: bool) -> None:
    raise psycopg.ProgrammingError(_NO_AUTOCOMMIT)


#: psycopg's two doors to the server (every query, every command goes through one of
#: them; in psycopg since 3.0): a ``BEGIN`` sent ahead is read there, before anything else.
_DOORS = ("_start_query", "_exec_command")
LAZY_BEGIN = all(hasattr(psycopg.Connection, door) for door in _DOORS)


class TestConnection(psycopg.Connection[Any]):
    """The worker's connection: the test's transaction belongs to the fixture.

    The fixture may *send* the test's ``BEGIN`` without waiting for it
    (:meth:`open_test_transaction`); its answer is read as soon as anything else is about
    to use the connection — the test's first query, ``info``, ``pipeline()`` —
    so the test never sees it in flight.
    """

    __test__ = False  # not a test class, whatever pytest's name rules say
    autocommit = property(_not_autocommit, _refuse_autocommit)
    _begin: InFlight | None = None
    _started: Any = None

    def open_test_transaction(self) -> None:
        """Begin the test's transaction: sent ahead and read later where psycopg allows it."""
        self._started = None
        if LAZY_BEGIN:
            self._begin = InFlight(self, BEGIN)
        else:
            self._started = begin(self)

    def started(self) -> Any:
        """The transaction's start time (reading the ``BEGIN`` sent ahead, if it is still out)."""
        begin, self._begin = self._begin, None
        if begin is not None:
            try:
                self._started = begin.first_row()
            except psycopg.Error as exc:
                raise psycopg.OperationalError(
                    f"pytest-clinicdb could not begin the test's transaction: {exc}"
                ) from exc
        return self._started

    def _start_query(self) -> Any:
        self.started()
        return super()._start_query()

    def _exec_command(self, *args: Any, **kwargs: Any) -> Any:
        self.started()
        return super()._exec_command(*args, **kwargs)

    @property
    def info(self) -> Any:
        self.started()
        return super().info

    def pipeline(self) -> Any:
        self.started()
        return super().pipeline()

    def fileno(self) -> int:
        self.started()
        return super().fileno()

    def close(self) -> None:
        self._begin = None
        super().close()

    def commit(self) -> None:
        raise psycopg.ProgrammingError(_REFUSED.format(what="commit"))

    def rollback(self) -> None:
        raise psycopg.ProgrammingError(_REFUSED.format(what="rollback"))

    def set_autocommit(self, value: bool) -> None:
        _refuse_autocommit(self, value)


class AsyncTestConnection(psycopg.AsyncConnection[Any]):
    """:class:`TestConnection` for ``clinic_db_async``."""

    __test__ = False
    autocommit = property(_not_autocommit, _refuse_autocommit)

    async def commit(self) -> None:
        raise psycopg.ProgrammingError(_REFUSED.format(what="commit"))

    async def rollback(self) -> None:
        raise psycopg.ProgrammingError(_REFUSED.format(what="rollback"))

    async def set_autocommit(self, value: bool) -> None:
        _refuse_autocommit(self, value)


class Verdict(enum.Enum):
    CLEAN = "clean"  # rolled back; the next test sees the template's contents
    COMMITTED = "committed"  # the test committed: its rows stay in the worker's database
    BROKEN = "broken"  # the connection is gone (a killed backend, a dead server)


class Query:
    """A step: run ``sql`` (one message, maybe several statements), send back the first row."""

    def __init__(self, sql: str) -> None:
        self.sql = sql


def rollback_protocol(conn: Any, started: Any) -> Generator[Query, Any, Verdict]:
    """Finish a ``clinic_db`` test on ``conn`` whose transaction started at ``started``.

    Driver errors (``psycopg.Error``) are thrown into the generator.
    """
    leaked = False
    try:
        status = None if conn.closed or conn.broken else conn.info.transaction_status
        if status == TransactionStatus.INTRANS:
            leaked = (yield Query(CHECK_AND_ROLLBACK)) != started
        elif status == TransactionStatus.INERROR:
            yield Query(ROLLBACK)  # an error without a savepoint: nothing was committed
        else:
            leaked = status == TransactionStatus.IDLE  # committed, and nothing ran since
    except psycopg.Error:
        leaked = leaked or conn.info.transaction_status == TransactionStatus.IDLE
    if conn.closed or conn.broken:
        return Verdict.BROKEN  # a broken connection rolled back; the next test reconnects
    return Verdict.COMMITTED if leaked else Verdict.CLEAN


def begin(conn: psycopg.Connection[Any]) -> Any:
    """Open the test's transaction and read its start time: one round trip."""
    cursor = conn.execute(BEGIN)
    cursor.nextset()
    return cursor.fetchone()


def finish(conn: psycopg.Connection[Any], started: Any) -> Verdict:
    """The sync driver of :func:`rollback_protocol`."""
    return _drive(conn, rollback_protocol(conn, started), None, None)


def _drive(
    conn: psycopg.Connection[Any],
    gen: Generator[Query, Any, Verdict],
    answer: Any,
    error: psycopg.Error | None,
) -> Verdict:
    while True:
        try:
            step = gen.send(answer) if error is None else gen.throw(error)
        except StopIteration as stop:
            verdict: Verdict = stop.value
            return verdict
        answer, error = None, None
        try:
            cursor = conn.execute(step.sql)
            answer = cursor.fetchone() if cursor.description else None
        except psycopg.Error as exc:
            error = exc


class InFlight:
    """One simple-protocol message sent on ``conn`` and not yet read (public libpq layer only).

    Its results must be read (:meth:`first_row`) before psycopg sends anything
    else on the connection.
    """

    def __init__(self, conn: psycopg.Connection[Any], sql: str) -> None:
        self.pgconn = conn.pgconn
        self.error: psycopg.Error | None = None
        try:
            self.pgconn.send_query(sql.encode())
            while self.pgconn.flush():
                select.select([], [self.pgconn.socket], [], 1.0)
        except psycopg.Error as exc:
            self.error = exc

    def first_row(self) -> tuple[str | None, ...] | None:
        """Read every result (waiting if need be); the first row of the first with rows."""
        if self.error is not None:
            raise self.error
        return _first_row(self.pgconn)


class PendingFinish:
    """The end of a test's transaction: sent, its answer read later by :meth:`collect`.

    Only the public libpq layer is used (``conn.pgconn``): the message is sent
    as psycopg would send it, and its results are read before psycopg sends
    anything else on the connection.
    """

    def __init__(self, conn: psycopg.Connection[Any], started: Any) -> None:
        self.conn = conn
        self._gen = rollback_protocol(conn, started)
        self._verdict: Verdict | None = None
        try:
            step = next(self._gen)
        except StopIteration as stop:  # nothing to send (committed, closed, broken)
            self._verdict = stop.value
            return
        self._sent = InFlight(conn, step.sql)

    @property
    def known(self) -> bool:
        """The verdict needed nothing from the server (a commit seen, a broken connection)."""
        return self._verdict is not None

    def collect(self) -> Verdict:
        """Read the answer (waiting for it if it has not arrived) and give the verdict."""
        if self._verdict is not None:
            return self._verdict
        answer: Any = None
        error: psycopg.Error | None = None
        try:
            answer = self._sent.first_row()
        except psycopg.Error as exc:
            error = exc
        self._verdict = _drive(self.conn, self._gen, answer, error)
        return self._verdict


def _first_row(pgconn: Any) -> tuple[str | None, ...] | None:
    """Read every result of the query in flight; the first row of the first that has rows."""
    from psycopg.pq import ExecStatus

    row: tuple[str | None, ...] | None = None
    failure: str | None = None
    while True:
        while pgconn.is_busy():
            select.select([pgconn.socket], [], [], 1.0)
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is None:
            break
        if result.status == ExecStatus.FATAL_ERROR and failure is None:
            failure = (result.error_message or b"").decode(errors="replace").strip()
        elif result.status == ExecStatus.TUPLES_OK and row is None and result.ntuples:
            row = tuple(
                None if (v := result.get_value(0, i)) is None else bytes(v).decode()
                for i in range(result.nfields)
            )
    if pgconn.status != psycopg.pq.ConnStatus.OK:
        raise psycopg.OperationalError(failure or "the connection was lost")
    if failure is not None:
        raise psycopg.DatabaseError(failure)
    return row


async def begin_async(conn: psycopg.AsyncConnection[Any]) -> Any:
    """:func:`begin` for an ``AsyncConnection``."""
    cursor = await conn.execute(BEGIN)
    cursor.nextset()
    return await cursor.fetchone()


async def finish_async(conn: psycopg.AsyncConnection[Any], started: Any) -> Verdict:
    """The async driver of :func:`rollback_protocol`."""
    gen = rollback_protocol(conn, started)
    answer: Any = None
    error: psycopg.Error | None = None
    while True:
        try:
            step = gen.send(answer) if error is None else gen.throw(error)
        except StopIteration as stop:
            verdict: Verdict = stop.value
            return verdict
        answer, error = None, None
        try:
            cursor = await conn.execute(step.sql)
            answer = await cursor.fetchone() if cursor.description else None
        except psycopg.Error as exc:
            error = exc
