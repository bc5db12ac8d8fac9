-- materialized: incremental
-- raw_docs: doc ->> 'type' = 'target' OR _id = 'settings'
-- unique_key: uuid
-- doc_key: target_doc_uuid
-- indexes: target_doc_uuid; chw_uuid; user_name; month; target_id; health_center_uuid
-- gin_indexes: area_uuids
-- Each row's few area uuids are looked up in the changed ids (hashed), not the ids scanned per
-- row as `area_uuids && ids` does: at 1 000 000 docs, 1 % changed, 40 s -> 1.3 s.
-- affected_sql: SELECT t.target_doc_uuid FROM {table} AS t CROSS JOIN (SELECT %s::text[] AS ids) AS c LEFT JOIN contactview_hierarchy AS h ON h.uuid = t.chw_uuid WHERE (t.chw_uuid = ANY(c.ids) OR EXISTS (SELECT FROM unnest(t.area_uuids) AS a (uuid) WHERE a.uuid = ANY(c.ids))) AND (t.chw_name, t.area_uuids, t.district_hospital_uuid, t.district_hospital_name, t.health_center_uuid, t.health_center_name, t.clinic_uuid, t.clinic_name) IS DISTINCT FROM (h.name, h.area_uuids, h.district_hospital_uuid, h.district_hospital_name, h.health_center_uuid, h.health_center_name, h.clinic_uuid, h.clinic_name)
-- rebuild_on_change: SELECT dashboard_language(), md5(coalesce(string_agg(l.key || '=' || l.label, '|' ORDER BY l.key), '')), (SELECT md5(string_agg(s.doc #>> '{settings,tasks,targets}', '|' ORDER BY s.source)) FROM raw.couchdb_docs AS s WHERE s._id = 'settings' AND NOT s._deleted) FROM useview_label AS l
-- description: One row per user, reporting period and target (the target doc's winning revision, the one the client wrote last in that period): pass, total, percent (as the doc gives it, else pass*100/total, NULL when total is 0), the goal, type and label (translation key, else name) of the target's definition in the app settings (settings.tasks.targets.items; a negative goal means none), target_label (the label's words in the dashboards' language, else English, from useview_label; else the label, else the target id) and whether the goal is met (percent targets by percent, count targets by pass; NULL without a goal), with the CHW's (owner's) place hierarchy. Incremental by target doc (charts and RLS filters read a table, not the targets unpacked from the raw docs per query): a changed target doc rewrites its rows, a changed CHW contact or place the rows whose CHW name or hierarchy it changed (not every row below an edited place); a change of the settings' targets, of the dashboards' language or of their words rebuilds it whole.
WITH definition AS (
  SELECT DISTINCT ON (i ->> 'id')
    i ->> 'id' AS target_id,
    CASE WHEN jsonb_typeof(i -> 'goal') = 'number' AND (i ->> 'goal')::numeric >= 0 THEN (i ->> 'goal')::numeric END AS goal,
    i ->> 'type' AS target_type,
    coalesce(
      CASE WHEN jsonb_typeof(i -> 'translation_key') = 'string' THEN i ->> 'translation_key' END,
      CASE WHEN jsonb_typeof(i -> 'name') = 'string' THEN i ->> 'name' END
    ) AS label
  FROM raw.couchdb_docs AS s
  CROSS JOIN LATERAL jsonb_array_elements(cht_as_jsonb_array(s.doc #> '{settings,tasks,targets,items}')) AS x (i)
  WHERE s._id = 'settings'
    AND NOT s._deleted
    AND jsonb_typeof(i) = 'object'
    AND i ->> 'id' IS NOT NULL
  ORDER BY i ->> 'id', s.source
),
target AS (
  SELECT
    d._id,
    regexp_replace(d.doc ->> 'user', '^org\.couchdb\.user:', '') AS user_name,
    d.doc ->> 'owner' AS owner,
    d.doc ->> 'reporting_period' AS reporting_period,
    t ->> 'id' AS target_id,
    cht_to_integer(t #>> '{value,pass}') AS pass,
    cht_to_integer(t #>> '{value,total}') AS total,
    cht_to_numeric(t #>> '{value,percent}') AS percent,
    t -> 'value' ? 'percent' AS has_percent
  FROM raw.couchdb_docs AS d
  CROSS JOIN LATERAL jsonb_array_elements(cht_as_jsonb_array(d.doc -> 'targets')) AS x (t)
  WHERE d.doc ->> 'type' = 'target'
    AND NOT d._deleted
    AND t ->> 'id' IS NOT NULL
),
measured AS (
  SELECT
    t.*,
    coalesce(t.percent, t.pass * 100.0 / nullif(t.total, 0)) AS percent_value,
    coalesce(def.target_type, CASE WHEN t.has_percent THEN 'percent' ELSE 'count' END) AS type_value,
    def.goal,
    def.label
  FROM target AS t
  LEFT JOIN definition AS def ON def.target_id = t.target_id
)
SELECT
  m._id || '/' || m.target_id AS uuid,
  m._id AS target_doc_uuid,
  m.user_name,
  m.owner AS chw_uuid,
  h.name AS chw_name,
  m.reporting_period,
  cht_to_date(m.reporting_period || '-01') AS month,
  m.target_id,
  m.pass,
  m.total,
  m.percent_value AS percent,
  m.goal,
  m.type_value AS target_type,
  m.label,
  coalesce(l.label, m.label, m.target_id) AS target_label,
  CASE WHEN m.type_value = 'percent' THEN m.percent_value ELSE m.pass END >= m.goal AS met_goal,
  h.area_uuids,
  h.district_hospital_uuid,
  h.district_hospital_name,
  h.health_center_uuid,
  h.health_center_name,
  h.clinic_uuid,
  h.clinic_name
FROM measured AS m
LEFT JOIN useview_label AS l ON l.key = m.label
LEFT JOIN contactview_hierarchy AS h ON h.uuid = m.owner
