"""A household as its reports see it: its members, the fields every report about one of them
shares, recording a report, and the household's docs (``clinic``, people, reports in time order,
Sentinel info docs).

The form families build on ``Household``: ``pregnancy``, ``maternal``, ``deaths`` and ``child``;
``generator`` composes them into each household's story.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from cht_assets.demo.base import Doc, iso_local, lineage, local_ms, make_rev, new_uuid
from cht_assets.demo.world import (
    FAMILY,
    FEMALE,
    MALE,
    SLOTS_PER_HOUSEHOLD,
    Area,
    Person,
    World,
    contact_ref,
    info_doc,
    person_doc,
    phone_number,
)
from cht_assets.demo.xform import load_xforms


@dataclass
class Member:
    person: Person
    relation: str
    """``head``, ``spouse``, ``child``, ``elder``, ``relative`` (not stored; drives the story)."""
    available: date
    """First day a report about this person can exist (household registration or birth report)."""
    extra: Doc = field(default_factory=dict)
    subject: bool = False
    pending: bool = False
    birth_weight: float | None = None
    birth_doses: bool = False
    died: date | None = None


@dataclass
class Event:
    when: int
    order: int
    report: Doc
    created: list[Member]


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


def _geopoint(rng: random.Random, lat: float, lon: float) -> str:
    return (
        f"{lat + rng.uniform(-3e-4, 3e-4):.6f} {lon + rng.uniform(-3e-4, 3e-4):.6f} "
        f"{rng.uniform(1100, 1900):.1f} {rng.uniform(3, 25):.1f}"
    )


def visit_ms(rng: random.Random, day: date) -> int:
    return local_ms(day, rng.randint(7 * 60 + 30, 18 * 60))


def one_or_more(rng: random.Random, choices: Sequence[str], most: int = 2) -> str:
    return " ".join(rng.sample(list(choices), rng.randint(1, most)))


class Household:
    """A household, its members and how a report about one of them is recorded."""

    def __init__(self, seed: int, world: World, area: Area, index: int) -> None:
        self.seed = seed
        self.world = world
        self.area = area
        self.clock = world.clock.idle(area.idle_days)
        self.index = index
        self.forms = load_xforms()
        self.rng = random.Random(f"{seed}:household:{index}")
        rng = self.rng
        self.id = new_uuid(rng)
        self.family = rng.choice(FAMILY)
        self.parents = (self.id, *area.parents)
        self.reg_date = self._registration_date()
        self.reg_ms = visit_ms(rng, self.reg_date)
        lat, lon = area.geo
        self.geo = (lat + rng.uniform(-0.03, 0.03), lon + rng.uniform(-0.03, 0.03))
        self.members: list[Member] = []
        self.events: list[Event] = []

    # -- people ---------------------------------------------------------------------------------

    def _registration_date(self) -> date:
        rng = self.rng
        offset = rng.randint(0, 300) if rng.random() < 0.85 else rng.randint(300, 520)
        day = self.clock.window_start + timedelta(days=offset)
        return max(day, self.area.created + timedelta(days=20))

    def _add_member(self, sex: str, age_days: int, relation: str, *, born: date | None = None) -> Member:
        rng = self.rng
        slot = len(self.members) + 1
        if slot >= SLOTS_PER_HOUSEHOLD:
            raise RuntimeError("household shortcode slots exhausted")
        dob = born or self.reg_date - timedelta(days=age_days)
        adult = age_days >= 18 * 365
        first = rng.choice(FEMALE if sex == "female" else MALE)
        person = Person(
            id=new_uuid(rng),
            name=f"{first} {self.family}",
            sex=sex,
            dob=dob,
            phone=phone_number(rng) if adult and rng.random() < 0.7 else "",
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
        member = Member(person, relation, self.reg_date + timedelta(days=1), extra)
        self.members.append(member)
        return member

    def _adult(self, sex: str, years: int, relation: str) -> Member:
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

    def _common(self, patient: Member, when: int, source: str, source_id: str) -> dict[str, Any]:
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
            "meta/instanceID": f"uuid:{new_uuid(rng)}",
        }

    def _report(
        self,
        form: str,
        report_id: str,
        when: int,
        answers: Mapping[str, Any],
        created: list[Member] | None = None,
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
            "contact": contact_ref(chw),
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
        self.events.append(Event(when, len(self.events), doc, created or []))
        return doc

    def _this_month_day(self) -> date:
        """A day of the current month, today included (every "this month" chart has data)."""
        today = self.clock.today
        return today - timedelta(days=self.rng.randint(0, today.day - 1))

    # -- assembling ---------------------------------------------------------------------------

    def _assemble(self, residents: list[Member]) -> HouseholdDocs:
        seed, rng = self.seed, self.rng
        medic: list[Doc] = []
        sentinel: list[Doc] = []

        def add(doc: Doc, transitions: list[str] | None = None, info: bool = True) -> None:
            medic.append(doc)
            if info and rng.random() < 0.92:
                sentinel.append(info_doc(seed, rng, self.clock.now_ms, doc, transitions))

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

    def _household_doc(self, head: Member) -> tuple[Doc, list[str] | None]:
        with_code = self.rng.random() < 0.7
        doc: Doc = {
            "_id": self.id,
            "_rev": make_rev(self.seed, self.id, 2 if with_code else 1),
            "type": "clinic",
            "name": f"{self.family} Household",
            "is_name_generated": "true",
            "contact": contact_ref(head.person),
            "parent": lineage(self.area.parents),
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

    def _member_doc(self, member: Member) -> tuple[Doc, list[str] | None, bool]:
        doc = person_doc(self.seed, member.person, with_code=not member.pending, extra=member.extra)
        if member.pending:
            return doc, None, False
        return doc, ["generate_shortcode_on_contacts"], True
