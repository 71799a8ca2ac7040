"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1 for backend tests.

Each test decides per request (by its number) what the server does: the status, the body and a
delay before answering. The server records every request and the peak number in flight. It keeps
connections alive (HTTP/1.1) like vLLM's server, and closes them when it stops, so a stopped
server is down for a client with pooled connections too.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class KeepAliveServer(ThreadingHTTPServer):
    """A threading HTTP server that closes its kept-alive connections in ``server_close``."""

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, address = super().get_request()
        with self._open_lock:
            self._open.add(conn)
        return conn, address

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def server_close(self) -> None:
        super().server_close()
        with self._open_lock:
            conns, self._open = list(self._open), set()
        for conn in conns:          # wakes the handler threads blocked reading the next request
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b''
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    #: Announce the whole body, send half of it and close the connection.
    cut_short: bool = False


def completion(content: str, finish_reason: str = 'stop', **choice: Any) -> bytes:
    """A chat-completion body answering ``content``."""
    return json.dumps({
        'id': 'cmpl-test', 'object': 'chat.completion', 'model': 'grm',
        'choices': [{'index': 0, 'finish_reason': finish_reason,
                     'message': {'role': 'assistant', 'content': content}, **choice}],
        'usage': {'prompt_tokens': 1200, 'completion_tokens': 7}}).encode()


@dataclass
class Recorded:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    #: The client's port: one per connection, so kept-alive requests share it.
    client_port: int = 0


@dataclass
class FakeOpenAI:
    """Serves ``respond(n, body)`` for the n-th request (0-based)."""

    respond: Callable[[int, dict[str, Any]], Reply]
    #: 0 = any free port; a fixed one lets a test stop the server and start it again there.
    port: int = 0
    #: False: requests are counted, not parsed or kept (``respond`` gets ``{}``), so that a
    #: benchmark measures its client rather than this server's JSON parsing and memory.
    record: bool = True
    requests: list[Recorded] = field(default_factory=list)
    #: Requests received (recorded or not).
    served: int = 0
    peak_in_flight: int = 0
    _in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> FakeOpenAI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'
            disable_nagle_algorithm = True      # as uvicorn (vLLM): no 40 ms delayed-ACK stalls

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers['Content-Length']))
                body = json.loads(raw) if fake.record else {}
                with fake._lock:
                    n = fake.served
                    fake.served += 1
                    if fake.record:
                        fake.requests.append(Recorded(self.path, dict(self.headers.items()),
                                                      body, self.client_address[1]))
                    fake._in_flight += 1
                    fake.peak_in_flight = max(fake.peak_in_flight, fake._in_flight)
                try:
                    reply = fake.respond(n, body)
                    time.sleep(reply.delay_s)
                    self.send_response(reply.status)
                    self.send_header('Content-Type', 'application/json')
                    self.send_header('Content-Length', str(len(reply.body)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    if reply.cut_short:
                        self.wfile.write(reply.body[:len(reply.body) // 2])
                        self.close_connection = True
                    else:
                        self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass                       # the client timed out and left
                finally:
                    with fake._lock:
                        fake._in_flight -= 1

            def log_message(self, *args: Any) -> None:
                """Quiet."""

        self._server = KeepAliveServer(('127.0.0.1', self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,),
                                        daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self._server.server_address[1]}/v1'
