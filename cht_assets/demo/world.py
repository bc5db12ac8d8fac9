"""The deployment's hierarchy, the names it draws from, and the doc builders every unit shares.

The hierarchy is small (one record per facility and per CHW area) and built once from the seed:
health facilities with their in-charge nurse, CHW areas with their CHW and the households each
one holds, and where everyone's shortcode comes from. The shared builders make a ``person``, a
contact reference, Sentinel's ``<id>-info`` doc, a ``user-settings`` doc and a ``medic-logs``
connected-user doc.
"""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass
from datetime import date, timedelta

from cht_assets.demo.base import Clock, Doc, Shortcodes, iso_utc, lineage, local_ms, make_rev, new_uuid

SLOTS_PER_HOUSEHOLD = 16
_SLOTS_PER_AREA = 8
_SLOTS_PER_FACILITY = 2


# --------------------------------------------------------------------------------------------
# names and vocabularies (invented for the demo)


def _words(text: str, separator: str | None = None) -> tuple[str, ...]:
    return tuple(text.split(separator))


FEMALE = _words(
    "Amina Grace Wanjiru Achieng Faith Mercy Zawadi Neema Halima Esther Mary Joyce Nafula "
    "Akinyi Atieno Chebet Jepkoech Wairimu Njeri Rehema Imani Fatuma Saida Mwajuma Nekesa Auma "
    "Beatrice Caroline Lucy Purity Winnie Agnes Rose Sharon Eunice Hadija"
)
MALE = _words(
    "Otieno Kamau Mwangi Juma Hassan Baraka Kiprono Omondi Wekesa Musa Daniel Peter Joseph "
    "Samuel John Brian Kevin Ibrahim Salim Ochieng Mutua Njoroge Kibet Wafula Barasa Kariuki "
    "Onyango Abdi Francis Moses Dennis Erick Collins Stephen Isaac Hamisi"
)
FAMILY = _words(
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
GROUP_WORDS = _words("Umoja Tumaini Upendo Amani Baraka Neema Faraja Jamii Mwangaza Tujenge Imara Shangilia")
GROUP_KINDS = ("Women Savings Group", "Mothers Support Group", "Youth Group", "Farmers Group")


# --------------------------------------------------------------------------------------------
# the hierarchy (small: one record per facility and per CHW area)


@dataclass(frozen=True)
class Person:
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
class _Place:
    """A health facility or a CHW area: the place, its shortcode and its contact's username."""

    index: int
    id: str
    name: str
    code: str
    geo: tuple[float, float]
    created: date
    username: str


@dataclass(frozen=True)
class Facility(_Place):
    head: Person


@dataclass(frozen=True)
class Area(_Place):
    chw: Person
    facility: Facility
    households: range

    @property
    def parents(self) -> tuple[str, str]:
        """Lineage of anything directly under the area: (area, facility)."""
        return (self.id, self.facility.id)

    @property
    def idle_days(self) -> int:
        """Days since its CHW last synced: one area in five has a CHW idle for over a week."""
        return 8 + self.index * 7 % 30 if self.index % 5 == 2 else 0


@dataclass(frozen=True)
class World:
    """Shortcode slots: 16 per household, then 8 per area, then 2 per facility."""

    households: int
    clock: Clock
    facilities: tuple[Facility, ...]
    areas: tuple[Area, ...]
    shortcodes: Shortcodes

    def area_of(self, household: int) -> Area:
        return self.areas[household * len(self.areas) // self.households]

    def household_code(self, household: int, slot: int) -> str:
        return self.shortcodes.code(household * SLOTS_PER_HOUSEHOLD + slot)

    def area_slot(self, area: int, k: int) -> int:
        return self.households * SLOTS_PER_HOUSEHOLD + area * _SLOTS_PER_AREA + k


def phone_number(rng: random.Random) -> str:
    return f"+2547{rng.randrange(10**8):08d}"


def build_world(seed: int, households: int, clock: Clock) -> World:
    n_areas = max(2, -(-households // 20))
    n_facilities = max(1, -(-n_areas // 10))
    area_base = households * SLOTS_PER_HOUSEHOLD
    facility_base = area_base + n_areas * _SLOTS_PER_AREA
    codes = Shortcodes.for_slots(facility_base + n_facilities * _SLOTS_PER_FACILITY, seed)
    rng = random.Random(f"{seed}:hierarchy")
    facilities = tuple(
        _build_facility(rng, codes, facility_base, index, clock) for index in range(n_facilities)
    )
    areas = []
    for index in range(n_areas):
        facility = facilities[index * n_facilities // n_areas]
        first = (index * households + n_areas - 1) // n_areas
        stop = ((index + 1) * households + n_areas - 1) // n_areas
        slot = area_base + index * _SLOTS_PER_AREA
        areas.append(_build_area(rng, codes, slot, index, facility, range(first, stop)))
    return World(households, clock, facilities, tuple(areas), codes)


def _build_facility(rng: random.Random, codes: Shortcodes, base: int, index: int, clock: Clock) -> Facility:
    town = _TOWNS[index % len(_TOWNS)]
    if index >= len(_TOWNS):
        town = f"{town} {index // len(_TOWNS) + 1}"
    created = clock.window_start - timedelta(days=rng.randint(71, 91))
    facility_id = new_uuid(rng)
    sex = rng.choice(("female", "female", "male"))
    first = rng.choice(FEMALE if sex == "female" else MALE)
    head = Person(
        id=new_uuid(rng),
        name=f"{first} {rng.choice(FAMILY)}",
        sex=sex,
        dob=date(1970 + rng.randint(0, 22), rng.randint(1, 12), rng.randint(1, 28)),
        phone=phone_number(rng),
        code=codes.code(base + index * _SLOTS_PER_FACILITY + 1),
        parents=(facility_id,),
        reported_ms=local_ms(created, 9 * 60 + rng.randint(0, 400)),
    )
    return Facility(
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
    codes: Shortcodes,
    slot: int,
    index: int,
    facility: Facility,
    households: range,
) -> Area:
    created = facility.created + timedelta(days=rng.randint(10, 50))
    area_id = new_uuid(rng)
    first = rng.choice(FEMALE) if rng.random() < 0.85 else rng.choice(MALE)
    sex = "female" if first in FEMALE else "male"
    name = f"{first} {rng.choice(FAMILY)}"
    chw = Person(
        id=new_uuid(rng),
        name=name,
        sex=sex,
        dob=date(1975 + rng.randint(0, 25), rng.randint(1, 12), rng.randint(1, 28)),
        phone=phone_number(rng),
        code=codes.code(slot + 1),
        parents=(area_id, facility.id),
        reported_ms=local_ms(created, 9 * 60 + rng.randint(0, 400)),
    )
    lat, lon = facility.geo
    return Area(
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


def person_doc(
    seed: int,
    person: Person,
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
        "parent": lineage(person.parents),
    }
    if extra:
        doc.update(extra)
    if with_code:
        doc["patient_id"] = person.code
    return doc


def contact_ref(person: Person) -> Doc:
    return {"_id": person.id, "parent": lineage(person.parents)}


def fake_seq(rng: random.Random) -> str:
    tail = base64.urlsafe_b64encode(rng.randbytes(45)).decode().rstrip("=")
    return f"{rng.randint(1, 900_000)}-g1AAAA{tail}"


def info_doc(
    seed: int, rng: random.Random, now_ms: int, doc: Doc, transitions: list[str] | None = None
) -> Doc:
    """Sentinel's ``<id>-info`` doc for a medic doc (``transitions`` that ran on it, if any)."""
    first_seen = min(doc["reported_date"] + rng.randint(20_000, 3 * 3_600_000), now_ms)
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
        seq = fake_seq(rng)
        info["transitions"] = {
            name: {"last_rev": 1, "seq": seq, "ok": True, "run_date": run} for name in transitions
        }
    return info


def user_settings_doc(
    seed: int,
    username: str,
    person: Person | None,
    roles: list[str],
    rev_gen: int = 1,
    *,
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
            facility_id=person.parents[0],
        )
    return doc


def connected_user_doc(seed: int, rng: random.Random, now_ms: int, username: str, round_no: int = 0) -> Doc:
    doc_id = f"connected-user-{username}"
    last = now_ms - rng.randint(60_000, 4 * 86_400_000)
    return {
        "_id": doc_id,
        "_rev": make_rev(seed, doc_id, 1 + round_no),
        "user": username,
        "timestamp": last,
    }
