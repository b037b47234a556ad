"""A real HTTP receiver of our webhooks for tests: it verifies each delivery with the documented helper
(outbox.signing.verify_signature) and answers what the test scripts (500, a redirect, 200)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from outbox.signing import SignatureVerificationError, verify_signature


@dataclass
class Receiver:
    secret: str = ""
    answers: list[int] = field(default_factory=list)  # status codes to answer in turn; then 200
    verified: list[dict] = field(default_factory=list)  # the events whose signature checked out
    refused: list[str] = field(default_factory=list)  # why a delivery's signature did not
    headers: list[dict] = field(default_factory=list)
    url: str = ""


def receiver_start() -> tuple[Receiver, ThreadingHTTPServer]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.headers.append(dict(self.headers))
            try:
                state.verified.append(
                    verify_signature(body=body, header=self.headers.get("Tollbooth-Signature", ""), secret=state.secret)
                )
            except SignatureVerificationError as error:
                state.refused.append(str(error))
            status = state.answers.pop(0) if state.answers else 200
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", "http://127.0.0.1:9/elsewhere")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    return state, server
