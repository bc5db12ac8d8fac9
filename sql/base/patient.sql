-- materialized: incremental
-- raw_docs: doc ->> 'type' IN ('contact', 'clinic', 'district_hospital', 'health_center', 'person')
-- unique_key: uuid
-- indexes: saved_timestamp; patient_id
-- rebuild_on_change: SELECT t.id FROM contact_type AS t WHERE t.person ORDER BY t.id
-- description: cht-pipeline 2.0's patient: every person (see `person`) with a patient id. Person types are read from `contact_type` (`person` always is one); a change to them rebuilds it.
SELECT DISTINCT ON (d._id)
  d._id AS uuid,
  d.saved_timestamp AT TIME ZONE 'UTC' AS saved_timestamp,
  d.doc ->> 'patient_id' AS patient_id
FROM raw.couchdb_docs AS d
WHERE d.doc ->> 'type' IN ('contact', 'clinic', 'district_hospital', 'health_center', 'person')
  AND NOT d._deleted
  AND coalesce(d.doc ->> 'contact_type', d.doc ->> 'type') IN (SELECT t.id FROM contact_type AS t WHERE t.person AND t.id IS NOT NULL UNION SELECT 'person')
  AND d.doc ->> 'patient_id' IS NOT NULL
ORDER BY d._id, d.source COLLATE "C"
