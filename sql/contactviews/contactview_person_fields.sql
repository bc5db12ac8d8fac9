-- materialized: view
-- unique_key: uuid
-- raw_docs: doc ->> 'type' = 'person'
-- description: Phone numbers, birth date and parent type of every person (cht-couch2pg).
SELECT
  person.uuid,
  d.doc ->> 'phone' AS phone,
  d.doc ->> 'alternative_phone' AS phone2,
  d.doc ->> 'date_of_birth' AS date_of_birth,
  parent.type AS parent_type
FROM contactview_metadata AS person
JOIN raw.couchdb_docs AS d ON d._id = person.uuid AND NOT d._deleted
LEFT JOIN contactview_metadata AS parent ON parent.uuid = person.parent_uuid
WHERE person.type = 'person'
