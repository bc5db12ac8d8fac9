"""The form dictionary asset: the deployment's forms described in PostgreSQL (`form_fields`,
`form_choices`), upstream of the use views that show choice labels. The page that documents
every view is its own asset, downstream of them (cht_assets.defs.dictionary_page)."""

from collections.abc import Sequence

import dagster as dg

from cht_assets.defs.raw import RAW_DOCS_METADATA, raw_asset_key
from cht_assets.defs.resources import PostgresResource
from cht_assets.replica.schema import compat_relation
from cht_assets.warehouse.dictionary import CHOICES_TABLE, FIELDS_TABLE, refresh_form_tables

DICTIONARY_GROUP = "dictionary"
FORM_DICTIONARY_KEY = dg.AssetKey([DICTIONARY_GROUP, "form_dictionary"])
DICTIONARY_PAGE_KEY = dg.AssetKey([DICTIONARY_GROUP, "data_dictionary"])
MEDIC_DB = "medic"


def medic_db(dbs: Sequence[str]) -> str:
    """The replicated database holding the form and translation docs: `medic`, or the one
    that plays its part (not sentinel, users-meta, logs or `_users`)."""
    if MEDIC_DB in dbs:
        return MEDIC_DB
    main = [db for db in dbs if compat_relation(db) == "couchdb" and not db.endswith("-sentinel")]
    return next((db for db in main if not db.startswith("_") and not db.endswith("-users")), MEDIC_DB)


def form_dictionary_asset(source: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=FORM_DICTIONARY_KEY,
        deps=[raw_asset_key(source)],
        group_name=DICTIONARY_GROUP,
        kinds={"postgres"},
        # The form docs (their XForms); the translations and settings give labels' languages.
        metadata={RAW_DOCS_METADATA: "doc ->> 'type' = 'form' OR _id LIKE 'messages-%' OR _id = 'settings'"},
        description=(
            "The forms described from the XForms themselves: every field's label (all languages), "
            f"hint, type, logic and choices in `public.{FIELDS_TABLE}` and `public.{CHOICES_TABLE}` "
            "(fields a newer form version dropped stay, marked not collected)."
        ),
    )
    def form_dictionary(
        context: dg.AssetExecutionContext, postgres: PostgresResource
    ) -> dg.MaterializeResult:
        with postgres.session() as conn:
            run = refresh_form_tables(conn)
        if not run.forms:
            context.log.info("no forms synced yet: the tables stay empty")
        for doc_id, why in run.problems.items():
            context.log.warning(f"form {doc_id} not described: {why}")
        return dg.MaterializeResult(
            metadata={
                "forms": len(run.forms),
                "fields": sum(len(form.fields) for form in run.forms),
                "field_rows": len(run.tables.fields),
                "choice_rows": len(run.tables.choices),
                "tables_changed": run.tables.changed,
                "not_collected_fields": len({(r.form, r.field) for r in run.tables.retired}),
                "unreadable_forms": len(run.problems),
            }
        )

    return form_dictionary
