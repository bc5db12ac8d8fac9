-- materialized: view
-- unique_key: source
-- description: Per CouchDB database: the replicated seq, changes still pending, when the last change arrived, and how long ago that was.
SELECT
  source,
  seq,
  pending,
  updated_at AS synced_at,
  round(extract(epoch FROM now() - updated_at)::numeric, 1) AS lag_seconds
FROM raw.couchdb_progress
