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
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from cht_assets.couch.client import CouchClient
from cht_assets.defs.raw import build_raw_assets
from cht_assets.defs.resources import CouchDBResource, PostgresResource
from cht_assets.defs.views import build_view_assets
from cht_assets.demo.generator import DATABASES, generate
from cht_assets.demo.loader import couch_clients, database_name, load_deployment
from cht_assets.instance_storage import KEPT_SQLITE_STORAGE
from cht_assets.servers.couchdb import start_pouchdb_server
from cht_assets.servers.postgres import ensure_database, start_embedded_postgres

SEED = 20261125
CONFIG_IDS = ("_design/", "form:")


def households_for(total_docs: int) -> int:
    per_household = sum(generate(SEED, 1000).estimate_counts().values()) / 1000
    # The estimate comes from a sample of small deployments and runs low by ~15 %: aim above.
    return max(1, round(1.2 * total_docs / per_household))


@dataclass(frozen=True)
class Timed:
    """One materialization: wall time, each object's own time (its step's `duration_seconds`)
    and the number of events Dagster stored for the run."""

    wall: float
    objects: dict[str, float]
    events: int

    @property
    def layers(self) -> dict[str, float]:
        """Each layer's time: the sum of its objects' (the key's first part is the layer)."""
        layers: dict[str, float] = collections.defaultdict(float)
        for key, seconds in self.objects.items():
            layers[key.split("/")[0]] += seconds
        return dict(layers)

    @property
    def work(self) -> float:
        return sum(self.objects.values())

    def slowest(self, count: int = 12) -> str:
        slowest = sorted(self.objects.items(), key=lambda item: -item[1])[:count]
        return ", ".join(f"{key} {seconds:.2f}s" for key, seconds in slowest)


def run(assets: list, resources: dict, instance: dg.DagsterInstance) -> Timed:
    started = time.monotonic()
    result = dg.materialize(assets, resources=resources, instance=instance)
    return timed([result], time.monotonic() - started, instance)


def timed(results: list[dg.ExecuteInProcessResult], wall: float, instance: dg.DagsterInstance) -> Timed:
    """The runs' wall time, each object's own time and the events stored for them."""
    objects = {
        event.asset_key.to_user_string(): seconds.value
        for result in results
        for event in result.get_asset_materialization_events()
        if (seconds := event.materialization.metadata.get("duration_seconds")) is not None
    }
    return Timed(wall, objects, sum(len(instance.all_logs(result.run_id)) for result in results))


def touch(client: CouchClient, share: float, rng: random.Random) -> tuple[int, int]:
    """Edit half and delete half of `share` of the docs of one database: data, not its design
    or form docs (a form deleted is a configuration change: its formview's run fails and the
    code location reloads)."""
    rows = client._request("GET", "/_all_docs").json()["rows"]
    chosen = [row["id"] for row in rows if not row["id"].startswith(CONFIG_IDS) and rng.random() < share]
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
        with dg.instance_for_test(overrides=KEPT_SQLITE_STORAGE) as instance:
            sync = run(build_raw_assets(), resources, instance)
            print(f"initial sync {sync.wall:.1f}s", flush=True)
            views = build_view_assets()  # now the forms are synced: formviews included
            full = run(views, resources, instance)
            print(
                f"(a) full build of {sum(len(asset.keys) for asset in views)} objects: {full.wall:.1f}s",
                flush=True,
            )
            edited, deleted = touch(
                CouchClient(couch.url, database_name("medic", "medic")), args.share, random.Random(1)
            )
            print(f"edited {edited:,} and deleted {deleted:,} docs of medic in CouchDB", flush=True)
            sync = run(build_raw_assets(), resources, instance)
            refresh = run(views, resources, instance)
    finally:
        couch.stop()
        pg.stop()
    print_report(full, sync, refresh)


def print_report(full: Timed, sync: Timed, refresh: Timed) -> None:
    """Two ratios: the work (the steps' own time: SQL, checks, metadata) and the wall time,
    which adds Dagster's fixed cost per step and per event (stored in the instance's event log,
    a cost that does not depend on the database's size)."""
    incr_work = sync.work + refresh.work
    incr_wall = sync.wall + refresh.wall
    print(f"(b) sync {sync.wall:.1f}s + refresh {refresh.wall:.1f}s = {incr_wall:.1f}s wall")
    print(
        f"b / a (work: the steps' own time) = {incr_work:.2f}s / {full.work:.2f}s = {incr_work / full.work:.3f}  (target <= 0.05)"
    )
    print(
        f"b / a (wall, Dagster included) = {incr_wall:.1f}s / {full.wall:.1f}s = {incr_wall / full.wall:.3f}"
    )
    overhead = incr_wall - incr_work
    events = sync.events + refresh.events
    print(
        f"Dagster's share of (b): {overhead:.1f}s for {events} stored events ({1000 * overhead / events:.0f} ms each); "
        f"(a) stored {full.events}"
    )
    print(f"{'layer':<14} {'full (s)':>9} {'incremental (s)':>16}")
    full_layers, sync_layers, incr_layers = full.layers, sync.layers, refresh.layers
    for layer in sorted({*full_layers, *sync_layers}):
        seconds = full_layers.get(layer, 0.0)
        print(f"{layer:<14} {seconds:>9.2f} {incr_layers.get(layer, sync_layers.get(layer, 0.0)):>16.2f}")
    print(f"slowest objects of the refresh (own time): {refresh.slowest()}")


if __name__ == "__main__":
    main()
