"""The development console's email backend: one short block per email (to, subject, its links), not raw MIME.

A person running `make run` needs the verification or invitation link, not headers and base64; the links
are what they click.
"""

from __future__ import annotations

import re
import sys
import threading

from django.core.mail.backends.base import BaseEmailBackend

_LINK = re.compile(r"https?://[^\s<>\"')\]]+")


def email_links(message) -> list[str]:
    """Every distinct link of the message's text, then of its HTML alternatives, in order."""
    bodies = [message.body or ""] + [content for content, _ in getattr(message, "alternatives", [])]
    links: list[str] = []
    for body in bodies:
        for link in _LINK.findall(str(body)):
            link = link.rstrip(".,;").replace("&amp;", "&")
            if link not in links:
                links.append(link)
    return links


class ConsoleSummaryBackend(BaseEmailBackend):
    def __init__(self, *args, stream=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.stream = stream
        self._lock = threading.Lock()  # one block at a time when several threads send

    def send_messages(self, email_messages) -> int:
        stream = self.stream or sys.stdout
        with self._lock:
            for message in email_messages:
                lines = [f"── email to {', '.join(message.recipients())}: {message.subject}"]
                lines += [f"     {link}" for link in email_links(message)]
                stream.write("\n".join(lines) + "\n")
            stream.flush()
        return len(email_messages)
