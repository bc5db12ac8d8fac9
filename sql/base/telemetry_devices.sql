-- materialized: incremental
-- raw_docs: doc ->> 'type' = 'telemetry'
-- unique_key: uuid
-- indexes: saved_timestamp; period_start; android_version
-- description: cht-pipeline 2.0's telemetry_devices: the device of every live telemetry doc (one row per doc, not per device): manufacturer, model, user agent, CHT Android and Android versions, storage and network speeds.
SELECT DISTINCT ON (d._id)
  d._id AS uuid,
  d.saved_timestamp AT TIME ZONE 'UTC' AS saved_timestamp,
  get_telemetry_date(
    d.doc #>> '{metadata,versions,app}', d.doc #>> '{metadata,year}',
    d.doc #>> '{metadata,month}', d.doc #>> '{metadata,day}'
  )::timestamp AT TIME ZONE 'UTC' AS period_start,
  d.doc #>> '{device,deviceInfo,hardware,manufacturer}' AS device_manufacturer,
  d.doc #>> '{device,deviceInfo,hardware,model}' AS device_model,
  d.doc #>> '{device,userAgent}' AS user_agent,
  d.doc #>> '{device,deviceInfo,app,version}' AS cht_android_version,
  d.doc #>> '{device,deviceInfo,software,androidVersion}' AS android_version,
  d.doc #>> '{device,deviceInfo,storage,free}' AS storage_free,
  d.doc #>> '{device,deviceInfo,storage,total}' AS storage_total,
  d.doc #>> '{device,deviceInfo,network,upSpeed}' AS network_up_speed,
  d.doc #>> '{device,deviceInfo,network,downSpeed}' AS network_down_speed
FROM raw.couchdb_docs AS d
WHERE d.doc ->> 'type' = 'telemetry'
  AND NOT d._deleted
ORDER BY d._id, d.source COLLATE "C"
