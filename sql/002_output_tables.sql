-- Output tables, declaratively partitioned by business date (one partition per day, created on first
-- write by pipelines.warehouse.partitions). A rerun replaces a day's partition inside one transaction;
-- reads for one date prune to one partition; retention is DROP TABLE of old partitions (no bloat).
-- Primary keys include the partition key, as PostgreSQL requires.

CREATE TABLE dq_results (
    as_of_date        date NOT NULL,
    expectation       text NOT NULL,      -- stable name, e.g. 'events.event_id.unique'
    expectation_type  text NOT NULL,      -- the Great Expectations class
    table_name        text NOT NULL,
    column_name       text,
    severity          text NOT NULL CHECK (severity IN ('critical', 'warning')),
    success           boolean NOT NULL,
    observed_value    jsonb,
    unexpected_count  bigint,
    unexpected_sample jsonb,
    PRIMARY KEY (as_of_date, expectation)
) PARTITION BY RANGE (as_of_date);

-- The model registry: one row per training run (candidate), its evaluation and its artifact.
-- Not partitioned: the champion of a model is looked up across all dates.
CREATE TABLE model_runs (
    model_name      text NOT NULL,
    version         text NOT NULL,
    as_of_date      date NOT NULL,
    status          text NOT NULL CHECK (status IN ('candidate', 'champion', 'rejected', 'retired')),
    metrics         jsonb NOT NULL DEFAULT '{}',
    params          jsonb NOT NULL DEFAULT '{}',
    protocol        jsonb NOT NULL DEFAULT '{}',
    artifact_path   text,
    artifact_sha256 text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    promoted_at     timestamptz,
    PRIMARY KEY (model_name, version)
);
CREATE INDEX model_runs_date_idx ON model_runs (model_name, as_of_date);
CREATE UNIQUE INDEX model_runs_one_champion_idx ON model_runs (model_name) WHERE status = 'champion';

CREATE TABLE segments (
    as_of_date     date NOT NULL,
    segment_id     integer NOT NULL,
    label          text NOT NULL,
    size           bigint NOT NULL CHECK (size >= 0),
    centroid       real[] NOT NULL,
    top_categories jsonb NOT NULL,        -- [{"category": ..., "affinity": ...}, ...]
    drift          jsonb,                 -- size change and PSI against the previous run
    model_version  text NOT NULL,
    PRIMARY KEY (as_of_date, segment_id)
) PARTITION BY RANGE (as_of_date);

CREATE TABLE user_profiles (
    as_of_date     date NOT NULL,
    user_id        bigint NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    embedding      real[] NOT NULL,       -- 004 turns this into pgvector's vector where available
    segment_id     integer NOT NULL,
    top_categories jsonb NOT NULL,
    model_version  text NOT NULL,
    PRIMARY KEY (as_of_date, user_id)
) PARTITION BY RANGE (as_of_date);
CREATE INDEX user_profiles_segment_idx ON user_profiles (as_of_date, segment_id);

-- No foreign keys here: a day is millions of rows written by COPY, and every user and item in it comes
-- from the same as-of read of users and items; per-row FK triggers would halve the write rate.
CREATE TABLE recommendations (
    as_of_date    date NOT NULL,
    user_id       bigint NOT NULL,
    rank          smallint NOT NULL CHECK (rank >= 1),
    item_id       bigint NOT NULL,
    score         real NOT NULL,
    source        text NOT NULL CHECK (source IN ('model', 'segment_popularity', 'global_popularity')),
    model_version text NOT NULL,
    PRIMARY KEY (as_of_date, user_id, rank)
) PARTITION BY RANGE (as_of_date);

CREATE TABLE ad_creatives (
    campaign_date date NOT NULL,
    campaign_id   bigint NOT NULL REFERENCES campaigns (campaign_id) ON DELETE CASCADE,
    segment_id    integer NOT NULL,        -- -1: the whole audience (no segments yet)
    category      text NOT NULL,
    rank          smallint NOT NULL CHECK (rank >= 1),
    banner_size   text NOT NULL,           -- e.g. '300x250'
    image         bytea NOT NULL,          -- PNG bytes
    headline      text NOT NULL,
    scores        jsonb NOT NULL,
    status        text NOT NULL DEFAULT 'pending_review'
                  CHECK (status IN ('pending_review', 'approved', 'rejected')),
    reviewed_by   text,
    reviewed_at   timestamptz,
    model_version text NOT NULL,
    PRIMARY KEY (campaign_date, campaign_id, segment_id, category, rank, banner_size)
) PARTITION BY RANGE (campaign_date);
