"""The SQL graph library: dependencies, headers, order, errors and lineage, on SQL folders built
under tmp_path (no servers)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlglot
from sqlglot import exp

from cht_assets.sqlgraph import (
    SqlGraph,
    SqlGraphError,
    SqlObject,
    column_lineage,
    column_sources,
    doc_fields,
    load_sql_dir,
)
from cht_assets.sqlgraph.files import parse_header
from cht_assets.sqlgraph.parse import parse_model, relation_refs
from cht_assets.warehouse.catalog import static_entry
from cht_assets.warehouse.checks import (
    CARRY_AT_MOST,
    Severity,
    carries,
    check_version,
    declared_checks,
    reconciliations,
)
from cht_assets.warehouse.refresh import GroupRewrite, RefreshResult
from cht_assets.warehouse.state import StoredFinding

RAW_DOCS_COLUMNS = ("source", "_id", "_rev", "_deleted", "_conflicts", "saved_timestamp", "doc")
EXTERNALS: dict[str, tuple[str, ...]] = {
    "raw.couchdb_docs": RAW_DOCS_COLUMNS,
    "raw.couchdb_progress": ("source", "seq", "pending", "updated_at"),
    "couchdb": ("doc",),
    "couchdb_progress": ("seq", "source"),
    "couchdb_users_meta": ("doc",),
}

PLPGSQL_TO_DATE = """\
-- description: CHT epoch milliseconds (as text) to a date; NULL when not a number.
CREATE OR REPLACE FUNCTION cht_to_date(millis text) RETURNS date AS $BODY$
DECLARE
  result date;
BEGIN
  result := to_timestamp(millis::bigint / 1000)::date;
  RETURN result;
EXCEPTION WHEN invalid_text_representation OR numeric_value_out_of_range THEN
  RETURN NULL;
