-- materialized: view
-- unique_key: uuid
-- description: Primary contacts of households (cht-couch2pg's contactview_clinic_person).
SELECT
  person.uuid,
  person.name,
  person.type,
  person.parent_uuid AS family_uuid,
  fields.phone,
  fields.phone2,
  fields.date_of_birth,
  fields.parent_type
FROM contactview_metadata AS person
JOIN contactview_person_fields AS fields ON fields.uuid = person.uuid
WHERE person.type = 'person'
  AND person.uuid IN (SELECT contact_uuid FROM contactview_metadata WHERE type = 'clinic')
