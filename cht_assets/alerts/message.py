"""One alert and its text: the same words in the webhook post and the e-mail."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

PRODUCT = "CHT pipeline"
MAX_DETAIL_CHARS = 600
# user:password@ in any URL, and password=... in a libpq conninfo.
URL_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s:@]+(?::[^/\s@]*)?@")
PASSWORD_PARAM = re.compile(r"(?i)\b(password|passwd|pwd)\s*=\s*('[^']*'|\S+)")


def redact(text: str) -> str:
    """`text` without credentials: error messages may quote a connection URL."""
    text = URL_CREDENTIALS.sub(lambda m: f"{m.group('scheme')}***@", text)
    return PASSWORD_PARAM.sub(lambda m: f"{m.group(1)}=***", text)


def clip(text: str, limit: int = MAX_DETAIL_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


@dataclass(frozen=True)
class Alert:
    """`subject` names the asset, check or run; `state` is what it is now (FAIL, WARN, PASS...)."""

    kind: str  # "run", "check" or "freshness"
    subject: str
    state: str
    when: datetime
    url: str
    details: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return f"[{PRODUCT}] {self.kind} {self.subject}: {self.state}"

    @property
    def when_text(self) -> str:
        return self.when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

    def text(self) -> str:
        lines = [self.title, f"When: {self.when_text}"]
        lines += [redact(clip(detail)) for detail in self.details if detail]
        lines.append(f"Dagster: {self.url}")
        return "\n".join(lines)

    def webhook_payload(self) -> dict[str, str]:
        """Slack's incoming-webhook format; Mattermost, Rocket.Chat and Teams workflows accept it."""
        return {"text": self.text()}


def asset_url(ui_url: str, asset_path: list[str] | tuple[str, ...]) -> str:
    return f"{ui_url}/assets/" + "/".join(quote(part, safe="") for part in asset_path)


def check_url(ui_url: str, asset_path: list[str] | tuple[str, ...], check_name: str) -> str:
    return f"{asset_url(ui_url, asset_path)}?view=checks&checkDetail={quote(check_name, safe='')}"


def run_url(ui_url: str, run_id: str) -> str:
    return f"{ui_url}/runs/{run_id}"
