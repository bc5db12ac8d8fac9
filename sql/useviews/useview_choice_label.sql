-- materialized: view
-- unique_key: form, field, value
-- description: The words of every choice of every select question of the deployment's forms (the data dictionary's public.form_choices, written by the dictionary asset from the XForms): one row per form, field and value with its label in the dashboards' language (dashboard_language()), else English, else the form's other labels (a plain `<label>`, then any language). Choices whose labels are all empty are absent: a view joining it shows the code itself. Before the dictionary's first run: no rows.
SELECT DISTINCT ON (c.form, c.field, c.value)
  c.form,
  c.field,
  c.value,
  c.label,
  c.lang
FROM form_choices AS c
WHERE c.label <> ''
ORDER BY c.form, c.field, c.value, c.lang = dashboard_language() DESC, c.lang = 'en' DESC, c.lang = 'default' DESC, c.lang
