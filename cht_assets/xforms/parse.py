"""Read the structure of a CHT XForm: its leaves, groups, repeats and bind types.

CHT stores a report's answers as `fields`: the primary instance as nested JSON with the root
element dropped, every leaf a string and every repeat an array. Everything needed to type those
strings is in the form definition: the leaves of `<model><instance>`'s first child, the
`<bind nodeset type>` of each leaf, and the repeats (`<repeat nodeset>` in the body and/or
`jr:template` in the instance).

The XML comes from CouchDB, i.e. from whoever can upload a form: it is parsed with defusedxml,
refusing any DTD (XForms never have one), so entity bombs and external entities fail fast.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from xml.etree.ElementTree import Element, ParseError

import defusedxml
import defusedxml.ElementTree as SafeET

__all__ = [
    "MAX_XFORM_BYTES",
    "Field",
    "NodePath",
    "XForm",
    "CONTROL_TAGS",
    "XFormError",
    "child",
    "local_name",
    "normalise_type",
    "parse_xform",
    "read_xform",
    "resolve_ref",
    "walk_body",
    "xform_tree",
]

# A node's location below the instance root: ("group", "question").
NodePath = tuple[str, ...]

# Bounds far above any real form (the CHT sample forms reach 330 kB, 277 instance nodes, 8
# levels) that keep a hostile upload from costing much memory or time: paths are tuples, so a
# deep instance would cost depth^2.
MAX_XFORM_BYTES = 8 * 1024 * 1024
MAX_INSTANCE_NODES = 20_000
MAX_DEPTH = 64

JAVAROSA_NS = "http://openrosa.org/javarosa"
_TEMPLATE_ATTR = f"{{{JAVAROSA_NS}}}template"
_PRELOAD_ATTR = f"{{{JAVAROSA_NS}}}preload"

# Body elements that hold a question bound to one instance node (`odk:rank` is `rank` locally).
CONTROL_TAGS = frozenset(
    {"input", "select1", "select", "upload", "trigger", "range", "rank", "secret", "textarea"}
)

# XForm/XML Schema type names -> one canonical spelling. Unknown types pass through unchanged
# (and become text columns); `db:*` types are CHT contact pickers whose value is a doc id.
_TYPE_ALIASES = {
    "string": "string",
    "int": "int",
    "integer": "int",
    "short": "int",
    "long": "long",
    "decimal": "decimal",
    "double": "decimal",
    "float": "decimal",
    "date": "date",
    "datetime": "dateTime",
    "time": "time",
    "select": "select",
    "select1": "select1",
    "geopoint": "geopoint",
    "geotrace": "geotrace",
    "geoshape": "geoshape",
    "boolean": "boolean",
    "barcode": "barcode",
    "binary": "binary",
    "tel": "tel",
}


class XFormError(ValueError):
    """The XML is not a usable XForm: malformed, hostile (DTD/entities) or missing its instance."""


@dataclass(frozen=True)
class Field:
    """One leaf of the primary instance.

    `path` excludes the root element, so it is also the key path under a report's `fields`.
    `repeat` is the innermost repeat holding the leaf (its path), or None.
    `bind_type` is canonical (`int`, `decimal`, `date`, `dateTime`, `select`, `select1`,
    `geopoint`, `string`, ...); `raw_type` is the `type` attribute as written (`xsd:int`,
    `db:person`). `calculate` is true when the form computes the value (a `calculate`
    expression or a `jr:preload`) instead of asking for it. `control` is the body element that
    asks the question (`input`, `select`, ...), None for hidden/calculated leaves.
    """

    path: NodePath
    bind_type: str
    repeat: NodePath | None
    calculate: bool
    raw_type: str | None = None
    control: str | None = None
    hidden: bool = False

    @property
    def name(self) -> str:
        return self.path[-1]


@dataclass(frozen=True)
class XForm:
    """The parsed structure of one form definition; sequences are in document order."""

    form_id: str
    version: str | None
    title: str | None
    root: str
    fields: tuple[Field, ...]
    groups: tuple[NodePath, ...]
    repeats: tuple[NodePath, ...]
    # Bind nodesets that name no node of the primary instance (stale binds, other instances).
    unmatched_binds: tuple[str, ...] = ()

    def fields_in(self, repeat: NodePath | None) -> list[Field]:
        """The leaves whose innermost repeat is `repeat` (None: the leaves outside any repeat)."""
        return [f for f in self.fields if f.repeat == repeat]

    def enclosing_repeats(self, repeat: NodePath) -> tuple[NodePath, ...]:
        """The repeats around `repeat`, outermost first (empty for a top-level repeat)."""
        return tuple(r for r in self.repeats if len(r) < len(repeat) and repeat[: len(r)] == r)


@dataclass
class _Node:
    leaf: bool
    hidden: bool


@dataclass
class _Bind:
    raw_type: str | None = None
    calculate: bool = False


def parse_xform(xml: bytes | str) -> XForm:
    """Parse an XForm definition; raises XFormError for anything that is not a usable XForm."""
    return read_xform(xform_tree(xml))


def read_xform(html: Element) -> XForm:
    """The XForm of an already parsed tree (`xform_tree`), for readers that also need the
    tree itself; raises XFormError as `parse_xform` does."""
    head = child(html, "head")
    model = child(head, "model") if head is not None else None
    if head is None or model is None:
        raise XFormError("not an XForm: no <h:head><model>")
    instance = child(model, "instance")
    root = next(iter(instance), None) if instance is not None else None
    if root is None:
        raise XFormError("not an XForm: the model has no primary <instance> with a root element")
    form_id = root.get("id")
    if not form_id:
        raise XFormError(f"the instance root <{local_name(root.tag)}> has no id attribute")
    root_name = local_name(root.tag)

    nodes, templates = _walk_instance(root)
    body = child(html, "body")
    body_repeats, controls = walk_body(body, root_name)
    binds, unmatched = _read_binds(model, root_name, nodes)

    groups = tuple(path for path, node in nodes.items() if not node.leaf)
    # Document order, whichever of the two places declared the repeat; a repeat must hold
    # children (an element with none is a leaf, whatever the body says).
    declared = templates | set(body_repeats)
    repeats = tuple(path for path in groups if path in declared)
    fields = tuple(
        _field(path, node, binds.get(path, _Bind()), _control_tag(controls.get(path)), repeats)
        for path, node in nodes.items()
        if node.leaf
    )
    return XForm(
        form_id=form_id,
        version=root.get("version"),
        title=_text(child(head, "title")),
        root=root_name,
        fields=fields,
        groups=groups,
        repeats=repeats,
        unmatched_binds=tuple(unmatched),
    )


def xform_tree(xml: bytes | str) -> Element:
    """The XForm's XML tree, parsed safely (defusedxml, no DTD, bounded size): for
    `parse_xform` and readers of more than the instance, such as the data dictionary."""
    if not isinstance(xml, bytes | str):
        raise TypeError(f"XForm XML must be bytes or str, not {type(xml).__name__}")
    if len(xml) > MAX_XFORM_BYTES:
        raise XFormError(f"XForm larger than {MAX_XFORM_BYTES} bytes")
    try:
        return SafeET.fromstring(xml, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        raise XFormError(f"XForm refused: it declares a DTD or entities ({exc})") from exc
    except ParseError as exc:
        raise XFormError(f"malformed XForm XML: {exc}") from exc


def _text(element: Element | None) -> str | None:
    if element is None:
        return None
    return " ".join("".join(element.itertext()).split()) or None


def local_name(tag: str) -> str:
    """`{namespace}name` -> `name`: CHT's JSON keys carry no namespace."""
    return tag.rpartition("}")[2]


