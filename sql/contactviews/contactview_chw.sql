-- materialized: view
-- unique_key: uuid
-- description: CHWs: persons whose parent is a health_center (CHW area) (cht-couch2pg).
SELECT
  chw.name,
  fields.uuid,
  fields.phone,
  fields.phone2,
  fields.date_of_birth,
  fields.parent_type,
  area.uuid AS area_uuid,
  area.parent_uuid AS branch_uuid
FROM contactview_person_fields AS fields
JOIN contactview_metadata AS chw ON chw.uuid = fields.uuid
JOIN contactview_metadata AS area ON area.uuid = chw.parent_uuid
WHERE fields.parent_type = 'health_center'
