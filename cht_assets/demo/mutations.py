"""Mutation rounds: the edits, deletes, conflicts and new docs applied after the initial load.

Each round rebuilds a few households (disjoint from the other rounds') and plans, per household,
two kinds of change, plus Sentinel catching up on its backlog, a new connected-user revision of
their areas' CHWs, and (round 1) a CHW switching language.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from cht_assets.demo.base import (
    DAY_MS,
    LOGS,
    MEDIC,
    SENTINEL,
    Clock,
    Doc,
    iso_utc,
    lineage,
    make_rev,
    new_uuid,
    rev_generation,
)
from cht_assets.demo.household import HouseholdDocs
from cht_assets.demo.world import FEMALE, MALE, Area, connected_user_doc, fake_seq, phone_number

MUTATION_ROUNDS = 3


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


_MUTATION_KINDS = (
    "sentinel",
    "edit_report",
    "edit_contact",
    "delete",
    "stub_delete",
    "conflict",
    "create",
)


class MutationPlanner:
    """One round's mutations, planned household by household, then per area and deployment."""

    def __init__(self, seed: int, round_no: int, clock: Clock) -> None:
        self.seed = seed
        self.round_no = round_no
        self.today = clock.today
        self.now = clock.now_ms + round_no * DAY_MS
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
            seq = fake_seq(self.rng)
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
        meta["instanceID"] = f"uuid:{new_uuid(self.rng)}"
        self._add(MEDIC, "edit", new, note="report edited in the webapp")
        self._touch_info(household, doc["_id"])
        return True

    def _edit_contact(self, household: HouseholdDocs, used: set[str]) -> bool:
        doc = self._person(household, used)
        if doc is None:
            return False
        new = self._next(doc)
        new["phone"] = phone_number(self.rng)
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
        online["phone"] = phone_number(self.rng)
        offline = self._next(doc, branch="offline-device")
        offline["phone"] = phone_number(self.rng)
        offline["name"] = doc["name"].upper()
        self._add(MEDIC, "conflict", online, offline, note="edited on two devices")
        return True

    def _create(self, household: HouseholdDocs, used: set[str]) -> bool:
        rng = self.rng
        person_id = new_uuid(rng)
        sex = rng.choice(("female", "male"))
        first = rng.choice(FEMALE if sex == "female" else MALE)
        born = self.today - timedelta(days=rng.randint(18 * 365, 60 * 365))
        doc: Doc = {
            "_id": person_id,
            "_rev": make_rev(self.seed, person_id, 1),
            "type": "person",
            "name": f"{first} {household.family}",
            "sex": sex,
            "date_of_birth": born.isoformat(),
            "phone": phone_number(rng),
            "reported_date": self.now - rng.randint(3_600_000, 30_000_000),
            "parent": lineage(household.parents),
        }
        used.add(person_id)
        self._add(MEDIC, "create", doc, note="a relative moved into the household")
        return True

    # -- per area / deployment --------------------------------------------------------------------

    def connected_user(self, area: Area) -> None:
        doc = connected_user_doc(self.seed, self.rng, self.now, area.username, self.round_no)
        self._add(LOGS, "edit", doc, note="user connected again")

    def user_settings(self, area_docs: list[Doc]) -> None:
        doc = next(d for d in area_docs if d.get("type") == "user-settings")
        new = self._next(doc)
        new["language"] = "en" if doc["language"] == "sw" else "sw"
        self._add(MEDIC, "edit", new, note="user switched language")
