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

import psycopg
from psycopg import sql

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
        ("anc_visits", "integer"),
        ("delivered", "boolean"),
        ("delivery_date", "date"),
        ("outcome", "text"),
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
HIERARCHY_VIEWS = ("useview_chw_activity", "useview_pregnancy", "useview_population")


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


def generate(seed: int = 7) -> StandIn:
    rng = random.Random(seed)
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    activity, pregnancy, population = [], [], []
    for clinic, clinic_name, _ in CLINICS:
        chw = f"chw-{clinic}"
        for week in WEEKS:
            for form in FORMS:
                reports = rng.randint(0, 5)
                if reports:
                    activity.append(
                        {
                            "chw_uuid": chw,
                            "chw_name": f"CHW of {clinic_name}",
                            "week": week,
                            "form": form,
                            "reports": reports,
                            **hierarchy(clinic),
                        }
                    )
        for n in range(rng.randint(4, 7)):
            reported = datetime(2026, 6, 1, 9, tzinfo=UTC) + timedelta(days=rng.randint(0, 140), hours=n)
            lmp = reported.date() - timedelta(weeks=rng.randint(6, 20))
            delivered = rng.random() < 0.5
            pregnancy.append(
                {
                    "uuid": f"preg-{clinic}-{n}",
                    "patient_uuid": f"pat-{clinic}-{n}",
                    "patient_name": f"Patient {n} of {clinic_name}",
                    "reported": reported,
                    "lmp_date": lmp,
                    "edd": lmp + timedelta(days=280),
                    "anc_visits": rng.randint(0, 6),
                    "delivered": delivered,
                    "delivery_date": lmp + timedelta(days=rng.randint(250, 290)) if delivered else None,
                    "outcome": rng.choice(["healthy", "healthy", "healthy", "stillbirth"])
                    if delivered
                    else None,
                    **hierarchy(clinic),
                }
            )
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
