"""CHT's translation docs (``messages-<lang>``) for the words the demo's keys stand for.

Shaped like CHT 4's: ``type: translations``, ``code``, ``name``, ``enabled``, the shipped words
in ``generic`` and the config's own (cht-conf uploads ``translations/messages-<lang>.properties``
there) in ``custom``, which win. They hold the task titles the rules engine emits
(``cht_assets.demo.tasks``), the targets' translation keys (``settings.tasks.targets.items``) and
the forms' titles (``form.<id>.title``). French leaves a few keys untranslated, as real
deployments do: the dashboards show the English words then.
"""

from __future__ import annotations

from cht_assets.demo.base import Doc, make_rev

# (generic, custom) per language. A key in both: `custom` wins (`targets.births.title`).
_WORDS: dict[str, tuple[str, bool, dict[str, str], dict[str, str]]] = {
    "en": (
        "English",
        True,
        {
            "contact.deceased.title": "Deceased",
            "targets.this_month.subtitle": "This month",
            "targets.all_time.subtitle": "All time",
            "targets.births.title": "Births",
        },
        {
            "task.anc.pregnancy_home_visit.title": "Pregnancy home visit",
            "task.anc.pregnancy_danger_sign_followup.title": "Pregnancy danger sign follow-up",
            "task.anc.delivery.title": "Delivery",
            "targets.death_reporting.deaths.title": "Deaths",
            "targets.anc.new_pregnancy_registrations.title": "New pregnancies",
            "targets.births.title": "Live births",
            "targets.anc.active_pregnancies.title": "Active pregnancies",
            "targets.anc.active_pregnancies_1p_visits.title": "Active pregnancies with 1+ facility visits",
            "targets.anc.facility_deliveries.title": "In-facility deliveries",
            "targets.anc.active_pregnancies_4p_visits.title": "Active pregnancies with 4+ facility visits",
            "targets.anc.active_pregnancies_8p_contacts.title": "Active pregnancies with 8+ contacts",
            "form.pregnancy.title": "Pregnancy registration",
            "form.pregnancy_home_visit.title": "Pregnancy home visit",
            "form.pregnancy_danger_sign.title": "Pregnancy danger sign",
            "form.pregnancy_danger_sign_follow_up.title": "Pregnancy danger sign follow-up",
            "form.delivery.title": "Delivery report",
            "form.death_report.title": "Death report",
            "form.undo_death_report.title": "Undo death report",
            "form.pnc.title": "Postnatal care visit",
            "form.assessment.title": "Child assessment",
            "form.immunization.title": "Immunization visit",
        },
    ),
    "fr": (
        "Français (French)",
        True,
        {
            "contact.deceased.title": "Décédé",
            "targets.this_month.subtitle": "Ce mois-ci",
            "targets.all_time.subtitle": "Depuis le début",
            "targets.births.title": "Naissances",
        },
        {
            "task.anc.pregnancy_home_visit.title": "Visite à domicile de grossesse",
            "task.anc.pregnancy_danger_sign_followup.title": "Suivi des signes de danger de grossesse",
            "targets.death_reporting.deaths.title": "Décès",
            "targets.anc.new_pregnancy_registrations.title": "Nouvelles grossesses",
            "targets.births.title": "Naissances vivantes",
            "targets.anc.active_pregnancies.title": "Grossesses en cours",
            "targets.anc.facility_deliveries.title": "Accouchements en établissement",
            "form.pregnancy.title": "Enregistrement de grossesse",
            "form.delivery.title": "Rapport d'accouchement",
            "form.death_report.title": "Rapport de décès",
        },
    ),
}


def messages_docs(seed: int) -> list[Doc]:
    """One ``messages-<lang>`` doc per language of the demo."""
    docs = []
    for code, (name, enabled, generic, custom) in _WORDS.items():
        doc_id = f"messages-{code}"
        docs.append(
            {
                "_id": doc_id,
                "_rev": make_rev(seed, doc_id, 2),
                "type": "translations",
                "code": code,
                "name": name,
                "enabled": enabled,
                "generic": dict(generic),
                "custom": dict(custom),
            }
        )
    return docs
