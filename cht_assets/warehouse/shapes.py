"""Docs whose shape the views cannot read: each view turns what it cannot read into NULL
(`parent: 5`, `fields: []`, `reported_date: "yesterday"`), so without this check such docs
would vanish silently from hierarchies and counts. Declared with `-- doc_check: contacts` or
`-- doc_check: reports` on a view's SQL; the check counts each problem, with examples."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from cht_assets.warehouse.quality import Finding

EXAMPLES_PER_PROBLEM = 2

CONTACT_TYPES = "('contact', 'clinic', 'district_hospital', 'health_center', 'person')"

# Contact types that need a parent: persons, and places below the top of the hierarchy
# (CHT's built-in ones, overridden by settings.contact_types).
TYPES_NEEDING_A_PARENT = """
configured AS (
  SELECT t.value ->> 'id' AS id,
    coalesce(t.value ->> 'person', 'false') = 'true'
      OR (jsonb_typeof(t.value -> 'parents') = 'array' AND jsonb_array_length(t.value -> 'parents') > 0)
      AS needs_parent
  FROM raw.couchdb_docs AS s
  CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(s.doc #> '{settings,contact_types}') = 'array'
      THEN s.doc #> '{settings,contact_types}' ELSE '[]'::jsonb END
  ) AS t (value)
  WHERE s._id = 'settings' AND NOT s._deleted AND t.value ->> 'id' IS NOT NULL
),
types AS (
  SELECT id, needs_parent FROM configured
  UNION ALL
  SELECT id, needs_parent FROM (VALUES ('person', true), ('clinic', true), ('health_center', true),
    ('district_hospital', false)) AS b (id, needs_parent)
  WHERE id NOT IN (SELECT id FROM configured)
)"""

CONTACT_PROBLEMS = f"""
WITH docs AS (
  SELECT d._id, d.doc FROM raw.couchdb_docs AS d
  WHERE d.doc ->> 'type' IN {CONTACT_TYPES} AND NOT d._deleted {{only}}
),
{TYPES_NEEDING_A_PARENT},
lineage AS (
  SELECT docs._id, coalesce((
    WITH RECURSIVE chain (depth, node) AS (
      SELECT 1, docs.doc -> 'parent'
      UNION ALL
      SELECT chain.depth + 1, chain.node -> 'parent' FROM chain
      WHERE jsonb_typeof(chain.node -> 'parent') = 'object' AND chain.depth < 50
    )
    SELECT array_agg(chain.node ->> '_id') FROM chain
    WHERE jsonb_typeof(chain.node) = 'object' AND chain.node ->> '_id' IS NOT NULL
  ), ARRAY[]::text[]) AS ids
  FROM docs
)
SELECT _id, 'parent not an object', jsonb_typeof(docs.doc -> 'parent') FROM docs
WHERE docs.doc ? 'parent'
  AND (jsonb_typeof(docs.doc -> 'parent') <> 'object' OR jsonb_typeof(docs.doc #> '{{parent,_id}}') IS DISTINCT FROM 'string')
UNION ALL
SELECT _id, 'contact without a parent', types.id FROM docs
JOIN types ON types.id = coalesce(nullif(docs.doc ->> 'contact_type', ''), docs.doc ->> 'type')
WHERE types.needs_parent AND NOT docs.doc ? 'parent'
UNION ALL
SELECT _id, 'parent cycle', array_to_string(ids, ' > ') FROM lineage
WHERE _id = ANY(ids) OR cardinality(ids) <> (SELECT count(DISTINCT i) FROM unnest(ids) AS i)
UNION ALL
SELECT _id, 'date_of_birth not a date', docs.doc ->> 'date_of_birth' FROM docs
WHERE nullif(docs.doc ->> 'date_of_birth', '') IS NOT NULL AND cht_to_date(docs.doc ->> 'date_of_birth') IS NULL
UNION ALL
SELECT _id, 'reported_date not epoch ms', docs.doc ->> 'reported_date' FROM docs
WHERE jsonb_typeof(docs.doc -> 'reported_date') IS DISTINCT FROM 'null' AND docs.doc ? 'reported_date'
  AND cht_epoch_ms_to_timestamptz(docs.doc ->> 'reported_date') IS NULL
"""

REPORT_PROBLEMS = """
WITH docs AS (
  SELECT d._id, d.doc FROM raw.couchdb_docs AS d
  WHERE d.doc ->> 'type' = 'data_record' AND d.doc ->> 'form' IS NOT NULL AND NOT d._deleted {only}
),
known_forms AS (
  -- The form docs are found through their XForms (a few rows) instead of a scan of every doc.
  SELECT coalesce(f.doc ->> 'internalId', substr(f._id, 6)) AS form
  FROM raw.couchdb_form_xml AS x JOIN raw.couchdb_docs AS f ON f._id = x._id AND f.source = x.source
  WHERE f.doc ->> 'type' = 'form' AND NOT f._deleted
  UNION
  SELECT jsonb_object_keys(s.doc #> '{settings,forms}') FROM raw.couchdb_docs AS s
  WHERE s._id = 'settings' AND NOT s._deleted AND jsonb_typeof(s.doc #> '{settings,forms}') = 'object'
)
SELECT _id, 'contact not an object', jsonb_typeof(docs.doc -> 'contact') FROM docs
WHERE docs.doc ? 'contact'
  AND (jsonb_typeof(docs.doc -> 'contact') <> 'object' OR jsonb_typeof(docs.doc #> '{contact,_id}') IS DISTINCT FROM 'string')
UNION ALL
SELECT _id, 'fields not an object', jsonb_typeof(docs.doc -> 'fields') FROM docs
WHERE docs.doc ? 'fields' AND jsonb_typeof(docs.doc -> 'fields') <> 'object'
UNION ALL
SELECT _id, 'reported_date not epoch ms', coalesce(docs.doc ->> 'reported_date', 'missing') FROM docs
WHERE cht_epoch_ms_to_timestamptz(docs.doc ->> 'reported_date') IS NULL
UNION ALL
SELECT _id, 'form without definition', docs.doc ->> 'form' FROM docs
WHERE docs.doc ->> 'form' NOT IN (SELECT form FROM known_forms WHERE form IS NOT NULL)
"""

QUERIES = {"contacts": CONTACT_PROBLEMS, "reports": REPORT_PROBLEMS}


def doc_problems(conn: psycopg.Connection, kind: str, ids: Sequence[str] | None = None) -> Finding:
    """Count each problem of the `kind` docs (all, or only `ids`: what a refresh touched);
    details hold the count per problem, examples `doc id: problem (what was found)`."""
    if kind not in QUERIES:
        raise ValueError(f"doc_check: {kind!r} is not one of {sorted(QUERIES)}")
    only = "" if ids is None else "AND d._id = ANY(%(ids)s)"
    query = QUERIES[kind].replace("{only}", only)  # (the SQL holds other braces: jsonb paths)
    example = "p._id || ': ' || p.problem || coalesce(' (' || left(p.detail, 80) || ')', '')"
    rows = conn.execute(
        f"SELECT p.problem, count(*), (array_agg({example} ORDER BY p._id))[1:{EXAMPLES_PER_PROBLEM}] "
        f"FROM ({query}) AS p (_id, problem, detail) GROUP BY p.problem ORDER BY p.problem",
        {"ids": list(ids)} if ids is not None else None,
    ).fetchall()
    details = {problem: count for problem, count, _ in rows}
    examples = [text for _, _, sample in rows for text in sample]
    return Finding(sum(details.values()), examples, details)
