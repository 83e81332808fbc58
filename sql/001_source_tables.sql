-- Source tables: the data contract the pipelines read (see README "Data contract").
-- users, items, item_images and campaigns are dimension tables with keys and foreign keys.
-- events is the landing table for upstream feeds: it holds what arrived, exactly as it arrived. Its keys,
-- types-in-range and references are enforced by the data-quality gate rather than by constraints, so a
-- bad day is reported with its offending rows (and stops the models) instead of vanishing in a failed load.
-- batch_date says which day's load delivered an event, so the gate can check that the day's events really
-- happened on that day (a clock bug upstream shows up as events "in the future" of their batch).

CREATE TABLE users (
    user_id     bigint PRIMARY KEY,
    signup_date date NOT NULL,
    age_group   text,
    region      text
);

CREATE TABLE items (
    item_id  bigint PRIMARY KEY,
    category text NOT NULL,
    price    numeric(12, 2) NOT NULL CHECK (price >= 0),
    title    text NOT NULL
);
CREATE INDEX items_category_idx ON items (category);

CREATE TABLE item_images (
    item_id bigint PRIMARY KEY REFERENCES items (item_id) ON DELETE CASCADE,
    image   bytea NOT NULL,           -- PNG bytes
    width   integer NOT NULL CHECK (width > 0),
    height  integer NOT NULL CHECK (height > 0),
    source  text                      -- provenance, e.g. 'fashion-mnist:train:1234'
);

CREATE TABLE events (
    batch_date date NOT NULL,         -- the business date whose load delivered the row
    event_id   bigint,
    user_id    bigint,
    item_id    bigint,
    event_type text,
    event_ts   timestamptz,
    price      numeric(12, 2),
    quantity   integer
);
-- The gate reads one batch; as-of reads select by time; per-user histories read by user then time.
CREATE INDEX events_batch_date_idx ON events (batch_date);
CREATE INDEX events_event_ts_idx ON events (event_ts);
CREATE INDEX events_user_ts_idx ON events (user_id, event_ts);
CREATE INDEX events_event_id_idx ON events (event_id);

CREATE TABLE campaigns (
    campaign_id       bigint PRIMARY KEY,
    name              text NOT NULL,
    start_date        date NOT NULL,
    end_date          date NOT NULL,
    categories        text[] NOT NULL CHECK (cardinality(categories) > 0),
    target_segments   integer[] NOT NULL DEFAULT '{}',   -- empty: the whole audience
    headline_template text NOT NULL,
    discount_pct      numeric(5, 2) CHECK (discount_pct BETWEEN 0 AND 100),
    CHECK (end_date >= start_date)
);
CREATE INDEX campaigns_window_idx ON campaigns (start_date, end_date);
