"""Stand-ins for the use views Superset publishes: the same names and columns, known rows.

The rows live in tables of a `standin` schema; the `useview_*` objects in `public` are views over
them (so a test can add a column the way a view change would). A `raw` schema with a `_users`
doc and couch2pg's compatibility view over it sit next to them, as in the real database, to
prove neither PostgreSQL role can read them.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
from psycopg import sql

from tests.support.oracles_maternal import words

VIEW_SCHEMA = "public"

# (uuid, name, parent uuid). One uuid holds a quote and one name an apostrophe: both reach RLS
# clauses and filters, and must be quoted, not pasted.
DISTRICTS = [("dh-north", "North District Hospital", None), ("dh-south", "South District Hospital", None)]
HEALTH_CENTERS = [
    ("hc-n1", "Kondele Health Center", "dh-north"),
    ("hc-n2", "Manyatta Health Center", "dh-north"),
    ("hc-s1", "St Mary's Health Center", "dh-south"),
]
CLINICS = [
    ("cl-n1a", "Kondele A", "hc-n1"),
    ("cl-n1b", "Kondele B", "hc-n1"),
    ("cl-n2a", "Manyatta A", "hc-n2"),
    ("cl-s1'a", "St Mary's A", "hc-s1"),
]
PLACES = {uuid: (name, parent) for uuid, name, parent in DISTRICTS + HEALTH_CENTERS + CLINICS}
FORMS = ("pregnancy", "delivery", "assessment")
WEEKS = [date(2026, 9, 7) + timedelta(weeks=n) for n in range(6)]  # Mondays
SEXES = ("female", "male")
AGE_BANDS = ("00-04", "05-14", "15-49", "50+")

HIERARCHY_COLUMNS = [
    ("area_uuids", "text[]"),
    ("district_hospital_uuid", "text"),
    ("district_hospital_name", "text"),
    ("health_center_uuid", "text"),
    ("health_center_name", "text"),
    ("clinic_uuid", "text"),
    ("clinic_name", "text"),
]

COLUMNS: dict[str, list[tuple[str, str]]] = {
    "useview_chw_activity": [
        ("chw_uuid", "text"),
        ("chw_name", "text"),
        ("week", "date"),
        ("form", "text"),
        ("form_label", "text"),
        ("reports", "integer"),
        *HIERARCHY_COLUMNS,
    ],
    "useview_pregnancy": [
        ("uuid", "text"),
        ("patient_uuid", "text"),
        ("patient_name", "text"),
        ("reported", "timestamptz"),
        ("lmp_date", "date"),
        ("edd", "date"),
        ("gestational_age_weeks", "integer"),
        ("lmp_method", "text"),
        ("lmp_method_label", "text"),
        ("anc_visits", "integer"),
        ("danger_signs", "integer"),
        ("delivered", "boolean"),
        ("delivery_uuid", "text"),
        ("delivery_date", "date"),
        ("delivery_place", "text"),
        ("delivery_place_label", "text"),
        ("babies_alive", "integer"),
        ("babies_deceased", "integer"),
        ("woman_outcome", "text"),
        ("woman_outcome_label", "text"),
        ("state", "text"),
        *HIERARCHY_COLUMNS,
    ],
    "useview_task": [
        ("uuid", "text"),
        ("user_name", "text"),
        ("chw_uuid", "text"),
        ("chw_name", "text"),
        ("owner_uuid", "text"),
        ("requester_uuid", "text"),
        ("emission_id", "text"),
        ("title", "text"),
        ("title_label", "text"),
        ("form", "text"),
        ("source_id", "text"),
        ("authored", "timestamptz"),
        ("due_date", "date"),
        ("start_date", "date"),
        ("end_date", "date"),
        ("ready_at", "timestamptz"),
        ("state", "text"),
        ("state_at", "timestamptz"),
        ("completed_on_time", "boolean"),
        ("month", "date"),
        *HIERARCHY_COLUMNS,
    ],
    "useview_task_monthly": [
        ("user_name", "text"),
        ("chw_uuid", "text"),
        ("chw_name", "text"),
        ("month", "date"),
        ("tasks_due", "integer"),
        ("completed", "integer"),
        ("completed_on_time", "integer"),
        ("failed", "integer"),
        ("cancelled", "integer"),
        ("completion_rate", "numeric"),
        *HIERARCHY_COLUMNS,
    ],
    "useview_target": [
        ("uuid", "text"),
        ("user_name", "text"),
        ("chw_uuid", "text"),
        ("chw_name", "text"),
        ("reporting_period", "text"),
        ("month", "date"),
        ("target_id", "text"),
        ("pass", "integer"),
        ("total", "integer"),
        ("percent", "numeric"),
        ("goal", "numeric"),
        ("target_type", "text"),
        ("label", "text"),
        ("target_label", "text"),
        ("met_goal", "boolean"),
        *HIERARCHY_COLUMNS,
    ],
    "useview_target_area": [
        ("health_center_uuid", "text"),
        ("health_center_name", "text"),
        ("district_hospital_uuid", "text"),
        ("district_hospital_name", "text"),
        ("area_uuids", "text[]"),
        ("month", "date"),
        ("reporting_period", "text"),
        ("target_id", "text"),
        ("label", "text"),
        ("target_label", "text"),
        ("target_type", "text"),
        ("goal", "numeric"),
        ("chws", "integer"),
        ("pass", "integer"),
        ("total", "integer"),
        ("percent", "numeric"),
        ("chws_meeting_goal", "integer"),
    ],
    "useview_user": [
        ("user_name", "text"),
        ("user_id", "text"),
        ("fullname", "text"),
        ("email", "text"),
        ("phone", "text"),
        ("roles", "text[]"),
        ("facility_uuid", "text"),
        ("facility_uuids", "text[]"),
        ("contact_uuid", "text"),
        ("language", "text"),
        ("known", "boolean"),
        ("first_report", "timestamptz"),
        ("last_report", "timestamptz"),
        ("last_telemetry_date", "date"),
        ("app_version", "text"),
        ("last_activity", "timestamptz"),
        ("days_since_last_activity", "integer"),
        ("active_7d", "boolean"),
        *HIERARCHY_COLUMNS,
    ],
    "useview_population": [
        ("area_uuid", "text"),
        ("sex", "text"),
        ("age_band", "text"),
        ("persons", "integer"),
        ("households", "integer"),
        *HIERARCHY_COLUMNS,
    ],
    "useview_data_freshness": [
        ("source", "text"),
        ("seq", "text"),
        ("pending", "bigint"),
        ("synced_at", "timestamptz"),
        ("lag_seconds", "numeric"),
    ],
    "useview_refresh_status": [("object", "text"), ("layer", "text"), ("refreshed_at", "timestamptz")],
}
DAYS_INACTIVE = {"cl-n1a": 0, "cl-n1b": 9, "cl-n2a": 30, "cl-s1'a": 2}  # 30: never synced
HIERARCHY_VIEWS = tuple(view for view, columns in COLUMNS.items() if ("area_uuids", "text[]") in columns)
MONTHS = [date(2026, m, 1) for m in (8, 9, 10, 11)]
TARGETS = [  # (id, type, goal): one without a goal
    ("pregnancy-registrations-this-month", "count", 2),
    ("active-pregnancies-1+-visits", "percent", 80),
    ("births-this-month", "count", None),
]
TASK_STATES = ("Completed", "Completed", "Completed", "Ready", "Failed", "Cancelled")
# A CHW name that reaches filters, tables and labels: quotes, markup and a SQL comment.
HOSTILE_NAME = 'O\'Brien "Bobby" <b>x</b> --'


def lineage(place: str) -> list[str]:
    """The place and its ancestors, bottom up."""
    chain = []
    current: str | None = place
    while current is not None:
        chain.append(current)
        current = PLACES[current][1]
    return chain


def hierarchy(place: str) -> dict[str, object]:
    chain = lineage(place)
    by_level = {}
    for uuid in chain:
        level = (
            "district_hospital"
            if uuid.startswith("dh-")
            else "health_center"
            if uuid.startswith("hc-")
            else "clinic"
        )
        by_level[level] = uuid
    row: dict[str, object] = {"area_uuids": chain}
    for level in ("district_hospital", "health_center", "clinic"):
        uuid = by_level.get(level)
        row[f"{level}_uuid"] = uuid
        row[f"{level}_name"] = PLACES[uuid][0] if uuid else None
    return row


@dataclass(frozen=True)
class StandIn:
    rows: dict[str, list[dict[str, object]]]

    def where(self, view: str, keep: Callable[[dict[str, object]], bool]) -> list[dict[str, object]]:
        return [row for row in self.rows[view] if keep(row)]


def under(place: str | None) -> Callable[[dict[str, object]], bool]:
    """Rows a manager of `place` may see (every row when `place` is None)."""
    if place is None:
        return lambda row: True
    return lambda row: place in (row.get("area_uuids") or [])


def pregnancies(rng: random.Random, clinic: str, clinic_name: str, today: date) -> list[dict[str, object]]:
    rows = []
    for n in range(rng.randint(4, 7)):
        reported = datetime(2026, 6, 1, 9, tzinfo=UTC) + timedelta(days=rng.randint(0, 140), hours=n)
        weeks = rng.randint(6, 20)
        lmp = reported.date() - timedelta(weeks=weeks)
        edd = lmp + timedelta(days=280)
        delivered = n % 2 == 0
        lost = not delivered and n == 3
        rows.append(
            {
                "uuid": f"preg-{clinic}-{n}",
                "patient_uuid": f"pat-{clinic}-{n}",
                "patient_name": f"Patient {n} of {clinic_name}",
                "reported": reported,
                "lmp_date": lmp,
                "edd": edd,
                "gestational_age_weeks": weeks,
                "lmp_method": rng.choice(["method_lmp", "method_approx"]),
                "anc_visits": rng.randint(0, 6),
                "danger_signs": rng.randint(0, 2),
                "delivered": delivered,
                "delivery_uuid": f"del-{clinic}-{n}" if delivered else None,
                "delivery_date": lmp + timedelta(days=rng.randint(250, 290)) if delivered else None,
                "delivery_place": rng.choice(["health_facility", "health_facility", "home", "other"])
                if delivered
                else None,
                "babies_alive": rng.choice([1, 1, 1, 2, 0]) if delivered else None,
                "babies_deceased": rng.choice([0, 0, 0, 1]) if delivered else None,
                "woman_outcome": rng.choice(["alive_well", "alive_well", "alive_unwell", "deceased"])
                if delivered
                else None,
                "state": "delivered"
                if delivered
                else "lost_to_follow_up"
                if lost
                else "overdue"
                if edd < today
                else "active",
                **hierarchy(clinic),
            }
        )
    # One pregnancy past its EDD, not delivered, in every clinic (whatever the random draws).
    rows[-1].update(delivered=False, delivery_uuid=None, delivery_date=None, delivery_place=None)
    rows[-1].update(babies_alive=None, babies_deceased=None, woman_outcome=None, state="overdue")
    rows[-1].update(lmp_date=today - timedelta(days=300), edd=today - timedelta(days=20))
    for row in rows:  # the forms' words for the codes, as useview_choice_label gives them
        for code in ("lmp_method", "delivery_place", "woman_outcome"):
            row[f"{code}_label"] = words(row[code])
    return rows


def tasks(
    rng: random.Random, user: str, chw: str, name: str, clinic: str, now: datetime
) -> list[dict[str, object]]:
    rows = []
    for month in MONTHS:
        for n in range(rng.randint(3, 6)):
            due = month + timedelta(days=rng.randint(0, 27))
            end = due + timedelta(days=7)
            state = TASK_STATES[(n + month.month) % len(TASK_STATES)]
            done_at = datetime(end.year, end.month, end.day, 15, tzinfo=UTC) + timedelta(
                days=rng.choice([-3, 2])
            )
            state_at = (
                min(done_at, now) if state != "Ready" else datetime(due.year, due.month, due.day, tzinfo=UTC)
            )
            rows.append(
                {
                    "uuid": f"task~{user}~{month:%Y%m}~{n}",
                    "user_name": user,
                    "chw_uuid": chw,
                    "chw_name": name,
                    "owner_uuid": f"pat-{clinic}-{n}",
                    "requester_uuid": f"pat-{clinic}-{n}",
                    "emission_id": f"emission-{clinic}-{month:%Y%m}-{n}",
                    "title": "task.anc.pregnancy_home_visit.title",
                    "title_label": "Pregnancy home visit",
                    "form": "pregnancy_home_visit",
                    "source_id": f"preg-{clinic}-{n}",
                    "authored": datetime(due.year, due.month, due.day, tzinfo=UTC) - timedelta(days=7),
                    "due_date": due,
                    "start_date": due - timedelta(days=7),
                    "end_date": end,
                    "ready_at": datetime(due.year, due.month, due.day, tzinfo=UTC) - timedelta(days=7),
                    "state": state,
                    "state_at": state_at,
                    "completed_on_time": state == "Completed" and state_at.date() <= end,
                    "month": month,
                    **hierarchy(clinic),
                }
            )
    return rows


def task_monthly(task: Sequence[dict[str, object]]) -> list[dict[str, object]]:
    groups: dict[tuple[object, object], list[dict[str, object]]] = {}
    for row in task:
        groups.setdefault((row["user_name"], row["month"]), []).append(row)
    rows = []
    for (user, month), items in groups.items():
        completed = sum(1 for r in items if r["state"] == "Completed")
        first = items[0]
        rows.append(
            {
                "user_name": user,
                "chw_uuid": first["chw_uuid"],
                "chw_name": first["chw_name"],
                "month": month,
                "tasks_due": len(items),
                "completed": completed,
                "completed_on_time": sum(1 for r in items if r["completed_on_time"]),
                "failed": sum(1 for r in items if r["state"] == "Failed"),
                "cancelled": sum(1 for r in items if r["state"] == "Cancelled"),
                "completion_rate": Decimal(completed) / len(items),
                **{name: first[name] for name, _ in HIERARCHY_COLUMNS},
            }
        )
    return rows


def targets(rng: random.Random, user: str, chw: str, name: str, clinic: str) -> list[dict[str, object]]:
    rows = []
    for month in MONTHS:
        for target_id, target_type, goal in TARGETS:
            total = rng.randint(0, 6) if target_type == "percent" else 0
            passed = rng.randint(0, total) if target_type == "percent" else rng.randint(0, 4)
            percent = Decimal(passed * 100) / total if total else None
            value = percent if target_type == "percent" else passed
            rows.append(
                {
                    "uuid": f"target~{month:%Y-%m}~{chw}~org.couchdb.user:{user}/{target_id}",
                    "user_name": user,
                    "chw_uuid": chw,
                    "chw_name": name,
                    "reporting_period": f"{month:%Y-%m}",
                    "month": month,
                    "target_id": target_id,
                    "pass": passed,
                    "total": total,
                    "percent": percent,
                    "goal": goal,
                    "target_type": target_type,
                    "label": f"targets.{target_id}.title",
                    "target_label": target_id.replace("-", " ").capitalize(),
                    "met_goal": None if goal is None or value is None else value >= goal,
                    **hierarchy(clinic),
                }
            )
    return rows


def target_area(target: Sequence[dict[str, object]]) -> list[dict[str, object]]:
    groups: dict[tuple[object, object, object], list[dict[str, object]]] = {}
    for row in target:
        groups.setdefault((row["health_center_uuid"], row["month"], row["target_id"]), []).append(row)
    rows = []
    for (center, month, target_id), items in groups.items():
        first = items[0]
        passed = sum(int(r["pass"]) for r in items)  # type: ignore[call-overload]
        total = sum(int(r["total"]) for r in items)  # type: ignore[call-overload]
        rows.append(
            {
                "health_center_uuid": center,
                "health_center_name": first["health_center_name"],
                "district_hospital_uuid": first["district_hospital_uuid"],
                "district_hospital_name": first["district_hospital_name"],
                "area_uuids": lineage(str(center)),
                "month": month,
                "reporting_period": first["reporting_period"],
                "target_id": target_id,
                "label": first["label"],
                "target_label": first["target_label"],
                "target_type": first["target_type"],
                "goal": first["goal"],
                "chws": len(items),
                "pass": passed,
                "total": total,
                "percent": Decimal(passed * 100) / total if total else None,
                "chws_meeting_goal": sum(1 for r in items if r["met_goal"]),
            }
        )
    return rows


def user_row(
    rng: random.Random, user: str, chw: str, name: str, clinic: str, now: datetime
) -> dict[str, object]:
    """Dated relative to `now` (the real time: the sync charts compare with CURRENT_DATE)."""
    days = DAYS_INACTIVE[clinic]
    activity = now - timedelta(days=days, hours=1)
    return {
        "user_name": user,
        "user_id": f"org.couchdb.user:{user}",
        "fullname": name,
        "email": f"{user}@example.org",
        "phone": "+254700000000",
        "roles": ["chw"],
        "facility_uuid": clinic,
        "facility_uuids": [clinic],
        "contact_uuid": chw,
        "language": "en",
        "known": days < 30,
        "first_report": datetime(2026, 6, 1, 8, tzinfo=UTC),
        "last_report": activity,
        "last_telemetry_date": None if days == 30 else activity.date(),
        "app_version": rng.choice(["4.21.0", "4.21.0", "4.20.1"]) if days < 30 else None,
        "last_activity": activity,
        "days_since_last_activity": days,
        "active_7d": days < 7,
        **hierarchy(clinic),
    }


def supervisor_row(now: datetime) -> dict[str, object]:
    """A supervisor at a district hospital who has never reported."""
    return {
        "user_name": "supervisor-south",
        "user_id": "org.couchdb.user:supervisor-south",
        "fullname": "South Supervisor",
        "email": None,
        "phone": None,
        "roles": ["chw_supervisor"],
        "facility_uuid": "dh-south",
        "facility_uuids": ["dh-south"],
        "contact_uuid": None,
        "language": None,
        "known": False,
        "first_report": None,
        "last_report": None,
        "last_telemetry_date": (now - timedelta(days=12)).date(),
        "app_version": "4.20.1",
        "last_activity": now - timedelta(days=12),
        "days_since_last_activity": 12,
        "active_7d": False,
        **hierarchy("dh-south"),
    }


def generate(seed: int = 7) -> StandIn:
    rng = random.Random(seed)
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    activity, pregnancy, population, task, target, users = [], [], [], [], [], []
    for clinic, clinic_name, _ in CLINICS:
        chw = f"chw-{clinic}"
        name = HOSTILE_NAME if clinic == "cl-n1b" else f"CHW of {clinic_name}"
        for week in WEEKS:
            for form in FORMS:
                reports = rng.randint(0, 5)
                if reports:
                    activity.append(
                        {
                            "chw_uuid": chw,
                            "chw_name": name,
                            "week": week,
                            "form": form,
                            "form_label": form.replace("_", " ").capitalize(),
                            "reports": reports,
                            **hierarchy(clinic),
                        }
                    )
        pregnancy += pregnancies(rng, clinic, clinic_name, date.today())
        user = f"user-{clinic}"
        task += tasks(rng, user, chw, name, clinic, now)
        target += targets(rng, user, chw, name, clinic)
        users.append(user_row(rng, user, chw, name, clinic, datetime.now(UTC)))
        for sex in SEXES:
            for band in AGE_BANDS:
                population.append(
                    {
                        "area_uuid": clinic,
                        "sex": sex,
                        "age_band": band,
                        "persons": rng.randint(5, 60),
                        "households": rng.randint(1, 10),
                        **hierarchy(clinic),
                    }
                )
    # A health-center-level row (no clinic): some hierarchy columns are NULL.
    population.append(
        {
            "area_uuid": "hc-n2",
            "sex": "female",
            "age_band": "50+",
            "persons": 3,
            "households": 1,
            **hierarchy("hc-n2"),
        }
    )
    freshness = [
        {
            "source": source,
            "seq": f"{1000 + i}-g1AAAA",
            "pending": pending,
            "synced_at": now - timedelta(seconds=lag),
            "lag_seconds": lag,
        }
        for i, (source, pending, lag) in enumerate(
            [("medic", 12, 40), ("medic-sentinel", 0, 15), ("medic-users-meta", 3, 75)]
        )
    ]
    refresh = [
        {"object": name, "layer": layer, "refreshed_at": now - timedelta(minutes=minutes)}
        for name, layer, minutes in [
            ("contactview_contact", "contactviews", 30),
            ("contactview_hierarchy", "contactviews", 29),
            ("formview_pregnancy", "formviews", 20),
            ("useview_chw_activity", "useviews", 10),
            ("useview_population", "useviews", 9),
        ]
    ]
    return StandIn(
        {
            "useview_chw_activity": activity,
            "useview_pregnancy": pregnancy,
            "useview_population": population,
            "useview_data_freshness": freshness,
            "useview_refresh_status": refresh,
            "useview_task": task,
            "useview_task_monthly": task_monthly(task),
            "useview_target": target,
            "useview_target_area": target_area(target),
            "useview_user": [*users, supervisor_row(datetime.now(UTC))],
        }
    )


def view_sql(view: str, extra: Sequence[str] = ()) -> sql.Composed:
    columns = [sql.Identifier(name) for name, _ in COLUMNS[view]] + [sql.SQL(e) for e in extra]
    return sql.SQL("CREATE OR REPLACE VIEW {}.{} AS SELECT {} FROM standin.{}").format(
        sql.Identifier(VIEW_SCHEMA), sql.Identifier(view), sql.SQL(", ").join(columns), sql.Identifier(view)
    )


def create(conninfo: str, data: StandIn) -> None:
    with psycopg.connect(conninfo) as conn, conn.transaction():
        conn.execute("CREATE SCHEMA standin")
        for view, columns in COLUMNS.items():
            defs = sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t in columns
            )
            conn.execute(sql.SQL("CREATE TABLE standin.{} ({})").format(sql.Identifier(view), defs))
            names = [name for name, _ in columns]
            with conn.cursor().copy(
                sql.SQL("COPY standin.{} ({}) FROM STDIN").format(
                    sql.Identifier(view), sql.SQL(", ").join(map(sql.Identifier, names))
                )
            ) as copy:
                for row in data.rows[view]:
                    copy.write_row([row[name] for name in names])
            conn.execute(view_sql(view))
        # The raw replica and couch2pg's compatibility view over it, as the pipeline makes them.
        conn.execute("CREATE SCHEMA raw")
        conn.execute("CREATE TABLE raw.couchdb_docs (source text, _id text, _deleted boolean, doc jsonb)")
        conn.execute(
            "INSERT INTO raw.couchdb_docs VALUES ('_users', 'org.couchdb.user:chw1', false, "
            """'{"type": "user", "name": "chw1", "password_scheme": "pbkdf2", "derived_key": "secret"}')"""
        )
        conn.execute(
            "CREATE VIEW public.couchdb_medic_users AS SELECT doc FROM raw.couchdb_docs WHERE source = '_users'"
        )
