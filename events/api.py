"""REST API v1: the account's webhook endpoints and its domain events (owners and admins, scoped to the account)."""

from __future__ import annotations

import uuid

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services as accounts_services
from accounts.api import StrictSerializer, caller_account, require_person
from events import services
from outbox.catalogue import CATALOGUE
from outbox.models import EventDelivery


class EndpointOutput(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    url = serializers.URLField()
    event_types = serializers.ListField(child=serializers.CharField())
    description = serializers.CharField()
    enabled = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class EndpointCreatedOutput(EndpointOutput):
    secret = serializers.CharField(help_text="The signing secret: shown when created or rolled, keep it safe.")


class EndpointInput(StrictSerializer):
    url = serializers.URLField(max_length=500)
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=sorted(CATALOGUE)),
        required=False,
        default=list,
        help_text="Empty: every type.",
    )
    description = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class EndpointUpdateInput(StrictSerializer):
    url = serializers.URLField(max_length=500, required=False)
    event_types = serializers.ListField(child=serializers.ChoiceField(choices=sorted(CATALOGUE)), required=False)
    description = serializers.CharField(max_length=200, required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False)
    roll_secret = serializers.BooleanField(required=False, help_text="A new signing secret, returned once.")


class DeliveryOutput(serializers.ModelSerializer):
    endpoint = serializers.SerializerMethodField()

    class Meta:
        model = EventDelivery
        fields = [
            "endpoint",
            "status",
            "attempts",
            "last_attempt_at",
            "next_attempt_at",
            "delivered_at",
            "response_status",
            "last_error",
        ]

    def get_endpoint(self, delivery) -> str | None:
        return delivery.endpoint.public_id if delivery.endpoint_id else None


class EventOutput(serializers.Serializer):
    id = serializers.CharField(source="public_id")
    type = serializers.CharField()
    api_version = serializers.IntegerField(source="version")
    created = serializers.DateTimeField(source="occurred_at")
    data = serializers.JSONField()
    deliveries = serializers.SerializerMethodField()

    def get_deliveries(self, event) -> list[dict]:
        # The account's own endpoints only: platform endpoints and the broker are not the merchant's business.
        own = [d for d in event.deliveries.all() if d.endpoint_id and d.endpoint.account_id == event.account_id]
        return DeliveryOutput(own, many=True).data


class RedeliverInput(StrictSerializer):
    endpoint = serializers.CharField(required=False, help_text="One endpoint's id (we_...); default: all of them.")


def _manager_account(request):
    require_person(request)
    account = caller_account(request)
    accounts_services.require_manager(account=account, actor=request.user)
    return account


def _by_public_id(queryset, public_id: str, prefix: str):
    try:
        key = uuid.UUID(public_id.removeprefix(prefix))
    except ValueError:
        raise exceptions.NotFound() from None
    found = queryset.filter(pk=key).first()
    if found is None:
        raise exceptions.NotFound()  # another account's id is simply not found
    return found


class WebhookEndpointListView(APIView):
    @extend_schema(
        operation_id="webhook_endpoints_list",
        summary="The account's webhook endpoints",
        responses={200: EndpointOutput(many=True)},
    )
    def get(self, request):
        account = _manager_account(request)
        return Response(EndpointOutput(services.webhook_endpoints_for(account=account), many=True).data)

    @extend_schema(
        operation_id="webhook_endpoints_create",
        summary="Add a webhook endpoint (secret shown once)",
        request=EndpointInput,
        responses={201: EndpointCreatedOutput},
    )
    def post(self, request):
        account = _manager_account(request)
        payload = EndpointInput(data=request.data)
        payload.is_valid(raise_exception=True)
        endpoint = services.webhook_endpoint_create(account=account, actor=request.user, **payload.validated_data)
        return Response(EndpointCreatedOutput(endpoint).data, status=status.HTTP_201_CREATED)


class WebhookEndpointDetailView(APIView):
    def _endpoint(self, request, endpoint_id):
        account = _manager_account(request)
        return account, _by_public_id(services.webhook_endpoints_for(account=account), endpoint_id, "we_")

    @extend_schema(operation_id="webhook_endpoints_get", summary="A webhook endpoint", responses={200: EndpointOutput})
    def get(self, request, endpoint_id: str):
        _, endpoint = self._endpoint(request, endpoint_id)
        return Response(EndpointOutput(endpoint).data)

    @extend_schema(
        operation_id="webhook_endpoints_update",
        summary="Change a webhook endpoint (or roll its secret)",
        request=EndpointUpdateInput,
        responses={200: EndpointCreatedOutput},
    )
    def patch(self, request, endpoint_id: str):
        account, endpoint = self._endpoint(request, endpoint_id)
        payload = EndpointUpdateInput(data=request.data)
        payload.is_valid(raise_exception=True)
        rolled = bool(payload.validated_data.get("roll_secret"))
        endpoint = services.webhook_endpoint_update(
            endpoint=endpoint, account=account, actor=request.user, changes=dict(payload.validated_data)
        )
        return Response((EndpointCreatedOutput if rolled else EndpointOutput)(endpoint).data)

    @extend_schema(operation_id="webhook_endpoints_delete", summary="Remove a webhook endpoint", responses={204: None})
    def delete(self, request, endpoint_id: str):
        account, endpoint = self._endpoint(request, endpoint_id)
        services.webhook_endpoint_delete(endpoint=endpoint, account=account, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class NewestFirst(CursorPagination):
    page_size = 50
    max_page_size = 100
    page_size_query_param = "limit"
    ordering = ("-created_at", "-id")


class EventListView(APIView):
    @extend_schema(
        operation_id="events_list",
        summary="The account's domain events, newest first",
        responses={200: EventOutput(many=True)},
    )
    def get(self, request):
        account = _manager_account(request)
        events = services.events_for(account=account).prefetch_related("deliveries__endpoint")
        if request.query_params.get("type"):
            events = events.filter(type=request.query_params["type"])
        paginator = NewestFirst()
        page = paginator.paginate_queryset(events, request, view=self)
        return paginator.get_paginated_response(EventOutput(page, many=True).data)


class EventDetailView(APIView):
    @extend_schema(operation_id="events_get", summary="A domain event and its deliveries", responses={200: EventOutput})
    def get(self, request, event_id: str):
        account = _manager_account(request)
        event = _by_public_id(services.events_for(account=account), event_id, "evt_")
        return Response(EventOutput(event).data)


class EventRedeliverView(APIView):
    @extend_schema(
        operation_id="events_redeliver",
        summary="Send an event to the account's endpoints again",
        request=RedeliverInput,
        responses={202: EventOutput},
    )
    def post(self, request, event_id: str):
        account = _manager_account(request)
        event = _by_public_id(services.events_for(account=account), event_id, "evt_")
        payload = RedeliverInput(data=request.data)
        payload.is_valid(raise_exception=True)
        endpoint = None
        if payload.validated_data.get("endpoint"):
            endpoint = _by_public_id(
                services.webhook_endpoints_for(account=account), payload.validated_data["endpoint"], "we_"
            )
        services.event_redeliver_for(event=event, account=account, actor=request.user, endpoint=endpoint)
        event = services.events_for(account=account).get(pk=event.pk)
        return Response(EventOutput(event).data, status=status.HTTP_202_ACCEPTED)
