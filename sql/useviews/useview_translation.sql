-- materialized: view
-- unique_key: lang, key
-- raw_docs: _id LIKE 'messages-%'
-- data_version: rows
-- description: Every translation of CHT's translation docs (`messages-<lang>` in medic): one row per language and translation key with its words. A deployment's `custom` words win over the shipped `generic` ones, which win over the pre-4.x `values`; a language is the doc's `code` (else the id's suffix); only string values count; a disabled language still counts (reports made in it carry its keys). No translation doc: no rows.
WITH section AS (
  SELECT
    d._id,
    CASE
      WHEN jsonb_typeof(d.doc -> 'code') = 'string' AND d.doc ->> 'code' <> '' THEN d.doc ->> 'code'
      ELSE substring(d._id FROM 10)
    END AS lang,
    s.priority,
    s.words
  FROM raw.couchdb_docs AS d
  CROSS JOIN LATERAL (
    VALUES (1, d.doc -> 'values'), (2, d.doc -> 'generic'), (3, d.doc -> 'custom')
  ) AS s (priority, words)
  WHERE d._id LIKE 'messages-%'
    AND NOT d._deleted
    AND jsonb_typeof(s.words) = 'object'
)
SELECT DISTINCT ON (s.lang, w.key)
  s.lang,
  w.key,
  w.value #>> '{}' AS text
FROM section AS s
CROSS JOIN LATERAL jsonb_each(s.words) AS w (key, value)
WHERE jsonb_typeof(w.value) = 'string'
ORDER BY s.lang, w.key, s._id DESC, s.priority DESC
