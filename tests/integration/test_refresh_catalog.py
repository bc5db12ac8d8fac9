"""The refresh engine on a small fixture, without Dagster: a catalog from a three-file `sql/`
folder over raw docs written by hand, refreshed object by object with its checks."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from cht_assets.replica.schema import ensure_raw_schema
from cht_assets.warehouse.__main__ import refresh_catalog
from cht_assets.warehouse.catalog import build_catalog
from cht_assets.warehouse.state import ensure_meta_schema

FILES = {
    "contactviews/people.sql": """-- materialized: incremental
-- unique_key: uuid
SELECT d._id AS uuid, d.doc ->> 'name' AS name
FROM raw.couchdb_docs AS d
WHERE d.doc ->> 'type' = 'person' AND NOT d._deleted
""",
    "useviews/names.sql": """-- materialized: view
-- unique_key: name
SELECT p.name, count(*) AS persons FROM people AS p GROUP BY p.name
""",
    "useviews/after_names.sql": """-- materialized: view
-- unique_key: name
SELECT n.name FROM names AS n
""",
}


@pytest.fixture
def sql_root(tmp_path: Path) -> Path:
    for name, text in FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def write(conn: psycopg.Connection, doc_id: str, doc: dict | None) -> None:
    """As the replication writes a doc (None: a delete): a new change_seq on every write."""
    conn.execute(
        "INSERT INTO raw.couchdb_docs (source, _id, _rev, _deleted, doc) VALUES ('medic', %s, '1-a', %s, %s) "
        "ON CONFLICT (source, _id) DO UPDATE SET _deleted = excluded._deleted, doc = excluded.doc, "
        "change_seq = nextval('raw.couchdb_change_seq')",
        (doc_id, doc is None, psycopg.types.json.Jsonb(doc or {"_id": doc_id})),
    )


def test_build_follow_changes_and_stop_at_a_failed_blocking_check(pg_url: str, sql_root: Path) -> None:
    catalog = build_catalog([], sql_root=sql_root)
    assert list(catalog.entries) == ["people", "names", "after_names"]
    lines: list[str] = []
    with psycopg.connect(pg_url, autocommit=True) as conn:
        ensure_raw_schema(conn, ["medic"])
        ensure_meta_schema(conn)
        write(conn, "p1", {"type": "person", "name": "Ann"})
        write(conn, "p2", {"type": "person", "name": "Bo"})
        write(conn, "hc", {"type": "health_center", "name": "Area"})
        assert refresh_catalog(conn, catalog, say=lines.append) == {
            "people": "created",
            "names": "created",
            "after_names": "created",
        }
        assert conn.execute("SELECT name, persons FROM names ORDER BY 1").fetchall() == [
            ("Ann", 1),
            ("Bo", 1),
        ]

        # An edit and a delete: the table follows the two docs that changed, the views are current.
        write(conn, "p1", {"type": "person", "name": "Bo"})
        write(conn, "p2", None)
        outcome = refresh_catalog(conn, catalog, say=lines.append)
        assert outcome["people"] == "incremental", lines
        assert conn.execute("SELECT uuid, name FROM people").fetchall() == [("p1", "Bo")]
        assert conn.execute("SELECT name, persons FROM names").fetchall() == [("Bo", 1)]

        # A person without a name: `names` has a NULL key, its blocking check fails, and what
        # reads it is not refreshed.
        write(conn, "p3", {"type": "person"})
        lines.clear()
        outcome = refresh_catalog(conn, catalog, say=lines.append)
        assert outcome == {"people": "incremental", "names": "blocked", "after_names": "skipped"}, lines
        assert any("check unique_key (ERROR): 1" in line for line in lines), lines
        assert "after_names: skipped (names not built)" in lines
