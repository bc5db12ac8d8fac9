"""The pregnancy forms of CHT's default config: the registration (``pregnancy``), home visits
(``pregnancy_home_visit``), danger signs reported between visits (``pregnancy_danger_sign``) and
their follow-ups (``pregnancy_danger_sign_follow_up``).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from cht_assets.demo.base import age_in_years, dec, long_date, new_uuid
from cht_assets.demo.household import Household, Member, one_or_more, visit_ms

_RISK_CONDITIONS = ("heart_condition", "asthma", "high_blood_pressure", "diabetes")
_PREGNANCY_DANGER_SIGNS = (
    "vaginal_bleeding",
    "fits",
    "severe_abdominal_pain",
    "severe_headache",
    "very_pale",
    "fever",
    "reduced_or_no_fetal_movements",
    "breaking_water",
    "easily_tired",
    "face_hand_swelling",
    "breathlessness",
)


class PregnancyReports(Household):
    """A pregnancy's reports up to its end: registration, home visits, danger signs."""

    def _pregnancy_common(self, woman: Member, day: date, when: int, source_id: str) -> dict[str, Any]:
        answers = self._common(woman, when, "task" if source_id else "action", source_id)
        answers.update(
            {
                "patient_age_in_years": str(age_in_years(woman.person.dob, day)),
                "patient_short_name": "the woman",
            }
        )
        return answers

    def _danger_signs(self, chance: float) -> dict[str, str]:
        """``danger_signs/*`` and ``data/__*`` answers: each sign ``no`` unless one is drawn."""
        rng = self.rng
        signs = dict.fromkeys(_PREGNANCY_DANGER_SIGNS, "no")
        if rng.random() < chance:
            for sign in rng.sample(_PREGNANCY_DANGER_SIGNS, rng.choice((1, 1, 1, 2))):
                signs[sign] = "yes"
        present = "yes" if "yes" in signs.values() else "no"
        return {
            **{f"danger_signs/{sign}": value for sign, value in signs.items()},
            "danger_signs/r_danger_sign_present": present,
            **{f"data/__{sign}": value for sign, value in signs.items()},
            "data/__has_danger_sign": present,
        }

    def _pregnancy(self, woman: Member, day: date, lmp: date, method: str, births: int) -> str:
        rng = self.rng
        report_id = new_uuid(rng)
        when = visit_ms(rng, day)
        edd = lmp + timedelta(days=280)
        ga_days = (day - lmp).days
        first = births == 0 and rng.random() < 0.9
        miscarriage = "no" if first else ("yes" if rng.random() < 0.1 else "no")
        primary = "none"
        if rng.random() < 0.15:
            primary = one_or_more(rng, _RISK_CONDITIONS)
        secondary = "none"
        if births >= 4:
            secondary = "more_than_4_children"
        elif not first and rng.random() < 0.08:
            secondary = "previous_difficulties"
        risks = primary != "none" or secondary != "none" or miscarriage == "yes" or first
        hf_visits = 0 if ga_days < 84 else rng.randint(0, min(3, ga_days // 56))
        visit_days = sorted(rng.sample(range(70, ga_days), hf_visits)) if hf_visits else []
        next_known = rng.random() < 0.7
        next_visit = day + timedelta(days=rng.randint(7, 35))
        signs = self._danger_signs(0.08)
        follow_up = day + timedelta(days=rng.randint(14, 28))
        practices = {
            "uses_llin": rng.random() < 0.7,
            "iron_folate_daily": rng.random() < 0.6,
            "deworming_med": rng.random() < 0.4,
            "hiv_tested": rng.random() < 0.75,
            "tt_imm_received": rng.random() < 0.5,
        }
        yes = {name: "yes" if value else "no" for name, value in practices.items()}
        answers = self._pregnancy_common(woman, day, when, "")
        answers.update(
            {
                "lmp_date_8601": lmp.isoformat(),
                "edd_8601": edd.isoformat(),
                "days_since_lmp": str(ga_days),
                "weeks_since_lmp": dec(ga_days / 7, 2),
                "weeks_since_lmp_rounded": str(ga_days // 7),
                "lmp_method_approx": "yes" if method == "method_approx" else "no",
                "t_pregnancy_follow_up_date": follow_up.isoformat(),
                "t_pregnancy_follow_up": "yes",
                "t_danger_signs_referral_follow_up_date": (day + timedelta(days=3)).isoformat(),
                "t_danger_signs_referral_follow_up": signs["data/__has_danger_sign"],
                "gestational_age/register_method/lmp_method": method,
                "gestational_age/g_lmp_date_8601": lmp.isoformat(),
                "gestational_age/g_edd_8601": edd.isoformat(),
                "anc_visits_hf/anc_visits_hf_past/visited_hf_count": str(hf_visits),
                "anc_visits_hf/anc_visits_hf_past/visited_dates_group/visited_dates_count": str(hf_visits),
                "anc_visits_hf/anc_visits_hf_past/visited_dates_group/visited_dates": [
                    {"visited_date": (lmp + timedelta(days=d)).isoformat()} for d in visit_days
                ],
                "anc_visits_hf/anc_visits_hf_next/anc_next_visit_date/appointment_date_known": (
                    "yes" if next_known else "no"
                ),
                "anc_visits_hf/anc_visits_hf_next/anc_next_visit_date/appointment_date": (
                    next_visit.isoformat() if next_known else ""
                ),
                "risk_factors/risk_factors_history/first_pregnancy": "yes" if first else "no",
                "risk_factors/risk_factors_history/previous_miscarriage": miscarriage,
                "risk_factors/risk_factors_present/primary_condition": primary if first else "",
                "risk_factors/risk_factors_present/secondary_condition": "" if first else secondary,
                "risk_factors/risk_factors_present/additional_risk_check": "no",
                "risk_factors/r_risk_factor_present": "yes" if risks else "no",
                **signs,
                "safe_pregnancy_practices/malaria/uses_llin": yes["uses_llin"],
                "safe_pregnancy_practices/iron_folate/iron_folate_daily": yes["iron_folate_daily"],
                "safe_pregnancy_practices/deworming/deworming_med": yes["deworming_med"],
                "safe_pregnancy_practices/hiv_status/hiv_tested": yes["hiv_tested"],
                "safe_pregnancy_practices/tetanus/tt_imm_received": yes["tt_imm_received"],
                "summary/edd_summary": long_date(edd),
                "data/__lmp_method": method,
                "data/__lmp_date": lmp.isoformat(),
                "data/__edd": edd.isoformat(),
                "data/__num_previous_anc_hf_visits": str(hf_visits),
                "data/__next_anc_hf_visit_date_known": "yes" if next_known else "no",
                "data/__next_anc_hf_visit_date": next_visit.isoformat() if next_known else "",
                "data/__has_risk_factors": "yes" if risks else "no",
                "data/__first_pregnancy": "yes" if first else "no",
                "data/__previous_miscarriage": miscarriage,
                "data/__previous_difficulties": "yes" if secondary == "previous_difficulties" else "no",
                "data/__more_than_4_children": "yes" if secondary == "more_than_4_children" else "no",
                "data/__last_baby_born_less_than_1_year_ago": "no",
                **{f"data/__{c}": "yes" if c in primary.split() else "no" for c in _RISK_CONDITIONS},
                "data/__additional_high_risk_condition_to_report": "no",
                "data/__uses_llin": yes["uses_llin"],
                "data/__takes_iron_folate_daily": yes["iron_folate_daily"],
                "data/__received_deworming_meds": yes["deworming_med"],
                "data/__tested_for_hiv_in_past_3_months": yes["hiv_tested"],
                "data/__received_tetanus_toxoid_this_pregnancy": yes["tt_imm_received"],
            }
        )
        match method:
            case "method_lmp":
                answers["gestational_age/method_lmp/u_lmp_date"] = lmp.isoformat()
            case "method_approx":
                in_weeks = rng.random() < 0.6
                unit = "weeks" if in_weeks else "months"
                answers["gestational_age/method_approx/lmp_approx"] = f"approx_{unit}"
                answers[f"gestational_age/method_approx/lmp_approx_{unit}"] = str(
                    ga_days // 7 if in_weeks else max(1, ga_days // 30)
                )
            case _:
                answers["gestational_age/method_edd/u_edd"] = edd.isoformat()
        self._report("pregnancy", report_id, when, answers)
        if signs["data/__has_danger_sign"] == "yes":
            self._danger_sign_follow_up(woman, report_id, day)
        return report_id

    def _antenatal_visits(
        self,
        woman: Member,
        pregnancy_id: str,
        lmp: date,
        registered: date,
        until: date,
        lost: bool,
        *,
        ends: bool,
    ) -> bool:
        """Home visits (and danger sign reports) until ``until``; True when the pregnancy ended early."""
        rng = self.rng
        day = registered
        while True:
            day += timedelta(days=rng.randint(21, 42))
            if day >= until or (lost and rng.random() < 0.5):
                return False
            if rng.random() < 0.04:
                self._danger_sign_report(woman, pregnancy_id, day - timedelta(days=rng.randint(3, 12)))
            if rng.random() < 0.15:
                continue  # a missed visit
            outcome = "yes"
            if ends and (day - lmp).days < 150 and rng.random() < 0.03:
                outcome = "miscarriage"
            elif ends and rng.random() < 0.01:
                outcome = rng.choice(("refused", "migrated"))
            self._home_visit(woman, pregnancy_id, lmp, day, outcome)
            if outcome != "yes":
                return True

    def _home_visit(self, woman: Member, pregnancy_id: str, lmp: date, day: date, outcome: str) -> None:
        rng = self.rng
        when = visit_ms(rng, day)
        edd = lmp + timedelta(days=280)
        ga_days = (day - lmp).days
        answers = self._pregnancy_common(woman, day, when, pregnancy_id)
        answers.update(
            {
                "lmp_date_8601": lmp.isoformat(),
                "edd_8601": edd.isoformat(),
                "weeks_since_lmp": dec(ga_days / 7, 2),
                "weeks_since_lmp_rounded": str(ga_days // 7),
                "context_vars/pregnancy_uuid_ctx": pregnancy_id,
                "pregnancy_summary/visit_option": outcome,
                "data/__activity_to_report": "home_visit" if outcome == "yes" else outcome,
                "data/meta/__pregnancy_uuid": pregnancy_id,
            }
        )
        if outcome == "miscarriage":
            answers["pregnancy_ended/miscarriage_date"] = (
                day - timedelta(days=rng.randint(1, 10))
            ).isoformat()
            answers["pregnancy_ended/clear_option"] = "clear_all"
            answers["data/__miscarriage_date"] = answers["pregnancy_ended/miscarriage_date"]
            answers["data/__visit_task_clear_option"] = "clear_all"
        if outcome != "yes":
            self._report("pregnancy_home_visit", new_uuid(rng), when, answers)
            return
        attended = rng.random() < 0.7
        extra = rng.randint(1, 2) if rng.random() < 0.25 else 0
        extra_dates = sorted((day - timedelta(days=rng.randint(2, 20))).isoformat() for _ in range(extra))
        next_known = rng.random() < 0.65
        next_visit = (day + timedelta(days=rng.randint(7, 35))).isoformat() if next_known else ""
        signs = self._danger_signs(0.07)
        danger = signs["data/__has_danger_sign"]
        llin, iron, hiv, tetanus = (("yes" if rng.random() < p else "no") for p in (0.75, 0.7, 0.8, 0.6))
        answers.update(
            {
                "t_pregnancy_follow_up_date": (day + timedelta(days=rng.randint(14, 35))).isoformat(),
                "t_pregnancy_follow_up": "yes",
                "t_danger_signs_referral_follow_up_date": (day + timedelta(days=3)).isoformat(),
                "t_danger_signs_referral_follow_up": danger,
                "pregnancy_summary/g_age_correct": "yes",
                "anc_visits_hf/anc_visits_hf_past/last_visit_attended": "yes" if attended else "no",
                "anc_visits_hf/anc_visits_hf_past/report_other_visits": "yes" if extra else "no",
                "anc_visits_hf/anc_visits_hf_past/visited_hf_count": str(extra),
                "anc_visits_hf/anc_visits_hf_past/visited_dates": [{"visited_date": d} for d in extra_dates],
                "anc_visits_hf/anc_visits_hf_past/visited_dates_count": str(extra),
                "anc_visits_hf/risk_factors/new_risks": "none",
                "anc_visits_hf/risk_factors/r_risk_factor_present": "no",
                "anc_visits_hf/anc_visits_hf_next/anc_next_visit_date/appointment_date_known": (
                    "yes" if next_known else "no"
                ),
                "anc_visits_hf/anc_visits_hf_next/anc_next_visit_date/appointment_date": next_visit,
                **signs,
                "safe_pregnancy_practices/malaria/llin_use": llin,
                "safe_pregnancy_practices/iron_folate/iron_folate_daily": iron,
                "safe_pregnancy_practices/hiv_status/hiv_tested": hiv,
                "safe_pregnancy_practices/tetanus/tt_imm_received": tetanus,
                "data/__gestational_age_correct": "yes",
                "data/__lmp_updated": "no",
                "data/__last_visit_attended": "yes" if attended else "no",
                "data/__report_additional_anc_hf_visits": "yes" if extra else "no",
                "data/__num_additional_anc_hf_visits": str(extra),
                "data/__additional_anc_hf_visit_dates": ",".join(extra_dates),
                "data/__has_risk_factors_not_previously_reported": "no",
                "data/__next_anc_hf_visit_date_known": "yes" if next_known else "no",
                "data/__next_anc_hf_visit_date": next_visit,
                "data/__uses_llin": llin,
                "data/__takes_iron_folate_daily": iron,
                "data/__tested_for_hiv_in_past_3_months": hiv,
                "data/__received_tetanus_toxoid_this_pregnancy": tetanus,
            }
        )
        self._report("pregnancy_home_visit", new_uuid(rng), when, answers)
        if danger == "yes":
            self._danger_sign_follow_up(woman, pregnancy_id, day)

    def _danger_sign_report(self, woman: Member, pregnancy_id: str, day: date) -> None:
        """A woman reports a danger sign between visits (``pregnancy_danger_sign``)."""
        rng = self.rng
        when = visit_ms(rng, day)
        signs = self._danger_signs(1.0)
        answers = self._pregnancy_common(woman, day, when, "")
        answers.update(
            {
                "t_danger_signs_referral_follow_up_date": (day + timedelta(days=3)).isoformat(),
                "t_danger_signs_referral_follow_up": "yes",
                "pregnancy_uuid_ctx": pregnancy_id,
                **signs,
                "data/meta/__pregnancy_uuid": pregnancy_id,
            }
        )
        self._report("pregnancy_danger_sign", new_uuid(rng), when, answers)
        self._danger_sign_follow_up(woman, pregnancy_id, day)

    def _danger_sign_follow_up(self, woman: Member, pregnancy_id: str, reported: date) -> None:
        rng = self.rng
        day = reported + timedelta(days=rng.randint(2, 5))
        if day > self.clock.today or rng.random() < 0.2:
            return
        when = visit_ms(rng, day)
        visited = "yes" if rng.random() < 0.75 else "no"
        signs = self._danger_signs(0.25)
        still = signs["data/__has_danger_sign"]
        answers = self._pregnancy_common(woman, day, when, pregnancy_id)
        answers.update(
            {
                "t_danger_signs_referral_follow_up_date": (day + timedelta(days=3)).isoformat(),
                "t_danger_signs_referral_follow_up": still,
                "pregnancy_uuid_ctx": pregnancy_id,
                "danger_signs/visit_confirm": visited,
                "danger_signs/danger_sign_present": still,
                **signs,
                "data/__visited_hf": visited,
                "data/__still_experiencing_danger_sign": still,
                "data/meta/__pregnancy_uuid": pregnancy_id,
            }
        )
        self._report("pregnancy_danger_sign_follow_up", new_uuid(rng), when, answers)
