"""The shipped dashboards end to end on the real pipeline: a generated demo deployment in CouchDB ->
the real raw + view assets -> the real Superset assets (twice) -> Superset's chart-data API and
headless Chromium. Every number is checked against Python computed from the docs in CouchDB, never
from the views.

The deployment has 201 households: the smallest the generator splits over two district hospitals
(11 CHW areas), so a district hospital manager has another district to be kept out of.

Superset's dashboards are keyed by slug and access.yaml owns every manager role and RLS rule, so
one Superset holds one provisioning at a time: this module uses its own Superset database name
(own datasets) and, when the stand-in provisioning of this session was there before, puts it
back afterwards.
"""

from __future__ import annotations

import collections
import contextlib
import json
import re
import xml.etree.ElementTree as ET  # noqa: S405 - the demo's own XForms
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

import dagster as dg
import psycopg
import pytest
import yaml

from cht_assets.bi.client import SupersetAPIError, SupersetClient
from cht_assets.bi.dashboard_specs import ChartSpec, DashboardSpec, load_dashboards
from cht_assets.bi.database import DatabaseConnection
from cht_assets.bi.datasets import DatasetSource, dataset_uuid
from cht_assets.bi.rls import AREA_COLUMN
from cht_assets.defs.resources import PostgresResource
from cht_assets.defs.superset import (
    ACCESS_KEY,
    DATABASE_KEY,
    SupersetResource,
    build_superset_assets,
    dashboard_key,
    published_datasets,
    superset_connection,
)
from cht_assets.defs.views import build_view_assets
from cht_assets.demo.generator import generate
from cht_assets.demo.loader import couch_clients, load_deployment
from cht_assets.servers.superset import SupersetServer, admin_credentials
from tests.conftest import fresh_database
from tests.integration.pipeline import SUFFIXES, Deployment, new_deployment
from tests.integration.pipeline import materialize as materialize_pipeline
from tests.superset import expect
from tests.superset.browser import Chromium
from tests.superset.conftest import SCREENSHOTS, SESSION, standin_kept
from tests.superset.conftest import materialize as materialize_superset
from tests.superset.test_screenshots import browser_session, check, render
from tests.support import dagster as support

pytestmark = pytest.mark.superset

SEED, HOUSEHOLDS = 7, 201
SLUGS = ("chw-activity", "pregnancy-and-births", "population", "data-freshness")
AREA_DASHBOARDS = ("chw-activity", "pregnancy-and-births", "population")
CONTACT_TYPES = {"contact", "clinic", "district_hospital", "health_center", "person"}
BUILTIN_TYPES = [
    {"id": "district_hospital"},
    {"id": "health_center", "parents": ["district_hospital"]},
    {"id": "clinic", "parents": ["health_center"]},
    {"id": "person", "parents": ["district_hospital", "health_center", "clinic"], "person": True},
]
PLACE_REF, OUTCOME_REF = "/data/delivery_outcome/delivery_place", "/data/condition/woman_outcome"
MOTHER = (("alive_well", "alive and well"), ("alive_unwell", "alive and unwell"), ("deceased", "deceased"))


# --- the independent side: the docs in CouchDB ----------------------------------------------------


def text(value: Any) -> str | None:
    """A JSON leaf as the views read it: '' is no value."""
    return None if value in (None, "") else str(value)


def dig(doc: dict[str, Any], *path: str) -> Any:
    for key in path:
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


