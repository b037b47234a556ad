from __future__ import annotations

from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from billing.models import HandlingStatus, StripeEvent
from billing.stripe.events import stripe_events_replay


class Command(BaseCommand):
    help = (
        "Run the unfinished handlers of stored Stripe events again, now (given up ones too); handlers that "
        "succeeded are not repeated. Select by id, by type, by a time range of Stripe's event creation, or all "
        "events with a handler that gave up."
    )

    def add_arguments(self, parser):
        parser.add_argument("ids", nargs="*", help="Stripe event ids (evt_...).")
        parser.add_argument("--type", dest="types", action="append", default=[], help="An event type (repeatable).")
        parser.add_argument("--since", help="ISO time: events Stripe created at or after it.")
        parser.add_argument("--until", help="ISO time: events Stripe created before it.")
        parser.add_argument("--gave-up", action="store_true", help="Every event with a handler that gave up.")

    def handle(self, *args, ids, types, since, until, gave_up, **options):
        if not (ids or types or since or until or gave_up):
            raise CommandError("Say which events: ids, --type, --since/--until, or --gave-up.")
        events = StripeEvent.objects.all()
        if ids:
            events = events.filter(stripe_id__in=ids)
        if types:
            events = events.filter(type__in=types)
        if since:
            events = events.filter(stripe_created__gte=_moment(since))
        if until:
            events = events.filter(stripe_created__lt=_moment(until))
        if gave_up:
            events = events.filter(handlings__status=HandlingStatus.GAVE_UP).distinct()
        unfinished = events.filter(processed_at__isnull=True)
        total = unfinished.count()
        done = stripe_events_replay(events=StripeEvent.objects.filter(pk__in=unfinished.values("pk")))
        self.stdout.write(
            f"{events.count()} event(s) selected, {total} unfinished: "
            f"{done} now processed, {total - done} still failing."
        )


def _moment(text: str) -> datetime:
    moment = parse_datetime(text)
    if moment is None or moment.tzinfo is None:
        raise CommandError(f"{text!r} is not an ISO time with a time zone (2026-12-01T00:00:00Z).")
    return moment
