-- kiln's SQLite schema, version 1. See docs/design/store.md.
--
-- Conventions:
-- * timestamps are INTEGER microseconds since the Unix epoch (UTC), so
--   comparisons and ORDER BY work on them directly;
-- * statuses are the lowercase names of kiln_model::JobStatus;
-- * booleans are INTEGER 0/1;
-- * JSON columns hold serde_json text of the named Rust type;
-- * AUTOINCREMENT everywhere an id is shown to people or used as a cursor,
--   so an id is never reused after a delete.

CREATE TABLE repos (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE,
    url         TEXT    NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE runs (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    repo_id        INTEGER NOT NULL REFERENCES repos (id),
    workflow_file  TEXT    NOT NULL,
    workflow_name  TEXT    NOT NULL,
    commit_sha     TEXT    NOT NULL,
    git_ref        TEXT,
    event          TEXT    NOT NULL,
    workflow       TEXT,             -- JSON: kiln_model::workflow::Workflow
    contexts       TEXT    NOT NULL, -- JSON: RunContexts
    status         TEXT    NOT NULL CHECK (status IN
                     ('queued', 'running', 'success', 'failure', 'cancelled', 'skipped')),
    error          TEXT,
    graph          TEXT,             -- the serialized run graph
    version        INTEGER NOT NULL, -- optimistic concurrency, bumped by every apply
    created_at     INTEGER NOT NULL,
    started_at     INTEGER,
    finished_at    INTEGER
);
CREATE INDEX runs_by_repo ON runs (repo_id, id);
CREATE INDEX runs_active ON runs (id) WHERE status IN ('queued', 'running');

CREATE TABLE agents (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT    NOT NULL UNIQUE,
    labels      TEXT    NOT NULL, -- JSON: [String]
    capacity    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL
);

-- Job instances: one matrix combination of one job of one run, across
-- attempts. The queue is the instances whose status is 'queued'.
CREATE TABLE instances (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id            INTEGER NOT NULL REFERENCES runs (id),
    node              INTEGER NOT NULL,
    idx               INTEGER NOT NULL,
    job_key           TEXT    NOT NULL,
    name              TEXT    NOT NULL,
    matrix            TEXT,             -- JSON: kiln_model::Value
    runs_on           TEXT    NOT NULL, -- JSON: [String]
    weight            INTEGER NOT NULL,
    status            TEXT    NOT NULL CHECK (status IN
                        ('queued', 'running', 'success', 'failure', 'cancelled', 'skipped')),
    attempt           INTEGER NOT NULL DEFAULT 0, -- the fencing token
    max_attempts      INTEGER NOT NULL,
    agent_id          INTEGER REFERENCES agents (id),
    lease_expires_at  INTEGER,
    cancel_requested  INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    reason            TEXT,
    contexts          TEXT    NOT NULL, -- JSON: kiln_proto::agent::JobContexts
    result            TEXT,             -- JSON: kiln_proto::results::JobResult
    graph_applied     INTEGER NOT NULL CHECK (graph_applied IN (0, 1)),
    -- FIFO position, assigned once when the instance is created and kept
    -- when a lost lease puts it back in the queue.
    queue_seq         INTEGER NOT NULL UNIQUE,
    queued_at         INTEGER NOT NULL,
    started_at        INTEGER,
    finished_at       INTEGER
);
CREATE INDEX instances_by_run ON instances (run_id, node, idx);
CREATE INDEX instances_queue ON instances (queue_seq)
    WHERE status = 'queued' AND cancel_requested = 0;
CREATE INDEX instances_running ON instances (lease_expires_at) WHERE status = 'running';
CREATE INDEX instances_unapplied ON instances (id) WHERE graph_applied = 0;

CREATE TABLE attempts (
    instance_id  INTEGER NOT NULL REFERENCES instances (id),
    attempt      INTEGER NOT NULL,
    agent_id     INTEGER NOT NULL REFERENCES agents (id),
    agent_name   TEXT    NOT NULL, -- as it was when claimed
    status       TEXT    NOT NULL CHECK (status IN
                   ('queued', 'running', 'success', 'failure', 'cancelled', 'skipped')),
    reason       TEXT,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    result       TEXT,             -- JSON: kiln_proto::results::JobResult
    PRIMARY KEY (instance_id, attempt)
);

-- Log chunks. (instance_id, attempt, seq) is the natural key and makes
-- uploads idempotent; `id` is global, assigned in commit order (writes are
-- serialized), and is the paging cursor.
CREATE TABLE log_chunks (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       INTEGER NOT NULL REFERENCES runs (id),
    instance_id  INTEGER NOT NULL REFERENCES instances (id),
    attempt      INTEGER NOT NULL,
    seq          INTEGER NOT NULL,
    line_count   INTEGER NOT NULL,
    data         BLOB    NOT NULL, -- zlib-deflated JSON: [kiln_proto::api::LogEntry]
    UNIQUE (instance_id, attempt, seq)
);
CREATE INDEX log_chunks_by_run ON log_chunks (run_id, id);

CREATE TABLE tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    hash        TEXT    NOT NULL UNIQUE, -- SHA-256 hex of the secret
    role        TEXT    NOT NULL CHECK (role IN ('admin', 'maintainer', 'viewer', 'agent')),
    name        TEXT,
    created_at  INTEGER NOT NULL
);