def child(element: Element | None, name: str) -> Element | None:
    """The first child element named `name` (any namespace); None for no element."""
    if element is None:
        return None
    return next((c for c in element if local_name(c.tag) == name), None)


def _walk_instance(root: Element) -> tuple[dict[NodePath, _Node], set[NodePath]]:
    """Every node under the root, keyed by path, in document order (iterative: no recursion
    limit to trip on hostile nesting). A repeat's template and default rows share one path,
    so they merge into one node."""
    nodes: dict[NodePath, _Node] = {}
    templates: set[NodePath] = set()
    stack: list[tuple[Element, NodePath, bool]] = [(c, (), False) for c in reversed(root)]
    while stack:
        element, parent, parent_hidden = stack.pop()
        path = (*parent, local_name(element.tag))
        if len(path) > MAX_DEPTH:
            raise XFormError(f"instance nested deeper than {MAX_DEPTH} levels")
        children = list(element)
        hidden = parent_hidden or element.get("tag") == "hidden"
        if _TEMPLATE_ATTR in element.attrib:
            templates.add(path)
        node = nodes.get(path)
        if node is None:
            if len(nodes) >= MAX_INSTANCE_NODES:
                raise XFormError(f"instance has more than {MAX_INSTANCE_NODES} nodes")
            nodes[path] = _Node(leaf=not children, hidden=hidden)
        else:
            node.leaf = node.leaf and not children
        stack.extend((c, path, hidden) for c in reversed(children))
    return nodes, templates