class Couch:
    """The medic database's docs, and what the dashboards mean in terms of them."""

    def __init__(
        self, docs: list[dict[str, Any]], meta: list[dict[str, Any]], today: date, tz: ZoneInfo
    ) -> None:
        """`docs`: the medic database; `meta`: medic-users-meta (telemetry)."""
        self.today, self.tz = today, tz
        self.records = [d for d in docs if d.get("type") == "data_record"]
        self.settings = sorted((d for d in docs if d.get("type") == "user-settings"), key=lambda d: d["_id"])
        self.tasks = [d for d in docs if d.get("type") == "task"]
        self.telemetry = [d for d in meta if d.get("type") == "telemetry"]
        self.contacts = {d["_id"]: d for d in docs if d.get("type") in CONTACT_TYPES}
        settings = next((d for d in docs if d["_id"] == "settings"), {})
        types = dig(settings, "settings", "contact_types") or BUILTIN_TYPES
        places = [t for t in types if not t.get("person")]
        self.person_types = {t["id"] for t in types if t.get("person")}
        self.leaf_types = {
            t["id"] for t in places if not any(t["id"] in (u.get("parents") or []) for u in places)
        }
        self.reports = [d for d in docs if d.get("type") == "data_record" and d.get("form")]
        self.form_labels = form_labels(docs, dig(settings, "settings", "locale") or "en")

    def ctype(self, doc: dict[str, Any]) -> str:
        return doc.get("contact_type") or doc["type"]

    def area(self, uuid: str | None) -> tuple[str, ...]:
        """The places a contact rolls up to, from its own parent chain (a place includes itself)."""
        doc = self.contacts.get(uuid or "")
        if doc is None:
            return ()
        chain, node = [], doc.get("parent")
        while isinstance(node, dict) and node.get("_id"):
            chain.append(node["_id"])
            node = node.get("parent")
        return tuple(chain) if self.ctype(doc) in self.person_types else (doc["_id"], *chain)

    def name_at(self, area: Sequence[str], level: str) -> str | None:
        for place in area:
            doc = self.contacts.get(place)
            if doc is not None and self.ctype(doc) == level:
                return doc.get("name")
        return None

    def local_date(self, ms: int) -> date:
        return datetime.fromtimestamp(ms / 1000, self.tz).date()

    def bucket(self, day: date) -> float:
        """A day as Superset returns a time-grain bucket: local midnight, epoch milliseconds."""
        return datetime(day.year, day.month, day.day, tzinfo=self.tz).timestamp() * 1000

    def age_band(self, born: str | None) -> str:
        if not born:
            return "unknown"
        dob = date.fromisoformat(born)
        years = self.today.year - dob.year - ((self.today.month, self.today.day) < (dob.month, dob.day))
        return "00-04" if years < 5 else "05-14" if years < 15 else "15-49" if years < 50 else "50+"

    # One row per fact each dashboard counts; `area` is what RLS filters on.

    def activity(self) -> list[dict[str, Any]]:
        rows = []
        for report in self.reports:
            chw = dig(report, "contact", "_id")
            area = self.area(chw)
            day = self.local_date(report["reported_date"])
            rows.append(
                {
                    "chw": chw,
                    "chw_name": (self.contacts.get(chw or "") or {}).get("name"),
                    "health_center_name": self.name_at(area, "health_center"),
                    "week": day - timedelta(days=day.weekday()),
                    "form": report["form"],
                    "form_label": self.form_labels.get(report["form"], report["form"]),
                    "area": area,
                }
            )
        return rows

    def pregnancies(self) -> list[dict[str, Any]]:
        """One row per registration. A pregnancy spans from its registration to the patient's next
        one; its delivery is the first delivery report in the span, its home visits and danger-sign
        reports those in the span up to that delivery (default config's field paths and codes)."""

        def patient(report: dict[str, Any]) -> str | None:
            return text(dig(report, "fields", "patient_uuid")) or text(
                dig(report, "fields", "inputs", "contact", "_id")
            )

        def by_patient(form: str) -> dict[str | None, list[dict[str, Any]]]:
            found: dict[str | None, list[dict[str, Any]]] = collections.defaultdict(list)
            for r in sorted(self.reports, key=lambda r: (r["reported_date"], r["_id"])):
                if r["form"] == form:
                    found[patient(r)].append(r)
            return found

        def danger(report: dict[str, Any]) -> bool:
            return text(dig(report, "fields", "danger_signs", "r_danger_sign_present")) == "yes"

        def number(value: Any) -> int | None:
            return int(value) if text(value) is not None else None

        def words(ref: str, code: Any) -> str | None:
            return choice_words("delivery", ref).get(text(code) or "", text(code))

        registrations, deliveries = by_patient("pregnancy"), by_patient("delivery")
        visits, dangers = by_patient("pregnancy_home_visit"), by_patient("pregnancy_danger_sign")
        rows = []
        for who, own in registrations.items():
            for i, report in enumerate(own):
                start = report["reported_date"]
                end = own[i + 1]["reported_date"] if i + 1 < len(own) else float("inf")
                delivery = next(
                    (d for d in deliveries.get(who, []) if start <= d["reported_date"] < end), None
                )
                until = min(end, delivery["reported_date"] + 1 if delivery else end)
                in_span = [
                    (r, form) for form, found in (("visit", visits), ("danger", dangers))
                    for r in found.get(who, []) if start <= r["reported_date"] < until
                ]  # fmt: skip
                fields, outcome = report["fields"], (delivery or {}).get("fields", {})
                edd, on = (
                    text(fields.get("edd_8601")),
                    text(dig(outcome, "delivery_outcome", "delivery_date")),
                )
                area = self.area(who)
                rows.append(
                    {
                        "uuid": report["_id"],
                        "patient_name": (self.contacts.get(who or "") or {}).get("name")
                        or text(fields.get("patient_name")),
                        "reported": datetime.fromtimestamp(start / 1000, UTC),
                        "edd": date.fromisoformat(edd) if edd else None,
                        "anc_visits": sum(1 for _, form in in_span if form == "visit"),
                        "danger_signs": sum(1 for r, _ in in_span if danger(r)) + danger(report),
                        "delivered": delivery is not None,
                        "delivery_date": date.fromisoformat(on) if on else None,
                        "delivery_place": text(dig(outcome, "delivery_outcome", "delivery_place")),
                        "woman_outcome": text(dig(outcome, "condition", "woman_outcome")),
                        "delivery_place_label": words(
                            PLACE_REF, dig(outcome, "delivery_outcome", "delivery_place")
                        ),
                        "woman_outcome_label": words(OUTCOME_REF, dig(outcome, "condition", "woman_outcome")),
                        "babies_alive": number(dig(outcome, "delivery_outcome", "babies_alive_num")),
                        "babies_deceased": number(dig(outcome, "delivery_outcome", "babies_deceased_num")),
                        "district_hospital_name": self.name_at(area, "district_hospital"),
                        "health_center_name": self.name_at(area, "health_center"),
                        "clinic_name": self.name_at(area, "clinic"),
                        "area": area,
                    }
                )
        return rows

    def users(self) -> list[dict[str, Any]]:
        """One row per user-settings name: last activity is the latest of the contact's last
        report, the newest telemetry day (UTC midnight) and the user's last task state change."""

        def ms(value: Any) -> datetime:
            return datetime.fromtimestamp(int(value) / 1000, UTC)

        last_report: dict[str, datetime] = {}
        for record in self.records:
            contact = text(dig(record, "contact", "_id"))
            if contact and record.get("reported_date") is not None:
                when = ms(record["reported_date"])
                last_report[contact] = max(when, last_report.get(contact, when))
        telemetry: dict[str, tuple[date, str, str | None]] = {}
        for doc in self.telemetry:
            meta = doc.get("metadata") or {}
            day = telemetry_day(meta)
            user = text(meta.get("user"))
            if day is None or user is None:
                continue
            entry = (day, doc["_id"], text(dig(meta, "versions", "app")))
            telemetry[user] = max(entry, telemetry.get(user, entry), key=lambda e: (e[0], e[1]))
        task_change: dict[str, datetime] = {}
        for task in self.tasks:
            user = (text(task.get("user")) or "").removeprefix("org.couchdb.user:")
            changes = [
                ms(h["timestamp"])
                for h in task.get("stateHistory") or []
                if h.get("state") == task.get("state")
            ]
            if changes:
                task_change[user] = max(changes[-1], task_change.get(user, changes[-1]))
        rows, seen, now = [], set(), datetime.now(UTC).date()
        for doc in self.settings:
            name = text(doc.get("name"))
            if name is None or name in seen:
                continue
            seen.add(name)
            facility = doc.get("facility_id")
            facility = facility[0] if isinstance(facility, list) and facility else facility
            area = self.area(text(facility))
            day, _, version = telemetry.get(name, (None, "", None))
            times = [
                last_report.get(text(doc.get("contact_id")) or ""),
                datetime(day.year, day.month, day.day, tzinfo=UTC) if day else None,
                task_change.get(name),
            ]
            last = max((t for t in times if t is not None), default=None)
            days = (now - last.date()) if last else None
            rows.append(
                {
                    "user_name": name,
                    "fullname": text(doc.get("fullname")),
                    "health_center_name": self.name_at(area, "health_center"),
                    "clinic_name": self.name_at(area, "clinic"),
                    "app_version": version,
                    "active": days is not None and days.days < 7,
                    "synced": day is not None and day >= self.today - timedelta(days=7),
                    "Days since last activity": days.days if days else None,
                    "Last activity (UTC)": last.strftime("%Y-%m-%d %H:%M") if last else None,
                    "Last sync": day.isoformat() if day else None,
                    "area": area,
                }
            )
        return rows

    def population(self) -> list[dict[str, Any]]:
        """Living persons whose parent is a place of a lowest place type (a household)."""
        rows = []
        for doc in self.contacts.values():
            household = self.contacts.get(dig(doc, "parent", "_id") or "")
            if (
                self.ctype(doc) not in self.person_types
                or text(doc.get("date_of_death"))
                or household is None
                or self.ctype(household) not in self.leaf_types
            ):
                continue
            area = self.area(dig(household, "parent", "_id"))
            rows.append(
                {
                    "uuid": doc["_id"],
                    "sex": text(doc.get("sex")) or "unknown",
                    "age_band": self.age_band(text(doc.get("date_of_birth"))),
                    "district_hospital_name": self.name_at(area, "district_hospital"),
                    "health_center_name": self.name_at(area, "health_center"),
                    "clinic_name": self.name_at(area, "clinic"),
                    "area": area,
                }
            )
        return rows


