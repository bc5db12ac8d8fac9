-- materialized: incremental
-- raw_docs: doc ->> 'type' = 'feedback'
-- unique_key: uuid
-- indexes: saved_timestamp; period_start; user_name
-- description: cht-pipeline 2.0's feedback: every live feedback doc (errors and user feedback from the app), as cht-couch2pg's useview_feedback with the doc's saved_timestamp.
SELECT DISTINCT ON (d._id)
  d._id AS uuid,
  d.saved_timestamp AT TIME ZONE 'UTC' AS saved_timestamp,
  d.doc #>> '{meta,source}' AS source,
  d.doc #>> '{meta,url}' AS url,
  d.doc #>> '{meta,user,name}' AS user_name,
  d.doc #>> '{meta,time}' AS period_start,
  coalesce(d.doc #>> '{info,cause}', d.doc ->> 'info') AS cause,
  d.doc #>> '{info,message}' AS message
FROM raw.couchdb_docs AS d
WHERE d.doc ->> 'type' = 'feedback'
  AND NOT d._deleted
ORDER BY d._id, d.source COLLATE "C"
