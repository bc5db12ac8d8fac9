"""The data dictionary of an XForm against the XML itself, read independently here with
xml.etree: every field's labels (all languages) and choices, for the demo forms and every real
CHT form in ../shared; translation docs; retired fields."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from cht_assets.dictionary.messages import parse_messages_docs
from cht_assets.dictionary.rows import choice_rows, field_rows, merge_retired
from cht_assets.xforms.dictionary import (
    PLAIN_LANGUAGE,
    column_descriptions,
    common_column_descriptions,
    form_dictionary,
)
from cht_assets.xforms.formview import (
    COMMON_COLUMNS,
    REPEAT_KEY_COLUMNS,
    formview_columns,
    formview_repeat_name,
)
from cht_assets.xforms.parse import parse_xform

SHARED_XFORMS = Path(__file__).resolve().parents[3] / "shared" / "cht-sample-docs" / "xforms"
SHARED_MEDIC = Path(__file__).resolve().parents[3] / "shared" / "cht-sample-docs" / "medic"
XF = "{http://www.w3.org/2002/xforms}"
H = "{http://www.w3.org/1999/xhtml}"
DEMO_FORMS = sorted((Path(__file__).resolve().parents[2] / "cht_assets" / "demo" / "forms").glob("*.xml"))
REAL_FORMS = sorted(SHARED_XFORMS.rglob("*.xml")) if SHARED_XFORMS.is_dir() else []


# ---- an independent reading of the XML: what a person would look up by hand --------------


def words(element: ET.Element) -> str | None:
    """Text with <output value="/a/b"/> as ${b}, whitespace collapsed."""
    pieces = [element.text or ""]
    for child in element:
        if child.tag == XF + "output":
            pieces.append("${" + child.get("value", "").strip().split("/")[-1].strip() + "}")
        else:
            pieces.append(words(child) or "")
        pieces.append(child.tail or "")
    return " ".join("".join(pieces).split()) or None


def itext_of(model: ET.Element) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    translations = model.findall(f"{XF}itext/{XF}translation")
    translations = [t for t in translations if t.get("default") is not None] + [
        t for t in translations if t.get("default") is None
    ]
    for translation in translations:
        table = found.setdefault(translation.get("lang"), {})
        for text in translation.findall(f"{XF}text"):
            values = text.findall(f"{XF}value")
            chosen = [v for v in values if v.get("form") is None] + [
                v for v in values if v.get("form") not in (None, "image", "big-image", "audio", "video")
            ]
            for value in chosen:
                if words(value):
                    table.setdefault(text.get("id"), words(value))
                    break
    return found


def labels_of(element: ET.Element | None, itext: dict[str, dict[str, str]]) -> dict[str, str]:
    if element is None:
        return {}
    ref = element.get("ref")
    if ref is not None:
        match = re.fullmatch(r"\s*jr:itext\(\s*'([^']*)'\s*\)\s*", ref)
        assert match, f"unexpected label ref {ref!r}"
        return {lang: table[match.group(1)] for lang, table in itext.items() if match.group(1) in table}
    text = words(element)
    return {next(iter(itext), PLAIN_LANGUAGE): text} if text else {}


def choices_of(control: ET.Element, model: ET.Element, itext: dict[str, dict[str, str]]) -> list:
    found = []
    for item in control.findall(f"{XF}item"):
        found.append((words(item.find(f"{XF}value")), labels_of(item.find(f"{XF}label"), itext)))
    itemset = control.find(f"{XF}itemset")
    if itemset is not None:
        match = re.fullmatch(r"instance\('([^']+)'\)/root/item(\[.*\])?", itemset.get("nodeset"))
        if match:
            instance = next(i for i in model.findall(f"{XF}instance") if i.get("id") == match.group(1))
            value_tag = itemset.find(f"{XF}value").get("ref")
            label_ref = itemset.find(f"{XF}label").get("ref")
            for item in instance.findall(f"{XF}root/{XF}item"):
                if label_ref == "jr:itext(itextId)":
                    text_id = item.find(f"{XF}itextId").text.strip()
                    labels = {lang: t[text_id] for lang, t in itext.items() if text_id in t}
                else:
                    label = item.find(XF + label_ref)
                    labels = {next(iter(itext), PLAIN_LANGUAGE): words(label)} if label is not None else {}
                found.append((words(item.find(XF + value_tag)), labels))
    return found


def expected_questions(xml: bytes) -> dict[tuple[str, ...], tuple[dict, dict, list]]:
    """path below the root -> (labels, hints, choices) of every question with an absolute ref."""
    html = ET.fromstring(xml)
    model = html.find(f"{H}head/{XF}model")
    itext = itext_of(model)
    questions = {}
    tags = ("input", "select1", "select", "upload", "trigger", "range", "rank", "secret", "textarea")
    for element in html.find(f"{H}body").iter():
        if element.tag.removeprefix(XF) in tags and (element.get("ref") or "").startswith("/"):
            path = tuple(element.get("ref").strip("/").split("/")[1:])
            questions.setdefault(
                path,
                (
                    labels_of(element.find(f"{XF}label"), itext),
                    labels_of(element.find(f"{XF}hint"), itext),
                    choices_of(element, model, itext)
                    if element.tag in (XF + "select1", XF + "select")
                    else [],
                ),
            )
    return questions


# ---- the tests ----------------------------------------------------------------------------


def check_against_xml(path: Path) -> int:
    xml = path.read_bytes()
    dictionary = form_dictionary(xml)
    entries = {entry.path: entry for entry in dictionary.fields}
    expected = expected_questions(xml)
    checked = 0
    for question_path, (labels, hints, choices) in expected.items():
        entry = entries.get(question_path)
        if entry is None:  # a question on a group or a node outside the instance
            continue
        assert entry.labels == labels, (path.name, question_path)
        assert entry.hints == hints, (path.name, question_path)
        assert [(c.value, c.labels) for c in entry.choices] == choices, (path.name, question_path)
        checked += 1
    # Every leaf is an entry, in the parser's order, and every formview column is described.
    xform = parse_xform(xml)
    assert [entry.path for entry in dictionary.fields] == [leaf.path for leaf in xform.fields]
    for repeat in (None, *xform.repeats):
        columns = {c.name for c in formview_columns(xform, repeat=repeat)}
        assert set(column_descriptions(dictionary, repeat=repeat)) == columns, (path.name, repeat)
    return checked


@pytest.mark.parametrize("path", DEMO_FORMS, ids=[p.stem for p in DEMO_FORMS])
def test_demo_form_labels_and_choices_equal_the_xml(path: Path) -> None:
    assert check_against_xml(path) > 0


@pytest.mark.skipif(not REAL_FORMS, reason="../shared/cht-sample-docs not present")
@pytest.mark.parametrize("path", REAL_FORMS, ids=[str(p.relative_to(SHARED_XFORMS)) for p in REAL_FORMS])
def test_real_cht_form_labels_and_choices_equal_the_xml(path: Path) -> None:
    assert check_against_xml(path) > 0


@pytest.mark.skipif(not REAL_FORMS, reason="../shared/cht-sample-docs not present")
def test_real_forms_have_labels_choices_and_languages() -> None:
    pregnancy = form_dictionary((SHARED_XFORMS / "default/app/pregnancy.xml").read_bytes())
    lmp = next(e for e in pregnancy.fields if e.path == ("gestational_age", "register_method", "lmp_method"))
    assert lmp.labels == {"en": "How would you like to report the pregnancy?"}
    # Choices from a secondary instance (itemset), as the current default config writes them.
    assert [(c.value, c.labels["en"]) for c in lmp.choices][:2] == [
        ("method_lmp", "Last menstrual period (LMP)"),
        ("method_approx", "Current weeks or months pregnant"),
    ]
    visited = next(e for e in pregnancy.fields if e.name.endswith("visited_dates/visited_date"))
    assert (
        visited.couch_path
        == "fields.anc_visits_hf.anc_visits_hf_past.visited_dates_group.visited_dates[].visited_date"
    )
    repeat = ("anc_visits_hf", "anc_visits_hf_past", "visited_dates_group", "visited_dates")
    assert visited.view == formview_repeat_name("pregnancy", repeat) and visited.columns == ("visited_date",)
    assert column_descriptions(pregnancy, repeat=repeat)["visited_date"].endswith(
        "field anc_visits_hf/anc_visits_hf_past/visited_dates_group/visited_dates/visited_date)"
    )
    assert set(common_column_descriptions()) == set(COMMON_COLUMNS)
    assert set(common_column_descriptions(repeat=True)) == set(REPEAT_KEY_COLUMNS)
    person = form_dictionary(
        (SHARED_XFORMS / "default/contact/person-create.xml").read_bytes(), formview=False
    )
    assert person.languages[0] == "en" and set(person.languages) == {"en", "fr", "hi", "id", "ne", "sw"}
    assert all(entry.view is None and not entry.columns for entry in person.fields)
    standard = form_dictionary((SHARED_XFORMS / "standard/app/pregnancy.xml").read_bytes())
    method = next(e for e in standard.fields if e.path == ("group_lmp", "g_lmp_method"))
    assert method.choices[0].value == "calendar" and method.choices[0].labels["fr"] == "Oui"
    assert method.expressions == {"required": "true()"}
    assert method.columns == ("group_lmp_g_lmp_method",)


def test_plain_labels_outputs_and_column_descriptions() -> None:
    xml = """<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml">
      <h:head><h:title>Water</h:title><model>
        <instance><data id="water" version="3"><source/><n/><loc/><who/></data></instance>
        <bind nodeset="/data/source" type="select1" required="true()"/>
        <bind nodeset="/data/n" type="int" constraint=". &gt; 0" relevant="/data/source = 'tap'"/>
        <bind nodeset="/data/loc" type="geopoint"/>
        <bind nodeset="/data/who" type="string" calculate="'x'"/>
      </model></h:head>
      <h:body>
        <select1 ref="/data/source"><label>Water  source</label><hint>Pick <output value=" /data/who "/></hint>
          <item><label>Tap water</label><value>tap</value></item>
          <item><label>Well &lt;b&gt;</label><value>well</value></item>
        </select1>
        <input ref="/data/n"><label>How many?</label></input>
        <input ref="/data/loc"><label>Where</label></input>
      </h:body></h:html>"""
    form = form_dictionary(xml)
    assert form.version == "3" and form.languages == () and form.default_language == PLAIN_LANGUAGE
    source = form.fields[0]
    assert source.labels == {"default": "Water source"} and source.hints == {"default": "Pick ${who}"}
    assert [(c.value, c.labels) for c in source.choices] == [
        ("tap", {"default": "Tap water"}),
        ("well", {"default": "Well <b>"}),
    ]
    descriptions = column_descriptions(form)
    assert (
        descriptions["source"]
        == "Water source (select1, field source). Choices: tap = Tap water; well = Well <b>"
    )
    assert descriptions["loc_latitude"] == descriptions["loc_longitude"] == "Where (geopoint, field loc)"
    assert descriptions["who"] == "Field who (string), calculated: 'x'"
    assert form.fields[1].expressions == {"constraint": ". > 0", "relevant": "/data/source = 'tap'"}


def test_retired_fields_stay_not_collected_with_their_last_version() -> None:
    def form(version: str, extra: str) -> str:
        return f"""<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml">
          <h:head><h:title>T</h:title><model><instance><data id="t" version="{version}"><a/>{extra}</data></instance>
          </model></h:head><h:body><select1 ref="/data/a"><label>A</label>
          <item><label>Yes</label><value>yes</value></item></select1>
          <select1 ref="/data/b"><label>B</label><item><label>No</label><value>no</value></item></select1>
          </h:body></h:html>"""

    old = form_dictionary(form("1", "<b/>"))
    new = form_dictionary(form("2", ""))
    old_fields, old_choices = field_rows([old]), choice_rows([old])
    fields, choices = merge_retired(
        field_rows([new]), choice_rows([new]), old_fields, old_choices, {"t": "2"}
    )
    by_field = {row.field: row for row in fields}
    assert by_field["a"].collected and by_field["a"].last_version == "2"
    assert (
        not by_field["b"].collected
        and by_field["b"].last_version == "1"
        and by_field["b"].form_version == "2"
    )
    assert by_field["b"].label == "B" and by_field["b"].column_name == "b"
    assert {(c.field, c.value) for c in choices} == {("a", "yes"), ("b", "no")}
    # A later run keeps it retired with the same last version (not the version it was retired in).
    again, _ = merge_retired(field_rows([new]), choice_rows([new]), fields, choices, {"t": "3"})
    assert [(r.field, r.collected, r.last_version, r.form_version) for r in again if r.field == "b"] == [
        ("b", False, "1", "3")
    ]
    # The field coming back makes it collected again.
    back, _ = merge_retired(field_rows([old]), choice_rows([old]), again, choices, {"t": "1"})
    assert all(row.collected for row in back)


@pytest.mark.skipif(not SHARED_MEDIC.is_dir(), reason="../shared/cht-sample-docs not present")
def test_translations_from_the_messages_docs() -> None:
    docs = json.loads((SHARED_MEDIC / "other.json").read_text())
    expected = {
        d["_id"].removeprefix("messages-"): d["values"] for d in docs if d["_id"].startswith("messages-")
    }
    translations = parse_messages_docs(docs)
    assert translations.by_language == expected
    assert translations.default_language == "en" and translations.names["en"] == "English"
    assert translations.text("contact.deceased.title") == "Deceased"
    assert translations.text("contact.deceased.title", "fr") == "Deceased"  # no French: the default
    assert translations.text("task.anc.pregnancy_home_visit.title") == "task.anc.pregnancy_home_visit.title"


def test_translations_generic_custom_and_language_choice() -> None:
    docs = [
        {
            "_id": "messages-en",
            "code": "en",
            "generic": {"k": "Generic", "g": "G"},
            "custom": {"k": "Custom"},
        },
        {"_id": "messages-sw", "values": {"k": "Kiswahili"}, "enabled": False},
        {"_id": "messages-fr", "_deleted": True, "values": {"k": "Non"}},
        {"_id": "settings", "values": {"k": "not a translation"}},
    ]
    translations = parse_messages_docs(docs, default_language="sw")
    assert translations.languages == ("sw", "en")
    assert translations.text("k") == "Kiswahili" and translations.text("k", "en") == "Custom"
    assert translations.text("g") == "G"  # missing in the default language: another language's
    assert parse_messages_docs([]).languages == () and parse_messages_docs([]).text("x") == "x"