def telemetry_day(meta: dict[str, Any]) -> date | None:
    """A telemetry doc's day; before CHT 3.8 a monthly doc (no day) counted months from 0."""
    year, month, day = (text(meta.get(k)) for k in ("year", "month", "day"))
    if not (year and month and year.isdigit() and month.isdigit()) or (day and not day.isdigit()):
        return None
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", text(dig(meta, "versions", "app")) or "")
    old = found is None or tuple(int(n) for n in found.groups()) < (3, 8, 0)
    try:
        return date(int(year), int(month) + (1 if not day and old else 0), int(day or 1))
    except ValueError:
        return None


def total(rows: list, count: Callable[[Any], int] = lambda _: 1) -> int | None:
    """SUM over rows: NULL when there are none."""
    return sum(count(row) for row in rows) if rows else None


def grouped(rows: list[dict], keys: Sequence[str], **metrics: Callable[[list[dict]], Any]) -> list[dict]:
    groups: dict[tuple, list[dict]] = collections.defaultdict(list)
    for row in rows:
        groups[tuple(row[k] for k in keys)].append(row)
    return [
        {**dict(zip(keys, key, strict=True)), **{label: f(members) for label, f in metrics.items()}}
        for key, members in groups.items()
    ]


def per_month(day: date) -> date:
    return day.replace(day=1)


