-- materialized: table
-- unique_key: area_uuid, sex, age_band
-- description: Living persons by sex and age band (00-04, 05-14, 15-49, 50+: zero-padded so they sort) per area (the parent of their household), with households counted; household = a place of the lowest place type.
WITH leaf_types AS (
  SELECT t.id
  FROM contactview_contact_type AS t
  WHERE NOT t.is_person
    AND NOT EXISTS (
      SELECT 1 FROM contactview_contact_type AS child WHERE NOT child.is_person AND t.id = ANY(child.parent_types)
    )
),
persons AS (
  SELECT
    person.uuid,
    coalesce(nullif(person.sex, ''), 'unknown') AS sex,
    CASE
      WHEN person.date_of_birth IS NULL THEN 'unknown'
      WHEN age(current_date, person.date_of_birth) < interval '5 years' THEN '00-04'
      WHEN age(current_date, person.date_of_birth) < interval '15 years' THEN '05-14'
      WHEN age(current_date, person.date_of_birth) < interval '50 years' THEN '15-49'
      ELSE '50+'
    END AS age_band,
    household.uuid AS household_uuid,
    household.parent_uuid AS area_uuid
  FROM contactview_contact AS person
  JOIN contactview_hierarchy AS ph ON ph.uuid = person.uuid AND ph.is_person
  JOIN contactview_contact AS household ON household.uuid = person.parent_uuid
  JOIN leaf_types ON leaf_types.id = household.contact_type
  WHERE person.date_of_death IS NULL
),
grouped AS (
  SELECT area_uuid, sex, age_band, count(*)::integer AS persons, count(DISTINCT household_uuid)::integer AS households
  FROM persons
  GROUP BY area_uuid, sex, age_band
)
SELECT
  grouped.area_uuid,
  grouped.sex,
  grouped.age_band,
  grouped.persons,
  grouped.households,
  area.area_uuids,
  area.district_hospital_uuid,
  area.district_hospital_name,
  area.health_center_uuid,
  area.health_center_name,
  area.clinic_uuid,
  area.clinic_name
FROM grouped
LEFT JOIN contactview_hierarchy AS area ON area.uuid = grouped.area_uuid
