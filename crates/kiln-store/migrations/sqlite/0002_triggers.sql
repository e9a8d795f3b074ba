-- Triggers (issue 4, inbound half): per-repository trigger settings, what
-- polling last saw, deduplication of webhook deliveries and started events,
-- schedules' next fire times, pull request polling state, and runs held
-- until someone approves them (fork pull requests).

-- One row per repository that has settings; a repository without a row has
-- the defaults (poll every 60 s, no webhook secret, fork approval on, no
-- allowlist, reply to outsiders).
CREATE TABLE repo_triggers (
    repo_id             INTEGER PRIMARY KEY REFERENCES repos (id),
    poll_interval_secs  INTEGER NOT NULL CHECK (poll_interval_secs >= 0),
    webhook_secret      TEXT,
    fork_approval       INTEGER NOT NULL,
    command_allowlist   TEXT    NOT NULL, -- JSON: [String]
    reply_to_outsiders  INTEGER NOT NULL
);

-- The refs (`refs/heads/*`, `refs/tags/*` -> sha) polling last saw. No row:
-- no baseline yet (the next poll records one and starts nothing).
CREATE TABLE polled_refs (
    repo_id    INTEGER PRIMARY KEY REFERENCES repos (id),
    refs       TEXT    NOT NULL, -- JSON: {ref: sha}
    polled_at  INTEGER NOT NULL
);

-- Webhook deliveries already accepted, by the forge's delivery id.
CREATE TABLE deliveries (
    forge        TEXT    NOT NULL,
    delivery_id  TEXT    NOT NULL,
    received_at  INTEGER NOT NULL,
    PRIMARY KEY (forge, delivery_id)
);

-- Events that already started (or were decided), whatever reported them
-- first: a webhook and a later poll of the same commit start once.
CREATE TABLE started_events (
    repo_id     INTEGER NOT NULL REFERENCES repos (id),
    event_key   TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    PRIMARY KEY (repo_id, event_key)
);

-- The next fire time of each `on.schedule` entry of a workflow.
CREATE TABLE schedules (
    repo_id        INTEGER NOT NULL REFERENCES repos (id),
    workflow_file  TEXT    NOT NULL,
    cron_index     INTEGER NOT NULL,
    cron           TEXT    NOT NULL,
    next_fire      INTEGER NOT NULL,
    PRIMARY KEY (repo_id, workflow_file, cron_index)
);

-- Open pull requests as API polling last saw them.
CREATE TABLE pull_request_polls (
    repo_id       INTEGER NOT NULL REFERENCES repos (id),
    number        INTEGER NOT NULL,
    head_sha      TEXT    NOT NULL,
    last_comment  INTEGER NOT NULL,
    PRIMARY KEY (repo_id, number)
);

-- Runs held for approval (a fork's pull request) keep their reason in
-- runs.hold (added by 0004_gates), like runs waiting for a concurrency group.
