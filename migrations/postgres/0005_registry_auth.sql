-- What the container registry's bearer-token dance taught one process, kept for the next: every
-- `exec` is a new process, and the dance (401 with a challenge → a token from the realm → the
-- request again) is the longest chain of its preflight.
--
-- The realm (where tokens come from) is not a secret: the registry tells anyone who asks.
CREATE TABLE registry_realms (
    registry    TEXT    PRIMARY KEY,
    realm       TEXT    NOT NULL,
    service     TEXT,
    learned_ms  BIGINT  NOT NULL
);

-- Pull tokens obtained anonymously (no REGISTRY_USERNAME), until shortly before they expire. They
-- grant what any anonymous client can get for itself. A token obtained with credentials may pull
-- private images and is never written here: the store is read by more people and programs
-- (backups, other replicas, database administrators) than the bot's environment, which holds
-- the password.
CREATE TABLE registry_tokens (
    registry    TEXT    NOT NULL,
    scope       TEXT    NOT NULL,
    token       TEXT    NOT NULL,
    expires_ms  BIGINT  NOT NULL,
    PRIMARY KEY (registry, scope)
);