def walk_body(body: Element | None, root_name: str) -> tuple[list[NodePath], dict[NodePath, Element]]:
    """Repeat paths and the first control (body element) asking each question; refs may be
    relative to the enclosing group/repeat."""
    repeats: list[NodePath] = []
    controls: dict[NodePath, Element] = {}
    if body is None:
        return repeats, controls
    stack: list[tuple[Element, NodePath]] = [(c, ()) for c in reversed(body)]
    while stack:
        element, context = stack.pop()
        tag = local_name(element.tag)
        ref = element.get("nodeset") if tag == "repeat" else element.get("ref")
        path = (
            resolve_ref(ref, context, root_name)
            if ref and tag in {"group", "repeat", *CONTROL_TAGS}
            else None
        )
        if tag == "repeat" and path:
            repeats.append(path)
        elif tag in CONTROL_TAGS and path:
            controls.setdefault(path, element)
        inner = path if tag in {"group", "repeat"} and path is not None else context
        stack.extend((c, inner) for c in reversed(element))
    return repeats, controls


def _control_tag(control: Element | None) -> str | None:
    return local_name(control.tag) if control is not None else None


def _read_binds(
    model: Element, root_name: str, nodes: dict[NodePath, _Node]
) -> tuple[dict[NodePath, _Bind], list[str]]:
    binds: dict[NodePath, _Bind] = {}
    unmatched: list[str] = []
    for element in model:
        if local_name(element.tag) != "bind":
            continue
        nodeset = element.get("nodeset", "")
        path = resolve_ref(nodeset, (), root_name)
        if path is None or path not in nodes:
            unmatched.append(nodeset)
            continue
        bind = binds.setdefault(path, _Bind())
        # Several binds may target one node; the last explicit type wins, as in JavaRosa.
        if element.get("type"):
            bind.raw_type = element.get("type")
        bind.calculate = bind.calculate or "calculate" in element.attrib or _PRELOAD_ATTR in element.attrib
    return binds, unmatched


def resolve_ref(ref: str, context: NodePath, root_name: str) -> NodePath | None:
    """An XPath node reference -> a path below the root, or None when it points elsewhere
    (another instance, a function call, a different root)."""
    ref = re.sub(r"\[[^\]]*\]", "", ref).strip()
    if not ref or "(" in ref:
        return None
    steps = [_local_step(s) for s in ref.split("/")]
    if ref.startswith("/"):
        steps = [s for s in steps if s]
        if not steps or steps[0] != root_name:
            return None
        return _apply_steps((), steps[1:])
    return _apply_steps(context, steps)


def _local_step(step: str) -> str:
    return step.strip().rpartition(":")[2]


def _apply_steps(start: NodePath, steps: list[str]) -> NodePath | None:
    path = list(start)
    for step in steps:
        if step in ("", "."):
            continue
        if step == "..":
            if not path:
                return None
            path.pop()
        else:
            path.append(step)
        if len(path) > MAX_DEPTH:  # no instance node is deeper: it points nowhere
            return None
    return tuple(path) if path else None


def _field(
    path: NodePath, node: _Node, bind: _Bind, control: str | None, repeats: tuple[NodePath, ...]
) -> Field:
    return Field(
        path=path,
        bind_type=normalise_type(bind.raw_type),
        repeat=_innermost_repeat(path, repeats),
        calculate=bind.calculate,
        raw_type=bind.raw_type,
        control=control,
        hidden=node.hidden,
    )


def _innermost_repeat(path: NodePath, repeats: tuple[NodePath, ...]) -> NodePath | None:
    holding = [r for r in repeats if len(r) < len(path) and path[: len(r)] == r]
    return max(holding, key=len) if holding else None


def normalise_type(raw_type: str | None) -> str:
    """`xsd:int` -> `int`, `dateTime` -> `dateTime`, `db:person` -> `string` (a doc id),
    missing -> `string`; unknown types are kept as written (without namespace prefix)."""
    if not raw_type or not raw_type.strip():
        return "string"
    prefix, _, local = raw_type.strip().rpartition(":")
    if prefix == "db":
        return "string"
    return _TYPE_ALIASES.get(local.lower(), local)
