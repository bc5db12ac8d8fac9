"""The code location: collects the wiring in cht_assets.defs; nothing else lives here."""

import dagster as dg

from cht_assets.defs.adopt import adopt_job
from cht_assets.defs.automation import with_operations
from cht_assets.defs.dictionary_page import build_dictionary_assets
from cht_assets.defs.forms import forms_sensor
from cht_assets.defs.raw import build_raw_assets
from cht_assets.defs.resources import resources
from cht_assets.defs.superset import SupersetResource, build_superset_assets, published_datasets
from cht_assets.defs.views import build_view_assets, load_catalog
from cht_assets.settings import load_access_settings, load_ops_settings

# The view layers as this deployment's forms make them now; `form_definitions` reloads the
# location when the synced forms change.
catalog = load_catalog()
view_assets = build_view_assets(catalog)

# with_operations: freshness, automation, sensors, alerts, reconciliation and backups.
defs = with_operations(
    dg.Definitions(
        assets=[
            *build_raw_assets(),
            *build_dictionary_assets(catalog),
            *view_assets,
            *build_superset_assets(
                published_datasets(view_assets), access_path=load_access_settings().access_file
            ),
        ],
        jobs=[adopt_job()],
        sensors=[forms_sensor(catalog, load_ops_settings())],
        resources={**resources(), "superset": SupersetResource()},
        # The steps are short (a replica's changes, the view layers' changed objects): a process
        # per step would cost more than the work.
        executor=dg.in_process_executor,
    )
)
