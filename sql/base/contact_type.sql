-- materialized: view
-- unique_key: id
-- raw_docs: _id = 'settings'
-- data_version: rows
-- description: cht-pipeline 2.0's contact_type: the types configured in the settings doc (`settings.contact_types`) and those the contacts use, whether each is a person type (`person`, or `person: true` in the settings) and whether it is configured. A view: it spans every contact and the settings doc, so no single doc's change could maintain it.
WITH settings AS (
  SELECT t.value AS element
  FROM raw.couchdb_docs AS d
  CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(d.doc #> '{settings,contact_types}') = 'array'
      THEN d.doc #> '{settings,contact_types}' ELSE '[]'::jsonb END
  ) AS t (value)
  WHERE d._id = 'settings' AND NOT d._deleted
),
existing AS (
  SELECT DISTINCT c.contact_type AS id
  FROM contact AS c
)
SELECT
  coalesce(s.element ->> 'id', e.id) AS id,
  coalesce(s.element ->> 'id', e.id) = 'person' OR coalesce(s.element ->> 'person' = 'true', false) AS person,
  s.element IS NOT NULL AS configured
FROM settings AS s
FULL OUTER JOIN existing AS e ON e.id = s.element ->> 'id'
