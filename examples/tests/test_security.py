"""The application role clinic_app: row-level security per clinic, no access to the audit trail."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from clinic_app import (
    PatientNotFound,
    SlotNotFound,
    acting_as,
    book_appointment,
    list_patients,
    register_patient,
)

from pytest_clinicdb import assert_audited


@pytest.fixture
def two_clinics(clinic_db, make_clinic, make_patient):
    """Two clinics with one patient each, created by the owner (RLS does not apply to it)."""
    north, south = make_clinic(clinic_db, "north"), make_clinic(clinic_db, "south")
    return {
        north: make_patient(clinic_db, north, "Nora North"),
        south: make_patient(clinic_db, south, "Sid South"),
    }


def test_clinic_app_sees_only_the_patients_of_its_clinic(clinic_db, two_clinics, as_clinic_app):
    assert len(list_patients(clinic_db)) == 2  # the owner sees everything
    with as_clinic_app(clinic_db):
        for clinic, patient_id in two_clinics.items():
            with acting_as(clinic_db, user_id=clinic.staff_user_id, clinic_id=clinic.id):
                assert [p.id for p in list_patients(clinic_db)] == [patient_id]
        # No clinic chosen: nothing is visible.
        assert list_patients(clinic_db) == []


def test_clinic_app_cannot_register_a_patient_at_another_clinic(
    clinic_db, two_clinics, as_clinic_app
):
    north, south = two_clinics
    with (
        as_clinic_app(clinic_db),
        acting_as(clinic_db, user_id=north.staff_user_id, clinic_id=north.id),
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"),
        clinic_db.transaction(),
    ):
        register_patient(
            clinic_db,
            clinic_id=south.id,
            mrn="SNEAK-1",
            full_name="Sneaky Entry",
            date_of_birth=dt.date(1999, 9, 9),
        )
    sneaked = clinic_db.execute(
        "SELECT count(*) FROM clinic.patients WHERE medical_record_number = 'SNEAK-1'"
    ).fetchone()[0]
    assert sneaked == 0


def test_clinic_app_cannot_book_another_clinics_slot_or_patient(
    clinic_db, two_clinics, as_clinic_app, make_slot
):
    north, south = two_clinics
    north_slot = make_slot(clinic_db, north.id, north.doctor_id)
    south_slot = make_slot(clinic_db, south.id, south.doctor_id)
    # A north session: row-level security hides south's patient and south's slot from book_slot.
    with (
        as_clinic_app(clinic_db),
        acting_as(clinic_db, user_id=north.staff_user_id, clinic_id=north.id),
    ):
        with pytest.raises(PatientNotFound), clinic_db.transaction():
            book_appointment(clinic_db, slot_id=north_slot, patient_id=two_clinics[south])
        with pytest.raises(SlotNotFound), clinic_db.transaction():
            book_appointment(clinic_db, slot_id=south_slot, patient_id=two_clinics[north])
    assert clinic_db.execute("SELECT count(*) FROM booking.bookings").fetchone()[0] == 0


def test_clinic_app_writes_are_audited_but_it_cannot_read_the_audit_trail(
    clinic_db, clinic, as_clinic_app, audit_trail
):
    with (
        as_clinic_app(clinic_db),
        acting_as(clinic_db, user_id=clinic.staff_user_id, clinic_id=clinic.id),
    ):
        patient_id = register_patient(
            clinic_db,
            clinic_id=clinic.id,
            mrn="APP-1",
            full_name="Via App",
            date_of_birth=dt.date(1988, 8, 8),
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege), clinic_db.transaction():
            clinic_db.execute("SELECT count(*) FROM audit.audit_logs")
        with pytest.raises(psycopg.errors.InsufficientPrivilege), clinic_db.transaction():
            clinic_db.execute("DELETE FROM audit.audit_logs")

    # Back as the owner: the SECURITY DEFINER trigger wrote the row, with the acting user.
    assert_audited(clinic_db, "clinic.patients", patient_id, "INSERT")
    assert [actor for _, actor, _ in audit_trail(clinic_db, "clinic.patients", patient_id)] == [
        str(clinic.staff_user_id)
    ]


def test_seeded_clinics_are_isolated_from_each_other(clinic_db_dev, dev_seed, as_clinic_app):
    with as_clinic_app(clinic_db_dev):
        with acting_as(
            clinic_db_dev, user_id=dev_seed.reception_user, clinic_id=dev_seed.riverside
        ):
            riverside = [p.full_name for p in list_patients(clinic_db_dev)]
            payments = clinic_db_dev.execute("SELECT count(*) FROM clinic.payments").fetchone()[0]
        with acting_as(clinic_db_dev, user_id=None, clinic_id=dev_seed.hilltop):
            hilltop = [p.id for p in list_patients(clinic_db_dev)]
    assert riverside == ["Pat Example", "Terry Test"]
    assert payments == 2
    assert hilltop == [dev_seed.casey]


def test_audit_rows_name_the_role_in_effect_next_to_the_login(
    clinic_db, clinic, as_clinic_app, audit_trail
):
    # The application logs in as one role and works as clinic_app: both are on the audit row.
    with as_clinic_app(clinic_db, **{"app.current_clinic_id": clinic.id}):
        patient_id = register_patient(
            clinic_db,
            clinic_id=clinic.id,
            mrn="ROLE-1",
            full_name="Role Example",
            date_of_birth=dt.date(1991, 1, 1),
        )
    login = clinic_db.execute("SELECT session_user::text").fetchone()[0]
    rows = clinic_db.execute(
        "SELECT db_user, db_role FROM audit.audit_logs"
        " WHERE table_name = 'patients' AND record_id = %s",
        (str(patient_id),),
    ).fetchall()
    assert rows == [(login, "clinic_app")]
