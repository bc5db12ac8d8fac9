-- materialized: view
-- unique_key: user_name, month
-- raw_docs: doc ->> 'type' = 'user-settings'
-- nullable_key: month
-- description: Tasks per user per month of their due date: tasks due, completed, completed on time, failed, cancelled, and the completion rate (completed / due), with the CHW's place hierarchy.
WITH monthly AS (
  SELECT
    user_name,
    month,
    count(*)::integer AS tasks_due,
    count(*) FILTER (WHERE state = 'Completed')::integer AS completed,
    count(*) FILTER (WHERE completed_on_time)::integer AS completed_on_time,
    count(*) FILTER (WHERE state = 'Failed')::integer AS failed,
    count(*) FILTER (WHERE state = 'Cancelled')::integer AS cancelled
  FROM useview_task
  GROUP BY user_name, month
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
  m.user_name,
  chw.contact_uuid AS chw_uuid,
  h.name AS chw_name,
  m.month,
  m.tasks_due,
  m.completed,
  m.completed_on_time,
  m.failed,
  m.cancelled,
  round(m.completed::numeric / nullif(m.tasks_due, 0), 4) AS completion_rate,
  h.area_uuids,
  h.district_hospital_uuid,
  h.district_hospital_name,
  h.health_center_uuid,
  h.health_center_name,
  h.clinic_uuid,
  h.clinic_name
FROM monthly AS m
LEFT JOIN chw ON chw.user_name = m.user_name
LEFT JOIN contactview_hierarchy AS h ON h.uuid = chw.contact_uuid
