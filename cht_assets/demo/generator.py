"""Deterministic generator of a demo CHT deployment.

Pure: no network, no clock, no dagster. Everything derives from ``(seed, households)``; the same
pair always gives byte-identical documents, ``_rev`` values included.

One generation pass walks *units*, parents before children:

* the static unit: ``settings``, form definitions, ``shortcode-id-length``, the health
  facilities (``district_hospital``) with their in-charge nurse / supervisor user, outgoing
  messages;
* per CHW area: the ``health_center``, its CHW and ``user-settings``, a ``community_group``
  of the configurable hierarchy (``type: contact``), SMS reports, a monthly target, the CHW's
  telemetry / feedback and API log docs;
* then each household of that area: the ``clinic``, its members, their XForm reports
  (pregnancy -> delivery -> pnc, assessment and immunization of the under-fives), the babies
  created by delivery reports, and the Sentinel info docs.

Each unit has its own ``random.Random`` seeded from ``(seed, unit)``, so any unit can be rebuilt
alone (``mutations`` does that) and the stream needs memory for one unit only.

Revisions are deterministic too: ``rev_hash(seed, id, n)`` is the hash of revision ``n`` of a doc.
Docs are written with ``new_edits=false`` and the full ``_revisions`` history
(``Deployment.write_body``), exactly as CouchDB replication writes them; later rounds extend those
histories without having to read anything back, and writing the same round twice is a no-op.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import random
import types
import uuid

# The only XML parsed here is this package's own XForms (trusted data, no untrusted input).
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from functools import cache, cached_property
from importlib import resources
from typing import Any

Doc = dict[str, Any]

MEDIC = "medic"
SENTINEL = "medic-sentinel"
USERS_META = "medic-users-meta"
LOGS = "medic-logs"
DATABASES: tuple[str, ...] = (MEDIC, SENTINEL, USERS_META, LOGS)
"""Database suffixes, in the order the loader creates them (``medic`` is the prefix itself)."""

FORM_NAMES: tuple[str, ...] = ("pregnancy", "delivery", "pnc", "assessment", "immunization")
MUTATION_ROUNDS = 3
APP_VERSION = "4.6.1"

LOCAL_TZ = timezone(timedelta(hours=3))
TODAY = date(2024, 6, 30)
"""The deployment's "now": nothing is dated later (mutation rounds add a day per round)."""
WINDOW_START = date(2023, 1, 2)
"""First day with household registrations and reports."""

DAY_MS = 86_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_SLOTS_PER_HOUSEHOLD = 16
_SLOTS_PER_AREA = 8
_SLOTS_PER_FACILITY = 2


# --------------------------------------------------------------------------------------------
# time, ids, revisions, shortcodes


def local_ms(day: date, minute_of_day: int) -> int:
    """Epoch milliseconds of ``day`` at ``minute_of_day`` East Africa Time (UTC+3)."""
    return (day.toordinal() - _EPOCH_ORDINAL) * DAY_MS + (minute_of_day - 180) * 60_000


NOW_MS = local_ms(TODAY, 20 * 60)
"""Generation "now": 2024-06-30 20:00 EAT (reports are made between 07:30 and 18:00)."""


