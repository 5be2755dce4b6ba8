"""Inbound webhooks from providers (``webhook.inbound_events``, migration 015)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

# Payment provider events this application acts on, and the payment status each one sets.
PAYMENT_EVENTS = {"payment.succeeded": "succeeded", "payment.failed": "failed"}


def handle_inbound_webhook(
    conn: psycopg.Connection[Any], *, provider: str, event_id: str, payload: Mapping[str, Any]
) -> bool:
    """Store a provider's event once and act on it; return False for a redelivery.

    Idempotent on ``(provider, event_id)`` — the unique constraint
    ``inbound_events_provider_idempotency_key``: a second delivery of the same
    event (even concurrently, from another connection) inserts nothing, changes
    nothing and returns False.

    ``payload["type"]`` is the event type.  For ``payment.succeeded`` and
    ``payment.failed``, the pending payment whose ``provider_reference`` is
    ``payload["data"]["reference"]`` is updated and the event marked processed.
    If there is no such payment, ``processing_error`` says so and the event
    stays unprocessed (``processed_at IS NULL``), as do events of other types,
    for a worker to look at.

    Runs as the webhook worker role ``clinic_webhook_worker`` (migration 018):
    the webhook tables belong to no clinic and ``clinic_app`` has no access to
    them.  The worker sees only the payments that carry a provider reference,
    of every clinic (an event names no clinic), and may change only their
    ``status`` and ``paid_at``.
    """
    event_type = str(payload.get("type") or "unknown")
    row = conn.execute(
        "INSERT INTO webhook.inbound_events (provider, idempotency_key, event_type, payload)"
        " VALUES (%s, %s, %s, %s)"
        " ON CONFLICT ON CONSTRAINT inbound_events_provider_idempotency_key DO NOTHING"
        " RETURNING id",
        (provider, event_id, event_type, Jsonb(dict(payload))),
    ).fetchone()
    if row is None:
        return False
    event_pk = row[0]

    new_status = PAYMENT_EVENTS.get(event_type)
    if new_status is not None:
        data = payload.get("data")
        reference = data.get("reference") if isinstance(data, Mapping) else None
        # Two statements rather than "paid_at = CASE ... ELSE paid_at END": the worker may
        # write paid_at but not read it.
        settle = (
            "UPDATE clinic.payments SET status = 'succeeded', paid_at = now()"
            if new_status == "succeeded"
            else "UPDATE clinic.payments SET status = 'failed'"
        )
        updated = conn.execute(
            settle + " WHERE provider = %s AND provider_reference = %s AND status = 'pending'"
            " RETURNING id",
            (provider, reference),
        ).fetchone()
        if updated is None:
            conn.execute(
                "UPDATE webhook.inbound_events SET processing_error = %s WHERE id = %s",
                (f"no pending {provider} payment with reference {reference!r}", event_pk),
            )
        else:
            conn.execute(
                "UPDATE webhook.inbound_events SET processed_at = now() WHERE id = %s",
                (event_pk,),
            )
    return True