END;
$BODY$ LANGUAGE plpgsql IMMUTABLE;
"""

BASE_FILES = {
    "contactviews/contactview_metadata.sql": (
        "-- materialized: table\n-- unique_key: uuid\n"
        "SELECT _id AS uuid, doc->>'type' AS type, doc->>'name' AS name FROM raw.couchdb_docs\n"
    ),
    "contactviews/contactview_person.sql": "SELECT uuid, name FROM contactview_metadata WHERE type = 'person'\n",
    "contactviews/Odd Name-1.sql": "SELECT uuid FROM contactview_metadata\n",
    "functions/cht_to_date.sql": PLPGSQL_TO_DATE,
}


def write(root: Path, files: Mapping[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def load(root: Path, files: Mapping[str, str], **kwargs) -> SqlGraph:
    kwargs.setdefault("external_relations", EXTERNALS)
    return load_sql_dir(write(root, files), **kwargs)


def error_of(root: Path, files: Mapping[str, str], **kwargs) -> SqlGraphError:
    with pytest.raises(SqlGraphError) as caught:
        load(root, files, **kwargs)
    return caught.value


# --- dependency extraction ------------------------------------------------------------------

DEPENDENCY_CASES = {
    "join": (
        "SELECT m.uuid FROM contactview_metadata m JOIN contactview_person p ON p.uuid = m.uuid",
        ("contactview_metadata", "contactview_person"),
    ),
    "subquery in where": (
        "SELECT uuid FROM contactview_metadata WHERE uuid IN (SELECT uuid FROM contactview_person)",
        ("contactview_metadata", "contactview_person"),
    ),
    "correlated exists": (
        "SELECT m.uuid FROM contactview_metadata m\n"
        "WHERE EXISTS (SELECT 1 FROM raw.couchdb_docs d WHERE d._id = m.uuid)",
        ("contactview_metadata", "raw.couchdb_docs"),
    ),
    "derived table": (
        "SELECT s.uuid FROM (SELECT uuid FROM contactview_person) AS s",
        ("contactview_person",),
    ),
    "scalar subquery in select": (
        "SELECT (SELECT max(seq) FROM couchdb_progress) AS seq",
        ("couchdb_progress",),
    ),
    "cte shadows a real name": (
        "WITH contactview_person AS (SELECT uuid FROM contactview_metadata)\n"
        "SELECT uuid FROM contactview_person",
        ("contactview_metadata",),
    ),
    "cte reading the real table it shadows": (
        "WITH contactview_person AS (SELECT uuid FROM contactview_person WHERE uuid <> '')\n"
        "SELECT uuid FROM contactview_person",
        ("contactview_person",),
    ),
    "recursive cte": (
        "WITH RECURSIVE up(uuid, depth) AS (\n"
        "  SELECT uuid, 0 FROM contactview_metadata\n"
        "  UNION ALL SELECT m.uuid, up.depth + 1 FROM up JOIN contactview_metadata m ON m.uuid = up.uuid\n"
        "  WHERE up.depth < 5)\nSELECT uuid, depth FROM up",
        ("contactview_metadata",),
    ),
    "public schema is the objects' schema": (
        "SELECT uuid FROM public.contactview_metadata UNION ALL SELECT doc->>'_id' FROM public.couchdb",
        ("contactview_metadata", "couchdb"),
    ),
    "unquoted names fold to lower case": (
        "SELECT uuid FROM Contactview_Metadata JOIN RAW.COUCHDB_DOCS ON _id = uuid",
        ("contactview_metadata", "raw.couchdb_docs"),
    ),
    "quoted identifier with odd characters": (
        'SELECT o.uuid FROM "Odd Name-1" AS o JOIN public."contactview_person" p USING (uuid)',
        ("Odd Name-1", "contactview_person"),
    ),
    "function calls": (
        "SELECT cht_to_date(doc->>'reported_date') AS d, upper(doc->>'name') AS n FROM couchdb",
        ("cht_to_date", "couchdb"),
    ),
    "schema-qualified function call": (
        "SELECT public.cht_to_date(doc->>'reported_date') AS d FROM couchdb",
        ("cht_to_date", "couchdb"),
    ),
    "function of another schema is not ours": (
        "SELECT other.cht_to_date(doc->>'reported_date') AS d FROM couchdb",
        ("couchdb",),
    ),
    "lateral jsonb_array_elements is not a table": (
        "SELECT c.doc->>'_id' AS id, e.value AS item FROM couchdb c\n"
        "CROSS JOIN LATERAL jsonb_array_elements(c.doc->'fields'->'items') AS e",
        ("couchdb",),
    ),
    "with ordinality is not a table": (
        "SELECT e.elem, e.idx FROM couchdb_users_meta u,\n"
        "  jsonb_array_elements(u.doc->'metrics') WITH ORDINALITY AS e(elem, idx)",
        ("couchdb_users_meta",),
    ),
    "left join lateral text elements": (
        "SELECT t.v FROM couchdb c LEFT JOIN LATERAL jsonb_array_elements_text(c.doc->'tags') t(v) ON true",
        ("couchdb",),
    ),
    "lateral subquery and values list": (
        "SELECT m.uuid, v.label FROM contactview_metadata m\n"
        "CROSS JOIN LATERAL (SELECT p.name FROM contactview_person p WHERE p.uuid = m.uuid LIMIT 1) AS last\n"
        "JOIN (VALUES ('person', 'Person')) AS v(type, label) ON v.type = m.type",
        ("contactview_metadata", "contactview_person"),
    ),
    "generate_series is not a table": (
        "SELECT d::date AS day FROM generate_series(now() - interval '7 days', now(), interval '1 day') AS d",
        (),
    ),
    "system catalogs are not dependencies": (
        "SELECT relname FROM pg_catalog.pg_class JOIN contactview_person ON false",
        ("contactview_person",),
    ),
    "postgres operators and clauses": (
        "SELECT DISTINCT ON (doc->>'contact_id') doc#>>'{contact,_id}' AS contact,\n"
        "  count(*) FILTER (WHERE doc ? 'fields') OVER () AS n, (doc->>'reported_date')::bigint AS rd\n"
        'FROM raw.couchdb_docs WHERE doc @> \'{"type": "data_record"}\'::jsonb\n'
        "ORDER BY doc->>'contact_id', doc->>'reported_date' DESC",
        ("raw.couchdb_docs",),
    ),
}


@pytest.mark.parametrize(("sql", "expected"), DEPENDENCY_CASES.values(), ids=DEPENDENCY_CASES.keys())
def test_dependencies(tmp_path: Path, sql: str, expected: tuple[str, ...]) -> None:
    graph = load(tmp_path, {**BASE_FILES, "useviews/subject.sql": f"-- materialized: view\n{sql}\n"})
    assert graph.objects["subject"].depends_on == expected
    assert graph.upstream("subject") == expected


def test_external_relations_may_be_a_plain_set(tmp_path: Path) -> None:
    graph = load(
        tmp_path,
        {"v/a.sql": "SELECT doc FROM public.couchdb JOIN raw.couchdb_docs USING (doc)"},
        external_relations={"public.couchdb", "raw.couchdb_docs"},
    )
    assert graph.objects["a"].depends_on == ("couchdb", "raw.couchdb_docs")
    assert graph.external_relations == {"couchdb": (), "raw.couchdb_docs": ()}


# --- headers and objects ----------------------------------------------------------------------

HEADER_CASES = {
    "none": ("SELECT 1 AS a\n", {}, 0),
    "all keys": (
        "-- materialized: incremental\n-- unique_key: telemetry_doc_id, metric\n"
        "-- description: Telemetry: one row per metric.\n-- indexes: metric; telemetry_doc_id, metric\n"
        "SELECT 1 AS a\n",
        {
            "materialized": "incremental",
            "unique_key": "telemetry_doc_id, metric",
            "description": "Telemetry: one row per metric.",
            "indexes": "metric; telemetry_doc_id, metric",
        },
        4,
    ),
    "blank lines and plain comments": (
        "\n-- Contacts by type.\n--materialized:table\n\n-- TODO: split by place\nSELECT 1 AS a\n-- tail: no\n",
        {"materialized": "table"},
        5,
    ),
    "free to extend": (
        "-- owner: data team\n-- tags: contacts, places\nSELECT 1 AS a",
        {"owner": "data team", "tags": "contacts, places"},
        2,
    ),
}


@pytest.mark.parametrize(("text", "config", "line_count"), HEADER_CASES.values(), ids=HEADER_CASES.keys())
def test_header(text: str, config: dict[str, str], line_count: int) -> None:
    header = parse_header(text, Path("x.sql"))
    assert header.config == config
    assert header.line_count == line_count
    assert header.body.lstrip().startswith("SELECT 1 AS a")


def test_object_fields(tmp_path: Path) -> None:
    text = (
        "-- materialized: incremental\n-- unique_key: telemetry_doc_id, metric\n"
        "-- indexes: metric; telemetry_doc_id, metric\n-- description: Telemetry.\n"
        "SELECT _id AS telemetry_doc_id, 'm' AS metric FROM raw.couchdb_docs\n"
    )
    graph = load(tmp_path, {"useviews/useview_telemetry.sql": text})
    obj = graph.objects["useview_telemetry"]
    assert (obj.name, obj.layer, obj.kind, obj.path) == (
        "useview_telemetry",
        "useviews",
        "incremental",
        tmp_path / "useviews/useview_telemetry.sql",
    )
    assert obj.sql == "SELECT _id AS telemetry_doc_id, 'm' AS metric FROM raw.couchdb_docs\n"
    assert obj.unique_key == ("telemetry_doc_id", "metric")
    assert obj.indexes == (("metric",), ("telemetry_doc_id", "metric"))
    assert obj.description == "Telemetry."
    assert obj.columns == ("telemetry_doc_id", "metric")
    assert re.fullmatch(r"[0-9a-f]{12}", obj.code_version)
    assert obj.code_version == SqlObject.from_sql("x", text, layer="l").code_version


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("-- materialized: views\nSELECT 1 AS a", 1, "materialized must be one of"),
        ("-- description: a\n-- description: b\nSELECT 1 AS a", 2, "repeated"),
        ("-- unique_key: id\nSELECT 1 AS uuid", 1, "not among the output columns"),
        ("-- indexes: uuid; kind\nSELECT 1 AS uuid", 1, "'kind'"),
        ("-- description: a\n-- gin_indexes: areas\nSELECT 1 AS uuid", 2, "gin_indexes names 'areas'"),
        ("SELECT _id AS uuid,\n  doc->>'_id' AS uuid\nFROM raw.couchdb_docs", 1, "more than once"),
    ],
    ids=["bad materialized", "repeated key", "unique_key", "indexes", "gin_indexes", "duplicate column"],
)
def test_header_and_column_errors(tmp_path: Path, text: str, line: int, words: str) -> None:
    error = error_of(tmp_path, {"useviews/bad.sql": text})
    assert f"bad.sql:{line}:" in str(error)
    assert words in str(error)


# --- order ----------------------------------------------------------------------------------

ORDER_FILES = {
    "useviews/uv.sql": "SELECT uuid FROM cv_b",
    "contactviews/cv_b.sql": "SELECT uuid, cht_to_date(x) AS d FROM cv_a",
    "contactviews/cv_a.sql": "SELECT _id AS uuid, doc->>'d' AS x FROM raw.couchdb_docs",
    "formviews/fv.sql": "SELECT doc FROM couchdb",
    "functions/cht_to_date.sql": PLPGSQL_TO_DATE,
    "compat/zz.sql": "SELECT 1 AS one",
}


def test_topological_order_breaks_ties_by_layer_then_name(tmp_path: Path) -> None:
    graph = load(tmp_path, ORDER_FILES)
    assert graph.order() == ["zz", "cv_a", "fv", "cht_to_date", "cv_b", "uv"]
    assert graph.upstream("uv", recursive=True) == ("cv_a", "cht_to_date", "cv_b", "raw.couchdb_docs")
    assert graph.downstream("cv_a") == ("cv_b", "uv")
    assert graph.downstream("cv_a", recursive=False) == ("cv_b",)
    assert graph.downstream("raw.couchdb_docs") == ("cv_a", "cv_b", "uv")
    assert graph.downstream("cht_to_date") == ("cv_b", "uv")
    with pytest.raises(KeyError):
        graph.upstream("nope")


def test_order_does_not_depend_on_file_creation_order(tmp_path: Path) -> None:
    first = load(tmp_path / "a", ORDER_FILES)
    second = load(tmp_path / "b", dict(reversed(list(ORDER_FILES.items()))))
    assert first.order() == second.order()


# --- errors -----------------------------------------------------------------------------------

PARSE_ERROR_CASES = {
    "syntax": (
        "-- materialized: view\n-- description: broken\nSELECT uuid\nFROM contactview_metadata\nWHERE uuid = = 'x'\n",
        5,
        "cannot parse",
    ),
    "unclosed paren": ("-- materialized: view\n\nSELECT uuid\nFROM t\nWHERE (\n", 5, "cannot parse"),
    "two statements": ("-- materialized: view\nSELECT 1 AS a;\nSELECT 2 AS a;\n", 2, "one statement"),
    "ddl instead of select": ("CREATE MATERIALIZED VIEW x AS SELECT 1 AS a", 1, "one SELECT, not CREATE"),
    "empty": ("-- materialized: view\n-- description: nothing\n", 2, "no SQL statement"),
    "unterminated string": ("-- materialized: view\nSELECT 'abc AS a\n", 2, "cannot tokenize"),
}


@pytest.mark.parametrize(("text", "line", "words"), PARSE_ERROR_CASES.values(), ids=PARSE_ERROR_CASES.keys())
def test_parse_error_names_file_and_line(tmp_path: Path, text: str, line: int, words: str) -> None:
    error = error_of(tmp_path, {**BASE_FILES, "useviews/broken.sql": text})
    assert str(error).startswith(f"{tmp_path / 'useviews/broken.sql'}:{line}: ")
    assert (error.path, error.line) == (tmp_path / "useviews/broken.sql", line)
    assert words in str(error)


def test_unknown_relation_names_file_and_line(tmp_path: Path) -> None:
    text = (
        "-- materialized: view\n-- description: mentions contactview_persn here, not line 2\n"
        "SELECT m.uuid\nFROM contactview_metadata m\nJOIN contactview_persn p ON p.uuid = m.uuid\n"
    )
    error = error_of(tmp_path, {**BASE_FILES, "useviews/v.sql": text})
    assert str(error).startswith(f"{tmp_path / 'useviews/v.sql'}:5: unknown relation 'contactview_persn'")
    assert "did you mean 'contactview_person'" in str(error)


@pytest.mark.parametrize(
    "ref", ["raw.contactview_metadata", "couchdb_docs", "other.couchdb", '"Couchdb"', "cht_to_date"]
)
def test_unknown_relation_variants(tmp_path: Path, ref: str) -> None:
    error = error_of(tmp_path, {**BASE_FILES, "useviews/v.sql": f"SELECT 1 AS a\nFROM {ref}"})
    assert "v.sql:2: unknown relation" in str(error)


def test_unknown_relation_in_sql_function_body(tmp_path: Path) -> None:
    text = (
        "CREATE FUNCTION n_people() RETURNS bigint\nLANGUAGE sql STABLE\n"
        "AS $$\n  SELECT count(*)\n  FROM contactview_peeple\n$$;\n"
    )
    error = error_of(tmp_path, {**BASE_FILES, "functions/n_people.sql": text})
    assert str(error).startswith(
        f"{tmp_path / 'functions/n_people.sql'}:5: unknown relation 'contactview_peeple'"
    )


def test_cycle_names_the_files_in_order(tmp_path: Path) -> None:
    error = error_of(
        tmp_path,
        {
            "contactviews/a.sql": "-- materialized: view\nSELECT x FROM b",
            "useviews/b.sql": "SELECT 1 AS x\nUNION ALL\nSELECT x FROM a",
            "useviews/c.sql": "SELECT x FROM a",
        },
    )
    message = str(error)
    assert message.startswith(f"{tmp_path / 'contactviews/a.sql'}:2: dependency cycle a -> b -> a")
    assert f"{tmp_path / 'contactviews/a.sql'}:2: a reads b" in message
    assert f"{tmp_path / 'useviews/b.sql'}:3: b reads a" in message
    assert message.index("a.sql:2: a reads b") < message.index("b.sql:3: b reads a")


def test_a_view_reading_itself_is_a_cycle(tmp_path: Path) -> None:
    error = error_of(tmp_path, {"v/a.sql": "SELECT x FROM a"})
    assert "a.sql:1: dependency cycle a -> a" in str(error)


def test_an_incremental_model_may_read_its_own_table(tmp_path: Path) -> None:
    text = (
        "-- materialized: incremental\n-- unique_key: uuid\n"
        "SELECT _id AS uuid, saved_timestamp FROM raw.couchdb_docs\n"
        "WHERE saved_timestamp > (SELECT coalesce(max(saved_timestamp), '-infinity') FROM inc)\n"
    )
    graph = load(tmp_path, {"useviews/inc.sql": text})
    assert graph.objects["inc"].depends_on == ("raw.couchdb_docs",)


def test_duplicate_names_across_layers(tmp_path: Path) -> None:
    error = error_of(tmp_path, {"contactviews/dup.sql": "SELECT 1 AS a", "useviews/dup.sql": "SELECT 2 AS a"})
    assert str(error).startswith(f"{tmp_path / 'useviews/dup.sql'}:1: object name 'dup' already used by")
    assert str(tmp_path / "contactviews/dup.sql") in str(error)


def test_duplicate_of_an_extra_object_or_an_external_relation(tmp_path: Path) -> None:
    extra = SqlObject.from_sql("dup", "SELECT 1 AS a", layer="formviews")
    error = error_of(tmp_path, {"useviews/dup.sql": "SELECT 2 AS a"}, extra_objects=[extra])
    assert "object name 'dup' already used by" in str(error)
    error = error_of(tmp_path / "x", {"compat/couchdb.sql": "SELECT 2 AS a"})
    assert "couchdb.sql:1: object name 'couchdb' is an external relation's" in str(error)


# --- functions ------------------------------------------------------------------------------

PLPGSQL_SQLGLOT_CANNOT_PARSE = """\
CREATE OR REPLACE FUNCTION get_telemetry_date(yr integer, mo integer, dy integer DEFAULT 1)
RETURNS date
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = public
AS $fn$
BEGIN
  IF yr IS NULL THEN RETURN NULL; END IF;
  RETURN make_date(yr, mo + 1, dy);  -- CHT months count from 0
