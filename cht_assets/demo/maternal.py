"""Maternal care as CHT's default config records it: one pregnancy's story from its
registration through home visits and danger signs (their reports come from ``pregnancy``) to the
delivery (``delivery``: the babies born alive become people, the woman's outcome, her death
report if she died) and the postnatal visits (``pnc``).
"""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

from cht_assets.demo.base import EPOCH, LOCAL_TZ, Doc, dec, new_uuid
from cht_assets.demo.deaths import DeathReports
from cht_assets.demo.household import Member, visit_ms
from cht_assets.demo.pregnancy import PregnancyReports

_LMP_METHODS = ("method_lmp", "method_approx", "method_edd")
_PNC_DANGER_SIGNS = ("fever", "severe_headache", "vaginal_bleeding", "vaginal_discharge", "convulsion")
_BABY_DANGER_SIGNS = (
    "infected_umbilical_cord",
    "convulsion",
    "difficulty_feeding",
    "vomit",
    "drowsy",
    "stiff",
    "yellow_skin",
    "fever",
    "blue_skin",
)
_DELIVERY_PLACES = ("health_facility", "home", "other")


class MaternalCare(PregnancyReports, DeathReports):
    """Pregnancies and what follows them: delivery, babies, postnatal visits, a maternal death."""

    def _planned_pregnancy(self, plan: str) -> tuple[date, date, date]:
        """``(registered, lmp, delivered)`` of a pregnancy registered or delivered this month."""
        rng = self.rng
        if plan == "register":
            registered = self._this_month_day()
            lmp = registered - timedelta(days=rng.randint(8 * 7, 24 * 7))
            return registered, lmp, lmp + timedelta(days=280)
        delivered = self._this_month_day()
        lmp = delivered - timedelta(days=280 + rng.randint(-14, 5))
        return lmp + timedelta(days=rng.randint(9 * 7, 20 * 7)), lmp, delivered

    def _maternal_care(self, woman: Member, births: int, youngest: date | None, plan: str = "") -> bool:
        """One pregnancy of ``woman`` and what follows; ``plan`` forces one in the current month.

        Returns whether a pregnancy was registered.
        """
        rng = self.rng
        today = self.clock.today
        earliest = max(woman.available, self.clock.window_start)
        latest = today - timedelta(days=2)
        if earliest > latest:
            return False
        method = rng.choices(_LMP_METHODS, (70, 22, 8))[0]
        if plan:
            registered, lmp, delivered = self._planned_pregnancy(plan)
            if registered < earliest:
                return False
        else:
            registered = earliest + timedelta(days=rng.randint(0, (latest - earliest).days))
            ga_days = rng.randint(6 * 7, 30 * 7)
            if method == "method_approx":
                ga_days -= ga_days % 7
            lmp = registered - timedelta(days=ga_days)
            if youngest is not None and lmp < youngest + timedelta(days=300):
                return False
            delivered = lmp + timedelta(days=280 + rng.randint(-18, 10))
            delivered = max(delivered, registered + timedelta(days=1))
        pregnancy = self._pregnancy(woman, registered, lmp, method, births)
        lost = not plan and rng.random() < 0.06
        visits_until = min(delivered, today)
        if self._antenatal_visits(woman, pregnancy, lmp, registered, visits_until, lost, ends=not plan):
            return True
        if lost or delivered > today - timedelta(days=0 if plan else 1):
            return True
        delay = 0 if plan else rng.choice((0, 1, 1, 2, 3, 5))
        reported = min(today, delivered + timedelta(days=delay))
        delivery, babies, woman_alive = self._delivery(woman, pregnancy, delivered, reported)
        if woman_alive:
            self._postnatal_visits(woman, delivery, babies, delivered, reported)
        return True

    def _baby(
        self, report_id: str, number: int, born: date, when: int, facility: bool, twins: bool
    ) -> tuple[Member, Doc]:
        rng = self.rng
        member = self._add_member(rng.choice(("female", "male")), 0, "child", born=born)
        member.available = (EPOCH + timedelta(milliseconds=when)).astimezone(LOCAL_TZ).date() + timedelta(
            days=1
        )
        member.person = dataclasses.replace(member.person, reported_ms=when)
        member.extra = {"created_by_doc": report_id}
        weight_known = rng.random() < (0.9 if facility else 0.5)
        weight = min(4.6, max(1.6, rng.gauss(2.6 if twins else 3.15, 0.45)))
        length_known = weight_known and rng.random() < 0.8
        vaccines = "none"
        if facility and rng.random() < 0.85:
            vaccines = rng.choices(("bcg_and_birth_polio", "bcg_only", "birth_polio_only"), (70, 20, 10))[0]
        member.birth_weight = weight if weight_known else None
        member.birth_doses = vaccines != "none"
        signs = dict.fromkeys(_BABY_DANGER_SIGNS, "no")
        if rng.random() < 0.05:
            signs[rng.choice(_BABY_DANGER_SIGNS)] = "yes"
        danger = "yes" if "yes" in signs.values() else "no"
        person = member.person
        grams = str(round(weight * 1000, -1))[:-2] if weight_known else ""
        length = dec(rng.gauss(49, 2.2)) if length_known else ""
        household, area, facility_id = person.parents
        details = {
            "baby_n": str(number),
            "baby_condition": "alive_unwell" if danger == "yes" else "alive_well",
            "baby_name": person.name,
            "baby_sex": person.sex,
            "birth_weight_know": "yes" if weight_known else "no",
            "birth_weight": grams,
            "birth_length_know": "yes" if length_known else "no",
            "birth_length": length,
            "vaccines_received": vaccines,
            "breastfeeding": "yes" if rng.random() < 0.95 else "no",
            "breastfed_within_1_hour": "yes" if rng.random() < 0.8 else "no",
            **signs,
            "r_baby_danger_sign_present": danger,
            "baby_profile/name": person.name,
            "baby_profile/sex": person.sex,
            "baby_profile/date_of_birth": born.isoformat(),
            "baby_profile/vaccines_received": vaccines,
            "baby_profile/measurements/weight": grams,
            "baby_profile/measurements/length": length,
            "baby_profile/parent/_id": household,
            "baby_profile/parent/parent/_id": area,
            "baby_profile/parent/parent/parent/_id": facility_id,
            "baby_profile/type": "person",
            "baby_profile/created_by_doc": report_id,
            "child_doc": person.id,
        }
        return member, {f"baby_details/{key}": value for key, value in details.items()}

    def _delivery(
        self, woman: Member, pregnancy_id: str, delivered: date, reported: date
    ) -> tuple[str, list[Member], bool]:
        rng = self.rng
        report_id = new_uuid(rng)
        when = visit_ms(rng, reported)
        place = rng.choices(_DELIVERY_PLACES, (70, 25, 5))[0]
        facility = place == "health_facility"
        mode = "cesarean" if facility and rng.random() < 0.12 else "vaginal"
        conductor = (
            "skilled" if facility else rng.choices(("skilled", "traditional", "other"), (30, 55, 15))[0]
        )
        count = 2 if rng.random() < 0.03 else 1
        deceased = 1 if rng.random() < 0.05 else 0
        alive = count - deceased
        outcome = rng.choices(("alive_well", "alive_unwell", "deceased"), (89, 10, 1))[0]
        signs = dict.fromkeys(_PNC_DANGER_SIGNS, "no")
        if outcome == "alive_unwell":
            for sign in rng.sample(_PNC_DANGER_SIGNS, rng.randint(1, 2)):
                signs[sign] = "yes"
        danger = "yes" if "yes" in signs.values() else "no"
        babies, items = [], []
        for number in range(1, alive + 1):
            baby, item = self._baby(report_id, number, delivered, when, facility, count > 1)
            babies.append(baby)
            items.append(item)
        dead_babies = [
            {
                "baby_death_date": delivered.isoformat(),
                "baby_death_place": place,
                "stillbirth": "yes" if rng.random() < 0.7 else "no",
            }
            for _ in range(deceased)
        ]
        attended = ["within_24_hrs"] if facility else []
        if (reported - delivered).days >= 3 and rng.random() < 0.6:
            attended.append("3_days")
        source_id = pregnancy_id if rng.random() < 0.7 else ""
        answers = self._pregnancy_common(woman, reported, when, source_id)
        household, area, facility_id = woman.person.parents
        answers.update(
            {
                "household_id": household,
                "area_id": area,
                "facility_id": facility_id,
                "t_danger_signs_referral_follow_up": danger,
                "t_danger_signs_referral_follow_up_date": (reported + timedelta(days=3)).isoformat(),
                "condition/woman_outcome": outcome,
                **(
                    {}
                    if outcome == "deceased"
                    else {f"pnc_danger_sign_check/{s}": v for s, v in signs.items()}
                ),
                "pnc_danger_sign_check/r_pnc_danger_sign_present": "" if outcome == "deceased" else danger,
                "delivery_outcome/babies_delivered": str(count),
                "delivery_outcome/babies_alive": str(alive),
                "delivery_outcome/babies_delivered_num": str(count),
                "delivery_outcome/babies_alive_num": str(alive),
                "delivery_outcome/babies_deceased_num": str(deceased),
                "delivery_outcome/delivery_date": delivered.isoformat(),
                "delivery_outcome/delivery_place": place,
                "delivery_outcome/delivery_place_other": "On the way to the facility"
                if place == "other"
                else "",
                "delivery_outcome/delivery_mode": mode,
                "delivery_outcome/delivery_conductor": conductor,
                "baby_death/baby_death_repeat": dead_babies,
                "baby_death/baby_death_repeat_count": str(deceased),
                "babys_condition/baby_repeat": items,
                "babys_condition/baby_repeat_count": str(alive),
                "babys_condition/r_baby_danger_sign_present_any": (
                    "yes"
                    if any(i["baby_details/r_baby_danger_sign_present"] == "yes" for i in items)
                    else "no"
                ),
                "pnc_visits/pnc_visits_attended": " ".join(attended) or "none",
                "pnc_visits/days": str((reported - delivered).days),
                "data/__woman_condition": outcome,
                "data/__fever": signs["fever"],
                "data/__severe_headache": signs["severe_headache"],
                "data/__vaginal_bleeding": signs["vaginal_bleeding"],
                "data/__vaginal_discharge": signs["vaginal_discharge"],
                "data/__convulsions": signs["convulsion"],
                "data/__has_danger_sign": danger,
                "data/__babies_delivered": str(count),
                "data/__babies_deceased": str(deceased),
                "data/__babies_alive": str(alive),
                "data/__delivery_date": delivered.isoformat(),
                "data/__delivery_place": place,
                "data/__delivery_mode": mode,
                "data/__delivery_conductor": conductor,
                "data/__pnc_visit_within_24_hrs": "yes" if "within_24_hrs" in attended else "no",
                "data/__pnc_visit_3_days": "yes" if "3_days" in attended else "no",
                "data/__pnc_visit_7_days": "no",
                "data/__pnc_visit_6_weeks": "no",
                "data/__pnc_visits_num_selected": str(len(attended)),
                "data/__pnc_visits_additional": "0",
                "data/meta/__pregnancy_uuid": pregnancy_id,
            }
        )
        if outcome == "deceased":
            answers.update(
                {
                    "pnc_visits/pnc_visits_attended": "",
                    "death_info_woman/woman_death_date": delivered.isoformat(),
                    "death_info_woman/woman_death_place": place,
                    "death_info_woman/woman_death_birth": "yes",
                    "data/__woman_death_date": delivered.isoformat(),
                    "data/__woman_death_place": place,
                    "data/__delivered_before_death": "yes",
                }
            )
        self._report("delivery", report_id, when, answers, babies)
        if outcome == "deceased":
            self._death_report(woman, delivered, place, reported)
        return report_id, babies, outcome != "deceased"

    def _postnatal_visits(
        self, woman: Member, delivery_id: str, babies: list[Member], delivered: date, reported: date
    ) -> None:
        rng = self.rng
        last = reported
        number = 0
        for low, high, chance in ((1, 2, 0.8), (3, 6, 0.65), (7, 14, 0.5), (28, 42, 0.35)):
            if rng.random() >= chance:
                continue
            day = max(delivered + timedelta(days=rng.randint(low, high)), last + timedelta(days=1))
            if day > self.clock.today:
                break
            number += 1
            last = day
            self._pnc(woman, delivery_id, babies, delivered, day, number)

    def _pnc(
        self,
        woman: Member,
        delivery_id: str,
        babies: list[Member],
        delivered: date,
        day: date,
        number: int,
    ) -> None:
        rng = self.rng
        when = visit_ms(rng, day)
        days = (day - delivered).days
        fever = rng.random() < 0.06
        signs = "fever" if fever else "none"
        if not fever and rng.random() < 0.03:
            signs = rng.choice(("severe_headache", "vaginal_bleeding", "foul_discharge"))
        planning = rng.choices(("yes", "no", "undecided"), (40, 40, 20) if days >= 28 else (5, 60, 35))[0]
        checks = [self._baby_check(baby, days) for baby in babies]
        baby_danger = any(c["danger_signs"] != "none" for c in checks)
        referred = signs != "none" or baby_danger
        answers = self._common(woman, when, "task", delivery_id)
        answers.update(
            {
                "visit/visit_date": day.isoformat(),
                "visit/delivery_date": delivered.isoformat(),
                "visit/days_since_delivery": str(days),
                "visit/pnc_visit_number": str(number),
                "mother/temperature_c": dec(rng.uniform(37.6, 39.2) if fever else rng.uniform(36.2, 37.3)),
                "mother/bp_systolic": str(rng.randint(98, 138)),
                "mother/bp_diastolic": str(rng.randint(60, 88)),
                "mother/danger_signs": signs,
                "mother/breastfeeding": rng.choices(("exclusive", "mixed", "not_breastfeeding"), (75, 20, 5))[
                    0
                ],
                "mother/family_planning": planning,
                "mother/fp_method": rng.choice(("pills", "condoms", "implant", "injectable", "iud", "lam"))
                if planning == "yes"
                else "",
                "newborn/baby_check": checks,
                "newborn/babies_checked": str(len(checks)),
                "referral/referred": "yes" if referred else "no",
                "referral/referral_facility": self.area.facility.name if referred else "",
                "data/__visit_number": str(number),
                "data/__days_since_delivery": str(days),
                "data/__mother_danger_sign": "no" if signs == "none" else "yes",
                "data/__baby_danger_sign": "yes" if baby_danger else "no",
                "data/meta/__delivery_uuid": delivery_id,
            }
        )
        self._report("pnc", new_uuid(rng), when, answers)

    def _baby_check(self, baby: Member, days: int) -> dict[str, str]:
        rng = self.rng
        birth = baby.birth_weight or 3.1
        weight = birth - 0.06 * days if days <= 5 else birth - 0.3 + 0.028 * (days - 5)
        danger = "none"
        if rng.random() < 0.08:
            danger = rng.choice(("not_feeding", "fast_breathing", "fever", "jaundice"))
        return {
            "baby_uuid": baby.person.id,
            "baby_name": baby.person.name,
            "weight_kg": dec(weight),
            "temperature_c": dec(rng.uniform(37.6, 38.6) if danger == "fever" else rng.uniform(36.4, 37.4)),
            "cord_condition": "infected" if rng.random() < 0.04 else "clean",
            "danger_signs": danger,
        }
