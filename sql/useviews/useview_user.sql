-- materialized: view
-- unique_key: user_name
-- raw_docs: doc ->> 'type' IN ('user-settings', 'user')
-- indexes: user_name
-- description: One row per CHT user (user-settings docs in medic, enriched by the `_users` doc of type user where that database is replicated): name, roles, places (facility_id may be an array; facility_uuid is the first), contact, the first and last report submitted by the user's contact (to the second, as data_record's `reported`), the newest telemetry day and app version, and the last activity (latest of last report, telemetry day start UTC, task state change) with days since it as of today (UTC) and whether that is under 7 days; with the place hierarchy of the facility.
WITH settings AS (
  SELECT DISTINCT ON (s.doc ->> 'name')
    s._id,
    s.doc
  FROM raw.couchdb_docs AS s
  WHERE s.doc ->> 'type' = 'user-settings'
    AND s.doc ->> 'name' IS NOT NULL
    AND NOT s._deleted
  ORDER BY s.doc ->> 'name', s._id
),
account AS (
  SELECT DISTINCT ON (u._id)
    u._id,
    u.doc
  FROM raw.couchdb_docs AS u
  WHERE u.doc ->> 'type' = 'user'
    AND NOT u._deleted
  ORDER BY u._id, u.source
),
users AS (
  SELECT
    s.doc ->> 'name' AS user_name,
    s._id AS user_id,
    coalesce(s.doc ->> 'fullname', a.doc ->> 'fullname') AS fullname,
    coalesce(s.doc ->> 'email', a.doc ->> 'email') AS email,
    coalesce(s.doc ->> 'phone', a.doc ->> 'phone') AS phone,
    ARRAY(
      SELECT DISTINCT r FROM (
        SELECT jsonb_array_elements_text(cht_as_jsonb_array(s.doc -> 'roles'))
        UNION
        SELECT jsonb_array_elements_text(cht_as_jsonb_array(a.doc -> 'roles'))
      ) AS x (r)
      ORDER BY r
    ) AS roles,
    ARRAY(
      SELECT f
      FROM jsonb_array_elements_text(
        CASE jsonb_typeof(coalesce(s.doc -> 'facility_id', a.doc -> 'facility_id'))
          WHEN 'array' THEN coalesce(s.doc -> 'facility_id', a.doc -> 'facility_id')
          WHEN 'string' THEN jsonb_build_array(coalesce(s.doc -> 'facility_id', a.doc -> 'facility_id'))
          ELSE '[]'::jsonb
        END
      ) WITH ORDINALITY AS x (f, n)
      ORDER BY n
    ) AS facility_uuids,
    coalesce(s.doc ->> 'contact_id', a.doc ->> 'contact_id') AS contact_uuid,
    s.doc ->> 'language' AS language,
    (s.doc ->> 'known')::boolean AS known
  FROM settings AS s
  LEFT JOIN account AS a ON a._id = s._id
),
activity AS (
  SELECT
    u.*,
    r.first_report,
    r.last_report,
    t.last_telemetry_date,
    t.app_version,
    greatest(r.last_report, t.last_telemetry_date::timestamp AT TIME ZONE 'UTC', k.last_task_change) AS last_activity
  FROM users AS u
  -- Lookups per user through indexes (data_record (contact_uuid, reported), useview_telemetry
  -- (user_name, period_start), useview_task (user_name, state_at)): every chart query computes
  -- this view, and grouping all reports, telemetry and tasks made each one grow with the data.
  LEFT JOIN LATERAL (
    SELECT min(d.reported) AS first_report, max(d.reported) AS last_report
    FROM data_record AS d
    WHERE d.contact_uuid = u.contact_uuid
  ) AS r ON true
  LEFT JOIN LATERAL (
    SELECT t.period_start AS last_telemetry_date, t.app_version
    FROM useview_telemetry AS t
    WHERE t.user_name = u.user_name
      AND t.period_start IS NOT NULL
    ORDER BY t.period_start DESC, t.uuid DESC
    LIMIT 1
  ) AS t ON true
  LEFT JOIN LATERAL (
    SELECT max(k.state_at) AS last_task_change
    FROM useview_task AS k
    WHERE k.user_name = u.user_name
  ) AS k ON true
)
SELECT
  a.user_name,
  a.user_id,
  a.fullname,
  a.email,
  a.phone,
  a.roles,
  a.facility_uuids[1] AS facility_uuid,
  a.facility_uuids,
  a.contact_uuid,
  a.language,
  a.known,
  a.first_report,
  a.last_report,
  a.last_telemetry_date,
  a.app_version,
  a.last_activity,
  (now() AT TIME ZONE 'UTC')::date - (a.last_activity AT TIME ZONE 'UTC')::date AS days_since_last_activity,
  coalesce((now() AT TIME ZONE 'UTC')::date - (a.last_activity AT TIME ZONE 'UTC')::date < 7, false) AS active_7d,
  h.area_uuids,
  h.district_hospital_uuid,
  h.district_hospital_name,
  h.health_center_uuid,
  h.health_center_name,
  h.clinic_uuid,
  h.clinic_name
FROM activity AS a
LEFT JOIN contactview_hierarchy AS h ON h.uuid = a.facility_uuids[1]
