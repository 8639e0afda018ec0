-- Issue 15: what a deploy must remember across processes about DAGs.
--
-- The pause_during_deploy DAGs a deploy paused right before its apply. The row is written BEFORE
-- Airflow is asked (paused_ms NULL: the pause was asked, its answer not yet recorded), so a crash
-- between the two still leaves the DAG on record; unpaused_ms is set once Airflow confirms the
-- DAG is unpaused. Whichever process ends the deploy, or finds it interrupted after a crash,
-- unpauses every row whose unpaused_ms is NULL. A DAG that was already paused before the deploy
-- is deleted from here (already_paused) and never unpaused by the bot.
CREATE TABLE deploy_paused_dags (
    deploy_id    INTEGER NOT NULL REFERENCES deploys (id),
    dag_id       TEXT    NOT NULL,
    -- The run that waited on its sensor when the DAG was paused.
    run_id       TEXT,
    asked_ms     INTEGER NOT NULL,
    paused_ms    INTEGER,
    unpaused_ms  INTEGER,
    -- The last unpause attempt's failure, shown on the card until an attempt succeeds.
    last_error   TEXT,
    PRIMARY KEY (deploy_id, dag_id)
);

-- --when-idle: a deploy that holds its lock and waits for DAG runs (state waiting_for_dags).
-- The long-running leader process checks the runs, refreshes waiting_for (what the card shows),
-- and starts the deploy once they are over, or ends it blocked at deadline_ms.
CREATE TABLE deploy_waits (
    deploy_id    INTEGER PRIMARY KEY REFERENCES deploys (id),
    deadline_ms  INTEGER NOT NULL,
    -- "flickr_workflow run scheduled__…, running for 2 h; …" as of checked_ms.
    waiting_for  TEXT    NOT NULL,
    checked_ms   INTEGER NOT NULL,
    -- The requester's roles when asked (JSON list): the process that starts the deploy acts for
    -- the requester with exactly these.
    roles        TEXT    NOT NULL,
    -- Where the requester asked (the audit's source: discord, slack, local).
    source       TEXT    NOT NULL
);
