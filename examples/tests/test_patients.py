"""Registering patients: constraints, the portal account check, the audit trail."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from clinic_app import (
    InvalidPortalAccount,
    PatientAlreadyRegistered,
    acting_as,
    list_patients,
    register_patient,
)

from pytest_clinicdb import assert_audit_partitions_cover, assert_audited


def test_registered_patient_is_stored_as_given(clinic_db, clinic):
    patient_id = register_patient(
        clinic_db,
        clinic_id=clinic.id,
        mrn="MRN-100",
        full_name="Grace Example",
        date_of_birth=dt.date(1980, 2, 29),
    )
    [patient] = list_patients(clinic_db)
    assert patient.id == patient_id
    assert (patient.clinic_id, patient.medical_record_number) == (clinic.id, "MRN-100")
    assert (patient.full_name, patient.date_of_birth) == ("Grace Example", dt.date(1980, 2, 29))


def test_registration_is_audited_with_the_acting_user(clinic_db, clinic, audit_trail):
    with acting_as(clinic_db, user_id=clinic.staff_user_id, clinic_id=clinic.id):
        patient_id = register_patient(
            clinic_db,
            clinic_id=clinic.id,
            mrn="MRN-101",
            full_name="Alan Example",
            date_of_birth=dt.date(1970, 6, 23),
        )

    assert_audited(clinic_db, "clinic.patients", patient_id, "INSERT")
    rows = audit_trail(clinic_db, "clinic.patients", patient_id)
    assert [(action, actor) for action, actor, _ in rows] == [("INSERT", str(clinic.staff_user_id))]
    assert_audit_partitions_cover(clinic_db, *(created_at for _, _, created_at in rows))


def test_acting_as_restores_the_previous_context(clinic_db, clinic):
    def current() -> tuple[str, str]:
        row = clinic_db.execute(
            "SELECT current_setting('app.current_user_id', true),"
            " current_setting('app.current_clinic_id', true)"
        ).fetchone()
        return (row[0] or "", row[1] or "")

    assert current() == ("", "")
    with acting_as(clinic_db, user_id=clinic.staff_user_id, clinic_id=clinic.id):
        assert current() == (str(clinic.staff_user_id), str(clinic.id))
    assert current() == ("", "")


def test_a_medical_record_number_is_unique_per_clinic(clinic_db, clinic, make_clinic):
    other = make_clinic(clinic_db)
    first = dict(mrn="MRN-200", full_name="Ada Example", date_of_birth=dt.date(1990, 5, 1))
    register_patient(clinic_db, clinic_id=clinic.id, **first)

    with pytest.raises(PatientAlreadyRegistered), clinic_db.transaction():
        register_patient(clinic_db, clinic_id=clinic.id, **{**first, "full_name": "Ada Twin"})
    # Another clinic keeps its own numbering.
    register_patient(clinic_db, clinic_id=other.id, **first)

    counts = clinic_db.execute(
        "SELECT clinic_id, count(*) FROM clinic.patients"
        " WHERE medical_record_number = 'MRN-200' GROUP BY clinic_id"
    ).fetchall()
    assert dict(counts) == {clinic.id: 1, other.id: 1}


def test_portal_account_must_be_a_patient_account_of_the_same_clinic(
    clinic_db, clinic, make_clinic
):
    other = make_clinic(clinic_db)
    portal_user = clinic_db.execute(
        "INSERT INTO clinic.users (clinic_id, email, role, full_name)"
        " VALUES (%s, 'portal.user@example.com', 'patient', 'Portal User') RETURNING id",
        (clinic.id,),
    ).fetchone()[0]
    details = dict(full_name="Portal User", date_of_birth=dt.date(2000, 1, 1))

    with (
        pytest.raises(InvalidPortalAccount, match="not a patient account"),
        clinic_db.transaction(),
    ):
        register_patient(clinic_db, clinic_id=other.id, mrn="P-1", user_id=portal_user, **details)
    with (
        pytest.raises(InvalidPortalAccount, match="not a patient account"),
        clinic_db.transaction(),
    ):
        register_patient(
            clinic_db, clinic_id=clinic.id, mrn="P-2", user_id=clinic.staff_user_id, **details
        )

    register_patient(clinic_db, clinic_id=clinic.id, mrn="P-3", user_id=portal_user, **details)
    with pytest.raises(InvalidPortalAccount, match="already linked"), clinic_db.transaction():
        register_patient(clinic_db, clinic_id=clinic.id, mrn="P-4", user_id=portal_user, **details)

    linked = clinic_db.execute(
        "SELECT medical_record_number FROM clinic.patients WHERE user_id = %s", (portal_user,)
    ).fetchall()
    assert linked == [("P-3",)]


def test_the_database_itself_refuses_a_portal_account_of_another_clinic_or_role(
    clinic_db, clinic, make_clinic
):
    # Not through register_patient: any writer (a script, another service) is held to it.
    other = make_clinic(clinic_db)
    other_portal_user = clinic_db.execute(
        "INSERT INTO clinic.users (clinic_id, email, role, full_name)"
        " VALUES (%s, 'other.portal@example.com', 'patient', 'Other Portal') RETURNING id",
        (other.id,),
    ).fetchone()[0]
    insert = (
        "INSERT INTO clinic.patients (clinic_id, user_id, medical_record_number, full_name,"
        " date_of_birth) VALUES (%s, %s, %s, 'Linked Example', '2000-01-01')"
    )
    refused = []
    for n, account in enumerate((other_portal_user, clinic.staff_user_id)):
        with pytest.raises(psycopg.errors.ForeignKeyViolation) as info, clinic_db.transaction():
            clinic_db.execute(insert, (clinic.id, account, f"RAW-{n}"))
        refused.append(info.value.diag.constraint_name)
    assert refused == ["patients_portal_account_fk", "patients_portal_account_fk"]
