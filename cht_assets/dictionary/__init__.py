"""The data dictionary of a deployment, as documents: CHT's translation docs turned into words
(`messages`) and the static HTML page and Markdown file listing every form, field, label,
choice and view column (`render`). Pure: no database, no Dagster."""
