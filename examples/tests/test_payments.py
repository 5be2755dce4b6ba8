"""Recording payments: paid_at, the provider reference, the audit trail."""

from __future__ import annotations

from decimal import Decimal

import pytest
from clinic_app import DuplicatePayment, acting_as, record_payment

from pytest_clinicdb import assert_audited


def test_cash_at_the_desk_is_recorded_as_paid_and_audited(
    clinic_db, clinic, make_patient, audit_trail
):
    patient_id = make_patient(clinic_db, clinic)
    with acting_as(clinic_db, user_id=clinic.staff_user_id, clinic_id=clinic.id):
        payment_id = record_payment(
            clinic_db,
            clinic_id=clinic.id,
            patient_id=patient_id,
            amount=Decimal("45.50"),
            currency="EUR",
            method="cash",
            status="succeeded",
        )

    row = clinic_db.execute(
        "SELECT amount, currency, status::text, paid_at = now() FROM clinic.payments WHERE id = %s",
        (payment_id,),
    ).fetchone()
    assert row == (Decimal("45.50"), "EUR", "succeeded", True)
    assert_audited(clinic_db, "clinic.payments", payment_id, "INSERT")
    assert [actor for _, actor, _ in audit_trail(clinic_db, "clinic.payments", payment_id)] == [
        str(clinic.staff_user_id)
    ]


def test_a_provider_reference_is_recorded_once(clinic_db, clinic, make_patient):
    patient_id = make_patient(clinic_db, clinic)
    card = dict(
        clinic_id=clinic.id,
        patient_id=patient_id,
        amount=Decimal("20.00"),
        currency="EUR",
        method="card",
        provider="stripe",
        provider_reference="pi_123",
    )
    record_payment(clinic_db, **card)
    with pytest.raises(DuplicatePayment), clinic_db.transaction():
        record_payment(clinic_db, **card)
    # Payments without a provider reference (cash) never collide: NULLs are distinct.
    for _ in range(2):
        record_payment(
            clinic_db, **{**card, "method": "cash", "provider": None, "provider_reference": None}
        )

    by_method = clinic_db.execute(
        "SELECT method::text, count(*) FROM clinic.payments GROUP BY method ORDER BY method"
    ).fetchall()
    assert by_method == [("card", 1), ("cash", 2)]
