"""Child health of the under-fives (demo-only forms): ``immunization`` visits along the
vaccination schedule and sick-child ``assessment`` reports.
"""

from __future__ import annotations

from datetime import date, timedelta

from cht_assets.demo.base import age_in_months, dec, new_uuid
from cht_assets.demo.household import Household, Member, one_or_more, visit_ms

# immunization schedule: (age in days when due, vaccines)
_SCHEDULE: tuple[tuple[int, tuple[str, ...]], ...] = (
    (0, ("bcg", "opv0")),
    (42, ("penta1", "opv1", "pcv1", "rota1")),
    (70, ("penta2", "opv2", "pcv2", "rota2")),
    (98, ("penta3", "opv3", "pcv3", "ipv")),
    (270, ("mr1",)),
    (540, ("mr2",)),
)
_VACCINE_SITE = {
    "bcg": "left_arm",
    "opv": "oral",
    "rota": "oral",
    "penta": "left_thigh",
    "pcv": "right_thigh",
    "ipv": "right_thigh",
    "mr": "right_arm",
}


def _expected_weight(months: int) -> float:
    if months <= 3:
        return 3.3 + 0.9 * months
    if months <= 12:
        return 6.0 + 0.4 * (months - 3)
    return 9.6 + 0.2 * (months - 12)


