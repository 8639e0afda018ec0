-- Detached steps (issue 16): a step runs under a small supervisor of its own (its own session and
-- process group), writing its output to a file in the deploy's journal directory and its exit
-- status there when it ends, so it outlives the bot. One row per started step run: which deploy
-- and step, where its files are, who supervises it (pid and start time, so a reused pid is not
-- mistaken for it), how far its output was posted, and how the workflow took its end.
CREATE TABLE step_runs (
    id              BIGSERIAL PRIMARY KEY,
    deploy_id       BIGINT  NOT NULL REFERENCES deploys (id),
    step            TEXT    NOT NULL,
    host            TEXT    NOT NULL,
    dir             TEXT    NOT NULL,
    supervisor_pid  BIGINT,
    -- The supervisor's start time in clock ticks since boot (/proc/<pid>/stat, field 22).
    supervisor_start BIGINT,
    -- Bytes of the output file already posted to the deploy's conversation.
    output_offset   BIGINT  NOT NULL DEFAULT 0,
    started_ms      BIGINT  NOT NULL,
    -- Set when the workflow took the step's end: succeeded, failed or lost.
    outcome         TEXT,
    exit_code       BIGINT,
    finished_ms     BIGINT
);
CREATE INDEX step_runs_deploy ON step_runs (deploy_id, step);
