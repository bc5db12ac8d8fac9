-- materialized: incremental
-- raw_docs: doc ->> 'type' = 'data_record'
-- unique_key: uuid
-- indexes: saved_timestamp; reported; from_phone; form; patient_id; contact_uuid, reported; parent_uuid; grandparent_uuid
-- description: cht-pipeline 2.0's data_record: every live report (app form or SMS), with its form, sender's phone, the patient and place it is about (top level, else in `fields`), and the submitter with the submitter's parent and grandparent as the report stored them. `reported` is `reported_date` to the whole second, as cht-pipeline computes it (NULL when it is not a number).
SELECT DISTINCT ON (d._id)
  d._id AS uuid,
  d.saved_timestamp AT TIME ZONE 'UTC' AS saved_timestamp,
  to_timestamp(trunc(extract(EPOCH FROM cht_epoch_ms_to_timestamptz(d.doc ->> 'reported_date')))) AS reported,
  d.doc ->> 'form' AS form,
  d.doc ->> 'from' AS from_phone,
  coalesce(d.doc ->> 'patient_id', d.doc #>> '{fields,patient_id}', d.doc #>> '{fields,patient_uuid}') AS patient_id,
  coalesce(d.doc ->> 'place_id', d.doc #>> '{fields,place_id}') AS place_id,
  d.doc #>> '{contact,_id}' AS contact_uuid,
  d.doc #>> '{contact,parent,_id}' AS parent_uuid,
  d.doc #>> '{contact,parent,parent,_id}' AS grandparent_uuid
FROM raw.couchdb_docs AS d
WHERE d.doc ->> 'type' = 'data_record'
  AND NOT d._deleted
ORDER BY d._id, d.source COLLATE "C"
