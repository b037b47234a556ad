"""Admin: Stripe's events as received, each handler's outcome, and a replay of the unfinished ones."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.db.models import Count, Q
from django.utils.html import format_html

from accounts.admin import ReadOnlyAdmin, ReadOnlyInline
from billing.models import HandlingStatus, StripeEvent, StripeEventHandling
from billing.stripe.events import stripe_events_replay


class StripeEventHandlingInline(ReadOnlyInline):
    model = StripeEventHandling
    fields = ["handler", "status", "attempts", "started_at", "finished_at", "next_attempt_at", "error"]

    @admin.display(description="Last error")
    def error(self, handling):
        # The exception's own line; the whole traceback is in the logs (and in the row, for the shell).
        return (handling.last_error.strip().splitlines() or [""])[-1]


class ProcessingFilter(admin.SimpleListFilter):
    title = "processing"
    parameter_name = "processing"

    def lookups(self, request, model_admin):
        return [
            ("failing", "A handler failing (retrying or given up)"),
            ("gave_up", "A handler gave up (replay it)"),
            ("waiting", "Not processed yet"),
            ("done", "Processed"),
        ]

    def queryset(self, request, queryset):
        failing = [HandlingStatus.FAILED, HandlingStatus.GAVE_UP]
        return {
            "failing": lambda: queryset.filter(handlings__status__in=failing).distinct(),
            "gave_up": lambda: queryset.filter(handlings__status=HandlingStatus.GAVE_UP).distinct(),
            "waiting": lambda: queryset.filter(processed_at__isnull=True),
            "done": lambda: queryset.filter(processed_at__isnull=False),
        }.get(self.value(), lambda: queryset)()


@admin.register(StripeEvent)
class StripeEventAdmin(ReadOnlyAdmin):
    list_display = ["stripe_created", "type", "customer_id", "outcome"]
    list_filter = [ProcessingFilter, "type"]
    search_fields = ["=stripe_id", "=customer_id", "=object_id"]
    date_hierarchy = "stripe_created"
    readonly_fields = [*(f.name for f in StripeEvent._meta.fields if f.name != "payload"), "payload_json"]
    fieldsets = [
        (None, {"fields": ["type", "stripe_id", "object_id", "customer_id", "livemode"]}),
        ("Processing", {"fields": ["stripe_created", "received_at", "processed_at", "next_attempt_at", "covered_by"]}),
        ("Payload (as Stripe sent it)", {"classes": ["collapse"], "fields": ["payload_json"]}),
    ]
    inlines = [StripeEventHandlingInline]
    actions = ["replay"]

    def get_queryset(self, request):
        failing = Q(handlings__status__in=[HandlingStatus.FAILED, HandlingStatus.GAVE_UP])
        return super().get_queryset(request).annotate(failing=Count("handlings", filter=failing))

    @admin.display(description="Outcome", ordering="failing")
    def outcome(self, event):
        if event.processed_at and event.covered_by_id:
            return "processed (covered by a later event of the same object)"
        if event.processed_at:
            return "processed"
        if event.failing:
            return f"{event.failing} handler(s) failing"
        return "waiting"

    @admin.display(description="Payload")
    def payload_json(self, event):
        return format_html("<pre style='white-space: pre-wrap'>{}</pre>", json.dumps(event.payload, indent=2))

    @admin.action(description="Replay the unfinished handlers of the selected events now")
    def replay(self, request, queryset):
        selected = queryset.filter(processed_at__isnull=True)
        total = selected.count()
        done = stripe_events_replay(events=StripeEvent.objects.filter(pk__in=selected.values("pk")))
        level = messages.SUCCESS if done == total else messages.WARNING
        self.message_user(
            request, f"Replayed {total} event(s): {done} now processed, {total - done} still failing.", level
        )
