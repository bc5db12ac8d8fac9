"""The code location: collects the wiring in cht_assets.defs; nothing else lives here."""

import dagster as dg

from cht_assets.defs.automation import with_operations
from cht_assets.defs.raw import build_raw_assets
from cht_assets.defs.resources import resources
from cht_assets.defs.superset import SupersetResource, build_superset_assets, published_datasets
from cht_assets.defs.views import build_view_assets

view_assets = build_view_assets()

# with_operations: freshness, automation, sensors, alerts, reconciliation and backups.
defs = with_operations(
    dg.Definitions(
        assets=[*build_raw_assets(), *view_assets, *build_superset_assets(published_datasets(view_assets))],
        resources={**resources(), "superset": SupersetResource()},
        # Views refresh in a fraction of a second each: one process per step would cost more
        # than the work.
        executor=dg.in_process_executor,
    )
)
