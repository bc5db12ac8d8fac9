-- materialized: view
-- unique_key: uuid
-- description: One row per delivery report (inputs mapped in useview_delivery.inputs.yaml): delivery date and place (the form's codes, e.g. health_facility, home, and their words in the dashboards' language, e.g. Health facility), babies delivered / alive / deceased, the woman's outcome (e.g. alive_well, deceased, and its words), with the patient's place hierarchy.
SELECT
  d.uuid,
  d.patient_uuid,
  coalesce(patient.name, d.patient_name) AS patient_name,
  d.reported,
  d.delivery_date,
  d.delivery_place,
  d.delivery_place_label,
  d.babies_delivered,
  d.babies_alive,
  d.babies_deceased,
  d.woman_outcome,
  d.woman_outcome_label,
  h.area_uuids,
  h.district_hospital_uuid,
  h.district_hospital_name,
  h.health_center_uuid,
  h.health_center_name,
  h.clinic_uuid,
  h.clinic_name
FROM useinput_delivery_report AS d
LEFT JOIN contactview_contact AS patient ON patient.uuid = d.patient_uuid
LEFT JOIN contactview_hierarchy AS h ON h.uuid = d.patient_uuid
