"""The hosted invoice page ``/_sandbox/pay/invoice/{id}`` (``hosted_invoice_url``): pay with a test card."""

from __future__ import annotations

import html

from werkzeug import Response

from sandbox.billing.invoices.collect import attempt
from sandbox.core import errors
from sandbox.core.routing import ApiRequest, route
from sandbox.resources import payment_methods


@route("GET", "/_sandbox/pay/invoice/<invoice_id>", auth=False)
def hosted_page(req: ApiRequest, invoice_id: str) -> Response:
    invoice = req.store.get("invoice", invoice_id)
    if invoice is None:
        return Response("No such invoice", 404, content_type="text/plain")
    lines = "".join(
        f"<tr><td>{html.escape(line['description'] or '')}</td><td>{line['amount'] / 100:.2f}</td></tr>"
        for line in invoice["lines"]["data"]
    )
    form = ""
    if invoice["status"] == "open":
        form = (
            f'<form method="post" action="/_sandbox/pay/invoice/{invoice_id}">'
            '<label>Test card <input name="payment_method" value="pm_card_visa"></label>'
            '<button type="submit">Pay</button></form>'
        )
    body = (
        f"<!doctype html><title>Invoice {html.escape(invoice['number'] or invoice_id)}</title>"
        f"<h1>Invoice {html.escape(invoice['number'] or invoice_id)}</h1>"
        f"<p>Status: <b id='status'>{invoice['status']}</b></p><table>{lines}</table>"
        f"<p>Amount due: {invoice['amount_due'] / 100:.2f} {invoice['currency'].upper()}</p>{form}"
    )
    return Response(body, 200, content_type="text/html; charset=utf-8")


@route("POST", "/_sandbox/pay/invoice/<invoice_id>", auth=False)
def hosted_page_pay(req: ApiRequest, invoice_id: str) -> Response:
    store = req.store
    invoice = store.get("invoice", invoice_id)
    if invoice is None:
        return Response("No such invoice", 404, content_type="text/plain")
    message = "Paid."
    if invoice["status"] == "open":
        customer = store.get("customer", invoice["customer"])
        try:
            pm = payment_methods.payment_method_for_customer(
                store, req.params.get("payment_method") or "pm_card_visa", customer, "payment_method"
            )
            failure = attempt(store, invoice, payment_method=pm["id"], off_session=False)
        except errors.StripeError as exc:
            failure = {"message": exc.message}
        if failure is not None:
            message = "Payment failed: " + failure["message"]
    return Response(
        f"<!doctype html><p id='result'>{html.escape(message)}</p>"
        f"<p><a href='/_sandbox/pay/invoice/{invoice_id}'>Back to the invoice</a></p>",
        200,
        content_type="text/html; charset=utf-8",
    )
