"""A server on 127.0.0.1 that answers one byte at a time and never finishes.

Every read of the client gets a byte before its per-read timeout, so only a total
deadline ends the call. ``part`` says where the trickle starts: in the status line and
headers, or in a body promised by Content-Length.
"""
from __future__ import annotations

import socket
import threading


class TrickleServer:
    def __init__(self, part: str = "body", interval: float = 0.2) -> None:
        self.part, self.interval = part, interval
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            try:
                client.settimeout(5)
                received = b""
                while b"\r\n\r\n" not in received:
                    chunk = client.recv(65536)
                    if not chunk:
                        return
                    received += chunk
                head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
                if self.part == "body":
                    client.sendall(head + b"{")
                    head = b"\"a\": \"" + b"x" * 100000
                for byte in head:
                    if self._stop.wait(self.interval):
                        return
                    client.sendall(bytes([byte]))
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
