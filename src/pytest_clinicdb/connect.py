"""Connecting to a server the plugin shares with others: waiting for a free connection slot.

A server has ``max_connections`` slots (and a role may have a ``CONNECTION
LIMIT``).  When CI runners share one server, a run may find none free: it
waits, with growing pauses, up to ``--clinicdb-connection-wait`` seconds, and
then stops with one message that says so — never a raw "too many clients".
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import ConnectionBudgetError

if TYPE_CHECKING:
    import psycopg

#: Seconds a run waits for a connection slot (``--clinicdb-connection-wait``).
CONNECTION_WAIT = 30.0
#: How long a drop (or a closed session's next user) waits for the backends of closed
#: connections to leave.
DROP_WAIT = 5.0


def set_wait(seconds: float) -> None:
    """The process's wait for a slot (set once, from the settings)."""
    global CONNECTION_WAIT
    CONNECTION_WAIT = seconds


#: SQLSTATE 53300: too_many_connections (the server's max_connections or the role's limit).
TOO_MANY = "53300"

C = TypeVar("C")


def _budget_error(dsn: str, exc: Exception, waited: float) -> ConnectionBudgetError:
    from .server import mask_dsn

    return ConnectionBudgetError(
        f"the server {mask_dsn(dsn)} has no connection slot left for this run (waited "
        f"{waited:.0f} s): {str(exc).strip()}",
        hint="run fewer xdist workers (-n), raise the server's max_connections (or the role's "
        "CONNECTION LIMIT), or wait for the other runs; --clinicdb-connection-wait sets the wait",
    )


def connect(dsn: str, *, cls: Any = None, wait: float | None = None, **kwargs: Any) -> Any:
    """``(cls or psycopg.Connection).connect(dsn, **kwargs)``, waiting for a free slot."""
    import psycopg

    factory = cls or psycopg.Connection
    wait = CONNECTION_WAIT if wait is None else wait
    started = time.monotonic()
    pause = 0.05
    while True:
        try:
            return factory.connect(dsn, **kwargs)
        except psycopg.OperationalError as exc:
            if getattr(exc, "sqlstate", None) != TOO_MANY and "too many" not in str(exc):
                raise
            waited = time.monotonic() - started
            if waited >= wait:
                raise _budget_error(dsn, exc, waited) from None
            time.sleep(min(pause, max(wait - waited, 0.0)))
            pause = min(pause * 2, 1.0)


def wait_for_no_sessions(
    admin: psycopg.Connection[Any], name: str, wait: float = DROP_WAIT
) -> bool:
    """Wait (briefly) for the backends of closed connections to database ``name`` to leave;
    True if they did."""
    deadline = time.monotonic() + wait
    while True:
        busy = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)
        ).fetchone()
        if not busy or not busy[0]:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.002)


def close_session(
    conn: psycopg.Connection[Any], admin: psycopg.Connection[Any], wait: float = DROP_WAIT
) -> None:
    """Close ``conn``, the only session on its database, and wait (briefly) for its backend to
    leave: the next test that gets the database is then alone on it, as on a new clone."""
    import psycopg

    name = conn.info.dbname
    conn.close()
    with contextlib.suppress(psycopg.Error):
        wait_for_no_sessions(admin, name, wait)


async def connect_async(
    dsn: str, *, cls: Any = None, wait: float | None = None, **kwargs: Any
) -> Any:
    """:func:`connect` for ``psycopg.AsyncConnection``."""
    import asyncio

    import psycopg

    factory = cls or psycopg.AsyncConnection
    wait = CONNECTION_WAIT if wait is None else wait
    started = time.monotonic()
    pause = 0.05
    while True:
        try:
            return await factory.connect(dsn, **kwargs)
        except psycopg.OperationalError as exc:
            if getattr(exc, "sqlstate", None) != TOO_MANY and "too many" not in str(exc):
                raise
            waited = time.monotonic() - started
            if waited >= wait:
                raise _budget_error(dsn, exc, waited) from None
            await asyncio.sleep(min(pause, max(wait - waited, 0.0)))
            pause = min(pause * 2, 1.0)
