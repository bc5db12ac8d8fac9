"""The data dictionary as one static HTML page and one Markdown file.

Everything shown comes from documents (labels, choices, form ids, translation words):
the HTML template autoescapes all of it, and Markdown table cells escape `|`, `<` and line
breaks. The page needs no network: its style and its small filter script are inline.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby

import jinja2

from cht_assets.dictionary.messages import Translations
from cht_assets.dictionary.rows import FieldRow, RelationColumn
from cht_assets.xforms.dictionary import (
    FieldEntry,
    FormDictionary,
    common_column_descriptions,
    describe_field,
)

__all__ = ["DataDictionary", "render_html", "render_markdown"]


@dataclass(frozen=True)
class DataDictionary:
    """Everything one page lists. `retired` are fields no longer in their form (not
    collected), `relations` the warehouse's view columns, `problems` forms that could not be
    read (doc id: why)."""

    forms: Sequence[FormDictionary]
    translations: Translations = field(default_factory=Translations)
    retired: Sequence[FieldRow] = ()
    relations: Sequence[RelationColumn] = ()
    problems: Mapping[str, str] = field(default_factory=dict)
    generated_at: str = ""
    language: str | None = None  # the language descriptions are written in (None: each form's default)
    # (relation, column) -> where the value comes from, as sqlglot traces the hand-written SQL
    sources: Mapping[tuple[str, str], Sequence[str]] = field(default_factory=dict)

    @property
    def languages(self) -> tuple[str, ...]:
        """Every language present in the forms and the translation docs, in first-seen order."""
        found: dict[str, None] = {}
        for form in self.forms:
            found.update(dict.fromkeys(form.languages))
        found.update(dict.fromkeys(self.translations.languages))
        return tuple(found)

    def column_descriptions(self) -> dict[tuple[str, str], str]:
        """(view, column) -> description, for the formview columns of the forms."""
        found = {}
        for form in self.forms:
            for view in {entry.view for entry in form.fields if entry.view is not None}:
                common = common_column_descriptions(repeat=any(e.repeat for e in form.fields_in(view)))
                found.update({(view, column): text for column, text in common.items()})
            for entry in form.fields:
                for column in entry.columns:
                    if entry.view is not None:
                        found[(entry.view, column)] = describe_field(entry, self.language)
        return found

    def column_sources(self) -> dict[tuple[str, str], list[str]]:
        """(view, column) -> its lineage: the report field for a formview column (from the
        form), else what the SQL reads (`doc.<field>` for a document field)."""
        found = {key: list(values) for key, values in self.sources.items()}
        for form in self.forms:
            for entry in form.fields:
                for column in entry.columns:
                    if entry.view is not None:
                        found[(entry.view, column)] = [f"doc.{entry.couch_path}"]
        return found

    def relations_by_name(self) -> list[tuple[str, str, list[RelationColumn]]]:
        """(schema.relation, kind, columns), in schema and name order."""
        grouped = []
        for (schema, relation, kind), columns in groupby(
            self.relations, key=lambda c: (c.schema, c.relation, c.kind)
        ):
            grouped.append((f"{schema}.{relation}", kind, list(columns)))
        return grouped


def render_html(dictionary: DataDictionary) -> str:
    return _ENVIRONMENT.from_string(_HTML).render(d=dictionary, **_helpers(dictionary))


def render_markdown(dictionary: DataDictionary) -> str:
    return _MARKDOWN_ENVIRONMENT.from_string(_MARKDOWN).render(d=dictionary, **_helpers(dictionary))


def _helpers(dictionary: DataDictionary) -> dict[str, object]:
    return {
        "descriptions": dictionary.column_descriptions(),
        "sources": dictionary.column_sources(),
        "anchor": _anchor,
        "expressions": _expressions,
    }


def _anchor(*parts: str) -> str:
    """A fragment id safe in HTML and Markdown links, unique per (kind, name)."""
    return "-".join("".join(ch if ch.isalnum() else "_" for ch in part) for part in parts)


def _expressions(entry: FieldEntry) -> list[tuple[str, str]]:
    return [
        (name, entry.expressions[name])
        for name in ("required", "relevant", "constraint", "calculate", "readonly")
        if name in entry.expressions
    ]


def _md(value: object) -> str:
    """A Markdown table cell: no line breaks, `|` and HTML escaped."""
    if value is None:
        return ""
    text = " ".join(str(value).split())
    return html.escape(text, quote=False).replace("|", "\\|").replace("`", "\\`")


_ENVIRONMENT = jinja2.Environment(
    autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
)
_MARKDOWN_ENVIRONMENT = jinja2.Environment(
    autoescape=False, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
)
_MARKDOWN_ENVIRONMENT.filters["md"] = _md

_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>CHT data dictionary</title>
<style>
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; line-height: 1.35; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1.5rem; font-size: .9rem; }
th, td { border: 1px solid #ccc; padding: .25rem .4rem; vertical-align: top; text-align: left; }
th { background: #f3f3f3; position: sticky; top: 0; }
code { font-size: .85rem; word-break: break-all; }
.lang { color: #666; font-size: .75rem; margin-right: .3rem; }
.retired { color: #8a4b00; }
.note { color: #555; }
nav ul { columns: 3; }
#filter { font-size: 1rem; padding: .3rem; width: 24rem; }
</style>
</head>
<body>
<h1>CHT data dictionary</h1>
<p class="note">Generated {{ d.generated_at }} from the deployment's forms (XForms), its translation docs
and the warehouse's views. Languages present: {{ d.languages | join(", ") if d.languages else "none" }}.</p>
<p><label for="filter">Filter rows: </label><input id="filter" type="search" placeholder="field, column, label or value"></p>
{% if not d.forms %}
<p id="no-forms" class="note">No forms yet: the deployment has no form docs in the raw replica (or none synced yet).
The dictionary fills in on the first run after forms appear.</p>
{% else %}
<nav><h2>Forms</h2><ul>
{% for form in d.forms %}
<li><a href="#{{ anchor('form', form.form_id) }}">{{ form.title or form.form_id }}</a> <code>{{ form.form_id }}</code></li>
{% endfor %}
</ul></nav>
{% endif %}
{% if d.problems %}
<h2>Forms that could not be read</h2>
<ul>{% for doc_id, why in d.problems.items() %}<li><code>{{ doc_id }}</code>: {{ why }}</li>{% endfor %}</ul>
{% endif %}
{% for form in d.forms %}
<section id="{{ anchor('form', form.form_id) }}">
<h2>{{ form.title or form.form_id }} <code>{{ form.form_id }}</code></h2>
<p>Form version <code>{{ form.version }}</code>; languages: {{ form.languages | join(", ") if form.languages else "none (plain labels)" }};
{{ form.fields | length }} fields.</p>
<table class="fields">
<thead><tr><th>field</th><th>view / column</th><th>type</th><th>label</th><th>hint</th><th>logic</th><th>choices</th></tr></thead>
<tbody>
{% for entry in form.fields %}
<tr>
<td><code>{{ entry.name }}</code><br><span class="note">from <code>{{ entry.couch_path }}</code></span></td>
<td>{% if entry.view %}<code>{{ entry.view }}</code><br>{% for column in entry.columns %}<code>{{ column }}</code>{% if not loop.last %}, {% endif %}{% endfor %}{% else %}<span class="note">no formview</span>{% endif %}</td>
<td>{{ entry.raw_type or entry.bind_type }}{% if entry.control %} <span class="note">({{ entry.control }})</span>{% endif %}</td>
<td>{% for lang, text in entry.labels.items() %}<div><span class="lang">{{ lang }}</span>{{ text }}</div>{% endfor %}</td>
<td>{% for lang, text in entry.hints.items() %}<div><span class="lang">{{ lang }}</span>{{ text }}</div>{% endfor %}</td>
<td>{% for name, expression in expressions(entry) %}<div>{{ name }}: <code>{{ expression }}</code></div>{% endfor %}</td>
<td>{% for choice in entry.choices %}<div><code>{{ choice.value }}</code>{% for lang, text in choice.labels.items() %} <span class="lang">{{ lang }}</span>{{ text }}{% endfor %}</div>{% endfor %}</td>
</tr>
{% endfor %}
</tbody>
</table>
</section>
{% endfor %}
{% if d.retired %}
<section id="retired">
<h2>No longer collected</h2>
<p class="note">Fields a newer form version dropped: their columns stay in the formviews for older reports.</p>
<table class="fields retired">
<thead><tr><th>form</th><th>field</th><th>column</th><th>language</th><th>label</th><th>type</th><th>last version with it</th></tr></thead>
<tbody>
{% for row in d.retired %}
<tr><td><code>{{ row.form }}</code></td><td><code>{{ row.field }}</code></td><td><code>{{ row.column_name or "" }}</code></td><td>{{ row.lang }}</td><td>{{ row.label or "" }}</td><td>{{ row.type }}</td><td><code>{{ row.last_version }}</code></td></tr>
{% endfor %}
</tbody>
</table>
</section>
{% endif %}
<section id="translations">
<h2>Translations</h2>
{% if d.translations.languages %}
<table>
<thead><tr><th>language</th><th>name</th><th>keys</th></tr></thead>
<tbody>
{% for lang in d.translations.languages %}
<tr><td>{{ lang }}{% if lang == d.translations.default_language %} (default){% endif %}</td><td>{{ d.translations.names.get(lang, "") }}</td><td>{{ d.translations.by_language[lang] | length }}</td></tr>
{% endfor %}
</tbody>
</table>
{% else %}
<p id="no-translations" class="note">No translation docs (<code>messages-&lt;lang&gt;</code>) in the raw replica: translation keys are shown as they are.</p>
{% endif %}
</section>
{% if d.relations %}
<section id="views">
<h2>Views</h2>
{% for name, kind, columns in d.relations_by_name() %}
<h3 id="{{ anchor('view', name) }}"><code>{{ name }}</code> <span class="note">{{ kind }}</span></h3>
<table class="fields">
<thead><tr><th>column</th><th>type</th><th>description</th><th>from</th></tr></thead>
<tbody>
{% for c in columns %}
<tr><td><code>{{ c.column }}</code></td><td>{{ c.data_type }}</td><td>{{ c.comment or descriptions.get((c.relation, c.column), "") }}</td><td>{% for s in sources.get((c.relation, c.column), ()) %}<code>{{ s }}</code>{% if not loop.last %}<br>{% endif %}{% endfor %}</td></tr>
{% endfor %}
</tbody>
</table>
{% endfor %}
</section>
{% endif %}
<script>
(function () {
  var input = document.getElementById("filter");
  input.addEventListener("input", function () {
    var needle = input.value.toLowerCase();
    document.querySelectorAll("table.fields tbody tr").forEach(function (row) {
      row.hidden = needle !== "" && row.textContent.toLowerCase().indexOf(needle) === -1;
    });
  });
})();
</script>
</body>
</html>
"""

