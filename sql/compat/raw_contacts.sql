-- materialized: view
-- unique_key: doc
-- raw_docs: doc ->> 'type' IN ('contact', 'clinic', 'district_hospital', 'health_center', 'person')
-- description: cht-couch2pg's raw_contacts: the live contact docs of `couchdb`.
SELECT doc
FROM couchdb
WHERE doc ->> 'type' IN ('contact', 'clinic', 'district_hospital', 'health_center', 'person')
