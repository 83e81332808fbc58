-- Why a row exists: each recommendation names its reason, each segment carries a description of its members.
-- Rows written before this migration keep NULL reasons (ALTER on the parent reaches every partition).
ALTER TABLE recommendations
    ADD COLUMN reason_code text
        CHECK (reason_code IN ('history_item', 'popular_in_segment', 'popular_in_store')),
    -- 'history_item': the history item whose removal lowers this item's score most (pipelines.recs.explain)
    ADD COLUMN reason_item_id bigint,
    ADD CONSTRAINT recommendations_reason_item_check
        CHECK ((reason_code = 'history_item') = (reason_item_id IS NOT NULL));

-- Size, top categories with lift over the whole store, recency/frequency, demographics (pipelines.profiles.segments).
ALTER TABLE segments ADD COLUMN description jsonb;
