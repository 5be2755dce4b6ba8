-- 0001 schemas and extensions
-- Northgate Physio: clinic holds the practice data, audit the change history.
-- btree_gist lets one exclusion constraint stop double-booked therapists (0003).

CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE SCHEMA clinic;
CREATE SCHEMA audit;
