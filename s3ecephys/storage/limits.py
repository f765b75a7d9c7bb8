"""How long one request may take before it is given up: connect, first byte, stalls, retries.

Four limits, each set by a ``storage_options`` key or else an ``S3ECEPHYS_`` variable:

- ``connect_timeout``: seconds to open a connection (a blackholed endpoint stops here);
- ``first_byte_timeout``: seconds from sending a request to the head of its answer;
- ``stall_limit``: seconds a response may go without delivering a new byte before it is abandoned
  and the bytes still missing are asked for again. By default it adapts to the endpoint: ten times
  the slowest first-byte time among its recent answers, at least 2 s and at most 10 s (a healthy
  body never pauses longer than its server took to start it; a congested link's pauses stay under
  the floor). ``0`` turns the guard off;
- ``retry_budget``: seconds one request may spend failing and being retried before the read fails
  with an error naming the object, the range and every attempt.

The limits live apart from any client so that any transport (botocore today, plain HTTP later)
applies them the same way; the keys are taken out of the options before a client sees them.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CONNECT_TIMEOUT = 3.0
# S3 answers in tens of milliseconds, rarely in more than a second; five is generous and keeps an
# endpoint that accepts connections but never answers (a broken proxy) under ten seconds.
FIRST_BYTE_TIMEOUT = 5.0
STALL_FLOOR = 2.0
STALL_CAP = 10.0
STALL_MULTIPLE = 10.0
RETRY_BUDGET = 30.0
# How many recent first-byte times the adaptive stall limit looks at: enough to span a wave, few
# enough that one slow morning does not set the limit for the rest of the day.
_RECENT_FIRST_BYTES = 64
# How long an endpoint that never answered, and then did not answer, is taken as unreachable
# without asking it again: the many requests of one user action (a table's four CSVs, a file's
# two ends) fail together, and a user who fixed the network a moment later is not kept waiting.
# Also how long, after a request gave up on an endpoint that had answered before (the network
# went away mid-session), a new request's first unanswered attempt is final.
UNREACHABLE_MEMORY = 15.0

# storage_options key -> environment variable.
VARIABLES = {
    "connect_timeout": "S3ECEPHYS_CONNECT_TIMEOUT",
    "first_byte_timeout": "S3ECEPHYS_FIRST_BYTE_TIMEOUT",
    "stall_limit": "S3ECEPHYS_STALL_LIMIT",
    "retry_budget": "S3ECEPHYS_RETRY_BUDGET",
}


@dataclass(frozen=True)
class TransferLimits:
    """The limits one store applies to each of its requests (seconds; see the module doc).

    ``stall_limit`` None means adaptive, 0 means no stall guard.
    """

    connect_timeout: float = CONNECT_TIMEOUT
    first_byte_timeout: float = FIRST_BYTE_TIMEOUT
    stall_limit: float | None = None
    retry_budget: float = RETRY_BUDGET

    @classmethod
    def resolve(cls, options: Mapping[str, Any] | None = None) -> TransferLimits:
        """The limits named in ``options``, else in the environment, else the defaults."""
        options = options or {}
        chosen: dict[str, float] = {}
        for name, variable in VARIABLES.items():
            if options.get(name) is not None:
                chosen[name] = _seconds(options[name], f"storage_options[{name!r}]")
            elif os.environ.get(variable, "").strip():
                chosen[name] = _seconds(os.environ[variable], variable)
        for name in ("connect_timeout", "first_byte_timeout", "retry_budget"):
            if chosen.get(name) == 0:
                raise ValueError(f"{name} must be more than 0 seconds")
        return cls(**chosen)

    def describe(self) -> str:
        """The limits as a user would set them, for error messages."""
        if self.stall_limit is None:
            stall = "adaptive"
        else:
            stall = f"{self.stall_limit:g} s" if self.stall_limit else "off"
        return (
            f"connect_timeout {self.connect_timeout:g} s, first_byte_timeout "
            f"{self.first_byte_timeout:g} s, stall_limit {stall}, retry_budget "
            f"{self.retry_budget:g} s"
        )


def _seconds(value: Any, source: str) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{source}={value!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"{source}={value!r} must be a finite number of seconds >= 0")
    return seconds


def split_limits(options: Mapping[str, Any] | None) -> tuple[TransferLimits, dict[str, Any]]:
    """The limits named in ``options`` (or the environment), and the options without them (what
    a client such as s3fs accepts)."""
    options = dict(options or {})
    limits = TransferLimits.resolve(options)
    for name in VARIABLES:
        options.pop(name, None)
    return limits, options


class EndpointHealth:
    """What this process has seen of one endpoint: whether it ever answered, and how long its
    recent answers took to start (for the adaptive stall limit). Shared by every store of the
    endpoint, from any thread."""

    def __init__(self) -> None:
        self.answered = False
        self._silent_until = 0.0
        self._lost_until = 0.0
        self._first_bytes: deque[float] = deque(maxlen=_RECENT_FIRST_BYTES)
        self._lock = threading.Lock()

    def saw_answer(self, first_byte_seconds: float | None = None) -> None:
        """The endpoint answered (a head arrived after ``first_byte_seconds``, when measured)."""
        with self._lock:
            self.answered = True
            self._lost_until = 0.0
            if first_byte_seconds is not None:
                self._first_bytes.append(first_byte_seconds)

    def saw_no_answer(self) -> None:
        """A request got no answer at all (refused, no connection, silence)."""
        with self._lock:
            if not self.answered:
                self._silent_until = time.monotonic() + UNREACHABLE_MEMORY

    def saw_loss(self) -> None:
        """A request spent its retries without getting any answer: the endpoint, or the
        network to it, went away."""
        with self._lock:
            self._lost_until = time.monotonic() + UNREACHABLE_MEMORY

    def lost(self) -> bool:
        """Whether a request gave up on the endpoint moments ago and nothing has answered since:
        retrying another request for its whole budget would only delay the same news."""
        with self._lock:
            return time.monotonic() < self._lost_until

    def known_unreachable(self) -> bool:
        """Whether the endpoint never answered and failed to, moments ago: ask it again later."""
        with self._lock:
            return not self.answered and time.monotonic() < self._silent_until

    def stall_limit(self, limits: TransferLimits) -> float | None:
        """Seconds without a new byte after which a response is abandoned; None: never."""
        if limits.stall_limit is not None:
            return limits.stall_limit or None
        with self._lock:
            slowest = max(self._first_bytes, default=0.0)
        return min(STALL_CAP, max(STALL_FLOOR, STALL_MULTIPLE * slowest))


_health: dict[str, EndpointHealth] = {}
_health_lock = threading.Lock()


def endpoint_health(endpoint: str) -> EndpointHealth:
    """The one :class:`EndpointHealth` of ``endpoint`` in this process."""
    known = _health.get(endpoint)  # every request asks: no lock, nothing built, once known
    if known is not None:
        return known
    with _health_lock:
        return _health.setdefault(endpoint, EndpointHealth())
