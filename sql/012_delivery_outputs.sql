-- Outputs of the closed loop: a stable creative id, the delivery plan the ad server reads and the daily
-- effect reports. Both tables are partitioned by the business date of the run that wrote them and
-- replaced whole per date (pipelines.warehouse.partitions), like 002.

-- The creative concept (campaign, segment, category, rank) is the same on every campaign date while its
-- picture is re-rendered per date, so clicks logged against it on one day reach it again the next.
ALTER TABLE ad_creatives
    ADD COLUMN creative_id text GENERATED ALWAYS AS (
        'c' || campaign_id::text || '-s' || segment_id::text || '-' || category || '-r' || rank::text
    ) STORED;
CREATE INDEX ad_creatives_creative_idx ON ad_creatives (campaign_date, creative_id);

-- Replaced, not dropped, so grants to the ad servers survive; a new column can only come last.
CREATE OR REPLACE VIEW approved_creatives AS
SELECT campaign_date,
       campaign_id,
       segment_id,
       category,
       rank,
       banner_size,
       image,
       headline,
       scores,
       reviewed_by AS approved_by,
       reviewed_at AS approved_at,
       model_version,
       creative_id
FROM ad_creatives
WHERE status = 'approved';

-- Written by the run of as_of_date D for serve_date D + 1: per segment, placement and experiment arm, the
-- share of that traffic each creative (or, for the recommendation slot, each item) gets. The ad server
-- draws with these shares, so share is also the propensity it logs. Recommendation slots of the
-- personalised arm are served from `recommendations` (one row, policy 'recommendations', no item).
CREATE TABLE delivery_plan (
    as_of_date      date NOT NULL,
    serve_date      date NOT NULL,
    segment_id      integer NOT NULL,      -- -1: every segment
    placement       text NOT NULL,         -- 'banner_300x250', ... or 'recs_home'
    arm             text NOT NULL CHECK (arm IN ('personalised', 'holdout')),
    campaign_id     bigint,
    creative_id     text,
    item_id         bigint,
    position        smallint CHECK (position >= 1),
    policy          text NOT NULL,         -- 'thompson', 'uniform', 'popularity', 'recommendations'
    policy_version  text NOT NULL,
    share           double precision NOT NULL CHECK (share > 0 AND share <= 1),
    propensity      double precision NOT NULL CHECK (propensity > 0 AND propensity <= 1),
    clicks          bigint,                -- the evidence the share was drawn from (as of as_of_date)
    impressions     bigint,
    prior_mean      double precision,
    posterior_mean  double precision,
    frequency_cap   smallint NOT NULL CHECK (frequency_cap >= 1),  -- impressions per user per day, enforced by the ad server
    CHECK (serve_date = as_of_date + 1),
    UNIQUE NULLS NOT DISTINCT (as_of_date, segment_id, placement, arm, creative_id, item_id)
) PARTITION BY RANGE (as_of_date);
CREATE INDEX delivery_plan_serve_idx ON delivery_plan (serve_date, segment_id, placement);

-- What the ad server reads for a serve date: the approved creatives (pictures of the plan's run date)
-- with their planned share. Grant it beside approved_creatives.
CREATE VIEW planned_creatives AS
SELECT p.serve_date,
       p.segment_id,
       p.placement,
       p.arm,
       p.creative_id,
       p.share,
       p.propensity,
       p.frequency_cap,
       p.policy,
       p.policy_version,
       a.campaign_id,
       a.category,
       a.banner_size,
       a.image,
       a.headline,
       a.approved_by,
       a.approved_at
FROM delivery_plan AS p
JOIN approved_creatives AS a
  ON a.campaign_date = p.as_of_date
 AND a.creative_id = p.creative_id
 AND 'banner_' || a.banner_size = p.placement;

-- One row per measured quantity of a business date. kind 'rate': a metric (ctr, cvr,
-- revenue_per_impression) per creative x segment x placement x arm; 'lift': personalised over holdout
-- per placement; 'recs': the recommendation slot's online click rate and the offline hit rate;
-- 'ope': off-policy estimates (ips, snips, dr) of a plan (policy 'candidate' or 'live') on the day's logs.
CREATE TABLE effect_reports (
    as_of_date   date NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('rate', 'lift', 'recs', 'ope')),
    metric       text NOT NULL,
    placement    text,
    segment_id   integer,
    creative_id  text,
    arm          text,
    policy       text,
    value        double precision,         -- NULL when n = 0
    low          double precision,         -- the 95 percent interval
    high         double precision,
    n            bigint NOT NULL CHECK (n >= 0),
    method       text NOT NULL,            -- 'wilson', 'bootstrap', 'ips', ...
    UNIQUE NULLS NOT DISTINCT (as_of_date, kind, metric, placement, segment_id, creative_id, arm, policy)
) PARTITION BY RANGE (as_of_date);
