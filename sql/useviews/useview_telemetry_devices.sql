-- materialized: view
-- unique_key: device_id, user_name
-- raw_docs: doc ->> 'type' = 'telemetry'
-- description: One row per device and user, from the earliest telemetry doc of each (cht-couch2pg).
SELECT DISTINCT ON (d.doc #>> '{metadata,deviceId}', d.doc #>> '{metadata,user}')
  d._id AS telemetry_doc_id,
  d.doc #>> '{metadata,deviceId}' AS device_id,
  d.doc #>> '{metadata,user}' AS user_name,
  get_telemetry_date(
    d.doc #>> '{metadata,versions,app}', d.doc #>> '{metadata,year}',
    d.doc #>> '{metadata,month}', d.doc #>> '{metadata,day}'
  ) AS period_start,
  d.doc #>> '{device,deviceInfo,hardware,manufacturer}' AS device_manufacturer,
  d.doc #>> '{device,deviceInfo,hardware,model}' AS device_model,
  d.doc #>> '{dbInfo,doc_count}' AS doc_count,
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
ORDER BY d.doc #>> '{metadata,deviceId}', d.doc #>> '{metadata,user}', 4 ASC
