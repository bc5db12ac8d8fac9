-- materialized: incremental
-- raw_docs: doc ->> 'type' = 'telemetry'
-- unique_key: uuid
-- indexes: saved_timestamp; period_start; user_name; app_version
-- description: cht-pipeline 2.0's telemetry: every live telemetry doc, with the first day it covers (midnight UTC; months counted from 0 by apps older than 3.8.0; NULL when not a date, where cht-pipeline fails the run), user, app version, boot times and local doc count.
SELECT DISTINCT ON (d._id)
  d._id AS uuid,
  d.saved_timestamp AT TIME ZONE 'UTC' AS saved_timestamp,
  get_telemetry_date(
    d.doc #>> '{metadata,versions,app}', d.doc #>> '{metadata,year}',
    d.doc #>> '{metadata,month}', d.doc #>> '{metadata,day}'
  )::timestamp AT TIME ZONE 'UTC' AS period_start,
  d.doc #>> '{metadata,user}' AS user_name,
  d.doc #>> '{metadata,versions,app}' AS app_version,
  d.doc #>> '{metrics,boot_time,min}' AS boot_time_min,
  d.doc #>> '{metrics,boot_time,max}' AS boot_time_max,
  d.doc #>> '{metrics,boot_time,count}' AS boot_time_count,
  d.doc #>> '{dbInfo,doc_count}' AS doc_count_on_local_db
FROM raw.couchdb_docs AS d
WHERE d.doc ->> 'type' = 'telemetry'
  AND NOT d._deleted
ORDER BY d._id, d.source COLLATE "C"
