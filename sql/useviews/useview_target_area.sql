-- materialized: view
-- unique_key: health_center_uuid, reporting_period, target_id
-- nullable_key: health_center_uuid
-- description: Targets per health center (CHW area) per month: the CHWs reporting the target, their pass and total summed, the area's percent (pass*100/total, NULL when total is 0), and how many CHWs met the goal; area_uuids are the health center's own (it and its ancestors).
WITH area AS (
  SELECT
    health_center_uuid,
    reporting_period,
    target_id,
    min(month) AS month,
    min(label) AS label,
    min(target_label) AS target_label,
    min(target_type) AS target_type,
    min(goal) AS goal,
    count(DISTINCT user_name)::integer AS chws,
    sum(pass)::integer AS pass,
    sum(total)::integer AS total,
    count(DISTINCT user_name) FILTER (WHERE met_goal)::integer AS chws_meeting_goal
  FROM useview_target
  GROUP BY health_center_uuid, reporting_period, target_id
)
SELECT
  a.health_center_uuid,
  h.name AS health_center_name,
  h.district_hospital_uuid,
  h.district_hospital_name,
  h.area_uuids,
  a.month,
  a.reporting_period,
  a.target_id,
  a.label,
  a.target_label,
  a.target_type,
  a.goal,
  a.chws,
  a.pass,
  a.total,
  a.pass * 100.0 / nullif(a.total, 0) AS percent,
  a.chws_meeting_goal
FROM area AS a
LEFT JOIN contactview_hierarchy AS h ON h.uuid = a.health_center_uuid
