"""Alert text and delivery (cht_assets.alerts) against loopback webhook and SMTP servers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cht_assets.alerts import Alert, AlertDeliveryError, WebhookChannel, redact
from cht_assets.alerts.send import notifier_from
from cht_assets.servers.process import free_port
from tests.ops.receivers import body, smtp_receiver, webhook_receiver
from tests.support.http import send_json, serve

ALERT = Alert(
    "check",
    "raw/medic:matches_couchdb",
    "FAILED",
    datetime(2025, 3, 1, 12, 30, tzinfo=UTC),
    "http://127.0.0.1:3000/assets/raw/medic?view=checks&checkDetail=matches_couchdb",
    ("Severity: ERROR", "error: could not reach postgresql://etl:s3cret@db:5432/cht password=hunter2"),
)


def test_redact_hides_credentials_in_urls_and_conninfo() -> None:
    text = "http://admin:pass@couch:5984/medic and host=db password='a b' and password=x1"
    assert redact(text) == "http://***@couch:5984/medic and host=db password=*** and password=***"


def test_alert_text_names_subject_state_time_and_link_without_secrets() -> None:
    text = ALERT.text()
    assert text.splitlines()[0] == "[CHT pipeline] check raw/medic:matches_couchdb: FAILED"
    assert "When: 2025-03-01 12:30:00 UTC" in text
    assert text.endswith("Dagster: " + ALERT.url)
    assert "s3cret" not in text and "hunter2" not in text


def test_webhook_and_email_receive_the_same_alert() -> None:
    with webhook_receiver() as (url, posts), smtp_receiver() as (port, mails):
        notifier = notifier_from(
            webhook_url=url,
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_from="pipeline@example.org",
            email_to=["ops@example.org", "dm@example.org"],
        )
        assert notifier.send(ALERT) == []
        assert posts.snapshot() == [ALERT.text()]
        envelope, message = mails.wait_for(lambda items: items and items[0], 5, "e-mail")
    assert envelope["to"] == ["<ops@example.org>", "<dm@example.org>"]
    assert message["Subject"] == ALERT.title
    assert message["From"] == "pipeline@example.org"
    assert body(message).strip() == ALERT.text()


def test_failures_do_not_leak_the_webhook_secret() -> None:
    def refuse(handler) -> None:
        send_json(handler, 500, {"error": "boom"})

    with serve(refuse) as base, pytest.raises(AlertDeliveryError) as failed:
        WebhookChannel(f"{base}/services/T1/B2/very-secret-token").send(ALERT)
    assert "HTTP 500" in str(failed.value) and "very-secret-token" not in str(failed.value)
    closed = f"http://127.0.0.1:{free_port()}/services/T1/B2/very-secret-token"
    with pytest.raises(AlertDeliveryError) as failed:
        notifier_from(webhook_url=closed, smtp_host=None, smtp_port=25, smtp_from=None, email_to=[]).send(
            ALERT
        )
    assert "ConnectionError" in str(failed.value) and "very-secret-token" not in str(failed.value)


def test_one_working_channel_is_enough() -> None:
    closed = f"http://127.0.0.1:{free_port()}/hook"
    with smtp_receiver() as (port, mails):
        notifier = notifier_from(
            webhook_url=closed, smtp_host="127.0.0.1", smtp_port=port, smtp_from=None, email_to=["a@b.c"]
        )
        failures = notifier.send(ALERT)
        mails.wait_for(lambda items: items, 5, "e-mail")
    assert len(failures) == 1 and failures[0].startswith("webhook on 127.0.0.1")
