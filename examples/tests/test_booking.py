"""Booking slots through booking.book_slot: happy path, every error, the seeded schedule."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

import psycopg
import pytest
from clinic_app import (
    BookingRejected,
    PatientNotFound,
    SlotBusy,
    SlotNotFound,
    SlotTaken,
    acting_as,
    book_appointment,
    open_slots,
)

from pytest_clinicdb import assert_audit_partitions_cover, assert_audited

UNKNOWN = UUID("00000000-0000-4000-8000-00000000dead")


def test_booking_creates_the_appointment_and_the_booking(
    clinic_db, clinic, make_patient, make_slot, audit_trail
):
    patient_id = make_patient(clinic_db, clinic)
    slot_id = make_slot(clinic_db, clinic.id, clinic.doctor_id, in_days=7)
    assert [s.id for s in open_slots(clinic_db, doctor_id=clinic.doctor_id)] == [slot_id]

    with acting_as(clinic_db, user_id=clinic.staff_user_id, clinic_id=clinic.id):
        booking = book_appointment(
            clinic_db, slot_id=slot_id, patient_id=patient_id, reason="Back pain"
        )

    appointment = clinic_db.execute(
        "SELECT a.patient_id, a.doctor_id, a.status::text, a.reason, a.starts_at, b.slot_id"
        " FROM clinic.appointments a JOIN booking.bookings b ON b.appointment_id = a.id"
        " WHERE a.id = %s AND b.id = %s",
        (booking.appointment_id, booking.booking_id),
    ).fetchone()
    assert appointment[:4] == (patient_id, clinic.doctor_id, "scheduled", "Back pain")
    assert appointment[5] == slot_id
    assert open_slots(clinic_db, doctor_id=clinic.doctor_id) == []

    assert_audited(clinic_db, "clinic.appointments", booking.appointment_id, "INSERT")
    [(_, actor, audited_at)] = audit_trail(clinic_db, "clinic.appointments", booking.appointment_id)
    assert actor == str(clinic.staff_user_id)
    # The booking is audited now, and its check-in and completion will be audited at starts_at:
    # both months need an audit partition.
    assert_audit_partitions_cover(clinic_db, audited_at, appointment[4])


def test_a_booked_slot_cannot_be_booked_again(clinic_db, clinic, make_patient, make_slot):
    first, second = make_patient(clinic_db, clinic), make_patient(clinic_db, clinic, "Bo Other")
    slot_id = make_slot(clinic_db, clinic.id, clinic.doctor_id)
    booking = book_appointment(clinic_db, slot_id=slot_id, patient_id=first)

    with pytest.raises(SlotTaken), clinic_db.transaction():
        book_appointment(clinic_db, slot_id=slot_id, patient_id=second)

    rows = clinic_db.execute(
        "SELECT appointment_id, patient_id FROM booking.bookings WHERE slot_id = %s", (slot_id,)
    ).fetchall()
    assert rows == [(booking.appointment_id, first)]


def test_each_refusal_of_book_slot_has_its_own_exception(
    clinic_db, clinic, make_clinic, make_patient, make_slot
):
    other = make_clinic(clinic_db)
    ours, theirs = make_patient(clinic_db, clinic), make_patient(clinic_db, other)
    future_slot = make_slot(clinic_db, clinic.id, clinic.doctor_id, in_days=1)
    past_slot = make_slot(clinic_db, clinic.id, clinic.doctor_id, in_days=-1)

    with pytest.raises(SlotNotFound), clinic_db.transaction():  # P0002
        book_appointment(clinic_db, slot_id=UNKNOWN, patient_id=ours)
    with pytest.raises(PatientNotFound), clinic_db.transaction():  # 23503
        book_appointment(clinic_db, slot_id=future_slot, patient_id=UNKNOWN)
    with pytest.raises(BookingRejected, match="can no longer be booked"), clinic_db.transaction():
        book_appointment(clinic_db, slot_id=past_slot, patient_id=ours)  # 22023
    with pytest.raises(BookingRejected, match="another clinic"), clinic_db.transaction():
        book_appointment(clinic_db, slot_id=future_slot, patient_id=theirs)  # 22023

    assert clinic_db.execute("SELECT count(*) FROM clinic.appointments").fetchone()[0] == 0
    assert clinic_db.execute("SELECT count(*) FROM booking.bookings").fetchone()[0] == 0
    # The refused attempts left the slot open.
    assert [s.id for s in open_slots(clinic_db, doctor_id=clinic.doctor_id)] == [future_slot]


def test_seeded_booked_slot_is_taken(clinic_db_dev, dev_seed):
    with pytest.raises(SlotTaken), clinic_db_dev.transaction():
        book_appointment(clinic_db_dev, slot_id=dev_seed.slot_booked, patient_id=dev_seed.pat)
    patients = clinic_db_dev.execute(
        "SELECT patient_id FROM booking.bookings WHERE slot_id = %s", (dev_seed.slot_booked,)
    ).fetchall()
    assert patients == [(dev_seed.terry,)]


def test_seeded_open_slots_lie_in_the_past(clinic_db_dev, dev_seed):
    # Seed 002 dates every slot around 2025-01-16: the "open" ones can no longer be booked.
    assert open_slots(clinic_db_dev, doctor_id=dev_seed.dr_demo) == []
    with (
        pytest.raises(BookingRejected, match="can no longer be booked"),
        clinic_db_dev.transaction(),
    ):
        book_appointment(clinic_db_dev, slot_id=dev_seed.slot_open, patient_id=dev_seed.pat)


def test_seeded_patient_books_a_new_slot_of_the_seeded_doctor(clinic_db_dev, dev_seed, make_slot):
    slot_id = make_slot(clinic_db_dev, dev_seed.riverside, dev_seed.dr_demo, in_days=3)
    with acting_as(clinic_db_dev, user_id=dev_seed.reception_user, clinic_id=dev_seed.riverside):
        booking = book_appointment(
            clinic_db_dev, slot_id=slot_id, patient_id=dev_seed.pat, reason="Vitamin D check"
        )

    appointments = clinic_db_dev.execute(
        "SELECT id, reason FROM clinic.appointments WHERE patient_id = %s ORDER BY starts_at",
        (dev_seed.pat,),
    ).fetchall()
    # Pat's seeded (completed) check-up, then the new one.
    assert [reason for _, reason in appointments] == ["Annual check-up", "Vitamin D check"]
    assert appointments[-1][0] == booking.appointment_id
    assert_audited(clinic_db_dev, "clinic.appointments", booking.appointment_id, "INSERT")


def test_an_unknown_slot_and_an_unknown_patient_have_their_own_sqlstate(
    clinic_db, clinic, make_patient, make_slot
):
    # The application tells them apart by SQLSTATE alone (migration 021); they used to share
    # P0002 and only the message said which.
    patient_id = make_patient(clinic_db, clinic)
    slot_id = make_slot(clinic_db, clinic.id, clinic.doctor_id)
    codes = []
    for slot, patient in ((UNKNOWN, patient_id), (slot_id, UNKNOWN)):
        with pytest.raises(psycopg.Error) as refused, clinic_db.transaction():
            clinic_db.execute("SELECT booking.book_slot(%s, %s)", (slot, patient))
        codes.append(refused.value.sqlstate)
    assert codes == ["P0002", "23503"]


def test_a_doctor_who_is_not_accepting_patients_cannot_be_booked(
    clinic_db, clinic, make_patient, make_slot
):
    patient_id = make_patient(clinic_db, clinic)
    slot_id = make_slot(clinic_db, clinic.id, clinic.doctor_id)
    clinic_db.execute(
        "UPDATE clinic.doctors SET is_accepting_patients = false WHERE id = %s", (clinic.doctor_id,)
    )
    with pytest.raises(BookingRejected, match="is not accepting patients"), clinic_db.transaction():
        book_appointment(clinic_db, slot_id=slot_id, patient_id=patient_id)
    assert open_slots(clinic_db, doctor_id=clinic.doctor_id)[0].id == slot_id


def test_a_slot_of_an_inactive_clinic_cannot_be_booked(clinic_db, clinic, make_patient, make_slot):
    patient_id = make_patient(clinic_db, clinic)
    slot_id = make_slot(clinic_db, clinic.id, clinic.doctor_id)
    clinic_db.execute("UPDATE clinic.clinics SET is_active = false WHERE id = %s", (clinic.id,))
    with pytest.raises(BookingRejected, match="is not active"), clinic_db.transaction():
        book_appointment(clinic_db, slot_id=slot_id, patient_id=patient_id)
    assert clinic_db.execute("SELECT count(*) FROM booking.bookings").fetchone()[0] == 0


# ---------------------------------------------------------------- several connections, commits


@pytest.fixture
def committed_slot(clinic_db_fresh, make_clinic, make_patient, make_slot):
    """A clinic, two patients and one open slot, committed in this test's fresh database."""
    clinic = make_clinic(clinic_db_fresh)
    patients = (make_patient(clinic_db_fresh, clinic), make_patient(clinic_db_fresh, clinic))
    slot_id = make_slot(clinic_db_fresh, clinic.id, clinic.doctor_id)
    clinic_db_fresh.commit()
    return slot_id, patients


