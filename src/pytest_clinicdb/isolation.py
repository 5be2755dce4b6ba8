"""How ``clinic_db`` tells a clean test from one that committed — one state machine, two drivers.

A test on ``clinic_db`` runs inside ``transaction(force_rollback=True)``.
``commit()`` is refused by psycopg, but a ``COMMIT`` sent as SQL is not: the
rows leak to every later test of the worker.  The transaction's start time
(``now()``) gives it away: it only changes if the transaction was committed
and a new one began.  :func:`rollback_protocol` is that decision, written once
without I/O: it *yields* what it needs done (run a query, close the
transaction block) and *receives* the result, so the sync fixture and the async
one drive the very same logic (psycopg's own generators are the model).
"""

from __future__ import annotations

import enum
from collections.abc import Generator
from typing import Any

#: The transaction's start time: changes only if the test's transaction was committed.
STARTED = "SELECT extract(epoch FROM now())"


class Verdict(enum.Enum):
    CLEAN = "clean"  # rolled back; the next test sees the template's contents
    COMMITTED = "committed"  # the test committed: its rows stay in the worker's database
    BROKEN = "broken"  # the connection is gone (a killed backend, a dead server)


class Query:
    """A step: run ``sql`` and send back its first row."""

    def __init__(self, sql: str) -> None:
        self.sql = sql


class Exit:
    """A step: leave the ``force_rollback`` transaction block (rolls back)."""


Step = Query | Exit


def rollback_protocol(conn: Any, started: Any) -> Generator[Step, Any, Verdict]:
    """Finish a ``clinic_db`` test on ``conn`` whose transaction started at ``started``.

    Driver errors (``psycopg.Error``) are thrown into the generator.
    """
    from psycopg import Error
    from psycopg.pq import TransactionStatus

    leaked = False
    try:
        if not conn.closed and not conn.broken:
            status = conn.info.transaction_status
            if status == TransactionStatus.INTRANS:
                leaked = (yield Query(STARTED)) != started
            elif status == TransactionStatus.IDLE:
                leaked = True  # committed, and nothing ran since
        yield Exit()
    except Error:
        leaked = leaked or conn.info.transaction_status == TransactionStatus.IDLE
    if conn.closed or conn.broken:
        return Verdict.BROKEN  # a broken connection rolled back; the next test reconnects
    return Verdict.COMMITTED if leaked else Verdict.CLEAN


def finish(conn: Any, transaction: Any, started: Any) -> Verdict:
    """The sync driver of :func:`rollback_protocol`."""
    from psycopg import Error

    gen = rollback_protocol(conn, started)
    answer: Any = None
    error: Error | None = None
    while True:
        try:
            step = gen.send(answer) if error is None else gen.throw(error)
        except StopIteration as stop:
            verdict: Verdict = stop.value
            return verdict
        answer, error = None, None
        try:
            if isinstance(step, Query):
                answer = conn.execute(step.sql).fetchone()
            else:
                transaction.__exit__(None, None, None)
        except Error as exc:
            error = exc


async def finish_async(conn: Any, transaction: Any, started: Any) -> Verdict:
    """The async driver of :func:`rollback_protocol`."""
    from psycopg import Error

    gen = rollback_protocol(conn, started)
    answer: Any = None
    error: Error | None = None
    while True:
        try:
            step = gen.send(answer) if error is None else gen.throw(error)
        except StopIteration as stop:
            verdict: Verdict = stop.value
            return verdict
        answer, error = None, None
        try:
            if isinstance(step, Query):
                answer = await (await conn.execute(step.sql)).fetchone()
            else:
                await transaction.__aexit__(None, None, None)
        except Error as exc:
            error = exc
