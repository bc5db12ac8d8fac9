"""The demo's XForms (package data in ``forms/``): parsed once, their form docs, and the
``fields`` of a report filled from answers by path, exactly as Enketo lays them out.
"""

from __future__ import annotations

import base64
import hashlib
import types

# The only XML parsed here is this package's own XForms (trusted data, no untrusted input).
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

from cht_assets.demo.base import Doc, make_rev

FORM_NAMES: tuple[str, ...] = (
    "pregnancy",
    "pregnancy_home_visit",
    "pregnancy_danger_sign",
    "pregnancy_danger_sign_follow_up",
    "delivery",
    "death_report",
    "undo_death_report",
    "pnc",
    "assessment",
    "immunization",
)
"""The demo's XForms: the default config's maternal and death forms, plus demo-only ones."""

_XF = "{http://www.w3.org/2002/xforms}"
_XH = "{http://www.w3.org/1999/xhtml}"
_JR_TEMPLATE = "{http://openrosa.org/javarosa}template"


def _local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


@dataclass(frozen=True)
class _Node:
    """One element of an XForm instance. ``key`` is its path inside its scope (root or repeat)."""

    name: str
    key: str
    children: tuple[_Node, ...] | None = None
    repeat: bool = False
    default: str = ""
    item_keys: frozenset[str] = frozenset()


def _build_nodes(element: ET.Element, prefix: str) -> tuple[tuple[_Node, ...], set[str]]:
    nodes: list[_Node] = []
    keys: set[str] = set()
    for child in element:
        name = _local_name(child.tag)
        key = prefix + name
        if len(child) == 0:
            nodes.append(_Node(name, key, default=(child.text or "").strip()))
            keys.add(key)
        elif child.get(_JR_TEMPLATE) is not None:
            sub, sub_keys = _build_nodes(child, "")
            nodes.append(_Node(name, key, sub, repeat=True, item_keys=frozenset(sub_keys)))
            keys.add(key)
        else:
            sub, sub_keys = _build_nodes(child, key + "/")
            nodes.append(_Node(name, key, sub))
            keys |= sub_keys
    return tuple(nodes), keys


def _hidden_paths(element: ET.Element, prefix: str) -> list[str]:
    paths: list[str] = []
    for child in element:
        path = prefix + _local_name(child.tag)
        if child.get("tag") == "hidden":
            paths.append(path)
        paths.extend(_hidden_paths(child, path + "."))
    return paths


def _fill_scope(
    nodes: tuple[_Node, ...], answers: Mapping[str, Any], keys: frozenset[str], where: str
) -> Doc:
    unknown = answers.keys() - keys
    if unknown:
        raise KeyError(f"{where}: not in the XForm instance: {sorted(unknown)}")
    return _fill(nodes, answers)


def _fill(nodes: tuple[_Node, ...], answers: Mapping[str, Any]) -> Doc:
    out: Doc = {}
    for node in nodes:
        if node.children is None:
            out[node.name] = answers.get(node.key, node.default)
        elif node.repeat:
            items = answers.get(node.key)
            if items:  # like CHT, a repeat with no instance leaves no key at all
                out[node.name] = [
                    _fill_scope(node.children, item, node.item_keys, node.key) for item in items
                ]
        else:
            out[node.name] = _fill(node.children, answers)
    return out


