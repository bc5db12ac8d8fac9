"""The generated formview SQL and the sql/functions casts on a real PostgreSQL (18, and 15 where
the machine has one), against the real CHT reports in /work/shared/cht-sample-docs.

Expected values are computed in Python straight from the report JSON, not from the SQL.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import psycopg
import pytest
from psycopg.types.json import Jsonb

from cht_assets.replica.schema import ensure_raw_schema
from cht_assets.sqlnames import quote_ident, safe_identifier
from cht_assets.xforms.formview import (
    COMMON_COLUMNS,
    REQUIRED_FUNCTIONS,
    Column,
    cast_failures_select,
    formview_columns,
    formview_name,
    formview_repeat_name,
    formview_repeat_select,
    formview_select,
)
from cht_assets.xforms.parse import XForm, parse_xform

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "sql" / "functions"
BOTH_POSTGRES = pytest.mark.parametrize("pg_url", ["pg18-embedded", "pg15-system"], indirect=True)


# ---------------------------------------------------------------------------------- helpers


@pytest.fixture
def conn(pg_url: str) -> Iterator[psycopg.Connection]:
    """raw.couchdb_docs plus the helper functions, in a fresh database."""
    with psycopg.connect(pg_url, autocommit=True) as connection:
        ensure_raw_schema(connection, ["medic"])
        for name in REQUIRED_FUNCTIONS:
            connection.execute((FUNCTIONS_DIR / f"{name}.sql").read_text())
        yield connection


def insert_docs(conn: psycopg.Connection, docs: Sequence[dict[str, Any]]) -> None:
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO raw.couchdb_docs (source, _id, _rev, _deleted, doc) VALUES ('medic', %s, %s, %s, %s)",
            [(d["_id"], d.get("_rev", "1-a"), bool(d.get("_deleted")), Jsonb(d)) for d in docs],
        )


def fetch(conn: psycopg.Connection, sql: str) -> list[dict[str, Any]]:
    with conn.cursor() as cur:
        cur.execute(sql)
        names = [c.name for c in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def lookup(value: Any, path: Sequence[str]) -> Any:
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def as_elements(value: Any) -> list[Any]:
    if isinstance(value, list):
        return value
    return [value] if isinstance(value, dict) else []


NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def expected_value(raw: Any, kind: str) -> Any:
    """What a column must hold for a raw JSON value, computed the Python way."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raw = json.dumps(raw)  # CHT leaves are strings; SMS fields may be numbers
    if kind == "text":
        return raw or None
    if kind in ("integer", "bigint"):
        bits = 31 if kind == "integer" else 63
        ok = re.fullmatch(r"\s*[+-]?\d+\s*", raw) and -(2**bits) <= int(raw) < 2**bits
        return int(raw) if ok else None
    if kind == "numeric":
        match = NUMBER.fullmatch(raw)
        if not match or (match.group(2) and abs(int(match.group(2)[1:])) > 308):
            return None
        return Decimal(raw.strip())
    if kind == "date":
        match = re.match(r"\s*(\d{4})-(\d{1,2})-(\d{1,2})(?:[T ]|\s*$)", raw)
        try:
            return date(*map(int, match.groups())) if match else None
        except ValueError:
            return None
    if kind == "timestamptz":
        try:
            parsed = datetime.fromisoformat(raw.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if kind == "select":
        return raw.split() or None
    if kind in ("latitude", "longitude"):
        parts = raw.split()
        if not 2 <= len(parts) <= 4:
            return None
        try:
            number = Decimal(parts[0] if kind == "latitude" else parts[1])
        except InvalidOperation:
            return None
        limit = 90 if kind == "latitude" else 180
        return number if number.is_finite() and -limit <= number <= limit else None
    raise AssertionError(kind)


def first_text(*values: Any) -> Any:
    return next((v for v in values if isinstance(v, str) and v), None)


def check_main_view(conn: psycopg.Connection, xform: XForm, reports: list[dict[str, Any]]) -> list[Column]:
    columns = formview_columns(xform)
    view = formview_name(xform.form_id)
    conn.execute(f"CREATE VIEW {quote_ident(view)} AS\n{formview_select(xform.form_id, columns)}")
    rows = {row["uuid"]: row for row in fetch(conn, f"SELECT * FROM {quote_ident(view)}")}
    assert sorted(rows) == sorted(r["_id"] for r in reports)
    for report in reports:
        row = rows[report["_id"]]
        fields = report.get("fields", {})
        assert row["reported"] == datetime.fromtimestamp(int(report["reported_date"]) / 1000, UTC)
        assert row["form_version"] == lookup(report, ("form_version", "sha256"))
        assert row["submitter_uuid"] == first_text(lookup(report, ("contact", "_id")))
        assert row["submitter_parent_uuid"] == first_text(lookup(report, ("contact", "parent", "_id")))
        assert row["patient_uuid"] == first_text(
            fields.get("patient_uuid"), lookup(fields, ("inputs", "contact", "_id"))
        )
        assert row["patient_id"] == first_text(
            report.get("patient_id"), fields.get("patient_id"), fields.get("patient_uuid")
        )
        for column in columns:
            assert row[column.name] == expected_value(lookup(report, column.json_path), column.kind), column
    return columns


def check_repeat_views(conn: psycopg.Connection, xform: XForm, reports: list[dict[str, Any]]) -> int:
    """Each repeat view against the arrays in the reports; returns the number of rows."""
    total = 0
    for repeat in xform.repeats:
        assert not xform.enclosing_repeats(repeat), "the sample forms have no nested repeats"
        columns = formview_columns(xform, repeat=repeat)
        view = formview_repeat_name(xform.form_id, repeat)
        conn.execute(
            f"CREATE VIEW {quote_ident(view)} AS\n{formview_repeat_select(xform.form_id, repeat, columns)}"
        )
        rows = {
            (r["parent_uuid"], r["repeat_index"]): r
            for r in fetch(conn, f"SELECT * FROM {quote_ident(view)}")
        }
        expected = {
            (report["_id"], index): element
            for report in reports
            for index, element in enumerate(as_elements(lookup(report, ("fields", *repeat))), start=1)
        }
        assert sorted(rows) == sorted(expected)
        for key, element in expected.items():
            for column in columns:
                assert rows[key][column.name] == expected_value(
                    lookup(element, column.json_path), column.kind
                )
        total += len(rows)
    return total


def assert_no_cast_failures(conn: psycopg.Connection, xform: XForm, columns: list[Column]) -> None:
    failures = fetch(conn, cast_failures_select(xform.form_id, columns))
    assert [(f["column_name"], f["failures"]) for f in failures if f["failures"]] == []
    assert [f["column_name"] for f in failures] == ["reported"] + [
        c.name for c in columns if c.kind != "text"
    ]


def sample(shared_dir: Path, relative: str) -> Any:
    return json.loads((shared_dir / "cht-sample-docs" / relative).read_text())


# ------------------------------------------------------------------------------ functions

UTC3 = timezone(timedelta(hours=3))
CAST_CASES: list[tuple[str, str | None, Any]] = [
    ("cht_to_integer", "3", 3),
    ("cht_to_integer", " -42 ", -42),
    ("cht_to_integer", "00000000000000000012", 12),
    ("cht_to_integer", "2147483647", 2147483647),
    ("cht_to_integer", "2147483648", None),
    ("cht_to_integer", "99999999999999999999999", None),
    ("cht_to_integer", "", None),
    ("cht_to_integer", "abc", None),
    ("cht_to_integer", "1e999", None),
    ("cht_to_integer", "3.0", None),
    ("cht_to_integer", "0x1F", None),  # PostgreSQL 16+ would read these two; 15 would not
    ("cht_to_integer", "1_000", None),
    ("cht_to_integer", None, None),
    ("cht_to_bigint", "9223372036854775807", 9223372036854775807),
    ("cht_to_bigint", "9223372036854775808", None),
    ("cht_to_bigint", "undefined", None),
    ("cht_to_numeric", "36.50", Decimal("36.50")),
    ("cht_to_numeric", ".5", Decimal("0.5")),
    ("cht_to_numeric", "-7", Decimal("-7")),
    ("cht_to_numeric", "1.5e-7", Decimal("1.5e-7")),
    ("cht_to_numeric", "1" + "0" * 1500, Decimal("1e1500")),
    ("cht_to_numeric", "1e999", None),
    ("cht_to_numeric", "NaN", None),
    ("cht_to_numeric", "Infinity", None),
    ("cht_to_numeric", "abc", None),
    ("cht_to_numeric", "", None),
    ("cht_to_numeric", "1.2.3", None),
    ("cht_to_date", "2024-01-05", date(2024, 1, 5)),
    ("cht_to_date", "2024-02-29", date(2024, 2, 29)),
    ("cht_to_date", "2024-04-26T00:00:00.000-00:00", date(2024, 4, 26)),
    ("cht_to_date", "2024-04-26 23:59:59+05:45", date(2024, 4, 26)),
    ("cht_to_date", "2023-02-29", None),
    ("cht_to_date", "2024-04-31", None),
    ("cht_to_date", "2026-13-45", None),
    ("cht_to_date", "0000-01-01", None),
    ("cht_to_date", "2024-04-26T25:00:00", None),
    ("cht_to_date", "yesterday", None),
    ("cht_to_date", "today", None),
    ("cht_to_date", "infinity", None),
    ("cht_to_date", "undefined", None),
    ("cht_to_date", "05/01/2024", None),
    ("cht_to_date", "", None),
    ("cht_to_timestamptz", "2024-04-26T10:11:12.500+03:00", datetime(2024, 4, 26, 10, 11, 12, 500000, UTC3)),
    ("cht_to_timestamptz", "2024-04-26T10:11:12Z", datetime(2024, 4, 26, 10, 11, 12, tzinfo=UTC)),
    ("cht_to_timestamptz", "2024-04-26T00:00:00.000-00:00", datetime(2024, 4, 26, tzinfo=UTC)),
    ("cht_to_timestamptz", "2024-04-26 10:11", datetime(2024, 4, 26, 10, 11, tzinfo=UTC)),
    ("cht_to_timestamptz", "2024-04-26", datetime(2024, 4, 26, tzinfo=UTC)),
    ("cht_to_timestamptz", "2024-02-30T10:00:00Z", None),
    ("cht_to_timestamptz", "2024-01-01T10:00:00+16:00", None),
    ("cht_to_timestamptz", "2024-01-01T25:00:00Z", None),
    ("cht_to_timestamptz", "now", None),
    ("cht_to_timestamptz", "yesterday", None),
    ("cht_to_timestamptz", "", None),
    ("cht_epoch_ms_to_timestamptz", "1713876180000", datetime(2024, 4, 23, 12, 43, tzinfo=UTC)),
    ("cht_epoch_ms_to_timestamptz", " 1713876180000 ", datetime(2024, 4, 23, 12, 43, tzinfo=UTC)),
    ("cht_epoch_ms_to_timestamptz", "-999999999999999", None),  # beyond 4713 BC: NULL, not an error
    ("cht_epoch_ms_to_timestamptz", "1e999", None),
    ("cht_epoch_ms_to_timestamptz", "abc", None),
    ("cht_epoch_ms_to_timestamptz", "", None),
    ("cht_to_text_array", "cholera polio  vitamin_a ", ["cholera", "polio", "vitamin_a"]),
    ("cht_to_text_array", "one", ["one"]),
    ("cht_to_text_array", "   ", None),
    ("cht_to_text_array", "", None),
    ("cht_geopoint_latitude", "-1.5 36.8 1200 5", Decimal("-1.5")),
    ("cht_geopoint_longitude", "-1.5 36.8 1200 5", Decimal("36.8")),
    ("cht_geopoint_latitude", "12.5 -100", Decimal("12.5")),
    ("cht_geopoint_latitude", "91 10", None),
    ("cht_geopoint_longitude", "12.5 200", None),
    ("cht_geopoint_latitude", "abc def", None),
    ("cht_geopoint_latitude", "12.5", None),
    ("cht_geopoint_latitude", "1" * 200 + " 5", None),
    ("cht_geopoint_latitude", "1e1 5", None),
    ("cht_geopoint_longitude", "1 2 3 4 5", None),
    ("cht_geopoint_longitude", "", None),
]


@BOTH_POSTGRES
def test_cast_functions_return_null_instead_of_failing(conn: psycopg.Connection) -> None:
    # Neither the session's time zone nor its date style may change a result.
    conn.execute("SET TimeZone = 'Asia/Kathmandu'")
    conn.execute("SET DateStyle = 'ISO, DMY'")
    got = [
        conn.execute(f"SELECT public.{function}(%s::text)", (value,)).fetchone()[0]
        for function, value, _ in CAST_CASES
    ]
    mismatches = [
        (f, v, want, have) for (f, v, want), have in zip(CAST_CASES, got, strict=True) if have != want
    ]
    assert mismatches == []
    arrays = conn.execute(
        "SELECT public.cht_as_jsonb_array('[1, 2]'), public.cht_as_jsonb_array('{\"a\": 1}'), "
        "public.cht_as_jsonb_array('\"x\"'), public.cht_as_jsonb_array(NULL)"
    ).fetchone()
    assert arrays == ([1, 2], [{"a": 1}], [], [])
    volatility = dict(
        conn.execute(
            "SELECT p.proname, p.provolatile::text || p.proparallel::text FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public'"
        ).fetchall()
    )
    assert set(volatility) == set(REQUIRED_FUNCTIONS)
    # text -> timestamptz is STABLE; casts with an EXCEPTION fallback are PARALLEL UNSAFE
    # (test_sql_functions.py says why), the others PARALLEL SAFE.
    assert volatility.pop("cht_to_timestamptz") == "su"
    unsafe = {"cht_to_bigint", "cht_to_date", "cht_to_integer", "cht_to_numeric"}
    assert {name: kind for name, kind in volatility.items() if name in unsafe} == dict.fromkeys(unsafe, "iu")
    assert {kind for name, kind in volatility.items() if name not in unsafe} == {"is"}


# ------------------------------------------------------------------------- real CHT reports


@BOTH_POSTGRES
def test_formviews_of_the_real_cht_reports(conn: psycopg.Connection, shared_dir: Path) -> None:
    reports = sample(shared_dir, "medic/reports.json")
    deleted = [entry["doc"] for entry in sample(shared_dir, "medic/deleted-and-conflicted.json")]
    forms = [
        json.loads(p.read_text()) for p in sorted((shared_dir / "cht-sample-docs/medic/forms").glob("*.json"))
    ]
    insert_docs(conn, reports + deleted + forms)
    assert any(d.get("_deleted") and d.get("form") == "pregnancy_danger_sign" for d in deleted)
    checked_reports = repeat_rows = 0
    for form in forms:
        xform = parse_xform(base64.b64decode(form["_attachments"]["xml"]["data"]))
        assert xform.form_id == form["internalId"]
        live = [r for r in reports if r.get("form") == xform.form_id and r.get("type") == "data_record"]
        columns = check_main_view(conn, xform, live)
        assert_no_cast_failures(conn, xform, columns)
        repeat_rows += check_repeat_views(conn, xform, live)
        checked_reports += len(live)
    assert checked_reports == 70  # every XForm report of the sample (SMS ones have no form doc)
    # delivery: 6 reports with baby deaths (3 x 1, 3 x 2) and 21 with live babies (18 x 1, 3 x 2);
    # pregnancy_home_visit: 3 reports with 2 visited dates each
    assert repeat_rows == 9 + 24 + 6


@BOTH_POSTGRES
def test_standard_forms_with_cht_sync_import_docs(conn: psycopg.Connection, shared_dir: Path) -> None:
    """Old root names (`/pregnancy/...`), select/select1 binds, and the cht-sync e2e docs made by
    `cht csv-to-docs` (hydrated parents, `parent: ""`, string dates inside them)."""
    docs = sample(shared_dir, "verbatim/cht-sync-e2e.csv-to-docs.sample.json")
    for doc in docs:
        doc.setdefault("_id", f"generated-{id(doc)}")
    insert_docs(conn, docs)
    selects = 0
    for name in ("pregnancy", "delivery", "immunization_visit", "child_health_registration"):
        xform = parse_xform((shared_dir / "cht-sample-docs/xforms/standard/app" / f"{name}.xml").read_bytes())
        reports = [d for d in docs if d.get("type") == "data_record" and d.get("form") == name]
        assert reports
        columns = check_main_view(conn, xform, reports)
        view = quote_ident(formview_name(name))
        for column in (c for c in columns if c.kind == "select"):
            selects += conn.execute(f"SELECT count({quote_ident(column.name)}) FROM {view}").fetchone()[0]
    vaccines = conn.execute(
        f"SELECT group_select_vaccines_g_vaccines FROM {quote_ident(formview_name('immunization_visit'))}"
    ).fetchall()
    assert all(isinstance(v, list) and "polio" in v for (v,) in vaccines)
    assert selects >= len(vaccines) > 0


# --------------------------------------------------------------------------------- hostile

HOSTILE_KEYS = [
    "x'; DROP TABLE public.canary; --",
    'a"b',
    "$$; DROP TABLE public.canary; $$",
    "back\\slash\\'",
    "%s %(x)s %%",
    "ünïcødé 表格 😀",
    "new\nline",
    "SELECT",  # the leaves below include `select` and `uuid`: these clean to the same names
    "UUID",
]


def schema_snapshot(conn: psycopg.Connection) -> tuple[set[str], set[str]]:
    relations = conn.execute(
        "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'"
    ).fetchall()
    functions = conn.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')"
    ).fetchall()
    return {r for (r,) in relations}, {f for (f,) in functions}


