DROP TABLE clinic.visits;
