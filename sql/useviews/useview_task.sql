-- materialized: incremental
-- raw_docs: doc ->> 'type' IN ('task', 'user-settings')
-- unique_key: uuid
-- indexes: user_name, state_at; month; owner_uuid; chw_uuid
-- gin_indexes: area_uuids
-- Each row's few area uuids are looked up in the changed ids (hashed), not the ids scanned per
-- row as `area_uuids && ids` does: at 1 000 000 docs, 1 % changed, 40 s -> 1.3 s.
-- affected_sql: SELECT t.uuid FROM {table} AS t CROSS JOIN (SELECT %s::text[] AS ids) AS c LEFT JOIN contactview_hierarchy AS ch ON ch.uuid = t.chw_uuid LEFT JOIN contactview_hierarchy AS o ON o.uuid = t.owner_uuid LEFT JOIN contactview_hierarchy AS h ON h.uuid = coalesce(o.uuid, t.chw_uuid) WHERE t.user_name IN (SELECT s.doc ->> 'name' FROM raw.couchdb_docs AS s WHERE s._id = ANY(c.ids) AND s.doc ->> 'type' = 'user-settings') OR (t.chw_uuid = ANY(c.ids) OR t.owner_uuid = ANY(c.ids) OR EXISTS (SELECT FROM unnest(t.area_uuids) AS a (uuid) WHERE a.uuid = ANY(c.ids))) AND (t.chw_name, t.area_uuids, t.district_hospital_uuid, t.district_hospital_name, t.health_center_uuid, t.health_center_name, t.clinic_uuid, t.clinic_name) IS DISTINCT FROM (ch.name, h.area_uuids, h.district_hospital_uuid, h.district_hospital_name, h.health_center_uuid, h.health_center_name, h.clinic_uuid, h.clinic_name)
-- rebuild_on_change: SELECT dashboard_language(), md5(coalesce(string_agg(l.key || '=' || l.label, '|' ORDER BY l.key), '')) FROM useview_label AS l
-- description: One row per task doc (the client-generated CHT task, its latest revision): the user and the CHW contact it belongs to (from user-settings), the contact it shows on (owner) and the one whose data raised it (requester), the emission (title key and its words in the dashboards' language, else English, else the key, from useview_label; first action's form, source report), its window (due/start/end dates), when it first became Ready, its current state and when that state began, whether it was completed on time (Completed at or before the end of its end date, UTC), and the month of its due date; with the place hierarchy of the owner contact (or, without one, of the CHW). Incremental by task doc: a changed task doc rewrites its row; a changed user-settings doc the rows of its user, a changed owner, CHW contact or place the rows whose CHW name or hierarchy it changed (not every row below an edited place) (a deleted user-settings doc shows on the task's next change or a full rebuild); a change of the dashboards' language or of their words rebuilds it whole.
WITH task AS (
  SELECT
    d._id,
    d.doc,
    regexp_replace(d.doc ->> 'user', '^org\.couchdb\.user:', '') AS user_name,
    cht_to_date(d.doc #>> '{emission,dueDate}') AS due_date,
    cht_to_date(d.doc #>> '{emission,endDate}') AS end_date
  FROM raw.couchdb_docs AS d
  WHERE d.doc ->> 'type' = 'task'
    AND NOT d._deleted
),
chw AS (
  SELECT DISTINCT ON (s.doc ->> 'name')
    s.doc ->> 'name' AS user_name,
    s.doc ->> 'contact_id' AS contact_uuid
  FROM raw.couchdb_docs AS s
  WHERE s.doc ->> 'type' = 'user-settings'
    AND NOT s._deleted
  ORDER BY s.doc ->> 'name', s._id
)
SELECT
  t._id AS uuid,
  t.user_name,
  chw.contact_uuid AS chw_uuid,
  ch.name AS chw_name,
  t.doc ->> 'owner' AS owner_uuid,
  t.doc ->> 'requester' AS requester_uuid,
  t.doc #>> '{emission,_id}' AS emission_id,
  t.doc #>> '{emission,title}' AS title,
  coalesce(l.label, t.doc #>> '{emission,title}') AS title_label,
  t.doc #>> '{emission,actions,0,form}' AS form,
  t.doc #>> '{emission,actions,0,content,source_id}' AS source_id,
  cht_epoch_ms_to_timestamptz(t.doc ->> 'authoredOn') AS authored,
  t.due_date,
  cht_to_date(t.doc #>> '{emission,startDate}') AS start_date,
  t.end_date,
  (
    SELECT min(cht_epoch_ms_to_timestamptz(s ->> 'timestamp'))
    FROM jsonb_array_elements(cht_as_jsonb_array(t.doc -> 'stateHistory')) AS s
    WHERE s ->> 'state' = 'Ready'
  ) AS ready_at,
  t.doc ->> 'state' AS state,
  st.state_at,
  coalesce(
    t.doc ->> 'state' = 'Completed' AND st.state_at < ((t.end_date + 1)::timestamp AT TIME ZONE 'UTC'), false
  ) AS completed_on_time,
  date_trunc('month', t.due_date)::date AS month,
  h.area_uuids,
  h.district_hospital_uuid,
  h.district_hospital_name,
  h.health_center_uuid,
  h.health_center_name,
  h.clinic_uuid,
  h.clinic_name
FROM task AS t
LEFT JOIN chw ON chw.user_name = t.user_name
LEFT JOIN useview_label AS l ON l.key = t.doc #>> '{emission,title}'
LEFT JOIN contactview_hierarchy AS ch ON ch.uuid = chw.contact_uuid
LEFT JOIN contactview_hierarchy AS o ON o.uuid = t.doc ->> 'owner'
LEFT JOIN contactview_hierarchy AS h ON h.uuid = coalesce(o.uuid, chw.contact_uuid)
LEFT JOIN LATERAL (
  SELECT cht_epoch_ms_to_timestamptz(s ->> 'timestamp') AS state_at
  FROM jsonb_array_elements(cht_as_jsonb_array(t.doc -> 'stateHistory')) WITH ORDINALITY AS h (s, n)
  WHERE s ->> 'state' = t.doc ->> 'state'
  ORDER BY h.n DESC
  LIMIT 1
) AS st ON true
