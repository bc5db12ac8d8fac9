-- materialized: incremental
-- raw_docs: doc ->> 'type' IN ('contact', 'clinic', 'district_hospital', 'health_center', 'person')
-- unique_key: uuid
-- indexes: saved_timestamp; reported; parent_uuid; contact_type
-- references: parent_uuid -> contact.uuid
-- description: cht-pipeline 2.0's contact: every live person and place, with its parent (one level), name, effective type (`contact_type`, else `type`), `is_active`, notes and muted state. `reported` is `reported_date` to the whole second, as cht-pipeline computes it (NULL when it is not a number).
SELECT DISTINCT ON (d._id)
  d._id AS uuid,
  d.saved_timestamp AT TIME ZONE 'UTC' AS saved_timestamp,
  to_timestamp(trunc(extract(EPOCH FROM cht_epoch_ms_to_timestamptz(d.doc ->> 'reported_date')))) AS reported,
  d.doc #>> '{parent,_id}' AS parent_uuid,
  d.doc ->> 'name' AS name,
  coalesce(d.doc ->> 'contact_type', d.doc ->> 'type') AS contact_type,
  d.doc ->> 'is_active' AS active,
  d.doc ->> 'notes' AS notes,
  nullif(d.doc ->> 'muted', '') AS muted
FROM raw.couchdb_docs AS d
WHERE d.doc ->> 'type' IN ('contact', 'clinic', 'district_hospital', 'health_center', 'person')
  AND NOT d._deleted
ORDER BY d._id, d.source COLLATE "C"