def hostile_xform(form_id: str, leaves: Sequence[str]) -> bytes:
    binds = "".join(f'<bind nodeset="/data/{name}" type="int"/>' for name in leaves)
    return f"""<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml">
      <h:head><h:title>t</h:title><model>
        <instance><data id={quoteattr(form_id)}>{"".join(f"<{n}/>" for n in leaves)}</data></instance>
        {binds}
      </model></h:head><h:body/></h:html>""".encode()


@BOTH_POSTGRES
def test_hostile_form_ids_and_field_names_inject_nothing(conn: psycopg.Connection) -> None:
    conn.execute("CREATE TABLE public.canary (alive boolean)")
    conn.execute("INSERT INTO public.canary VALUES (true)")
    before = schema_snapshot(conn)
    form_id = "f'); DROP TABLE public.canary; -- $$ \\ \" ; %s 表格 😀 " + "y" * 300
    leaves = ["select", "uuid", "reported", "patient_id", "ünïcødé", "Ω", "a.b-c", "z" * 300, "_"]
    xform = parse_xform(hostile_xform(form_id, leaves))
    assert xform.form_id == form_id
    columns = formview_columns(xform)
    # JSON keys and persisted column names can hold what no XML name can.
    taken = set(COMMON_COLUMNS) | {c.name for c in columns}
    columns += [Column(safe_identifier(key, taken), "text", ("fields", key), "text") for key in HOSTILE_KEYS]
    odd_names = ['c"; DROP TABLE public.canary; --', "ünï 😀", "$$", "%s"]
    columns += [Column(name, "text", ("fields", "odd"), "text") for name in odd_names]
    repeat = (HOSTILE_KEYS[0], HOSTILE_KEYS[2])
    repeat_columns = [Column("v", "integer", (HOSTILE_KEYS[3],), "integer")]
    doc = {
        "_id": "r'1\\",
        "type": "data_record",
        "form": form_id,
        "reported_date": 1713876180000,
        "fields": {
            **{name: "7" for name in leaves},
            **{key: f"value of {key}" for key in HOSTILE_KEYS},
            "odd": "odd",
        },
    }
    # The first key holds the repeat instead (its text column then shows the JSON).
    doc["fields"][HOSTILE_KEYS[0]] = {HOSTILE_KEYS[2]: [{HOSTILE_KEYS[3]: "5"}, {HOSTILE_KEYS[3]: "x"}]}
    insert_docs(conn, [doc])

    view, repeat_view = formview_name(form_id), formview_repeat_name(form_id, repeat)
    # Plain execute without parameters: PostgreSQL would run every statement an injection added.
    conn.execute(f"CREATE VIEW {quote_ident(view)} AS {formview_select(form_id, columns)}")
    conn.execute(
        f"CREATE VIEW {quote_ident(repeat_view)} AS {formview_repeat_select(form_id, repeat, repeat_columns)}"
    )
    (row,) = fetch(conn, f"SELECT * FROM {quote_ident(view)}")
    failures = fetch(conn, cast_failures_select(form_id, columns))
    repeat_failures = fetch(conn, cast_failures_select(form_id, repeat_columns, repeat=repeat))

    assert conn.execute("SELECT alive FROM public.canary").fetchall() == [(True,)]
    relations, functions = schema_snapshot(conn)
    assert relations == before[0] | {f"public.{view}", f"public.{repeat_view}"}
    assert functions == before[1]

    assert row["uuid"] == "r'1\\"
    assert list(row) == [*COMMON_COLUMNS, *(c.name for c in columns)]
    for column in columns:
        key = column.json_path[-1]
        if column.kind == "integer":
            assert row[column.name] == 7
        elif key == "odd":
            assert row[column.name] == "odd"
        elif key != HOSTILE_KEYS[0]:
            assert row[column.name] == f"value of {key}"
    assert fetch(conn, f"SELECT * FROM {quote_ident(repeat_view)}") == [
        {"parent_uuid": "r'1\\", "repeat_index": 1, "v": 5},
        {"parent_uuid": "r'1\\", "repeat_index": 2, "v": None},
    ]
    assert all(f["failures"] == 0 for f in failures)
    assert repeat_failures == [
        {
            "column_name": "v",
            "sql_type": "integer",
            "failures": 1,
            "examples": [{"uuid": "r'1\\", "value": "x", "repeat_index": 2}],
        }
    ]