@dataclass(frozen=True)
class XForm:
    """A parsed XForm: what a form doc and the ``fields`` of its reports need."""

    internal_id: str
    title: str
    version: str
    xml: bytes
    sha256: str
    time_ms: int
    hidden_fields: tuple[str, ...]
    bind_types: Mapping[str, str]
    """``/data/group/leaf`` -> bind ``type`` (``int``, ``date``, ``select``, ...)."""
    repeat_paths: frozenset[str]
    """Instance paths of the repeats, ``/data/babies/baby``."""
    nodes: tuple[_Node, ...] = field(repr=False)
    keys: frozenset[str] = field(repr=False)

    @classmethod
    def parse(cls, xml: bytes) -> XForm:
        root = ET.fromstring(xml)
        head = root.find(f"{_XH}head")
        if head is None:
            raise ValueError("XForm without h:head")
        model = head.find(f"{_XF}model")
        instance = None if model is None else model.find(f"{_XF}instance")
        if model is None or instance is None or len(instance) == 0:
            raise ValueError("XForm without a primary instance")
        data = instance[0]
        version = data.get("version", "")
        nodes, keys = _build_nodes(data, "")
        binds = {
            bind.get("nodeset", ""): bind.get("type", "string")
            for bind in model.iter(f"{_XF}bind")
            if bind.get("type")
        }
        repeats = frozenset(r.get("nodeset", "") for r in root.iter(f"{_XF}repeat"))
        published = datetime.strptime(version, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
        return cls(
            internal_id=data.get("id", ""),
            title=(head.findtext(f"{_XH}title") or "").strip(),
            version=version,
            xml=xml,
            sha256=hashlib.sha256(xml).hexdigest(),
            time_ms=int(published.timestamp() * 1000),
            hidden_fields=tuple(_hidden_paths(data, "")),
            bind_types=types.MappingProxyType(binds),
            repeat_paths=repeats,
            nodes=nodes,
            keys=frozenset(keys),
        )

    def fill(self, answers: Mapping[str, Any]) -> Doc:
        """The report's ``fields``: every instance leaf, ``answers`` by path, else its default.

        ``answers`` maps ``group/leaf`` paths to strings and repeat paths (``babies/baby``) to a
        list of dicts keyed by paths relative to the repeat. Unknown paths raise ``KeyError``.
        """
        return _fill_scope(self.nodes, answers, self.keys, self.internal_id)


@cache
def _xforms() -> Mapping[str, XForm]:
    folder = resources.files(__package__ or "cht_assets.demo") / "forms"
    forms = {name: XForm.parse((folder / f"{name}.xml").read_bytes()) for name in FORM_NAMES}
    return types.MappingProxyType(forms)


def load_xforms() -> Mapping[str, XForm]:
    """The demo XForms by ``internalId`` (parsed once)."""
    return _xforms()


_FORM_META: dict[str, tuple[str, str]] = {
    "pregnancy": (
        "icon-pregnancy",
        "contact.type === 'person' && contact.sex === 'female' && ageInYears(contact) >= 12"
        " && ageInYears(contact) <= 49 && !summary.pregnant",
    ),
    "pregnancy_home_visit": ("icon-pregnancy", "contact.type === 'person' && summary.pregnant"),
    "pregnancy_danger_sign": ("icon-pregnancy-danger", "contact.type === 'person' && summary.pregnant"),
    "pregnancy_danger_sign_follow_up": ("icon-pregnancy-danger", "false"),
    "delivery": ("icon-delivery", "contact.type === 'person' && summary.pregnant"),
    "death_report": ("icon-death-general", "contact.type === 'person' && !contact.date_of_death"),
    "undo_death_report": ("icon-death-general", "contact.type === 'person' && contact.date_of_death"),
    "pnc": ("icon-mother-child", "contact.type === 'person' && summary.delivered_recently"),
    "assessment": ("icon-child", "contact.type === 'person' && ageInMonths(contact) < 60"),
    "immunization": ("icon-immunization", "contact.type === 'person' && ageInMonths(contact) < 24"),
}


def form_doc(seed: int, xform: XForm) -> Doc:
    """``form:<name>`` as cht-conf uploads it, with the XForm as an inline ``xml`` attachment."""
    doc_id = f"form:{xform.internal_id}"
    icon, expression = _FORM_META[xform.internal_id]
    return {
        "_id": doc_id,
        "_rev": make_rev(seed, doc_id, 1),
        "type": "form",
        "internalId": xform.internal_id,
        "title": xform.title,
        "translation_key": f"form.{xform.internal_id}.title",  # the title in words, per language
        "icon": icon,
        "context": {"person": True, "place": False, "expression": expression},
        "xmlVersion": {"time": xform.time_ms, "sha256": xform.sha256},
        "_attachments": {
            "xml": {
                "content_type": "application/xml",
                "data": base64.b64encode(xform.xml).decode("ascii"),
            }
        },
    }
