"""API: usage events (ingestion) and the usage summary."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api import caller_account, caller_membership
from accounts.authentication import ApiClient, ApiKeyAuthentication, PlatformClient, PlatformTokenAuthentication
from accounts.services import membership_is_manager
from billing.usage.ingest import MAX_BATCH, MAX_KEY_LENGTH, MAX_QUANTITY, usage_events_record
from billing.usage.selectors import usage_summary


class UsageEventInput(serializers.Serializer):
    """The schema of one event (validation is per event, in billing/usage/ingest.py, for speed and per-index errors)."""

    account = serializers.IntegerField(required=False, help_text="Required with the platform token.")
    metric = serializers.CharField(help_text="A metered entitlement of the account's plan, e.g. tickets.")
    quantity = serializers.IntegerField(min_value=1, max_value=MAX_QUANTITY)
    occurred_at = serializers.DateTimeField(help_text="ISO 8601 with a time zone.")
    idempotency_key = serializers.CharField(max_length=MAX_KEY_LENGTH)


class UsageEventBatchInput(serializers.Serializer):
    events = UsageEventInput(many=True, max_length=MAX_BATCH)


class UsageEventErrorOutput(serializers.Serializer):
    code = serializers.CharField()
    field = serializers.CharField(allow_null=True)
    message = serializers.CharField()


class UsageEventResultOutput(serializers.Serializer):
    index = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["new", "duplicate", "refused"])
    id = serializers.IntegerField(required=False)
    error = UsageEventErrorOutput(required=False)


class UsageEventCountsOutput(serializers.Serializer):
    new = serializers.IntegerField()
    duplicate = serializers.IntegerField()
    refused = serializers.IntegerField()


class UsageEventsOutput(serializers.Serializer):
    results = UsageEventResultOutput(many=True)
    counts = UsageEventCountsOutput()


def _machine_account(request):
    """The account an ingesting caller may report for: its API key's, or None (any) for the platform token."""
    if isinstance(request.user, PlatformClient):
        return None
    if isinstance(request.user, ApiClient):
        return request.user.account
    raise exceptions.PermissionDenied(
        "Usage is reported by machines: use the account's API key or the platform token.", code="machine_only"
    )


class UsageEventsView(APIView):
    authentication_classes = [PlatformTokenAuthentication, ApiKeyAuthentication, SessionAuthentication]

    @extend_schema(
        operation_id="usage_events_create",
        summary="Report usage: one event, or {'events': [...]} of up to 1,000",
        description=(
            "Each event is recorded once per (account, idempotency_key): a retried batch adds nothing. "
            "One bad event refuses only itself; the answer has one result per index (new, duplicate, or "
            "refused with a code, the field and a message). 200 when nothing was refused, 207 when some "
            "events were, 400 when all were (or the batch itself is malformed: not JSON, over 1,000 events)."
        ),
        request=UsageEventBatchInput,
        responses={200: UsageEventsOutput, 207: UsageEventsOutput, 400: UsageEventsOutput},
        examples=[
            OpenApiExample(
                "Batch",
                request_only=True,
                value={
                    "events": [
                        {
                            "account": 7,
                            "metric": "tickets",
                            "quantity": 1,
                            "occurred_at": "2026-11-24T10:00:00Z",
                            "idempotency_key": "ticket-8812-answered",
                        }
                    ]
                },
            )
        ],
    )
    def post(self, request):
        account = _machine_account(request)
        data = request.data
        if isinstance(data, dict) and "events" in data:
            if set(data) != {"events"}:
                raise exceptions.ValidationError({"events": ["A batch is {'events': [...]} and nothing else."]})
            events = data["events"]
            if not isinstance(events, list) or not events:
                raise exceptions.ValidationError({"events": ["Send a list of 1 to 1,000 events."]}, code="invalid")
            if len(events) > MAX_BATCH:
                raise exceptions.ValidationError(
                    {"events": [f"A batch holds at most {MAX_BATCH:,} events (this one has {len(events):,})."]},
                    code="batch_too_large",
                )
        elif isinstance(data, dict):
            events = [data]
        else:
            raise exceptions.ValidationError(
                {"non_field_errors": ["Send one event object, or {'events': [...]}."]}, code="invalid"
            )
        outcome = usage_events_record(events=events, caller_account=account)
        body = {"results": outcome.results, "counts": outcome.counts}
        refused = outcome.counts["refused"]
        if not refused:
            return Response(body, status=status.HTTP_200_OK)
        fields = {
            f"events[{r['index']}].{r['error']['field'] or 'event'}": [r["error"]["message"]]
            for r in outcome.results
            if r["status"] == "refused"
        }
        body["error"] = {
            "code": "events_refused",
            "message": f"{refused} of {len(events)} events refused; the others were recorded."
            if refused < len(events)
            else "Every event was refused; nothing was recorded.",
            "fields": fields,
        }
        return Response(body, status=status.HTTP_207_MULTI_STATUS if refused < len(events) else 400)


