-- Built without locking out writes on the production table.
CREATE INDEX CONCURRENTLY visits_patient_seen ON clinic.visits (patient_id, seen_at DESC);
CREATE INDEX CONCURRENTLY visits_room_day ON clinic.visits (clinic_id, room_code, seen_at);
