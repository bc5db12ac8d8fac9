"""Delivery: a Slack-compatible webhook and SMTP e-mail. Errors never quote the webhook URL
(its path is the secret) nor the SMTP password."""

from __future__ import annotations

import smtplib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Protocol
from urllib.parse import urlsplit

import requests

from cht_assets.alerts.message import Alert

TIMEOUT_SECONDS = 15.0


class AlertDeliveryError(RuntimeError):
    """No channel accepted the alert."""


class Channel(Protocol):
    name: str

    def send(self, alert: Alert) -> None: ...


@dataclass(frozen=True)
class WebhookChannel:
    url: str = field(repr=False)
    timeout: float = TIMEOUT_SECONDS
    name: str = "webhook"

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "?"

    def send(self, alert: Alert) -> None:
        try:
            response = requests.post(self.url, json=alert.webhook_payload(), timeout=self.timeout)
        except requests.RequestException as exc:
            raise AlertDeliveryError(f"webhook on {self.host}: {type(exc).__name__}") from None
        if response.status_code >= 300:
            raise AlertDeliveryError(f"webhook on {self.host}: HTTP {response.status_code}")


@dataclass(frozen=True)
class EmailChannel:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: str = "none"  # "starttls", "ssl" or "none"
    timeout: float = TIMEOUT_SECONDS
    name: str = "email"

    def message(self, alert: Alert) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = alert.title
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message.set_content(alert.text())
        return message

    def send(self, alert: Alert) -> None:
        try:
            if self.tls == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with smtp:
                if self.tls == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if self.user:
                    smtp.login(self.user, self.password or "")
                smtp.send_message(self.message(alert))
        except (OSError, smtplib.SMTPException) as exc:
            code = getattr(exc, "smtp_code", None)
            raise AlertDeliveryError(
                f"e-mail via {self.host}:{self.port}: {type(exc).__name__}" + (f" {code}" if code else "")
            ) from None


@dataclass(frozen=True)
class Notifier:
    """Sends each alert to every channel; fine when at least one took it."""

    channels: Sequence[Channel]

    @property
    def configured(self) -> bool:
        return bool(self.channels)

    def send(self, alert: Alert) -> list[str]:
        """The channels that failed (as messages). Raises when every channel failed."""
        failures = []
        for channel in self.channels:
            try:
                channel.send(alert)
            except AlertDeliveryError as exc:
                failures.append(str(exc))
        if self.channels and len(failures) == len(self.channels):
            raise AlertDeliveryError("; ".join(failures))
        return failures


def notifier_from(
    *,
    webhook_url: str | None,
    smtp_host: str | None,
    smtp_port: int,
    smtp_from: str | None,
    email_to: Sequence[str],
    smtp_user: str | None = None,
    smtp_password: str | None = None,
    smtp_tls: str = "none",
) -> Notifier:
    channels: list[Channel] = []
    if webhook_url:
        channels.append(WebhookChannel(webhook_url))
    if smtp_host and email_to:
        channels.append(
            EmailChannel(
                smtp_host,
                smtp_port,
                smtp_from or "cht-pipeline@localhost",
                tuple(email_to),
                smtp_user,
                smtp_password,
                smtp_tls,
            )
        )
    return Notifier(channels)
