"""Every clinic sees only its own rows, whatever the table: the plugin's isolation check and
what it means for the application, on the two clinics of the dev seed."""

from __future__ import annotations

import psycopg
import pytest

from pytest_clinicdb.tenants import acting_as, check_tenant_isolation

# Every clinic reads these by design; clinic_app may not change them (migration 019).
SHARED = ("clinic.clinics", "clinic.feature_flags", "clinic.system_settings")


def test_no_clinic_sees_or_writes_another_clinics_rows(clinic_db_dev):
    findings = check_tenant_isolation(
        clinic_db_dev,
        role="clinic_app",
        setting="app.current_clinic_id",
        tenants="SELECT id FROM clinic.clinics ORDER BY id",
        shared=SHARED,
    )
    assert findings == [], "\n".join(f.bullet() for f in findings)


def test_hilltop_sees_none_of_riversides_accounts_doctors_staff_slots_or_bookings(
    clinic_db_dev, dev_seed
):
    query = (
        "SELECT (SELECT count(*) FROM clinic.users WHERE email LIKE '%%@example.com'),"
        " (SELECT count(*) FROM clinic.doctors WHERE id = %(doctor)s),"
        " (SELECT count(*) FROM clinic.staff),"
        " (SELECT count(*) FROM booking.slots WHERE doctor_id = %(doctor)s),"
        " (SELECT count(*) FROM booking.bookings)"
    )
    counts = {}
    for name, clinic_id in (("riverside", dev_seed.riverside), ("hilltop", dev_seed.hilltop)):
        with acting_as(clinic_db_dev, "clinic_app", **{"app.current_clinic_id": clinic_id}):
            counts[name] = clinic_db_dev.execute(query, {"doctor": dev_seed.dr_demo}).fetchone()
    # Riverside: its doctor, its receptionist and its patient account (the platform admin and
    # Hilltop's doctor are not Riverside's), Dr. Demo, one staff profile, three slots, a booking.
    assert counts == {"riverside": (3, 1, 1, 3, 1), "hilltop": (1, 0, 0, 0, 0)}


def test_a_clinic_cannot_change_another_clinic_or_the_shared_configuration(clinic_db_dev, dev_seed):
    with acting_as(clinic_db_dev, "clinic_app", **{"app.current_clinic_id": dev_seed.riverside}):
        for statement in (
            "UPDATE clinic.clinics SET is_active = false WHERE slug = 'hilltop-dev'",
            "UPDATE clinic.feature_flags SET enabled = false",
            "DELETE FROM clinic.system_settings",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), clinic_db_dev.transaction():
                clinic_db_dev.execute(statement)
        # Reading them is what they are for.
        names = clinic_db_dev.execute("SELECT slug FROM clinic.clinics ORDER BY slug").fetchall()
    assert names == [("hilltop-dev",), ("riverside-dev",)]


def test_logging_in_finds_the_account_before_a_clinic_is_chosen(clinic_db_dev, dev_seed):
    with acting_as(clinic_db_dev, "clinic_app"):  # no clinic yet
        assert clinic_db_dev.execute("SELECT count(*) FROM clinic.users").fetchone() == (0,)
        account = clinic_db_dev.execute(
            "SELECT user_id, clinic_id, role::text FROM clinic.account_for_login(%s)",
            ("Riley.Reception@Example.com",),
        ).fetchall()
    assert account == [(dev_seed.reception_user, dev_seed.riverside, "staff")]
