-- materialized: view
-- unique_key: uuid
-- description: One row per death report not undone (inputs mapped in useview_death.inputs.yaml): a report is undone by a confirmed undo report of the same patient submitted after it. Date and place of death (the form's codes), with the patient's place hierarchy.
SELECT
  r.uuid,
  r.patient_uuid,
  coalesce(patient.name, r.patient_name) AS patient_name,
  r.reported,
  r.date_of_death,
  r.place_of_death,
  h.area_uuids,
  h.district_hospital_uuid,
  h.district_hospital_name,
  h.health_center_uuid,
  h.health_center_name,
  h.clinic_uuid,
  h.clinic_name
FROM useinput_death_report AS r
LEFT JOIN contactview_contact AS patient ON patient.uuid = r.patient_uuid
LEFT JOIN contactview_hierarchy AS h ON h.uuid = r.patient_uuid
WHERE NOT EXISTS (
  SELECT 1 FROM useinput_death_undo AS u
  WHERE u.patient_uuid = r.patient_uuid AND u.reported > r.reported AND u.confirmed = 'yes'
)
