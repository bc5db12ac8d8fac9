"""Death reports (``death_report``) and the few that are undone (``undo_death_report``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

from cht_assets.demo.base import age_in_months, age_in_years, new_uuid
from cht_assets.demo.household import Household, Member, visit_ms


class DeathReports(Household):
    """Elders who die during the window, the planned death of the month, and their reports."""

    def _death_common(self, person: Member, day: date, when: int) -> dict[str, Any]:
        """The fields both forms share, the patient's age as of ``day``."""
        answers = self._common(person, when, "action", "")
        dob = person.person.dob
        answers.update(
            {
                "patient_age_in_years": str(age_in_years(dob, day)),
                "patient_age_in_months": str(age_in_months(dob, day)),
                "patient_age_in_days": str((day - dob).days),
                "patient_display_name": person.person.name,
            }
        )
        return answers

    def _death_report(
        self, person: Member, died: date, place: str, reported: date, *, undo: bool = True
    ) -> None:
        rng = self.rng
        when = visit_ms(rng, reported)
        answers = self._death_common(person, died, when)
        answers.update(
            {
                "death_details/date_of_death": died.isoformat(),
                "death_details/place_of_death": place,
                "death_details/place_of_death_other": "On the road" if place == "other" else "",
                "data/__date_of_death": died.isoformat(),
                "data/__place_of_death": place,
                "data/__place_of_death_other": "On the road" if place == "other" else "",
            }
        )
        self._report("death_report", new_uuid(rng), when, answers)
        person.died = died
        person.extra["date_of_death"] = died.isoformat()
        undone = reported + timedelta(days=rng.randint(1, 9))
        if undo and rng.random() < 0.1 and undone <= self.clock.today:
            self._undo_death_report(person, undone)

    def _undo_death_report(self, person: Member, day: date) -> None:
        rng = self.rng
        when = visit_ms(rng, day)
        answers = self._death_common(person, day, when)
        answers.update(
            {
                "undo/undo_information": "yes",
                "data/__confirm_undo": "yes",
            }
        )
        self._report("undo_death_report", new_uuid(rng), when, answers)
        person.died = None
        del person.extra["date_of_death"]

    def _deaths(self, residents: Sequence[Member], planned: bool) -> None:
        """Some elders die during the window; a few of their death reports are undone.

        ``planned``: someone in this household (not followed by any report) dies this month.
        """
        rng = self.rng
        clock = self.clock
        for member in residents:
            if member.relation != "elder" or member.died is not None or rng.random() >= 0.12:
                continue
            earliest = max(member.available, clock.window_start)
            span = (clock.today - earliest).days
            if span < 2:
                continue
            died = earliest + timedelta(days=rng.randint(0, span - 1))
            self._death(member, died, undo=True)
        if planned:
            candidates = [m for m in residents if not m.subject and m.died is None and m.relation != "child"]
            candidates.sort(key=lambda m: m.relation != "elder")
            if candidates:
                self._death(candidates[0], self._this_month_day(), undo=False)

    def _death(self, member: Member, died: date, *, undo: bool) -> None:
        rng = self.rng
        place = rng.choices(("home", "health_facility", "other"), (60, 35, 5))[0]
        delay = rng.choice((0, 1, 1, 2, 4)) if undo else 0
        reported = min(self.clock.today, died + timedelta(days=delay))
        self._death_report(member, died, place, reported, undo=undo)
