-- The store's first schema (SQLite). Timestamps are integer Unix milliseconds and flags are
-- integers so that the same queries decode through sqlx's Any driver on SQLite and Postgres.

-- Append-only, hash-chained audit log. `seq` is assigned under the chain head's write lock, so it
-- is contiguous from 1 and the chain can be walked in order.
CREATE TABLE audit_events (
    seq        INTEGER PRIMARY KEY,
    ts_ms      INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    source     TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    os_user    TEXT,
    roles      TEXT    NOT NULL,
    raw        TEXT,
    command    TEXT,
    decision   TEXT,
    outcome    TEXT,
    target     TEXT,
    deploy_id  INTEGER,
    detail     TEXT    NOT NULL,
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL
);
CREATE INDEX audit_events_target ON audit_events (target, seq);

-- One row: the newest event's seq and hash. Appenders update it first, which takes the database
-- write lock and so serialises appends across tasks and processes.
CREATE TABLE audit_head (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    seq   INTEGER NOT NULL,
    hash  TEXT    NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;

CREATE TABLE deploys (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    target           TEXT    NOT NULL,
    environment      TEXT    NOT NULL,
    version          TEXT    NOT NULL,
    requested_by     TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    step             TEXT,
    reason           TEXT,
    force            INTEGER NOT NULL DEFAULT 0,
    image_digest     TEXT,
    plan_fingerprint TEXT,
    plan_summary     TEXT,
    preflight        TEXT,
    conversation     TEXT,
    owner_host       TEXT,
    owner_pid        INTEGER,
    heartbeat_ms     INTEGER,
    created_ms       INTEGER NOT NULL,
    updated_ms       INTEGER NOT NULL,
    finished_ms      INTEGER
);
CREATE INDEX deploys_target ON deploys (target, id);
CREATE INDEX deploys_state ON deploys (state);

-- The journal of a deploy: one row per transition, written before it is announced.
CREATE TABLE deploy_steps (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    deploy_id    INTEGER NOT NULL REFERENCES deploys (id),
    step         TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    detail       TEXT    NOT NULL DEFAULT '{}',
    exit_code    INTEGER,
    output_tail  TEXT,
    started_ms   INTEGER NOT NULL,
    finished_ms  INTEGER
);
CREATE INDEX deploy_steps_deploy ON deploy_steps (deploy_id, id);

CREATE TABLE deploy_approvals (
    deploy_id    INTEGER NOT NULL REFERENCES deploys (id),
    approver     TEXT    NOT NULL,
    fingerprint  TEXT    NOT NULL,
    ts_ms        INTEGER NOT NULL,
    PRIMARY KEY (deploy_id, approver)
);

-- One row per held lock; the primary key makes acquisition atomic (INSERT … ON CONFLICT DO NOTHING).
CREATE TABLE locks (
    lock_key     TEXT    PRIMARY KEY,
    holder       TEXT    NOT NULL,
    deploy_id    INTEGER,
    reason       TEXT    NOT NULL,
    acquired_ms  INTEGER NOT NULL
);

CREATE TABLE seen_dags (
    dag_id         TEXT    PRIMARY KEY,
    first_seen_ms  INTEGER NOT NULL,
    last_seen_ms   INTEGER NOT NULL,
    is_paused      INTEGER NOT NULL,
    announced_ms   INTEGER
);

-- A chat message (or button click) is handled once: its id is claimed here before work starts.
CREATE TABLE command_claims (
    claim_key   TEXT    PRIMARY KEY,
    claimed_by  TEXT    NOT NULL,
    claimed_ms  INTEGER NOT NULL
);
