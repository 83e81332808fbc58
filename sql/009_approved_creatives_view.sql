-- What ad servers read: only creatives a person approved in the Marketing page (Airflow UI), with who
-- approved them and when. Pending and rejected creatives never leave the warehouse through this view.
-- Ad servers get SELECT on this view only, e.g.:  GRANT SELECT ON approved_creatives TO ad_server;
CREATE VIEW approved_creatives AS
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
       model_version
FROM ad_creatives
WHERE status = 'approved';

COMMENT ON VIEW approved_creatives IS
    'Ad creatives approved for serving (status approved in ad_creatives); the ad servers'' only read path.';