def choice_words(form: str, ref: str) -> dict[str, str]:
    """code -> label of the select question `ref` in the demo's XForm `form` (plain labels)."""
    root = ET.fromstring((resources.files("cht_assets.demo") / "forms" / f"{form}.xml").read_bytes())  # noqa: S314
    question = next(e for e in root.iter() if e.tag.endswith("select1") and e.get("ref") == ref)
    items = [e for e in question if e.tag.endswith("item")]
    return {
        next(c.text for c in item if c.tag.endswith("value")): next(
            c.text for c in item if c.tag.endswith("label")
        )
        for item in items
    }


def form_labels(docs: list[dict[str, Any]], language: str) -> dict[str, str]:
    """Each form's title as the dashboards show it: an XForm's `translation_key`'s words in
    `language`, else English (a translation doc's `custom` over `generic` over `values`), else its
    title; an SMS form's from the app settings."""
    words: dict[str, str] = {}
    for lang in dict.fromkeys(("en", language)):  # the dashboards' language wins
        doc = next((d for d in docs if d["_id"] == f"messages-{lang}" and not d.get("_deleted")), {})
        for section in ("values", "generic", "custom"):
            words.update({k: v for k, v in (doc.get(section) or {}).items() if isinstance(v, str) and v})
    # The SMS forms of the app settings: `meta.translation_key`, else `meta.label` in the
    # language, else English, else the code. An XForm of the same id wins.
    settings = next((d for d in docs if d["_id"] == "settings" and not d.get("_deleted")), {})
    labels = {}
    for code, form in (dig(settings, "settings", "forms") or {}).items():
        meta = form.get("meta") or {}
        titles = meta.get("label") if isinstance(meta.get("label"), dict) else {}
        labels[code] = (
            words.get(meta.get("translation_key") or "") or titles.get(language) or titles.get("en") or code
        )
    labels.update(
        {
            d["internalId"]: words.get(d.get("translation_key") or "") or d.get("title") or d["internalId"]
            for d in docs
            if d.get("type") == "form" and d.get("internalId") and not d["_id"].startswith("form:contact:")
        }
    )
    return labels


def chart_rows(couch: Couch, facts: dict[str, list[dict]], slug: str, key: str) -> list[dict[str, Any]]:
    """What each chart must return, keyed by the labels of its columns and metrics."""
    activity, pregnancy, population = facts["activity"], facts["pregnancy"], facts["population"]
    users = facts["user"]
    delivered = [r for r in pregnancy if r["delivered"]]

    def past_edd(row: dict[str, Any]) -> bool:
        return not row["delivered"] and row["edd"] is not None and row["edd"] < couch.today

    def counted(test: Callable[[dict], bool]) -> Callable[[list[dict]], int]:
        return lambda rows: sum(1 for r in rows if test(r))

    counts = {  # metric label -> is a pregnancy row counted under it
        "Deliveries": lambda r: r["delivered"],
        "4+ ANC visits": lambda r: r["anc_visits"] >= 4,
        "Health facility": lambda r: r["delivered"] and r["delivery_place"] == "health_facility",
        "Home": lambda r: r["delivery_place"] == "home",
        "Other or not recorded": lambda r: r["delivery_place"] not in ("health_facility", "home"),
    }
    label = {  # metric label -> its value over a group of rows
        "Reports": len,
        "Active weeks": lambda rows: len({r["week"] for r in rows}),
        "Persons": len,
        "Under 5": lambda rows: sum(r["age_band"] == "00-04" for r in rows),
        "Women 15-49": lambda rows: sum(r["age_band"] == "15-49" and r["sex"] == "female" for r in rows),
    }
    models: dict[tuple[str, str], Callable[[], list[dict]]] = {
        ("chw-activity", "reports"): lambda: [{"Reports": total(activity)}],
        ("chw-activity", "active_chws"): lambda: [{"CHWs": len({r["chw"] for r in activity if r["chw"]})}],
        ("chw-activity", "reports_by_form"): lambda: grouped(activity, ["form_label"], Reports=len),
        ("chw-activity", "reports_per_week"): lambda: [
            {**row, "week": couch.bucket(row["week"])}
            for row in grouped(activity, ["week", "form_label"], Reports=len)
        ],
        ("chw-activity", "reports_by_chw"): lambda: grouped(
            activity,
            ["chw_name", "health_center_name"],
            Reports=label["Reports"],
            **{"Active weeks": label["Active weeks"]},
        ),
        ("pregnancy-and-births", "pregnancies"): lambda: [
            {"Pregnancies": len({r["uuid"] for r in pregnancy})}
        ],
        ("pregnancy-and-births", "deliveries"): lambda: [
            {"Deliveries": total(pregnancy, counts["Deliveries"])}
        ],
        ("pregnancy-and-births", "anc4"): lambda: [
            {"4+ ANC visits": total(pregnancy, counts["4+ ANC visits"])}
        ],
        ("pregnancy-and-births", "facility_deliveries"): lambda: [
            {"Facility deliveries": total(pregnancy, counts["Health facility"])}
        ],
        ("pregnancy-and-births", "past_edd"): lambda: [{"Past EDD": total(pregnancy, past_edd)}],
        ("pregnancy-and-births", "registered_per_month"): lambda: [
            {**row, "reported": couch.bucket(row["reported"])}
            for row in grouped(
                [{**r, "reported": per_month(r["reported"].astimezone(couch.tz).date())} for r in pregnancy],
                ["reported"],
                Pregnancies=len,
                **{"4+ ANC visits": counted(counts["4+ ANC visits"])},
            )
        ],
        ("pregnancy-and-births", "deliveries_per_month"): lambda: [
            {**row, "delivery_date": couch.bucket(row["delivery_date"])}
            for row in grouped(
                [
                    {**r, "delivery_date": per_month(r["delivery_date"])}
                    for r in delivered
                    if r["delivery_date"]
                ],
                ["delivery_date"],
                **{
                    name: counted(counts[name])
                    for name in ("Health facility", "Home", "Other or not recorded")
                },
            )
        ],
        ("pregnancy-and-births", "outcomes"): lambda: grouped(
            delivered,
            ["district_hospital_name", "health_center_name"],
            Deliveries=len,
            **{"In a health facility": counted(counts["Health facility"])},
            **{
                f"Mother {words}": counted(lambda r, c=code: r["woman_outcome"] == c)
                for code, words in MOTHER
            },
            **{"Babies alive": lambda rows: sum(r["babies_alive"] or 0 for r in rows)},
            **{"Babies deceased": lambda rows: sum(r["babies_deceased"] or 0 for r in rows)},
        ),
        ("pregnancy-and-births", "overdue"): lambda: [r for r in pregnancy if past_edd(r)],
        ("pregnancy-and-births", "place_and_outcome"): lambda: grouped(
            [r for r in pregnancy if r["delivered"]],
            ["delivery_place_label", "woman_outcome_label"],
            Deliveries=len,
        ),
        ("chw-activity", "users_active"): lambda: [{"Active users": total(users, lambda r: r["active"])}],
        ("chw-activity", "users_inactive"): lambda: [
            {"Inactive users": total(users, lambda r: not r["active"])}
        ],
        ("chw-activity", "not_synced"): lambda: [{"Not synced": total(users, lambda r: not r["synced"])}],
        ("chw-activity", "app_versions"): lambda: grouped(users, ["app_version"], Users=len),
        ("chw-activity", "users"): lambda: [
            {**r, "Synced in 7 days": "Yes" if r["synced"] else "No"} for r in users
        ],
        ("population", "persons"): lambda: [{"Persons": total(population)}],
        ("population", "under_five"): lambda: [
            {"Under 5": total(population, lambda r: r["age_band"] == "00-04")}
        ],
        ("population", "by_sex"): lambda: grouped(population, ["sex"], Persons=len),
        ("population", "by_age"): lambda: grouped(population, ["age_band", "sex"], Persons=len),
        ("population", "by_place"): lambda: grouped(
            population,
            ["district_hospital_name", "health_center_name", "clinic_name"],
            **{name: label[name] for name in ("Persons", "Under 5", "Women 15-49")},
        ),
    }
    if (slug, key) not in models:
        raise AssertionError(f"{slug}/{key}: no Python model for this chart: add one to this test")
    return models[(slug, key)]()


