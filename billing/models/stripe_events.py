"""Stripe's events as we received them, and what each of our handlers made of each one.

An event is stored once (unique on Stripe's id) after its signature was checked, and answered at once; Celery
applies it afterwards. Every handler's outcome is a row of its own, so a handler that fails is retried alone,
without undoing or repeating the handlers that succeeded (Zulip's `corporate` keeps one status per event the
same way).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class StripeEvent(models.Model):
    stripe_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    livemode = models.BooleanField(default=False)
    object_id = models.CharField(max_length=255, blank=True)
    # Events of one customer are applied one at a time (the ordering key); empty for events of no customer.
    customer_id = models.CharField(max_length=255, blank=True)
    stripe_created = models.DateTimeField()
    payload = models.JSONField()
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)  # every handler succeeded (or there were none)
    # Done by a later event of the same type and object, applied in the same turn: its handlers re-read the
    # object and did all this one's would have (billing.stripe.events). This one has no outcome rows of its own.
    covered_by = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="covered", db_index=False
    )
    # When the sweeper next hands the event to a worker if it is not processed by then: a lease after intake
    # and after each start (a lost task, a killed worker, the broker down), else the earliest handler retry.
    # None once processed, or given up (a handler out of attempts: replayed by staff).
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-stripe_created", "-id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"], name="stripe_event_due", condition=models.Q(next_attempt_at__isnull=False)
            ),
            models.Index(fields=["type", "stripe_created"], name="stripe_event_type_created"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.stripe_id}"


class HandlingStatus(models.TextChoices):
    STARTED = "started", "Started"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed (will be retried)"
    GAVE_UP = "gave_up", "Gave up (replay it)"
    COVERED = "covered", "Done by a later event of the same object"  # its event's covered_by ran it


class StripeEventHandling(models.Model):
    """One handler's outcome for one event."""

    event = models.ForeignKey(StripeEvent, on_delete=models.CASCADE, related_name="handlings")
    handler = models.CharField(max_length=100)
    status = models.CharField(max_length=10, choices=HandlingStatus.choices, default=HandlingStatus.STARTED)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)  # a failed handler's retry

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["event", "handler"], name="stripe_event_handling_once")]

    def __str__(self) -> str:
        return f"{self.handler}: {self.status}"
