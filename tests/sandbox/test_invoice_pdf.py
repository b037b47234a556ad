"""An invoice's `invoice_pdf` answers a real PDF: a parsable file with the invoice's number, customer, lines, total."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

from tests.sandbox.billing_helpers import clock_customer


def _get(url: str) -> tuple[int, dict, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _objects_by_xref(pdf: bytes) -> dict[int, bytes]:
    """Follow startxref → the xref table → each object's offset, as a reader does; fails on a broken file."""
    assert pdf.startswith(b"%PDF-1.") and pdf.rstrip().endswith(b"%%EOF")
    startxref = int(re.search(rb"startxref\s+(\d+)\s+%%EOF\s*$", pdf).group(1))
    assert pdf[startxref:].startswith(b"xref")
    header = re.match(rb"xref\s+0 (\d+)\s+", pdf[startxref:])
    count = int(header.group(1))
    table = pdf[startxref + header.end() :].split(b"trailer")[0].split(b"\n")
    entries = [row for row in table if row.strip()][:count]
    assert entries[0].startswith(b"0000000000 65535 f")
    found = {}
    for number, row in enumerate(entries[1:], start=1):
        offset = int(row[:10])
        assert pdf[offset:].startswith(b"%d 0 obj" % number), number
        found[number] = pdf[offset : pdf.index(b"endobj", offset)]
    assert b"/Root 1 0 R" in pdf[pdf.index(b"trailer") :]
    return found


def _invoice(stripe_client):
    _, customer = clock_customer(stripe_client)
    stripe_client.v1.customers.update(customer.id, params={"name": "Shop (EU) Ltd"})
    for amount, description in ((2500, "Setup fee"), (1234, "Overage: 12 tickets")):
        stripe_client.v1.invoice_items.create(
            params={"customer": customer.id, "amount": amount, "currency": "usd", "description": description}
        )
    draft = stripe_client.v1.invoices.create(
        params={"customer": customer.id, "pending_invoice_items_behavior": "include"}
    )
    return draft


def test_invoice_pdf_is_a_real_pdf_of_the_invoice(stripe_client):
    draft = _invoice(stripe_client)
    assert draft.invoice_pdf is None
    invoice = stripe_client.v1.invoices.finalize_invoice(draft.id)
    assert invoice.invoice_pdf == invoice.hosted_invoice_url + "/pdf"

    status, headers, pdf = _get(invoice.invoice_pdf)
    assert (status, headers["Content-Type"]) == (200, "application/pdf")
    objects = _objects_by_xref(pdf)
    assert b"/Type /Catalog" in objects[1] and b"/Count 1" in objects[2]
    stream = objects[5]
    assert int(re.search(rb"/Length (\d+)", stream).group(1)) == len(
        stream.split(b"stream\n", 1)[1].rsplit(b"\nendstream", 1)[0]
    )
    for text in (f"Invoice {invoice.number}", "Shop \\(EU\\) Ltd", "Setup fee", "25.00 USD", "12.34 USD", "37.34 USD"):
        assert text.encode() in stream, text


def test_a_draft_has_no_pdf(stripe_client, sandbox):
    draft = _invoice(stripe_client)
    status, _, _ = _get(f"{sandbox.base_url}/_sandbox/pay/invoice/{draft.id}/pdf")
    assert status == 404


def test_an_unknown_invoice_has_no_pdf(sandbox):
    assert _get(f"{sandbox.base_url}/_sandbox/pay/invoice/in_missing/pdf")[0] == 404
