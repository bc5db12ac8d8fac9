"""The helper functions of sql/functions under a parallel plan, on bad values."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg

SQL_FUNCTIONS = Path(__file__).resolve().parents[2] / "sql" / "functions"
BAD_AND_GOOD = [
    "2026-13-45",
    "yesterday",
    "",
    "abc",
    "1e999",
    "2024-02-29",
    "12",
    "3.5",
    "2024-04-26T00:00:00.000-00:00",
]


def test_casts_on_bad_values_survive_parallel_plans(pg_url: str) -> None:
    """A PL/pgSQL EXCEPTION block cannot run in a parallel worker: such functions must not be
    PARALLEL SAFE, or a big enough CREATE TABLE AS fails once a bad value reaches its handler."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for path in sorted(SQL_FUNCTIONS.glob("*.sql")):
            conn.execute(path.read_text())
        conn.execute(
            "CREATE TABLE answers AS SELECT (%s::text[])[1 + i %% cardinality(%s::text[])] AS v "
            "FROM generate_series(1, 60000) AS i",
            (BAD_AND_GOOD, BAD_AND_GOOD),
        )
        conn.execute("ANALYZE answers")
        for setting in ("parallel_setup_cost = 0", "parallel_tuple_cost = 0", "min_parallel_table_scan_size = 0",
                        "max_parallel_workers_per_gather = 2"):  # fmt: skip
            conn.execute(f"SET {setting}")
        conn.execute(
            "CREATE TABLE casts AS SELECT cht_to_date(v) AS d, cht_to_integer(v) AS i, cht_to_bigint(v) AS b, "
            "cht_to_numeric(v) AS n, cht_to_timestamptz(v) AS t, get_telemetry_date('3.9.0', v, '1', '1') AS g "
            "FROM answers"
        )
        counts = conn.execute("SELECT count(d), count(i), count(n), count(*) FROM casts").fetchone()
    per_value = 60000 // len(BAD_AND_GOOD)
    assert counts[3] == 60000
    assert counts[0] in range(2 * per_value - 10, 2 * per_value + 10)  # 2024-02-29 and the T00:00 form
    assert counts[1] in range(per_value - 10, per_value + 10)  # only "12"
    assert counts[2] in range(2 * per_value - 10, 2 * per_value + 10)  # "12" and "3.5"


def test_functions_with_exception_blocks_are_not_parallel_safe() -> None:
    for path in sorted(SQL_FUNCTIONS.glob("*.sql")):
        text = path.read_text().upper()
        if re.search(r"\bEXCEPTION\s+WHEN\b", text):
            assert "PARALLEL SAFE" not in text, f"{path.name}: EXCEPTION block but PARALLEL SAFE"
