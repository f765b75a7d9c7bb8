"""Faults of a congested or dying S3 front end, injected into the local S3 on request.

:class:`FaultInjection` wraps the local S3's WSGI app. Switched on (by a request to
``/_s3ecephys/faults``, which :meth:`~s3ecephys.testing.LocalS3.faults` sends), it picks GET and
HEAD requests at random, with a seeded generator, and either

- **stalls** them: the head and the first half of the body are sent, then nothing more while the
  connection stays open (a ranged GET's answer stops halfway, as the issue's proxy showed), or
- **silences** them: no byte of an answer is sent at all, the connection stays open.

A held answer is let go (its connection then ends, short) when faults are switched off or after
:data:`HOLD_SECONDS`, so a test's server threads do not outlive it for long. Other requests
(uploads, the control requests) are never touched.
"""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

CONTROL_PATH = "/_s3ecephys/faults"
HOLD_SECONDS = 60.0

StartResponse = Callable[..., Any]


class FaultInjection:
    """WSGI middleware that stalls or silences a random share of GET and HEAD answers."""

    def __init__(self, app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]]):
        self._app = app
        self._lock = threading.Lock()
        self._stall = self._silent = 0.0
        self._random = random.Random(0)
        self._counts = {"stalled": 0, "silenced": 0, "passed": 0}
        # Set while faults are off: held answers wait on it.
        self._released = threading.Event()
        self._released.set()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == CONTROL_PATH:
            return self._control(environ, start_response)
        if environ["REQUEST_METHOD"] not in ("GET", "HEAD"):
            return self._app(environ, start_response)
        fault = self._choose()
        if fault == "silenced":
            self._released.wait(HOLD_SECONDS)
            return self._app(environ, start_response)
        if fault != "stalled" or environ["REQUEST_METHOD"] != "GET":
            return self._app(environ, start_response)
        answer: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answer.update(status=status, headers=headers)
            return lambda data: None

        result = self._app(environ, capture)
        try:
            body = b"".join(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        start_response(answer["status"], answer["headers"])
        if not answer["status"].startswith("2") or len(body) < 2:
            return [body]
        return self._half_then_hold(body)

    def _half_then_hold(self, body: bytes) -> Iterator[bytes]:
        yield body[: len(body) // 2]
        # The connection stays open with nothing more to read until faults are switched off.
        self._released.wait(HOLD_SECONDS)

    def _choose(self) -> str:
        with self._lock:
            draw = self._random.random()
            if draw < self._stall:
                fault = "stalled"
            elif draw < self._stall + self._silent:
                fault = "silenced"
            else:
                fault = "passed"
            self._counts[fault] += 1
            return fault

    def _control(self, environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        """POST ``{"stall": p, "silent": q, "seed": n}`` switches faults (all 0: off) and resets
        the counts; GET answers the counts so far."""
        if environ["REQUEST_METHOD"] == "POST":
            length = int(environ.get("CONTENT_LENGTH") or 0)
            settings = json.loads(environ["wsgi.input"].read(length) or b"{}")
            with self._lock:
                self._stall = float(settings.get("stall", 0.0))
                self._silent = float(settings.get("silent", 0.0))
                self._random = random.Random(settings.get("seed", 0))
                self._counts = dict.fromkeys(self._counts, 0)
            if self._stall or self._silent:
                self._released.clear()
            else:
                self._released.set()
        with self._lock:
            data = json.dumps(self._counts).encode()
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        )
        return [data]