EXCEPTION WHEN others THEN
  RAISE NOTICE 'bad date %-%-%', yr, mo, dy;
  RETURN NULL;
END
$fn$;
"""


def test_plpgsql_function_sqlglot_cannot_parse_loads_opaque(tmp_path: Path) -> None:
    # sqlglot gives up on this one: it falls back to an unparsed Command
    assert isinstance(sqlglot.parse_one(PLPGSQL_SQLGLOT_CANNOT_PARSE, read="postgres"), exp.Command)
    files = {
        "functions/get_telemetry_date.sql": PLPGSQL_SQLGLOT_CANNOT_PARSE,
        "useviews/useview_telemetry.sql": (
            "SELECT get_telemetry_date((doc->>'year')::int, (doc->>'month')::int) AS period FROM couchdb_users_meta"
        ),
    }
    graph = load(tmp_path, files)
    function = graph.objects["get_telemetry_date"]
    assert (function.kind, function.layer, function.depends_on, function.columns) == (
        "function",
        "functions",
        (),
        (),
    )
    assert function.sql == PLPGSQL_SQLGLOT_CANNOT_PARSE
    assert graph.objects["useview_telemetry"].depends_on == ("couchdb_users_meta", "get_telemetry_date")
    assert column_lineage(graph, "get_telemetry_date") == {}


def test_sql_function_bodies_give_dependencies(tmp_path: Path) -> None:
    files = {
        **BASE_FILES,
        "functions/person_count.sql": (
            "CREATE FUNCTION person_count(since text) RETURNS bigint LANGUAGE sql STABLE AS $$\n"
            "  SELECT count(*) FROM contactview_person p JOIN contactview_metadata m USING (uuid)\n"
            "  WHERE cht_to_date(since) IS NOT NULL\n$$;\n"
        ),
        "functions/person_count_atomic.sql": (
            "CREATE OR REPLACE FUNCTION person_count_atomic() RETURNS bigint\n"
            "BEGIN ATOMIC\n  SELECT person_count('0') + count(*) FROM couchdb;\nEND;\n"
        ),
        "functions/quoted_body.sql": (
            "CREATE FUNCTION quoted_body() RETURNS bigint AS 'SELECT count(*) FROM raw.couchdb_progress' LANGUAGE 'sql'"
        ),
    }
    graph = load(tmp_path, files)
    assert graph.objects["person_count"].depends_on == (
        "cht_to_date",
        "contactview_metadata",
        "contactview_person",
    )
    assert graph.objects["person_count_atomic"].depends_on == ("couchdb", "person_count")
    assert graph.objects["quoted_body"].depends_on == ("raw.couchdb_progress",)
    order = graph.order()
    assert order.index("person_count") > order.index("contactview_person")


def test_function_file_must_declare_its_own_name(tmp_path: Path) -> None:
    error = error_of(tmp_path, {"functions/to_date.sql": "-- x: y\n\n" + PLPGSQL_TO_DATE})
    assert "to_date.sql:4: declares function 'cht_to_date'; the file name says 'to_date'" in str(error)
    error = error_of(tmp_path / "b", {"functions/f.sql": "SELECT 1"})
    assert "f.sql:1: expected CREATE [OR REPLACE] FUNCTION" in str(error)


# --- columns and lineage -----------------------------------------------------------------------

COLUMN_CASES = {
    "aliases and columns": (
        "SELECT uuid, name AS full_name, m.type FROM contactview_metadata m",
        ("uuid", "full_name", "type"),
    ),
    "casts keep the column name": (
        "SELECT uuid::text, (name)::varchar(10) FROM contactview_metadata",
        ("uuid", "name"),
    ),
    "user function call is named after it": (
        "SELECT cht_to_date(name) FROM contactview_metadata",
        ("cht_to_date",),
    ),
    "quoted alias keeps its case": (
        'SELECT uuid AS "Contact UUID" FROM contactview_metadata',
        ("Contact UUID",),
    ),
    "star of a known upstream": ("SELECT * FROM contactview_metadata", ("uuid", "type", "name")),
    "star through a cte and an external": (
        "WITH p AS (SELECT * FROM contactview_person) SELECT p.*, d.source FROM p JOIN raw.couchdb_docs d ON d._id = p.uuid",
        ("uuid", "name", "source"),
    ),
    "union takes the first select's names": (
        "SELECT uuid AS id FROM contactview_person UNION SELECT _id FROM raw.couchdb_docs",
        ("id",),
    ),
    "star over an unknown upstream": ("SELECT * FROM couchdb_progress_unknown_cols", ()),
    "star over a table function": ("SELECT * FROM couchdb c, jsonb_each(c.doc) AS kv", ()),
    "unaliased expression": ("SELECT uuid, count(*) FROM contactview_metadata GROUP BY uuid", ()),
}


@pytest.mark.parametrize(("sql", "columns"), COLUMN_CASES.values(), ids=COLUMN_CASES.keys())
def test_output_columns(tmp_path: Path, sql: str, columns: tuple[str, ...]) -> None:
    externals = {**EXTERNALS, "couchdb_progress_unknown_cols": ()}
    graph = load(tmp_path, {**BASE_FILES, "useviews/subject.sql": sql}, external_relations=externals)
    assert graph.objects["subject"].columns == columns


LINEAGE_FILES = {
    "contactviews/contactview_metadata.sql": (
        "-- materialized: table\n"
        "SELECT _id AS uuid, doc->>'name' AS name, doc->>'type' AS type,\n"
        "       cht_to_date(doc->>'reported_date') AS reported, now() AS loaded_at\n"
        "FROM raw.couchdb_docs WHERE NOT _deleted\n"
    ),
    "contactviews/contactview_hospital.sql": (
        "-- materialized: view\n-- description: District hospitals (legacy type district_hospital).\n"
        "SELECT uuid, name FROM contactview_metadata WHERE type = 'district_hospital'\n"
    ),
    "useviews/useview_hospital_people.sql": (
        "WITH h AS (SELECT * FROM contactview_hospital)\n"
        "SELECT h.*, coalesce(m.name, h.name) AS best_name, m.reported\n"
        "FROM h LEFT JOIN contactview_metadata m ON m.uuid = h.uuid\n"
    ),
    "functions/cht_to_date.sql": PLPGSQL_TO_DATE,
}


def test_column_lineage_follows_a_view_chain(tmp_path: Path) -> None:
    graph = load(tmp_path, LINEAGE_FILES)
    assert column_lineage(graph, "contactview_hospital") == {
        "uuid": [("contactview_metadata", "uuid")],
        "name": [("contactview_metadata", "name")],
    }
    metadata = column_lineage(graph, "contactview_metadata")
    assert metadata["uuid"] == [("raw.couchdb_docs", "_id")]
    assert metadata["reported"] == [("raw.couchdb_docs", "doc")]
    assert "loaded_at" not in metadata  # now() reads no column
    people = column_lineage(graph, "useview_hospital_people")
    assert graph.objects["useview_hospital_people"].columns == ("uuid", "name", "best_name", "reported")
    assert people["uuid"] == [("contactview_hospital", "uuid")]
    assert sorted(people["best_name"]) == [("contactview_hospital", "name"), ("contactview_metadata", "name")]
    assert people["reported"] == [("contactview_metadata", "reported")]


def test_doc_fields_name_the_document_fields_each_column_reads(tmp_path: Path) -> None:
    files = {
        **LINEAGE_FILES,
        "useviews/useview_report.sql": (
            "WITH r AS (SELECT _id, doc #>> '{fields,edd}' AS edd, doc FROM raw.couchdb_docs)\n"
            "SELECT r._id AS uuid, r.edd, (r.doc -> 'contact') ->> '_id' AS chw,\n"
            "       r.doc -> 'contact' -> 'parent' ->> '_id' AS area, coalesce(r.doc ->> 'a', r.doc ->> 'b') AS ab\n"
            "FROM r\n"
        ),
    }
    graph = load(tmp_path, files)
    assert doc_fields(graph, "useview_report") == {
        "edd": ["fields.edd"],
        "chw": ["contact._id"],
        "area": ["contact.parent._id"],
        "ab": ["a", "b"],
    }
    assert doc_fields(graph, "contactview_metadata") == {
        "name": ["name"],
        "type": ["type"],
        "reported": ["reported_date"],
    }
    sources = column_sources(graph, graph.objects)
    assert sources[("contactview_metadata", "uuid")] == ["raw.couchdb_docs._id"]
    assert sources[("contactview_metadata", "reported")] == [
        "doc.reported_date"
    ]  # not raw.couchdb_docs.doc too
    assert sources[("contactview_hospital", "name")] == ["contactview_metadata.name"]
    assert sources[("useview_report", "uuid")] == ["raw.couchdb_docs._id"]


def test_column_lineage_is_best_effort(tmp_path: Path) -> None:
    files = {
        "useviews/odd.sql": (
            "SELECT e.elem, e.idx, doc->>'x' AS x FROM couchdb c,\n"
            "  jsonb_array_elements(c.doc->'a') WITH ORDINALITY AS e(elem, idx)"
        ),
        "useviews/unknown_cols.sql": "SELECT a, b FROM couchdb_progress JOIN couchdb_users_meta ON true",
        "useviews/starry.sql": "SELECT * FROM couchdb c, jsonb_each(c.doc) kv",
    }
    graph = load(
        tmp_path, files, external_relations={"couchdb": (), "couchdb_progress": (), "couchdb_users_meta": ()}
    )
    assert column_lineage(graph, "odd").get("x") in (None, [("couchdb", "doc")])
    assert isinstance(column_lineage(graph, "unknown_cols"), dict)
    assert column_lineage(graph, "starry") == {}
    # one unnamed projection hides the columns, not the lineage of the named ones
    graph = load(
        tmp_path / "b",
        {"v/counts.sql": "SELECT uuid, count(*) FROM contactview_metadata GROUP BY uuid", **BASE_FILES},
    )
    assert graph.objects["counts"].columns == ()
    assert column_lineage(graph, "counts") == {"uuid": [("contactview_metadata", "uuid")]}


def test_extra_objects_join_the_graph(tmp_path: Path) -> None:
    formview = SqlObject.from_sql(
        "formview_pregnancy",
        "-- materialized: table\nSELECT doc->>'_id' AS uuid, doc#>>'{fields,lmp}' AS lmp\n"
        "FROM couchdb WHERE doc->>'form' = 'pregnancy'",
        layer="formviews",
        path=Path("forms/pregnancy.xml"),
    )
    declared = SqlObject(
        name="formview_declared",
        layer="formviews",
        kind="view",
        path=Path("x"),
        sql="",
        depends_on=("couchdb",),
    )
    files = {
        "useviews/useview_pregnancy.sql": "SELECT f.* FROM formview_pregnancy f JOIN formview_declared d USING (uuid)"
    }
    graph = load(tmp_path, files, extra_objects=[formview, declared])
    assert graph.objects["formview_pregnancy"].kind == "table"
    assert graph.objects["formview_pregnancy"].depends_on == ("couchdb",)
    assert graph.objects["formview_pregnancy"].columns == ("uuid", "lmp")
    assert graph.objects["formview_declared"].depends_on == ("couchdb",)
    assert graph.upstream("useview_pregnancy") == ("formview_declared", "formview_pregnancy")
    assert graph.objects["useview_pregnancy"].columns == ("uuid", "lmp")
    assert column_lineage(graph, "useview_pregnancy")["lmp"] == [("formview_pregnancy", "lmp")]
    assert graph.order().index("formview_pregnancy") < graph.order().index("useview_pregnancy")

    broken = SqlObject.from_sql(
        "formview_bad", "SELECT doc FROM\ncouchdb WHERE (", layer="formviews", path=Path("forms/bad.xml")
    )
    error = error_of(tmp_path, {}, extra_objects=[broken])
    assert str(error).startswith("forms/bad.xml:2: cannot parse")


# --- checks declared by the SQL layout (cht_assets.warehouse.checks) ---

SQL_ROOT = Path(__file__).resolve().parents[2] / "sql"
VIEW_GROUPS = {"base", "compat", "contactviews", "formviews", "useviews"}
RECONCILE = """\
matches_source:
  severity: warn
  description: one row per source row
  sql: |
    SELECT uuid FROM src EXCEPT SELECT uuid FROM v;
