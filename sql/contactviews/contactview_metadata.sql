-- materialized: incremental
-- raw_docs: doc ->> 'type' IN ('contact', 'clinic', 'district_hospital', 'health_center', 'person')
-- unique_key: uuid
-- indexes: contact_uuid; parent_uuid; type
-- description: Every person and place (cht-couch2pg's contactview_metadata).
SELECT
  d._id AS uuid,
  d.doc ->> 'name' AS name,
  d.doc ->> 'type' AS type,
  d.doc ->> 'contact_type' AS contact_type,
  d.doc #>> '{contact,_id}' AS contact_uuid,
  d.doc #>> '{parent,_id}' AS parent_uuid,
  d.doc ->> 'notes' AS notes,
  cht_epoch_ms_to_timestamptz(d.doc ->> 'reported_date') AS reported
FROM raw.couchdb_docs AS d
WHERE d.doc ->> 'type' IN ('contact', 'clinic', 'district_hospital', 'health_center', 'person')
  AND NOT d._deleted
