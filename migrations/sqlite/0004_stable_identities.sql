-- People are identified by a stable id (`discord:<user id>`, `local:<name>`) as well as the name
-- shown in messages: a Discord username can be changed, so comparing names let a requester rename
-- herself and approve her own deploy, or approve twice under two names.
--
-- Rows written before this migration only know the name. They get `local:<name>`, the id a shell
-- user of that name has today; they can never equal a Discord id, so the workflow also keeps
-- comparing names (a name match still counts as the same person) to protect deploys and
-- migration requests that were pending across the upgrade.
ALTER TABLE deploys ADD COLUMN requested_by_id TEXT NOT NULL DEFAULT '';
UPDATE deploys SET requested_by_id = 'local:' || requested_by;

ALTER TABLE migration_requests ADD COLUMN requested_by_id TEXT NOT NULL DEFAULT '';
UPDATE migration_requests SET requested_by_id = 'local:' || requested_by;

-- An approval is unique per person, not per name. SQLite cannot change a primary key in place,
-- so the table is rebuilt (nothing references it).
CREATE TABLE deploy_approvals_by_id (
    deploy_id    INTEGER NOT NULL REFERENCES deploys (id),
    approver_id  TEXT    NOT NULL,
    approver     TEXT    NOT NULL,
    fingerprint  TEXT    NOT NULL,
    ts_ms        INTEGER NOT NULL,
    PRIMARY KEY (deploy_id, approver_id)
);
INSERT INTO deploy_approvals_by_id (deploy_id, approver_id, approver, fingerprint, ts_ms)
SELECT deploy_id, 'local:' || approver, approver, fingerprint, ts_ms FROM deploy_approvals;
DROP TABLE deploy_approvals;
ALTER TABLE deploy_approvals_by_id RENAME TO deploy_approvals;