"""


def file_object(path: Path) -> SqlObject:
    return SqlObject.from_sql(path.stem, path.read_text(), layer=path.parent.name, path=path)


def test_checks_come_from_headers_and_the_checks_file(tmp_path: Path) -> None:
    sql = "-- unique_key: uuid, week\n-- references: parent_uuid -> v.uuid\nSELECT uuid, week, parent_uuid FROM src\n"
    write(tmp_path, {"useviews/v.sql": sql, "useviews/v.checks.yaml": RECONCILE})
    found = declared_checks(file_object(tmp_path / "useviews/v.sql"))
    assert [(c.name, c.severity, c.blocking) for c in found] == [
        ("unique_key", Severity.ERROR, True),
        ("references_parent_uuid", Severity.WARN, False),
        ("matches_source", Severity.WARN, False),
    ]
    assert found[0].description == "uuid, week unique and not null"
    assert found[2].description == "one row per source row"
    assert reconciliations(file_object(tmp_path / "useviews/v.sql"))[0].sql.endswith("FROM v")  # `;` dropped
    (tmp_path / "useviews/v.checks.yaml").unlink()
    assert [c.name for c in declared_checks(file_object(tmp_path / "useviews/v.sql"))] == [
        "unique_key",
        "references_parent_uuid",
    ]


def test_incremental_objects_get_parity_and_functions_no_checks(tmp_path: Path) -> None:
    incremental = SqlObject.from_sql(
        "t", "-- materialized: incremental\n-- unique_key: uuid\nSELECT 1 AS uuid", layer="x"
    )
    assert [(c.name, c.blocking) for c in declared_checks(incremental)] == [
        ("unique_key", True),
        ("parity", True),
    ]
    assert declared_checks(file_object(SQL_ROOT / "functions/cht_to_date.sql")) == []


def test_an_hourly_reconciliation_rolls_a_passing_finding_over_incremental_refreshes_only(
    tmp_path: Path,
) -> None:
    hourly = "matches_source:\n  recheck: hourly\n  sql: SELECT uuid FROM src EXCEPT SELECT uuid FROM t\n"
    write(
        tmp_path,
        {
            "base/t.sql": "-- materialized: incremental\n-- unique_key: uuid\nSELECT uuid FROM src\n",
            "base/t.checks.yaml": hourly,
        },
    )
    obj = file_object(tmp_path / "base/t.sql")
    parity, reconcile = declared_checks(obj)[1:]
    assert (parity.name, parity.hourly, reconcile.name, reconcile.hourly) == (
        "parity",
        False,
        "matches_source",
        True,
    )
    now = datetime.now(UTC)
    passed = StoredFinding("older rows", 0, [], {}, now - timedelta(minutes=5), check_version(obj, reconcile))
    incremental = RefreshResult("t", "incremental", 3, 10, 0.1, ("a",), ("a",), "new rows")
    assert carries(reconcile, obj, incremental, passed, "new rows", now)
    assert not carries(
        parity, obj, incremental, replace(passed, check_version=check_version(obj, parity)), "new rows", now
    )
    assert not carries(reconcile, obj, replace(incremental, rewritten_ids=None), passed, "new rows", now), (
        "rebuilt"
    )
    assert not carries(reconcile, obj, incremental, replace(passed, count=1), "new rows", now), (
        "it found something"
    )
    assert not carries(
        reconcile, obj, incremental, replace(passed, checked_at=now - CARRY_AT_MOST * 2), "x", now
    )
    (tmp_path / "base/t.checks.yaml").write_text(hourly.replace("EXCEPT SELECT", "EXCEPT ALL SELECT"))
    changed = declared_checks(obj)[2]
    assert not carries(changed, obj, incremental, passed, "new rows", now), "the check's SQL changed"


def test_nullable_key_columns_must_be_key_columns(tmp_path: Path) -> None:
    text = "-- unique_key: chw, week, form\n-- nullable_key: chw, week\nSELECT 1 AS chw, 2 AS week, 3 AS form"
    (check,) = declared_checks(SqlObject.from_sql("v", text, layer="useviews"))
    assert check.description == "chw, week, form unique (chw, week may be NULL, the rest not)"
    wrong = SqlObject.from_sql("v", "-- unique_key: a\n-- nullable_key: b\nSELECT 1 AS a, 2 AS b", layer="x")
    with pytest.raises(SqlGraphError, match=r"nullable_key names columns not in unique_key \['a'\]"):
        declared_checks(wrong)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("- SELECT 1\n", "expected a mapping"),
        ("Bad-Name:\n  sql: SELECT 1\n", "lower_snake_case"),
        ("no_sql:\n  severity: warn\n", "needs `sql`"),
        ("typo:\n  sql: SELECT 1\n  severty: warn\n", "unknown keys ['severty']"),
        ("loud:\n  sql: SELECT 1\n  severity: fatal\n", "severity must be error or warn; got 'fatal'"),
        (
            "often:\n  sql: SELECT 1\n  recheck: daily\n",
            "recheck must be one of ['every refresh', 'hourly']; got 'daily'",
        ),
        ("unique_key:\n  sql: SELECT 1\n", "check names ['unique_key'] already used by v"),
    ],
)
def test_checks_file_errors_name_the_file(tmp_path: Path, text: str, words: str) -> None:
    write(
        tmp_path,
        {"useviews/v.sql": "-- unique_key: uuid\nSELECT 1 AS uuid\n", "useviews/v.checks.yaml": text},
    )
    with pytest.raises(SqlGraphError) as caught:
        declared_checks(file_object(tmp_path / "useviews/v.sql"))
    assert str(caught.value).startswith(str(tmp_path / "useviews/v.checks.yaml"))
    assert words in str(caught.value)


def test_every_shipped_view_declares_its_grain_and_checks_files_belong_to_one() -> None:
    objects = [
        file_object(path) for path in sorted(SQL_ROOT.glob("*/*.sql")) if path.parent.name in VIEW_GROUPS
    ]
    assert len(objects) > 15
    assert [obj.name for obj in objects if not obj.unique_key] == []
    for checks_file in SQL_ROOT.glob("*/*.checks.yaml"):
        sql_file = checks_file.with_name(checks_file.name.removesuffix(".checks.yaml") + ".sql")
        assert sql_file.is_file(), f"{checks_file} has no SQL file"
        obj = file_object(sql_file)
        upstream = {ref.dotted for ref in relation_refs(parse_model(obj.sql, sql_file, 0))} | {obj.name}
        for item in reconciliations(obj):
            # A check runs right after its object's refresh: it may only read what that reads.
            read = {ref.dotted for ref in relation_refs(parse_model(item.sql, checks_file, 0))}
            assert read <= upstream, (checks_file, item.name, read - upstream)
    names = {obj.name: [c.name for c in declared_checks(obj)] for obj in objects}
    assert "reports_equal_form_metadata" in names["useview_chw_activity"]
    assert "persons_equal_contactview" in names["useview_population"]
    assert "registrations_equal_input" in names["useview_pregnancy"]


def test_every_view_layer_asset_of_the_code_location_has_a_check(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the demo's forms every asset is checked, generated formviews included; without
    them the assets left unchecked are the maternal use views and inputs waiting for them (their checks come with
    the forms)."""
    monkeypatch.setenv("POSTGRES_URL", "postgresql://postgres@127.0.0.1:1/cht_analytics")
    from cht_assets.defs.views import build_view_assets
    from cht_assets.warehouse.catalog import build_catalog
    from tests.unit.test_catalog import demo_forms

    def unchecked(forms: list) -> tuple[set[str], list[str]]:
        (views,) = build_view_assets(build_catalog(forms))
        keys = [key for key in views.keys if views.group_names_by_key[key] in VIEW_GROUPS]
        checked = {spec.asset_key for spec in views.check_specs}
        return {key.path[-1] for key in keys}, [key.to_user_string() for key in keys if key not in checked]

    names, without_checks = unchecked(demo_forms())
    assert {"raw_contacts", "contactview_hierarchy", "contactview_clinic", "form_metadata"} <= names
    assert {
        "useview_population",
        "formview_pregnancy",
        "formview_delivery__babys_condition_baby_repeat",
    } <= names
    assert without_checks == []
    waiting = ["useview_death", "useview_delivery", "useview_pregnancy"]
    waiting += ["useinput_death_report", "useinput_delivery_report", "useinput_pregnancy_registration"]
    assert sorted(unchecked([])[1]) == sorted(f"useviews/{name}" for name in waiting)


