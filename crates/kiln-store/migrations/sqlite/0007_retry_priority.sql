-- Retry by failure class (docs/design/store.md, "Retries"). An instance's
-- retry policy is `max_attempts` (retries + 1, as before) and the classes
-- it retries, as JSON ([kiln_model::RetryOn]). NULL: an instance created
-- before this migration, which retried agent loss only.
ALTER TABLE instances ADD COLUMN retry_on TEXT;

-- Why the attempt failed (kiln_model::FailureClass, as its name); NULL
-- while it runs, when it did not fail, and when its agent did not say.
ALTER TABLE attempts ADD COLUMN failure TEXT
    CHECK (failure IN ('agent-lost', 'checkout', 'timeout', 'exit-code', 'other'));

-- Priorities: a repository's default priority for its jobs (`kiln repo
-- add --priority N`), used unless the workflow or the job sets one.
ALTER TABLE repo_triggers ADD COLUMN priority INTEGER NOT NULL DEFAULT 0
    CHECK (priority BETWEEN -1000 AND 1000);
