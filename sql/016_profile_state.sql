-- The profile VAE's compact input (pipelines.profiles.state): one row per (user, item) with weighted events in
-- the history window ending with `profile_state_meta.as_of`, so a daily run reads O(user x item pairs) rather
-- than every event of the window. `q` is an exact integer sum of fixed-point terms (each event's type weight
-- times 2^((event_ts - anchor) / half-life), scaled by 2^scale_bits), so adding a day, removing the day that
-- leaves the window, or applying a late change gives the same integers as summing the window afresh.
-- The state and its change log are a cache of `events`: UNLOGGED (no WAL for a rebuild's millions of rows);
-- after a crash empties them, the meta row's server start time no longer matches and the next run rebuilds.

CREATE UNLOGGED TABLE profile_state (
    user_id bigint NOT NULL,
    item_id bigint NOT NULL,
    q       bigint NOT NULL,            -- sum of the pair's fixed-point terms (decoded with the meta row's anchor)
    n       integer NOT NULL CHECK (n > 0),   -- the pair's weighted events in the window
    last_ts timestamptz NOT NULL,       -- the pair's latest event in the window
    PRIMARY KEY (user_id, item_id)
);

-- One row: which date the state is as of and how it was weighted. as_of NULL: no state (the next run builds it).
-- Writers of `events` lock this row FOR SHARE in the trigger below and the state's maintenance locks it
-- FOR UPDATE, so a change to a day the state already holds is either seen by the maintenance or logged after it.
CREATE TABLE profile_state_meta (
    id          smallint PRIMARY KEY CHECK (id = 1),
    as_of       date,
    window_days integer,
    anchor      date,
    spec        text,                  -- weights, half-life, scale: a state built under another spec is rebuilt
    server_started timestamptz,        -- pg_postmaster_start_time() when maintained: a restart may have emptied it
    updated_at  timestamptz
);
INSERT INTO profile_state_meta (id) VALUES (1);

-- Changes to events of days the state already holds (late arrivals, a reloaded batch, an erasure), signed:
-- +1 a row that appeared, -1 a row that went. The next maintenance applies and deletes them.
CREATE UNLOGGED TABLE profile_state_changes (
    user_id    bigint,
    item_id    bigint,
    event_type text,
    event_ts   timestamptz,
    sign       smallint NOT NULL CHECK (sign IN (-1, 1))
);

CREATE FUNCTION profile_state_log() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    held_as_of date;
    held_days integer;
    first_ts timestamptz;
    end_ts timestamptz;
BEGIN
    SELECT as_of, window_days INTO held_as_of, held_days FROM profile_state_meta WHERE id = 1 FOR SHARE;
    IF TG_OP = 'TRUNCATE' THEN
        UPDATE profile_state_meta SET as_of = NULL, updated_at = now() WHERE id = 1;
        RETURN NULL;
    END IF;
    IF held_as_of IS NULL THEN
        RETURN NULL;
    END IF;
    first_ts := (held_as_of - held_days + 1)::timestamp AT TIME ZONE 'UTC';
    end_ts := (held_as_of + 1)::timestamp AT TIME ZONE 'UTC';
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        INSERT INTO profile_state_changes
        SELECT user_id, item_id, event_type, event_ts, -1 FROM old_rows
        WHERE event_ts >= first_ts AND event_ts < end_ts;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO profile_state_changes
        SELECT user_id, item_id, event_type, event_ts, 1 FROM new_rows
        WHERE event_ts >= first_ts AND event_ts < end_ts;
    END IF;
    RETURN NULL;
END $$;

-- A trigger with transition tables covers one kind of statement, hence four.
CREATE TRIGGER events_profile_state_insert AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION profile_state_log();
CREATE TRIGGER events_profile_state_update AFTER UPDATE ON events
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION profile_state_log();
CREATE TRIGGER events_profile_state_delete AFTER DELETE ON events
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION profile_state_log();
CREATE TRIGGER events_profile_state_truncate AFTER TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION profile_state_log();