def test_a_scoped_reconciliation_runs_over_the_rewritten_rows_between_hourly_whole_runs(
    tmp_path: Path,
) -> None:
    scoped = (
        "refs:\n  severity: warn\n  recheck: hourly\n  scope: uuid\n  sql: SELECT uuid FROM t WHERE false\n"
    )
    write(
        tmp_path,
        {
            "base/t.sql": "-- materialized: incremental\n-- unique_key: uuid\nSELECT uuid FROM src\n",
            "base/t.checks.yaml": scoped,
        },
    )
    obj = file_object(tmp_path / "base/t.sql")
    check = declared_checks(obj)[2]
    assert (check.hourly, check.scope) == (True, "uuid")
    now = datetime.now(UTC)
    passed = StoredFinding("older rows", 0, [], {}, now - timedelta(minutes=5), check_version(obj, check))
    incremental = RefreshResult("t", "incremental", 3, 10, 0.1, ("a",), ("a",), "new rows")
    # Not carried over the rows that moved: run_checks runs it over them (the rest: integration).
    assert not carries(check, obj, incremental, passed, "new rows", now)
    assert carries(replace(check, scope=""), obj, incremental, passed, "new rows", now)
    assert carries(check, obj, incremental, passed, "older rows", now), "nothing moved: carried"
    (tmp_path / "base/t.checks.yaml").write_text(scoped.replace("  recheck: hourly\n", ""))
    with pytest.raises(SqlGraphError, match="scope names a column of the query's rows, with recheck: hourly"):
        declared_checks(obj)


