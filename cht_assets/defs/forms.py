"""Forms discovered live: a new form, or a form version that changes a formview, reaches the
asset graph without a click.

The code location builds one asset per formview from the forms it finds when it loads
(cht_assets.warehouse.catalog). The sensor `form_definitions` compares, every
FORMS_POLL_SECONDS, the forms the raw layer holds now with the ones the loaded definitions
were built from (the catalog's `forms_version`); when they differ it asks the webserver to
reload the code location (GraphQL `reloadRepositoryLocation` at DAGSTER_WEBSERVER_URL). The
reloaded location has the new formview assets, checks and Superset datasets, and the
automation builds them as missing assets. Under the production layout the daemon also reloads
its code servers every minute, so runs follow even where the webserver cannot be reached.

Why not Dagster's state-backed definitions ("defs state"): the state they would store is the
list of forms, and the raw replica already keeps it, versioned by the sync and written in the
same transaction as the docs. A second copy could only drift; what is missing is the reload.
"""

from __future__ import annotations

import json
import logging
import threading
import time

import dagster as dg
import psycopg
import requests

from cht_assets.defs.resources import PostgresResource
from cht_assets.replica.forms import stored_forms
from cht_assets.settings import OpsSettings
from cht_assets.warehouse.catalog import ViewCatalog
from cht_assets.warehouse.formviews import all_known_columns

FORMS_SENSOR = "form_definitions"
DEFAULT_LOCATION = "cht_assets"
# A reload asked for and not seen (webserver unreachable): asked again after this long.
ASK_AGAIN_SECONDS = 300
RELOAD = """
mutation Reload($name: String!) {
  reloadRepositoryLocation(repositoryLocationName: $name) { __typename }
}
"""
logger = logging.getLogger(__name__)


def request_reload(webserver_url: str, location: str) -> None:
    """Ask the webserver to reload `location`, from a thread: the reload replaces the code server
    this sensor runs in, so the tick must not wait for it."""

    def post() -> None:
        time.sleep(1)  # let the tick that asked finish first
        try:
            response = requests.post(
                f"{webserver_url}/graphql",
                json={"query": RELOAD, "variables": {"name": location}},
                timeout=120,
            )
            response.raise_for_status()
        except requests.RequestException as exc:  # the URL is not logged: it may hold credentials
            logger.warning("reload of code location %s not requested: %s", location, type(exc).__name__)

    threading.Thread(target=post, name="reload-code-location", daemon=True).start()


def current_forms_version(conninfo: str, catalog: ViewCatalog) -> str | None:
    """The forms_version the raw layer's forms give now; None before the first sync."""
    with psycopg.connect(conninfo, connect_timeout=5, autocommit=True) as conn:
        forms = stored_forms(conn)
        return catalog.version_for(forms, all_known_columns(conn)) if forms else None


def forms_sensor(catalog: ViewCatalog, settings: OpsSettings) -> dg.SensorDefinition:
    """`catalog`: the one these definitions were built from."""
    loaded_version = catalog.forms_version

    @dg.sensor(
        name=FORMS_SENSOR,
        minimum_interval_seconds=settings.forms_poll_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            "Reloads the code location when the synced forms no longer match the formview assets "
            "(a new form, a form version with new fields)."
        ),
    )
    def form_definitions(context: dg.SensorEvaluationContext, postgres: PostgresResource) -> dg.SkipReason:
        now = current_forms_version(postgres.conninfo, catalog)
        if now is None:
            return dg.SkipReason("no forms synced yet")
        if now == loaded_version:
            return dg.SkipReason("the formview assets match the synced forms")
        asked = json.loads(context.cursor) if context.cursor else {}
        if asked.get("version") == now and time.time() - asked.get("at", 0) < ASK_AGAIN_SECONDS:
            return dg.SkipReason(f"forms changed ({now}); reload requested, waiting for it")
        origin = context.code_location_origin
        location = origin.location_name if origin is not None else DEFAULT_LOCATION
        context.log.info(f"forms changed ({loaded_version} -> {now}): reloading code location {location}")
        request_reload(settings.dagster_webserver_url, location)
        context.update_cursor(json.dumps({"version": now, "at": time.time()}))
        return dg.SkipReason(f"forms changed ({now}); reload of {location} requested")

    return form_definitions
