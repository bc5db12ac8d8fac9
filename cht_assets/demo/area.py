"""The area unit: the docs of one CHW area, everything but its households.

The ``health_center`` and its CHW (person, ``user-settings``, ``_users`` doc), sometimes a
``community_group`` of the configurable hierarchy with its members, SMS reports (pregnancy
registrations and ANC visits, a report about an unknown patient, free text), the CHW's telemetry
and feedback (``medic-users-meta``) and connected-user / replication-count docs (``medic-logs``),
with the Sentinel info docs of the ``medic`` ones. An area whose CHW is idle is generated on a
clock stopped at the CHW's last sync.
"""

from __future__ import annotations

import copy
import random
from datetime import date, timedelta

from cht_assets.demo import users
from cht_assets.demo.base import (
    DAY_MS,
    LOGS,
    MEDIC,
    SENTINEL,
    USERS,
    USERS_META,
    Doc,
    iso_utc,
    lineage,
    local_ms,
    long_date,
    make_rev,
    new_uuid,
)
from cht_assets.demo.world import (
    FAMILY,
    FEMALE,
    GROUP_KINDS,
    GROUP_WORDS,
    MALE,
    Area,
    Person,
    World,
    connected_user_doc,
    contact_ref,
    info_doc,
    person_doc,
    phone_number,
    user_settings_doc,
)
from cht_assets.demo.xform import FORM_NAMES

_APP_VERSION = "4.6.1"

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


