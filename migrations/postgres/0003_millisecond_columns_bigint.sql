-- 0002 declared two millisecond timestamps INTEGER, which is 32-bit on Postgres: the first write
-- of a real Unix-ms time failed with "integer out of range" (the announcer could not record that
-- it had seeded; a migration request could not be stored). Every other *_ms column is BIGINT.
ALTER TABLE bot_state ALTER COLUMN updated_ms TYPE BIGINT;
ALTER TABLE migration_requests ALTER COLUMN requested_ms TYPE BIGINT;
