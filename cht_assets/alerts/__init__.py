"""Alerts for the people who run the pipeline: what broke, when, and a link into the Dagster UI.

Pure: formatting and delivery (Slack-compatible webhook, SMTP). Dagster's sensors that decide
when to alert live in cht_assets.defs.alerts.
"""

from cht_assets.alerts.message import Alert, redact
from cht_assets.alerts.send import AlertDeliveryError, Channel, EmailChannel, Notifier, WebhookChannel

__all__ = [
    "Alert",
    "AlertDeliveryError",
    "Channel",
    "EmailChannel",
    "Notifier",
    "WebhookChannel",
    "redact",
]
