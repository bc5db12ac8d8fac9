"""The data dictionary of one XForm: what each field asks, in every language, and its choices.

For every leaf of the primary instance (the same leaves, paths and formview column names as
`formview.formview_columns`, so an entry names the columns it feeds): the question's label and
hint in each language of the form (`jr:itext` translations, the default language first, or
plain `<label>` text), its bind type and its `required`/`relevant`/`constraint`/`calculate`
expressions, and for select questions the choices with their labels — written inline
(`<item>`) or read from a secondary instance (`<itemset nodeset="instance('x')/root/item">`,
as the current CHT default forms do).

Pure: no database, no Dagster. The XML is untrusted and parsed by `parse.xform_tree`
(defusedxml, no DTD); label text is returned as written, never interpreted.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from xml.etree.ElementTree import Element

from cht_assets.xforms.formview import Column, formview_columns, formview_name, formview_repeat_name
from cht_assets.xforms.parse import (
    NodePath,
    XForm,
    child,
    local_name,
    read_xform,
    resolve_ref,
    walk_body,
    xform_tree,
)

__all__ = [
    "PLAIN_LANGUAGE",
    "Choice",
    "FieldEntry",
    "FormDictionary",
    "column_descriptions",
    "common_column_descriptions",
    "describe_field",
    "form_dictionary",
    "form_version_of",
    "text_of",
]

# The language of text written directly in `<label>`/`<hint>` (no `jr:itext`) when the form has
# no translations; pyxform names an untranslated form's only language "default" too.
PLAIN_LANGUAGE = "default"
# itext `<value form="...">` variants that are media references, not words.
_MEDIA_FORMS = frozenset({"image", "big-image", "audio", "video"})
_ITEXT_CALL = re.compile(r"""^\s*jr:itext\(\s*(?:'([^']*)'|"([^"]*)"|([^)'"]*?))\s*\)\s*$""")
_INSTANCE_CALL = re.compile(r"""^\s*instance\(\s*['"]([^'"]+)['"]\s*\)(.*)$""")
# Bind attributes kept as written (XPath expressions shown to readers, never evaluated).
_EXPRESSIONS = ("required", "relevant", "constraint", "calculate", "readonly")
_CHOICE_CONTROLS = frozenset({"select1", "select", "rank"})
Labels = dict[str, str]  # language -> text, the form's default language first


@dataclass(frozen=True)
class Choice:
    """One choice of a select question: the stored value and its label per language."""

    value: str
    labels: Labels = field(default_factory=dict)


@dataclass(frozen=True)
class FieldEntry:
    """One leaf of the form, described.

    `path` is below the instance root (the key path under a report's `fields`); `view` is the
    formview holding its columns (the form's, or its repeat group's) and `columns` their names
    there (two for a geopoint; a field whose type changed keeps its old column too); None and
    () for a form that makes no formview (contact forms)."""

    path: NodePath
    view: str | None
    columns: tuple[str, ...]
    bind_type: str
    raw_type: str | None
    control: str | None
    labels: Labels = field(default_factory=dict)
    hints: Labels = field(default_factory=dict)
    # required / relevant / constraint / calculate / readonly, as written in the binds
    expressions: dict[str, str] = field(default_factory=dict)
    choices: tuple[Choice, ...] = ()
    repeat: NodePath | None = None
    repeats: tuple[NodePath, ...] = ()  # every repeat holding the field, outermost first

    @property
    def name(self) -> str:
        """`group/question`: the field as the dictionary tables key it."""
        return "/".join(self.path)

    @property
    def couch_path(self) -> str:
        """Where the value is in the report doc: `fields.group.q`, with `[]` after each repeat
        (an array): `fields.babies[].name`."""
        steps = []
        for depth in range(1, len(self.path) + 1):
            step = self.path[depth - 1]
            steps.append(step + "[]" if self.path[:depth] in self.repeats else step)
        return ".".join(("fields", *steps))

    def label(self, lang: str | None = None) -> str | None:
        """The label in `lang`, else in the form's default language (the first)."""
        return _pick(self.labels, lang)

    def hint(self, lang: str | None = None) -> str | None:
        return _pick(self.hints, lang)


