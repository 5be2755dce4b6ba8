"""Recording payments (``clinic.payments``, migration 009)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

import psycopg

from .errors import DuplicatePayment

PaymentMethod = Literal["card", "cash", "insurance", "bank_transfer"]
PaymentStatus = Literal["pending", "succeeded", "failed"]


def record_payment(
    conn: psycopg.Connection[Any],
    *,
    clinic_id: UUID,
    patient_id: UUID,
    amount: Decimal,
    currency: str,
    method: PaymentMethod,
    appointment_id: UUID | None = None,
    provider: str | None = None,
    provider_reference: str | None = None,
    status: PaymentStatus = "pending",
) -> UUID:
    """Record a payment and return its id.

    A payment recorded as ``succeeded`` (cash at the desk, say) is stamped
    ``paid_at = now()``; a ``pending`` one gets it when the provider confirms
    (see :func:`clinic_app.handle_inbound_webhook`).  The database refuses a
    non-positive amount, a currency that is not ISO 4217 upper case, and a
    patient or appointment of another clinic.

    Raises :class:`DuplicatePayment` when ``(provider, provider_reference)``
    was already recorded.
    """
    try:
        row = conn.execute(
            "INSERT INTO clinic.payments (clinic_id, patient_id, appointment_id, amount, currency,"
            " status, method, provider, provider_reference, paid_at)"
            " VALUES (%(clinic)s, %(patient)s, %(appointment)s, %(amount)s, %(currency)s,"
            " %(status)s, %(method)s, %(provider)s, %(reference)s,"
            " CASE WHEN %(status)s::clinic.payment_status = 'succeeded' THEN now() END)"
            " RETURNING id",
            {
                "clinic": clinic_id,
                "patient": patient_id,
                "appointment": appointment_id,
                "amount": amount,
                "currency": currency,
                "status": status,
                "method": method,
                "provider": provider,
                "reference": provider_reference,
            },
        ).fetchone()
    except psycopg.errors.UniqueViolation as exc:
        if exc.diag.constraint_name == "payments_provider_reference_key":
            raise DuplicatePayment(
                f"{provider} payment {provider_reference!r} is already recorded"
            ) from exc
        raise
    assert row is not None
    payment_id: UUID = row[0]
    return payment_id
