-- materialized: view
-- unique_key: key
-- description: The dashboards' words for each translation key: its text in the dashboards' language (dashboard_language(): DASHBOARD_LANGUAGE, else the deployment's locale, else en), else in English. Keys translated in neither are absent: a view joining it shows the key itself.
SELECT DISTINCT ON (t.key)
  t.key,
  t.text AS label,
  t.lang
FROM useview_translation AS t
WHERE t.lang IN (dashboard_language(), 'en')
  AND t.text <> ''
ORDER BY t.key, t.lang = dashboard_language() DESC
