"""Many byte ranges of one object in one call: coalesced, concurrent, retried, verified.

Everything above this module asks for bytes as ``(offset, length)`` lists and gets back exactly
those bytes, in order. How they travel is decided here: neighbouring ranges merge into one request
when the gap between them is cheaper to download than a request is to wait for, very long ranges
split so that parts run side by side, all requests of one call run concurrently (bounded), and
transient failures are retried with backoff; an answer cut short is resumed where it stopped.
:meth:`RangeStore.fetch` returns all ranges at once; :meth:`RangeStore.fetch_each` hands each range
out as soon as its bytes are in, so that callers can decode while the rest is still on the wire.
Every response is checked for its length (and, for a range, its ``Content-Range``), and on S3
every GET carries ``If-Match`` with the ETag seen when the object was first looked at (by a HEAD,
or by the first wave of :meth:`RangeStore.fetch_ends`, whose answers tell it), so bytes of two
versions of a file are never mixed: a replaced object raises :class:`ObjectChangedError`.

No request waits without bound (see :mod:`s3ecephys.storage.limits` for the four limits): an answer
whose head does not come within the connect and first-byte timeouts, or whose body delivers no new
byte for the stall limit, is abandoned and the bytes still missing are asked for again; a request
that keeps failing ends, within its retry budget, in a :class:`ReadFailedError` naming the object,
the range and every attempt. An endpoint that has never answered in this process is not retried:
it fails at once with an :class:`EndpointUnreachableError` that says what to do; so does, after a
single unanswered attempt, any request in the moments after another spent its whole budget on an
endpoint that stopped answering (a network gone mid-session costs one budget, not one per read).

The requests themselves (their checks, limits, resumption and the sorting of failures) are
:mod:`s3ecephys.storage.s3_requests`; this module decides what to ask for and hands it out.

Anonymous reads (the public bucket, a local S3) go as unsigned GETs over plain HTTP
(:mod:`s3ecephys.storage.http_client`: no botocore to import or set up before the first byte);
credentials, profiles or any other s3fs option send them through s3fs. Both clients answer in one
shape, so every check, limit and count here applies to either.

A :class:`RangeStore` pickles as ``(url, storage_options, expected ObjectInfo)``: no client, event
loop or file handle crosses a process boundary, which is what dask's process workers need.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Generator, Hashable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from s3ecephys.storage import read_ahead, s3_requests
from s3ecephys.storage.assembly import (
    DEFAULT_GAP,
    DEFAULT_MAX_REQUEST,
    Assembly,
    coalesce_ranges,
)
from s3ecephys.storage.attempts import (
    FirstByteTimeoutError,
    ReadFailedError,
    StalledError,
)
from s3ecephys.storage.http_client import anonymous_client, plain_http_fits
from s3ecephys.storage.limits import EndpointHealth, endpoint_health, split_limits
from s3ecephys.storage.location import (
    DEFAULT_REGION,
    EndpointUnreachableError,
    endpoint_of,
    s3_storage_options,
)
from s3ecephys.storage.objects import (
    ObjectChangedError,
    ObjectInfo,
    RangeNotSatisfiable,
    RequestStats,
    ShortReadError,
)
from s3ecephys.storage.read_ahead import InFlight

__all__ = [
    "DEFAULT_GAP",
    "DEFAULT_MAX_REQUEST",
    "EndpointUnreachableError",
    "FirstByteTimeoutError",
    "ObjectChangedError",
    "ObjectInfo",
    "RangeStore",
    "ReadFailedError",
    "RequestStats",
    "ShortReadError",
    "StalledError",
    "coalesce_ranges",
]

# Requests in flight at once. A wave is typically many small ranges (a chunk B-tree level: ~100
# nodes; one channel over a real recording: ~256 chunks) that S3 answers side by side; above this
# they queue and each further batch costs a round trip.
DEFAULT_CONCURRENCY = 128
DEFAULT_RETRIES = 5
# Added to the first-byte timeout for botocore's own socket read timeout, so that the limits here,
# with their clearer errors, always end a wait first.
_STALL_BACKSTOP = 60.0


class RangeStore:
    """Reads byte ranges of one object (``s3://bucket/key``, ``file://`` URL or local path).

    ``storage_options`` are s3fs arguments, merged over the defaults of
    :func:`~s3ecephys.storage.location.s3_storage_options` (anonymous, us-west-2, endpoint from the
    environment), plus the limits of :mod:`s3ecephys.storage.limits` (``connect_timeout``,
    ``first_byte_timeout``, ``stall_limit``, ``retry_budget``). ``expected`` pins the object
    version (from an index): reads then need no HEAD and fail with :class:`ObjectChangedError` if
    the object is not that version any more.
    """

    def __init__(
        self,
        url: str | os.PathLike[str],
        storage_options: Mapping[str, Any] | None = None,
        *,
        expected: ObjectInfo | None = None,
        gap: int = DEFAULT_GAP,
        max_request: int = DEFAULT_MAX_REQUEST,
        concurrency: int = DEFAULT_CONCURRENCY,
        retries: int = DEFAULT_RETRIES,
    ):
        url = os.fspath(url)
        self.is_s3 = url.startswith("s3://")
        if self.is_s3:
            self.url = url
            self.bucket, _, self.key = url.removeprefix("s3://").partition("/")
            if not self.bucket or not self.key:
                raise ValueError(f"expected s3://bucket/key, got {url!r}")
            self.storage_options = s3_storage_options(storage_options)
        elif url.startswith("file://"):
            self.url = url2pathname(urlsplit(url).path)
            self.storage_options = dict(storage_options or {})
        elif "://" in url:
            raise ValueError(f"unsupported URL {url!r}: use s3://bucket/key or a local path")
        else:
            self.url = os.path.abspath(os.path.expanduser(url))
            self.storage_options = dict(storage_options or {})
        self.limits, self._client_options = split_limits(self.storage_options)
        self.endpoint = endpoint_of(self.storage_options) if self.is_s3 else self.url
        # Anonymous reads need no signature: plain HTTP spares botocore's import and set-up.
        self.plain_http = self.is_s3 and plain_http_fits(self._client_options)
        self.expected = expected
        # Whether ``expected`` has been compared with the object itself (see info()).
        self._checked = False
        self.gap, self.max_request = gap, max_request
        self.concurrency, self.retries = concurrency, retries
        self.stats = RequestStats()
        # Called when the object turns out to be another version than ``expected`` (set by
        # whoever pinned that version from a cache, to forget it); never pickled.
        self.on_changed: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._filesystem: Any = None

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild_store,
            (
                self.url,
                self.storage_options,
                self.expected,
                self.gap,
                self.max_request,
                self.concurrency,
                self.retries,
            ),
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"

    def twin(self) -> RangeStore:
        """Another store of the same object and version, with request counts of its own (for
        reads in the background that a caller's ``stats`` should not show)."""
        twin = _rebuild_store(*self.__reduce__()[1])
        if self._checked and self.expected is not None:
            twin.pin(self.expected)
        twin.on_changed = self.on_changed
        return twin

    # -- object identity -------------------------------------------------------------------------

    def info(self) -> ObjectInfo:
        """The object's size and version; one HEAD (or stat) the first time, remembered after.

        With ``expected`` given, the object is looked at once to check it is still that version.
        """
        if self.expected is not None and self._checked:
            return self.expected
        current = self._stat() if not self.is_s3 else self._run(s3_requests.head_object, self)
        if self.expected is not None and current.fingerprint != self.expected.fingerprint:
            raise ObjectChangedError(self.changed_message(current))
        self.expected = current
        self._checked = True
        return current

    def pin(self, info: ObjectInfo) -> None:
        """Take ``info`` as the object's version without asking (it was remembered from an earlier
        look). Nothing is lost by trusting it: every GET carries ``If-Match``, so a replaced
        object still fails with :class:`ObjectChangedError` on the first read."""
        self.expected, self._checked = info, True

    def changed_message(self, current: ObjectInfo | None = None) -> str:
        """What to tell a user whose object is not the version first seen."""
        if self.expected is None:  # replaced while its first bytes were arriving
            return f"{self.url} changed while it was being opened; open it again"
        now = f" (now size {current.size}, {current.fingerprint})" if current else ""
        return (
            f"{self.url} changed since it was indexed (was size {self.expected.size}, "
            f"{self.expected.fingerprint}){now}; open it again to index the new version"
        )

    # -- reads -----------------------------------------------------------------------------------

    def fetch(self, ranges: Sequence[tuple[int, int]], *, views: bool = False) -> list[Any]:
        """Exactly the bytes of each ``(offset, length)``, in the order asked.

        All ranges go out in one concurrent wave (or several when there are more requests than
        ``concurrency``). Ranges past the end of the object raise ``ValueError``. With
        ``views``, ranges that lie inside one request come back as memoryviews of its body, not
        copies (for readers that consume them at once: many chunks per request would otherwise
        be held twice).
        """
        assembly = self._assemble(ranges, views)
        results: list[Any] = [b""] * assembly.count

        def keep(batch: list[tuple[int, Any]]) -> None:
            for position, body in batch:
                results[position] = body

        if assembly.requests and self.is_s3:
            # Straight into the results on the event loop: no thread is woken per arrival.
            self._run(s3_requests.get_ranges, self, assembly, keep)
        elif assembly.requests:
            for batch in self._read_local(assembly):
                keep(batch)
        return results

    def fetch_each(
        self, ranges: Sequence[tuple[int, int]], *, views: bool = False
    ) -> Generator[list[tuple[int, Any]], None, None]:
        """The bytes of each ``(offset, length)`` as soon as they have arrived: batches of
        ``(position in ranges, bytes)``, every position exactly once, in no fixed order.

        The same requests as :meth:`fetch`, but a consumer can decode the first chunks while
        the rest are still on the way. Stopping early (``close()``, an error in the consumer)
        cancels the requests still running.
        """
        if self.is_s3 and self.expected is not None and ranges:
            ahead = read_ahead.take(self._ahead_key(ranges, views))
            if ahead is not None:
                return ahead.batches()
        assembly = self._assemble(ranges, views)
        if self.is_s3 and assembly.requests:
            return self._stream(assembly)
        batches = [assembly.empty, *(self._read_local(assembly) if assembly.requests else [])]
        return (batch for batch in batches if batch)

    def _assemble(self, ranges: Sequence[tuple[int, int]], views: bool) -> Assembly:
        """The requests that bring ``ranges`` (checked to lie inside the object)."""
        ranges = [(int(offset), int(length)) for offset, length in ranges]
        if any(offset < 0 or length < 0 for offset, length in ranges):
            raise ValueError(f"negative offset or length in {ranges[:5]}")
        requests = coalesce_ranges(ranges, gap=self.gap, max_request=self.max_request)
        if requests and self.expected is not None:
            end = max(offset + length for offset, length in requests)
            if end > self.expected.size:
                raise ValueError(
                    f"range ending at byte {end} is past the end of {self.url} "
                    f"({self.expected.size} bytes)"
                )
        return Assembly(ranges, requests, views)

    def read(self, offset: int, length: int) -> bytes:
        """One range (see :meth:`fetch`)."""
        return self.fetch([(offset, length)])[0]

    def fetch_ends(self, head: int, tail: int) -> tuple[bytes, bytes]:
        """The first ``head`` and the last ``tail`` bytes of the object (all of it when it is
        smaller), in one concurrent wave.

        On S3, when the object's version is not known yet, it is not asked for first: both
        answers carry the object's size and ETag, which are then pinned as by :meth:`info` (a
        cold open saves the round trip of a HEAD).
        """
        if self.is_s3 and self.expected is None and (head > 0 or tail > 0):
            try:
                return self._run(s3_requests.get_ends, self, head, tail)
            except RangeNotSatisfiable:  # an empty object: nothing to cut ends from
                pass
        size = self.info().size
        head, tail = min(head, size), min(tail, size)
        first, last = self.fetch([(0, head), (size - tail, tail)])
        return first, last

    def record(self, requests: int, received: int, round_trips: int) -> None:
        """Add what requests cost to :attr:`stats`."""
        with self._lock:
            self.stats.requests += requests
            self.stats.bytes += received
            self.stats.round_trips += round_trips

    # -- local files -----------------------------------------------------------------------------

    def _stat(self) -> ObjectInfo:
        status = os.stat(self.url)
        return ObjectInfo(size=status.st_size, mtime_ns=status.st_mtime_ns)

    def _read_local(self, assembly: Assembly) -> list[list[tuple[int, Any]]]:
        """Every request of ``assembly`` read; the ranges each completes."""
        requests = assembly.requests
        with open(self.url, "rb") as handle:
            status = os.fstat(handle.fileno())
            current = ObjectInfo(size=status.st_size, mtime_ns=status.st_mtime_ns)
            if self.expected is None:
                self.expected, self._checked = current, True
            elif current.fingerprint != self.expected.fingerprint:
                raise ObjectChangedError(self.changed_message(current))
            bodies = [os.pread(handle.fileno(), length, offset) for offset, length in requests]
        for (offset, length), body in zip(requests, bodies, strict=True):
            if len(body) != length:
                raise ShortReadError(
                    f"{self.url}: asked for {length} bytes at {offset}, file gave {len(body)}"
                )
        self.record(len(requests), sum(map(len, bodies)), 1)
        return [assembly.add(index, body) for index, body in enumerate(bodies)]

    # -- S3 --------------------------------------------------------------------------------------

    def filesystem(self) -> Any:
        """The s3fs filesystem (created on first use; its event loop runs in fsspec's thread);
        not used for anonymous reads, which go over plain HTTP."""
        if self._filesystem is None:
            import s3fs

            options = dict(self._client_options)
            # Without enough pooled connections, "concurrent" requests queue inside botocore.
            config = dict(options.get("config_kwargs", {}))
            config.setdefault("max_pool_connections", self.concurrency)
            # Retries, stalls and first bytes are handled here (bounded, resumed, counted);
            # botocore's own retries would multiply every wait and hide requests from the stats.
            config.setdefault("connect_timeout", self.limits.connect_timeout)
            config.setdefault("retries", {"total_max_attempts": 1})
            # A backstop only: the first-byte and stall limits below end a wait sooner.
            config.setdefault("read_timeout", self.limits.first_byte_timeout + _STALL_BACKSTOP)
            options["config_kwargs"] = config
            self._filesystem = s3fs.S3FileSystem(**options)
        return self._filesystem

    def _loop(self) -> asyncio.AbstractEventLoop:
        """The event loop requests run on: fsspec's I/O thread (s3fs's own, when it is used)."""
        if self.plain_http:
            from fsspec.asyn import get_loop

            return get_loop()
        return self.filesystem().loop

    def _run(self, function: Any, *arguments: Any) -> Any:
        from fsspec.asyn import sync

        return sync(self._loop(), function, *arguments)

    async def client(self) -> Any:
        """The client S3 requests go through (created on first use, on the event loop)."""
        if self.plain_http:
            client_kwargs = self._client_options.get("client_kwargs") or {}
            endpoint = self._client_options.get("endpoint_url") or client_kwargs.get(
                "endpoint_url"
            )
            region = client_kwargs.get("region_name", DEFAULT_REGION)
            return anonymous_client(
                endpoint, region, self.concurrency, self.limits.connect_timeout
            )
        filesystem = self.filesystem()
        await filesystem.set_session()
        return await filesystem.get_s3(self.bucket)

    @property
    def health(self) -> EndpointHealth:
        """What this process has seen of the store's endpoint (shared by its stores)."""
        return endpoint_health(self.endpoint)

    def _stream(self, assembly: Assembly) -> Generator[list[tuple[int, Any]], None, None]:
        """Run the requests of ``assembly`` on the event loop (once iterated); yield ranges as
        they complete."""
        yield from self._start(assembly).batches()

    def _start(self, assembly: Assembly) -> InFlight:
        loop = self._loop()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            raise NotImplementedError("RangeStore reads cannot run inside its own event loop")
        return InFlight.start(
            loop, lambda deliver: s3_requests.get_ranges(self, assembly, deliver), assembly.empty
        )

    def read_ahead(self, ranges: Sequence[tuple[int, int]], *, views: bool = False) -> None:
        """Start fetching ``ranges`` now, for a :meth:`fetch_each` of exactly these ranges soon
        (the next block of a scan; see :mod:`s3ecephys.storage.read_ahead`). S3 objects of a
        known version only: a local file has no latency to hide."""
        if not self.is_s3 or self.expected is None or not ranges:
            return
        assembly = self._assemble(ranges, views)
        size = sum(length for _, length in assembly.requests)
        read_ahead.start(self._ahead_key(ranges, views), size, lambda: self._start(assembly))

    def was_asked(self, ranges: Sequence[tuple[int, int]], *, views: bool = False) -> bool:
        """Whether a read of exactly ``ranges`` began moments ago (which way a scan goes)."""
        if not self.is_s3 or self.expected is None or not ranges:
            return False
        return read_ahead.asked(self._ahead_key(ranges, views))

    def _ahead_key(self, ranges: Sequence[tuple[int, int]], views: bool) -> Hashable:
        assert self.expected is not None
        return (self.url, self.endpoint, self.expected.fingerprint, views, tuple(ranges))


def _rebuild_store(
    url: str,
    storage_options: dict[str, Any],
    expected: ObjectInfo | None,
    gap: int,
    max_request: int,
    concurrency: int,
    retries: int,
) -> RangeStore:
    return RangeStore(
        url,
        storage_options,
        expected=expected,
        gap=gap,
        max_request=max_request,
        concurrency=concurrency,
        retries=retries,
    )
