-- materialized: view
-- unique_key: device_id, user_name
-- raw_docs: doc ->> 'type' = 'telemetry'
-- description: One row per device and user, from the earliest telemetry doc of each (cht-couch2pg).
-- Each doc's metadata and device read out once (OFFSET 0 keeps them from being inlined): a
-- telemetry doc is large and stored compressed, and each field read from the whole doc
-- decompressed it again (15 times per doc: 3x the time).
WITH t AS (
  SELECT d._id, d.doc -> 'metadata' AS m, d.doc -> 'device' AS dv, d.doc #>> '{dbInfo,doc_count}' AS doc_count
  FROM raw.couchdb_docs AS d
  WHERE d.doc ->> 'type' = 'telemetry'
    AND NOT d._deleted
  OFFSET 0
)
SELECT DISTINCT ON (t.m ->> 'deviceId', t.m ->> 'user')
  t._id AS telemetry_doc_id,
  t.m ->> 'deviceId' AS device_id,
  t.m ->> 'user' AS user_name,
  get_telemetry_date(t.m #>> '{versions,app}', t.m ->> 'year', t.m ->> 'month', t.m ->> 'day') AS period_start,
  t.dv #>> '{deviceInfo,hardware,manufacturer}' AS device_manufacturer,
  t.dv #>> '{deviceInfo,hardware,model}' AS device_model,
  t.doc_count,
  t.dv ->> 'userAgent' AS user_agent,
  t.dv #>> '{deviceInfo,app,version}' AS cht_android_version,
  t.dv #>> '{deviceInfo,software,androidVersion}' AS android_version,
  t.dv #>> '{deviceInfo,storage,free}' AS storage_free,
  t.dv #>> '{deviceInfo,storage,total}' AS storage_total,
  t.dv #>> '{deviceInfo,network,upSpeed}' AS network_up_speed,
  t.dv #>> '{deviceInfo,network,downSpeed}' AS network_down_speed
FROM t
ORDER BY t.m ->> 'deviceId', t.m ->> 'user', 4 ASC
