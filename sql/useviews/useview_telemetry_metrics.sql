-- materialized: incremental
-- raw_docs: doc ->> 'type' = 'telemetry'
-- unique_key: telemetry_doc_id, metric
-- doc_key: telemetry_doc_id
-- indexes: period_start; device_id; user_name
-- description: One row per telemetry doc and metric: min, max, sum, count, sumsqr (cht-couch2pg).
SELECT
  d._id AS telemetry_doc_id,
  m.key AS metric,
  get_telemetry_date(
    d.doc #>> '{metadata,versions,app}', d.doc #>> '{metadata,year}',
    d.doc #>> '{metadata,month}', d.doc #>> '{metadata,day}'
  ) AS period_start,
  d.doc #>> '{metadata,user}' AS user_name,
  d.doc #>> '{metadata,deviceId}' AS device_id,
  cht_to_numeric(m.value ->> 'min') AS min,
  cht_to_numeric(m.value ->> 'max') AS max,
  cht_to_numeric(m.value ->> 'sum') AS sum,
  cht_to_numeric(m.value ->> 'count')::bigint AS count,
  cht_to_numeric(m.value ->> 'sumsqr') AS sumsqr
FROM raw.couchdb_docs AS d
CROSS JOIN LATERAL jsonb_each(
  CASE WHEN jsonb_typeof(d.doc -> 'metrics') = 'object' THEN d.doc -> 'metrics' ELSE '{}'::jsonb END
) AS m (key, value)
WHERE d.doc ->> 'type' = 'telemetry'
  AND NOT d._deleted
  AND jsonb_typeof(m.value) = 'object'
