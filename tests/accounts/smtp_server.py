"""A real local SMTP server for tests: it refuses the first N messages with 554, then accepts and keeps them."""

from __future__ import annotations

import socketserver
import threading
from dataclasses import dataclass, field


@dataclass
class SmtpServer:
    refuse_first: int = 0
    received: list[str] = field(default_factory=list)
    refused: int = 0
    port: int = 0


class _Handler(socketserver.StreamRequestHandler):
    def handle(self):
        state: SmtpServer = self.server.state
        self._reply("220 test-smtp ready")
        while line := self.rfile.readline():
            command = line.decode("ascii", "replace").strip().upper()
            if command.startswith(("EHLO", "HELO")):
                self._reply("250 test-smtp")
            elif command.startswith(("MAIL", "RCPT", "RSET", "NOOP")):
                self._reply("250 ok")
            elif command == "DATA":
                self._reply("354 end with <CRLF>.<CRLF>")
                body = []
                while (data := self.rfile.readline()) not in (b".\r\n", b""):
                    body.append(data.decode("utf-8", "replace"))
                if state.refused < state.refuse_first:
                    state.refused += 1
                    self._reply("554 5.0.0 transaction failed (refused by the test server)")
                else:
                    state.received.append("".join(body))
                    self._reply("250 queued")
            elif command == "QUIT":
                self._reply("221 bye")
                return
            else:
                self._reply("502 not implemented")

    def _reply(self, text: str) -> None:
        self.wfile.write(f"{text}\r\n".encode("ascii"))


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def smtp_server_start(*, refuse_first: int = 0) -> tuple[SmtpServer, _Server]:
    server = _Server(("127.0.0.1", 0), _Handler)
    server.state = SmtpServer(refuse_first=refuse_first, port=server.server_address[1])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.state, server