def labels(chart: ChartSpec) -> list[str]:
    """The keys of a chart-data row: the x axis, groupby or raw columns, then metric labels."""
    axis = [chart.x_axis] if chart.viz_type == "echarts_timeseries_bar" else []
    return [*axis, *chart.groupby, *chart.columns, *(m.label for m in chart.metrics)]


def under(place: str | None) -> Callable[[dict], bool]:
    return lambda row: place is None or place in row["area"]


# --- the pipeline, then Superset ------------------------------------------------------------------


@dataclass(frozen=True)
class DemoManager:
    username: str
    password: str
    level: str
    name: str
    place: str  # uuid, from the docs
    other: str  # a place of the same level they must not see
    password_env: str


@dataclass
class Demo:
    deployment: Deployment
    couch: Couch
    facts: dict[str, list[dict]]
    runs: list[dict[dg.AssetKey, dict[str, Any]]]
    specs: list[DashboardSpec]
    database: DatabaseConnection
    relations: list[str]
    layers: collections.Counter
    synced: tuple[datetime, datetime]  # around the raw sync
    managers: dict[str, DemoManager] = field(default_factory=dict)

    def spec(self, slug: str) -> DashboardSpec:
        return next(spec for spec in self.specs if spec.slug == slug)

    def facts_under(self, place: str | None) -> dict[str, list[dict]]:
        return {name: [r for r in rows if under(place)(r)] for name, rows in self.facts.items()}


def pick_managers(couch: Couch) -> dict[str, DemoManager]:
    """A health center of the first district hospital, and the second district hospital."""
    by_type: dict[str, list[dict]] = collections.defaultdict(list)
    for doc in couch.contacts.values():
        by_type[couch.ctype(doc)].append(doc)
    hospitals = sorted(by_type["district_hospital"], key=lambda d: d["name"])
    assert len(hospitals) >= 2, "the demo needs two district hospitals"
    centers = sorted(
        (d for d in by_type["health_center"] if couch.area(d["_id"])[1] == hospitals[0]["_id"]),
        key=lambda d: d["name"],
    )
    for level in ("district_hospital", "health_center"):
        names = [d["name"] for d in by_type[level]]
        assert len(set(names)) == len(names), f"{level} names are not unique: access.yaml names places"
    hc, other_hc = centers[0], centers[1]
    return {
        "health_center": DemoManager(
            "demo_hc_manager", f"hc-{SESSION}", "health_center", hc["name"],
            hc["_id"], other_hc["_id"], "CHT_DEMO_PW_HC",
        ),
        "district_hospital": DemoManager(
            "demo_dh_manager", f"dh-{SESSION}", "district_hospital",
            hospitals[1]["name"], hospitals[1]["_id"], hospitals[0]["_id"], "CHT_DEMO_PW_DH",
        ),
    }  # fmt: skip


