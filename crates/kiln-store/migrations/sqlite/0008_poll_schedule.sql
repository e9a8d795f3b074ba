-- When each repository is polled next, in the store: servers sharing the
-- database take turns (the one whose compare-and-set moves `next_at`
-- polls), and a restarted server keeps the rhythm.
CREATE TABLE poll_schedule (
    repo_id  INTEGER PRIMARY KEY REFERENCES repos (id),
    next_at  INTEGER NOT NULL
);
