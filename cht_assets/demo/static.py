"""The static unit: the docs a deployment has before any CHW area.

``settings`` (contact types, SMS forms, the targets' definitions), the translation docs
(``messages-en``, ``messages-fr``), the form definitions,
``shortcode-id-length``, the admin's ``user-settings``, the health facilities
(``district_hospital``) with their in-charge nurse / supervisor, her user-settings, ``_users``
and connected-user docs, an outgoing message per facility, and a pre-3.x feedback doc.
"""

from __future__ import annotations

import copy
import random
import uuid
from datetime import timedelta

from cht_assets.demo import targets, users
from cht_assets.demo.base import (
    LOGS,
    MEDIC,
    SENTINEL,
    USERS,
    USERS_META,
    Clock,
    Doc,
    iso_utc,
    local_ms,
    make_rev,
    new_uuid,
)
from cht_assets.demo.messages import messages_docs
from cht_assets.demo.world import (
    Facility,
    World,
    connected_user_doc,
    contact_ref,
    info_doc,
    person_doc,
    user_settings_doc,
)
from cht_assets.demo.xform import form_doc, load_xforms

_CONTACT_TYPES: list[Doc] = [
    {
        "id": "district_hospital",
        "name_key": "contact.type.district_hospital",
        "group_key": "contact.type.district_hospital.plural",
        "create_key": "contact.type.district_hospital.new",
        "edit_key": "contact.type.place.edit",
        "icon": "medic-district-hospital",
        "create_form": "form:contact:district_hospital:create",
        "edit_form": "form:contact:district_hospital:edit",
    },
    {
        "id": "health_center",
        "name_key": "contact.type.health_center",
        "group_key": "contact.type.health_center.plural",
        "create_key": "contact.type.health_center.new",
        "edit_key": "contact.type.place.edit",
        "parents": ["district_hospital"],
        "icon": "medic-health-center",
        "create_form": "form:contact:health_center:create",
        "edit_form": "form:contact:health_center:edit",
    },
    {
        "id": "clinic",
        "name_key": "contact.type.clinic",
        "group_key": "contact.type.clinic.plural",
        "create_key": "contact.type.clinic.new",
        "edit_key": "contact.type.place.edit",
        "parents": ["health_center"],
        "icon": "medic-clinic",
        "create_form": "form:contact:clinic:create",
        "edit_form": "form:contact:clinic:edit",
        "count_visits": True,
    },
    {
        "id": "person",
        "name_key": "contact.type.person",
        "group_key": "contact.type.person.plural",
        "create_key": "contact.type.person.new",
        "edit_key": "contact.type.person.edit",
        "primary_contact_key": "clinic.field.contact",
        "parents": ["district_hospital", "health_center", "clinic"],
        "icon": "medic-person",
        "create_form": "form:contact:person:create",
        "edit_form": "form:contact:person:edit",
        "person": True,
    },
    {
        "id": "community_group",
        "name_key": "contact.type.community_group",
        "group_key": "contact.type.community_group.plural",
        "create_key": "contact.type.community_group.new",
        "edit_key": "contact.type.place.edit",
        "parents": ["health_center"],
        "icon": "medic-family",
        "person": False,
    },
    {
        "id": "group_member",
        "name_key": "contact.type.group_member",
        "group_key": "contact.type.group_member.plural",
        "create_key": "contact.type.group_member.new",
        "edit_key": "contact.type.person.edit",
        "parents": ["community_group"],
        "icon": "medic-person",
        "person": True,
    },
]

_SMS_FORMS: dict[str, Doc] = {
    "P": {
        "meta": {"code": "P", "icon": "icon-pregnancy", "label": {"en": "Pregnancy registration"}},
        "fields": {
            "last_menstrual_period": {
                "labels": {"short": {"en": "LMP"}, "tiny": {"en": "LMP"}},
                "position": 0,
                "type": "integer",
                "length": [1, 2],
                "range": [0, 40],
                "required": True,
            },
            "patient_name": {
                "labels": {"short": {"en": "Name"}, "tiny": {"en": "N"}},
                "position": 1,
                "type": "string",
                "length": [1, 30],
                "required": True,
            },
        },
        "public_form": False,
        "use_sentinel": True,
    },
    "V": {
        "meta": {"code": "V", "icon": "icon-pregnancy", "label": {"en": "ANC visit"}},
        "fields": {
            "patient_id": {
                "labels": {"short": {"en": "Patient ID"}, "tiny": {"en": "ID"}},
                "position": 0,
                "type": "string",
                "length": [5, 13],
                "required": True,
            }
        },
        "public_form": False,
        "use_sentinel": True,
    },
}