def access_yaml(managers: dict[str, DemoManager]) -> dict[str, Any]:
    return {
        "levels": ["district_hospital", "health_center", "clinic"],
        "postgres": {"view_schemas": ["public"], "view_prefixes": ["contactview_", "formview_", "useview_"]},
        "managers": [
            {
                "user": m.username,
                "password_env": m.password_env,
                "places": [{m.level: m.name}],
                "dashboards": list(AREA_DASHBOARDS),
            }
            for m in managers.values()
        ],
    }


@pytest.fixture(scope="module")
def demo(
    request: pytest.FixtureRequest,
    couch_server,
    embedded_pg_admin_url: str,
    superset_server: SupersetServer,
    admin: SupersetClient,
    superset_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Demo]:
    deployment = None
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(standin_kept(request, admin))
            pg_url = stack.enter_context(contextlib.contextmanager(fresh_database)(embedded_pg_admin_url))
            patch = stack.enter_context(pytest.MonkeyPatch.context())
            patch.setenv("SUPERSET_DATABASE_NAME", f"CHT demo {SESSION}")  # own datasets
            deployment = new_deployment(couch_server.url, pg_url, patch)
            generated = generate(SEED, HOUSEHOLDS)
            report = load_deployment(couch_clients(couch_server.url), generated, db_prefix=deployment.prefix)
            assert report.error_count == 0, report.errors

            started = datetime.now(UTC)
            result = materialize_pipeline(deployment)
            synced = (started, datetime.now(UTC))
            failed = [c.check_name for c in result.get_asset_check_evaluations() if not c.passed]
            assert result.success and failed == [], failed

            with psycopg.connect(pg_url) as conn:
                today, zone = conn.execute("SELECT current_date, current_setting('TimeZone')").fetchone()
            couch = Couch(deployment.docs(), deployment.docs("-users-meta"), today, ZoneInfo(zone))
            managers = pick_managers(couch)
            for m in managers.values():
                patch.setenv(m.password_env, m.password)
            access_path = tmp_path_factory.mktemp("demo-access") / "access.yaml"
            access_path.write_text(yaml.safe_dump(access_yaml(managers), sort_keys=False))

            view_assets = build_view_assets()
            sources = published_datasets(view_assets)
            assets = build_superset_assets(sources, access_path=access_path)
            resources = {
                "superset": SupersetResource(url=superset_server.url),
                "postgres": PostgresResource(url=pg_url),
            }
            with support.dagster_instance() as instance:
                runs = [materialize_superset(assets, resources, instance) for _ in range(2)]
            yield Demo(
                deployment=deployment,
                couch=couch,
                facts={
                    "activity": couch.activity(),
                    "pregnancy": couch.pregnancies(),
                    "population": couch.population(),
                    "user": couch.users(),
                },
                runs=runs,
                specs=[spec for spec in load_dashboards() if spec.slug in SLUGS],
                database=superset_connection(pg_url),
                relations=[s.relation for s in sources],
                layers=collections.Counter(key.path[0] for a in view_assets for key in a.keys),
                synced=synced,
                managers=managers,
            )
    finally:
        if deployment is not None:
            for suffix in SUFFIXES:
                with contextlib.suppress(Exception):
                    deployment.client(suffix).delete_db()


def chart_ids(admin: SupersetClient, slug: str) -> dict[str, int]:
    dashboard = admin.get(f"/api/v1/dashboard/{slug}")["result"]
    return {
        c["slice_name"]: c["id"] for c in admin.get(f"/api/v1/dashboard/{dashboard['id']}/charts")["result"]
    }


def dataset_id(admin: SupersetClient, demo: Demo, relation: str) -> int:
    source = DatasetSource(("useviews", relation), "public", relation)
    return admin.find("dataset", uuid=dataset_uuid(demo.database, source))[0]["id"]


def rows_of(client: SupersetClient, dataset: int, columns: list[str], **query: Any) -> list[dict]:
    """Rows as they are (no metrics: not grouped), through the chart-data API."""
    body = {
        "datasource": {"id": dataset, "type": "table"},
        "queries": [{"columns": columns, "metrics": None, "row_limit": 100000, "orderby": [], **query}],
        "result_format": "json",
        "result_type": "full",
    }
    return client.post("/api/v1/chart/data", body)["result"][0]["data"]


def compare(
    client: SupersetClient, demo: Demo, chart_id: int, chart: ChartSpec, slug: str, place: str | None
):
    result = client.get(f"/api/v1/chart/{chart_id}/data/")["result"][0]
    keys = labels(chart)
    want = expect.actual(keys, chart_rows(demo.couch, demo.facts_under(place), slug, chart.key))
    got = expect.actual(keys, result["data"])
    assert len(result["data"]) < chart.row_limit, f"{slug}/{chart.key}: row_limit cuts the chart"
    assert expect.same(got, want), f"{slug}/{chart.key} (place {place}):\n{got}\n!=\n{want}"
    return result, got


