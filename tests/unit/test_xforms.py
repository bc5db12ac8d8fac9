"""XForm parsing and formview SQL generation, without servers.

The real forms come from /work/shared/cht-sample-docs/xforms (read in place, never copied);
their expected shapes come from the notes (§7 table) and from plain regexes over the XML, so
the parser is checked against something it does not share code with.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pytest
import sqlglot
from sqlglot import exp

from cht_assets.sqlnames import UnsafeName
from cht_assets.xforms.formview import (
    COMMON_COLUMNS,
    REPEAT_KEY_COLUMNS,
    REQUIRED_FUNCTIONS,
    Column,
    cast_failures_select,
    formview_columns,
    formview_name,
    formview_repeat_name,
    formview_repeat_select,
    formview_select,
)
from cht_assets.xforms.parse import XForm, XFormError, normalise_type, parse_xform
from tests.support.payloads import ENTITY_BOMB_DOCTYPE

REPO = Path(__file__).resolve().parents[2]
XFORMS = REPO.parent / "shared" / "cht-sample-docs" / "xforms"
FUNCTIONS_DIR = REPO / "sql" / "functions"
NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


def real_xform_files() -> list[object]:
    if not XFORMS.is_dir():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"reference XForms not found at {XFORMS}"))]
    files = sorted(XFORMS.glob("*/*/*.xml")) + sorted(XFORMS.glob("other/*.xml"))
    return [pytest.param(path, id=str(path.relative_to(XFORMS))) for path in files]


# Leaves / groups per form from the notes (§7). The standard delivery and child_health_registration
# instances hold `inputs/meta` twice; a JSON object cannot hold a key twice, so it counts once here
# (the notes count 55/15 and 40/13).
LEAVES_GROUPS = {
    "default/app/pregnancy.xml": (214, 39),
    "default/app/delivery.xml": (225, 38),
    "default/app/pregnancy_home_visit.xml": (244, 33),
    "default/app/pnc_danger_sign_follow_up_mother.xml": (55, 12),
    "default/app/pnc_danger_sign_follow_up_baby.xml": (57, 11),
    "default/app/pregnancy_danger_sign.xml": (64, 12),
    "default/app/pregnancy_danger_sign_follow_up.xml": (67, 12),
    "default/app/pregnancy_facility_visit_reminder.xml": (38, 12),
    "default/app/death_report.xml": (46, 12),
    "default/app/undo_death_report.xml": (31, 11),
    "default/app/replace_user.xml": (63, 17),
    "default/contact/person-create.xml": (39, 10),
    "standard/app/pregnancy.xml": (79, 12),
    "standard/app/delivery.xml": (53, 13),
    "standard/app/postnatal_visit.xml": (77, 13),
    "standard/app/child_health_registration.xml": (38, 11),
    "standard/app/immunization_visit.xml": (152, 30),
    "other/assessment.xml": (204, 25),
}
REPEATS = {
    "default/app/pregnancy.xml": [
        ("anc_visits_hf", "anc_visits_hf_past", "visited_dates_group", "visited_dates")
    ],
    "default/app/delivery.xml": [("baby_death", "baby_death_repeat"), ("babys_condition", "baby_repeat")],
    "default/app/pregnancy_home_visit.xml": [("anc_visits_hf", "anc_visits_hf_past", "visited_dates")],
}
# Independent of the parser: bind type (namespace prefix dropped) -> the SQL types it must yield.
SQL_TYPES_OF_BIND = {
    "int": ["integer"],
    "integer": ["integer"],
    "long": ["bigint"],
    "decimal": ["numeric"],
    "date": ["date"],
    "dateTime": ["timestamptz"],
    "select": ["text[]"],
    "geopoint": ["numeric", "numeric"],
}
BIND_TAG = re.compile(r"<bind\b([^>]*)>", re.S)


def bind_attr(attrs: str, name: str) -> str | None:
    found = re.search(rf'(?<![\w:]){name}="([^"]*)"', attrs)
    return found.group(1) if found else None


def primary_instance_text(xml: str) -> str:
    found = re.search(r"<instance>(.*?)</instance>", xml, re.S)
    assert found, "the real forms have an attribute-less primary <instance>"
    return found.group(1)


def all_columns(xform: XForm) -> list[Column]:
    columns = formview_columns(xform)
    for repeat in xform.repeats:
        columns += formview_columns(xform, repeat=repeat)
    return columns


# ------------------------------------------------------------------------------ real forms


@pytest.mark.parametrize("path", real_xform_files())
def test_real_xform_parses_with_the_notes_shape(path: Path) -> None:
    key = str(path.relative_to(XFORMS))
    xml = path.read_bytes()
    xform = parse_xform(xml)
    expected_id = re.search(r"<instance>\s*<\w+ [^>]*?\bid=\"([^\"]+)\"", xml.decode()).group(1)
    assert xform.form_id == expected_id
    assert xform.version and xform.title
    assert xform.root == ("data" if key.startswith("default/") else path.stem)
    if key in LEAVES_GROUPS:
        assert (len(xform.fields), len(xform.groups)) == LEAVES_GROUPS[key]
    assert [list(r) for r in xform.repeats] == [list(r) for r in REPEATS.get(key, [])]
    for field in xform.fields:
        assert field.path
        in_repeat = [r for r in xform.repeats if field.path[: len(r)] == r]
        assert field.repeat == (max(in_repeat, key=len) if in_repeat else None)


@pytest.mark.parametrize("path", real_xform_files())
def test_real_xform_column_types_match_the_binds(path: Path) -> None:
    text = path.read_text()
    xform = parse_xform(text.encode())
    instance = primary_instance_text(text)
    expected: Counter[str] = Counter()
    for attrs in BIND_TAG.findall(text):
        nodeset, bind_type = bind_attr(attrs, "nodeset"), bind_attr(attrs, "type")
        if nodeset in xform.unmatched_binds:
            # A stale bind (assessment.xml binds group_cough/patient_coughs): no such node.
            assert not re.search(rf"<{re.escape(nodeset.rsplit('/', 1)[-1])}[\s/>]", instance)
            continue
        if bind_type:
            expected.update(SQL_TYPES_OF_BIND.get(bind_type.rpartition(":")[2], []))
    columns = all_columns(xform)
    typed = Counter(c.sql_type for c in columns if c.sql_type != "text")
    assert typed == expected
    geopoints = sum(1 for f in xform.fields if f.bind_type == "geopoint")
    assert len(columns) == len(xform.fields) + geopoints
    for repeat in (None, *xform.repeats):
        names = [c.name for c in formview_columns(xform, repeat=repeat)]
        reserved = COMMON_COLUMNS if repeat is None else REPEAT_KEY_COLUMNS
        assert len(set(names)) == len(names) and not set(names) & set(reserved)
        assert all(NAME.match(n) and len(n.encode()) <= 63 for n in names)
    # Every query built from the form is one statement that sqlglot reads as PostgreSQL.
    for sql in [formview_select(xform.form_id, formview_columns(xform))] + [
        formview_repeat_select(xform.form_id, r, formview_columns(xform, repeat=r)) for r in xform.repeats
    ]:
        assert len(sqlglot.parse(sql, read="postgres")) == 1


def test_notes_examples_of_real_fields() -> None:
    if not XFORMS.is_dir():
        pytest.skip(f"reference XForms not found at {XFORMS}")
    delivery = parse_xform((XFORMS / "default/app/delivery.xml").read_bytes())
    by_path = {f.path: f for f in delivery.fields}
    weight = by_path[("babys_condition", "baby_repeat", "baby_details", "birth_weight")]
    assert weight.repeat == ("babys_condition", "baby_repeat")
    assert by_path[("delivery_outcome", "delivery_date")].bind_type == "date"
    assert by_path[("babys_condition", "baby_repeat_count")].repeat is None
    assert by_path[("patient_uuid",)].hidden
    # The default forms' analytics group is itself called `data`, like the root: /data/data/__x.
    assert by_path[("data", "meta", "__patient_uuid")].calculate
    baby_columns = {c.name: c for c in formview_columns(delivery, repeat=weight.repeat)}
    assert baby_columns["baby_details_birth_weight"].json_path == ("baby_details", "birth_weight")
    standard = parse_xform((XFORMS / "standard/app/pregnancy.xml").read_bytes())
    picker = next(f for f in standard.fields if f.path == ("inputs", "contact", "_id"))
    assert (picker.bind_type, picker.raw_type) == ("string", "db:person")
    assert standard.unmatched_binds == ()  # `/pregnancy/...` nodesets resolve against root `pregnancy`
    risk = next(c for c in formview_columns(standard) if c.json_path[-1] == "g_risk_factors")
    assert (risk.name, risk.sql_type) == ("group_risk_factors_g_risk_factors", "text[]")


# ------------------------------------------------------------------------- synthetic forms

SYNTHETIC = """<?xml version="1.0"?>
<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml"
        xmlns:jr="http://openrosa.org/javarosa" xmlns:xsd="http://www.w3.org/2001/XMLSchema">
  <h:head>
    <h:title>Synthetic
       visit</h:title>
    <model>
      <instance>
        <visit id=ID version="7">
          <patient_id/>
          <uuid/>
          <select/>
          <group tag="hidden">
            <q_int/>
            <q_dec/>
            <q_long/>
            <q_date/>
            <q_time/>
            <q_multi/>
            <q_one/>
            <loc/>
            <who/>
            <untyped>default</untyped>
          </group>
          <!-- a repeat: its template plus one default row, which must merge -->
          <kids jr:template="">
            <name/>
            <age/>
            <doses>
              <dose_date/>
            </doses>
          </kids>
          <kids>
            <name>first</name>
            <age/>
            <doses><dose_date/></doses>
          </kids>
          <visits>
            <when/>
          </visits>
          <meta>
            <instanceID/>
          </meta>
        </visit>
      </instance>
      <instance id="choices"><root><item><name>x</name></item></root></instance>
      <bind nodeset="/visit/group/q_int" type="xsd:int"/>
      <bind nodeset="/visit/group/q_dec" type="decimal"/>
      <bind nodeset="/visit/group/q_long" type="long"/>
      <bind nodeset="/visit/group/q_date" type="date"/>
      <bind nodeset="/visit/group/q_time" type="dateTime" jr:preload="timestamp" jr:preloadParams="start"/>
      <bind nodeset="/visit/group/q_multi" type="select"/>
      <bind nodeset="/visit/group/q_one" type="select1"/>
      <bind nodeset="/visit/group/loc" type="geopoint"/>
      <bind nodeset="/visit/group/who" type="db:person"/>
      <bind nodeset="/visit/kids/age" type="int" calculate="1 + 1"/>
      <bind nodeset="/visit/kids/doses/dose_date" type="date"/>
      <bind nodeset="/visit/visits/when" type="date"/>
      <bind nodeset="/visit/gone" type="int"/>
      <bind nodeset="instance('choices')/root/item/name" type="string"/>
      <bind nodeset="/visit/meta/instanceID" type="string" readonly="true()" calculate="concat('uuid:', uuid())"/>
    </model>
  </h:head>
  <h:body>
    <group ref="/visit/group">
      <label ref="jr:itext('/visit/group:label')"/>
      <input ref="q_int"/>
      <select ref="/visit/group/q_multi"><item><value>a</value></item></select>
    </group>
    <repeat nodeset="/visit/kids">
      <input ref="/visit/kids/name"/>
      <repeat nodeset="doses">
        <input ref="dose_date"/>
      </repeat>
    </repeat>
    <group ref="/visit">
      <repeat nodeset="visits"><input ref="when"/></repeat>
    </group>
  </h:body>
