-- Claiming in the store: the next job an agent's labels and free capacity
-- can take, by priority, then round-robin between repositories, then FIFO
-- (see docs/design/store.md, "Claiming"). Jobs no online agent can run
-- never stand in the way of those it can.

-- Every distinct `runs-on` set, once. A claim first picks the sets the
-- agent's labels cover (a handful of rows), then seeks the queue index
-- only under those: 10,000 queued jobs for a label nobody has cost it
-- nothing.
CREATE TABLE label_sets (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    labels  TEXT    NOT NULL UNIQUE -- JSON: [String], sorted, no duplicates
);

ALTER TABLE instances ADD COLUMN label_set INTEGER REFERENCES label_sets (id);
-- Higher first; 0 by default.
ALTER TABLE instances ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
-- The run's repository, kept on the instance so that the claim index can
-- order by it.
ALTER TABLE instances ADD COLUMN repo_id INTEGER REFERENCES repos (id);

INSERT OR IGNORE INTO label_sets (labels) SELECT DISTINCT runs_on FROM instances;
UPDATE instances SET
    label_set = (SELECT id FROM label_sets WHERE labels = instances.runs_on),
    repo_id = (SELECT repo_id FROM runs WHERE runs.id = instances.run_id);

CREATE INDEX instances_claim ON instances (label_set, priority, repo_id, queue_seq, weight)
    WHERE status = 'queued' AND hold IS NULL AND cancel_requested = 0;

-- The round-robin cursor between repositories: the repository served
-- last. One row; in the store so that fairness survives a restart and is
-- shared by every server on the database.
CREATE TABLE dispatch_cursor (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    last_repo  INTEGER
);
INSERT INTO dispatch_cursor (id, last_repo) VALUES (1, NULL);
