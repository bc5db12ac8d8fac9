"""The data dictionary page and Markdown: every form, field, label (all languages) and choice,
document text escaped, and the page loads in headless Chromium without an error."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cht_assets.dictionary.messages import parse_messages_docs
from cht_assets.dictionary.render import DataDictionary, render_html, render_markdown
from cht_assets.dictionary.rows import FieldRow, RelationColumn
from cht_assets.xforms.dictionary import form_dictionary
from tests.superset.browser import Chromium, chromium_binary

ROOT = Path(__file__).resolve().parents[2]
DEMO_FORMS = sorted((ROOT / "cht_assets" / "demo" / "forms").glob("*.xml"))
SAMPLE = ROOT.parent / "shared" / "cht-sample-docs"
HOSTILE = """<h:html xmlns="http://www.w3.org/2002/xforms" xmlns:h="http://www.w3.org/1999/xhtml">
  <h:head><h:title>&lt;/title&gt;&lt;script&gt;alert(1)&lt;/script&gt;</h:title><model>
    <instance><data id="x&lt;img src=y onerror=alert(2)&gt;" version="1|2"><q/></data></instance>
    <bind nodeset="/data/q" type="select1"/></model></h:head>
  <h:body><select1 ref="/data/q"><label>&lt;script&gt;window.hacked=1&lt;/script&gt; | pipe</label>
    <item><label>&lt;b&gt;bold&lt;/b&gt;</label><value>v|1</value></item></select1></h:body></h:html>"""


def sample_dictionary() -> DataDictionary:
    paths = [*DEMO_FORMS, *(sorted((SAMPLE / "xforms").rglob("*.xml")) if SAMPLE.is_dir() else [])]
    forms = [form_dictionary(p.read_bytes()) for p in paths]
    forms.append(form_dictionary(HOSTILE))
    docs = json.loads((SAMPLE / "medic" / "other.json").read_text()) if SAMPLE.is_dir() else []
    retired = [
        FieldRow(
            form="pregnancy",
            field="old/q",
            view_name="formview_pregnancy",
            column_name="old_q",
            lang="en",
            label="Old <question>",
            hint=None,
            type="string",
            required=None,
            relevant=None,
            constraint=None,
            calculate=None,
            form_version="2",
            collected=False,
            last_version="1",
        )  # fmt: skip
    ]
    relations = [
        RelationColumn("public", "formview_pregnancy", "view", "uuid", "text", "The report's id"),
        RelationColumn("public", "formview_pregnancy", "view", "reported", "timestamp with time zone", None),
        RelationColumn(
            "public", "formview_pregnancy", "view", "gestational_age_register_method_lmp_method", "text", None
        ),
    ]
    return DataDictionary(
        forms, parse_messages_docs(docs), retired, relations, {"form:bad": "malformed <xml>"}, "today"
    )


def test_html_lists_every_form_field_label_and_choice_escaped() -> None:
    dictionary = sample_dictionary()
    page = render_html(dictionary)
    assert "<script>window.hacked" not in page and "<script>alert" not in page and "<img src=y" not in page
    assert "&lt;script&gt;window.hacked=1&lt;/script&gt;" in page
    for form in dictionary.forms:
        assert f'id="form-{re.sub(r"[^0-9A-Za-z]", "_", form.form_id)}"' in page
        for entry in form.fields:
            assert f"<code>{_escape(entry.name)}</code>" in page
            assert f"from <code>{_escape(entry.couch_path)}</code>" in page
            for text in entry.labels.values():
                assert _escape(text) in page
            for choice in entry.choices:
                assert f"<code>{_escape(choice.value)}</code>" in page
    assert "Old &lt;question&gt;" in page and "No longer collected" in page
    assert "The report&#39;s id" in page  # a column's own comment
    assert "When the report was made" in page  # else what the dictionary knows of it
    assert "How would you like to report the pregnancy?" in page or not SAMPLE.is_dir()


def test_markdown_has_one_table_row_per_field_and_escapes_cells() -> None:
    dictionary = sample_dictionary()
    markdown = render_markdown(dictionary)
    rows = [line for line in markdown.splitlines() if line.startswith("| `")]
    assert len(rows) == sum(len(form.fields) for form in dictionary.forms)
    hostile = next(line for line in rows if "window.hacked" in line)
    assert "&lt;script&gt;" in hostile and "\\| pipe" in hostile and "v\\|1" in hostile
    # Nine cells, so ten unescaped `|`: none from the document splits a cell.
    assert len(re.findall(r"(?<!\\)\|", hostile)) == 10


def test_view_columns_carry_their_lineage() -> None:
    base = sample_dictionary()
    relations = [
        *base.relations,
        RelationColumn("public", "person", "table", "sex", "text", None),
        RelationColumn("public", "odd", "view", "x<y", "text", None),
    ]
    dictionary = DataDictionary(
        base.forms,
        relations=relations,
        generated_at="today",
        sources={("person", "sex"): ["doc.sex"], ("odd", "x<y"): ["doc.a<b>", "person.sex"]},
    )
    page, markdown = render_html(dictionary), render_markdown(dictionary)
    assert "<th>from</th>" in page and "<code>doc.sex</code>" in page
    assert "<code>doc.a&lt;b&gt;</code><br><code>person.sex</code>" in page
    assert "| sex | text |  | doc.sex |" in markdown
    # A formview column: the report field its form says it holds.
    pregnancy = next(form for form in dictionary.forms if form.form_id == "pregnancy")
    entry = next(e for e in pregnancy.fields if e.view == "formview_pregnancy" and e.columns)
    assert dictionary.column_sources()[("formview_pregnancy", entry.columns[0])] == [
        f"doc.{entry.couch_path}"
    ]


def test_an_empty_deployment_says_so() -> None:
    empty = DataDictionary(forms=[], generated_at="now")
    assert 'id="no-forms"' in render_html(empty) and 'id="no-translations"' in render_html(empty)
    assert "No forms yet" in render_markdown(empty)


@pytest.mark.skipif(chromium_binary() is None, reason="no chromium: apt-get install -y chromium")
def test_page_renders_in_headless_chromium_without_errors(tmp_path: Path) -> None:
    page = tmp_path / "data_dictionary.html"
    page.write_text(render_html(sample_dictionary()), encoding="utf-8")
    with Chromium(tmp_path / "chromium") as browser:
        # Installed before any script of the page runs: uncaught errors, failed resource loads
        # (capture phase) and console.error calls all land in window.__errors.
        browser.send(
            "Page.addScriptToEvaluateOnNewDocument",
            {
                "source": "window.__errors = [];"
                "window.addEventListener('error', e => window.__errors.push(String(e.message || e.target)), true);"
                "window.addEventListener('unhandledrejection', e => window.__errors.push(String(e.reason)));"
                "const _error = console.error; console.error = (...a) => { window.__errors.push(a.join(' ')); _error(...a); };"
            },
            session=True,
        )
        browser.navigate(page.as_uri())
        browser.wait_for(
            "document.readyState === 'complete' && document.querySelectorAll('section').length > 0"
        )
        assert browser.evaluate("window.hacked") is None
        sections = browser.evaluate("document.querySelectorAll('section[id^=form-]').length")
        assert sections == len(sample_dictionary().forms)
        visible = browser.evaluate(
            "(() => { const f = document.getElementById('filter'); f.value = 'lmp_method';"
            " f.dispatchEvent(new Event('input'));"
            " return [...document.querySelectorAll('table.fields tbody tr')].filter(r => !r.hidden).length; })()"
        )
        assert 0 < visible < browser.evaluate("document.querySelectorAll('table.fields tbody tr').length")
        assert browser.evaluate("window.__errors") == []


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&#34;")
        .replace("'", "&#39;")
    )
