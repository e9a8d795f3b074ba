-- Agent sessions: every registration gets a new random session secret,
-- kept only as its SHA-256 hex. Every later agent call names its agent by
-- that secret, and a report on a job is accepted only from the agent that
-- holds the attempt's lease (see docs/design/store.md, "Fencing").
-- Registering again under the same name replaces the session, so a
-- previous life of the agent (or an impostor using its name) is refused.
ALTER TABLE agents ADD COLUMN session_hash TEXT;
CREATE UNIQUE INDEX agents_session ON agents (session_hash) WHERE session_hash IS NOT NULL;

-- When the server declared the agent lost (its lease logic saw it go
-- silent), NULL while it is online. Cleared by any call from the agent.
ALTER TABLE agents ADD COLUMN lost_at INTEGER;
