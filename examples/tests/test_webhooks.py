"""Inbound webhooks: stored once per (provider, event id), acted on once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import psycopg
import pytest
from clinic_app import handle_inbound_webhook, record_payment
from psycopg import sql

from pytest_clinicdb.tenants import acting_as

SUCCEEDED = {"type": "payment.succeeded", "data": {"reference": "pi_777"}}


@pytest.fixture
def pending_card_payment(clinic_db, clinic, make_patient):
    patient_id = make_patient(clinic_db, clinic)
    return record_payment(
        clinic_db,
        clinic_id=clinic.id,
        patient_id=patient_id,
        amount=Decimal("80.00"),
        currency="EUR",
        method="card",
        provider="stripe",
        provider_reference="pi_777",
    )


def snapshot(conn):
    """Everything a webhook delivery may touch, to compare before and after."""
    return (
        conn.execute("SELECT * FROM webhook.inbound_events ORDER BY id").fetchall(),
        conn.execute("SELECT * FROM clinic.payments ORDER BY id").fetchall(),
        conn.execute("SELECT count(*) FROM audit.audit_logs").fetchone()[0],
    )


def test_payment_succeeded_event_marks_the_payment_paid(clinic_db, pending_card_payment):
    assert handle_inbound_webhook(clinic_db, provider="stripe", event_id="evt_1", payload=SUCCEEDED)

    payment = clinic_db.execute(
        "SELECT status::text, paid_at IS NOT NULL FROM clinic.payments WHERE id = %s",
        (pending_card_payment,),
    ).fetchone()
    assert payment == ("succeeded", True)
    event = clinic_db.execute(
        "SELECT event_type, payload, processed_at IS NOT NULL, processing_error"
        " FROM webhook.inbound_events WHERE provider = 'stripe' AND idempotency_key = 'evt_1'"
    ).fetchone()
    assert event == ("payment.succeeded", SUCCEEDED, True, None)
    changed = clinic_db.execute(
        "SELECT changed_fields FROM audit.audit_logs"
        " WHERE table_name = 'payments' AND record_id = %s AND action = 'UPDATE'",
        (str(pending_card_payment),),
    ).fetchall()
    assert changed == [(["paid_at", "status"],)]


def test_a_redelivered_event_returns_false_and_changes_nothing(clinic_db, pending_card_payment):
    assert handle_inbound_webhook(clinic_db, provider="stripe", event_id="evt_1", payload=SUCCEEDED)
    before = snapshot(clinic_db)

    redelivered = {**SUCCEEDED, "delivery_attempt": 2}
    assert not handle_inbound_webhook(
        clinic_db, provider="stripe", event_id="evt_1", payload=redelivered
    )
    assert snapshot(clinic_db) == before


def test_the_same_event_id_from_another_provider_is_another_event(clinic_db):
    sms = {"type": "sms.delivered", "data": {"message": "m-1"}}
    assert handle_inbound_webhook(clinic_db, provider="stripe", event_id="evt_9", payload=sms)
    assert handle_inbound_webhook(clinic_db, provider="sms_gateway", event_id="evt_9", payload=sms)
    rows = clinic_db.execute(
        "SELECT provider, processed_at FROM webhook.inbound_events"
        " WHERE idempotency_key = 'evt_9' ORDER BY provider"
    ).fetchall()
    # Stored for a worker: this service does not act on SMS events.
    assert rows == [("sms_gateway", None), ("stripe", None)]


def test_an_event_without_a_pending_payment_is_kept_unprocessed_with_the_reason(
    clinic_db, pending_card_payment
):
    assert handle_inbound_webhook(clinic_db, provider="stripe", event_id="evt_1", payload=SUCCEEDED)
    late_failure = {"type": "payment.failed", "data": {"reference": "pi_777"}}
    unknown = {"type": "payment.failed", "data": {"reference": "pi_missing"}}
    assert handle_inbound_webhook(
        clinic_db, provider="stripe", event_id="evt_2", payload=late_failure
    )
    assert handle_inbound_webhook(clinic_db, provider="stripe", event_id="evt_3", payload=unknown)

    # An out-of-order failure does not undo a settled payment.
    status = clinic_db.execute(
        "SELECT status::text FROM clinic.payments WHERE id = %s", (pending_card_payment,)
    ).fetchone()[0]
    assert status == "succeeded"
    rows = clinic_db.execute(
        "SELECT idempotency_key, processed_at, processing_error FROM webhook.inbound_events"
        " WHERE idempotency_key IN ('evt_2', 'evt_3') ORDER BY idempotency_key"
    ).fetchall()
    assert rows == [
        ("evt_2", None, "no pending stripe payment with reference 'pi_777'"),
        ("evt_3", None, "no pending stripe payment with reference 'pi_missing'"),
    ]


def test_the_webhook_worker_settles_the_payment_whatever_its_clinic(
    clinic_db, pending_card_payment
):
    # Production runs the handler as clinic_webhook_worker (migration 018), with no clinic set.
    member = clinic_db.execute(
        "SELECT rolsuper OR pg_has_role(current_user, 'clinic_webhook_worker', 'MEMBER')"
        " FROM pg_roles WHERE rolname = current_user"
    ).fetchone()[0]
    if not member:
        pytest.skip("this test's database role may not SET ROLE clinic_webhook_worker")
    with acting_as(clinic_db, "clinic_webhook_worker"):
        assert handle_inbound_webhook(
            clinic_db, provider="stripe", event_id="evt_w", payload=SUCCEEDED
        )
    payment = clinic_db.execute(
        "SELECT status::text, paid_at IS NOT NULL FROM clinic.payments WHERE id = %s",
        (pending_card_payment,),
    ).fetchone()
    assert payment == ("succeeded", True)
    audited = clinic_db.execute(
        "SELECT db_role FROM audit.audit_logs WHERE record_id = %s AND action = 'UPDATE'",
        (str(pending_card_payment),),
    ).fetchall()
    assert audited == [("clinic_webhook_worker",)]


def test_clinic_sessions_cannot_read_the_webhook_queues(clinic_db, clinic, as_clinic_app):
    assert handle_inbound_webhook(clinic_db, provider="stripe", event_id="evt_x", payload=SUCCEEDED)
    with as_clinic_app(clinic_db, **{"app.current_clinic_id": clinic.id}):
        for table in ("webhook.inbound_events", "webhook.outbound_deliveries"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), clinic_db.transaction():
                clinic_db.execute(
                    sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(*table.split(".")))
                )


def test_concurrent_deliveries_of_one_event_are_stored_once(
    clinic_db_fresh, clinic_dsn, wait_until_blocked
):
    payload = {"type": "sms.delivered", "data": {"message": "m-2"}}

    def deliver(conn):
        return handle_inbound_webhook(
            conn, provider="sms_gateway", event_id="evt_3", payload=payload
        )

    with psycopg.connect(clinic_dsn) as first, psycopg.connect(clinic_dsn) as second:
        assert deliver(first)  # not committed yet
        with ThreadPoolExecutor(max_workers=1) as pool:
            outcome = pool.submit(deliver, second)
            # The second INSERT waits on the first's uncommitted unique key...
            wait_until_blocked(blocked=second, by=first)
            first.commit()
            # ... then sees it and does nothing.
            assert outcome.result(timeout=10) is False
        second.commit()

    count = clinic_db_fresh.execute(
        "SELECT count(*) FROM webhook.inbound_events WHERE idempotency_key = 'evt_3'"
    ).fetchone()[0]
    assert count == 1
