"""The grain check's query (quality.key_problems) against counts made in Python over the same
rows: repeated keys, NULL key columns, a nullable key column, a scope of doc ids."""

import collections
import json
import random

import psycopg

from cht_assets.warehouse import quality

ROWS = 2000


def rows(seed: int) -> list[tuple[str, str | None, str | None]]:
    """(doc, a, b): few distinct values, so keys repeat; some NULLs in each key column."""
    rng = random.Random(seed)
    value = lambda: None if rng.random() < 0.05 else str(rng.randrange(40))  # noqa: E731
    return [(f"doc{rng.randrange(ROWS // 2)}", value(), value()) for _ in range(ROWS)]


def expected(found: list[tuple[str, str | None, str | None]], nullable: tuple[str, ...]) -> tuple[int, int]:
    """Repeated keys (NULLs repeating like a value in a nullable column) and rows with a NULL
    in a column that may not hold one."""
    strict = [i for i, column in enumerate(("a", "b"), start=1) if column not in nullable]
    nulls = sum(1 for row in found if any(row[i] is None for i in strict))
    counts = collections.Counter((row[1], row[2]) for row in found if all(row[i] is not None for i in strict))
    return sum(1 for n in counts.values() if n > 1), nulls


def test_the_key_check_counts_what_python_counts(pg_url: str) -> None:
    table = rows(seed=7)
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TEMP TABLE keyed (doc text, a text, b text)")
        with conn.cursor().copy("COPY keyed (doc, a, b) FROM STDIN") as copy:
            for row in table:
                copy.write_row(row)
        for nullable in ((), ("b",), ("a", "b")):
            duplicates, nulls = expected(table, nullable)
            assert duplicates > 0 and (nulls > 0 or nullable == ("a", "b"))
            found = quality.key_problems(conn, "keyed", ("a", "b"), "doc", None, nullable)
            assert found.details == {"duplicates": duplicates, "nulls": nulls}, nullable
            assert found.count == duplicates + nulls
            assert len(found.examples) == quality.EXAMPLES + (1 if nulls else 0)
            assert all(e.startswith("repeated ") for e in found.examples[: quality.EXAMPLES])
            assert (found.examples[-1] == "NULL key") == (nulls > 0)
        ids = sorted({row[0] for row in table})[:100]
        scoped = [row for row in table if row[0] in ids]
        found = quality.key_problems(conn, "keyed", ("a", "b"), "doc", ids)
        duplicates, nulls = expected(scoped, ())
        assert found.details == {"duplicates": duplicates, "nulls": nulls}
        assert quality.key_problems(conn, "keyed", ("a", "b"), "doc", ()).count == 0
        conn.execute("DELETE FROM keyed WHERE a IS NULL OR b IS NULL")
        conn.execute(
            "DELETE FROM keyed AS k WHERE ctid <> (SELECT min(ctid) FROM keyed AS o WHERE (o.a, o.b) = (k.a, k.b))"
        )
        clean = quality.key_problems(conn, "keyed", ("a", "b"))
        assert (clean.count, clean.examples) == (0, [])


def test_a_doc_key_is_checked_by_its_hash_first_and_repeats_found_exactly(pg_url: str) -> None:
    """A jsonb key (raw_contacts' `doc`): hashes first, the docs compared only when two hash
    alike; equal docs as PostgreSQL compares them (1.0 = 1, keys in any order)."""
    docs = [{"_id": f"c{i}", "name": f"n{i % 7}"} for i in range(500)]
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TEMP TABLE contacts (doc jsonb)")
        with conn.cursor().copy("COPY contacts (doc) FROM STDIN") as copy:
            for doc in docs:
                copy.write_row([json.dumps(doc)])
        clean = quality.key_problems(conn, "contacts", ("doc",))
        assert (clean.count, clean.details) == (0, {"duplicates": 0, "nulls": 0})
        conn.execute("""INSERT INTO contacts VALUES ('{"name": "n3", "_id": "c3"}'), (NULL), (NULL)""")
        conn.execute("""INSERT INTO contacts VALUES ('{"_id": "x", "v": 1}'), ('{"_id": "x", "v": 1.0}')""")
        found = quality.key_problems(conn, "contacts", ("doc",))
        assert found.details == {"duplicates": 2, "nulls": 2}
        assert (
            sum(e.startswith("repeated ") for e in found.examples) == 2 and found.examples[-1] == "NULL key"
        )
