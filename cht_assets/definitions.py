"""The code location: collects the wiring in cht_assets.defs; nothing else lives here."""

import dagster as dg

from cht_assets.defs.raw import build_raw_assets
from cht_assets.defs.resources import resources

defs = dg.Definitions(assets=build_raw_assets(), resources=resources())
