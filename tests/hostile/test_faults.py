"""Faults: kill -9 of the sync, a hostile CouchDB in front (fault proxy), PostgreSQL restarts
during a sync and during a view refresh, and a refresh under 20 parallel readers."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pytest

from cht_assets.couch.client import CouchClient
from cht_assets.couch.errors import CouchUnavailable
from cht_assets.demo.generator import generate
from cht_assets.demo.loader import apply_mutations, couch_clients, load_deployment
from cht_assets.replica.replicate import SyncProgress
from cht_assets.servers.process import stop_pid
from cht_assets.warehouse.state import ensure_meta_schema
from tests.conftest import RestartablePostgres
from tests.hostile.support import (
    Readers,
    activity,
    assert_checkpoint_consistent,
    backend_waiting_on_lock,
    change_seqs,
    load,
    raw_snapshot,
    sync,
    wait_for,
)
from tests.integration.pipeline import materialize, materialize_only, metadata, new_deployment
from tests.integration.test_views import check_all
from tests.support.compare import assert_replica_equals, checkpoint
from tests.support.http import FaultProxy, serve

KILL_DOCS, KILLS = 50_000, 20
SEED, HOUSEHOLDS = 7, 15  # a world without community groups, which check_all (test_views) does not model


def test_kill_9_at_20_random_moments_of_a_50k_initial_sync(
    pg_url: str, couch_server, couch_db: CouchClient, tmp_path: Path
) -> None:
    load(couch_db, KILL_DOCS)
    seqs = change_seqs(couch_db)
    env = {**os.environ, "COUCHDB_URL": couch_server.url, "POSTGRES_URL": pg_url, "COUCHDB_DBS": couch_db.db}
    command = [sys.executable, "-m", "cht_assets.replica", "--batch-size", "250"]
    rng = random.Random(20)
    kills: list[tuple[float, int]] = []  # (seconds after start, rows committed at the kill)
    for run in range(2 * KILLS):
        if len(kills) == KILLS:
            break
        stderr = tmp_path / f"run{run}.err"
        with open(stderr, "wb") as err:
            process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=err)
        started = time.monotonic()
        if run % 4 == 0:
            # Any moment from the start: imports, schema DDL, the first page.
            time.sleep(rng.uniform(0.05, 0.8))
        else:
            # Mid-stream: after a first batch committed, while pages are copied and merged.
            process.stdout.readline()
            time.sleep(rng.uniform(0.0, 0.12))
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        process.stdout.close()
        assert process.returncode in (0, -signal.SIGKILL), stderr.read_text()[-2000:]
        snapshot = raw_snapshot(pg_url, couch_db.db)
        assert_checkpoint_consistent(snapshot, seqs)
        if process.returncode == -signal.SIGKILL:
            kills.append((round(time.monotonic() - started, 2), len(snapshot.ids)))
    assert len(kills) == KILLS, f"only {len(kills)} kills landed before the sync finished: {kills}"
    assert max(rows for _, rows in kills) < KILL_DOCS, "every kill must land before the sync is complete"

    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert assert_replica_equals(couch_db, pg_url, couch_db.db) == KILL_DOCS
    # pouchdb-server reports no `pending`; a last page exactly `limit` long leaves it unknown.
    assert checkpoint(pg_url, couch_db.db) in ((str(max(seqs.values())), 0), (str(max(seqs.values())), None))
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT _id) FROM raw.couchdb_docs").fetchone() == (
            KILL_DOCS,
            KILL_DOCS,
        )
    print(f"\nkill -9 moments (s after start, rows committed): {kills}")


def test_fault_proxy_retries_never_advance_the_checkpoint_and_end_equal(
    pg_url: str, couch_server, couch_db: CouchClient
) -> None:
    load(couch_db, 2400)
    seqs = change_seqs(couch_db)
    proxy = FaultProxy(couch_server.url, stall_seconds=4, drip_interval=0.05, endless_seconds=30)
    # One fault per failing request, spread over the pages (the pager fetches one page ahead).
    proxy.faults = ["ok", "500", "ok", "reset", "ok", "stall", "ok", "truncate", "drip", "ok", "endless_drip"]
    failing = {"500", "reset", "stall", "truncate", "endless_drip"}
    committed: list[str] = []
    retries: list[dict] = []

    def on_batch(progress: SyncProgress) -> None:
        committed.append(progress.last_seq)

    def on_retry(attempt: int, error: Exception, delay: float) -> None:
        snapshot = raw_snapshot(pg_url, couch_db.db)
        retries.append(
            {"at": time.monotonic(), "error": str(error), "seq": snapshot.seq, "snapshot": snapshot}
        )

    with serve(proxy) as proxy_url:
        # Read timeout 2 s (a stall of 4 s trips it); each page must arrive whole within 3 s.
        flaky = CouchClient(proxy_url, couch_db.db, timeout=2, page_timeout=3)
        started = time.monotonic()
        result = sync(
            pg_url, flaky, batch_size=200, attempts=len(failing) + 2, on_batch=on_batch, on_retry=on_retry
        )
        seconds = time.monotonic() - started

    assert sorted({f for f in proxy.served if f in failing}) == sorted(failing)
    assert len(retries) == len(failing), [r["error"] for r in retries]
    for retry in retries:
        # The failed page committed nothing: the checkpoint is the last committed batch's seq,
        # and the rows are exactly those up to it.
        assert retry["seq"] is None or retry["seq"] in committed
        assert_checkpoint_consistent(retry["snapshot"], seqs)
    seqs_seen = [retry["seq"] for retry in retries]
    assert seqs_seen == sorted(seqs_seen, key=lambda s: int(s or 0)), "the checkpoint never goes back"
    assert any("deadline" in retry["error"] for retry in retries), [r["error"] for r in retries]
    assert result.progress.changes >= 2400
    assert assert_replica_equals(couch_db, pg_url, couch_db.db) == 2400
    assert seconds < 60, f"faults took {seconds:.0f}s"
    print(f"\nfault proxy: {len(retries)} retries in {seconds:.1f}s: {[r['error'] for r in retries]}")


def test_an_endless_drip_ends_at_the_page_deadline(pg_url: str, couch_server, couch_db: CouchClient) -> None:
    """A body dripping one byte every 50 ms never trips a 30 s read timeout: only the page's
    wall-clock deadline ends it, and the checkpoint stays where it was."""
    load(couch_db, 300)
    proxy = FaultProxy(couch_server.url, drip_interval=0.05, endless_seconds=30)
    proxy.faults = ["endless_drip"]
    with serve(proxy) as proxy_url:
        client = CouchClient(proxy_url, couch_db.db, timeout=30, page_timeout=2)
        started = time.monotonic()
        with pytest.raises(CouchUnavailable, match="deadline"):
            sync(pg_url, client, attempts=1)
        elapsed = time.monotonic() - started
    assert 2 <= elapsed < 6, elapsed
    assert checkpoint(pg_url, couch_db.db) is None or checkpoint(pg_url, couch_db.db)[0] == "0"
    assert raw_snapshot(pg_url, couch_db.db).ids == []


def create_database(pg: RestartablePostgres) -> str:
    """A database on the test's own server (dropped with the server's data dir)."""
    with psycopg.connect(pg.url(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE hostile")
    return pg.url("hostile")


@pytest.mark.parametrize("shutdown", ["fast", "immediate"])
def test_postgres_restart_during_a_sync(
    restartable_pg: RestartablePostgres, couch_db: CouchClient, shutdown: str
) -> None:
    """Two pages commit; the third page's rows are written but its checkpoint waits on a row
    lock when PostgreSQL goes down (fast shutdown, or immediate = crash and recovery)."""
    pg_url = create_database(restartable_pg)
    load(couch_db, 1000)
    seqs = change_seqs(couch_db)
    holder: list[psycopg.Connection] = []

    def on_batch(progress: SyncProgress) -> None:
        if progress.batches == 2:  # hold the checkpoint row: batch 3 blocks before its commit
            conn = psycopg.connect(pg_url)
            conn.execute("SELECT 1 FROM raw.couchdb_progress WHERE source = %s FOR UPDATE", (couch_db.db,))
            holder.append(conn)

    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = sync(pg_url, couch_db, batch_size=200, on_batch=on_batch)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    wait_for(
        lambda: backend_waiting_on_lock(restartable_pg.url(), "%couchdb_progress%"),
        timeout=30,
        what="a batch blocked on its checkpoint",
    )
    if shutdown == "fast":
        restartable_pg.stop()
    else:
        stop_pid(restartable_pg.server.pid, sig=signal.SIGQUIT)
    thread.join(timeout=30)
    assert not thread.is_alive(), "the sync hangs after PostgreSQL went away"
    restartable_pg.start()
    for conn in holder:
        conn.close()
    assert "result" not in outcome, "the sync cannot have finished"
    error = outcome["error"]
    assert isinstance(error, psycopg.OperationalError), repr(error)
    snapshot = raw_snapshot(pg_url, couch_db.db)
    assert_checkpoint_consistent(snapshot, seqs)
    assert len(snapshot.ids) <= 400, "the blocked batch must have rolled back"

    again = sync(pg_url, couch_db, batch_size=200)
    assert again.row_count == 1000
    assert assert_replica_equals(couch_db, pg_url, couch_db.db) == 1000
    print(
        f"\n{shutdown} restart mid-sync: {type(error).__name__}: {str(error).strip()[:120]}; kept {len(snapshot.ids)} rows"
    )


def test_postgres_restart_during_a_view_refresh(
    restartable_pg: RestartablePostgres, couch_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """contactview_contact is built, not yet committed (its state row is locked), when
    PostgreSQL restarts: the run fails cleanly, the next run is complete and correct."""
    pg_url = create_database(restartable_pg)
    deployment = new_deployment(couch_server.url, pg_url, monkeypatch)
    load_deployment(couch_clients(couch_server.url), generate(SEED, HOUSEHOLDS), db_prefix=deployment.prefix)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        ensure_meta_schema(conn)
        conn.execute(
            "INSERT INTO cht_meta.refresh_state (object, layer, kind, code_version) "
            "VALUES ('contactview_contact', 'contactviews', 'incremental', 'stale')"
        )
    holder = psycopg.connect(pg_url)
    holder.execute("SELECT 1 FROM cht_meta.refresh_state WHERE object = 'contactview_contact' FOR UPDATE")
    restarted = threading.Event()

    def restart_when_blocked() -> None:
        try:
            wait_for(
                lambda: backend_waiting_on_lock(restartable_pg.url(), "%refresh_state%"),
                timeout=120,
                what="the refresh blocked before its commit",
                every=0.1,
            )
            restartable_pg.restart()
            restarted.set()
        except TimeoutError:
            holder.close()

    watcher = threading.Thread(target=restart_when_blocked, daemon=True)
    watcher.start()
    failed = materialize(deployment, raise_on_error=False)
    watcher.join(timeout=60)
    holder.close()
    assert restarted.is_set()
    assert not failed.success
    errors = [
        event.step_failure_data.error.message
        for event in failed.all_events
        if event.is_step_failure and event.step_failure_data.error
    ]
    assert any("contactview_contact" in e or "terminat" in e or "connection" in e for e in errors), errors

    recovered = materialize(deployment)
    assert recovered.success
    assert metadata(recovered, "contactview_contact")["mode"] in ("created", "rebuilt")
    failing = [
        (c.asset_key.to_user_string(), c.check_name)
        for c in recovered.get_asset_check_evaluations()
        if not c.passed and c.severity.value == "ERROR"
    ]
    assert failing == []
    check_all(deployment)
    print(f"\nrestart mid-refresh: {errors[0].strip()[:160]}")


def test_refresh_under_20_parallel_readers(
    pg_url: str, couch_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    deployment = new_deployment(couch_server.url, pg_url, monkeypatch)
    world = generate(SEED, HOUSEHOLDS)
    load_deployment(couch_clients(couch_server.url), world, db_prefix=deployment.prefix)
    assert materialize(deployment).success
    incremental = ["contactview_contact", "contactview_metadata", "form_metadata", "formview_pregnancy"]
    views = ["contactview_hierarchy", "useview_population", "useview_chw_activity", "useview_pregnancy"]
    with psycopg.connect(pg_url, autocommit=True) as conn:

        def counts() -> dict[str, int]:
            return {r: conn.execute(f'SELECT count(*) FROM "{r}"').fetchone()[0] for r in incremental + views}

        before = counts()
        with Readers(pg_url, incremental + views, n=20, pause=0.03) as readers:
            # 1. An incremental refresh after edits, deletes, conflicts and new docs.
            apply_mutations(couch_clients(deployment.couch_url), world, 1, db_prefix=deployment.prefix)
            first = materialize(deployment)
            after_edits = counts()
            # 2. Full rebuilds: every incremental table's code version forgotten (rebuilt in
            # place), and two tables given an extra column (dropped and created anew, with the
            # views that depend on them).
            conn.execute(
                "UPDATE cht_meta.refresh_state SET code_version = 'forced' WHERE kind = 'incremental'"
            )
            conn.execute("ALTER TABLE contactview_contact ADD COLUMN hostile_extra integer")
            conn.execute("ALTER TABLE formview_pregnancy ADD COLUMN hostile_extra integer")
            second = materialize(deployment)
            after_rebuild = counts()
        stats = readers.stats
    assert first.success and second.success
    assert metadata(first, "contactview_contact")["mode"] == "incremental"
    modes = {name: metadata(second, name)["mode"] for name in incremental}
    assert modes["contactview_contact"] == "created" and modes["formview_pregnancy"] == "created"
    assert modes["contactview_metadata"] == "rebuilt" and modes["form_metadata"] == "rebuilt"
    assert after_rebuild == after_edits
    assert stats.errors == [], stats.errors[:5]
    assert stats.empty == [], stats.empty[:5]
    for relation in incremental:
        # Each table changes in one transaction: readers see the old count or the new one.
        assert stats.seen[relation] <= {before[relation], after_edits[relation]}, (
            relation,
            stats.seen[relation],
        )
    assert stats.queries > 1000

    # The same, deterministic: a reader holds a view over contactview_contact, as a query does
    # between locking a view and the table under it, when the table must be replaced. The
    # rebuild waits for the reader; the reader's next lock (the table) is free.
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE contactview_contact ADD COLUMN hostile_again integer")
        conn.execute(
            "UPDATE cht_meta.refresh_state SET code_version = 'forced' WHERE object = 'contactview_contact'"
        )
    reader = psycopg.connect(pg_url)
    # Parsing a view definition locks the view it reads but, unlike a query, not the relations
    # under it: the reader now holds useview_pregnancy (a view over contactview_contact) alone,
    # until it commits.
    reader.execute("CREATE TEMP VIEW hold AS SELECT * FROM useview_pregnancy")
    outcome: dict[str, object] = {}

    def rebuild() -> None:
        try:
            outcome["result"] = materialize_only(deployment, ["contactview_contact"])
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            outcome["error"] = exc

    thread = threading.Thread(target=rebuild, daemon=True)
    thread.start()
    try:
        try:
            wait_for(
                lambda: bool(outcome) or backend_waiting_on_lock(pg_url, "%DROP %"),
                timeout=60,
                what="the rebuild waiting",
            )
        except TimeoutError as exc:
            raise AssertionError(f"{exc}: {activity(pg_url)}") from None
        assert not outcome, f"the rebuild did not wait for the reader: {outcome}"
        assert reader.execute("SELECT count(*) FROM contactview_contact").fetchone()[0] > 0
        reader.commit()
    finally:
        reader.close()
        thread.join(timeout=60)
    assert not thread.is_alive(), f"the rebuild still runs 60 s after the reader let go: {activity(pg_url)}"
    assert "error" not in outcome, outcome.get("error")
    assert metadata(outcome["result"], "contactview_contact")["mode"] == "created"
    print(f"\nreaders: {stats.queries} queries, modes {modes}, counts {before} -> {after_edits}")