class AreaUnit:
    """Docs attached to one CHW area (everything but its households)."""

    def __init__(self, seed: int, world: World, area: Area) -> None:
        self.seed = seed
        self.world = world
        self.area = area
        self.clock = world.clock.idle(area.idle_days)
        self.rng = random.Random(f"{seed}:area:{area.index}")
        self.medic: list[Doc] = []
        self.sentinel: list[Doc] = []
        self.users_meta: list[Doc] = []
        self.logs: list[Doc] = []

    def build(self) -> dict[str, list[Doc]]:
        seed, area, rng = self.seed, self.area, self.rng
        place = self._area_doc()
        chw = person_doc(seed, area.chw, extra={"role": "chw"})
        self._add(place, ["generate_shortcode_on_contacts"] if "place_id" in place else None)
        self._add(chw, ["generate_shortcode_on_contacts"])
        language = "sw" if rng.random() < 0.3 else "en"
        known = rng.random() < 0.9  # False until the user first logs in
        self.medic.append(
            user_settings_doc(seed, area.username, area.chw, ["chw"], language=language, known=known)
        )
        if rng.random() < 0.35:
            self._community_group()
        self._sms_reports()
        self._telemetry()
        if rng.random() < 0.25:
            self._feedback()
        self.logs.append(connected_user_doc(seed, rng, self.clock.now_ms, area.username))
        self.logs.append(self._replication_count())
        user_docs = [users.user_doc(d) for d in self.medic if d.get("type") == "user-settings"]
        return {
            MEDIC: self.medic,
            SENTINEL: self.sentinel,
            USERS_META: self.users_meta,
            LOGS: self.logs,
            USERS: user_docs,
        }

    def _add(self, doc: Doc, transitions: list[str] | None = None) -> None:
        self.medic.append(doc)
        self.sentinel.append(info_doc(self.seed, self.rng, self.clock.now_ms, doc, transitions))

    def _area_doc(self) -> Doc:
        area = self.area
        with_code = self.rng.random() < 0.8
        doc: Doc = {
            "_id": area.id,
            "_rev": make_rev(self.seed, area.id, 2 if with_code else 1),
            "type": "health_center",
            "name": area.name,
            "is_name_generated": "true",
            "contact": contact_ref(area.chw),
            "parent": lineage((area.facility.id,)),
            "reported_date": local_ms(area.created, 10 * 60),
        }
        if with_code:
            doc["place_id"] = area.code
        return doc

    def _community_group(self) -> None:
        seed, area, rng = self.seed, self.area, self.rng
        group_id = new_uuid(rng)
        created = area.created + timedelta(days=rng.randint(30, 200))
        parents = (group_id, *area.parents)
        members = []
        for k in range(rng.randint(2, 4)):
            sex = "female" if rng.random() < 0.8 else "male"
            members.append(
                Person(
                    id=new_uuid(rng),
                    name=f"{rng.choice(FEMALE if sex == 'female' else MALE)} {rng.choice(FAMILY)}",
                    sex=sex,
                    dob=date(1965 + rng.randint(0, 40), rng.randint(1, 12), rng.randint(1, 28)),
                    phone=phone_number(rng),
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
            "name": f"{rng.choice(GROUP_WORDS)} {rng.choice(GROUP_KINDS)}",
            "contact": contact_ref(members[0]),
            "parent": lineage(area.parents),
            "reported_date": local_ms(created, 11 * 60),
            "place_id": self.world.shortcodes.code(self._slot(2)),
        }
        self._add(group, ["generate_shortcode_on_contacts"])
        for member in members:
            doc = person_doc(seed, member)
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
        doc_id = new_uuid(rng)
        sms: Doc = {
            "type": "sms_message",
            "message": message,
            "from": sender,
            "locale": "en",
            "gateway_ref": new_uuid(rng),
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
            "messages": [{"to": to, "message": message, "uuid": new_uuid(self.rng)}],
            "state": state,
            "state_details": None,
            "gateway_ref": new_uuid(self.rng),
            "state_history": history,
        }

    def _sms_registration(self) -> None:
        seed, area, rng = self.seed, self.area, self.rng
        day = self.clock.today - timedelta(days=rng.randint(20, 400))
        when = local_ms(day, rng.randint(8 * 60, 17 * 60))
        weeks = rng.randint(6, 24)
        lmp = day - timedelta(weeks=weeks)
        edd = lmp + timedelta(days=280)
        first = rng.choice(FEMALE)
        chw = area.chw
        report = self._sms_base(when, f"1!P!{weeks}#{first}", "P", chw.phone)
        code = self.world.shortcodes.code(self._slot(7))
        report["fields"] = {"last_menstrual_period": weeks, "patient_name": first}
        report["contact"] = contact_ref(chw)
        report["patient_id"] = code
        report["lmp_date"] = f"{lmp.isoformat()}T00:00:00.000Z"
        report["expected_date"] = f"{edd.isoformat()}T00:00:00.000Z"
        report["tasks"] = [
            self._task(
                chw.phone,
                f"Thank you for registering {first}. Their pregnancy ID is {code}, "
                f"and EDD is {long_date(edd)}",
                when,
            )
        ]
        report["scheduled_tasks"] = self._anc_reminders(first, code, lmp)
        patient = Person(
            id=new_uuid(rng),
            name=first,
            sex="female",
            dob=day - timedelta(days=365 * 24),
            phone="",
            code=code,
            parents=area.parents,
            reported_ms=when + 1_500,
        )
        # created by Sentinel's registration transition, shortcode included: a single revision
        patient_doc = person_doc(
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
            state = "sent" if due < self.clock.today else "scheduled"
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
                            "uuid": new_uuid(self.rng),
                        }
                    ],
                    "state": state,
                    "state_history": [{"state": state, "timestamp": iso_utc(local_ms(due, 8 * 60))}],
                }
            )
        return tasks

    def _sms_visit(self, registration: Doc, name: str, code: str, day: date) -> None:
        visit_day = min(self.clock.today, day + timedelta(days=self.rng.randint(20, 60)))
        when = local_ms(visit_day, self.rng.randint(8 * 60, 17 * 60))
        chw = self.area.chw
        doc = self._sms_base(when, f"V {code}", "V", chw.phone)
        doc["fields"] = {"patient_id": code}
        doc["contact"] = contact_ref(chw)
        doc["patient_id"] = code
        doc["registration_id"] = registration["_id"]
        doc["tasks"] = [self._task(chw.phone, f"Thank you, ANC visit of {name} recorded.", when)]
        self._add(doc, ["update_clinics", "accept_patient_reports"])

    def _sms_unknown_patient(self) -> None:
        when = local_ms(self.clock.today - timedelta(days=self.rng.randint(1, 300)), 13 * 60)
        sender = phone_number(self.rng)
        doc = self._sms_base(when, "V 99999", "V", sender)
        doc["fields"] = {"patient_id": "99999"}
        doc["errors"] = [
            {"code": "sys.facility_not_found", "message": "Facility not found."},
            {"code": "registration_not_found", "message": 'No patient with ID "99999" was found.'},
        ]
        doc["tasks"] = [self._task(sender, 'No patient with ID "99999" was found.', when, state="pending")]
        self._add(doc, ["update_clinics", "accept_patient_reports"])

    def _sms_free_text(self) -> None:
        when = local_ms(self.clock.today - timedelta(days=self.rng.randint(1, 300)), 15 * 60)
        doc = self._sms_base(when, "Is the health post open on Saturday?", None, self.area.chw.phone)
        doc["contact"] = contact_ref(self.area.chw)
        self._add(doc)

    # -- users-meta and logs -------------------------------------------------------------------

    def _telemetry(self) -> None:
        rng = self.rng
        devices = [new_uuid(rng) for _ in range(1 if rng.random() < 0.9 else 2)]
        days = sorted(rng.sample(range(1, 46), rng.randint(8, 30)))
        device_info = self._device(rng)
        for offset in days:
            day = self.clock.today - timedelta(days=offset)
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
                    "app": _APP_VERSION,
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
            when = self.clock.now_ms - rng.randint(1, 60) * DAY_MS - rng.randint(0, 36_000_000)
            automatic = rng.random() < 0.7
            doc_id = f"feedback-{iso_utc(when)}-{new_uuid(rng)}"
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
                        "version": _APP_VERSION,
                        "source": "automatic" if automatic else "manual",
                        "deviceId": new_uuid(rng),
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
            "date": self.clock.now_ms - self.rng.randint(1, 20) * DAY_MS,
            "count": len(self.area.households) * 18 + self.rng.randint(0, 80),
        }
