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

-- An approval is unique per person, not per name.
ALTER TABLE deploy_approvals ADD COLUMN approver_id TEXT NOT NULL DEFAULT '';
UPDATE deploy_approvals SET approver_id = 'local:' || approver;
ALTER TABLE deploy_approvals DROP CONSTRAINT deploy_approvals_pkey;
ALTER TABLE deploy_approvals ADD PRIMARY KEY (deploy_id, approver_id);
