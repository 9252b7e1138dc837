"""Base for the fake upstream servers: a threaded stdlib HTTP server with scripted failures."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Fault:
    """A scripted response served instead of the real one (or a delay before the real one)."""

    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay: float = 0.0
    after: bool = False  # True: run the real handler first, then delay (the effect lands, the reply is late)


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class _Server(ThreadingHTTPServer):
    # The stdlib's listen backlog of 5 drops SYNs when dozens of workers connect at once (each drop
    # costs the client a 1 s retransmit); a real upstream accepts far more.
    request_queue_size = 128
    daemon_threads = True


class FakeServer:
    """Subclasses implement `handle(method, path, headers, body) -> Reply`."""

    def __init__(self) -> None:
        self._faults: dict[str, deque[Fault]] = defaultdict(deque)
        self._lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        # Fixed service time added to every reply (benchmarks: a slow LLM or ServiceDesk Plus); 0 = none.
        self.latency = 0.0
        # False: do not keep `requests` (benchmarks send thousands; tests inspect them).
        self.record_requests = True
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if len(body) < length:
                    # The client died mid-request (tests SIGKILL workers): a real server never sees
                    # a truncated body as a request, so neither does the fake.
                    self.close_connection = True
                    return
                reply = fake.dispatch(self.command, self.path, dict(self.headers.items()), body)
                # bytes are sent as they are (garbage replies for fault tests); anything else as JSON.
                if isinstance(reply.body, bytes):
                    payload = reply.body
                else:
                    payload = b"" if reply.body is None else json.dumps(reply.body).encode()
                try:
                    self.send_response(reply.status)
                    if "content-type" not in {name.lower() for name in reply.headers}:
                        self.send_header("Content-Type", "application/json;charset=UTF-8")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def add_fault(self, key: str, fault: Fault, times: int = 1) -> None:
        """Serve `fault` for the next `times` requests whose `fault_key` equals `key`."""
        with self._lock:
            self._faults[key].extend([fault] * times)

    def fault_key(self, method: str, path: str, body: bytes) -> str:
        return f"{method} {path.split('?', 1)[0]}"

    def dispatch(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        if self.latency > 0:
            time.sleep(self.latency)
        with self._lock:
            if self.record_requests:
                self.requests.append({"method": method, "path": path, "headers": headers, "body": body})
            queue = self._faults.get(self.fault_key(method, path, body))
            fault = queue.popleft() if queue else None
        if fault is not None and not fault.after:
            time.sleep(fault.delay)
            return Reply(fault.status, fault.body, fault.headers)
        reply = self.handle(method, path, {k.lower(): v for k, v in headers.items()}, body)
        if fault is not None:
            time.sleep(fault.delay)
        return reply

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        raise NotImplementedError
