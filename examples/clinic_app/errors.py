"""The exceptions of clinic_app: database errors translated into application terms."""

from __future__ import annotations


class ClinicAppError(Exception):
    """Base class of every error raised by clinic_app."""


class PatientAlreadyRegistered(ClinicAppError):
    """The clinic already has a patient with this medical record number."""


class InvalidPortalAccount(ClinicAppError):
    """The portal account is unknown, not a patient account of this clinic, or already linked."""


class DuplicatePayment(ClinicAppError):
    """The provider's payment reference was already recorded."""


class BookingError(ClinicAppError):
    """Base class of the errors of :func:`clinic_app.book_appointment`."""


class SlotTaken(BookingError):
    """The slot (or its doctor at that time) is already booked: SQLSTATE 23P01."""


class SlotBusy(BookingError):
    """Another transaction is booking the slot right now and ``lock_timeout`` expired (55P03)."""


class SlotNotFound(BookingError):
    """No slot has this id, or row-level security hides it: SQLSTATE P0002."""


class PatientNotFound(BookingError):
    """The patient does not exist, or row-level security hides it: SQLSTATE 23503."""


class BookingRejected(BookingError):
    """The slot has started, its clinic is not active, its doctor is not accepting patients,
    or the patient is registered at another clinic: SQLSTATE 22023."""
