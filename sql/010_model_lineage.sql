-- Point-in-time model lineage. The champion of a business date D is the latest promotion (not revoked)
-- whose as_of_date <= D, so a backfill of an earlier date never changes which model serves a later date
-- that already has its own promotion. A run for D compares with and warm-starts from the champion of D-1
-- (its parent) and records its promotion in the transaction that writes D's outputs.

ALTER TABLE model_runs DROP CONSTRAINT model_runs_status_check;
DROP INDEX model_runs_one_champion_idx;
-- 'promoted': served from its as_of_date on; 'superseded': a later run of the same date replaced it.
UPDATE model_runs SET status = 'promoted' WHERE status IN ('champion', 'retired');
ALTER TABLE model_runs ADD CONSTRAINT model_runs_status_check
    CHECK (status IN ('candidate', 'promoted', 'rejected', 'superseded'));
ALTER TABLE model_runs ADD COLUMN parent_version text;   -- the champion of D-1 it was compared with
ALTER TABLE model_runs ADD COLUMN decision text;         -- why it was promoted or not

-- Append-only: a promotion is revoked (never deleted) when a rerun of its date decides otherwise.
CREATE TABLE model_promotions (
    id          bigserial PRIMARY KEY,
    model_name  text NOT NULL,
    version     text NOT NULL,
    as_of_date  date NOT NULL,
    promoted_at timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    revoked_by  text,                                    -- e.g. 'rerun of 2026-06-22'
    FOREIGN KEY (model_name, version) REFERENCES model_runs (model_name, version)
);
CREATE INDEX model_promotions_lookup_idx ON model_promotions (model_name, as_of_date) WHERE revoked_at IS NULL;

-- Existing promotions keep serving from their run's date (their order of promotion is kept).
INSERT INTO model_promotions (model_name, version, as_of_date, promoted_at)
SELECT model_name, version, as_of_date, coalesce(promoted_at, created_at)
FROM model_runs WHERE status = 'promoted'
ORDER BY coalesce(promoted_at, created_at);

-- Which model served each model task's outputs of a date, written with those outputs. A promotion at an
-- earlier date that changes a later date's champion or parent marks that date stale (never rewrites it).
CREATE TABLE served_lineage (
    model_name     text NOT NULL,
    as_of_date     date NOT NULL,
    version        text,                                 -- NULL: no model yet (fallback outputs)
    model_as_of    date,                                 -- the date the serving model was trained on
    parent_version text,                                 -- the champion of D-1 when the date ran
    trained        text,                                 -- the date's own candidate, if one was trained
    policy         text NOT NULL DEFAULT 'champion_of_date'
                   CHECK (policy IN ('champion_of_date', 'current_champion')),
    written_at     timestamptz NOT NULL DEFAULT now(),
    stale_reason   text,
    stale_at       timestamptz,
    PRIMARY KEY (model_name, as_of_date)
);
