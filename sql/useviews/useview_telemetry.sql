-- materialized: incremental
-- raw_docs: doc ->> 'type' = 'telemetry'
-- unique_key: uuid
-- indexes: period_start, user_name; user_name, period_start
-- description: One row per telemetry doc: period, user, app version, boot times (cht-couch2pg).
SELECT
  d._id AS uuid,
  get_telemetry_date(
    d.doc #>> '{metadata,versions,app}', d.doc #>> '{metadata,year}',
    d.doc #>> '{metadata,month}', d.doc #>> '{metadata,day}'
  ) AS period_start,
  d.doc #>> '{metadata,user}' AS user_name,
  d.doc #>> '{metadata,versions,app}' AS app_version,
  d.doc #>> '{metrics,boot_time,min}' AS boot_time_min,
  d.doc #>> '{metrics,boot_time,max}' AS boot_time_max,
  d.doc #>> '{metrics,boot_time,count}' AS boot_time_count,
  d.doc #>> '{dbInfo,doc_count}' AS doc_count_on_local_db
FROM raw.couchdb_docs AS d
WHERE d.doc ->> 'type' = 'telemetry'
  AND NOT d._deleted