def bookings_of(dsn, slot_id):
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT patient_id FROM booking.bookings WHERE slot_id = %s", (slot_id,)
        ).fetchall()


def test_concurrent_double_booking_exactly_one_wins(clinic_dsn, committed_slot, wait_until_blocked):
    slot_id, (alice, bob) = committed_slot
    with psycopg.connect(clinic_dsn) as first, psycopg.connect(clinic_dsn) as second:
        second.execute("SET lock_timeout = '10s'")  # a safety net, never reached when all is well
        book_appointment(first, slot_id=slot_id, patient_id=alice)  # holds the slot's lock

        def second_attempt():
            try:
                return book_appointment(second, slot_id=slot_id, patient_id=bob)
            except SlotTaken as exc:
                return exc

        with ThreadPoolExecutor(max_workers=1) as pool:
            outcome = pool.submit(second_attempt)
            # The second booking waits for the first transaction's lock on the slot...
            wait_until_blocked(blocked=second, by=first)
            assert not outcome.done()
            first.commit()
            # ... and fails once the first one has committed.
            assert isinstance(outcome.result(timeout=10), SlotTaken)
        second.rollback()

    assert bookings_of(clinic_dsn, slot_id) == [(alice,)]


def test_a_busy_slot_times_out_then_is_taken_once_the_first_commits(clinic_dsn, committed_slot):
    slot_id, (alice, bob) = committed_slot
    with psycopg.connect(clinic_dsn) as first, psycopg.connect(clinic_dsn) as second:
        book_appointment(first, slot_id=slot_id, patient_id=alice)  # not committed yet

        second.execute("SET lock_timeout = '100ms'")
        with pytest.raises(SlotBusy):
            book_appointment(second, slot_id=slot_id, patient_id=bob)
        second.rollback()

        first.commit()
        with pytest.raises(SlotTaken):
            book_appointment(second, slot_id=slot_id, patient_id=bob)
        second.rollback()

    assert bookings_of(clinic_dsn, slot_id) == [(alice,)]