@dataclass(frozen=True)
class FormDictionary:
    """Every field of one form in document order; `languages` lists the default first."""

    form_id: str
    version: str
    title: str | None
    languages: tuple[str, ...]
    fields: tuple[FieldEntry, ...]
    titles: Labels = field(default_factory=dict)

    @property
    def default_language(self) -> str:
        return self.languages[0] if self.languages else PLAIN_LANGUAGE

    def fields_in(self, view: str | None) -> list[FieldEntry]:
        return [f for f in self.fields if f.view == view]


def form_version_of(xform: XForm, xml: str | bytes) -> str:
    """The form's `version` attribute, or a digest of its XML when it has none."""
    if xform.version:
        return xform.version
    data = xml.encode("utf-8", "surrogatepass") if isinstance(xml, str) else xml
    return "sha256:" + hashlib.sha256(data).hexdigest()[:12]


def form_dictionary(
    xml: str | bytes,
    known: Mapping[str, Sequence[Column]] = MappingProxyType({}),
    *,
    formview: bool = True,
) -> FormDictionary:
    """The dictionary of one XForm. `known` are the formview columns seen so far by view name
    (`warehouse.formviews.all_known_columns`), so the column names are the formviews' own;
    `formview=False` for a form that makes none (contact forms): no view or columns.
    Raises `XFormError` as `parse_xform` does."""
    html = xform_tree(xml)
    xform = read_xform(html)
    head = child(html, "head")
    model = child(head, "model") if head is not None else None
    assert model is not None  # parse_xform checked it
    itext = _read_itext(model)
    languages = tuple(itext)
    texts = _Texts(itext)
    _, controls = walk_body(child(html, "body"), xform.root)
    secondary = {
        inst.get("id"): inst for inst in model if local_name(inst.tag) == "instance" and inst.get("id")
    }
    binds = _read_bind_expressions(model, xform.root)
    columns_by_path = _columns_by_path(xform, known) if formview else {}

    entries = []
    for leaf in xform.fields:
        control = controls.get(leaf.path)
        view, columns = columns_by_path.get(leaf.path, (None, ()))
        entries.append(
            FieldEntry(
                path=leaf.path,
                view=view,
                columns=columns,
                bind_type=leaf.bind_type,
                raw_type=leaf.raw_type,
                control=leaf.control,
                labels=texts.of(child(control, "label")) if control is not None else {},
                hints=texts.of(child(control, "hint")) if control is not None else {},
                expressions=binds.get(leaf.path, {}),
                choices=_choices(control, texts, secondary) if control is not None else (),
                repeat=leaf.repeat,
                repeats=tuple(
                    r for r in xform.repeats if leaf.path[: len(r)] == r and len(r) < len(leaf.path)
                ),
            )
        )
    title = xform.title
    return FormDictionary(
        form_id=xform.form_id,
        version=form_version_of(xform, xml),
        title=title,
        languages=languages,
        fields=tuple(entries),
        titles={PLAIN_LANGUAGE: title} if title else {},
    )


def column_descriptions(
    dictionary: FormDictionary, *, repeat: NodePath | None = None, lang: str | None = None
) -> dict[str, str]:
    """Column name -> a one-line description for the formview of the form (its main view, or
    the view of repeat group `repeat`): the question's label in `lang` (default: the form's
    default language), else its hint, else its path; its bind type; and for a select
    question its choices as `value = label`. Only the columns of the form's fields are
    described (not the common `uuid`, `reported`, ... columns)."""
    view = _view_name(dictionary.form_id, repeat)
    descriptions: dict[str, str] = {}
    for entry in dictionary.fields_in(view):
        text = describe_field(entry, lang)
        for column in entry.columns:
            descriptions[column] = text
    return descriptions


# The columns every formview has besides its fields (formview.COMMON_COLUMNS and
# REPEAT_KEY_COLUMNS), and where each comes from in the report doc.
_COMMON_COLUMNS = {
    "uuid": "The report's doc id (`_id`).",
    "reported": "When the report was made (`reported_date`, epoch milliseconds).",
    "form_version": "The version of the form the report was made with (`form_version.sha256`).",
    "submitter_uuid": "The contact who submitted the report (`contact._id`).",
    "submitter_parent_uuid": "The submitter's place (`contact.parent._id`).",
    "patient_uuid": "The person or place the report is about (`fields.patient_uuid`, else `fields.inputs.contact._id`).",
    "patient_id": "The subject's shortcode or id (`patient_id`, else `fields.patient_id`, else `fields.patient_uuid`).",
}
_REPEAT_KEY_COLUMNS = {
    "parent_uuid": "The report holding this repeat element (`_id`).",
    "repeat_index": "The element's position in its repeat (1-based).",
    "outer_repeat_index": "The positions of the enclosing repeats' elements, outermost first (1-based).",
}


