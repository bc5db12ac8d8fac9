-- materialized: view
-- unique_key: uuid
-- description: District hospitals (cht-couch2pg's contactview_hospital).
SELECT uuid, name
FROM contactview_metadata
WHERE type = 'district_hospital'
