-- materialized: incremental
-- unique_key: uuid
-- indexes: saved_timestamp; doc_type; _deleted; instance; dbname
-- description: cht-pipeline 2.0's document_metadata: one row per live doc of every replicated database, with its type and where it came from (`instance`: the CouchDB server when the source names one, as cht-sync's `host/db` does, else NULL; `dbname`: the database). Deleted docs have no row (cht-pipeline deletes them after each run). An `_id` found in several databases (design docs; `org.couchdb.user:*` in medic and `_users`) appears once: a `_users` account yields to any other doc of that id, the rest go by database name.
SELECT DISTINCT ON (d._id)
  d._id AS uuid,
  d.saved_timestamp AT TIME ZONE 'UTC' AS saved_timestamp,
  d._deleted,
  d.doc ->> 'type' AS doc_type,
  CASE WHEN strpos(d.source, '/') > 0 THEN split_part(d.source, '/', 1) END AS instance,
  split_part(d.source, '/', -1) AS dbname
FROM raw.couchdb_docs AS d
WHERE NOT d._deleted
ORDER BY d._id, coalesce(d.doc ->> 'type' = 'user', false), d.source COLLATE "C"
