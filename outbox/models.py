"""The outbox: emails and our own domain events, written in the transaction of the state change they tell
about, sent after commit by a relay.

A row per email or event, unique on a key that names what it is about ("receipt:in_123"): a handler retried after
a failure writes the same key again and finds the row, so it exists once whatever is retried. This app is the
bottom of the layout: every app writes to it, it imports none of them.
"""

from __future__ import annotations

import uuid

from django.db import models


class EmailStatus(models.TextChoices):
    PENDING = "pending", "pending"
    SENT = "sent", "sent"
    FAILED = "failed", "failed (gave up)"


class OutgoingEmail(models.Model):
    key = models.CharField(max_length=200, unique=True, help_text="What the email is about: one email per key.")
    to = models.JSONField(default=list)
    subject = models.CharField(max_length=300)
    text = models.TextField()
    html = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=EmailStatus.choices, default=EmailStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # When the relay may take it (again): at once when written; a lease ahead while one sends it (a relay killed
    # mid-send gives it back); the backoff after a refusal. None once sent or given up.
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"], name="outbox_email_due", condition=models.Q(next_attempt_at__isnull=False)
            )
        ]

    def __str__(self) -> str:
        return f"{self.key} → {', '.join(self.to)} ({self.status})"


class DomainEvent(models.Model):
    """One of our own events (the catalogue: outbox.catalogue), written in the transaction of the change it
    reports; its deliveries (one per webhook endpoint and broker) are written with it and sent after commit."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=64)
    version = models.PositiveSmallIntegerField()
    # The tenant it concerns (accounts.Account's pk: this app knows no other app, so no foreign key object).
    account_id = models.BigIntegerField(null=True, blank=True)
    key = models.CharField(max_length=200, unique=True, help_text="What it reports: one event per key.")
    data = models.JSONField(default=dict)
    occurred_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["account_id", "-created_at"], name="outbox_event_account_newest")]

    def __str__(self) -> str:
        return f"{self.type} {self.public_id}"

    @property
    def public_id(self) -> str:
        return f"evt_{self.id.hex}"


class WebhookEndpoint(models.Model):
    """Where an account's events are POSTed, signed with the endpoint's secret; account None: a platform
    endpoint (from settings), which receives every account's events."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=80)
    event_types = models.JSONField(default=list, blank=True, help_text="Empty: every type.")
    description = models.CharField(max_length=200, blank=True)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.url

    @property
    def public_id(self) -> str:
        return f"we_{self.id.hex}"

    def wants(self, event_type: str) -> bool:
        return self.enabled and (not self.event_types or event_type in self.event_types)


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "pending"
    SUCCEEDED = "succeeded", "succeeded"
    FAILED = "failed", "failed (gave up)"


class EventDelivery(models.Model):
    """One event to one target: a webhook endpoint, or a broker publisher (`target` "broker:<name>")."""

    event = models.ForeignKey(DomainEvent, on_delete=models.CASCADE, related_name="deliveries")
    endpoint = models.ForeignKey(WebhookEndpoint, null=True, blank=True, on_delete=models.CASCADE)
    target = models.CharField(max_length=80)
    status = models.CharField(max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["event", "target"], name="outbox_one_delivery_per_target")]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="outbox_delivery_due",
                condition=models.Q(next_attempt_at__isnull=False),
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_id} → {self.target} ({self.status})"