# --- 2. idempotent ---------------------------------------------------------------------------------


def test_two_runs_leave_each_dashboard_once_with_stable_ids(admin: SupersetClient, demo: Demo) -> None:
    """Every Superset asset ran twice on the real views: same ids, one of each object, no churn."""
    first, second = demo.runs
    assert set(first) == set(second)
    assert len([k for k in first if k.path[:2] == ["superset", "datasets"]]) == len(demo.relations) > 20
    for key in first:
        if "superset_id" in first[key]:
            assert first[key]["superset_id"] == second[key]["superset_id"], key
    for spec in demo.specs:
        found = admin.find("dashboard", slug=spec.slug)
        assert len(found) == 1 and found[0]["id"] == second[dashboard_key(spec)]["superset_id"], spec.slug
        assert len(admin.find("dashboard", dashboard_title=spec.title)) == 1, spec.title
        charts = admin.get(f"/api/v1/dashboard/{found[0]['id']}/charts")["result"]
        assert sorted(c["slice_name"] for c in charts) == sorted(c.title for c in spec.charts)
        for chart in spec.charts:
            assert len(admin.find("chart", uuid=spec.chart_uuid(chart))) == 1
        assert second[dashboard_key(spec)]["charts_removed"] == 0
    databases = [d for d in admin.list_all("database") if d["database_name"] == demo.database.name]
    assert len(databases) == 1 and databases[0]["id"] == second[DATABASE_KEY]["superset_id"]
    assert second[ACCESS_KEY]["created"] == [] and second[ACCESS_KEY]["removed"] == []
    assert second[ACCESS_KEY]["managers"] == len(demo.managers)


# --- 3. every chart = Python over the CouchDB docs ------------------------------------------------


@pytest.mark.parametrize("slug", AREA_DASHBOARDS)
def test_every_chart_equals_python_over_the_couchdb_docs(
    slug: str, admin: SupersetClient, demo: Demo
) -> None:
    """Every chart's saved query, through Superset, returns what Python computes from the docs."""
    spec = demo.spec(slug)
    ids = chart_ids(admin, slug)
    for chart in spec.charts:
        _, got = compare(admin, demo, ids[chart.title], chart, slug, None)
        assert got, f"{slug}/{chart.key}: the demo data should give this chart rows"
    print(f"\n{slug}: " + ", ".join(f"{k}={len(v)}" for k, v in demo.facts.items()))


def changes_after(deployment: Deployment, suffix: str, since: str) -> int:
    response = deployment.client(suffix)._request("GET", "/_changes", params={"since": since})
    return len(response.json()["results"])


