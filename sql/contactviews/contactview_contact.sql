-- materialized: incremental
-- raw_docs: doc ->> 'type' IN ('contact', 'clinic', 'district_hospital', 'health_center', 'person')
-- unique_key: uuid
-- indexes: parent_uuid; contact_type
-- references: parent_uuid -> contactview_contact.uuid
-- doc_check: contacts
-- description: Every contact with its effective type and its ancestors, read from the minified parent chain CHT stores on each contact (nearest first).
SELECT
  d._id AS uuid,
  d.doc ->> 'name' AS name,
  coalesce(nullif(d.doc ->> 'contact_type', ''), d.doc ->> 'type') AS contact_type,
  d.doc #>> '{parent,_id}' AS parent_uuid,
  coalesce(
    (
      WITH RECURSIVE chain (depth, node) AS (
        SELECT 1, d.doc -> 'parent'
        UNION ALL
        SELECT chain.depth + 1, chain.node -> 'parent'
        FROM chain
        WHERE jsonb_typeof(chain.node -> 'parent') = 'object' AND chain.depth < 50
      )
      SELECT array_agg(chain.node ->> '_id' ORDER BY chain.depth)
      FROM chain
      WHERE jsonb_typeof(chain.node) = 'object' AND chain.node ->> '_id' IS NOT NULL
    ),
    ARRAY[]::text[]
  ) AS ancestor_uuids,
  d.doc #>> '{contact,_id}' AS primary_contact_uuid,
  coalesce(d.doc ->> 'patient_id', d.doc ->> 'place_id') AS shortcode,
  d.doc ->> 'sex' AS sex,
  cht_to_date(d.doc ->> 'date_of_birth') AS date_of_birth,
  cht_to_date(d.doc ->> 'date_of_death') AS date_of_death,
  d.doc ->> 'muted' IS NOT NULL AS muted,
  cht_epoch_ms_to_timestamptz(d.doc ->> 'reported_date') AS reported
FROM raw.couchdb_docs AS d
WHERE d.doc ->> 'type' IN ('contact', 'clinic', 'district_hospital', 'health_center', 'person')
  AND NOT d._deleted
