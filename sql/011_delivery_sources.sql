-- Delivery source tables: what the ad server and the recommendation slots showed, and what came of it.
-- Landing tables like events (ADR 0003): types, no keys or constraints except batch_date, so a bad day is
-- reported by the data-quality gate with its offending rows instead of vanishing in a failed load.
-- batch_date is the business date whose load delivered the row; a rerun of a date replaces its batch.

CREATE TABLE impressions (
    batch_date     date NOT NULL,
    impression_id  bigint,
    ts             timestamptz,
    user_id        bigint,
    placement      text,              -- 'banner_300x250', 'banner_728x90', ...; 'recs_home' for recommendations
    position       smallint,          -- 1-based slot within the placement (a recommendation list's rank)
    creative_id    text,              -- set for creative placements (ad_creatives.creative_id)
    item_id        bigint,            -- set for recommendation slots
    campaign_id    bigint,
    segment_id     integer,
    policy         text,              -- the policy that chose what was shown, e.g. 'thompson', 'uniform'
    policy_version text,
    propensity     double precision,  -- the probability with which that policy chose it, in (0, 1]
    arm            text               -- the user's experiment arm: 'personalised' or 'holdout'
);
-- The gate and the effects read one batch; outcomes join by impression id; attribution windows by time.
CREATE INDEX impressions_batch_date_idx ON impressions (batch_date);
CREATE INDEX impressions_impression_id_idx ON impressions (impression_id);
CREATE INDEX impressions_ts_idx ON impressions (ts);

-- One row per delivered outcome of an impression: a click, a conversion (after a click), revenue. A late
-- conversion arrives in a later batch than its click, as a row of its own naming the same impression.
CREATE TABLE outcomes (
    batch_date    date NOT NULL,
    impression_id bigint,
    click_ts      timestamptz,
    conversion_ts timestamptz,
    revenue       numeric(12, 2)
);
CREATE INDEX outcomes_batch_date_idx ON outcomes (batch_date);
CREATE INDEX outcomes_impression_id_idx ON outcomes (impression_id);