def test_data_freshness_equals_couchdb(admin: SupersetClient, demo: Demo) -> None:
    """Seq and pending per database from CouchDB itself; sync times and lag within the sync's
    window and the clock at query time (they depend on `now()`)."""
    spec, ids = demo.spec("data-freshness"), chart_ids(admin, "data-freshness")
    charts = {chart.key: chart for chart in spec.charts}
    assert set(charts) == {"max_lag", "pending", "pending_by_source", "sources", "layers"}, (
        "model the new chart"
    )

    def data(key: str) -> list[dict]:
        return admin.get(f"/api/v1/chart/{ids[charts[key].title]}/data/")["result"][0]["data"]

    before = datetime.now(UTC)
    sources = {row["source"]: row for row in data("sources")}
    after = datetime.now(UTC)
    dbs = {demo.deployment.prefix + suffix: suffix for suffix in SUFFIXES}
    assert set(sources) == set(dbs)
    expected_pending = {}
    for db, suffix in dbs.items():
        row = sources[db]
        assert str(row["seq"]) == str(demo.deployment.client(suffix).db_info()["update_seq"]), db
        expected_pending[db] = changes_after(demo.deployment, suffix, str(row["seq"]))
        assert row["pending"] == expected_pending[db], db
        synced_at = datetime.fromtimestamp(row["synced_at"] / 1000, UTC)
        assert demo.synced[0] - timedelta(seconds=1) <= synced_at <= demo.synced[1], (db, synced_at)
        assert (
            (before - synced_at).total_seconds() - 0.1
            <= row["lag_seconds"]
            <= (after - synced_at).total_seconds() + 0.1
        ), (db, row["lag_seconds"])
    (pending,) = data("pending")
    assert pending["Pending"] == sum(expected_pending.values())
    assert {r["source"]: r["Pending"] for r in data("pending_by_source")} == expected_pending
    before = datetime.now(UTC)
    (lag,) = data("max_lag")
    after = datetime.now(UTC)
    oldest = min(datetime.fromtimestamp(r["synced_at"] / 1000, UTC) for r in sources.values())
    assert (before - oldest).total_seconds() - 0.1 <= lag["Lag (s)"] <= (after - oldest).total_seconds() + 0.1
    layers = {row["layer"]: row for row in data("layers")}
    assert {layer: row["Objects"] for layer, row in layers.items()} == dict(demo.layers)
    for layer, row in layers.items():
        refreshed = datetime.strptime(row["Last refresh (UTC)"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        assert demo.synced[0] - timedelta(seconds=1) <= refreshed <= demo.synced[1], layer
    print(f"\ndata-freshness: pending {expected_pending}, lag {lag['Lag (s)']}s, layers {dict(demo.layers)}")


# --- 4. managers on real data ----------------------------------------------------------------------

ROW_KEYS = {  # per hierarchy dataset: the column naming a doc, and the doc whose chain must hold the place
    "useview_chw_activity": "chw_uuid",
    "useview_pregnancy": "uuid",
    "useview_population": "area_uuid",
    "useview_user": "user_name",
}


def owner(demo: Demo, relation: str, value: str) -> tuple[str, ...]:
    """The places a dataset row rolls up to, according to the docs' parent chains."""
    couch = demo.couch
    if relation == "useview_pregnancy":
        report = next(r for r in couch.reports if r["_id"] == value)
        value = text(dig(report, "fields", "patient_uuid")) or text(
            dig(report, "fields", "inputs", "contact", "_id")
        )
    if relation == "useview_user":
        facility = next(d for d in couch.settings if d.get("name") == value).get("facility_id")
        value = facility[0] if isinstance(facility, list) else facility
    return couch.area(value)


def as_list(value: Any) -> list[str]:
    return json.loads(value) if isinstance(value, str) else list(value or [])


@pytest.mark.parametrize("who", ["health_center", "district_hospital"])
def test_a_manager_sees_only_rows_under_their_place(
    who: str, admin: SupersetClient, demo: Demo, superset_server: SupersetServer
) -> None:
    """Charts equal Python over the docs under their place; the rows are exactly those whose docs'
    parent chains hold the place; another area's rows and the freshness datasets are out of reach."""
    manager = demo.managers[who]
    with SupersetClient(superset_server.url, manager.username, manager.password) as client:
        assert {d["slug"] for d in client.list_all("dashboard")} == set(AREA_DASHBOARDS)
        for slug in AREA_DASHBOARDS:
            ids = chart_ids(admin, slug)
            for chart in demo.spec(slug).charts:
                result, got = compare(client, demo, ids[chart.title], chart, slug, manager.place)
                assert got and AREA_COLUMN in result["query"], f"{slug}/{chart.key}"
        level_column = f"{manager.level}_uuid"
        for relation, key in ROW_KEYS.items():
            dataset = dataset_id(admin, demo, relation)
            rows = rows_of(client, dataset, [key, AREA_COLUMN])
            everything = rows_of(admin, dataset, [key, AREA_COLUMN])
            assert 0 < len(rows) < len(everything), relation
            # Exactly the rows whose docs roll up to their place: none missing, none foreign.
            assert sorted(r[key] for r in rows) == sorted(
                r[key] for r in everything if manager.place in owner(demo, relation, r[key])
            ), relation
            assert all(manager.place in as_list(r[AREA_COLUMN]) for r in rows), relation
            # Another area: there for the admin, empty for the manager, even asked for by name.
            other = [{"col": level_column, "op": "==", "val": manager.other}]
            assert rows_of(admin, dataset, [key], filters=other), relation
            assert rows_of(client, dataset, [key], filters=other) == [], relation
            for trick in ["1=1) OR (1=1", "true OR true"]:
                try:
                    leaked = rows_of(client, dataset, [key], filters=other, extras={"where": trick})
                except SupersetAPIError as error:
                    assert error.status in (400, 403, 422), error
                else:
                    assert leaked == [], (relation, trick)
        for relation in ("useview_data_freshness", "useview_refresh_status"):  # not their dashboards
            with pytest.raises(SupersetAPIError) as denied:
                rows_of(
                    client,
                    dataset_id(admin, demo, relation),
                    ["source" if "freshness" in relation else "layer"],
                )
            assert denied.value.status in (403, 404)
    print(
        f"\n{who} {manager.name!r}: "
        + ", ".join(f"{k}={len(v)}" for k, v in demo.facts_under(manager.place).items())
    )


# --- 5. screenshots ---------------------------------------------------------------------------------


def test_each_dashboard_renders_the_demo_data(
    browser: Chromium, superset_server: SupersetServer, demo: Demo
) -> None:
    """Headless Chromium: every chart drawn, no error box, the big numbers on screen = Python's."""
    browser.send("Network.clearBrowserCookies", session=True)
    browser.set_cookie(
        superset_server.url, "session", browser_session(superset_server.url, *admin_credentials())
    )
    facts = demo.facts
    headline = {
        "Reports submitted": len(facts["activity"]),
        "Active CHWs": len({r["chw"] for r in facts["activity"] if r["chw"]}),
        "Pregnancies registered": len(facts["pregnancy"]),
        "Deliveries": sum(r["delivered"] for r in facts["pregnancy"]),
        "Persons": len(facts["population"]),
        "Children under 5": sum(r["age_band"] == "00-04" for r in facts["population"]),
        "Pending changes": 0,
    }
    for slug in SLUGS:
        spec = demo.spec(slug)
        shot = SCREENSHOTS / f"demo-{slug}.png"
        state = render(browser, superset_server, spec, shot)
        check(state, spec, shot)
        for title, value in headline.items():
            if title in state["texts"]:
                assert f"{value:,}" in state["texts"][title], (title, state["texts"][title])
