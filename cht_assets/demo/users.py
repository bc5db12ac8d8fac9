"""``_users`` docs for the demo's user-settings docs."""

from __future__ import annotations

from cht_assets.demo.base import Doc, make_rev

_USER_KEYS = ("name", "roles", "facility_id", "contact_id")


def user_doc(user_settings: Doc) -> Doc:
    """The ``_users`` doc (type user, no password fields) matching a ``user-settings`` doc."""
    doc_id = user_settings["_id"]
    # one revision, its hash tied to the user-settings revision it mirrors
    doc: Doc = {"_id": doc_id, "_rev": make_rev(0, doc_id, 1, user_settings["_rev"]), "type": "user"}
    doc.update({key: user_settings[key] for key in _USER_KEYS if key in user_settings})
    return doc
