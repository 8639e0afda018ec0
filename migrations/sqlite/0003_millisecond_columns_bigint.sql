-- Postgres widens two millisecond columns to BIGINT in its 0003. SQLite's INTEGER already holds
-- 64 bits; this file keeps both stores at the same schema version.
SELECT 1;
