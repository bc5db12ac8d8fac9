"""The form definitions (XForms) of a deployment: as the raw layer keeps them, or straight from
CouchDB before the first sync (so the first run on an empty warehouse knows every form)."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from cht_assets.couch.client import CouchClient
from cht_assets.replica.docs import xform_attachment

# CHT keeps form definitions in docs whose ids start with `form:`.
FORM_ID_PREFIX = "form:"


@dataclass(frozen=True)
class FormDoc:
    """A form definition: its source database, doc id and XForm text."""

    source: str
    doc_id: str
    xml: str


def stored_forms(conn: psycopg.Connection) -> list[FormDoc]:
    """Every live form doc's XForm in `raw.couchdb_form_xml`; none before the first sync."""
    if conn.execute("SELECT to_regclass('raw.couchdb_form_xml')").fetchone()[0] is None:
        return []
    rows = conn.execute("SELECT source, _id, xml FROM raw.couchdb_form_xml ORDER BY _id, source").fetchall()
    return [FormDoc(*row) for row in rows]


def couchdb_forms(client: CouchClient) -> list[FormDoc]:
    """The live form docs of one CouchDB database with their XForm attachment."""
    forms = []
    for doc in client.docs_by_prefix(FORM_ID_PREFIX):
        attachment = xform_attachment(doc)
        if attachment is not None:
            xml = client.get_attachment(doc["_id"], attachment).decode("utf-8", errors="replace")
            forms.append(FormDoc(client.db, doc["_id"], xml))
    return forms