@pytest.mark.parametrize(
    "header",
    [
        "chw_uuid = form_metadata.chw",  # no doc key, no count
        "chw_uuid = other.chw by uuid, reports counts rows",  # a relation it does not read
    ],
)
def test_a_rollup_kept_by_groups_names_a_relation_it_reads_its_doc_key_and_its_count(
    tmp_path: Path, header: str
) -> None:
    text = (
        "-- materialized: table\n-- unique_key: chw_uuid\n-- rewrite_by: chw_uuid = form_metadata.chw by uuid, "
        "reports counts rows\nSELECT chw AS chw_uuid, count(*) AS reports FROM form_metadata GROUP BY chw\n"
    )
    graph = load(
        tmp_path, {"base/form_metadata.sql": "SELECT 'a' AS uuid, 'b' AS chw\n", "useviews/t.sql": text}
    )
    rewrite = static_entry(graph.objects["t"]).build(None).rewrite
    assert rewrite == GroupRewrite("chw_uuid", "form_metadata", "chw", "uuid", "reports")
    bad = text.replace("chw_uuid = form_metadata.chw by uuid, reports counts rows", header)
    graph = load(tmp_path, {"useviews/t.sql": bad})
    with pytest.raises(SqlGraphError, match="rewrite_by: expected"):
        static_entry(graph.objects["t"])