# ----------------------------------------------------------------------------- bad values

QUALITY_XFORM = b"""<?xml version="1.0"?>
<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml"
        xmlns:jr="http://openrosa.org/javarosa">
  <h:head><h:title>Quality</h:title><model>
    <instance><data id="quality" version="1">
      <n/><amount/><big/><day/><moment/><choices/><place/><note/>
      <kids jr:template=""><age/><doses jr:template=""><when/></doses></kids>
      <meta><instanceID/></meta>
    </data></instance>
    <bind nodeset="/data/n" type="int"/>
    <bind nodeset="/data/amount" type="decimal"/>
    <bind nodeset="/data/big" type="long"/>
    <bind nodeset="/data/day" type="date"/>
    <bind nodeset="/data/moment" type="dateTime"/>
    <bind nodeset="/data/choices" type="select"/>
    <bind nodeset="/data/place" type="geopoint"/>
    <bind nodeset="/data/kids/age" type="int"/>
    <bind nodeset="/data/kids/doses/when" type="date"/>
  </model></h:head>
  <h:body>
    <repeat nodeset="/data/kids"><input ref="/data/kids/age"/>
      <repeat nodeset="/data/kids/doses"><input ref="/data/kids/doses/when"/></repeat>
    </repeat>
  </h:body>
</h:html>
"""


