"""Who is acting, for which clinic: the two settings the database reads.

* ``app.current_user_id`` becomes ``actor_id`` of every audit row
  (``audit.log_change()``, migration 013);
* ``app.current_clinic_id`` is the clinic that row-level security lets a
  ``clinic_app`` session see and write (``clinic.current_clinic_id()``,
  migration 017).

Both are set with ``set_config(name, value, true)``: local to the current
transaction, gone at COMMIT or ROLLBACK, so a pooled connection never carries
one request's identity into the next.  An empty value means "unset" to both.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import psycopg
from psycopg.pq import TransactionStatus

USER_SETTING = "app.current_user_id"
CLINIC_SETTING = "app.current_clinic_id"


def _text(value: UUID | None) -> str:
    return "" if value is None else str(value)


def _set(conn: psycopg.Connection[Any], user: str, clinic: str) -> None:
    conn.execute(
        "SELECT set_config(%s, %s, true), set_config(%s, %s, true)",
        (USER_SETTING, user, CLINIC_SETTING, clinic),
    )


def set_request_context(
    conn: psycopg.Connection[Any], *, user_id: UUID | None, clinic_id: UUID | None
) -> None:
    """Set the acting user and clinic for the rest of the current transaction.

    ``None`` clears a setting (an empty string, which the database treats as
    unset).  The connection must not be in autocommit mode: a transaction-local
    setting would vanish with the single statement that set it.
    """
    if conn.autocommit:
        raise ValueError("set_request_context needs a transaction: the connection is autocommit")
    _set(conn, _text(user_id), _text(clinic_id))


@contextmanager
def acting_as(
    conn: psycopg.Connection[Any], *, user_id: UUID | None, clinic_id: UUID | None
) -> Iterator[psycopg.Connection[Any]]:
    """Within the block, act as ``user_id`` for ``clinic_id``; then restore the previous values.

    Neither opens nor ends a transaction.  If the block fails and leaves the
    transaction in error, nothing is restored: the rollback the caller owes
    discards the settings anyway.
    """
    previous = conn.execute(
        "SELECT coalesce(current_setting(%s, true), ''), coalesce(current_setting(%s, true), '')",
        (USER_SETTING, CLINIC_SETTING),
    ).fetchone()
    assert previous is not None
    set_request_context(conn, user_id=user_id, clinic_id=clinic_id)
    try:
        yield conn
    finally:
        if conn.info.transaction_status == TransactionStatus.INTRANS:
            _set(conn, previous[0], previous[1])
