-- materialized: view
-- unique_key: form
-- raw_docs: doc ->> 'type' = 'form' OR _id = 'settings'
-- data_version: rows
-- description: One row per form of the deployment (XForm docs `form:<id>`, contact forms aside, and the SMS forms of the app settings) with its title in words, as CHT shows it: the form's translation key (`translation_key`, `meta.translation_key` of an SMS form) in the dashboards' language, else English (useview_label); else its title: a title per language (`[{locale, content}]`, or `{<locale>: text}`) in the dashboards' language, else English, else the first; a plain title translated when it is a translation key, else as written; else the form id.
WITH form AS (
  SELECT
    d.doc ->> 'internalId' AS form,
    1 AS kind,
    d.source,
    CASE WHEN jsonb_typeof(d.doc -> 'translation_key') = 'string' THEN d.doc ->> 'translation_key' END AS translation_key,
    d.doc -> 'title' AS title
  FROM raw.couchdb_docs AS d
  WHERE d.doc ->> 'type' = 'form'
    AND NOT d._deleted
    AND d._id NOT LIKE 'form:contact:%'
    AND d.doc ->> 'internalId' IS NOT NULL
  UNION ALL
  SELECT
    f.key AS form,
    2 AS kind,
    s.source,
    CASE WHEN jsonb_typeof(f.value #> '{meta,translation_key}') = 'string' THEN f.value #>> '{meta,translation_key}' END,
    f.value #> '{meta,label}'
  FROM raw.couchdb_docs AS s
  CROSS JOIN LATERAL jsonb_each(
    CASE WHEN jsonb_typeof(s.doc #> '{settings,forms}') = 'object' THEN s.doc #> '{settings,forms}' ELSE '{}' END
  ) AS f
  WHERE s._id = 'settings'
    AND NOT s._deleted
    AND jsonb_typeof(f.value) = 'object'
),
chosen AS (
  SELECT DISTINCT ON (form) *
  FROM form
  ORDER BY form, kind, source
)
SELECT
  c.form,
  coalesce(
    key_label.label,
    CASE jsonb_typeof(c.title)
      WHEN 'string' THEN coalesce(title_label.label, nullif(c.title #>> '{}', ''))
      WHEN 'array' THEN (
        SELECT e ->> 'content'
        FROM jsonb_array_elements(c.title) WITH ORDINALITY AS x (e, n)
        WHERE jsonb_typeof(e) = 'object' AND jsonb_typeof(e -> 'content') = 'string' AND e ->> 'content' <> ''
        ORDER BY e ->> 'locale' = dashboard_language() DESC, e ->> 'locale' = 'en' DESC, n
        LIMIT 1
      )
      WHEN 'object' THEN coalesce(
        CASE WHEN jsonb_typeof(c.title -> dashboard_language()) = 'string' THEN nullif(c.title ->> dashboard_language(), '') END,
        CASE WHEN jsonb_typeof(c.title -> 'en') = 'string' THEN nullif(c.title ->> 'en', '') END
      )
    END,
    c.form
  ) AS label
FROM chosen AS c
LEFT JOIN useview_label AS key_label ON key_label.key = c.translation_key
LEFT JOIN useview_label AS title_label ON title_label.key = c.title #>> '{}' AND jsonb_typeof(c.title) = 'string'
