"""The invoice PDF ``/_sandbox/pay/invoice/{id}/pdf`` (an invoice's ``invoice_pdf``, set when it is finalized).

A real, minimal PDF 1.4 written by hand (no dependency): one A4 page in Helvetica with the invoice number, status,
customer, one row per line and the totals. Five objects (catalog, pages, page, font, content stream), a
cross-reference table with the byte offset of each, and a trailer, so any PDF reader opens it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from werkzeug import Response

from sandbox.core.routing import ApiRequest, route

PAGE_WIDTH, PAGE_HEIGHT = 595, 842  # A4 in points
LEFT, TOP, LEADING = 56, 780, 16
MAX_ROWS = 40  # one page; further lines are summed up in one row


def _money(cents: int, currency: str) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) / 100:,.2f} {currency.upper()}"


def _text(value: str) -> bytes:
    """A PDF literal string: WinAnsi-ish bytes (Latin-1, others as ?), with \\, ( and ) escaped."""
    raw = value.encode("latin-1", "replace")
    return b"(" + raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)") + b")"


def _rows(invoice: dict, customer: dict | None) -> list[tuple[str, str, int]]:
    """(left text, right text, font size) per printed row."""
    currency = invoice["currency"]
    created = datetime.fromtimestamp(invoice["created"], UTC).strftime("%Y-%m-%d")
    who = (customer or {}).get("name") or invoice["customer_name"] or ""
    email = (customer or {}).get("email") or invoice["customer_email"] or ""
    rows = [
        (f"Invoice {invoice['number'] or invoice['id']}", "", 18),
        (f"Date {created}", f"Status {invoice['status']}", 10),
        (f"Bill to {who} {email}".strip(), invoice["customer"], 10),
        ("", "", 10),
        ("Description", "Amount", 11),
    ]
    lines = invoice["lines"]["data"]
    for line in lines[:MAX_ROWS]:
        label = line["description"] or ""
        if line["quantity"] and line["quantity"] != 1:
            label = f"{label} x {line['quantity']}"
        rows.append((label[:80], _money(line["amount"], currency), 10))
    if len(lines) > MAX_ROWS:
        rest = sum(line["amount"] for line in lines[MAX_ROWS:])
        rows.append((f"{len(lines) - MAX_ROWS} more lines", _money(rest, currency), 10))
    rows += [
        ("", "", 10),
        ("Total", _money(invoice["total"], currency), 11),
        ("Applied balance", _money(invoice["starting_balance"] or 0, currency), 10),
        ("Amount due", _money(invoice["amount_due"], currency), 11),
        ("Amount paid", _money(invoice["amount_paid"], currency), 11),
    ]
    return rows


def invoice_pdf(invoice: dict, customer: dict | None) -> bytes:
    """The invoice as the bytes of a one-page PDF."""
    ops = [b"BT"]
    y = TOP
    for left, right, size in _rows(invoice, customer):
        ops.append(b"/F1 %d Tf 1 0 0 1 %d %d Tm " % (size, LEFT, y) + _text(left) + b" Tj")
        if right:
            ops.append(b"1 0 0 1 %d %d Tm " % (PAGE_WIDTH - LEFT - 6 * len(right), y) + _text(right) + b" Tj")
        y -= LEADING + (size - 10)
    ops.append(b"ET")
    content = b"\n".join(ops)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Resources << /Font << /F1 4 0 R >> >> "
        b"/Contents 5 0 R >>" % (PAGE_WIDTH, PAGE_HEIGHT),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")  # the binary comment tells tools the file is binary
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


@route("GET", "/_sandbox/pay/invoice/<invoice_id>/pdf", auth=False)
def pdf_page(req: ApiRequest, invoice_id: str) -> Response:
    invoice = req.store.get("invoice", invoice_id)
    if invoice is None or invoice["status"] == "draft":  # a draft has no invoice_pdf yet, as on Stripe
        return Response("No such invoice", 404, content_type="text/plain")
    body = invoice_pdf(invoice, req.store.get("customer", invoice["customer"]))
    filename = f"Invoice-{invoice['number'] or invoice_id}.pdf"
    return Response(
        body, 200, content_type="application/pdf", headers={"Content-Disposition": f'inline; filename="{filename}"'}
    )
