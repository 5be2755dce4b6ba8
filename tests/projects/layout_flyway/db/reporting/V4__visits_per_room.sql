CREATE VIEW reporting.visits_per_room AS
SELECT clinic_id, room_code, count(*) AS visits
FROM clinic.visits
GROUP BY clinic_id, room_code;