class RatingLineOutput(serializers.Serializer):
    metric = serializers.CharField()
    unit_name = serializers.CharField()
    included = serializers.IntegerField()
    used = serializers.IntegerField()
    overage_units = serializers.IntegerField()
    unit_amount_cents = serializers.IntegerField(allow_null=True)
    amount_cents = serializers.IntegerField(allow_null=True)


class UpgradeOutput(serializers.Serializer):
    plan_code = serializers.CharField()
    plan_name = serializers.CharField()
    interval = serializers.CharField()
    monthly_fee_cents = serializers.IntegerField()
    projected_overage_cents = serializers.IntegerField()
    projected_total_cents = serializers.IntegerField()
    current_projected_total_cents = serializers.IntegerField()
    saving_cents = serializers.IntegerField()


class PastPeriodOutput(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    amount_cents = serializers.IntegerField(allow_null=True)
    currency = serializers.CharField(allow_null=True)
    ledger_state = serializers.CharField(allow_null=True)


class UsageOutput(serializers.Serializer):
    plan = serializers.CharField()
    plan_name = serializers.CharField()
    interval = serializers.CharField()
    currency = serializers.CharField()
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    closes_at = serializers.DateTimeField(help_text="After this, late events for the period are refused.")
    money_visible = serializers.BooleanField(help_text="False for agents: amounts are null.")
    metrics = RatingLineOutput(many=True, help_text="This period so far.")
    projected_metrics = RatingLineOutput(many=True, help_text="Linear projection to the period's end.")
    overage_cents = serializers.IntegerField(allow_null=True)
    projected_overage_cents = serializers.IntegerField(allow_null=True)
    upgrade = UpgradeOutput(allow_null=True)
    past_periods = PastPeriodOutput(many=True)


def usage_payload(summary, *, money_visible: bool) -> dict:
    """The usage summary as the API and the page show it; agents see units, not money."""

    def lines(rating):
        rows = [dict(vars(line)) for line in rating.lines]
        if not money_visible:
            for row in rows:
                row["unit_amount_cents"] = row["amount_cents"] = None
        return rows

    return {
        "plan": summary.plan_code,
        "plan_name": summary.plan_name,
        "interval": summary.interval,
        "currency": summary.currency,
        "period_start": summary.period_start,
        "period_end": summary.period_end,
        "closes_at": summary.closes_at,
        "money_visible": money_visible,
        "metrics": lines(summary.current),
        "projected_metrics": lines(summary.projected),
        "overage_cents": summary.current.amount_cents if money_visible else None,
        "projected_overage_cents": summary.projected.amount_cents if money_visible else None,
        "upgrade": vars(summary.upgrade) if summary.upgrade and money_visible else None,
        "past_periods": [
            {
                "start": p.start,
                "end": p.end,
                "amount_cents": p.amount_cents if money_visible else None,
                "currency": p.currency,
                "ledger_state": p.ledger_state,
            }
            for p in summary.past
        ],
    }


class UsageView(APIView):
    authentication_classes = [PlatformTokenAuthentication, ApiKeyAuthentication, SessionAuthentication]

    @extend_schema(
        operation_id="usage_retrieve",
        summary="This period's usage against the plan, its projection, a cheaper plan if any, past periods",
        description="Owners, admins and the account's API keys see amounts; agents see units only (money is null).",
        responses={200: UsageOutput},
    )
    def get(self, request):
        if isinstance(request.user, PlatformClient):
            raise exceptions.PermissionDenied(
                "The platform token reports usage; it reads nothing. Use an API key or sign in.", code="machine_only"
            )
        account = caller_account(request)
        membership = caller_membership(request)
        money_visible = membership is None or membership_is_manager(membership)
        summary = usage_summary(account=account)
        if summary is None:
            raise exceptions.NotFound("This account has no subscription yet, so no usage.", code="no_subscription")
        return Response(UsageOutput(usage_payload(summary, money_visible=money_visible)).data)
