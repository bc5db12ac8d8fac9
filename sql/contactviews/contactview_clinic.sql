-- materialized: view
-- unique_key: uuid, chw_uuid
-- description: Households (clinics) in a CHW area, with the area's CHW (cht-couch2pg).
SELECT
  clinic.uuid,
  clinic.name,
  chw.uuid AS chw_uuid,
  clinic.reported AS created
FROM contactview_metadata AS clinic
JOIN contactview_chw AS chw ON chw.area_uuid = clinic.parent_uuid
WHERE clinic.type = 'clinic'
