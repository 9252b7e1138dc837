"""Base for the fake upstream servers: a threaded stdlib HTTP server with scripted failures."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# In a `huge` reply's JSON body, this string is replaced by as many `x` as make the body `huge` bytes.
PAD = "@@PAD@@"
CHUNK = 64 * 1024


@dataclass
class Fault:
    """A scripted response served instead of the real one (or a delay before the real one)."""

    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay: float = 0.0
    after: bool = False  # True: run the real handler first, then delay (the effect lands, the reply is late)
    # A hostile or broken upstream: the whole reply, status line and headers included, one byte every
    # `trickle` seconds, so that no single read waits long enough for a read timeout to fire.
    trickle: float = 0.0
    # A huge reply of `huge` bytes, streamed in 64 KiB chunks with its Content-Length: `body` with its
    # `PAD` string padded (valid JSON, e.g. a ticket with a huge description), or only `x` without one.
    huge: int = 0


@dataclass
class Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    trickle: float = 0.0  # see Fault
    huge: int = 0  # see Fault

    def payload(self) -> bytes:
        """bytes are sent as they are (garbage replies for fault tests); anything else as JSON."""
        if isinstance(self.body, bytes):
            return self.body
        return b"" if self.body is None else json.dumps(self.body).encode()

    def head(self, length: int) -> bytes:
        """Status line and headers, as the stdlib handler would send them."""
        lines = [f"HTTP/1.1 {self.status} {_phrase(self.status)}"]
        if "content-type" not in {name.lower() for name in self.headers}:
            lines.append("Content-Type: application/json;charset=UTF-8")
        lines.append(f"Content-Length: {length}")
        lines.extend(f"{name}: {value}" for name, value in self.headers.items())
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def huge_parts(self) -> tuple[bytes, int, bytes]:
        """(head of the body, number of padding bytes, tail): together exactly `huge` bytes."""
        text = json.dumps(self.body) if isinstance(self.body, dict | list) else ""
        before, after = (part.encode() for part in (text if PAD in text else PAD).split(PAD, 1))
        return before, max(0, self.huge - len(before) - len(after)), after


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


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
                try:
                    if reply.huge:
                        self._send_huge(reply)
                    elif reply.trickle > 0:
                        payload = reply.payload()
                        self._trickle(reply.head(len(payload)) + payload, reply.trickle)
                    else:
                        payload = reply.payload()
                        self.wfile.write(reply.head(len(payload)) + payload)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                if any(v.lower() == "close" for k, v in reply.headers.items() if k.lower() == "connection"):
                    self.close_connection = True

            def _trickle(self, data: bytes, interval: float) -> None:
                # Until the reply is out or the client goes away (a write then fails).
                for n in range(len(data)):
                    self.wfile.write(data[n : n + 1])
                    self.wfile.flush()
                    time.sleep(interval)

            def _send_huge(self, reply: Reply) -> None:
                before, padding, after = reply.huge_parts()
                self.wfile.write(reply.head(len(before) + padding + len(after)) + before)
                block = b"x" * CHUNK
                while padding > 0:
                    self.wfile.write(block[: min(CHUNK, padding)])
                    padding -= CHUNK
                self.wfile.write(after)

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

    def clear_faults(self, key: str) -> None:
        """Drop whatever is still scripted for `key` (a test's leftovers must not reach the next test)."""
        with self._lock:
            self._faults.pop(key, None)

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
            return Reply(fault.status, fault.body, fault.headers, fault.trickle, fault.huge)
        reply = self.handle(method, path, {k.lower(): v for k, v in headers.items()}, body)
        if fault is not None:
            time.sleep(fault.delay)
            # The real reply, delivered the hostile way (say, the right ticket, one byte at a time).
            reply.trickle, reply.huge = fault.trickle, fault.huge
        return reply

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        raise NotImplementedError
