"""API: the caller's invoices."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api import caller_account
from billing.api.access import require_billing_access
from billing.subscriptions.selectors import invoices_for_account


class InvoiceOutput(serializers.Serializer):
    id = serializers.CharField()
    number = serializers.CharField(source="stripe_data.number", allow_null=True, default=None)
    status = serializers.CharField(source="stripe_data.status", allow_null=True, default=None)
    currency = serializers.CharField(source="stripe_data.currency")
    amount_due_cents = serializers.IntegerField(source="stripe_data.amount_due")
    amount_paid_cents = serializers.IntegerField(source="stripe_data.amount_paid")
    created = serializers.DateTimeField()
    hosted_invoice_url = serializers.CharField(source="stripe_data.hosted_invoice_url", allow_null=True, default=None)
    invoice_pdf = serializers.CharField(source="stripe_data.invoice_pdf", allow_null=True, default=None)


class InvoiceListView(APIView):
    @extend_schema(
        operation_id="invoices_list",
        summary="The account's invoices, newest first",
        responses={200: InvoiceOutput(many=True)},
    )
    def get(self, request):
        require_billing_access(request)
        account = caller_account(request)
        return Response(InvoiceOutput(invoices_for_account(account=account), many=True).data)
