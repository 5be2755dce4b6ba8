"""Booking appointment slots (``booking`` schema, migration 014)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import class_row

from .errors import (
    BookingRejected,
    PatientNotFound,
    SlotBusy,
    SlotNotFound,
    SlotTaken,
)


@dataclass(frozen=True)
class Booking:
    """A booked slot: the ``booking.bookings`` row and the appointment it created."""

    booking_id: UUID
    appointment_id: UUID


@dataclass(frozen=True)
class Slot:
    """A bookable slot of a doctor."""

    id: UUID
    doctor_id: UUID
    starts_at: dt.datetime
    ends_at: dt.datetime


def book_appointment(
    conn: psycopg.Connection[Any], *, slot_id: UUID, patient_id: UUID, reason: str | None = None
) -> Booking:
    """Book ``slot_id`` for ``patient_id`` through ``booking.book_slot``.

    The database function locks the slot, so a concurrent booking of the same
    slot waits for this transaction and then fails with :class:`SlotTaken`
    (or with :class:`SlotBusy` if the session's ``lock_timeout`` runs out).

    Raises :class:`SlotTaken`, :class:`SlotBusy`, :class:`SlotNotFound`,
    :class:`PatientNotFound` or :class:`BookingRejected`.
    """
    try:
        row = conn.execute(
            "SELECT booking.book_slot(%s, %s, %s)", (slot_id, patient_id, reason)
        ).fetchone()
    except psycopg.errors.ExclusionViolation as exc:
        raise SlotTaken(f"slot {slot_id} is already booked") from exc
    except psycopg.errors.LockNotAvailable as exc:
        raise SlotBusy(f"slot {slot_id} is being booked by another transaction") from exc
    except psycopg.errors.NoDataFound as exc:  # P0002: the slot (migration 021)
        raise SlotNotFound(f"slot {slot_id} does not exist") from exc
    except psycopg.errors.ForeignKeyViolation as exc:  # 23503: the patient (migration 021)
        raise PatientNotFound(f"patient {patient_id} does not exist") from exc
    except psycopg.errors.InvalidParameterValue as exc:
        raise BookingRejected(exc.diag.message_primary or str(exc)) from exc
    assert row is not None
    appointment_id: UUID = row[0]
    booking = conn.execute(
        "SELECT id FROM booking.bookings WHERE appointment_id = %s", (appointment_id,)
    ).fetchone()
    assert booking is not None
    return Booking(booking_id=booking[0], appointment_id=appointment_id)


def open_slots(conn: psycopg.Connection[Any], *, doctor_id: UUID) -> list[Slot]:
    """The doctor's slots that start in the future and have no active booking, by time."""
    with conn.cursor(row_factory=class_row(Slot)) as cur:
        return cur.execute(
            "SELECT s.id, s.doctor_id, s.starts_at, s.ends_at FROM booking.slots s"
            " WHERE s.doctor_id = %s AND s.starts_at > now()"
            " AND NOT EXISTS (SELECT 1 FROM booking.bookings b"
            "                 WHERE b.slot_id = s.id AND b.status = 'active')"
            " ORDER BY s.starts_at",
            (doctor_id,),
        ).fetchall()
