"""Primitives of the demo generator: time (East Africa Time, relative to a "today"), ids,
deterministic revisions, CHT shortcodes, and small value formatters.

Pure: no clock, no network. Imported by every demo module (generator, forms, tasks, targets).
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

Doc = dict[str, Any]

MEDIC = "medic"
SENTINEL = "medic-sentinel"
USERS_META = "medic-users-meta"
LOGS = "medic-logs"
USERS = "_users"
"""CouchDB's users database (server-wide: never prefixed)."""
DATABASES: tuple[str, ...] = (MEDIC, SENTINEL, USERS_META, LOGS, USERS)
"""Database suffixes, in the order the loader creates them (``medic`` is the prefix itself)."""

LOCAL_TZ = timezone(timedelta(hours=3))
DEFAULT_TODAY = date(2024, 6, 30)
"""``generate``'s default "today" (the CLI, loader and demo server pass ``date.today()``)."""
WINDOW_DAYS = 545
"""Days of history before "today": household registrations and reports start then."""

DAY_MS = 86_400_000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


# --------------------------------------------------------------------------------------------
# time, ids, revisions, shortcodes


def local_ms(day: date, minute_of_day: int) -> int:
    """Epoch milliseconds of ``day`` at ``minute_of_day`` East Africa Time (UTC+3)."""
    return (day.toordinal() - EPOCH_ORDINAL) * DAY_MS + (minute_of_day - 180) * 60_000


@dataclass(frozen=True)
class Clock:
    """The deployment's "today": nothing is dated later (mutation rounds add a day per round)."""

    today: date

    @property
    def window_start(self) -> date:
        """First day with household registrations and reports."""
        return self.today - timedelta(days=WINDOW_DAYS)

    @property
    def now_ms(self) -> int:
        """Generation "now": today 20:00 EAT (reports are made between 07:30 and 18:00)."""
        return local_ms(self.today, 20 * 60)

    def idle(self, days: int) -> Clock:
        """The clock of a CHW who has not synced for ``days``: nothing of theirs is newer."""
        return Clock(self.today - timedelta(days=days))


def iso_utc(ms: int) -> str:
    """``2024-03-01T07:15:00.000Z``"""
    moment = EPOCH + timedelta(milliseconds=ms)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_local(ms: int) -> str:
    """``2024-03-01T10:15:00.000+03:00``: how Enketo stores a dateTime."""
    return (EPOCH + timedelta(milliseconds=ms)).astimezone(LOCAL_TZ).isoformat(timespec="milliseconds")


def new_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def rev_hash(seed: int, doc_id: str, generation: int, branch: str = "") -> str:
    """The 32-hex hash of revision ``generation`` of ``doc_id`` (``branch`` names a conflict)."""
    key = f"{seed}\x1f{doc_id}\x1f{generation}\x1f{branch}".encode()
    return hashlib.md5(key, usedforsecurity=False).hexdigest()


def make_rev(seed: int, doc_id: str, generation: int, branch: str = "") -> str:
    return f"{generation}-{rev_hash(seed, doc_id, generation, branch)}"


def rev_generation(rev: str) -> int:
    return int(rev.split("-", 1)[0])


def revisions(seed: int, doc_id: str, rev: str) -> dict[str, Any]:
    """``_revisions`` for ``rev``: its own hash, then the deterministic ancestors down to 1."""
    generation_text, top = rev.split("-", 1)
    generation = int(generation_text)
    ancestors = [rev_hash(seed, doc_id, n) for n in range(generation - 1, 0, -1)]
    return {"start": generation, "ids": [top, *ancestors]}


def check_digit(digits: str) -> str:
    """CHT's shortcode check digit: weights n+1 .. 2, sum mod 11, 10 counts as 0."""
    size = len(digits)
    total = sum(int(ch) * (size + 1 - i) for i, ch in enumerate(digits))
    remainder = total % 11
    return "0" if remainder == 10 else str(remainder)


@dataclass(frozen=True)
class Shortcodes:
    """A bijection from slot numbers to unique, random-looking shortcodes of one length."""

    modulus: int
    low: int
    offset: int

    @classmethod
    def for_slots(cls, slots: int, seed: int) -> Shortcodes:
        width = 4
        while 9 * 10 ** (width - 1) <= slots:
            width += 1
        modulus = 9 * 10 ** (width - 1)
        return cls(modulus, 10 ** (width - 1), seed % modulus)

    @property
    def length(self) -> int:
        return len(str(self.low)) + 1

    def code(self, slot: int) -> str:
        # 7919 is prime and the modulus only has the factors 2, 3 and 5: a permutation.
        body = str(self.low + (slot * 7919 + self.offset) % self.modulus)
        return body + check_digit(body)


def lineage(ids: Sequence[str]) -> dict[str, Any] | None:
    """Minified parent chain ``{_id, parent: {_id, parent: ...}}`` from nearest to root."""
    node: dict[str, Any] | None = None
    for place_id in reversed(ids):
        node = {"_id": place_id} if node is None else {"_id": place_id, "parent": node}
    return node


def dec(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}"


def long_date(day: date) -> str:
    return f"{day.day} {day.strftime('%b')}, {day.year}"


def age_in_years(born: date, on: date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def age_in_months(born: date, on: date) -> int:
    return (on.year - born.year) * 12 + on.month - born.month - (on.day < born.day)
