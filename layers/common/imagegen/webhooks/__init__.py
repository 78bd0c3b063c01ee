"""Signed webhooks (Standard Webhooks): secrets and signatures, events queued when a job or batch ends, delivery.

The package exports the secrets part only: the API's secret routes import it, and must not pay at cold start for the
queue messages and delivery code the webhook function uses (imagegen.webhooks.events, imagegen.webhooks.delivery).
"""

from imagegen.webhooks.secrets import SecretView, WebhookSecret, WebhookSecrets, new_secret, signature_header

__all__ = ["SecretView", "WebhookSecret", "WebhookSecrets", "new_secret", "signature_header"]
