-- materialized: table
-- unique_key: chw_uuid, week, form
-- nullable_key: chw_uuid, week
-- rewrite_by: chw_uuid = form_metadata.chw by uuid, reports counts rows
-- rewrite_stale: contactview_hierarchy: SELECT r.chw_uuid FROM {table} AS r LEFT JOIN contactview_hierarchy AS h ON h.uuid = r.chw_uuid WHERE (r.chw_name, r.area_uuids, r.district_hospital_uuid, r.district_hospital_name, r.health_center_uuid, r.health_center_name, r.clinic_uuid, r.clinic_name) IS DISTINCT FROM (h.name, h.area_uuids, h.district_hospital_uuid, h.district_hospital_name, h.health_center_uuid, h.health_center_name, h.clinic_uuid, h.clinic_name)
-- description: Reports per CHW (submitter) per week per form, with the form's title in words (useview_form_label: in the dashboards' language; the form id when the deployment has no such form doc) and the CHW's place hierarchy. Kept by CHW: a changed report rewrites its CHW's rows, and a changed hierarchy the rows of the CHWs whose names or places it changed (a new day or another form label rebuilds it).
WITH weekly AS (
  SELECT chw, date_trunc('week', reported)::date AS week, formname, count(*)::integer AS reports
  FROM form_metadata
  GROUP BY chw, date_trunc('week', reported)::date, formname
)
SELECT
  weekly.chw AS chw_uuid,
  h.name AS chw_name,
  weekly.week,
  weekly.formname AS form,
  coalesce(f.label, weekly.formname) AS form_label,
  weekly.reports,
  h.area_uuids,
  h.district_hospital_uuid,
  h.district_hospital_name,
  h.health_center_uuid,
  h.health_center_name,
  h.clinic_uuid,
  h.clinic_name
FROM weekly
LEFT JOIN useview_form_label AS f ON f.form = weekly.formname
LEFT JOIN contactview_hierarchy AS h ON h.uuid = weekly.chw
