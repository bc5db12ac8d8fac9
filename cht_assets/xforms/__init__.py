"""XForms: parse a CHT form definition and generate the SQL of its `formview_*` views.

`parse` turns the XForm XML of a `form:<name>` doc into a typed list of the instance's leaves;
`formview` turns that list into columns and into SELECT statements over `raw.couchdb_docs`.
Both modules are pure (no database, no Dagster); the SQL they emit calls the helper functions
in `sql/functions/`.
"""
