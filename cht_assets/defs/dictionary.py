"""The data dictionary asset: the deployment's forms, translations and views described in
PostgreSQL (`form_fields`, `form_choices`) and as a static page in DICTIONARY_DIR."""

from collections.abc import Sequence
from datetime import UTC, datetime

import dagster as dg

from cht_assets.defs.raw import raw_asset_key
from cht_assets.defs.resources import PostgresResource
from cht_assets.replica.schema import compat_relation
from cht_assets.settings import load_dictionary_dir, load_settings
from cht_assets.warehouse.dictionary import CHOICES_TABLE, FIELDS_TABLE, refresh_data_dictionary

DICTIONARY_KEY = dg.AssetKey(["dictionary", "data_dictionary"])
MEDIC_DB = "medic"


def medic_db(dbs: Sequence[str]) -> str:
    """The replicated database holding the form and translation docs: `medic`, or the one
    that plays its part (not sentinel, users-meta, logs or `_users`)."""
    if MEDIC_DB in dbs:
        return MEDIC_DB
    main = [db for db in dbs if compat_relation(db) == "couchdb" and not db.endswith("-sentinel")]
    return next((db for db in main if not db.startswith("_") and not db.endswith("-users")), MEDIC_DB)


def dictionary_asset(source: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=DICTIONARY_KEY,
        deps=[raw_asset_key(source)],
        group_name="dictionary",
        kinds={"postgres", "html"},
        description=(
            "Data dictionary generated from the forms themselves: every field's label (all languages), "
            f"hint, type, logic and choices in `public.{FIELDS_TABLE}` and `public.{CHOICES_TABLE}` "
            "(fields a newer form version dropped stay, marked not collected), and one HTML page and "
            "Markdown file listing every form and view column, in DICTIONARY_DIR."
        ),
    )
    def data_dictionary(
        context: dg.AssetExecutionContext, postgres: PostgresResource
    ) -> dg.MaterializeResult:
        directory = load_dictionary_dir()
        with postgres.session() as conn:
            run = refresh_data_dictionary(
                conn, directory, generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), source=source
            )
        if not run.forms:
            context.log.info("no forms synced yet: the dictionary says so")
        for doc_id, why in run.problems.items():
            context.log.warning(f"form {doc_id} not described: {why}")
        context.log.info(f"data dictionary: {run.html_path}")
        return dg.MaterializeResult(
            metadata={
                "html_path": dg.MetadataValue.path(str(run.html_path)),
                "markdown_path": dg.MetadataValue.path(str(run.markdown_path)),
                "forms": len(run.forms),
                "fields": sum(len(form.fields) for form in run.forms),
                "field_rows": len(run.tables.fields),
                "choice_rows": len(run.tables.choices),
                "tables_changed": run.tables.changed,
                "not_collected_fields": len({(r.form, r.field) for r in run.tables.retired}),
                "unreadable_forms": len(run.problems),
                "languages": ", ".join(run.languages) or "none",
                "translation_languages": ", ".join(run.translation_languages) or "none",
                "relations": run.relations,
            }
        )

    return data_dictionary


def build_dictionary_assets() -> list[dg.AssetsDefinition]:
    return [dictionary_asset(medic_db(load_settings().couchdb_dbs))]