class ChildCare(Household):
    """Immunizations and assessments of a household's under-fives."""

    def _child_care(self, child: Member) -> None:
        self._immunizations(child)
        self._assessments(child)

    def _immunizations(self, child: Member) -> None:
        rng = self.rng
        dob = child.person.dob
        for step, (age, _vaccines) in enumerate(_SCHEDULE):
            if age == 0 and child.birth_doses:
                continue
            delay = rng.randint(0, 20) if rng.random() < 0.88 else rng.randint(21, 60)
            day = dob + timedelta(days=age + delay)
            if day < child.available or day > self.clock.today or rng.random() >= 0.85:
                continue
            self._immunization(child, day, step)

    def _immunization(self, child: Member, day: date, step: int) -> None:
        rng = self.rng
        when = visit_ms(rng, day)
        dob = child.person.dob
        age, vaccines = _SCHEDULE[step]
        weeks = (day - dob).days // 7
        doses = []
        for vaccine in vaccines:
            family = vaccine.rstrip("0123456789")
            doses.append(
                {
                    "vaccine": family,
                    "dose_number": vaccine[len(family) :] or "1",
                    "dose_date": day.isoformat(),
                    "batch_number": f"{family.upper()}{rng.randint(1000, 9999)}",
                    "site": _VACCINE_SITE[family],
                }
            )
        upcoming = _SCHEDULE[step + 1] if step + 1 < len(_SCHEDULE) else None
        next_day = ""
        if upcoming:
            due = max(dob + timedelta(days=upcoming[0]), day + timedelta(days=28))
            next_day = due.isoformat()
        vitamin_a = ""
        if weeks >= 26:
            vitamin_a = "yes" if age == 270 or rng.random() < 0.5 else "no"
        aefi = rng.random() < 0.04
        task = rng.random() < 0.5
        answers = self._common(child, when, "task" if task else "action", child.person.id if task else "")
        answers.update(
            {
                "patient_age_in_weeks": str(weeks),
                "visit/visit_date": day.isoformat(),
                "visit/visit_location": rng.choices(("health_facility", "outreach", "home"), (55, 30, 15))[0],
                "visit/card_available": "yes" if rng.random() < 0.85 else "no",
                "vaccines/vaccines_given": " ".join(vaccines),
                "vaccines/dose": doses,
                "vaccines/doses_count": str(len(doses)),
                "vaccines/vitamin_a_given": vitamin_a,
                "aefi/aefi_reported": "yes" if aefi else "no",
                "aefi/aefi_symptoms": one_or_more(rng, ("fever", "swelling", "rash", "crying"))
                if aefi
                else "",
                "next/next_visit_date": next_day,
                "next/next_vaccines": " ".join(upcoming[1]) if upcoming else "",
                "data/__vaccines_given": " ".join(vaccines),
                "data/__doses": str(len(doses)),
                "data/__age_in_weeks": str(weeks),
                "data/__fully_immunized": "yes" if "mr1" in vaccines else "no",
            }
        )
        self._report("immunization", new_uuid(rng), when, answers)

    def _assessments(self, child: Member) -> None:
        rng = self.rng
        dob = child.person.dob
        first = max(child.available, dob + timedelta(days=60))
        last = min(self.clock.today, dob + timedelta(days=5 * 365 - 1))
        if first > last:
            return
        span = (last - first).days
        count = min(span + 1, int(span / 365 * 1.6 + rng.random()))
        for offset in sorted(rng.sample(range(span + 1), count)):
            self._assessment(child, first + timedelta(days=offset))

    def _assessment(self, child: Member, day: date) -> None:
        rng = self.rng
        when = visit_ms(rng, day)
        months = age_in_months(child.person.dob, day)
        fever = rng.random() < 0.5
        cough = rng.random() < 0.4
        diarrhea = rng.random() < 0.25
        muac = None
        if months >= 6:
            roll = rng.random()
            muac = (
                rng.uniform(10.2, 11.4)
                if roll < 0.02
                else (rng.uniform(11.5, 12.4) if roll < 0.07 else rng.uniform(12.5, 16.5))
            )
        muac_text = "" if muac is None else dec(muac)
        color = "" if muac is None else ("red" if muac < 11.5 else "yellow" if muac < 12.5 else "green")
        threshold = 50 if months < 12 else 40
        pneumonia = cough and rng.random() < 0.3
        breaths = (
            rng.randint(threshold, threshold + 15)
            if pneumonia
            else rng.randint(threshold - 22, threshold - 1)
        )
        indrawing = cough and rng.random() < 0.05
        mrdt = rng.choices(("positive", "negative", "not_done"), (35, 55, 10))[0] if fever else ""
        blood = diarrhea and rng.random() < 0.08
        danger = "none"
        if rng.random() < 0.05:
            danger = one_or_more(rng, ("convulsions", "unable_to_drink", "vomits_everything", "lethargic"))
        classes = []
        if mrdt == "positive":
            classes.append("malaria")
        elif fever:
            classes.append("fever")
        if pneumonia:
            classes.append("pneumonia")
        if diarrhea:
            classes.append("dysentery" if blood else "diarrhea")
        if color == "red":
            classes.append("sam")
        elif color == "yellow":
            classes.append("mam")
        if danger != "none" or indrawing:
            classes.append("severe_illness")
        treatments = []
        if "malaria" in classes:
            treatments.append("act")
        if pneumonia:
            treatments.append("amoxicillin")
        if diarrhea:
            treatments += ["ors", "zinc"]
        if fever and mrdt != "positive":
            treatments.append("paracetamol")
        if color == "red":
            treatments.append("rutf")
        refer = bool({"severe_illness", "sam", "dysentery"} & set(classes))
        answers = self._common(child, when, "action", "")
        answers.update(
            {
                "patient_sex": child.person.sex,
                "patient_age_in_months": str(months),
                "group_assess/temperature_c": dec(
                    rng.uniform(37.6, 40.1) if fever else rng.uniform(36.1, 37.4)
                ),
                "group_assess/weight_kg": dec(_expected_weight(months) * rng.uniform(0.88, 1.12)),
                "group_assess/muac_cm": muac_text,
                "group_assess/muac_color": color,
                "group_assess/resp_rate": str(breaths),
                "group_fever/patient_fever": "yes" if fever else "no",
                "group_fever/fever_duration_days": str(rng.randint(1, 5)) if fever else "",
                "group_fever/mrdt_result": mrdt,
                "group_cough/patient_coughs": "yes" if cough else "no",
                "group_cough/coughing_duration_days": str(rng.randint(1, 14)) if cough else "",
                "group_cough/chest_indrawing": ("yes" if indrawing else "no") if cough else "",
                "group_cough/fast_breathing": "true" if breaths >= threshold else "false",
                "group_diarrhea/patient_diarrhea": "yes" if diarrhea else "no",
                "group_diarrhea/diarrhea_duration_days": str(rng.randint(1, 7)) if diarrhea else "",
                "group_diarrhea/diarrhea_blood": ("yes" if blood else "no") if diarrhea else "",
                "group_danger_signs/danger_signs": danger,
                "group_diagnosis/classification": " ".join(classes) or "healthy",
                "group_diagnosis/treatments": " ".join(treatments) or "none",
                "group_diagnosis/referral_needed": "yes" if refer else "no",
                "group_diagnosis/follow_up_date": (day + timedelta(days=3)).isoformat() if classes else "",
                "data/__age_in_months": str(months),
                "data/__fever": "yes" if fever else "no",
                "data/__malaria_positive": "yes" if mrdt == "positive" else "no",
                "data/__pneumonia": "yes" if pneumonia else "no",
                "data/__diarrhea": "yes" if diarrhea else "no",
                "data/__danger_sign": "no" if danger == "none" else "yes",
                "data/__muac_color": color,
            }
        )
        self._report("assessment", new_uuid(rng), when, answers)
