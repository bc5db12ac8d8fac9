-- materialized: view
-- unique_key: uuid
-- description: One row per pregnancy registration (inputs mapped in useview_pregnancy.inputs.yaml and useview_delivery.inputs.yaml): LMP, EDD, gestational age in weeks at registration, how it was dated (lmp_method code and its words in the dashboards' language), ANC home visits and reports with a danger sign in this pregnancy, and the delivery that closed it (place and the woman's outcome as codes and words), with the patient's place hierarchy. A pregnancy runs from its registration to the patient's next registration; its delivery is the first delivery report in that span, and its visits and danger-sign reports (registration, home visits, danger-sign reports) those in the span up to the delivery report. state, as of today: 'delivered' when a delivery closed it; otherwise 'lost_to_follow_up' when more than 6 weeks have passed since the EDD (or, without an EDD, more than 48 weeks since registration); otherwise 'overdue' when more than 2 weeks have passed since the EDD; otherwise 'active'.
WITH registration AS (
  SELECT
    p.*,
    lead(p.reported) OVER (PARTITION BY p.patient_uuid ORDER BY p.reported, p.uuid) AS next_reported
  FROM useinput_pregnancy_registration AS p
),
delivery AS (
  SELECT DISTINCT ON (r.uuid)
    r.uuid AS pregnancy_uuid,
    d.uuid,
    d.reported,
    d.delivery_date,
    d.delivery_place,
    d.delivery_place_label,
    d.babies_alive,
    d.babies_deceased,
    d.woman_outcome,
    d.woman_outcome_label
  FROM registration AS r
  JOIN useinput_delivery_report AS d
    ON d.patient_uuid = r.patient_uuid AND d.reported >= r.reported
    AND (r.next_reported IS NULL OR d.reported < r.next_reported)
  ORDER BY r.uuid, d.reported, d.uuid
),
follow_up AS (
  SELECT patient_uuid, reported, 'visit' AS kind, danger_sign FROM useinput_pregnancy_visit
  UNION ALL
  SELECT patient_uuid, reported, 'danger_sign' AS kind, danger_sign FROM useinput_pregnancy_danger_sign
),
counts AS (
  SELECT
    r.uuid,
    count(*) FILTER (WHERE f.kind = 'visit') AS anc_visits,
    count(*) FILTER (WHERE f.danger_sign = 'yes') AS danger_signs
  FROM registration AS r
  LEFT JOIN delivery AS d ON d.pregnancy_uuid = r.uuid
  JOIN follow_up AS f
    ON f.patient_uuid = r.patient_uuid AND f.reported >= r.reported
    AND (r.next_reported IS NULL OR f.reported < r.next_reported)
    AND (d.reported IS NULL OR f.reported <= d.reported)
  GROUP BY r.uuid
)
SELECT
  r.uuid,
  r.patient_uuid,
  coalesce(patient.name, r.patient_name) AS patient_name,
  r.reported,
  r.lmp_date,
  r.edd,
  r.gestational_age_weeks,
  r.lmp_method,
  r.lmp_method_label,
  CAST(coalesce(c.anc_visits, 0) AS integer) AS anc_visits,
  CAST(coalesce(c.danger_signs, 0) + CASE WHEN r.danger_sign = 'yes' THEN 1 ELSE 0 END AS integer) AS danger_signs,
  d.uuid IS NOT NULL AS delivered,
  d.uuid AS delivery_uuid,
  d.delivery_date,
  d.delivery_place,
  d.delivery_place_label,
  d.babies_alive,
  d.babies_deceased,
  d.woman_outcome,
  d.woman_outcome_label,
  CASE
    WHEN d.uuid IS NOT NULL THEN 'delivered'
    WHEN r.edd IS NOT NULL AND current_date > r.edd + 42 THEN 'lost_to_follow_up'
    WHEN r.edd IS NULL AND current_date > CAST(r.reported AS date) + 336 THEN 'lost_to_follow_up'
    WHEN r.edd IS NOT NULL AND current_date > r.edd + 14 THEN 'overdue'
    ELSE 'active'
  END AS state,
  h.area_uuids,
  h.district_hospital_uuid,
  h.district_hospital_name,
  h.health_center_uuid,
  h.health_center_name,
  h.clinic_uuid,
  h.clinic_name
FROM registration AS r
LEFT JOIN delivery AS d ON d.pregnancy_uuid = r.uuid
LEFT JOIN counts AS c ON c.uuid = r.uuid
LEFT JOIN contactview_contact AS patient ON patient.uuid = r.patient_uuid
LEFT JOIN contactview_hierarchy AS h ON h.uuid = r.patient_uuid
