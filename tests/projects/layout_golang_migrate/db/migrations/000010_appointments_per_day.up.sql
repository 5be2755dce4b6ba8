CREATE VIEW clinic.appointments_per_day AS
SELECT date_trunc('day', starts_at) AS day, count(*) AS booked
FROM clinic.appointments
WHERE status <> 'cancelled'
GROUP BY 1;
