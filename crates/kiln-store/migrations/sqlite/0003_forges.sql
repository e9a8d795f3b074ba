-- Forges: where a repository's commit statuses and pull request comments
-- go, and the outbox of reports still to deliver (design: docs/design/forge-api.md).

-- One forge per repository. The API token is sealed (AEAD) with the
-- server's secret key; the database never holds it in clear.
CREATE TABLE repo_forges (
    repo_id       INTEGER PRIMARY KEY REFERENCES repos (id),
    kind          TEXT    NOT NULL CHECK (kind IN ('github', 'gitea', 'forgejo', 'gitlab')),
    api_url       TEXT    NOT NULL,
    full_name     TEXT    NOT NULL,
    token_nonce   BLOB    NOT NULL,
    token_sealed  BLOB    NOT NULL,
    updated_at    INTEGER NOT NULL
);

-- The outbox: one row per run that has (or had) something to report.
-- `seq` grows with every request; a delivery clears `due` only for the
-- request it read, so news that arrives during a delivery is not lost.
CREATE TABLE forge_reports (
    run_id      INTEGER PRIMARY KEY REFERENCES runs (id),
    seq         INTEGER NOT NULL,
    due         INTEGER NOT NULL,
    attempts    INTEGER NOT NULL,
    next_at     INTEGER NOT NULL,
    last_error  TEXT,
    comment_id  INTEGER
);

CREATE INDEX forge_reports_due ON forge_reports (next_at) WHERE due = 1;
