"""CHT's translation docs (`messages-<lang>` in `medic`): translation keys -> words.

Task titles (`task.anc.pregnancy_home_visit.title`), target labels and form titles in a CHT
config are translation keys; the words are in one doc per language. Three shapes exist: CHT
before 3.x keeps every key in `values`; later versions split them into `generic` (shipped) and
`custom` (the deployment's own, which win). A doc may be disabled (`enabled: false`): its
words still count, since reports made in that language still carry its keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MESSAGES_PREFIX", "Translations", "parse_messages_docs"]

MESSAGES_PREFIX = "messages-"
# Later keys win: a deployment's `custom` words override the shipped `generic` ones.
_SECTIONS = ("values", "generic", "custom")


@dataclass(frozen=True)
class Translations:
    """key -> words per language code; `names` are the languages' own names (`English`)."""

    by_language: dict[str, dict[str, str]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    default_language: str | None = None

    @property
    def languages(self) -> tuple[str, ...]:
        """Every language present, the default first, then alphabetical."""
        rest = sorted(lang for lang in self.by_language if lang != self.default_language)
        first = (self.default_language,) if self.default_language in self.by_language else ()
        return (*first, *rest)

    def text(self, key: str, lang: str | None = None) -> str:
        """The words for `key` in `lang`, else in the default language, else in any language
        present (the default first), else the key itself: a key never turns into nothing."""
        for candidate in (lang, *self.languages):
            if candidate is not None:
                words = self.by_language.get(candidate, {}).get(key)
                if words:
                    return words
        return key

    def has(self, key: str) -> bool:
        return any(key in words for words in self.by_language.values())

    def keys(self) -> list[str]:
        return sorted({key for words in self.by_language.values() for key in words})


def parse_messages_docs(
    docs: Iterable[Mapping[str, Any]], default_language: str | None = None
) -> Translations:
    """The translations in `docs` (any docs: those that are not `messages-<lang>` translation
    docs, or are deleted, are ignored). `default_language` is the deployment's `locale`; when
    None, `en` if present, else the first language found."""
    by_language: dict[str, dict[str, str]] = {}
    names: dict[str, str] = {}
    for doc in docs:
        doc_id = doc.get("_id")
        if not isinstance(doc_id, str) or not doc_id.startswith(MESSAGES_PREFIX) or doc.get("_deleted"):
            continue
        code = doc.get("code") if isinstance(doc.get("code"), str) and doc.get("code") else None
        lang = code or doc_id.removeprefix(MESSAGES_PREFIX)
        words = by_language.setdefault(lang, {})
        for section in _SECTIONS:
            values = doc.get(section)
            if isinstance(values, Mapping):
                words.update({str(k): v for k, v in values.items() if isinstance(v, str)})
        if isinstance(doc.get("name"), str):
            names[lang] = doc["name"]
    if default_language is None or default_language not in by_language:
        default_language = "en" if "en" in by_language else next(iter(by_language), default_language)
    return Translations(by_language, names, default_language)