def report(
    doc_id: str, form: str = "quality", reported: Any = 1713876180000, **fields: Any
) -> dict[str, Any]:
    return {"_id": doc_id, "type": "data_record", "form": form, "reported_date": reported, "fields": fields}


@BOTH_POSTGRES
def test_bad_values_are_null_and_counted(conn: psycopg.Connection) -> None:
    xform = parse_xform(QUALITY_XFORM)
    good = report(
        "a-good",
        n="3",
        amount="36.6",
        big="9007199254740993",
        day="2024-01-05",
        moment="2024-01-05T10:00:00.000+03:00",
        choices="a b",
        place="-1.5 36.8 1200 5",
        note="kept",
        # the second kid holds its doses as one object, as old clients stored a single repeat
        kids=[
            {"age": "2", "doses": [{"when": "2024-01-01"}, {"when": "bad"}]},
            {"age": "x", "doses": {"when": "2024-02-01"}},
        ],
    )
    bad = report(
        "b-bad",
        reported="not a date",
        n="abc",
        amount="1e999",
        big="99999999999999999999",
        day="2026-13-45",
        moment="yesterday",
        choices="   ",
        place="91 200",
        kids={"age": "1e999"},
    )
    empty = report(
        "c-empty", reported="1713876180000", n="", amount="", day="", choices="", place="", kids=[]
    )
    more_bad_n = [
        report(f"d-{i}", n=value, day="yesterday")
        for i, value in enumerate(["1e999", "3.5", "--1", "undefined"])
    ]
    ignored = [
        {**report("e-deleted", n="abc"), "_deleted": True},
        report("f-other-form", form="other", n="abc"),
        {**report("g-message", n="abc"), "type": "message"},
    ]
    insert_docs(conn, [good, bad, empty, *more_bad_n, *ignored])

    v1 = formview_columns(xform)
    # Version 2 of the form drops `note`: the column stays, reports that had it keep their value.
    v2_xform = parse_xform(QUALITY_XFORM.replace(b"<note/>", b""))
    columns = formview_columns(v2_xform, known=v1)
    assert columns == v1
    rows = {r["uuid"]: r for r in fetch(conn, formview_select("quality", columns))}
    assert sorted(rows) == ["a-good", "b-bad", "c-empty", "d-0", "d-1", "d-2", "d-3"]
    assert {k: rows["a-good"][k] for k in ("n", "amount", "big", "day", "choices", "note")} == {
        "n": 3,
        "amount": Decimal("36.6"),
        "big": 9007199254740993,
        "day": date(2024, 1, 5),
        "choices": ["a", "b"],
        "note": "kept",
    }
    assert rows["a-good"]["moment"] == datetime(2024, 1, 5, 7, tzinfo=UTC)
    assert (rows["a-good"]["place_latitude"], rows["a-good"]["place_longitude"]) == (
        Decimal("-1.5"),
        Decimal("36.8"),
    )
    assert rows["c-empty"]["reported"] == datetime(2024, 4, 23, 12, 43, tzinfo=UTC)  # a numeric string
    for uuid in ("b-bad", "c-empty"):
        typed = {k: v for k, v in rows[uuid].items() if k not in ("uuid", "patient_id", "patient_uuid")}
        assert {k for k, v in typed.items() if v is not None} == (
            {"reported"} if uuid == "c-empty" else set()
        )

    failures = {f["column_name"]: f for f in fetch(conn, cast_failures_select("quality", columns))}
    assert {name: f["failures"] for name, f in failures.items()} == {
        "reported": 1,
        "n": 5,
        "amount": 1,
        "big": 1,
        "day": 5,
        "moment": 1,
        "choices": 0,  # blank, not a failure
        "place_latitude": 1,
        "place_longitude": 1,
    }
    assert failures["n"]["examples"] == [
        {"uuid": "b-bad", "value": "abc"},
        {"uuid": "d-0", "value": "1e999"},
        {"uuid": "d-1", "value": "3.5"},
    ]
    assert failures["reported"]["examples"] == [{"uuid": "b-bad", "value": "not a date"}]
    assert failures["choices"]["examples"] == []

    kids_columns = formview_columns(xform, repeat=("kids",))
    kids = fetch(conn, formview_repeat_select("quality", ("kids",), kids_columns))
    assert sorted((k["parent_uuid"], k["repeat_index"], k["age"]) for k in kids) == [
        ("a-good", 1, 2),
        ("a-good", 2, None),
        ("b-bad", 1, None),  # a single object instead of an array
    ]
    doses_repeat = ("kids", "doses")
    doses_columns = formview_columns(xform, repeat=doses_repeat)
    enclosing = xform.enclosing_repeats(doses_repeat)
    doses = fetch(conn, formview_repeat_select("quality", doses_repeat, doses_columns, enclosing=enclosing))
    assert sorted(
        (d["parent_uuid"], d["outer_repeat_index"], d["repeat_index"], d["when"]) for d in doses
    ) == [
        ("a-good", [1], 1, date(2024, 1, 1)),
        ("a-good", [1], 2, None),
        ("a-good", [2], 1, date(2024, 2, 1)),
    ]
    kid_failures = fetch(conn, cast_failures_select("quality", kids_columns, repeat=("kids",)))
    assert kid_failures == [
        {
            "column_name": "age",
            "sql_type": "integer",
            "failures": 2,
            "examples": [
                {"uuid": "a-good", "value": "x", "repeat_index": 2},
                {"uuid": "b-bad", "value": "1e999", "repeat_index": 1},
            ],
        }
    ]
    dose_failures = fetch(
        conn, cast_failures_select("quality", doses_columns, repeat=doses_repeat, enclosing=enclosing)
    )
    assert [(f["column_name"], f["failures"]) for f in dose_failures] == [("when", 1)]