@pytest.mark.parametrize(
    ("header", "error"),
    [
        ("form_metadata: SELECT chw_uuid FROM {table}", "rewrite_stale: expected"),  # the source itself
        ("other: SELECT chw_uuid FROM {table}", "rewrite_stale: expected"),  # a relation it does not read
        ("place: SELECT chw_uuid FROM t", "rewrite_stale: expected"),  # not over the rollup
        (None, "rewrite_stale: only with rewrite_by"),
    ],
)
def test_a_rollup_follows_another_relation_it_reads_by_a_query_over_itself(
    tmp_path: Path, header: str | None, error: str
) -> None:
    rewrite_by = "-- rewrite_by: chw_uuid = form_metadata.chw by uuid, reports counts rows\n"
    text = (
        f"-- materialized: table\n-- unique_key: chw_uuid\n{rewrite_by}"
        "-- rewrite_stale: place: SELECT r.chw_uuid FROM {table} AS r JOIN place AS p ON p.uuid = r.chw_uuid "
        "WHERE p.name IS DISTINCT FROM r.name\n"
        "SELECT f.chw AS chw_uuid, p.name, count(*) AS reports FROM form_metadata AS f "
        "LEFT JOIN place AS p ON p.uuid = f.chw GROUP BY f.chw, p.name\n"
    )
    files = {
        "base/form_metadata.sql": "SELECT 'a' AS uuid, 'b' AS chw\n",
        "base/place.sql": "SELECT 'b' AS uuid, 'c' AS name\n",
        "useviews/t.sql": text,
    }
    rewrite = static_entry(load(tmp_path, files).objects["t"]).build(None).rewrite
    assert (rewrite.source, rewrite.followed) == ("form_metadata", "place")
    assert rewrite.stale_sql.startswith("SELECT r.chw_uuid FROM {table} AS r")
    stale = text.split("-- rewrite_stale: ")[1].split("\n")[0]
    bad = text.replace(stale, header) if header else text.replace(rewrite_by, "")
    with pytest.raises(SqlGraphError, match=error):
        static_entry(load(tmp_path, {**files, "useviews/t.sql": bad}).objects["t"])
