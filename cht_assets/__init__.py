"""CHT analytics pipeline: CouchDB -> PostgreSQL raw replica -> views -> Superset, as Dagster assets."""
