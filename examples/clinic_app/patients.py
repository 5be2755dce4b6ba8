"""Registering and listing patients (``clinic.patients``, migration 006)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import class_row

from .errors import InvalidPortalAccount, PatientAlreadyRegistered


@dataclass(frozen=True)
class Patient:
    """A patient as the application shows it."""

    id: UUID
    clinic_id: UUID
    medical_record_number: str
    full_name: str
    date_of_birth: dt.date


def register_patient(
    conn: psycopg.Connection[Any],
    *,
    clinic_id: UUID,
    mrn: str,
    full_name: str,
    date_of_birth: dt.date,
    user_id: UUID | None = None,
    email: str | None = None,
    phone: str | None = None,
) -> UUID:
    """Register a patient at ``clinic_id`` and return the new patient's id.

    ``user_id`` optionally links the patient's portal account: it must be an
    account of role ``patient`` of the same clinic, not linked to another
    patient yet.  The database enforces all of it (the portal account's
    composite foreign key, migration 022, and ``UNIQUE (user_id)``), for every
    writer, so this function only translates its errors.  The medical record
    number is unique per clinic.

    Raises :class:`PatientAlreadyRegistered` or :class:`InvalidPortalAccount`.
    """
    try:
        row = conn.execute(
            "INSERT INTO clinic.patients"
            " (clinic_id, user_id, medical_record_number, full_name, date_of_birth, email, phone)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
            (clinic_id, user_id, mrn, full_name, date_of_birth, email, phone),
        ).fetchone()
    except psycopg.errors.UniqueViolation as exc:
        if exc.diag.constraint_name == "patients_clinic_mrn_key":
            raise PatientAlreadyRegistered(
                f"clinic {clinic_id} already has a patient with MRN {mrn!r}"
            ) from exc
        if exc.diag.constraint_name == "patients_user_id_key":
            raise InvalidPortalAccount(f"user {user_id} is already linked to a patient") from exc
        raise
    except psycopg.errors.ForeignKeyViolation as exc:
        if exc.diag.constraint_name in ("patients_portal_account_fk", "patients_user_id_fkey"):
            raise InvalidPortalAccount(
                f"user {user_id} is not a patient account of clinic {clinic_id}"
            ) from exc
        raise
    assert row is not None
    patient_id: UUID = row[0]
    return patient_id


def list_patients(conn: psycopg.Connection[Any]) -> list[Patient]:
    """The patients this session may see, by name.

    No clinic filter here on purpose: for the application role ``clinic_app``
    row-level security limits the rows to ``app.current_clinic_id``.
    """
    with conn.cursor(row_factory=class_row(Patient)) as cur:
        return cur.execute(
            "SELECT id, clinic_id, medical_record_number, full_name, date_of_birth"
            " FROM clinic.patients ORDER BY full_name, id"
        ).fetchall()
