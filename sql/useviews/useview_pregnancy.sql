-- materialized: view
-- unique_key: uuid
-- description: Pregnancy registrations with LMP, EDD and ANC visits, and the delivery that followed (date, outcome; before the patient's next registration), with the patient's place hierarchy.
SELECT
  p.uuid,
  p.patient_uuid,
  coalesce(patient.name, p.patient_name) AS patient_name,
  p.reported,
  coalesce(p.data___lmp_date, p.lmp_lmp_date, p.lmp_u_lmp_date) AS lmp_date,
  coalesce(p.data___edd, p.lmp_edd) AS edd,
  coalesce(p.anc_anc_visits_count, 0) AS anc_visits,
  delivery.uuid IS NOT NULL AS delivered,
  coalesce(delivery.data___delivery_date, delivery.delivery_outcome_delivery_date) AS delivery_date,
  delivery.condition_woman_outcome AS outcome,
  h.area_uuids,
  h.district_hospital_uuid,
  h.district_hospital_name,
  h.health_center_uuid,
  h.health_center_name,
  h.clinic_uuid,
  h.clinic_name
FROM formview_pregnancy AS p
LEFT JOIN LATERAL (
  SELECT d.uuid, d.data___delivery_date, d.delivery_outcome_delivery_date, d.condition_woman_outcome
  FROM formview_delivery AS d
  WHERE d.patient_uuid = p.patient_uuid AND d.reported >= p.reported
    -- A delivery closes the latest registration before it, not an earlier one as well.
    AND NOT EXISTS (
      SELECT 1 FROM formview_pregnancy AS later
      WHERE later.patient_uuid = p.patient_uuid AND later.reported > p.reported AND later.reported <= d.reported
    )
  ORDER BY d.reported
  LIMIT 1
) AS delivery ON true
LEFT JOIN contactview_contact AS patient ON patient.uuid = p.patient_uuid
LEFT JOIN contactview_hierarchy AS h ON h.uuid = p.patient_uuid
