-- materialized: view
-- unique_key: id
-- raw_docs: _id = 'settings'
-- data_version: rows
-- description: Contact types: CHT's built-in ones and those configured in the settings doc (settings.contact_types), with whether each is a person.
WITH configured AS (
  SELECT
    t.value ->> 'id' AS id,
    coalesce(t.value ->> 'person', 'false') = 'true' AS is_person,
    CASE
      WHEN jsonb_typeof(t.value -> 'parents') = 'array'
        THEN ARRAY(SELECT jsonb_array_elements_text(t.value -> 'parents'))
      ELSE ARRAY[]::text[]
    END AS parent_types
  FROM raw.couchdb_docs AS d
  CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(d.doc #> '{settings,contact_types}') = 'array'
      THEN d.doc #> '{settings,contact_types}' ELSE '[]'::jsonb END
  ) AS t (value)
  WHERE d._id = 'settings' AND NOT d._deleted AND t.value ->> 'id' IS NOT NULL
),
builtin (id, is_person, parent_types) AS (
  VALUES
    ('district_hospital', false, ARRAY[]::text[]),
    ('health_center', false, ARRAY['district_hospital']),
    ('clinic', false, ARRAY['health_center']),
    ('person', true, ARRAY['district_hospital', 'health_center', 'clinic'])
)
SELECT id, is_person, parent_types, true AS configured FROM configured
UNION ALL
SELECT id, is_person, parent_types, false AS configured FROM builtin
WHERE id NOT IN (SELECT id FROM configured)
