-- materialized: incremental
-- raw_docs: doc ->> 'type' = 'data_record'
-- unique_key: uuid
-- indexes: chw; reported; formname
-- xform_check: true
-- doc_check: reports
-- description: Every report with a form: submitter, submitter's place and time (cht-couch2pg's form_metadata).
SELECT
  d._id AS uuid,
  d.doc #>> '{contact,_id}' AS chw,
  d.doc #>> '{contact,parent,_id}' AS chw_area,
  d.doc ->> 'form' AS formname,
  -- UTC wall time, as cht-couch2pg's `timestamp 'epoch' + ms`: a plain ::timestamp cast would
  -- follow the TimeZone of whichever session refreshed the row.
  cht_epoch_ms_to_timestamptz(d.doc ->> 'reported_date') AT TIME ZONE 'UTC' AS reported
FROM raw.couchdb_docs AS d
WHERE d.doc ->> 'type' = 'data_record'
  AND d.doc ->> 'form' IS NOT NULL
  AND NOT d._deleted
