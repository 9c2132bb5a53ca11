"""Loopback helpers shared by the tests that run servers."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

# What a stopped server gets to finish on SIGTERM before SIGKILL: uvicorn's graceful shutdown otherwise waits for
# the workers' keep-alive connections, and that wait took 20 s per server in the e2e teardowns.
STOP_GRACE_SECONDS = 5.0


def start_logged(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a server in a process group of its own (so that it can be stopped with everything it spawns), its
    output to `log`."""
    with log.open("wb") as sink:
        return subprocess.Popen(
            command, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop a process and everything it spawned (its own process group): TERM, then KILL what is left."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=STOP_GRACE_SECONDS)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=20)


def free_port() -> int:
    """A loopback port nothing listens on now: bound, then released (another process could take it, rarely)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Delivery:
    """One POST the receiver saw: the status it answered and the JSON body."""

    status: int
    body: dict[str, Any]
    content_type: str


@dataclass
class LineageReceiver:
    """A lineage endpoint on 127.0.0.1 that records every POSTed body and answers 200 (or what `answer` says).

    `answer(n)` gets the 0-based index of the request and returns (status, seconds to wait before answering).
    It can be stopped and started again on the same port, as a Marquez restart would.
    """

    port: int
    answer: Callable[[int], tuple[int, float]] = lambda index: (200, 0.0)
    deliveries: list[Delivery] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def accepted(self) -> list[dict[str, Any]]:
        """Bodies the receiver acknowledged with a 2xx, in arrival order."""
        return [delivery.body for delivery in self.deliveries if 200 <= delivery.status < 300]

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                # Recorded as received before the answer, as a receiver stores an event before it replies.
                with receiver.lock:
                    status, delay = receiver.answer(len(receiver.deliveries))
                    receiver.deliveries.append(Delivery(status, body, self.headers.get("Content-Type", "")))
                time.sleep(delay)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
                pass

        # SO_REUSEADDR (set by HTTPServer) lets a restart bind the port the stopped server held; a thread per
        # request lets a slow answer overlap the client's retry, and server_close() waits for those threads.
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
        self._server = self._thread = None
