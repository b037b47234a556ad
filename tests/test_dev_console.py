"""`make run` prints each email as one short block: who, what, and the links to click."""

import io
from pathlib import Path

from django.core.mail import EmailMultiAlternatives

from config.mail import ConsoleSummaryBackend


def test_an_email_is_one_block_with_recipient_subject_and_links():
    stream = io.StringIO()
    message = EmailMultiAlternatives(
        subject="[Tollbooth] Confirm your email",
        body="Hello,\nconfirm at http://127.0.0.1:8000/accounts/confirm-email/MQ:abc/.\nThanks",
        from_email="billing@tollbooth.localhost",
        to=["owner@shop.example"],
    )
    message.attach_alternative(
        '<p><a href="http://127.0.0.1:8000/accounts/confirm-email/MQ:abc/">confirm</a>'
        ' or <a href="http://127.0.0.1:8000/terms/?a=1&amp;b=2">terms</a></p>',
        "text/html",
    )

    sent = ConsoleSummaryBackend(stream=stream).send_messages([message])

    assert sent == 1
    assert stream.getvalue().splitlines() == [
        "── email to owner@shop.example: [Tollbooth] Confirm your email",
        "     http://127.0.0.1:8000/accounts/confirm-email/MQ:abc/",
        "     http://127.0.0.1:8000/terms/?a=1&b=2",
    ]
    assert "Content-Type" not in stream.getvalue()


def test_favicon_requests_reach_a_shipped_icon_not_a_404(client):
    from django.contrib.staticfiles import finders

    reply = client.get("/favicon.ico")
    assert reply.status_code == 301
    assert reply["Location"] == "/static/tollbooth/favicon.svg"
    assert "<svg" in Path(finders.find("tollbooth/favicon.svg")).read_text()
