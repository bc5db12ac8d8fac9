-- materialized: incremental
-- raw_docs: doc ->> 'type' = 'user-settings'
-- unique_key: user_id
-- indexes: saved_timestamp
-- description: cht-pipeline 2.0's user (quote it: "user"): every live `user-settings` doc, with the user's contact (`contact_id`, else `facility_id`), language and roles (the JSON text of the array).
SELECT DISTINCT ON (d._id)
  d._id AS user_id,
  d.saved_timestamp AT TIME ZONE 'UTC' AS saved_timestamp,
  coalesce(d.doc ->> 'contact_id', d.doc ->> 'facility_id') AS contact_uuid,
  d.doc ->> 'language' AS language,
  d.doc ->> 'roles' AS roles
FROM raw.couchdb_docs AS d
WHERE d.doc ->> 'type' = 'user-settings'
  AND NOT d._deleted
ORDER BY d._id, d.source COLLATE "C"