</h:html>
"""


def synthetic(form_id: str = "synthetic_visit", **replace: str) -> str:
    xml = SYNTHETIC.replace("id=ID", f"id={quoteattr(form_id)}")
    for old, new in replace.items():
        xml = xml.replace(old, new)
    return xml


def test_synthetic_structure() -> None:
    xform = parse_xform(synthetic().encode())
    assert (xform.form_id, xform.version, xform.title, xform.root) == (
        "synthetic_visit",
        "7",
        "Synthetic visit",
        "visit",
    )
    assert xform.repeats == (("kids",), ("kids", "doses"), ("visits",))
    assert xform.enclosing_repeats(("kids", "doses")) == (("kids",),)
    assert xform.unmatched_binds == ("/visit/gone", "instance('choices')/root/item/name")
    fields = {f.path: f for f in xform.fields}
    assert list(fields) == [
        ("patient_id",),
        ("uuid",),
        ("select",),
        *[
            ("group", q)
            for q in (
                "q_int",
                "q_dec",
                "q_long",
                "q_date",
                "q_time",
                "q_multi",
                "q_one",
                "loc",
                "who",
                "untyped",
            )
        ],
        ("kids", "name"),
        ("kids", "age"),
        ("kids", "doses", "dose_date"),
        ("visits", "when"),
        ("meta", "instanceID"),
    ]
    assert (fields[("group", "q_int")].bind_type, fields[("group", "q_int")].raw_type) == ("int", "xsd:int")
    assert fields[("group", "q_int")].control == "input"  # relative ref inside the group
    assert fields[("group", "q_multi")].control == "select"
    assert fields[("group", "q_time")].calculate and fields[("kids", "age")].calculate
    assert not fields[("group", "q_int")].calculate
    assert (
        fields[("group", "who")].bind_type == "string" and fields[("group", "untyped")].bind_type == "string"
    )
    assert fields[("group", "loc")].hidden and not fields[("uuid",)].hidden
    assert fields[("kids", "doses", "dose_date")].repeat == ("kids", "doses")
    assert fields[("kids", "name")].repeat == ("kids",)
    assert [f.name for f in xform.fields_in(("visits",))] == ["when"]


def test_synthetic_columns() -> None:
    xform = parse_xform(synthetic().encode())
    main = formview_columns(xform)
    assert [(c.name, c.sql_type, c.json_path) for c in main] == [
        ("fields_patient_id", "text", ("fields", "patient_id")),
        ("fields_uuid", "text", ("fields", "uuid")),
        ("select", "text", ("fields", "select")),
        ("group_q_int", "integer", ("fields", "group", "q_int")),
        ("group_q_dec", "numeric", ("fields", "group", "q_dec")),
        ("group_q_long", "bigint", ("fields", "group", "q_long")),
        ("group_q_date", "date", ("fields", "group", "q_date")),
        ("group_q_time", "timestamptz", ("fields", "group", "q_time")),
        ("group_q_multi", "text[]", ("fields", "group", "q_multi")),
        ("group_q_one", "text", ("fields", "group", "q_one")),
        ("group_loc_latitude", "numeric", ("fields", "group", "loc")),
        ("group_loc_longitude", "numeric", ("fields", "group", "loc")),
        ("group_who", "text", ("fields", "group", "who")),
        ("group_untyped", "text", ("fields", "group", "untyped")),
        ("meta_instanceid", "text", ("fields", "meta", "instanceID")),
    ]
    assert [c.kind for c in main if c.name.startswith("group_loc")] == ["latitude", "longitude"]
    kids = formview_columns(xform, repeat=("kids",))
    assert [(c.name, c.kind, c.json_path) for c in kids] == [
        ("name", "text", ("name",)),
        ("age", "integer", ("age",)),
    ]
    doses = formview_columns(xform, repeat=("kids", "doses"))
    assert [(c.name, c.json_path) for c in doses] == [("dose_date", ("dose_date",))]
    assert formview_columns(xform) == main  # deterministic
    assert formview_columns(xform, known=main) == main  # idempotent


def test_known_columns_survive_a_new_form_version() -> None:
    v1 = formview_columns(parse_xform(synthetic().encode()))
    v2_xml = synthetic(
        **{
            "<q_dec/>": "",  # removed
            '<bind nodeset="/visit/group/q_int" type="xsd:int"/>': "",  # int -> string
            "<untyped>default</untyped>": "<untyped/><added/>",
        }
    )
    v2 = formview_columns(parse_xform(v2_xml.encode()), known=v1)
    assert v2[: len(v1)] == v1
    assert [(c.name, c.kind, c.json_path) for c in v2[len(v1) :]] == [
        ("group_q_int_text", "text", ("fields", "group", "q_int")),
        ("group_added", "text", ("fields", "group", "added")),
    ]
    restored = [Column.from_json(c.to_json()) for c in v2]
    assert restored == v2
    assert formview_columns(parse_xform(v2_xml.encode()), known=restored) == v2


def test_column_validation() -> None:
    with pytest.raises(ValueError):
        Column("a", "integer", ("fields", "a"), "no_such_kind")
    with pytest.raises(ValueError):
        Column("a", "text", ("fields", "a"), "integer")
    with pytest.raises(ValueError):
        Column("a", "text", (), "text")
    with pytest.raises(ValueError):
        Column("a", "text", "fields", "text")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Column("", "text", ("fields", "a"), "text")
    with pytest.raises(ValueError):
        Column("x" * 64, "text", ("fields", "a"), "text")
    with pytest.raises(ValueError):
        Column("a", "text", ("fields", "a\x00"), "text")
    clash = Column("uuid", "text", ("fields", "uuid"), "text")
    with pytest.raises(ValueError):
        formview_select("f", [clash])
    twice = Column("a", "text", ("fields", "a"), "text")
    with pytest.raises(ValueError):
        formview_select("f", [twice, twice])
    with pytest.raises(UnsafeName):
        formview_select("nul\x00form", [])


def test_hostile_element_names_give_safe_distinct_columns() -> None:
    odd = [
        "select",
        "uuid",
        "reported",
        "patient_id",
        "ünïcødé",
        "Ω",
        "a.b-c",
        "A.B-C",
        "x" * 300,
        "x" * 301,
        "_",
    ]
    xml = synthetic(**{"<select/>": "".join(f"<{name}/>" for name in odd)})
    xform = parse_xform(xml.encode("utf-8"))
    columns = formview_columns(xform)
    names = [c.name for c in columns]
    assert len(set(names)) == len(names)
    assert not set(names) & set(COMMON_COLUMNS)
    assert all(NAME.match(n) and len(n.encode()) <= 63 for n in names)
    assert {c.json_path[-1] for c in columns} >= set(odd)


# ------------------------------------------------------------------------------ view names


def test_view_names() -> None:
    assert formview_name("pregnancy") == "formview_pregnancy"
    assert formview_name("contact:person:create") == "formview_contact_person_create"
    assert formview_repeat_name("delivery", ("babys_condition", "baby_repeat")) == (
        "formview_delivery__babys_condition_baby_repeat"
    )
    hostile = [
        "x" * 300,
        "x" * 301,
        "表格",
        "問卷",
        "a__b",
        "x'; DROP TABLE y; --",
        "__",
        "",
        "9lives",
        "Ωmega",
    ]
    names = [formview_name(f) for f in hostile]
    assert len(set(names)) == len(names)
    for name in names:
        assert NAME.match(name) and len(name) <= 63 and name.startswith("formview_")
        assert "__" not in name  # `__` marks repeat views only
    long_repeat = ("anc_visits_hf", "anc_visits_hf_past", "visited_dates_group", "visited_dates")
    repeat_names = {
        formview_repeat_name(form, repeat)
        for form in ("pregnancy_home_visit_" * 3, "a__b", "a")
        for repeat in (long_repeat, long_repeat[:-1] + ("other",), ("b",))
    }
    assert len(repeat_names) == 9
    assert formview_name("a__b") not in repeat_names
    for name in repeat_names:
        assert NAME.match(name) and len(name) <= 63 and name.count("__") == 1


# ------------------------------------------------------------------------------------- SQL

HOSTILE_KEYS = [
    "x'; DROP TABLE canary; --",
    'a"b',
    "$$; DROP TABLE canary; $$",
    "back\\slash\\'",
    "%s %(x)s %%",
    "ünïcødé 表格 😀",
    "new\nline",
]


def string_literals(sql: str) -> list[str]:
    (statement,) = sqlglot.parse(sql, read="postgres")
    return [lit.this for lit in statement.find_all(exp.Literal) if lit.is_string]


def test_hostile_literals_round_trip_through_a_sql_parser() -> None:
    form_id = "f'); DROP TABLE canary; --$$\\"
    columns = [Column(f"c{i}", "integer", ("fields", key), "integer") for i, key in enumerate(HOSTILE_KEYS)]
    repeat_columns = [Column("v", "date", (HOSTILE_KEYS[0],), "date")]
    for sql in (
        formview_select(form_id, columns),
        formview_repeat_select(form_id, (HOSTILE_KEYS[2],), repeat_columns),
        cast_failures_select(form_id, columns),
    ):
        literals = string_literals(sql)
        assert form_id in literals
    assert set(HOSTILE_KEYS) <= set(string_literals(formview_select(form_id, columns)))


def test_generated_sql_calls_only_the_shipped_functions() -> None:
    xform = parse_xform(synthetic().encode())
    sqls = [formview_select(xform.form_id, formview_columns(xform)), cast_failures_select(xform.form_id, [])]
    for repeat in xform.repeats:
        columns = formview_columns(xform, repeat=repeat)
        enclosing = xform.enclosing_repeats(repeat)
        sqls.append(formview_repeat_select(xform.form_id, repeat, columns, enclosing=enclosing))
        sqls.append(cast_failures_select(xform.form_id, columns, repeat=repeat, enclosing=enclosing))
    called = {name for sql in sqls for name in re.findall(r'"public"\."(\w+)"\(', sql)}
    assert called == set(REQUIRED_FUNCTIONS)
    for name in REQUIRED_FUNCTIONS:
        text = (FUNCTIONS_DIR / f"{name}.sql").read_text()
        assert len(re.findall(r"CREATE OR REPLACE FUNCTION", text)) == 1
        assert f"CREATE OR REPLACE FUNCTION public.{name}(" in text
        # PARALLEL UNSAFE where an EXCEPTION block needs a subtransaction (test_sql_functions.py).
        assert ("PARALLEL SAFE" in text) != bool(re.search(r"EXCEPTION\s+WHEN", text))
        assert "IMMUTABLE" in text or "STABLE" in text


def test_select_reads_the_live_reports_of_one_form() -> None:
    sql = formview_select("pregnancy", [Column("q", "integer", ("fields", "g", "q"), "integer")])
    assert 'FROM "raw"."couchdb_docs" AS d\n' in sql
    assert sql.endswith(
        "WHERE d.doc ->> 'type' = 'data_record'\n    AND d.doc ->> 'form' = 'pregnancy'\n    AND NOT d._deleted"
    )
    assert "\"public\".\"cht_to_integer\"(report.doc #>> ARRAY['fields', 'g', 'q']::text[]) AS \"q\"" in sql
    names = [e.alias for e in sqlglot.parse_one(sql, read="postgres").expressions]
    assert names == [*COMMON_COLUMNS, "q"]


def test_nested_repeat_select_unnests_each_level() -> None:
    xform = parse_xform(synthetic().encode())
    repeat = ("kids", "doses")
    sql = formview_repeat_select(
        xform.form_id,
        repeat,
        formview_columns(xform, repeat=repeat),
        enclosing=xform.enclosing_repeats(repeat),
    )
    assert sql.count("jsonb_array_elements") == 2
    assert '"outer_repeat_index"' in sql
    with pytest.raises(ValueError):
        formview_repeat_select("f", ("a", "b"), [], enclosing=[("c",)])
    with pytest.raises(ValueError):
        formview_repeat_select("f", (), [])


def test_cast_failures_without_typed_columns_is_an_empty_query() -> None:
    sql = cast_failures_select("f", [Column("a", "text", ("a",), "text")], repeat=("r",))
    assert "WHERE false" in sql
    assert len(sqlglot.parse(sql, read="postgres")) == 1


# ------------------------------------------------------------------------------ bad XML

BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n'
    + ENTITY_BOMB_DOCTYPE
    + """<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml"><h:head>
