"""Deterministic generator of a demo CHT deployment.

Pure: no network, no clock, no dagster. Everything derives from ``(seed, households, today)``;
the same triple always gives byte-identical documents, ``_rev`` values included. Every date is
relative to ``today`` (callers pass ``date.today()``): 18 months of history up to it, and the
first households of each area register a pregnancy, deliver and report a death in today's month,
so every "this month" chart has data whatever the day.

One generation pass walks *units*, parents before children:

* the static unit: ``settings`` (with the targets' definitions), form definitions,
  ``shortcode-id-length``, the health facilities (``district_hospital``) with their in-charge
  nurse / supervisor user, outgoing messages, the ``_users`` docs of the supervisors;
* per CHW area: the ``health_center``, its CHW, ``user-settings`` and ``_users`` doc, a
  ``community_group`` of the configurable hierarchy (``type: contact``), SMS reports, the CHW's
  telemetry / feedback and API log docs. One area in five has a CHW idle for over a week (its
  whole area is generated on a clock that stops then: no newer report or telemetry);
* then each household of that area: the ``clinic``, its members, their XForm reports and the
  Sentinel info docs. Reports follow CHT's default config (field paths, value codes, ``data``
  analytics fields): pregnancy -> home visits, danger signs and their follow-ups -> delivery
  (babies alive, created as people by the report, or deceased; the woman's outcome) -> pnc;
  deaths (``death_report``), a few undone (``undo_death_report``); plus the demo-only
  assessment and immunization of the under-fives;
* after an area's households, the CHW's task and monthly target docs
  (``cht_assets.demo.tasks`` / ``targets``, from those households' reports).

Each unit has its own ``random.Random`` seeded from ``(seed, unit)``, so any unit can be rebuilt
alone (``mutations`` does that) and the stream needs memory for one area's reports at most.

Revisions are deterministic too: ``rev_hash(seed, id, n)`` is the hash of revision ``n`` of a doc.
Docs are written with ``new_edits=false`` and the full ``_revisions`` history
(``Deployment.write_body``), exactly as CouchDB replication writes them; later rounds extend those
histories without having to read anything back, and writing the same round twice is a no-op.

This module is the public entry: the deployment, its units and the household's story (which care
each member gets). The docs come from the modules of ``cht_assets.demo``: ``base`` (time, ids,
revisions, shortcodes), ``xform`` (the XForms), ``world`` (the hierarchy), ``static`` and ``area``
(those units), ``household`` with its form families ``pregnancy``, ``maternal``, ``deaths`` and
``child``, ``tasks`` / ``targets`` (the CHW's activity), ``users`` and ``mutations``.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cached_property

from cht_assets.demo import targets, tasks
from cht_assets.demo.area import AreaUnit
from cht_assets.demo.base import (
    DATABASES,
    DAY_MS,
    DEFAULT_TODAY,
    MEDIC,
    SENTINEL,
    USERS,
    Clock,
    Doc,
    age_in_years,
    local_ms,
    make_rev,
    rev_generation,
    revisions,
)
from cht_assets.demo.child import ChildCare
from cht_assets.demo.household import HouseholdDocs
from cht_assets.demo.maternal import MaternalCare
from cht_assets.demo.mutations import MUTATION_ROUNDS, Mutation, MutationPlanner
from cht_assets.demo.static import static_unit
from cht_assets.demo.world import Area, World, build_world
from cht_assets.demo.xform import FORM_NAMES, XForm

__all__ = [
    "DATABASES",
    "DAY_MS",
    "DEFAULT_TODAY",
    "FORM_NAMES",
    "MEDIC",
    "MUTATION_ROUNDS",
    "USERS",
    "Clock",
    "Deployment",
    "Doc",
    "DocStream",
    "HouseholdDocs",
    "Mutation",
    "Unit",
    "XForm",
    "generate",
    "local_ms",
    "make_rev",
    "rev_generation",
]


class _HouseholdUnit(MaternalCare, ChildCare):
    """A household, its members and every report about them: who gets which care, who dies."""

    def _plan(self) -> str:
        """What the first households of each area do this month: register, deliver, die.

        Three tries at a pregnancy and at a delivery (a household may have no woman of
        childbearing age), one death: every "this month" chart has data whatever day today is.
        """
        position = self.index - self.area.households.start
        plans = ("register", "deliver", "death", "register", "deliver", "", "register", "deliver")
        return plans[position] if position < len(plans) else ""

    def build(self) -> HouseholdDocs:
        rng = self.rng
        self._people()
        residents = list(self.members)
        kids = [m for m in residents if m.relation == "child"]
        youngest = max((k.person.dob for k in kids), default=None)
        plan = self._plan()
        for member in residents:
            age = age_in_years(member.person.dob, self.clock.window_start)
            if member.person.sex != "female" or not 16 <= age <= 44:
                continue
            mother = member.relation in ("head", "spouse")
            births = len(kids) if mother else 0
            if plan in ("register", "deliver") and self._maternal_care(member, births, None, plan):
                plan = ""
            elif rng.random() < (0.4 if mother else 0.12):
                self._maternal_care(member, births, youngest if mother else None)
        for member in list(self.members):
            if (
                member.relation == "child"
                and member.person.dob + timedelta(days=5 * 365) > self.clock.window_start
            ):
                self._child_care(member)
        self._deaths(residents, planned=plan == "death")
        for member in residents:
            if not member.subject and rng.random() < 0.1:
                member.pending = True
        return self._assemble(residents)


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


@dataclass(frozen=True, eq=False)
class Deployment(Mapping[str, DocStream]):
    """A generated CHT deployment: database suffix -> lazily generated docs.

    ``deployment["medic"]`` can be iterated any number of times (each pass regenerates);
    ``units()`` / ``iter_all()`` walk every database in a single pass with flat memory.
    """

    seed: int
    households: int
    today: date = DEFAULT_TODAY

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
        return (self.seed, self.households, self.today) == (other.seed, other.households, other.today)

    def __hash__(self) -> int:
        return hash((Deployment, self.seed, self.households, self.today))

    @cached_property
    def _world(self) -> World:
        return build_world(self.seed, self.households, Clock(self.today))

    @property
    def shortcode_length(self) -> int:
        return self._world.shortcodes.length

    def units(self, databases: Sequence[str] = DATABASES) -> Iterator[Unit]:
        """All docs, unit by unit, parents before children."""
        world = self._world
        with_households = bool({MEDIC, SENTINEL} & set(databases))
        yield Unit(0, static_unit(self.seed, world))
        done = 0
        for area in world.areas:
            yield Unit(done, AreaUnit(self.seed, world, area).build())
            if not with_households:
                done += len(area.households)
                continue
            reports: list[Doc] = []
            for index in area.households:
                household = _HouseholdUnit(self.seed, world, area, index).build()
                done += 1
                reports.extend(d for d in household.medic if d.get("type") == "data_record")
                yield Unit(done, {MEDIC: household.medic, SENTINEL: household.sentinel})
            yield Unit(done, {MEDIC: _activity_docs(self.seed, world, area, reports)})

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
        return _HouseholdUnit(self.seed, world, world.area_of(index), index).build()

    def estimate_counts(self, sample: int = 48) -> dict[str, int]:
        """Docs per database, extrapolated from a spread sample of areas and households.

        The CHW's activity docs count too: each sampled area with its monthly target docs (as many
        whatever its reports), each sampled household with the task docs its reports give rise to.
        """
        world = self._world
        counts = Counter({db: len(docs) for db, docs in static_unit(self.seed, world).items()})
        in_areas: Counter[str] = Counter()
        areas = _spread(len(world.areas), sample)
        for index in areas:
            area = world.areas[index]
            in_areas.update({db: len(docs) for db, docs in AreaUnit(self.seed, world, area).build().items()})
            activity = _activity_docs(self.seed, world, area, ())
            in_areas[MEDIC] += sum(1 for doc in activity if doc["type"] == "target")
        in_households: Counter[str] = Counter()
        households = _spread(self.households, sample)
        for index in households:
            household = self.household(index)
            reports = [doc for doc in household.medic if doc.get("type") == "data_record"]
            activity = _activity_docs(self.seed, world, world.area_of(index), reports)
            in_households[MEDIC] += len(household.medic) + sum(1 for doc in activity if doc["type"] == "task")
            in_households[SENTINEL] += len(household.sentinel)
        return {
            db: counts[db]
            + round(in_areas[db] * len(world.areas) / len(areas))
            + round(in_households[db] * self.households / len(households))
            for db in DATABASES
        }

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
        planner = MutationPlanner(self.seed, round_no, self._world.clock)
        areas: dict[int, Area] = {}
        for position, index in enumerate(self.mutation_households(round_no)):
            area = world.area_of(index)
            areas[area.index] = area
            planner.household(self.household(index), position)
        for area in areas.values():
            planner.connected_user(area)
        if round_no == 1:
            planner.user_settings(AreaUnit(self.seed, world, world.areas[0]).build()[MEDIC])
        return planner.mutations


def _activity_docs(seed: int, world: World, area: Area, reports: Sequence[Doc]) -> list[Doc]:
    """The CHW's task docs and monthly target docs, from the reports of the area's households."""
    rng = random.Random(f"{seed}:activity:{area.index}")
    today = world.clock.idle(area.idle_days).today
    args = (seed, rng, area.username, area.chw.id, reports, today)
    return [*tasks.task_docs(*args), *targets.target_docs(*args)]


def _spread(total: int, sample: int) -> list[int]:
    if total <= sample:
        return list(range(total))
    return [i * total // sample for i in range(sample)]


def generate(seed: int, households: int, today: date = DEFAULT_TODAY) -> Deployment:
    """The deployment for ``(seed, households, today)``; nothing is generated until it is iterated.

    Every date is relative to ``today`` (the module reads no clock: callers pass ``date.today()``).
    """
    return Deployment(seed, households, today)
