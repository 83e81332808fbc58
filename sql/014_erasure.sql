-- Erasure on request (GDPR art. 17): one row per customer whose personal data must go, and which erasure
-- each model run's training data already reflects. pipelines.privacy.erasure does the work; the request
-- row is the audit record (who, when, what was removed as row counts), so it is the one place that keeps
-- the erased user's id.

CREATE TABLE erasure_requests (
    id            bigserial PRIMARY KEY,
    user_id       bigint NOT NULL UNIQUE,               -- a second request for the same user is refused
    requested_at  timestamptz NOT NULL DEFAULT now(),
    requested_by  text NOT NULL,                        -- e.g. 'forget_users run manual__2026-07-01...'
    status        text NOT NULL DEFAULT 'pending'
                  CHECK (status IN ('pending', 'running', 'completed')),
    started_at    timestamptz,
    completed_at  timestamptz,
    completed_seq bigint UNIQUE,                        -- completion order: runs compare erasures by it
    removed       jsonb NOT NULL DEFAULT '{}',          -- per table or artifact folder: what was removed
    last_error    text,                                 -- why the last attempt stopped (it is retried)
    CHECK ((status = 'completed') = (completed_at IS NOT NULL AND completed_seq IS NOT NULL))
);
CREATE SEQUENCE erasure_completion_seq OWNED BY erasure_requests.completed_seq;
CREATE INDEX erasure_requests_open_idx ON erasure_requests (id) WHERE status <> 'completed';

-- The newest completed erasure a run's training data reflects (NULL: none had completed when it read).
-- A run whose value is older than a completed erasure learned from erased users: it is stale, never a
-- warm start, and never serves again.
ALTER TABLE model_runs ADD COLUMN erasure_seen bigint REFERENCES erasure_requests (id);

-- No extra index for the per-user deletes: each output partition holds one date, so the primary keys
-- (as_of_date, user_id, ...) serve a lookup by user with PostgreSQL 18's skip scan; an index on user_id alone
-- would slow every day's COPY for an operation that runs a few times a day.
