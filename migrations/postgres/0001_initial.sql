-- The store's first schema (Postgres). Same tables and meaning as migrations/sqlite/0001.
-- Timestamps are BIGINT Unix milliseconds and flags are integers so that the same queries decode
-- through sqlx's Any driver on both databases.

CREATE TABLE audit_events (
    seq        BIGINT  PRIMARY KEY,
    ts_ms      BIGINT  NOT NULL,
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
    deploy_id  BIGINT,
    detail     TEXT    NOT NULL,
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL
);
CREATE INDEX audit_events_target ON audit_events (target, seq);

CREATE TABLE audit_head (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    seq   BIGINT  NOT NULL,
    hash  TEXT    NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

CREATE TABLE deploys (
    id               BIGSERIAL PRIMARY KEY,
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
    owner_pid        BIGINT,
    heartbeat_ms     BIGINT,
    created_ms       BIGINT  NOT NULL,
    updated_ms       BIGINT  NOT NULL,
    finished_ms      BIGINT
);
CREATE INDEX deploys_target ON deploys (target, id);
CREATE INDEX deploys_state ON deploys (state);

CREATE TABLE deploy_steps (
    id           BIGSERIAL PRIMARY KEY,
    deploy_id    BIGINT  NOT NULL REFERENCES deploys (id),
    step         TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    detail       TEXT    NOT NULL DEFAULT '{}',
    exit_code    BIGINT,
    output_tail  TEXT,
    started_ms   BIGINT  NOT NULL,
    finished_ms  BIGINT
);
CREATE INDEX deploy_steps_deploy ON deploy_steps (deploy_id, id);

CREATE TABLE deploy_approvals (
    deploy_id    BIGINT  NOT NULL REFERENCES deploys (id),
    approver     TEXT    NOT NULL,
    fingerprint  TEXT    NOT NULL,
    ts_ms        BIGINT  NOT NULL,
    PRIMARY KEY (deploy_id, approver)
);

CREATE TABLE locks (
    lock_key     TEXT    PRIMARY KEY,
    holder       TEXT    NOT NULL,
    deploy_id    BIGINT,
    reason       TEXT    NOT NULL,
    acquired_ms  BIGINT  NOT NULL
);

CREATE TABLE seen_dags (
    dag_id         TEXT    PRIMARY KEY,
    first_seen_ms  BIGINT  NOT NULL,
    last_seen_ms   BIGINT  NOT NULL,
    is_paused      INTEGER NOT NULL,
    announced_ms   BIGINT
);

CREATE TABLE command_claims (
    claim_key   TEXT    PRIMARY KEY,
    claimed_by  TEXT    NOT NULL,
    claimed_ms  BIGINT  NOT NULL
);