def _settings_doc(seed: int) -> Doc:
    return {
        "_id": "settings",
        "_rev": make_rev(seed, "settings", 3),
        "settings": {
            "locale": "en",
            "locale_outgoing": "en",
            "date_format": "D MMM, YYYY",
            "reported_date_format": "DD-MMM-YYYY HH:mm:ss",
            "default_country_code": 254,
            "forms_only_mode": False,
            "transitions": {
                "generate_shortcode_on_contacts": True,
                "registration": True,
                "accept_patient_reports": True,
                "update_clinics": True,
                "default_responses": True,
                "death_reporting": True,
                "muting": False,
            },
            "roles": {
                "chw": {"name": "usertype.chw", "offline": True},
                "chw_supervisor": {"name": "usertype.chw-supervisor", "offline": True},
                "program_officer": {"name": "usertype.program-officer"},
            },
            "death_reporting": {
                "mark_deceased_forms": ["death_report"],
                "undo_deceased_forms": ["undo_death_report"],
                "date_field": "fields.death_details.date_of_death",
            },
            "tasks": {"targets": {"enabled": True, "items": targets.target_definitions()}},
            "contact_types": copy.deepcopy(_CONTACT_TYPES),
            "forms": copy.deepcopy(_SMS_FORMS),
        },
    }


def static_unit(seed: int, world: World) -> dict[str, list[Doc]]:
    rng = random.Random(f"{seed}:static")
    medic: list[Doc] = [_settings_doc(seed), *messages_docs(seed)]
    medic += [form_doc(seed, xform) for xform in load_xforms().values()]
    medic.append(
        {
            "_id": "shortcode-id-length",
            "_rev": make_rev(seed, "shortcode-id-length", 1),
            "current_length": world.shortcodes.length,
        }
    )
    medic.append(user_settings_doc(seed, "admin", None, ["_admin"]))
    sentinel: list[Doc] = []
    logs: list[Doc] = []
    for facility in world.facilities:
        place = _facility_doc(seed, facility)
        head = person_doc(seed, facility.head, extra={"role": "chw_supervisor"})
        medic += [place, head]
        medic.append(user_settings_doc(seed, facility.username, facility.head, ["chw_supervisor"], 2))
        sentinel.append(info_doc(seed, rng, world.clock.now_ms, place, ["generate_shortcode_on_contacts"]))
        sentinel.append(info_doc(seed, rng, world.clock.now_ms, head, ["generate_shortcode_on_contacts"]))
        logs.append(connected_user_doc(seed, rng, world.clock.now_ms, facility.username))
    medic += [_outgoing_message(seed, rng, world, facility) for facility in world.facilities]
    user_docs = [
        users.user_doc(d) for d in medic if d.get("type") == "user-settings" and "_admin" not in d["roles"]
    ]
    return {
        MEDIC: medic,
        SENTINEL: sentinel,
        USERS_META: [_legacy_feedback(seed, world.clock)],
        LOGS: logs,
        USERS: user_docs,
    }


def _facility_doc(seed: int, facility: Facility) -> Doc:
    return {
        "_id": facility.id,
        "_rev": make_rev(seed, facility.id, 2),
        "type": "district_hospital",
        "name": facility.name,
        "is_name_generated": "false",
        "contact": contact_ref(facility.head),
        "reported_date": local_ms(facility.created, 9 * 60),
        "place_id": facility.code,
        "external_id": f"MFL-{10000 + facility.index * 37}",
    }


def _outgoing_message(seed: int, rng: random.Random, world: World, facility: Facility) -> Doc:
    area = next(a for a in world.areas if a.facility is facility)
    sent = local_ms(world.clock.today - timedelta(days=rng.randint(3, 40)), rng.randint(8 * 60, 16 * 60))
    doc_id = new_uuid(rng)
    history = [
        {"state": "pending", "timestamp": iso_utc(sent)},
        {"state": "sent", "timestamp": iso_utc(sent + rng.randint(20_000, 90_000))},
        {"state": "delivered", "timestamp": iso_utc(sent + rng.randint(100_000, 300_000))},
    ]
    message = {
        "from": facility.head.phone,
        "sent_by": facility.username,
        "to": area.chw.phone,
        "contact": contact_ref(area.chw),
        "message": f"Reminder: monthly CHW meeting at {facility.name} on Friday at 10am.",
        "uuid": new_uuid(rng),
    }
    return {
        "_id": doc_id,
        "_rev": make_rev(seed, doc_id, 2),
        "type": "data_record",
        "kujua_message": True,
        "form": None,
        "errors": [],
        "from": facility.head.phone,
        "sent_by": facility.username,
        "reported_date": sent,
        "tasks": [{"messages": [message], "state": "delivered", "state_history": history}],
    }


def _legacy_feedback(seed: int, clock: Clock) -> Doc:
    """A pre-3.x style feedback doc whose ``info`` is a plain string."""
    when = local_ms(clock.window_start + timedelta(days=40), 11 * 60 + 3)
    doc_id = f"feedback-{iso_utc(when)}-{uuid.UUID(int=seed % 2**128, version=4)}"
    return {
        "_id": doc_id,
        "_rev": make_rev(seed, doc_id, 1),
        "type": "feedback",
        "meta": {
            "time": iso_utc(when),
            "user": {"name": "admin"},
            "url": "https://cht.example.org/#/reports",
            "version": "3.17.2",
            "source": "manual",
        },
        "info": "Reports list does not refresh after submitting a form",
        "log": [],
    }