def iso_utc(ms: int) -> str:
    """``2024-03-01T07:15:00.000Z``"""
    moment = _EPOCH + timedelta(milliseconds=ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_local(ms: int) -> str:
    """``2024-03-01T10:15:00.000+03:00``: how Enketo stores a dateTime."""
    return (_EPOCH + timedelta(milliseconds=ms)).astimezone(LOCAL_TZ).isoformat(timespec="milliseconds")


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def rev_hash(seed: int, doc_id: str, generation: int, branch: str = "") -> str:
    """The 32-hex hash of revision ``generation`` of ``doc_id`` (``branch`` names a conflict)."""
    key = f"{seed}\x1f{doc_id}\x1f{generation}\x1f{branch}".encode()
    return hashlib.md5(key, usedforsecurity=False).hexdigest()


def make_rev(seed: int, doc_id: str, generation: int, branch: str = "") -> str:
    return f"{generation}-{rev_hash(seed, doc_id, generation, branch)}"


def rev_generation(rev: str) -> int:
    return int(rev.split("-", 1)[0])


def revisions(seed: int, doc_id: str, rev: str) -> dict[str, Any]:
    """``_revisions`` for ``rev``: its own hash, then the deterministic ancestors down to 1."""
    generation_text, top = rev.split("-", 1)
    generation = int(generation_text)
    ancestors = [rev_hash(seed, doc_id, n) for n in range(generation - 1, 0, -1)]
    return {"start": generation, "ids": [top, *ancestors]}


def check_digit(digits: str) -> str:
    """CHT's shortcode check digit: weights n+1 .. 2, sum mod 11, 10 counts as 0."""
    size = len(digits)
    total = sum(int(ch) * (size + 1 - i) for i, ch in enumerate(digits))
    remainder = total % 11
    return "0" if remainder == 10 else str(remainder)


@dataclass(frozen=True)
class _Shortcodes:
    """A bijection from slot numbers to unique, random-looking shortcodes of one length."""

    modulus: int
    low: int
    offset: int

    @classmethod
    def for_slots(cls, slots: int, seed: int) -> _Shortcodes:
        width = 4
        while 9 * 10 ** (width - 1) <= slots:
            width += 1
        modulus = 9 * 10 ** (width - 1)
        return cls(modulus, 10 ** (width - 1), seed % modulus)

    @property
    def length(self) -> int:
        return len(str(self.low)) + 1

    def code(self, slot: int) -> str:
        # 7919 is prime and the modulus only has the factors 2, 3 and 5: a permutation.
        body = str(self.low + (slot * 7919 + self.offset) % self.modulus)
        return body + check_digit(body)


def _lineage(ids: Sequence[str]) -> dict[str, Any] | None:
    """Minified parent chain ``{_id, parent: {_id, parent: ...}}`` from nearest to root."""
    node: dict[str, Any] | None = None
    for place_id in reversed(ids):
        node = {"_id": place_id} if node is None else {"_id": place_id, "parent": node}
    return node


def _dec(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}"


def _long_date(day: date) -> str:
    return f"{day.day} {day.strftime('%b')}, {day.year}"


def _years(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _months(born: date, on: date) -> int:
    return (on.year - born.year) * 12 + on.month - born.month - (on.day < born.day)


# --------------------------------------------------------------------------------------------
# XForms (package data) and their JSON ``fields`` layout

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
    "delivery": ("icon-delivery", "contact.type === 'person' && summary.pregnant"),
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


# --------------------------------------------------------------------------------------------
# names and vocabularies (invented for the demo)


def _words(text: str, separator: str | None = None) -> tuple[str, ...]:
    return tuple(text.split(separator))


_FEMALE = _words(
    "Amina Grace Wanjiru Achieng Faith Mercy Zawadi Neema Halima Esther Mary Joyce Nafula "
    "Akinyi Atieno Chebet Jepkoech Wairimu Njeri Rehema Imani Fatuma Saida Mwajuma Nekesa Auma "
    "Beatrice Caroline Lucy Purity Winnie Agnes Rose Sharon Eunice Hadija"
)
_MALE = _words(
    "Otieno Kamau Mwangi Juma Hassan Baraka Kiprono Omondi Wekesa Musa Daniel Peter Joseph "
    "Samuel John Brian Kevin Ibrahim Salim Ochieng Mutua Njoroge Kibet Wafula Barasa Kariuki "
    "Onyango Abdi Francis Moses Dennis Erick Collins Stephen Isaac Hamisi"
)
_FAMILY = _words(
    "Otieno Kamau Mwangi Wanjiku Odhiambo Mutua Kiprop Chepkemoi Njoroge Wekesa Barasa Achieng "
    "Onyango Mohamed Hassan Omondi Kariuki Kiptoo Nyambura Wafula Juma Ali Ndungu Macharia "
    "Owino Makokha Simiyu Korir Langat Mwende Muthoni Okello Ouma Rotich"
)
_TOWNS = _words(
    "Kisumu|Nakuru|Eldoret|Machakos|Kitui|Embu|Nyeri|Kakamega|Bungoma|Kericho|Homa Bay|Migori|"
    "Siaya|Busia|Voi|Malindi|Garissa|Isiolo|Meru|Nanyuki|Naivasha|Narok|Kajiado|Thika|Muranga|"
    "Kilifi|Lamu|Lodwar|Marsabit|Wajir|Kitale|Bomet|Kerugoya|Chuka|Makueni|Mumias",
    "|",
)
_GROUP_WORDS = _words("Umoja Tumaini Upendo Amani Baraka Neema Faraja Jamii Mwangaza Tujenge Imara Shangilia")
_GROUP_KINDS = ("Women Savings Group", "Mothers Support Group", "Youth Group", "Farmers Group")

# immunization schedule: (age in days when due, vaccines)
_SCHEDULE: tuple[tuple[int, tuple[str, ...]], ...] = (
    (0, ("bcg", "opv0")),
    (42, ("penta1", "opv1", "pcv1", "rota1")),
    (70, ("penta2", "opv2", "pcv2", "rota2")),
    (98, ("penta3", "opv3", "pcv3", "ipv")),
    (270, ("mr1",)),
    (540, ("mr2",)),
)
_VACCINE_SITE = {
    "bcg": "left_arm",
    "opv": "oral",
    "rota": "oral",
    "penta": "left_thigh",
    "pcv": "right_thigh",
    "ipv": "right_thigh",
    "mr": "right_arm",
}

_TELEMETRY_METRICS: tuple[tuple[str, int], ...] = (
    ("boot_time", 2400),
    ("boot_time:1:to_first_code_execution", 480),
    ("boot_time:2:to_bootstrap", 1300),
    ("boot_time:3:to_angular_bootstrap", 60),
    ("search:contacts", 180),
    ("search:reports", 120),
    ("rules-engine:initialize", 30),
    ("rules-engine:tasks:all-contacts", 220),
    ("rules-engine:targets", 40),
    ("tasks:load", 250),
    ("analytics:targets:load", 90),
    ("replication:medic:from:docs", 12),
    ("replication:medic:to:docs", 4),
)

_CONTACT_TYPES: list[Doc] = [
    {
        "id": "district_hospital",
        "name_key": "contact.type.district_hospital",
        "group_key": "contact.type.district_hospital.plural",
        "create_key": "contact.type.district_hospital.new",
        "edit_key": "contact.type.place.edit",
        "icon": "medic-district-hospital",
        "create_form": "form:contact:district_hospital:create",
        "edit_form": "form:contact:district_hospital:edit",
    },
    {
        "id": "health_center",
        "name_key": "contact.type.health_center",
        "group_key": "contact.type.health_center.plural",
        "create_key": "contact.type.health_center.new",
        "edit_key": "contact.type.place.edit",
        "parents": ["district_hospital"],
        "icon": "medic-health-center",
        "create_form": "form:contact:health_center:create",
        "edit_form": "form:contact:health_center:edit",
    },
    {
        "id": "clinic",
        "name_key": "contact.type.clinic",
        "group_key": "contact.type.clinic.plural",
        "create_key": "contact.type.clinic.new",
        "edit_key": "contact.type.place.edit",
        "parents": ["health_center"],
        "icon": "medic-clinic",
        "create_form": "form:contact:clinic:create",
        "edit_form": "form:contact:clinic:edit",
        "count_visits": True,
    },
    {
        "id": "person",
        "name_key": "contact.type.person",
        "group_key": "contact.type.person.plural",
        "create_key": "contact.type.person.new",
        "edit_key": "contact.type.person.edit",
        "primary_contact_key": "clinic.field.contact",
        "parents": ["district_hospital", "health_center", "clinic"],
        "icon": "medic-person",
        "create_form": "form:contact:person:create",
        "edit_form": "form:contact:person:edit",
        "person": True,
    },
    {
        "id": "community_group",
        "name_key": "contact.type.community_group",
        "group_key": "contact.type.community_group.plural",
        "create_key": "contact.type.community_group.new",
        "edit_key": "contact.type.place.edit",
        "parents": ["health_center"],
        "icon": "medic-family",
        "person": False,
    },
    {
        "id": "group_member",
        "name_key": "contact.type.group_member",
        "group_key": "contact.type.group_member.plural",
        "create_key": "contact.type.group_member.new",
        "edit_key": "contact.type.person.edit",
        "parents": ["community_group"],
        "icon": "medic-person",
        "person": True,
    },
]

_SMS_FORMS: dict[str, Doc] = {
    "P": {
        "meta": {"code": "P", "icon": "icon-pregnancy", "label": {"en": "Pregnancy registration"}},
        "fields": {
            "last_menstrual_period": {
                "labels": {"short": {"en": "LMP"}, "tiny": {"en": "LMP"}},
                "position": 0,
                "type": "integer",
                "length": [1, 2],
                "range": [0, 40],
                "required": True,
            },
            "patient_name": {
                "labels": {"short": {"en": "Name"}, "tiny": {"en": "N"}},
                "position": 1,
                "type": "string",
                "length": [1, 30],
                "required": True,
            },
        },
        "public_form": False,
        "use_sentinel": True,
    },
    "V": {
        "meta": {"code": "V", "icon": "icon-pregnancy", "label": {"en": "ANC visit"}},
        "fields": {
            "patient_id": {
                "labels": {"short": {"en": "Patient ID"}, "tiny": {"en": "ID"}},
                "position": 0,
                "type": "string",
                "length": [5, 13],
                "required": True,
            }
        },
        "public_form": False,
        "use_sentinel": True,
    },
}


# --------------------------------------------------------------------------------------------
# the hierarchy (small: one record per facility and per CHW area)


@dataclass(frozen=True)
class _Person:
    id: str
    name: str
    sex: str
    dob: date
    phone: str
    code: str
    parents: tuple[str, ...]
    """Ancestor place ids, nearest first."""
    reported_ms: int


@dataclass(frozen=True)
class _Facility:
    index: int
    id: str
    name: str
    code: str
    geo: tuple[float, float]
    created: date
    head: _Person
    username: str


@dataclass(frozen=True)
class _Area:
    index: int
    id: str
    name: str
    code: str
    geo: tuple[float, float]
    created: date
    chw: _Person
    username: str
    facility: _Facility
    households: range

    @property
    def parents(self) -> tuple[str, str]:
        """Lineage of anything directly under the area: (area, facility)."""
        return (self.id, self.facility.id)


@dataclass(frozen=True)
class _World:
    """Shortcode slots: 16 per household, then 8 per area, then 2 per facility."""

    households: int
    facilities: tuple[_Facility, ...]
    areas: tuple[_Area, ...]
    shortcodes: _Shortcodes

    def household_code(self, household: int, slot: int) -> str:
        return self.shortcodes.code(household * _SLOTS_PER_HOUSEHOLD + slot)

    def area_slot(self, area: int, k: int) -> int:
        return self.households * _SLOTS_PER_HOUSEHOLD + area * _SLOTS_PER_AREA + k


def _phone(rng: random.Random) -> str:
    return f"+2547{rng.randrange(10**8):08d}"


def _build_world(seed: int, households: int) -> _World:
    n_areas = max(2, -(-households // 20))
    n_facilities = max(1, -(-n_areas // 10))
    area_base = households * _SLOTS_PER_HOUSEHOLD
    facility_base = area_base + n_areas * _SLOTS_PER_AREA
    codes = _Shortcodes.for_slots(facility_base + n_facilities * _SLOTS_PER_FACILITY, seed)
    rng = random.Random(f"{seed}:hierarchy")
    facilities = tuple(_build_facility(rng, codes, facility_base, index) for index in range(n_facilities))
    areas = []
    for index in range(n_areas):
        facility = facilities[index * n_facilities // n_areas]
        first = (index * households + n_areas - 1) // n_areas
        stop = ((index + 1) * households + n_areas - 1) // n_areas
        slot = area_base + index * _SLOTS_PER_AREA
        areas.append(_build_area(rng, codes, slot, index, facility, range(first, stop)))
    return _World(households, facilities, tuple(areas), codes)


def _build_facility(rng: random.Random, codes: _Shortcodes, base: int, index: int) -> _Facility:
    town = _TOWNS[index % len(_TOWNS)]
    if index >= len(_TOWNS):
        town = f"{town} {index // len(_TOWNS) + 1}"
    created = date(2022, 10, 3) + timedelta(days=rng.randint(0, 20))
    facility_id = _uuid(rng)
    sex = rng.choice(("female", "female", "male"))
    first = rng.choice(_FEMALE if sex == "female" else _MALE)
    head = _Person(
        id=_uuid(rng),
        name=f"{first} {rng.choice(_FAMILY)}",
        sex=sex,
        dob=date(1970 + rng.randint(0, 22), rng.randint(1, 12), rng.randint(1, 28)),
        phone=_phone(rng),
        code=codes.code(base + index * _SLOTS_PER_FACILITY + 1),
        parents=(facility_id,),
        reported_ms=local_ms(created, 9 * 60 + rng.randint(0, 400)),
    )
    return _Facility(
        index=index,
        id=facility_id,
        name=f"{town} Health Facility",
        code=codes.code(base + index * _SLOTS_PER_FACILITY),
        geo=(round(rng.uniform(-1.5, 1.0), 4), round(rng.uniform(34.5, 37.5), 4)),
        created=created,
        head=head,
        username=f"sup.{first.lower()}{index + 1}",
    )


def _build_area(
    rng: random.Random,
    codes: _Shortcodes,
    slot: int,
    index: int,
    facility: _Facility,
    households: range,
) -> _Area:
    created = facility.created + timedelta(days=rng.randint(10, 50))
    area_id = _uuid(rng)
    first = rng.choice(_FEMALE) if rng.random() < 0.85 else rng.choice(_MALE)
    sex = "female" if first in _FEMALE else "male"
    name = f"{first} {rng.choice(_FAMILY)}"
    chw = _Person(
        id=_uuid(rng),
        name=name,
        sex=sex,
        dob=date(1975 + rng.randint(0, 25), rng.randint(1, 12), rng.randint(1, 28)),
        phone=_phone(rng),
        code=codes.code(slot + 1),
        parents=(area_id, facility.id),
        reported_ms=local_ms(created, 9 * 60 + rng.randint(0, 400)),
    )
    lat, lon = facility.geo
    return _Area(
        index=index,
        id=area_id,
        name=f"{name}'s Area",
        code=codes.code(slot),
        geo=(round(lat + rng.uniform(-0.15, 0.15), 4), round(lon + rng.uniform(-0.15, 0.15), 4)),
        created=created,
        chw=chw,
        username=f"{first.lower()}{index + 1}",
        facility=facility,
        households=households,
    )


# --------------------------------------------------------------------------------------------
# shared document builders


def _person_doc(
    seed: int,
    person: _Person,
    *,
    with_code: bool = True,
    rev_gen: int | None = None,
    extra: Doc | None = None,
) -> Doc:
    """A ``person``. With ``with_code`` Sentinel has already added ``patient_id`` (rev 2)."""
    generation = rev_gen if rev_gen is not None else (2 if with_code else 1)
    doc: Doc = {
        "_id": person.id,
        "_rev": make_rev(seed, person.id, generation),
        "type": "person",
        "name": person.name,
        "sex": person.sex,
        "date_of_birth": person.dob.isoformat(),
        "phone": person.phone,
        "reported_date": person.reported_ms,
        "parent": _lineage(person.parents),
    }
    if extra:
        doc.update(extra)
    if with_code:
        doc["patient_id"] = person.code
    return doc


def _contact_ref(person: _Person) -> Doc:
    return {"_id": person.id, "parent": _lineage(person.parents)}


def _fake_seq(rng: random.Random) -> str:
    tail = base64.urlsafe_b64encode(rng.randbytes(45)).decode().rstrip("=")
    return f"{rng.randint(1, 900_000)}-g1AAAA{tail}"


def _info_doc(seed: int, rng: random.Random, doc: Doc, transitions: list[str] | None = None) -> Doc:
    """Sentinel's ``<id>-info`` doc for a medic doc (``transitions`` that ran on it, if any)."""
    first_seen = min(doc["reported_date"] + rng.randint(20_000, 3 * 3_600_000), NOW_MS)
    info_id = f"{doc['_id']}-info"
    info: Doc = {
        "_id": info_id,
        "_rev": make_rev(seed, info_id, 2 if transitions else 1),
        "type": "info",
        "doc_id": doc["_id"],
        "initial_replication_date": iso_utc(first_seen),
        "latest_replication_date": iso_utc(first_seen),
    }
    if transitions:
        run = iso_utc(first_seen + rng.randint(200, 5_000))
        seq = _fake_seq(rng)
        info["transitions"] = {
            name: {"last_rev": 1, "seq": seq, "ok": True, "run_date": run} for name in transitions
        }
    return info


def _geopoint(rng: random.Random, lat: float, lon: float) -> str:
    return (
        f"{lat + rng.uniform(-3e-4, 3e-4):.6f} {lon + rng.uniform(-3e-4, 3e-4):.6f} "
        f"{rng.uniform(1100, 1900):.1f} {rng.uniform(3, 25):.1f}"
    )


def _visit_ms(rng: random.Random, day: date) -> int:
    return local_ms(day, rng.randint(7 * 60 + 30, 18 * 60))


# --------------------------------------------------------------------------------------------
# the static unit and the area units


def _settings_doc(seed: int) -> Doc:
    return {
        "_id": "settings",
        "_rev": make_rev(seed, "settings", 3),
        "settings": {
            "locale": "en",
            "locale_outgoing": "en",
            "date_format": "D MMM, YYYY",
            "reported_date_format": "DD-MMM-YYYY HH:mm:ss",
            "default_country_code": 254,
            "forms_only_mode": False,
            "transitions": {
                "generate_shortcode_on_contacts": True,
                "registration": True,
                "accept_patient_reports": True,
                "update_clinics": True,
                "default_responses": True,
                "death_reporting": False,
                "muting": False,
            },
            "roles": {
                "chw": {"name": "usertype.chw", "offline": True},
                "chw_supervisor": {"name": "usertype.chw-supervisor", "offline": True},
                "program_officer": {"name": "usertype.program-officer"},
            },
            "contact_types": copy.deepcopy(_CONTACT_TYPES),
            "forms": copy.deepcopy(_SMS_FORMS),
        },
    }


def _user_settings(
    seed: int,
    username: str,
    person: _Person | None,
    roles: list[str],
    rev_gen: int = 1,
    *,
    facility_id: str | None = None,
    language: str = "en",
    known: bool = True,
) -> Doc:
    doc_id = f"org.couchdb.user:{username}"
    doc: Doc = {
        "_id": doc_id,
        "_rev": make_rev(seed, doc_id, rev_gen),
        "type": "user-settings",
        "name": username,
        "roles": roles,
        "language": language,
        "known": known,
    }
    if person is not None:
        doc.update(
            fullname=person.name,
            phone=person.phone,
            contact_id=person.id,
            facility_id=facility_id or person.parents[0],
        )
    return doc


def _static_unit(seed: int, world: _World) -> dict[str, list[Doc]]:
    rng = random.Random(f"{seed}:static")
    medic: list[Doc] = [_settings_doc(seed)]
    medic += [form_doc(seed, xform) for xform in load_xforms().values()]
    medic.append(
        {
            "_id": "shortcode-id-length",
            "_rev": make_rev(seed, "shortcode-id-length", 1),
            "current_length": world.shortcodes.length,
        }
    )
    medic.append(_user_settings(seed, "admin", None, ["_admin"]))
    sentinel: list[Doc] = []
    logs: list[Doc] = []
    for facility in world.facilities:
        place = _facility_doc(seed, facility)
        head = _person_doc(seed, facility.head, extra={"role": "chw_supervisor"})
        medic += [place, head]
        medic.append(_user_settings(seed, facility.username, facility.head, ["chw_supervisor"], 2))
        sentinel.append(_info_doc(seed, rng, place, ["generate_shortcode_on_contacts"]))
        sentinel.append(_info_doc(seed, rng, head, ["generate_shortcode_on_contacts"]))
        logs.append(_connected_user(seed, rng, facility.username))
    medic += [_outgoing_message(seed, rng, world, facility) for facility in world.facilities]
    return {MEDIC: medic, SENTINEL: sentinel, USERS_META: [_legacy_feedback(seed)], LOGS: logs}


def _facility_doc(seed: int, facility: _Facility) -> Doc:
    return {
        "_id": facility.id,
        "_rev": make_rev(seed, facility.id, 2),
        "type": "district_hospital",
        "name": facility.name,
        "is_name_generated": "false",
        "contact": _contact_ref(facility.head),
        "reported_date": local_ms(facility.created, 9 * 60),
        "place_id": facility.code,
        "external_id": f"MFL-{10000 + facility.index * 37}",
    }


def _outgoing_message(seed: int, rng: random.Random, world: _World, facility: _Facility) -> Doc:
    area = next(a for a in world.areas if a.facility is facility)
    sent = local_ms(TODAY - timedelta(days=rng.randint(3, 40)), rng.randint(8 * 60, 16 * 60))
    doc_id = _uuid(rng)
    history = [
        {"state": "pending", "timestamp": iso_utc(sent)},
        {"state": "sent", "timestamp": iso_utc(sent + rng.randint(20_000, 90_000))},
        {"state": "delivered", "timestamp": iso_utc(sent + rng.randint(100_000, 300_000))},
    ]
    message = {
        "from": facility.head.phone,
        "sent_by": facility.username,
        "to": area.chw.phone,
        "contact": _contact_ref(area.chw),
        "message": f"Reminder: monthly CHW meeting at {facility.name} on Friday at 10am.",
        "uuid": _uuid(rng),
    }
    return {
        "_id": doc_id,
        "_rev": make_rev(seed, doc_id, 2),
        "type": "data_record",
        "kujua_message": True,
        "form": None,
        "errors": [],
        "from": facility.head.phone,
        "sent_by": facility.username,
        "reported_date": sent,
        "tasks": [{"messages": [message], "state": "delivered", "state_history": history}],
    }


def _connected_user(seed: int, rng: random.Random, username: str, round_no: int = 0) -> Doc:
    doc_id = f"connected-user-{username}"
    last = NOW_MS + round_no * DAY_MS - rng.randint(60_000, 4 * 86_400_000)
    return {
        "_id": doc_id,
        "_rev": make_rev(seed, doc_id, 1 + round_no),
        "user": username,
        "timestamp": last,
    }


def _legacy_feedback(seed: int) -> Doc:
    """A pre-3.x style feedback doc whose ``info`` is a plain string."""
    when = local_ms(WINDOW_START + timedelta(days=40), 11 * 60 + 3)
    doc_id = f"feedback-{iso_utc(when)}-{uuid.UUID(int=seed % 2**128, version=4)}"
    return {
        "_id": doc_id,
        "_rev": make_rev(seed, doc_id, 1),
        "type": "feedback",
        "meta": {
            "time": iso_utc(when),
            "user": {"name": "admin"},
            "url": "https://cht.example.org/#/reports",
            "version": "3.17.2",
            "source": "manual",
        },
        "info": "Reports list does not refresh after submitting a form",
        "log": [],
    }


class _AreaUnit:
    """Docs attached to one CHW area (everything but its households)."""

    def __init__(self, seed: int, world: _World, area: _Area) -> None:
        self.seed = seed
        self.world = world
        self.area = area
        self.rng = random.Random(f"{seed}:area:{area.index}")
        self.medic: list[Doc] = []
        self.sentinel: list[Doc] = []
        self.users_meta: list[Doc] = []
        self.logs: list[Doc] = []

    def build(self) -> dict[str, list[Doc]]:
        seed, area, rng = self.seed, self.area, self.rng
        place = self._area_doc()
        chw = _person_doc(seed, area.chw, extra={"role": "chw"})
        self._add(place, ["generate_shortcode_on_contacts"] if "place_id" in place else None)
        self._add(chw, ["generate_shortcode_on_contacts"])
        language = "sw" if rng.random() < 0.3 else "en"
        known = rng.random() < 0.9  # False until the user first logs in
        self.medic.append(
            _user_settings(seed, area.username, area.chw, ["chw"], language=language, known=known)
        )
        if rng.random() < 0.35:
            self._community_group()
        self._sms_reports()
        self.medic.append(self._target())
        self._telemetry()
        if rng.random() < 0.25:
            self._feedback()
        self.logs.append(_connected_user(seed, rng, area.username))
        self.logs.append(self._replication_count())
        return {
            MEDIC: self.medic,
            SENTINEL: self.sentinel,
            USERS_META: self.users_meta,
            LOGS: self.logs,
        }

    def _add(self, doc: Doc, transitions: list[str] | None = None) -> None:
        self.medic.append(doc)
        self.sentinel.append(_info_doc(self.seed, self.rng, doc, transitions))

    def _area_doc(self) -> Doc:
        area = self.area
        with_code = self.rng.random() < 0.8
        doc: Doc = {
            "_id": area.id,
            "_rev": make_rev(self.seed, area.id, 2 if with_code else 1),
            "type": "health_center",
            "name": area.name,
            "is_name_generated": "true",
            "contact": _contact_ref(area.chw),
            "parent": _lineage((area.facility.id,)),
            "reported_date": local_ms(area.created, 10 * 60),
        }
        if with_code:
            doc["place_id"] = area.code
        return doc

    def _community_group(self) -> None:
        seed, area, rng = self.seed, self.area, self.rng
        group_id = _uuid(rng)
        created = area.created + timedelta(days=rng.randint(30, 200))
        parents = (group_id, *area.parents)
        members = []
        for k in range(rng.randint(2, 4)):
            sex = "female" if rng.random() < 0.8 else "male"
            members.append(
                _Person(
                    id=_uuid(rng),
                    name=f"{rng.choice(_FEMALE if sex == 'female' else _MALE)} {rng.choice(_FAMILY)}",
                    sex=sex,
                    dob=date(1965 + rng.randint(0, 40), rng.randint(1, 12), rng.randint(1, 28)),
                    phone=_phone(rng),
                    code=self.world.shortcodes.code(self._slot(3 + k)),
                    parents=parents,
                    reported_ms=local_ms(created, 11 * 60 + k),
                )
            )
        group: Doc = {
            "_id": group_id,
            "_rev": make_rev(seed, group_id, 2),
            "type": "contact",
            "contact_type": "community_group",
            "name": f"{rng.choice(_GROUP_WORDS)} {rng.choice(_GROUP_KINDS)}",
            "contact": _contact_ref(members[0]),
            "parent": _lineage(area.parents),
            "reported_date": local_ms(created, 11 * 60),
            "place_id": self.world.shortcodes.code(self._slot(2)),
        }
        self._add(group, ["generate_shortcode_on_contacts"])
        for member in members:
            doc = _person_doc(seed, member)
            doc["type"] = "contact"
            doc["contact_type"] = "group_member"
            self._add(doc, ["generate_shortcode_on_contacts"])

    def _slot(self, k: int) -> int:
        return self.world.area_slot(self.area.index, k)

    # -- SMS -----------------------------------------------------------------------------------

    def _sms_reports(self) -> None:
        rng = self.rng
        if rng.random() < 0.15:
            self._sms_registration()
        if rng.random() < 0.05:
            self._sms_unknown_patient()
        if rng.random() < 0.08:
            self._sms_free_text()

    def _sms_base(self, when: int, message: str, form: str | None, sender: str) -> Doc:
        rng = self.rng
        doc_id = _uuid(rng)
        sms: Doc = {
            "type": "sms_message",
            "message": message,
            "from": sender,
            "locale": "en",
            "gateway_ref": _uuid(rng),
            "reported_date": when,
        }
        if form:
            sms["form"] = form
        doc: Doc = {
            "_id": doc_id,
            "_rev": make_rev(self.seed, doc_id, 2 if form else 1),
            "type": "data_record",
            "from": sender,
            "errors": [],
            "tasks": [],
            "fields": {},
            "reported_date": when,
            "sms_message": sms,
        }
        if form:
            doc["form"] = form
        return doc

    def _task(self, to: str, message: str, when: int, state: str = "sent") -> Doc:
        history = [{"state": "pending", "timestamp": iso_utc(when + 2_000)}]
        if state != "pending":
            history.append({"state": state, "timestamp": iso_utc(when + 45_000)})
        return {
            "messages": [{"to": to, "message": message, "uuid": _uuid(self.rng)}],
            "state": state,
            "state_details": None,
            "gateway_ref": _uuid(self.rng),
            "state_history": history,
        }

    def _sms_registration(self) -> None:
        seed, area, rng = self.seed, self.area, self.rng
        day = TODAY - timedelta(days=rng.randint(20, 400))
        when = local_ms(day, rng.randint(8 * 60, 17 * 60))
        weeks = rng.randint(6, 24)
        lmp = day - timedelta(weeks=weeks)
        edd = lmp + timedelta(days=280)
        first = rng.choice(_FEMALE)
        chw = area.chw
        report = self._sms_base(when, f"1!P!{weeks}#{first}", "P", chw.phone)
        code = self.world.shortcodes.code(self._slot(7))
        report["fields"] = {"last_menstrual_period": weeks, "patient_name": first}
        report["contact"] = _contact_ref(chw)
        report["patient_id"] = code
        report["lmp_date"] = f"{lmp.isoformat()}T00:00:00.000Z"
        report["expected_date"] = f"{edd.isoformat()}T00:00:00.000Z"
        report["tasks"] = [
            self._task(
                chw.phone,
                f"Thank you for registering {first}. Their pregnancy ID is {code}, "
                f"and EDD is {_long_date(edd)}",
                when,
            )
        ]
        report["scheduled_tasks"] = self._anc_reminders(first, code, lmp)
        patient = _Person(
            id=_uuid(rng),
            name=first,
            sex="female",
            dob=day - timedelta(days=365 * 24),
            phone="",
            code=code,
            parents=area.parents,
            reported_ms=when + 1_500,
        )
        # created by Sentinel's registration transition, shortcode included: a single revision
        patient_doc = _person_doc(
            seed, patient, rev_gen=1, extra={"created_by": chw.id, "source_id": report["_id"]}
        )
        del patient_doc["date_of_birth"], patient_doc["phone"]
        self._add(report, ["update_clinics", "registration"])
        self._add(patient_doc)
        if rng.random() < 0.7:
            self._sms_visit(report, first, code, day)

    def _anc_reminders(self, name: str, code: str, lmp: date) -> list[Doc]:
        tasks = []
        for week in (12, 16, 20):
            due = lmp + timedelta(weeks=week)
            state = "sent" if due < TODAY else "scheduled"
            tasks.append(
                {
                    "due": f"{due.isoformat()}T08:00:00.000Z",
                    "group": week // 4,
                    "type": "ANC Reminders LMP",
                    "message_key": "messages.anc.reminder",
                    "messages": [
                        {
                            "to": self.area.chw.phone,
                            "message": f"Please remind {name} ({code}) to visit the health "
                            f'facility for ANC this week. Reply "V {code}" when she does.',
                            "uuid": _uuid(self.rng),
                        }
                    ],
                    "state": state,
                    "state_history": [{"state": state, "timestamp": iso_utc(local_ms(due, 8 * 60))}],
                }
            )
        return tasks

    def _sms_visit(self, registration: Doc, name: str, code: str, day: date) -> None:
        visit_day = min(TODAY, day + timedelta(days=self.rng.randint(20, 60)))
        when = local_ms(visit_day, self.rng.randint(8 * 60, 17 * 60))
        chw = self.area.chw
        doc = self._sms_base(when, f"V {code}", "V", chw.phone)
        doc["fields"] = {"patient_id": code}
        doc["contact"] = _contact_ref(chw)
        doc["patient_id"] = code
        doc["registration_id"] = registration["_id"]
        doc["tasks"] = [self._task(chw.phone, f"Thank you, ANC visit of {name} recorded.", when)]
        self._add(doc, ["update_clinics", "accept_patient_reports"])

    def _sms_unknown_patient(self) -> None:
        when = local_ms(TODAY - timedelta(days=self.rng.randint(1, 300)), 13 * 60)
        sender = _phone(self.rng)
        doc = self._sms_base(when, "V 99999", "V", sender)
        doc["fields"] = {"patient_id": "99999"}
        doc["errors"] = [
            {"code": "sys.facility_not_found", "message": "Facility not found."},
            {"code": "registration_not_found", "message": 'No patient with ID "99999" was found.'},
        ]
        doc["tasks"] = [self._task(sender, 'No patient with ID "99999" was found.', when, state="pending")]
        self._add(doc, ["update_clinics", "accept_patient_reports"])

    def _sms_free_text(self) -> None:
        when = local_ms(TODAY - timedelta(days=self.rng.randint(1, 300)), 15 * 60)
        doc = self._sms_base(when, "Is the health post open on Saturday?", None, self.area.chw.phone)
        doc["contact"] = _contact_ref(self.area.chw)
        self._add(doc)

    # -- users-meta, logs, targets --------------------------------------------------------------

    def _target(self) -> Doc:
        area, rng = self.area, self.rng
        period = "2024-06"
        doc_id = f"target~{period}~{area.chw.id}~org.couchdb.user:{area.username}"
        visits = rng.randint(10, 40)
        households = len(area.households)
        return {
            "_id": doc_id,
            "_rev": make_rev(self.seed, doc_id, rng.randint(2, 9)),
            "type": "target",
            "user": f"org.couchdb.user:{area.username}",
            "owner": area.chw.id,
            "reporting_period": period,
            "updated_date": NOW_MS - rng.randint(0, 3) * DAY_MS,
            "targets": [
                {"id": "households-registered", "value": {"pass": households, "total": households}},
                {"id": "assessments-this-month", "value": {"pass": visits, "total": visits}},
                {
                    "id": "facility-deliveries",
                    "value": {"pass": rng.randint(0, 3), "total": 3, "percent": 0},
                },
            ],
        }

    def _telemetry(self) -> None:
        rng = self.rng
        devices = [_uuid(rng) for _ in range(1 if rng.random() < 0.9 else 2)]
        days = sorted(rng.sample(range(1, 46), rng.randint(8, 30)))
        device_info = self._device(rng)
        for offset in days:
            day = TODAY - timedelta(days=offset)
            self.users_meta.append(self._telemetry_doc(day, rng.choice(devices), device_info))

    def _device(self, rng: random.Random) -> Doc:
        model, android, api = rng.choice(
            (
                ("SM-A135F", "12", 31),
                ("TECNO KG5", "11", 30),
                ("Nokia C21", "11", 30),
                ("Redmi 9A", "10", 29),
                ("SM-A032F", "13", 33),
            )
        )
        ram = rng.choice((2, 3, 4))
        return {
            "userAgent": f"Mozilla/5.0 (Linux; Android {android}; {model} Build/RP1A; wv) "
            "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/120.0.6099.144 "
            "Mobile Safari/537.36 org.medicmobile.webapp.mobile/v1.3.1",
            "hardwareConcurrency": rng.choice((4, 8)),
            "screen": {"width": 720, "height": rng.choice((1465, 1520, 1600))},
            "deviceInfo": {
                "app": {
                    "version": "v1.3.1",
                    "packageName": "org.medicmobile.webapp.mobile",
                    "versionCode": 1301,
                },
                "software": {"androidVersion": android, "osApiLevel": api, "osVersion": api},
                "hardware": {
                    "manufacturer": model.split(" ")[0].split("-")[0],
                    "model": model,
                    "hardwareConcurrency": 8,
                    "memory": {
                        "totalMemory": ram * 1_000_000_000,
                        "availMem": ram * 300_000_000,
                    },
                },
                "storage": {"free": rng.randint(1, 20) * 10**9, "total": 32 * 10**9},
                "network": {"upSpeed": rng.randint(500, 9000), "downSpeed": rng.randint(800, 20000)},
            },
        }

    def _telemetry_doc(self, day: date, device: str, device_info: Doc) -> Doc:
        rng, area = self.rng, self.area
        doc_id = f"telemetry-{day.year}-{day.month}-{day.day}-{area.username}-{device}"
        metrics = {}
        for name, typical in _TELEMETRY_METRICS:
            if rng.random() < 0.25:
                continue
            values = [max(0, int(rng.lognormvariate(0, 0.5) * typical)) for _ in range(rng.randint(1, 6))]
            metrics[name] = {
                "min": min(values),
                "max": max(values),
                "sum": sum(values),
                "count": len(values),
                "sumsqr": sum(v * v for v in values),
            }
        form_revs = {name: make_rev(self.seed, f"form:{name}", 1) for name in FORM_NAMES}
        docs = len(area.households) * 18 + rng.randint(0, 50)
        return {
            "_id": doc_id,
            "_rev": make_rev(self.seed, doc_id, 1),
            "type": "telemetry",
            "metadata": {
                "year": day.year,
                "month": day.month,
                "day": day.day,
                "user": area.username,
                "deviceId": device,
                "versions": {
                    "app": APP_VERSION,
                    "forms": form_revs,
                    "settings": make_rev(self.seed, "settings", 3),
                },
            },
            "metrics": metrics,
            "device": copy.deepcopy(device_info),
            "dbInfo": {
                "doc_count": docs,
                "update_seq": docs + rng.randint(10, 400),
                "db_name": f"medic-user-{area.username}",
                "idb_attachment_format": "binary",
                "auto_compaction": True,
                "adapter": "idb",
            },
        }

    def _feedback(self) -> None:
        rng, area = self.rng, self.area
        for _ in range(rng.randint(1, 2)):
            when = NOW_MS - rng.randint(1, 60) * DAY_MS - rng.randint(0, 36_000_000)
            automatic = rng.random() < 0.7
            doc_id = f"feedback-{iso_utc(when)}-{_uuid(rng)}"
            if automatic:
                info = {
                    "message": rng.choice(
                        (
                            "Uncaught (in promise): NetworkError when attempting to fetch resource.",
                            "Failed to fetch tasks: rules engine timeout",
                            "TypeError: Cannot read properties of undefined (reading 'parent')",
                        )
                    ),
                    "stack": "Error\n    at https://cht.example.org/main.js:1:20411\n"
                    "    at https://cht.example.org/polyfills.js:1:8233",
                }
            else:
                info = {"message": "The delivery form is slow to open on my phone"}
            self.users_meta.append(
                {
                    "_id": doc_id,
                    "_rev": make_rev(self.seed, doc_id, 1),
                    "type": "feedback",
                    "meta": {
                        "time": iso_utc(when),
                        "user": {"name": area.username, "roles": ["chw"]},
                        "language": "en",
                        "url": "https://cht.example.org/#/tasks",
                        "version": APP_VERSION,
                        "source": "automatic" if automatic else "manual",
                        "deviceId": _uuid(rng),
                    },
                    "info": info,
                    "arguments": [],
                    "log": [
                        {
                            "level": "error",
                            "arguments": '["Replication failed",{"status":0}]',
                        }
                    ]
                    if automatic
                    else [],
                }
            )

    def _replication_count(self) -> Doc:
        username = self.area.username
        doc_id = f"replication-count-{username}"
        return {
            "_id": doc_id,
            "_rev": make_rev(self.seed, doc_id, 1),
            "user": username,
            "date": NOW_MS - self.rng.randint(1, 20) * DAY_MS,
            "count": len(self.area.households) * 18 + self.rng.randint(0, 80),
        }


# --------------------------------------------------------------------------------------------
# households


@dataclass
class _Member:
    person: _Person
    relation: str
    """``head``, ``spouse``, ``child``, ``elder``, ``relative`` (not stored; drives the story)."""
    available: date
    """First day a report about this person can exist (household registration or birth report)."""
    extra: Doc = field(default_factory=dict)
    subject: bool = False
    pending: bool = False
    birth_weight: float | None = None
    birth_doses: bool = False


@dataclass
class _Event:
    when: int
    order: int
    report: Doc
    created: list[_Member]


@dataclass
class HouseholdDocs:
    """One household's documents plus what a mutation round needs to know about them."""

    index: int
    household_id: str
    family: str
    parents: tuple[str, ...]
    medic: list[Doc]
    sentinel: list[Doc]
    pending_codes: dict[str, str]
    """Person id -> shortcode that Sentinel has not written yet (its backlog)."""


def _expected_weight(months: int) -> float:
    if months <= 3:
        return 3.3 + 0.9 * months
    if months <= 12:
        return 6.0 + 0.4 * (months - 3)
    return 9.6 + 0.2 * (months - 12)


def _one_or_more(rng: random.Random, choices: Sequence[str], most: int = 2) -> str:
    return " ".join(rng.sample(list(choices), rng.randint(1, most)))


class _HouseholdUnit:
    """A household, its members and every report about them."""

    def __init__(self, seed: int, world: _World, area: _Area, index: int) -> None:
        self.seed = seed
        self.world = world
        self.area = area
        self.index = index
        self.forms = load_xforms()
        self.rng = random.Random(f"{seed}:household:{index}")
        rng = self.rng
        self.id = _uuid(rng)
        self.family = rng.choice(_FAMILY)
        self.parents = (self.id, *area.parents)
        self.reg_date = self._registration_date()
        self.reg_ms = _visit_ms(rng, self.reg_date)
        lat, lon = area.geo
        self.geo = (lat + rng.uniform(-0.03, 0.03), lon + rng.uniform(-0.03, 0.03))
        self.members: list[_Member] = []
        self.events: list[_Event] = []

    # -- people ---------------------------------------------------------------------------------

    def _registration_date(self) -> date:
        rng = self.rng
        offset = rng.randint(0, 300) if rng.random() < 0.85 else rng.randint(300, 520)
        day = WINDOW_START + timedelta(days=offset)
        return max(day, self.area.created + timedelta(days=20))

    def _add_member(self, sex: str, age_days: int, relation: str, *, born: date | None = None) -> _Member:
        rng = self.rng
        slot = len(self.members) + 1
        if slot >= _SLOTS_PER_HOUSEHOLD:
            raise RuntimeError("household shortcode slots exhausted")
        dob = born or self.reg_date - timedelta(days=age_days)
        adult = age_days >= 18 * 365
        first = rng.choice(_FEMALE if sex == "female" else _MALE)
        person = _Person(
            id=_uuid(rng),
            name=f"{first} {self.family}",
            sex=sex,
            dob=dob,
            phone=_phone(rng) if adult and rng.random() < 0.7 else "",
            code=self.world.household_code(self.index, slot),
            parents=self.parents,
            reported_ms=self.reg_ms + slot * 41_000,
        )
        method = "approx" if age_days > 50 * 365 and rng.random() < 0.5 else ""
        extra = {
            "date_of_birth_method": method,
            "short_name": "",
            "meta": {
                "created_by": self.area.username,
                "created_by_person_uuid": self.area.chw.id,
                "created_by_place_uuid": self.area.id,
            },
        }
        member = _Member(person, relation, self.reg_date + timedelta(days=1), extra)
        self.members.append(member)
        return member

    def _adult(self, sex: str, years: int, relation: str) -> _Member:
        return self._add_member(sex, years * 365 + self.rng.randint(0, 364), relation)

    def _children(self, mother_years: int, count: int) -> None:
        rng = self.rng
        age = rng.random() ** 1.6 * 7
        for _ in range(count):
            if mother_years - age < 16:
                break
            self._add_member(rng.choice(("female", "male")), int(age * 365.25), "child")
            age += rng.uniform(1.5, 4.0)

    def _people(self) -> None:
        rng = self.rng
        shape = rng.random()
        if shape < 0.62:
            husband = rng.randint(22, 58)
            wife = max(17, min(47, husband - rng.randint(0, 8)))
            self._adult("male", husband, "head")
            self._adult("female", wife, "spouse")
            self._children(wife, rng.randint(0, 5))
            if rng.random() < 0.12:
                self._adult(rng.choice(("female", "male")), rng.randint(60, 85), "elder")
        elif shape < 0.80:
            mother = rng.randint(18, 50)
            self._adult("female", mother, "head")
            self._children(mother, rng.randint(1, 4))
        elif shape < 0.90:
            grandfather = rng.randint(58, 80)
            self._adult("male", grandfather, "head")
            self._adult("female", grandfather - rng.randint(0, 6), "spouse")
            for _ in range(rng.randint(0, 2)):
                self._add_member(rng.choice(("female", "male")), rng.randint(30, 3000), "child")
        else:
            self._adult("male", rng.randint(19, 40), "head")
            if rng.random() < 0.4:
                self._adult(rng.choice(("female", "male")), rng.randint(16, 30), "relative")

    # -- reports --------------------------------------------------------------------------------

    def _common(self, patient: _Member, when: int, source: str, source_id: str) -> dict[str, Any]:
        rng, chw, person = self.rng, self.area.chw, patient.person
        patient.subject = True
        household, area, facility = person.parents
        start = when - rng.randint(3, 15) * 60_000 - rng.randint(0, 59_999)
        return {
            "inputs/source": source,
            "inputs/source_id": source_id,
            "inputs/user/contact_id": chw.id,
            "inputs/user/name": self.area.username,
            "inputs/user/phone": chw.phone,
            "inputs/contact/_id": person.id,
            "inputs/contact/name": person.name,
            "inputs/contact/patient_id": person.code,
            "inputs/contact/date_of_birth": person.dob.isoformat(),
            "inputs/contact/sex": person.sex,
            "inputs/contact/phone": person.phone,
            "inputs/contact/parent/_id": household,
            "inputs/contact/parent/parent/_id": area,
            "inputs/contact/parent/parent/parent/_id": facility,
            "start": iso_local(start),
            "end": iso_local(when - rng.randint(1_000, 20_000)),
            "patient_uuid": person.id,
            "patient_id": person.code,
            "patient_name": person.name,
            "household_uuid": household,
            "geolocation": _geopoint(rng, *self.geo) if rng.random() < 0.9 else "",
            "data/meta/__patient_uuid": person.id,
            "data/meta/__patient_id": person.code,
            "data/meta/__household_uuid": household,
            "data/meta/__source": source,
            "data/meta/__source_id": source_id,
            "meta/instanceID": f"uuid:{_uuid(rng)}",
        }

    def _report(
        self,
        form: str,
        report_id: str,
        when: int,
        answers: Mapping[str, Any],
        created: list[_Member] | None = None,
    ) -> Doc:
        xform = self.forms[form]
        chw = self.area.chw
        doc: Doc = {
            "_id": report_id,
            "_rev": make_rev(self.seed, report_id, 1),
            "type": "data_record",
            "content_type": "xml",
            "form": form,
            "form_version": {"time": xform.time_ms, "sha256": xform.sha256},
            "reported_date": when,
            "contact": _contact_ref(chw),
            "from": chw.phone,
            "hidden_fields": list(xform.hidden_fields),
            "fields": xform.fill(answers),
        }
        if self.rng.random() < 0.75:
            lat, lon = self.geo
            doc["geolocation"] = {
                "latitude": round(lat + self.rng.uniform(-3e-4, 3e-4), 6),
                "longitude": round(lon + self.rng.uniform(-3e-4, 3e-4), 6),
                "altitude": None,
                "accuracy": round(self.rng.uniform(3, 40), 1),
                "altitudeAccuracy": None,
                "heading": None,
                "speed": None,
            }
        self.events.append(_Event(when, len(self.events), doc, created or []))
        return doc

    # maternal care: pregnancy -> delivery -> postnatal visits

    def _maternal_care(self, woman: _Member, births: int, youngest: date | None) -> None:
        rng = self.rng
        earliest = max(woman.available, WINDOW_START)
        latest = TODAY - timedelta(days=2)
        if earliest > latest:
            return
        registered = earliest + timedelta(days=rng.randint(0, (latest - earliest).days))
        calendar = rng.random() < 0.75
        ga_days = rng.randint(6 * 7, 30 * 7)
        if not calendar:
            ga_days -= ga_days % 7
        lmp = registered - timedelta(days=ga_days)
        if youngest is not None and lmp < youngest + timedelta(days=300):
            return
        pregnancy = self._pregnancy(woman, registered, lmp, calendar, births)
        delivered = lmp + timedelta(days=280 + rng.randint(-18, 10))
        delivered = max(delivered, registered + timedelta(days=1))
        if delivered > TODAY - timedelta(days=1) or rng.random() < 0.06:
            return
        reported = min(TODAY, delivered + timedelta(days=rng.choice((0, 1, 1, 2, 3, 5))))
        delivery, babies = self._delivery(woman, pregnancy, lmp, delivered, reported)
        self._postnatal_visits(woman, delivery, babies, delivered, reported)

    def _pregnancy(self, woman: _Member, day: date, lmp: date, calendar: bool, births: int) -> str:
        rng = self.rng
        report_id = _uuid(rng)
        when = _visit_ms(rng, day)
        edd = lmp + timedelta(days=280)
        ga_days = (day - lmp).days
        miscarriages = 1 if rng.random() < 0.1 else 0
        gravida = births + miscarriages + 1
        conditions = "none"
        if rng.random() < 0.15:
            conditions = _one_or_more(
                rng, ("heart_condition", "asthma", "high_blood_pressure", "diabetes", "hiv")
            )
        signs = dict.fromkeys(
            (
                "vaginal_bleeding",
                "fits",
                "severe_abdominal_pain",
                "severe_headache",
                "very_pale",
                "fever",
                "reduced_fetal_movements",
                "breaking_water",
                "face_hand_swelling",
                "breathlessness",
            ),
            "no",
        )
        if rng.random() < 0.08:
            signs[rng.choice(list(signs))] = "yes"
        danger = "yes" if "yes" in signs.values() else "no"
        hypertensive = rng.random() < 0.05
        visits = 0 if ga_days < 84 else rng.randint(0, min(4, ga_days // 56))
        visit_days = sorted(rng.sample(range(70, ga_days), visits)) if visits else []
        answers = self._common(woman, when, "action", "")
        answers.update(
            {
                "patient_age_in_years": str(_years(woman.person.dob, day)),
                "lmp/lmp_method": "calendar" if calendar else "approx",
                "lmp/lmp_date": lmp.isoformat() if calendar else "",
                "lmp/lmp_approx_weeks": "" if calendar else str(ga_days // 7),
                "lmp/u_lmp_date": lmp.isoformat(),
                "lmp/edd": edd.isoformat(),
                "lmp/weeks_since_lmp": _dec(ga_days / 7, 2),
                "history/gravida": str(gravida),
                "history/parity": str(births),
                "history/first_pregnancy": "yes" if gravida == 1 else "no",
                "history/previous_miscarriage": "" if gravida == 1 else ("yes" if miscarriages else "no"),
                "history/conditions": conditions,
                **{f"danger_signs/{name}": value for name, value in signs.items()},
                "danger_signs/r_danger_sign_present": danger,
                "vitals/weight_kg": _dec(rng.uniform(47, 84)),
                "vitals/muac_cm": _dec(rng.uniform(21, 32)),
                "vitals/bp_systolic": str(rng.randint(140, 165) if hypertensive else rng.randint(98, 134)),
                "vitals/bp_diastolic": str(rng.randint(90, 108) if hypertensive else rng.randint(60, 86)),
                "anc/anc_visits_count": str(visits),
                "anc/anc_visits_past/visit": [
                    {
                        "visit_date": (lmp + timedelta(days=d)).isoformat(),
                        "visit_place": "health_facility" if rng.random() < 0.8 else "outreach",
                    }
                    for d in visit_days
                ],
                "anc/next_anc_date": (day + timedelta(days=rng.randint(14, 35))).isoformat(),
                "anc/uses_llin": "yes" if rng.random() < 0.7 else "no",
                "anc/iron_folate_daily": "yes" if rng.random() < 0.6 else "no",
                "anc/hiv_tested": "yes" if rng.random() < 0.75 else "no",
                "notes": "Lives far from the facility" if rng.random() < 0.05 else "",
                "t_pregnancy_follow_up_date": (day + timedelta(days=28)).isoformat(),
                "summary/edd_summary": _long_date(edd),
                "data/__lmp_date": lmp.isoformat(),
                "data/__edd": edd.isoformat(),
                "data/__gestational_age_weeks": str(ga_days // 7),
                "data/__gravida": str(gravida),
                "data/__has_danger_sign": danger,
                "data/__has_risk_factor": "yes" if conditions != "none" or gravida >= 5 else "no",
            }
        )
        self._report("pregnancy", report_id, when, answers)
        return report_id

    def _baby(
        self, report_id: str, number: int, born: date, when: int, facility: bool, twins: bool
    ) -> tuple[_Member, dict[str, str]]:
        rng = self.rng
        member = self._add_member(rng.choice(("female", "male")), 0, "child", born=born)
        member.available = (_EPOCH + timedelta(milliseconds=when)).astimezone(LOCAL_TZ).date() + timedelta(
            days=1
        )
        member.person = dataclasses.replace(member.person, reported_ms=when)
        member.extra = {"created_by_doc": report_id}
        weight_known = rng.random() < (0.9 if facility else 0.5)
        weight = min(4.6, max(1.6, rng.gauss(2.6 if twins else 3.15, 0.45)))
        vaccines = "none"
        if facility and rng.random() < 0.85:
            vaccines = "bcg opv0 hepb0" if rng.random() < 0.3 else "bcg opv0"
        member.birth_weight = weight if weight_known else None
        member.birth_doses = vaccines != "none"
        danger = "none"
        if rng.random() < 0.05:
            danger = rng.choice(("infected_cord", "difficulty_feeding", "fever", "jaundice"))
        person = member.person
        item = {
            "baby_n": str(number),
            "baby_name": person.name,
            "baby_sex": person.sex,
            "birth_weight_known": "yes" if weight_known else "no",
            "birth_weight_kg": _dec(weight) if weight_known else "",
            "birth_length_cm": _dec(rng.gauss(49, 2.2)) if weight_known else "",
            "vaccines_given": vaccines,
            "breastfed_within_1_hour": "yes" if rng.random() < 0.8 else "no",
            "danger_signs": danger,
            "baby_profile/name": person.name,
            "baby_profile/sex": person.sex,
            "baby_profile/date_of_birth": born.isoformat(),
            "baby_profile/created_by_doc": report_id,
            "child_doc": person.id,
        }
        return member, item

    def _delivery(
        self, woman: _Member, pregnancy_id: str, lmp: date, delivered: date, reported: date
    ) -> tuple[str, list[_Member]]:
        rng = self.rng
        report_id = _uuid(rng)
        when = _visit_ms(rng, reported)
        place = rng.choices(("health_facility", "home_skilled", "home_unskilled", "other"), (65, 10, 20, 5))[
            0
        ]
        facility = place == "health_facility"
        mode = "vaginal"
        if facility:
            mode = rng.choices(("vaginal", "assisted", "caesarean"), (80, 6, 14))[0]
        count = 2 if rng.random() < 0.03 else 1
        alive = count - (1 if rng.random() < 0.02 else 0)
        outcome = "alive_well" if rng.random() < 0.9 else "alive_unwell"
        signs = "none"
        if outcome == "alive_unwell":
            signs = _one_or_more(rng, ("fever", "severe_headache", "vaginal_bleeding", "foul_discharge"))
        babies, items = [], []
        for number in range(1, alive + 1):
            baby, item = self._baby(report_id, number, delivered, when, facility, count > 1)
            babies.append(baby)
            items.append(item)
        attended = "none"
        if facility:
            attended = "within_24_hrs day_3" if (reported - delivered).days >= 3 else "within_24_hrs"
        source_id = pregnancy_id if rng.random() < 0.7 else ""
        answers = self._common(woman, when, "task" if source_id else "action", source_id)
        answers.update(
            {
                "patient_age_in_years": str(_years(woman.person.dob, reported)),
                "condition/woman_outcome": outcome,
                "condition/danger_signs": signs,
                "delivery_outcome/delivery_date": delivered.isoformat(),
                "delivery_outcome/delivery_place": place,
                "delivery_outcome/delivery_mode": mode,
                "delivery_outcome/babies_delivered": str(count),
                "delivery_outcome/babies_alive": str(alive),
                "delivery_outcome/babies_deceased": str(count - alive),
                "delivery_outcome/gestational_age_weeks": _dec((delivered - lmp).days / 7),
                "babies/baby": items,
                "babies/babies_count": str(alive),
                "pnc_visits/pnc_visits_attended": attended,
                "pnc_visits/next_pnc_date": max(
                    reported + timedelta(days=1), delivered + timedelta(days=7)
                ).isoformat(),
                "t_pnc_follow_up_date": (delivered + timedelta(days=3)).isoformat(),
                "data/__delivery_date": delivered.isoformat(),
                "data/__delivery_place": place,
                "data/__babies_delivered": str(count),
                "data/__babies_alive": str(alive),
                "data/__has_danger_sign": "no" if signs == "none" else "yes",
                "data/meta/__pregnancy_uuid": pregnancy_id,
            }
        )
        self._report("delivery", report_id, when, answers, babies)
        return report_id, babies

    def _postnatal_visits(
        self, woman: _Member, delivery_id: str, babies: list[_Member], delivered: date, reported: date
    ) -> None:
        rng = self.rng
        last = reported
        number = 0
        for low, high, chance in ((1, 2, 0.8), (3, 6, 0.65), (7, 14, 0.5), (28, 42, 0.35)):
            if rng.random() >= chance:
                continue
            day = max(delivered + timedelta(days=rng.randint(low, high)), last + timedelta(days=1))
            if day > TODAY:
                break
            number += 1
            last = day
            self._pnc(woman, delivery_id, babies, delivered, day, number)

    def _pnc(
        self,
        woman: _Member,
        delivery_id: str,
        babies: list[_Member],
        delivered: date,
        day: date,
        number: int,
    ) -> None:
        rng = self.rng
        when = _visit_ms(rng, day)
        days = (day - delivered).days
        fever = rng.random() < 0.06
        signs = "fever" if fever else "none"
        if not fever and rng.random() < 0.03:
            signs = rng.choice(("severe_headache", "vaginal_bleeding", "foul_discharge"))
        planning = rng.choices(("yes", "no", "undecided"), (40, 40, 20) if days >= 28 else (5, 60, 35))[0]
        checks = [self._baby_check(baby, days) for baby in babies]
        baby_danger = any(c["danger_signs"] != "none" for c in checks)
        referred = signs != "none" or baby_danger
        answers = self._common(woman, when, "task", delivery_id)
        answers.update(
            {
                "visit/visit_date": day.isoformat(),
                "visit/delivery_date": delivered.isoformat(),
                "visit/days_since_delivery": str(days),
                "visit/pnc_visit_number": str(number),
                "mother/temperature_c": _dec(rng.uniform(37.6, 39.2) if fever else rng.uniform(36.2, 37.3)),
                "mother/bp_systolic": str(rng.randint(98, 138)),
                "mother/bp_diastolic": str(rng.randint(60, 88)),
                "mother/danger_signs": signs,
                "mother/breastfeeding": rng.choices(("exclusive", "mixed", "not_breastfeeding"), (75, 20, 5))[
                    0
                ],
                "mother/family_planning": planning,
                "mother/fp_method": rng.choice(("pills", "condoms", "implant", "injectable", "iud", "lam"))
                if planning == "yes"
                else "",
                "newborn/baby_check": checks,
                "newborn/babies_checked": str(len(checks)),
                "referral/referred": "yes" if referred else "no",
                "referral/referral_facility": self.area.facility.name if referred else "",
                "data/__visit_number": str(number),
                "data/__days_since_delivery": str(days),
                "data/__mother_danger_sign": "no" if signs == "none" else "yes",
                "data/__baby_danger_sign": "yes" if baby_danger else "no",
                "data/meta/__delivery_uuid": delivery_id,
            }
        )
        self._report("pnc", _uuid(rng), when, answers)

    def _baby_check(self, baby: _Member, days: int) -> dict[str, str]:
        rng = self.rng
        birth = baby.birth_weight or 3.1
        weight = birth - 0.06 * days if days <= 5 else birth - 0.3 + 0.028 * (days - 5)
        danger = "none"
        if rng.random() < 0.08:
            danger = rng.choice(("not_feeding", "fast_breathing", "fever", "jaundice"))
        return {
            "baby_uuid": baby.person.id,
            "baby_name": baby.person.name,
            "weight_kg": _dec(weight),
            "temperature_c": _dec(rng.uniform(37.6, 38.6) if danger == "fever" else rng.uniform(36.4, 37.4)),
            "cord_condition": "infected" if rng.random() < 0.04 else "clean",
            "danger_signs": danger,
        }

    # child health: immunization and sick-child assessments of the under-fives

    def _child_care(self, child: _Member) -> None:
        self._immunizations(child)
        self._assessments(child)

    def _immunizations(self, child: _Member) -> None:
        rng = self.rng
        dob = child.person.dob
        for step, (age, _vaccines) in enumerate(_SCHEDULE):
            if age == 0 and child.birth_doses:
                continue
            delay = rng.randint(0, 20) if rng.random() < 0.88 else rng.randint(21, 60)
            day = dob + timedelta(days=age + delay)
            if day < child.available or day > TODAY or rng.random() >= 0.85:
                continue
            self._immunization(child, day, step)

    def _immunization(self, child: _Member, day: date, step: int) -> None:
        rng = self.rng
        when = _visit_ms(rng, day)
        dob = child.person.dob
        age, vaccines = _SCHEDULE[step]
        weeks = (day - dob).days // 7
        doses = []
        for vaccine in vaccines:
            family = vaccine.rstrip("0123456789")
            doses.append(
                {
                    "vaccine": family,
                    "dose_number": vaccine[len(family) :] or "1",
                    "dose_date": day.isoformat(),
                    "batch_number": f"{family.upper()}{rng.randint(1000, 9999)}",
                    "site": _VACCINE_SITE[family],
                }
            )
        upcoming = _SCHEDULE[step + 1] if step + 1 < len(_SCHEDULE) else None
        next_day = ""
        if upcoming:
            due = max(dob + timedelta(days=upcoming[0]), day + timedelta(days=28))
            next_day = due.isoformat()
        vitamin_a = ""
        if weeks >= 26:
            vitamin_a = "yes" if age == 270 or rng.random() < 0.5 else "no"
        aefi = rng.random() < 0.04
        task = rng.random() < 0.5
        answers = self._common(child, when, "task" if task else "action", child.person.id if task else "")
        answers.update(
            {
                "patient_age_in_weeks": str(weeks),
                "visit/visit_date": day.isoformat(),
                "visit/visit_location": rng.choices(("health_facility", "outreach", "home"), (55, 30, 15))[0],
                "visit/card_available": "yes" if rng.random() < 0.85 else "no",
                "vaccines/vaccines_given": " ".join(vaccines),
                "vaccines/dose": doses,
                "vaccines/doses_count": str(len(doses)),
                "vaccines/vitamin_a_given": vitamin_a,
                "aefi/aefi_reported": "yes" if aefi else "no",
                "aefi/aefi_symptoms": _one_or_more(rng, ("fever", "swelling", "rash", "crying"))
                if aefi
                else "",
                "next/next_visit_date": next_day,
                "next/next_vaccines": " ".join(upcoming[1]) if upcoming else "",
                "data/__vaccines_given": " ".join(vaccines),
                "data/__doses": str(len(doses)),
                "data/__age_in_weeks": str(weeks),
                "data/__fully_immunized": "yes" if "mr1" in vaccines else "no",
            }
        )
        self._report("immunization", _uuid(rng), when, answers)

    def _assessments(self, child: _Member) -> None:
        rng = self.rng
        dob = child.person.dob
        first = max(child.available, dob + timedelta(days=60))
        last = min(TODAY, dob + timedelta(days=5 * 365 - 1))
        if first > last:
            return
        span = (last - first).days
        count = min(span + 1, int(span / 365 * 1.6 + rng.random()))
        for offset in sorted(rng.sample(range(span + 1), count)):
            self._assessment(child, first + timedelta(days=offset))

    def _assessment(self, child: _Member, day: date) -> None:
        rng = self.rng
        when = _visit_ms(rng, day)
        months = _months(child.person.dob, day)
        fever = rng.random() < 0.5
        cough = rng.random() < 0.4
        diarrhea = rng.random() < 0.25
        muac = None
        if months >= 6:
            roll = rng.random()
            muac = (
                rng.uniform(10.2, 11.4)
                if roll < 0.02
                else (rng.uniform(11.5, 12.4) if roll < 0.07 else rng.uniform(12.5, 16.5))
            )
        muac_text = "" if muac is None else _dec(muac)
        color = "" if muac is None else ("red" if muac < 11.5 else "yellow" if muac < 12.5 else "green")
        threshold = 50 if months < 12 else 40
        pneumonia = cough and rng.random() < 0.3
        breaths = (
            rng.randint(threshold, threshold + 15)
            if pneumonia
            else rng.randint(threshold - 22, threshold - 1)
        )
        indrawing = cough and rng.random() < 0.05
        mrdt = rng.choices(("positive", "negative", "not_done"), (35, 55, 10))[0] if fever else ""
        blood = diarrhea and rng.random() < 0.08
        danger = "none"
        if rng.random() < 0.05:
            danger = _one_or_more(rng, ("convulsions", "unable_to_drink", "vomits_everything", "lethargic"))
        classes = []
        if mrdt == "positive":
            classes.append("malaria")
        elif fever:
            classes.append("fever")
        if pneumonia:
            classes.append("pneumonia")
        if diarrhea:
            classes.append("dysentery" if blood else "diarrhea")
        if color == "red":
            classes.append("sam")
        elif color == "yellow":
            classes.append("mam")
        if danger != "none" or indrawing:
            classes.append("severe_illness")
        treatments = []
        if "malaria" in classes:
            treatments.append("act")
        if pneumonia:
            treatments.append("amoxicillin")
        if diarrhea:
            treatments += ["ors", "zinc"]
        if fever and mrdt != "positive":
            treatments.append("paracetamol")
        if color == "red":
            treatments.append("rutf")
        refer = bool({"severe_illness", "sam", "dysentery"} & set(classes))
        answers = self._common(child, when, "action", "")
        answers.update(
            {
                "patient_sex": child.person.sex,
                "patient_age_in_months": str(months),
                "group_assess/temperature_c": _dec(
                    rng.uniform(37.6, 40.1) if fever else rng.uniform(36.1, 37.4)
                ),
                "group_assess/weight_kg": _dec(_expected_weight(months) * rng.uniform(0.88, 1.12)),
                "group_assess/muac_cm": muac_text,
                "group_assess/muac_color": color,
                "group_assess/resp_rate": str(breaths),
                "group_fever/patient_fever": "yes" if fever else "no",
                "group_fever/fever_duration_days": str(rng.randint(1, 5)) if fever else "",
                "group_fever/mrdt_result": mrdt,
                "group_cough/patient_coughs": "yes" if cough else "no",
                "group_cough/coughing_duration_days": str(rng.randint(1, 14)) if cough else "",
                "group_cough/chest_indrawing": ("yes" if indrawing else "no") if cough else "",
                "group_cough/fast_breathing": "true" if breaths >= threshold else "false",
                "group_diarrhea/patient_diarrhea": "yes" if diarrhea else "no",
                "group_diarrhea/diarrhea_duration_days": str(rng.randint(1, 7)) if diarrhea else "",
                "group_diarrhea/diarrhea_blood": ("yes" if blood else "no") if diarrhea else "",
                "group_danger_signs/danger_signs": danger,
                "group_diagnosis/classification": " ".join(classes) or "healthy",
                "group_diagnosis/treatments": " ".join(treatments) or "none",
                "group_diagnosis/referral_needed": "yes" if refer else "no",
                "group_diagnosis/follow_up_date": (day + timedelta(days=3)).isoformat() if classes else "",
                "data/__age_in_months": str(months),
                "data/__fever": "yes" if fever else "no",
                "data/__malaria_positive": "yes" if mrdt == "positive" else "no",
                "data/__pneumonia": "yes" if pneumonia else "no",
                "data/__diarrhea": "yes" if diarrhea else "no",
                "data/__danger_sign": "no" if danger == "none" else "yes",
                "data/__muac_color": color,
            }
        )
        self._report("assessment", _uuid(rng), when, answers)

    # -- assembling ---------------------------------------------------------------------------

    def build(self) -> HouseholdDocs:
        rng = self.rng
        self._people()
        residents = list(self.members)
        kids = [m for m in residents if m.relation == "child"]
        youngest = max((k.person.dob for k in kids), default=None)
        for member in residents:
            age = _years(member.person.dob, WINDOW_START)
            if member.person.sex != "female" or not 16 <= age <= 44:
                continue
            mother = member.relation in ("head", "spouse")
            if rng.random() < (0.4 if mother else 0.12):
                births = len(kids) if mother else 0
                self._maternal_care(member, births, youngest if mother else None)
        for member in list(self.members):
            if member.relation == "child" and member.person.dob + timedelta(days=5 * 365) > WINDOW_START:
                self._child_care(member)
        for member in residents:
            if not member.subject and rng.random() < 0.1:
                member.pending = True
        return self._assemble(residents)

    def _assemble(self, residents: list[_Member]) -> HouseholdDocs:
        seed, rng = self.seed, self.rng
        medic: list[Doc] = []
        sentinel: list[Doc] = []

        def add(doc: Doc, transitions: list[str] | None = None, info: bool = True) -> None:
            medic.append(doc)
            if info and rng.random() < 0.92:
                sentinel.append(_info_doc(seed, rng, doc, transitions))

        add(*self._household_doc(residents[0]))
        for member in residents:
            add(*self._member_doc(member))
        self.events.sort(key=lambda event: (event.when, event.order))
        for event in self.events:
            add(event.report)
            for baby in event.created:
                add(*self._member_doc(baby))
        pending = {m.person.id: m.person.code for m in self.members if m.pending}
        return HouseholdDocs(self.index, self.id, self.family, self.parents, medic, sentinel, pending)

    def _household_doc(self, head: _Member) -> tuple[Doc, list[str] | None]:
        with_code = self.rng.random() < 0.7
        doc: Doc = {
            "_id": self.id,
            "_rev": make_rev(self.seed, self.id, 2 if with_code else 1),
            "type": "clinic",
            "name": f"{self.family} Household",
            "is_name_generated": "true",
            "contact": _contact_ref(head.person),
            "parent": _lineage(self.area.parents),
            "reported_date": self.reg_ms,
            "external_id": "",
            "notes": "",
            "meta": {
                "created_by": self.area.username,
                "created_by_person_uuid": self.area.chw.id,
                "created_by_place_uuid": self.area.id,
            },
        }
        if with_code:
            doc["place_id"] = self.world.household_code(self.index, 0)
        return doc, (["generate_shortcode_on_contacts"] if with_code else None)

    def _member_doc(self, member: _Member) -> tuple[Doc, list[str] | None, bool]:
        doc = _person_doc(self.seed, member.person, with_code=not member.pending, extra=member.extra)
        if member.pending:
            return doc, None, False
        return doc, ["generate_shortcode_on_contacts"], True


# --------------------------------------------------------------------------------------------
# public API: the deployment and its mutation rounds


@dataclass(frozen=True)
class Unit:
    """Docs of one generation unit (static, one area, or one household), by database suffix."""

    households_done: int
    docs: Mapping[str, list[Doc]]


@dataclass(frozen=True)
class DocStream:
    """The docs of one database, generated lazily each time it is iterated."""

    deployment: Deployment
    db: str

    def __iter__(self) -> Iterator[Doc]:
        return self.deployment.iter_docs(self.db)

    def chunks(self, size: int) -> Iterator[list[Doc]]:
        chunk: list[Doc] = []
        for doc in self:
            chunk.append(doc)
            if len(chunk) >= size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


@dataclass(frozen=True)
class Mutation:
    """A change applied after the initial load. ``docs`` are written with ``new_edits=false``.

    ``kind`` is ``create``, ``edit``, ``delete`` (webapp style: full body plus ``_deleted``),
    ``stub_delete`` (``{_id, _rev, _deleted}``) or ``conflict`` (two docs: the edit, then a
    competing branch from the same parent revision, so CouchDB keeps a conflict).
    """

    db: str
    kind: str
    docs: tuple[Doc, ...]
    note: str = ""

    @property
    def doc_id(self) -> str:
        return str(self.docs[0]["_id"])


@dataclass(frozen=True, eq=False)
class Deployment(Mapping[str, DocStream]):
    """A generated CHT deployment: database suffix -> lazily generated docs.

    ``deployment["medic"]`` can be iterated any number of times (each pass regenerates);
    ``units()`` / ``iter_all()`` walk every database in a single pass with flat memory.
    """

    seed: int
    households: int

    def __post_init__(self) -> None:
        if self.households < 1:
            raise ValueError("households must be >= 1")

    def __getitem__(self, db: str) -> DocStream:
        if db not in DATABASES:
            raise KeyError(db)
        return DocStream(self, db)

    def __iter__(self) -> Iterator[str]:
        return iter(DATABASES)

    def __len__(self) -> int:
        return len(DATABASES)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Deployment):
            return NotImplemented
        return (self.seed, self.households) == (other.seed, other.households)

    def __hash__(self) -> int:
        return hash((Deployment, self.seed, self.households))

    @cached_property
    def _world(self) -> _World:
        return _build_world(self.seed, self.households)

    @property
    def shortcode_length(self) -> int:
        return self._world.shortcodes.length

    def units(self, databases: Sequence[str] = DATABASES) -> Iterator[Unit]:
        """All docs, unit by unit, parents before children."""
        world = self._world
        with_households = bool({MEDIC, SENTINEL} & set(databases))
        yield Unit(0, _static_unit(self.seed, world))
        done = 0
        for area in world.areas:
            yield Unit(done, _AreaUnit(self.seed, world, area).build())
            if not with_households:
                done += len(area.households)
                continue
            for index in area.households:
                household = _HouseholdUnit(self.seed, world, area, index).build()
                done += 1
                yield Unit(done, {MEDIC: household.medic, SENTINEL: household.sentinel})

    def iter_docs(self, db: str) -> Iterator[Doc]:
        if db not in DATABASES:
            raise KeyError(db)
        for unit in self.units((db,)):
            yield from unit.docs.get(db, ())

    def iter_all(self) -> Iterator[tuple[str, Doc]]:
        for unit in self.units():
            for db, docs in unit.docs.items():
                for doc in docs:
                    yield db, doc

    def household(self, index: int) -> HouseholdDocs:
        """Rebuild one household (identical to its docs in the full stream)."""
        world = self._world
        area = world.areas[index * len(world.areas) // self.households]
        return _HouseholdUnit(self.seed, world, area, index).build()

    def estimate_counts(self, sample: int = 48) -> dict[str, int]:
        """Docs per database, extrapolated from a spread sample of areas and households."""
        world = self._world
        counts = dict.fromkeys(DATABASES, 0)
        for db, docs in _static_unit(self.seed, world).items():
            counts[db] += len(docs)
        areas = _spread(len(world.areas), sample)
        for index in areas:
            for db, docs in _AreaUnit(self.seed, world, world.areas[index]).build().items():
                counts[db] += round(len(docs) * len(world.areas) / len(areas))
        households = _spread(self.households, sample)
        for index in households:
            built = self.household(index)
            for db, docs in ((MEDIC, built.medic), (SENTINEL, built.sentinel)):
                counts[db] += round(len(docs) * self.households / len(households))
        return counts

    def write_body(self, doc: Doc) -> Doc:
        """``doc`` plus its ``_revisions`` history, ready for ``_bulk_docs`` with new_edits=false."""
        return {**doc, "_revisions": revisions(self.seed, doc["_id"], doc["_rev"])}

    def mutation_households(self, round_no: int) -> list[int]:
        if not 1 <= round_no <= MUTATION_ROUNDS:
            raise ValueError(f"round_no must be in 1..{MUTATION_ROUNDS}")
        per_round = max(7, self.households // 100)
        total = min(self.households, per_round * MUTATION_ROUNDS)
        picks = random.Random(f"{self.seed}:mutations").sample(range(self.households), total)
        return sorted(picks[(round_no - 1) * per_round : round_no * per_round])

    def mutations(self, round_no: int) -> list[Mutation]:
        """Round ``round_no`` (1..3) of edits, deletes, conflicts and new docs.

        Rounds touch disjoint households, so they can be applied in any order (or skipped);
        revisions are deterministic, so a round applied twice changes nothing the second time.
        """
        world = self._world
        planner = _MutationPlanner(self.seed, round_no)
        areas: dict[int, _Area] = {}
        for position, index in enumerate(self.mutation_households(round_no)):
            area = world.areas[index * len(world.areas) // self.households]
            areas[area.index] = area
            planner.household(self.household(index), position)
        for area in areas.values():
            planner.connected_user(area)
        if round_no == 1:
            planner.user_settings(_AreaUnit(self.seed, world, world.areas[0]).build()[MEDIC])
        return planner.mutations


def _spread(total: int, sample: int) -> list[int]:
    if total <= sample:
        return list(range(total))
    return [i * total // sample for i in range(sample)]


def generate(seed: int, households: int) -> Deployment:
    """The deployment for ``(seed, households)``; nothing is generated until it is iterated."""
    return Deployment(seed, households)


_MUTATION_KINDS = (
    "sentinel",
    "edit_report",
    "edit_contact",
    "delete",
    "stub_delete",
    "conflict",
    "create",
)


class _MutationPlanner:
    def __init__(self, seed: int, round_no: int) -> None:
        self.seed = seed
        self.round_no = round_no
        self.now = NOW_MS + round_no * DAY_MS
        self.mutations: list[Mutation] = []
        self.deferred: list[str] = []
        self.rng = random.Random(f"{seed}:mutations:{round_no}")

    # -- helpers ----------------------------------------------------------------------------------

    def _next(self, doc: Doc, branch: str = "") -> Doc:
        """A copy of ``doc`` carrying the next revision."""
        new = copy.deepcopy(doc)
        new["_rev"] = make_rev(self.seed, doc["_id"], rev_generation(doc["_rev"]) + 1, branch)
        return new

    def _add(self, db: str, kind: str, *docs: Doc, note: str = "") -> None:
        self.mutations.append(Mutation(db, kind, tuple(docs), note))

    def _touch_info(self, household: HouseholdDocs, doc_id: str) -> None:
        info = next((d for d in household.sentinel if d["doc_id"] == doc_id), None)
        if info is not None:
            new = self._next(info)
            new["latest_replication_date"] = iso_utc(self.now - self.rng.randint(0, 3_600_000))
            self._add(SENTINEL, "edit", new, note="Sentinel saw the new revision")

    @staticmethod
    def _pick(docs: list[Doc], used: set[str], wanted: Sequence[str], key: str) -> Doc | None:
        for value in wanted:
            for doc in docs:
                if doc.get(key) == value and doc["_id"] not in used:
                    used.add(doc["_id"])
                    return doc
        return None

    # -- per household ----------------------------------------------------------------------------

    def household(self, household: HouseholdDocs, position: int) -> None:
        used: set[str] = set()
        count = len(_MUTATION_KINDS)
        kinds = [_MUTATION_KINDS[position % count], _MUTATION_KINDS[(position + 3) % count]]
        if household.pending_codes and "sentinel" not in kinds:
            kinds.append("sentinel")  # Sentinel always catches up with what is waiting
        # a kind this household cannot take (no report to delete, ...) moves on to the next one
        waiting, self.deferred = self.deferred, []
        for kind in [*waiting, *kinds]:
            if not getattr(self, f"_{kind}")(household, used):
                self.deferred.append(kind)

    def _reports(self, household: HouseholdDocs, used: set[str]) -> Doc | None:
        reports = [d for d in household.medic if d.get("type") == "data_record"]
        forms = ("assessment", "immunization", "pnc", "pregnancy")
        return self._pick(reports, used, forms, "form")

    def _person(self, household: HouseholdDocs, used: set[str]) -> Doc | None:
        people = [
            d
            for d in household.medic
            if d.get("type") == "person" and d["_id"] not in household.pending_codes
        ]
        people.sort(key=lambda d: (d.get("phone") == "", d["_id"]))
        return self._pick(people, used, ("person",), "type")

    def _new_info(self, doc: Doc, transitions: Sequence[str] = ()) -> Doc:
        info_id = f"{doc['_id']}-info"
        seen = iso_utc(self.now - self.rng.randint(60_000, 7_200_000))
        info: Doc = {
            "_id": info_id,
            "_rev": make_rev(self.seed, info_id, 1),
            "type": "info",
            "doc_id": doc["_id"],
            "initial_replication_date": seen,
            "latest_replication_date": seen,
        }
        if transitions:
            seq = _fake_seq(self.rng)
            last_rev = rev_generation(doc["_rev"])
            info["transitions"] = {
                name: {"last_rev": last_rev, "seq": seq, "ok": True, "run_date": seen} for name in transitions
            }
        return info

    def _sentinel(self, household: HouseholdDocs, used: set[str]) -> bool:
        """Sentinel works through its backlog: a shortcode for a new person, else an info doc."""
        pending = [pid for pid in household.pending_codes if pid not in used]
        if pending:
            person_id = pending[0]
            used.add(person_id)
            doc = next(d for d in household.medic if d["_id"] == person_id)
            new = self._next(doc)
            new["patient_id"] = household.pending_codes[person_id]
            self._add(MEDIC, "edit", new, note="Sentinel adds the patient_id shortcode")
            info = self._new_info(doc, ["generate_shortcode_on_contacts"])
            self._add(SENTINEL, "create", info, note="Sentinel catches up on its backlog")
            return True
        covered = {info["doc_id"] for info in household.sentinel}
        waiting = [d for d in household.medic if d["_id"] not in covered and d["_id"] not in used]
        if not waiting:
            return self._edit_contact(household, used)
        used.add(waiting[0]["_id"])
        self._add(SENTINEL, "create", self._new_info(waiting[0]), note="Sentinel catches up on its backlog")
        return True

    def _edit_report(self, household: HouseholdDocs, used: set[str]) -> bool:
        doc = self._reports(household, used)
        if doc is None:
            return False
        new = self._next(doc)
        meta = new["fields"]["meta"]
        meta["deprecatedID"] = meta["instanceID"]
        meta["instanceID"] = f"uuid:{_uuid(self.rng)}"
        self._add(MEDIC, "edit", new, note="report edited in the webapp")
        self._touch_info(household, doc["_id"])
        return True

    def _edit_contact(self, household: HouseholdDocs, used: set[str]) -> bool:
        doc = self._person(household, used)
        if doc is None:
            return False
        new = self._next(doc)
        new["phone"] = _phone(self.rng)
        self._add(MEDIC, "edit", new, note="phone number changed")
        self._touch_info(household, doc["_id"])
        return True

    def _delete(self, household: HouseholdDocs, used: set[str]) -> bool:
        doc = self._reports(household, used)
        if doc is None:
            return False
        new = self._next(doc)
        new["_deleted"] = True
        self._add(MEDIC, "delete", new, note="deleted from the webapp (full body kept)")
        return True

    def _stub_delete(self, household: HouseholdDocs, used: set[str]) -> bool:
        doc = self._reports(household, used)
        if doc is None:
            return False
        rev = make_rev(self.seed, doc["_id"], rev_generation(doc["_rev"]) + 1)
        stub = {"_id": doc["_id"], "_rev": rev, "_deleted": True}
        self._add(MEDIC, "stub_delete", stub, note="DELETE /medic/{id}?rev= (stub tombstone)")
        return True

    def _conflict(self, household: HouseholdDocs, used: set[str]) -> bool:
        doc = self._person(household, used)
        if doc is None:
            return False
        online = self._next(doc)
        online["phone"] = _phone(self.rng)
        offline = self._next(doc, branch="offline-device")
        offline["phone"] = _phone(self.rng)
        offline["name"] = doc["name"].upper()
        self._add(MEDIC, "conflict", online, offline, note="edited on two devices")
        return True

    def _create(self, household: HouseholdDocs, used: set[str]) -> bool:
        rng = self.rng
        person_id = _uuid(rng)
        sex = rng.choice(("female", "male"))
        first = rng.choice(_FEMALE if sex == "female" else _MALE)
        born = TODAY - timedelta(days=rng.randint(18 * 365, 60 * 365))
        doc: Doc = {
            "_id": person_id,
            "_rev": make_rev(self.seed, person_id, 1),
            "type": "person",
            "name": f"{first} {household.family}",
            "sex": sex,
            "date_of_birth": born.isoformat(),
            "phone": _phone(rng),
            "reported_date": self.now - rng.randint(3_600_000, 30_000_000),
            "parent": _lineage(household.parents),
        }
        used.add(person_id)
        self._add(MEDIC, "create", doc, note="a relative moved into the household")
        return True

    # -- per area / deployment --------------------------------------------------------------------

    def connected_user(self, area: _Area) -> None:
        doc = _connected_user(self.seed, self.rng, area.username, self.round_no)
        self._add(LOGS, "edit", doc, note="user connected again")

    def user_settings(self, area_docs: list[Doc]) -> None:
        doc = next(d for d in area_docs if d.get("type") == "user-settings")
        new = self._next(doc)
        new["language"] = "en" if doc["language"] == "sw" else "sw"
        self._add(MEDIC, "edit", new, note="user switched language")
