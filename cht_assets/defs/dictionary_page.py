"""The data dictionary page: one HTML page and one Markdown file in DICTIONARY_DIR listing every
form, translation language and view column with its lineage. Downstream of every view it
documents, so it runs after them in their run; not of those waiting for a form (they would
hold it: the location reloads when the form appears)."""

from datetime import UTC, datetime

import dagster as dg

from cht_assets.defs.dictionary import (
    DICTIONARY_GROUP,
    DICTIONARY_PAGE_KEY,
    FORM_DICTIONARY_KEY,
    form_dictionary_asset,
    medic_db,
)
from cht_assets.defs.raw import STRUCTURE_ONLY_TAG
from cht_assets.defs.resources import PostgresResource
from cht_assets.defs.views import view_asset_key
from cht_assets.settings import load_dictionary_dir, load_settings
from cht_assets.sqlgraph import column_sources
from cht_assets.warehouse.catalog import ViewCatalog
from cht_assets.warehouse.dictionary import write_dictionary_page


def dictionary_page_asset(source: str, catalog: ViewCatalog) -> dg.AssetsDefinition:
    @dg.asset(
        key=DICTIONARY_PAGE_KEY,
        deps=[FORM_DICTIONARY_KEY, *(view_asset_key(e.obj) for e in catalog if not e.waiting_for)],
        group_name=DICTIONARY_GROUP,
        kinds={"html"},
        # It documents what the views are, not their rows, and takes seconds to write: the
        # update_seq sensor's runs of the views a change reaches leave it out.
        tags={STRUCTURE_ONLY_TAG: "true"},
        description=(
            "Data dictionary page: every form with its fields' labels (all languages), logic and "
            "choices, the fields no longer collected, the translation languages, and every view "
            "column with its description and lineage (the report field, or what the SQL reads as "
            "sqlglot traces it), as `data_dictionary.html` and `.md` in DICTIONARY_DIR."
        ),
    )
    def data_dictionary(
        context: dg.AssetExecutionContext, postgres: PostgresResource
    ) -> dg.MaterializeResult:
        with postgres.session() as conn:
            page = write_dictionary_page(
                conn,
                load_dictionary_dir(),
                generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                source=source,
                sources=column_sources(
                    catalog.graph, (e.obj.name for e in catalog if catalog.traces_lineage(e))
                ),
            )
        context.log.info(f"data dictionary: {page.html_path}")
        return dg.MaterializeResult(
            metadata={
                "html_path": dg.MetadataValue.path(str(page.html_path)),
                "markdown_path": dg.MetadataValue.path(str(page.markdown_path)),
                "forms": page.forms,
                "languages": ", ".join(page.languages) or "none",
                "translation_languages": ", ".join(page.translation_languages) or "none",
                "relations": page.relations,
            }
        )

    return data_dictionary


def build_dictionary_assets(catalog: ViewCatalog) -> list[dg.AssetsDefinition]:
    """The form dictionary tables and the page documenting the views of `catalog` (the code
    location's)."""
    source = medic_db(load_settings().couchdb_dbs)
    return [form_dictionary_asset(source), dictionary_page_asset(source, catalog)]