def common_column_descriptions(*, repeat: bool = False) -> dict[str, str]:
    """Descriptions of the columns every formview has (`repeat`: a repeat group's view)."""
    return dict(_REPEAT_KEY_COLUMNS if repeat else _COMMON_COLUMNS)


def describe_field(entry: FieldEntry, lang: str | None = None) -> str:
    """`Label (select1): yes = Yes; no = No` — one line for column comments and UIs."""
    words = entry.label(lang) or entry.hint(lang)
    kind = entry.raw_type or entry.bind_type
    text = f"{words} ({kind}, field {entry.name})" if words else f"Field {entry.name} ({kind})"
    if not words and "calculate" in entry.expressions:
        text += f", calculated: {entry.expressions['calculate']}"
    if entry.choices:
        shown = "; ".join(f"{c.value} = {_pick(c.labels, lang) or c.value}" for c in entry.choices)
        text += f". Choices: {shown}"
    return text


# ------------------------------------------------------------------------------------ text


def text_of(element: Element | None) -> str | None:
    """The words of a `<label>`, `<hint>` or itext `<value>`: its text with each
    `<output value="/data/x"/>` shown as `${x}`, whitespace collapsed; None when empty."""
    if element is None:
        return None
    parts: list[str] = []
    _collect_text(element, parts)
    return " ".join("".join(parts).split()) or None


def _collect_text(element: Element, parts: list[str]) -> None:
    if element.text:
        parts.append(element.text)
    for node in element:
        if local_name(node.tag) == "output":
            parts.append(_output_placeholder(node.get("value", "")))
        else:
            _collect_text(node, parts)
        if node.tail:
            parts.append(node.tail)


def _output_placeholder(expression: str) -> str:
    steps = [s for s in expression.strip().split("/") if s.strip()]
    return "${" + (steps[-1].strip() if steps else "") + "}"


def _pick(labels: Labels, lang: str | None) -> str | None:
    if lang is not None and labels.get(lang):
        return labels[lang]
    return next((text for text in labels.values() if text), None)


# ----------------------------------------------------------------------------------- itext


def _read_itext(model: Element) -> dict[str, dict[str, str]]:
    """language -> (text id -> words), the default language first (the translation marked
    `default`, else the first written)."""
    itext = child(model, "itext")
    if itext is None:
        return {}
    translations = [t for t in itext if local_name(t.tag) == "translation" and t.get("lang")]
    translations.sort(key=lambda t: t.get("default") is None)  # stable: document order otherwise
    found: dict[str, dict[str, str]] = {}
    for translation in translations:
        texts = found.setdefault(translation.get("lang", ""), {})
        for text in translation:
            if local_name(text.tag) == "text" and text.get("id") is not None:
                words = _itext_words(text)
                if words is not None:
                    texts.setdefault(text.get("id", ""), words)
    return found


def _itext_words(text: Element) -> str | None:
    """A `<text>`'s plain `<value>` (no `form`), else its first non-media variant."""
    values = [v for v in text if local_name(v.tag) == "value"]
    plain = [v for v in values if v.get("form") is None]
    other = [v for v in values if v.get("form") is not None and v.get("form") not in _MEDIA_FORMS]
    for value in (*plain, *other):
        words = text_of(value)
        if words is not None:
            return words
    return None


class _Texts:
    """Resolves a `<label>`/`<hint>` (an itext reference or plain text) into words per language."""

    def __init__(self, itext: Mapping[str, Mapping[str, str]]) -> None:
        self._itext = itext

    def of(self, element: Element | None) -> Labels:
        if element is None:
            return {}
        ref = element.get("ref")
        if ref is not None:
            text_id = _itext_id(ref)
            return self.by_id(text_id) if text_id is not None else {}
        words = text_of(element)
        return {self.plain_language: words} if words else {}

    def by_id(self, text_id: str) -> Labels:
        return {lang: texts[text_id] for lang, texts in self._itext.items() if text_id in texts}

    @property
    def plain_language(self) -> str:
        """Plain text in a translated form is the default language's."""
        return next(iter(self._itext), PLAIN_LANGUAGE)


def _itext_id(ref: str) -> str | None:
    """`jr:itext('/data/q:label')` -> `/data/q:label`; None for any other reference."""
    match = _ITEXT_CALL.match(ref)
    if match is None:
        return None
    return next(g for g in match.groups() if g is not None).strip()