<h:title>&lol9;</h:title><model><instance><data id="bomb"><q>&lol9;</q></data></instance></model>
</h:head></h:html>
"""
)
HOSTILE_XML = {
    "billion laughs": BILLION_LAUGHS,
    "external entity": '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>',
    "parameter entity": '<!DOCTYPE x [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p.dtd"> %p;]><x/>',
    "external DTD": '<!DOCTYPE x SYSTEM "http://127.0.0.1:9/x.dtd"><x/>',
    "empty": "",
    "not xml": "this is not xml",
    "unclosed": "<h:html xmlns:h='http://www.w3.org/1999/xhtml'><h:head>",
    "mismatched": "<a></b>",
    "bad utf-8": b"<?xml version='1.0' encoding='utf-8'?><a>\xff\xfe</a>",
    "no model": "<h:html xmlns:h='http://www.w3.org/1999/xhtml'><h:head><h:title>t</h:title></h:head></h:html>",
    "no root id": SYNTHETIC.replace(" id=ID", ""),
    "empty instance": SYNTHETIC.replace("<instance>", "<instance></instance><instance>", 1),
}


@pytest.mark.parametrize("xml", HOSTILE_XML.values(), ids=HOSTILE_XML.keys())
def test_bad_xml_raises_xform_error_fast(xml: str | bytes) -> None:
    started = time.monotonic()
    with pytest.raises(XFormError):
        parse_xform(xml.encode() if isinstance(xml, str) else xml)
    assert time.monotonic() - started < 1.0


def test_xform_error_is_a_value_error_and_size_is_bounded() -> None:
    assert issubclass(XFormError, ValueError)
    with pytest.raises(XFormError, match="larger"):
        parse_xform(b" " * (8 * 1024 * 1024 + 1))
    with pytest.raises(TypeError):
        parse_xform(None)  # type: ignore[arg-type]


def test_deep_or_huge_instances_are_refused_fast() -> None:
    deep = "<g>" * 20_000 + "<q/>" + "</g>" * 20_000
    wide = "".join(f"<q{i}/>" for i in range(25_000))
    for inner in (deep, wide):
        started = time.monotonic()
        with pytest.raises(XFormError):
            parse_xform(synthetic(**{"<patient_id/>": inner}).encode())
        assert time.monotonic() - started < 2.0


def test_deepest_allowed_path_still_gets_a_short_column_name() -> None:
    xml = synthetic(**{"<patient_id/>": "<g>" * 60 + "<q/>" + "</g>" * 60})
    xform = parse_xform(xml.encode())
    deepest = max(xform.fields, key=lambda f: len(f.path))
    assert len(deepest.path) == 61
    (column,) = [c for c in formview_columns(xform) if c.json_path == ("fields", *deepest.path)]
    assert NAME.match(column.name) and len(column.name) <= 63


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, "string"),
        ("", "string"),
        ("xsd:int", "int"),
        ("integer", "int"),
        ("xsd:dateTime", "dateTime"),
        ("dateTime", "dateTime"),
        ("db:person", "string"),
        ("db:clinic", "string"),
        ("select", "select"),
        ("odk:something", "something"),
    ],
)
def test_normalise_type(raw: str | None, expected: str) -> None:
    assert normalise_type(raw) == expected
