"""How ``clinic_db`` isolates a test and tells a clean test from one that committed.

Each test runs in one server transaction that is rolled back afterwards.  The
worker's connection is a :class:`TestConnection`: in autocommit mode as far as
psycopg's internals go (psycopg adds no ``BEGIN`` of its own), while its
``autocommit`` reads ``False`` for the test (its statements do run inside a
transaction) and cannot be changed; ``commit()`` and ``rollback()`` are
refused, since they would end the test's transaction.  The
transaction itself is two round trips per test, each one simple-protocol
message: ``BEGIN; SELECT <start time>`` before the test, and ``SELECT <start
time>; ROLLBACK`` after it.  ``with conn.transaction():`` inside a test is a
savepoint, as before.

A ``COMMIT`` sent as SQL ends the transaction early and the rows leak to every
later test of the worker.  The transaction's start time (``now()``) gives it
away: it only changes if the transaction was committed and a new one began.
:func:`rollback_protocol` is that decision, written once without I/O: it
*yields* what it needs done and *receives* the result, so the sync fixture and
the async one drive the very same logic (psycopg's own generators are the model).
"""

from __future__ import annotations

import enum
from collections.abc import Generator
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

#: The transaction's start time: changes only if the test's transaction was committed.
STARTED = "SELECT extract(epoch FROM now())"
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


class TestConnection(psycopg.Connection[Any]):
    """The worker's connection: the test's transaction belongs to the fixture."""

    __test__ = False  # not a test class, whatever pytest's name rules say
    autocommit = property(_not_autocommit, _refuse_autocommit)

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
            cursor = conn.execute(step.sql)
            answer = cursor.fetchone() if cursor.description else None
        except psycopg.Error as exc:
            error = exc


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
