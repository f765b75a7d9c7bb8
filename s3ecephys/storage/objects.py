"""What identifies one version of an object, what a store has done, and how a read can fail."""

from __future__ import annotations

from dataclasses import dataclass


class ObjectChangedError(OSError):
    """The object changed since it was indexed; its bytes must not be mixed with older ones."""


class ShortReadError(OSError):
    """A response held fewer or more bytes than asked for, on every retry."""


class RangeNotSatisfiable(OSError):
    """S3 answered 416: the range asked for lies past the end (of an empty object)."""


@dataclass(frozen=True)
class ObjectInfo:
    """What identifies one version of an object: its size and its ETag (S3) or mtime (local)."""

    size: int
    etag: str | None = None
    mtime_ns: int | None = None

    @property
    def fingerprint(self) -> str:
        """A text that changes whenever the object's content may have changed."""
        if self.etag:
            return f"etag:{self.etag.strip(chr(34))}:{self.size}"
        return f"mtime:{self.mtime_ns}:{self.size}"


@dataclass
class RequestStats:
    """Requests sent, bytes received and round trips on the critical path (sequential waves)."""

    requests: int = 0
    bytes: int = 0
    round_trips: int = 0

    def reset(self) -> None:
        self.requests = self.bytes = self.round_trips = 0

    def copy(self) -> RequestStats:
        return RequestStats(self.requests, self.bytes, self.round_trips)

    def __sub__(self, other: RequestStats) -> RequestStats:
        return RequestStats(
            self.requests - other.requests,
            self.bytes - other.bytes,
            self.round_trips - other.round_trips,
        )
