-- Concurrency groups, environments and deploys (kiln_core::gate).
-- See docs/deploys.md and docs/design/store.md.

-- Why a queued run or instance may not start yet: JSON of
-- kiln_proto::api::Waiting, NULL when nothing holds it back. A held run has
-- not started its graph; a held instance is not offered to agents.
ALTER TABLE runs ADD COLUMN hold TEXT;
ALTER TABLE instances ADD COLUMN hold TEXT;

-- One run (instance_id NULL) or job instance in one gate: a concurrency
-- group or an environment of a repository. The id is the arrival order.
CREATE TABLE gate_entries (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    repo_id             INTEGER NOT NULL REFERENCES repos (id),
    kind                TEXT    NOT NULL CHECK (kind IN ('group', 'environment')),
    name                TEXT    NOT NULL,
    run_id              INTEGER NOT NULL REFERENCES runs (id),
    instance_id         INTEGER REFERENCES instances (id),
    commit_sha          TEXT    NOT NULL,
    state               TEXT    NOT NULL CHECK (state IN ('waiting', 'holding', 'done')),
    force               INTEGER NOT NULL CHECK (force IN (0, 1)),
    cancel_in_progress  INTEGER NOT NULL CHECK (cancel_in_progress IN (0, 1)),
    approval            TEXT    NOT NULL CHECK (approval IN
                          ('not_needed', 'pending', 'granted', 'rejected')),
    approver            TEXT,
    actor               TEXT    NOT NULL, -- who or what started it
    outcome             TEXT,             -- how it left the gate, once done
    created_at          INTEGER NOT NULL,
    released_at         INTEGER,
    finished_at         INTEGER
);
CREATE INDEX gate_entries_live ON gate_entries (repo_id, kind, name, id) WHERE state != 'done';
CREATE INDEX gate_entries_by_run ON gate_entries (run_id);
CREATE INDEX gate_entries_history ON gate_entries (repo_id, kind, name, id);

-- What each environment runs now: the last deploy that changed it.
CREATE TABLE environments (
    repo_id      INTEGER NOT NULL REFERENCES repos (id),
    name         TEXT    NOT NULL,
    commit_sha   TEXT    NOT NULL,
    healthy      INTEGER NOT NULL CHECK (healthy IN (0, 1)),
    run_id       INTEGER NOT NULL REFERENCES runs (id),
    entry_id     INTEGER NOT NULL REFERENCES gate_entries (id),
    deployed_by  TEXT    NOT NULL,
    deployed_at  INTEGER NOT NULL,
    PRIMARY KEY (repo_id, name)
);
