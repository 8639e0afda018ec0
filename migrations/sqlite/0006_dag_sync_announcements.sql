-- The dag-sync announcer: each commit that touched the DAG folder and reached the Airflow host,
-- announced once ("Deployed: <subject> (<sha>)"). A row is written when the bot sees the checkout
-- move onto the commit; `announced_ms` is claimed by the one process that posts it, so a restart
-- or a second replica never posts it again.
CREATE TABLE dag_sync_commits (
    sha          TEXT    PRIMARY KEY,
    subject      TEXT    NOT NULL,
    -- Oldest first within one move of the checkout (a move may bring several commits).
    position     INTEGER NOT NULL,
    detected_ms  INTEGER NOT NULL,
    -- JSON list of the DAG ids Airflow had when the move was seen; NULL when Airflow did not
    -- answer. The DAGs Airflow has later and not here are the ones the move brought.
    dags_before  TEXT,
    announced_ms INTEGER
);
CREATE INDEX dag_sync_commits_pending ON dag_sync_commits (announced_ms);
