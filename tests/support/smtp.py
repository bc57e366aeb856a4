"""A small SMTP server on loopback that accepts, refuses or ignores mail, for email tests over a
real SMTP conversation (Django's SMTP backend, its timeout and its errors included)."""

from __future__ import annotations

import socketserver
import threading
from email import message_from_bytes
from email.message import Message


class SmtpServer:
    """``mode``: "accept" (250 to everything), "refuse" (451 to RCPT TO, as a mail server that
    is down or over quota does) or "silent" (accepts the TCP connection, never answers)."""

    def __init__(self, mode: str = "accept"):
        self.mode = mode
        self.received: list[Message] = []
        server = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                if server.mode == "silent":
                    self.rfile.readline()  # never greets; the client gives up on its timeout
                    return
                self.reply("220 test SMTP")
                while line := self.rfile.readline():
                    verb = line.decode().strip().split(" ")[0].upper()
                    if verb in ("EHLO", "HELO"):
                        self.reply("250 test")
                    elif verb == "RCPT" and server.mode == "refuse":
                        self.reply("451 4.3.0 try again later")
                    elif verb == "DATA":
                        self.reply("354 go on")
                        data = b""
                        while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                            data += chunk
                        server.received.append(message_from_bytes(data))
                        self.reply("250 queued")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("250 ok")

            def reply(self, text: str) -> None:
                self.wfile.write(f"{text}\r\n".encode())

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> SmtpServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
