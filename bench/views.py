"""View-layer benchmark: a full build of every view against an incremental refresh.

With ~200 000 generated docs synced: (a) full build of every object of the view layers from
scratch; (b) 1 % of the docs edited or deleted in CouchDB, then sync + refresh; prints b / a
(target <= 0.05) on the steps' own work and on wall time, Dagster's share of the wall time
(events stored in the instance's event log: a cost per event, not per doc), and each layer's
time in both runs.

    .venv/bin/python bench/views.py [--docs 200000] [--share 0.01]
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import tempfile
import time
from pathlib import Path

import dagster as dg

from cht_assets.couch.client import CouchClient
from cht_assets.defs.raw import build_raw_assets
from cht_assets.defs.resources import CouchDBResource, PostgresResource
from cht_assets.defs.views import build_view_assets
from cht_assets.demo.generator import DATABASES, generate
from cht_assets.demo.loader import couch_clients, database_name, load_deployment
from cht_assets.servers.couchdb import start_pouchdb_server
from cht_assets.servers.postgres import ensure_database, start_embedded_postgres

SEED = 20261125


def households_for(total_docs: int) -> int:
    per_household = sum(generate(SEED, 1000).estimate_counts().values()) / 1000
    # The estimate comes from a sample of small deployments and runs low by ~15 %: aim above.
    return max(1, round(1.2 * total_docs / per_household))


OBJECTS: dict[str, float] = {}  # each object's own time in the last run (the slowest are printed)


def slowest_objects(count: int = 12) -> str:
    slowest = sorted(OBJECTS.items(), key=lambda item: -item[1])[:count]
    return ", ".join(f"{key} {seconds:.2f}s" for key, seconds in slowest)


def run(assets: list, resources: dict, instance: dg.DagsterInstance) -> tuple[float, dict[str, float], int]:
    """Wall time of one materialization, the time of each layer (sum of its steps' own time,
    from their `duration_seconds`) and the number of events Dagster stored for the run."""
    started = time.monotonic()
    result = dg.materialize(assets, resources=resources, instance=instance)
    wall = time.monotonic() - started
    layers: dict[str, float] = collections.defaultdict(float)
    OBJECTS.clear()
    for event in result.get_asset_materialization_events():
        seconds = event.materialization.metadata.get("duration_seconds")
        if seconds is not None:
            layers[event.asset_key.path[0]] += seconds.value
            OBJECTS[event.asset_key.to_user_string()] = seconds.value
    return wall, dict(layers), len(instance.all_logs(result.run_id))


def touch(client: CouchClient, share: float, rng: random.Random) -> tuple[int, int]:
    """Edit half and delete half of `share` of the docs of one database."""
    rows = client._request("GET", "/_all_docs").json()["rows"]
    chosen = [row["id"] for row in rows if not row["id"].startswith("_design/") and rng.random() < share]
    docs = client._request(
        "POST", "/_all_docs", params={"include_docs": "true"}, json={"keys": chosen}
    ).json()["rows"]
    changed = []
    for index, row in enumerate(docs):
        doc = row["doc"]
        if index % 2:
            changed.append({"_id": doc["_id"], "_rev": doc["_rev"], "_deleted": True})
        else:
            changed.append({**doc, "bench_edited": True, "name": f"{doc.get('name', '')} (edited)"})
    for start in range(0, len(changed), 2000):
        client.bulk_docs(changed[start : start + 2000])
    return len(changed) - len(changed) // 2, len(changed) // 2


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--share", type=float, default=0.01)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-views-"))
    pg = start_embedded_postgres(workdir / "pg")
    couch = start_pouchdb_server(workdir / "couch")
    try:
        ensure_database(pg.url(), "bench")
        pg_url = pg.url("bench")
        os.environ.update(COUCHDB_URL=couch.url, POSTGRES_URL=pg_url, COUCHDB_DBS=",".join(DATABASES))
        households = households_for(args.docs)
        started = time.monotonic()
        report = load_deployment(couch_clients(couch.url), (SEED, households))
        print(
            f"loaded {report.written:,} docs ({households:,} households) in {time.monotonic() - started:.0f}s",
            flush=True,
        )
        resources = {"couchdb": CouchDBResource(url=couch.url), "postgres": PostgresResource(url=pg_url)}
        with dg.instance_for_test() as instance:
            sync_wall, _, _ = run(build_raw_assets(), resources, instance)
            print(f"initial sync {sync_wall:.1f}s", flush=True)
            views = build_view_assets()  # now the forms are synced: formviews included
            full_wall, full_layers, full_events = run(views, resources, instance)
            print(f"(a) full build of {len(views)} objects: {full_wall:.1f}s", flush=True)
            edited, deleted = touch(
                CouchClient(couch.url, database_name("medic", "medic")), args.share, random.Random(1)
            )
            print(f"edited {edited:,} and deleted {deleted:,} docs of medic in CouchDB", flush=True)
            sync_wall, sync_layers, sync_events = run(build_raw_assets(), resources, instance)
            views_wall, incr_layers, views_events = run(views, resources, instance)
    finally:
        couch.stop()
        pg.stop()
    print_report(
        full_wall,
        full_layers,
        full_events,
        sync_wall,
        sync_layers,
        sync_events,
        views_wall,
        incr_layers,
        views_events,
    )


def print_report(
    full_wall: float,
    full_layers: dict[str, float],
    full_events: int,
    sync_wall: float,
    sync_layers: dict[str, float],
    sync_events: int,
    views_wall: float,
    incr_layers: dict[str, float],
    views_events: int,
) -> None:
    """Two ratios: the work (the steps' own time: SQL, checks, metadata) and the wall time,
    which adds Dagster's fixed cost per step and per event (stored in the instance's event log,
    a cost that does not depend on the database's size)."""
    full_work = sum(full_layers.values())
    incr_work = sum(sync_layers.values()) + sum(incr_layers.values())
    incr_wall = sync_wall + views_wall
    print(f"(b) sync {sync_wall:.1f}s + refresh {views_wall:.1f}s = {incr_wall:.1f}s wall")
    print(
        f"b / a (work: the steps' own time) = {incr_work:.2f}s / {full_work:.2f}s = {incr_work / full_work:.3f}  (target <= 0.05)"
    )
    print(
        f"b / a (wall, Dagster included) = {incr_wall:.1f}s / {full_wall:.1f}s = {incr_wall / full_wall:.3f}"
    )
    overhead = incr_wall - incr_work
    events = sync_events + views_events
    print(
        f"Dagster's share of (b): {overhead:.1f}s for {events} stored events ({1000 * overhead / events:.0f} ms each); "
        f"(a) stored {full_events}"
    )
    print(f"{'layer':<14} {'full (s)':>9} {'incremental (s)':>16}")
    for layer in sorted({*full_layers, *sync_layers}):
        full = full_layers.get(layer, 0.0)
        print(f"{layer:<14} {full:>9.2f} {incr_layers.get(layer, sync_layers.get(layer, 0.0)):>16.2f}")
    print(f"slowest objects of the refresh (own time): {slowest_objects()}")


if __name__ == "__main__":
    main()
