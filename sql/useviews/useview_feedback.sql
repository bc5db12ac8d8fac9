-- materialized: incremental
-- raw_docs: doc ->> 'type' = 'feedback'
-- unique_key: uuid
-- indexes: period_start, user_name
-- description: Feedback docs (errors and user feedback from the app) (cht-couch2pg).
SELECT
  d._id AS uuid,
  d.doc #>> '{meta,source}' AS source,
  d.doc #>> '{meta,url}' AS url,
  d.doc #>> '{meta,user,name}' AS user_name,
  d.doc #>> '{meta,time}' AS period_start,
  coalesce(d.doc #>> '{info,cause}', d.doc ->> 'info') AS cause,
  d.doc #>> '{info,message}' AS message
FROM raw.couchdb_docs AS d
WHERE d.doc ->> 'type' = 'feedback'
  AND NOT d._deleted
