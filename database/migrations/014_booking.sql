-- 014_booking.sql
-- Creates the booking schema's tables and its booking function:
--   booking.slots     bookable time of one doctor; a doctor's slots never overlap
--                     (exclusion constraint slots_no_overlap)
--   booking.bookings  a slot taken by a patient, linked to the clinic.appointments row it created;
--                     a doctor never has two active bookings overlapping in time
--                     (exclusion constraint bookings_no_overlap, btree_gist)
--   booking.book_slot(p_slot_id uuid, p_patient_id uuid, p_reason text DEFAULT NULL) RETURNS uuid
--                     books a slot atomically and returns the new clinic.appointments id.
-- plus set_updated_at_<table> triggers on both tables.
--
-- book_slot errors (SQLSTATE):
--   P0002 no_data_found            slot does not exist, or patient does not exist / is not visible
--   22023 invalid_parameter_value  slot already started, or patient belongs to another clinic
--   23P01 exclusion_violation      slot already booked: the same code the exclusion constraints
--                                  raise, so callers handle "doctor not free" in one place
-- The slot row is locked (SELECT ... FOR UPDATE) so that two concurrent calls for one slot are
-- serialised: the second waits, then fails with 23P01. The function runs with the caller's
-- rights, so clinic_app's row-level security applies to the patient and appointment it touches.

CREATE TABLE booking.slots (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    clinic_id   uuid NOT NULL,
    doctor_id   uuid NOT NULL,
    starts_at   timestamptz NOT NULL,
    ends_at     timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT slots_time_order CHECK (ends_at > starts_at),
    CONSTRAINT slots_doctor_fk FOREIGN KEY (clinic_id, doctor_id)
        REFERENCES clinic.doctors (clinic_id, id),
    -- Target of bookings_slot_fk: a booking copies its slot's doctor and times exactly.
    CONSTRAINT slots_booking_key UNIQUE (id, doctor_id, starts_at, ends_at),
    CONSTRAINT slots_no_overlap EXCLUDE USING gist (
        doctor_id WITH =,
        tstzrange(starts_at, ends_at) WITH &&
    )
);

CREATE TRIGGER set_updated_at_slots
    BEFORE UPDATE ON booking.slots
    FOR EACH ROW EXECUTE FUNCTION clinic.set_updated_at();

CREATE TABLE booking.bookings (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slot_id         uuid NOT NULL,
    doctor_id       uuid NOT NULL,
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    patient_id      uuid NOT NULL REFERENCES clinic.patients (id),
    appointment_id  uuid NOT NULL UNIQUE REFERENCES clinic.appointments (id),
    status          booking.booking_status NOT NULL DEFAULT 'active',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT bookings_slot_fk FOREIGN KEY (slot_id, doctor_id, starts_at, ends_at)
        REFERENCES booking.slots (id, doctor_id, starts_at, ends_at),
    CONSTRAINT bookings_no_overlap EXCLUDE USING gist (
        doctor_id WITH =,
        tstzrange(starts_at, ends_at) WITH &&
    ) WHERE (status = 'active')
);

CREATE INDEX bookings_slot_id_idx ON booking.bookings (slot_id);
CREATE INDEX bookings_patient_id_idx ON booking.bookings (patient_id);

CREATE TRIGGER set_updated_at_bookings
    BEFORE UPDATE ON booking.bookings
    FOR EACH ROW EXECUTE FUNCTION clinic.set_updated_at();

CREATE FUNCTION booking.book_slot(p_slot_id uuid, p_patient_id uuid, p_reason text DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_slot            booking.slots%ROWTYPE;
    v_patient_clinic  uuid;
    v_appointment_id  uuid;
BEGIN
    -- Lock the slot: a concurrent call for the same slot waits here until this transaction ends.
    SELECT * INTO v_slot FROM booking.slots WHERE id = p_slot_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'booking.book_slot: slot % does not exist', p_slot_id
            USING ERRCODE = 'no_data_found';
    END IF;

    IF EXISTS (SELECT 1 FROM booking.bookings b WHERE b.slot_id = p_slot_id AND b.status = 'active') THEN
        RAISE EXCEPTION 'booking.book_slot: slot % is already booked', p_slot_id
            USING ERRCODE = 'exclusion_violation',
                  DETAIL = format('Doctor %s, %s to %s.', v_slot.doctor_id, v_slot.starts_at, v_slot.ends_at),
                  HINT = 'Choose another slot.';
    END IF;

    IF v_slot.starts_at <= now() THEN
        RAISE EXCEPTION 'booking.book_slot: slot % started at %, it can no longer be booked',
            p_slot_id, v_slot.starts_at
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    SELECT p.clinic_id INTO v_patient_clinic FROM clinic.patients p WHERE p.id = p_patient_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'booking.book_slot: patient % does not exist', p_patient_id
            USING ERRCODE = 'no_data_found';
    END IF;
    IF v_patient_clinic <> v_slot.clinic_id THEN
        RAISE EXCEPTION 'booking.book_slot: patient % is registered at another clinic than slot %',
            p_patient_id, p_slot_id
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    INSERT INTO clinic.appointments (clinic_id, doctor_id, patient_id, starts_at, ends_at, status, reason)
    VALUES (v_slot.clinic_id, v_slot.doctor_id, p_patient_id, v_slot.starts_at, v_slot.ends_at,
            'scheduled', p_reason)
    RETURNING id INTO v_appointment_id;

    INSERT INTO booking.bookings (slot_id, doctor_id, starts_at, ends_at, patient_id, appointment_id)
    VALUES (v_slot.id, v_slot.doctor_id, v_slot.starts_at, v_slot.ends_at, p_patient_id, v_appointment_id);

    RETURN v_appointment_id;
END;
$$;

COMMENT ON FUNCTION booking.book_slot(uuid, uuid, text) IS
    'Books a slot for a patient atomically and returns the new clinic.appointments id. Raises 23P01 when the slot is taken, P0002 for an unknown slot or patient, 22023 for a past slot or a patient of another clinic.';
