-- Small facts the watchers keep across restarts (e.g. that the DAG announcer has seeded its seen
-- set, so an Airflow that was empty at first does not make the next DAGs look like a seed).
CREATE TABLE bot_state (
    state_key   TEXT    PRIMARY KEY,
    state_value TEXT    NOT NULL,
    updated_ms  INTEGER NOT NULL
);

-- A catalog DB migration someone asked to run; a second maintainer's identical request approves
-- and runs it. One pending request per migration file.
CREATE TABLE migration_requests (
    name          TEXT    PRIMARY KEY,
    requested_by  TEXT    NOT NULL,
    requested_ms  INTEGER NOT NULL
);
