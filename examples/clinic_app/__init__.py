"""clinic_app: a small service layer over the clinic database (psycopg 3, synchronous).

Every function takes an open ``psycopg.Connection`` as its first argument and
runs inside the caller's transaction: nothing here commits or rolls back.  A
request handler typically does::

    with psycopg.connect(dsn) as conn:          # commits on success
        with acting_as(conn, user_id=user.id, clinic_id=user.clinic_id):
            patient_id = register_patient(conn, clinic_id=..., mrn=..., ...)

A database error these functions know about is raised as one of the small
exceptions of :mod:`clinic_app.errors`, chained to the psycopg error.  The
transaction is then in error: roll it back (or wrap the call in a savepoint,
``with conn.transaction():``, to carry on).
"""

from __future__ import annotations

from .booking import Booking, Slot, book_appointment, open_slots
from .context import acting_as, set_request_context
from .errors import (
    BookingError,
    BookingRejected,
    ClinicAppError,
    DuplicatePayment,
    InvalidPortalAccount,
    PatientAlreadyRegistered,
    PatientNotFound,
    SlotBusy,
    SlotNotFound,
    SlotTaken,
)
from .patients import Patient, list_patients, register_patient
from .payments import record_payment
from .webhooks import handle_inbound_webhook

__all__ = [
    "Booking",
    "BookingError",
    "BookingRejected",
    "ClinicAppError",
    "DuplicatePayment",
    "InvalidPortalAccount",
    "Patient",
    "PatientAlreadyRegistered",
    "PatientNotFound",
    "Slot",
    "SlotBusy",
    "SlotNotFound",
    "SlotTaken",
    "acting_as",
    "book_appointment",
    "handle_inbound_webhook",
    "list_patients",
    "open_slots",
    "record_payment",
    "register_patient",
    "set_request_context",
]