_MARKDOWN = """# CHT data dictionary

Generated {{ d.generated_at }} from the deployment's forms (XForms), its translation docs and the
warehouse's views. Languages present: {{ d.languages | join(", ") if d.languages else "none" }}.

{% if not d.forms %}
No forms yet: the deployment has no form docs in the raw replica (or none synced yet).
{% endif %}
{% for doc_id, why in d.problems.items() %}
- Form `{{ doc_id | md }}` could not be read: {{ why | md }}
{% endfor %}
{% for form in d.forms %}
## {{ (form.title or form.form_id) | md }} (`{{ form.form_id | md }}`)

Form version `{{ form.version | md }}`; languages: {{ form.languages | join(", ") if form.languages else "none (plain labels)" }}; {{ form.fields | length }} fields.

| field | CouchDB field | view | columns | type | label | hint | logic | choices |
| --- | --- | --- | --- | --- | --- | --- | --- | --- |
{% for e in form.fields %}
| `{{ e.name | md }}` | {{ e.couch_path | md }} | {{ (e.view or "") | md }} | {{ e.columns | join(", ") | md }} | {{ (e.raw_type or e.bind_type) | md }} | {% for lang, text in e.labels.items() %}{{ lang }}: {{ text | md }}{% if not loop.last %}<br>{% endif %}{% endfor %} | {% for lang, text in e.hints.items() %}{{ lang }}: {{ text | md }}{% if not loop.last %}<br>{% endif %}{% endfor %} | {% for name, x in expressions(e) %}{{ name }}: {{ x | md }}{% if not loop.last %}<br>{% endif %}{% endfor %} | {% for c in e.choices %}{{ c.value | md }} = {% for lang, text in c.labels.items() %}{{ lang }}: {{ text | md }}{% if not loop.last %}, {% endif %}{% endfor %}{% if not loop.last %}<br>{% endif %}{% endfor %} |
{% endfor %}

{% endfor %}
{% if d.retired %}
## No longer collected

| form | field | column | language | label | type | last version with it |
| --- | --- | --- | --- | --- | --- | --- |
{% for r in d.retired %}
| {{ r.form | md }} | {{ r.field | md }} | {{ (r.column_name or "") | md }} | {{ r.lang | md }} | {{ (r.label or "") | md }} | {{ r.type | md }} | {{ r.last_version | md }} |
{% endfor %}

{% endif %}
## Translations

{% if d.translations.languages %}
| language | name | keys |
| --- | --- | --- |
{% for lang in d.translations.languages %}
| {{ lang | md }}{% if lang == d.translations.default_language %} (default){% endif %} | {{ d.translations.names.get(lang, "") | md }} | {{ d.translations.by_language[lang] | length }} |
{% endfor %}
{% else %}
No translation docs (`messages-<lang>`) in the raw replica.
{% endif %}
{% if d.relations %}

## Views
{% for name, kind, columns in d.relations_by_name() %}

### `{{ name | md }}` ({{ kind }})

| column | type | description | from |
| --- | --- | --- | --- |
{% for c in columns %}
| {{ c.column | md }} | {{ c.data_type | md }} | {{ (c.comment or descriptions.get((c.relation, c.column), "")) | md }} | {{ sources.get((c.relation, c.column), ()) | join(", ") | md }} |
{% endfor %}
{% endfor %}
{% endif %}
"""