# ---------------------------------------------------------------------------------- body


def _choices(control: Element, texts: _Texts, secondary: Mapping[str, Element]) -> tuple[Choice, ...]:
    if local_name(control.tag) not in _CHOICE_CONTROLS:
        return ()
    choices: list[Choice] = []
    for node in control:
        tag = local_name(node.tag)
        if tag == "item":
            value = text_of(child(node, "value"))
            if value is not None:
                choices.append(Choice(value, texts.of(child(node, "label"))))
        elif tag == "itemset":
            choices += _itemset_choices(node, texts, secondary)
    return tuple(choices)


def _itemset_choices(itemset: Element, texts: _Texts, secondary: Mapping[str, Element]) -> list[Choice]:
    """Every item of a secondary instance an itemset reads (a choice filter's predicate is
    ignored: the dictionary lists every possible choice). An itemset over the primary
    instance (choices from earlier answers) has no fixed list: none."""
    match = _INSTANCE_CALL.match(itemset.get("nodeset", ""))
    if match is None or match.group(1) not in secondary:
        return []
    steps = [s for s in re.sub(r"\[[^\]]*\]", "", match.group(2)).split("/") if s.strip()]
    items = [secondary[match.group(1)]]
    for step in steps:
        name = step.strip().rpartition(":")[2]
        items = [c for parent in items for c in parent if local_name(c.tag) == name]
    value_ref = child(itemset, "value")
    label_ref = child(itemset, "label")
    value_name = _simple_ref(value_ref.get("ref") if value_ref is not None else None) or "name"
    label = label_ref.get("ref") if label_ref is not None else None
    choices = []
    for item in items:
        value = text_of(child(item, value_name))
        if value is not None:
            choices.append(Choice(value, _item_labels(item, label, texts)))
    return choices


def _item_labels(item: Element, label_ref: str | None, texts: _Texts) -> Labels:
    if label_ref is None:
        return {}
    inner = _itext_id(label_ref)
    if inner is not None:  # jr:itext(itextId): the id is the item's own `itextId` child
        id_node = _simple_ref(inner)
        text_id = text_of(child(item, id_node)) if id_node else None
        return texts.by_id(text_id) if text_id else {}
    name = _simple_ref(label_ref)
    words = text_of(child(item, name)) if name else None
    return {texts.plain_language: words} if words else {}


def _simple_ref(ref: str | None) -> str | None:
    """A child element name (`name`, `./label`), None for anything else."""
    if ref is None:
        return None
    ref = ref.strip().removeprefix("./")
    return ref if re.fullmatch(r"[A-Za-z_][\w.\-]*", ref) else None


# ---------------------------------------------------------------------------------- model


def _read_bind_expressions(model: Element, root_name: str) -> dict[NodePath, dict[str, str]]:
    found: dict[NodePath, dict[str, str]] = {}
    for bind in model:
        if local_name(bind.tag) != "bind":
            continue
        path = resolve_ref(bind.get("nodeset", ""), (), root_name)
        if path is None:
            continue
        expressions = found.setdefault(path, {})
        for attribute in _EXPRESSIONS:
            value = bind.get(attribute)
            if value is not None and value.strip():
                expressions[attribute] = value.strip()  # the last bind wins, as for types
    return found


def _columns_by_path(
    xform: XForm, known: Mapping[str, Sequence[Column]]
) -> dict[NodePath, tuple[str | None, tuple[str, ...]]]:
    """Leaf path -> (formview, its columns there), from the formview generator itself."""
    found: dict[NodePath, tuple[str | None, tuple[str, ...]]] = {}
    for repeat in (None, *xform.repeats):
        view = _view_name(xform.form_id, repeat)
        by_json_path: dict[tuple[str, ...], list[str]] = {}
        for column in formview_columns(xform, list(known.get(view, ())), repeat=repeat):
            by_json_path.setdefault(column.json_path, []).append(column.name)
        for leaf in xform.fields_in(repeat):
            relative = leaf.path[len(repeat) :] if repeat is not None else ("fields", *leaf.path)
            found[leaf.path] = (view, tuple(by_json_path.get(relative, ())))
    return found


def _view_name(form_id: str, repeat: NodePath | None) -> str:
    return formview_name(form_id) if repeat is None else formview_repeat_name(form_id, repeat)
